"""Reports about runs: report.html (html.py), JUnit XML and GitHub annotations (ci.py),
and the ablation of batchaot's parts (ablation.py)."""
