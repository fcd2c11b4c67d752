"""A dataset's profile: its columns' profiles, candidate keys, and the run that made it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .state import ColumnProfile


@dataclass
class Profile:
    columns: list[ColumnProfile]
    rows: int
    sources: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)    # files or units that could not be read
    elapsed_s: float = 0.0
    mode: str = "in-process"
    workers: int = 1
    units: int = 0
    output: str | None = None
    job_name: str | None = None

    @property
    def candidate_keys(self) -> list[str]:
        """Columns without NULLs whose every value looks distinct (exactly, or within
        state.KEY_TOLERANCE by the sketch past state.EXACT_DISTINCT values: `unique` confirms)."""
        return [c.name for c in self.columns if c.candidate_key]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        out = {"kind": "profile", "ok": self.ok, "rows": self.rows,
               "columns": [c.to_dict() for c in self.columns],
               "candidate_keys": self.candidate_keys, "sources": self.sources, "errors": self.errors,
               "units": self.units, "mode": self.mode, "workers": self.workers,
               "elapsed_s": round(self.elapsed_s, 6)}
        if self.job_name is not None:
            out["job"] = self.job_name
        if self.output is not None:
            out["output"] = self.output
        return out

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)
