"""The engine side of two-column string comparisons and CAST(x AS VARCHAR), for tests.

The binder compiles `a <> b` over two string columns into two lookup tables of ranks in
the columns' joint dictionary (engine/strings.py: partner, joint_lut), and CAST(x AS
VARCHAR) of a non-string column into a column-table entry (x, 'varchar') read as
DuckDB's text of x (engine/sqltext.py: to_text). Building those needs three small hooks
in engine/run.py's _BatchInputs (a lookup table that reads a second column; a 'varchar'
entry over a non-string column) and Program.column_names without repeats; the binder
refuses such rules until sqltext.ENGINE_FEATURES announces them. Until run.py carries the hooks, `install` adds exactly them (the same
lines, as wrappers) so the tests exercise the whole path in every tier.
"""
from __future__ import annotations

import json

import pyarrow as pa

from batchaot.compiler import types as T
from batchaot.compiler.program import Program
from batchaot.engine import columns, run, sqltext, strings


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def install(mp) -> None:
    """Add the hooks with a pytest MonkeyPatch (no-op where run.py has them)."""
    if {"joint", "text"} <= sqltext.ENGINE_FEATURES:
        return
    column, lut, preload = run._BatchInputs.column, run._BatchInputs.lut, run._BatchInputs.preload

    def column_hook(self, name, type_text):
        key = (name, type_text)
        if key not in self._cols and type_text == "varchar":
            idx = self.batch.schema.get_field_index(name)
            if idx >= 0 and not _is_text(self.batch.schema.field(idx).type):
                # CAST(x AS VARCHAR): DuckDB's text of the values, as a string column
                self._cols[key] = columns.load(sqltext.to_text(self.batch.column(idx)), T.STRING)
        return column(self, name, type_text)

    def lut_hook(self, name, type_text, sexpr, result, wide=False):
        key = (name, json.dumps([sexpr, result]))
        other = strings.partner(sexpr)
        if other is not None and key not in self._luts:
            # two string columns: ranks in their joint dictionary
            mine = self.column(name, type_text).dictionary
            self._luts[key] = strings.joint_lut(sexpr, mine, self.column(other, "varchar").dictionary)
        return lut(self, name, type_text, sexpr, result, wide)

    def preload_hook(self, wanted, luts, submit):
        # a joint table needs both columns: lut() builds it after the preload
        return preload(self, wanted, [x for x in luts if strings.partner(x[2]) is None], submit)

    # a text column adds a second (name, 'varchar') entry to a program's column table
    mp.setattr(Program, "column_names", property(lambda p: list(dict.fromkeys(c for c, _ in p.columns))))
    mp.setattr(run._BatchInputs, "column", column_hook)
    mp.setattr(run._BatchInputs, "lut", lut_hook)
    mp.setattr(run._BatchInputs, "preload", preload_hook)
    mp.setattr(sqltext, "ENGINE_FEATURES", {"joint", "text"})
