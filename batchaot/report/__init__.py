"""Reports about runs: the ablation of batchaot's parts."""
