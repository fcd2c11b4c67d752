"""The runtime: runs a compiled plan over data, the same way everywhere.

`validate` (in-memory tables and files), `submit` in this process, and Ray worker actors
all call this layer; ``distributed/`` only decides where its calls run.

- ``unit.py``     UnitRunner: one work unit read, evaluated, its violations part written
                  (``run``), or held in memory for ``validate`` (``hold``)
- ``settle.py``   dataset checks across units: side inputs, partials, bucket reduces,
                  read from what each check declares (checks/base.py)
- ``quarantine.py`` a unit's rows split into valid/ and invalid/ parts, a last pass once
                  the dataset checks have settled (UnitRunner.quarantine)
- ``plan.py``     Plan (the compiled rules and their violations layout); ``validate``;
                  UnitsRun (a plan over work units through a placer: InProcess here)
- ``schema_gate.py`` schema checks against every input file's schema and footer, before
                  any row is read (a failing error-severity one stops the run)
- ``progress.py`` progress reporters

The violations layout itself is io/violations.py (the checks, below this layer, write it too).
"""
