"""Profiling a dataset and suggesting rules from its profile.

- ``state.py``    one column's profile as a mergeable state (map a batch, merge, finish)
- ``patterns.py`` character-class patterns (``^[A-Z]{3}$``) from per-position byte sets
- ``check.py``    ColumnProfiler: the state as a dataset check, so the runtime runs it
                  (in this process or on Ray workers) like any other check
- ``summary.py``  Profile: the columns' profiles, candidate keys, the run
- ``suggest.py``  rules a person would keep, from a Profile, as commented YAML

This package sits beside checks/: it imports checks, io and spec, never the runtime;
running a profile is distributed/profile_job.py's, verifying suggestions api.py's.
"""
from __future__ import annotations

from .check import ColumnProfiler, ProfileOutcome, profilers
from .state import ColumnProfile
from .summary import Profile

__all__ = ["ColumnProfile", "ColumnProfiler", "Profile", "ProfileOutcome", "profilers"]
