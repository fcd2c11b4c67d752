"""The Python API: validate(), compile(), Program and Result."""
from __future__ import annotations

import dataclasses
import decimal
import json
import os

import numpy as np
import pyarrow as pa
import pytest

import batchaot
from batchaot.compiler import compile_rule, twin
from batchaot.errors import DataError, RuleError

TABLE = pa.table({"amount": pa.array([10.0, -1.0, None, 3.5]), "qty": pa.array([1, 0, 2, None]),
                  "status": ["paid", "new", None, "weird"]})
RULES = [{"name": "positive", "check": "amount > 0"},
         {"name": "qty_set", "check": "qty >= 1", "strict": True, "severity": "warn"},
         {"name": "status_ok", "check": "status IN ('paid', 'new')", "mostly": 0.7}]


def test_result_summary_violations_and_json() -> None:
    res = batchaot.validate(TABLE, RULES)
    assert not res.ok and res.exit_code == 1 and res.rows == 4
    summary = {r["name"]: r for r in res.summary.to_pylist()}
    assert {"name", "severity", "passed", "violations"} <= set(res.summary.column_names)
    assert summary["positive"]["violations"] == 1 and summary["positive"]["null_rows"] == 1
    assert summary["qty_set"]["violations"] == 2          # strict: qty 0 and NULL
    assert summary["status_ok"]["violations"] == 1 and summary["status_ok"]["passed"]  # 75% >= mostly
    v = res.violations
    assert v.column_names[:3] == ["rule", "source", "row"]      # io/violations.py: one layout
    rows = {(r["rule"], r["row"]) for r in v.to_pylist()}
    assert rows == {("positive", 1), ("qty_set", 1), ("qty_set", 3), ("status_ok", 3)}
    assert v.filter(pa.compute.equal(v["rule"], "status_ok"))["status"].to_pylist() == ["weird"]
    doc = json.loads(res.to_json())
    assert doc["ok"] is False and [r["name"] for r in doc["rules"]] == ["positive", "qty_set", "status_ok"]


def test_record_batch_and_warn_only_pass() -> None:
    batch = TABLE.to_batches()[0]
    res = batchaot.validate(batch, [{"name": "w", "check": "amount > 100", "severity": "warn"}])
    assert res.ok and res.to_dict()["rules"][0]["violations"] == 3


def test_violation_row_numbers_are_global_across_batches() -> None:
    n = 50_000
    t = pa.table({"x": np.arange(n)})
    t = pa.concat_tables([t.slice(0, 20_000), t.slice(20_000)])
    res = batchaot.validate(t, [{"name": "r", "check": "x % 9999 <> 0"}])
    assert res.violations["row"].to_pylist() == list(range(0, n, 9999))


def test_program_is_immutable_serializable_and_hashed() -> None:
    p = batchaot.compile("amount * 2 > qty + 1 AND status LIKE 'p%'", TABLE, name="r")
    q = batchaot.Program.from_bytes(p.to_bytes())
    assert q.hash == p.hash and q.to_bytes() == p.to_bytes()
    assert np.array_equal(q.code, p.code) and q.disassemble() == p.disassemble()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"
    with pytest.raises(ValueError):
        p.code[0, 0] = 0
    assert batchaot.compile("amount > 1", TABLE).hash != batchaot.compile("amount > 2", TABLE).hash
    assert batchaot.compile("amount > 1", TABLE).hash == batchaot.compile("amount > 1", TABLE).hash


def test_native_and_twin_optimizers_agree_on_real_rules() -> None:
    for sql in ("amount > 0", "qty BETWEEN 1 AND 2 + 3", "status = 'paid' OR 1 = 1",
                "CASE WHEN qty > 1 THEN amount ELSE 0 END > 0", "coalesce(amount, 0) >= 0 AND NOT (qty IS NULL)"):
        a = compile_rule("r", sql, TABLE.schema)
        b = compile_rule("r", sql, TABLE.schema, optimizer=twin)
        assert (a.optimizer, b.optimizer) == ("native", "twin")
        assert np.array_equal(a.code, b.code) and np.array_equal(a.kval, b.kval), sql
        assert np.array_equal(a.kvalid, b.kvalid) and a.removed == b.removed, sql
        assert a.verdict == b.verdict and a.hash == b.hash, sql


def test_zero_tick_rule_never_runs_and_passes() -> None:
    res = batchaot.validate(TABLE, [{"name": "z", "check": "amount > 0 OR TRUE"}])
    (rule,) = res.to_dict()["rules"]
    assert rule["zero_tick"] and rule["passed"] and rule["instructions"] == 2


def test_decimals_are_exact_or_refused() -> None:
    t = pa.table({"price": pa.array([decimal.Decimal("0.10"), decimal.Decimal("0.30")], pa.decimal128(12, 2))})
    res = batchaot.validate(t, [{"name": "r", "check": "price * 3 <> 0.30"}])
    assert res.to_dict()["rules"][0]["violations"] == 1     # exact: 0.10 * 3 = 0.30
    wide = pa.table({"p": pa.array([decimal.Decimal("1.5")], pa.decimal128(38, 2))})
    with pytest.raises(RuleError, match="precision above 18"):
        batchaot.validate(wide, [{"name": "r", "check": "p > 1"}])


def test_bad_data_arguments() -> None:
    with pytest.raises(DataError, match="cannot validate a dict"):
        batchaot.validate({"a": 1}, RULES)
    empty = batchaot.validate(TABLE.slice(0, 0), RULES)     # empty data is data: row rules pass
    assert empty.ok and empty.rows == 0 and empty.violations.num_rows == 0
    with pytest.raises(RuleError, match="unknown key column 'qyt' \\(did you mean 'qty'\\?\\)"):
        batchaot.validate(TABLE, [{"name": "u", "unique": ["qyt"]}])
    with pytest.raises(RuleError, match="dataset-level check, not a row rule"):
        batchaot.compile({"name": "u", "unique": ["qty"]}, TABLE)


def test_a_rules_file_compiles_once_then_loads_without_the_parser(tmp_path) -> None:
    """validate(data, "rules.yaml") keeps its row rules' Programs in the program cache: a
    second process finds them all there, gives the same answer and never imports sqlglot;
    a compiler that changed (another fingerprint) compiles them again."""
    import os
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from batchaot.samples import orders
    pq.write_table(orders(5_000, seed=3), tmp_path / "orders.parquet")
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: positive, check: 'amount > 0'}\n"
        "  - {name: known, check: \"status IN ('new', 'paid')\"}\n"
        "  - {name: email, check: \"email LIKE '%@%'\"}\n")
    code = ("import sys, json, batchaot; r = batchaot.validate(sys.argv[1], sys.argv[2]); "
            "print(json.dumps([[x['name'], x['violations']] for x in r.to_dict()['rules']] + "
            "['sqlglot' in sys.modules]))")
    env = dict(os.environ, BATCHAOT_CACHE_DIR=str(tmp_path / "cache"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code, str(tmp_path / "orders.parquet"),
                                       str(tmp_path / "rules.yaml")], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    first, second = runs
    assert first[-1] is True and second[-1] is False        # parsed once, loaded after
    assert first[:-1] == second[:-1] and sum(n for _, n in first[:-1]) > 0
    table = pq.read_table(tmp_path / "orders.parquet")
    fresh = batchaot.validate(table, [
        {"name": "positive", "check": "amount > 0"}, {"name": "known", "check": "status IN ('new', 'paid')"},
        {"name": "email", "check": "email LIKE '%@%'"}])
    assert [n for _, n in second[:-1]] == [r["violations"] for r in fresh.to_dict()["rules"]]


def test_a_changed_compiler_misses_the_program_cache(tmp_path, monkeypatch) -> None:
    from batchaot.compiler import cache, compile_rules
    from batchaot.spec import parse_rule
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path))
    schema = pa.schema([("amount", pa.float64())])
    spec = parse_rule({"name": "positive", "check": "amount > 0"}, 0, "<test>")
    (program,) = compile_rules([spec], schema, cached=True)
    hits = []
    real_get = cache.ProgramCache.get
    monkeypatch.setattr(cache.ProgramCache, "get", lambda self, k: hits.append(real_get(self, k)) or hits[-1])
    assert compile_rules([spec], schema, cached=True)[0].code.tolist() == program.code.tolist()
    monkeypatch.setattr(cache, "compiler_fingerprint", lambda: b"another compiler")
    compile_rules([spec], schema, cached=True)
    assert hits[0] is not None and hits[1] is None


def test_a_rule_that_reads_the_clock_is_compiled_at_every_run(tmp_path, monkeypatch) -> None:
    """current_date compiles to the run's date: such a Program is never stored, so a
    later run (another day) never loads yesterday's constant; other rules are stored."""
    import datetime as dt

    from batchaot.compiler import clock, compile_rules
    from batchaot.spec import parse_rule
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path))
    schema = pa.schema([("d", pa.date32()), ("x", pa.int64())])
    # the comment keeps the key's instant guard (a regex) from seeing the clock call
    dated = parse_rule({"name": "recent", "check": "d >= current_date - 1 OR d >= now/**/()"}, 0, "<test>")
    plain = parse_rule({"name": "positive", "check": "x > 0"}, 1, "<test>")
    day1, day2 = dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc), dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    with clock.fixed(day1):
        compile_rules([dated, plain], schema, cached=True)
    stored = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".baot")]
    assert len(stored) == 1                      # the plain rule only
    with clock.fixed(day2):
        (program, _) = compile_rules([dated, plain], schema, cached=True)
    assert program.kval.tolist() == compile_rule_at(dated, schema, day2).kval.tolist()
    assert program.kval.tolist() != compile_rule_at(dated, schema, day1).kval.tolist()


def compile_rule_at(spec, schema, instant):
    from batchaot.compiler import clock
    with clock.fixed(instant):
        return compile_rule(spec.name, spec.body, schema)


def test_the_compiler_accepts_the_same_rules_whatever_was_imported_first() -> None:
    """Rules that need the engine's features (two string columns compared, the text of a
    column) compile in a process that imported only the compiler."""
    import subprocess
    import sys
    code = ("import pyarrow as pa; from batchaot.compiler import compile_rule; "
            "s = pa.schema([('a', pa.int64()), ('b', pa.string()), ('c', pa.string())]); "
            "compile_rule('t', \"CAST(a AS VARCHAR) LIKE '1%'\", s); compile_rule('j', 'b < c', s); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-1500:]
