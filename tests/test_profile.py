"""Profiles (batchaot profile, kind: profile jobs) and suggested rules (batchaot suggest).

DuckDB is the oracle for what a profile says (min, max, NULL share, exact distinct
counts, lengths, top values, order); a profile over several files, units or batches
must equal the profile of their concatenation; suggested rules must pass on the data
they came from and catch each kind of defect injected into a copy of it.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot import api
from batchaot.cli import main
from batchaot.errors import SpecError
from batchaot.job import load_job
from batchaot.profile import patterns, profilers
from batchaot.profile.state import EXACT_DISTINCT
from batchaot.samples import write_orders
from batchaot.spec import parse_yaml, rules_from_document

from conftest import random_table

REPO = Path(__file__).resolve().parent.parent

def duck(sql: str, params: dict | None = None, **tables: pa.Table) -> list[tuple]:
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    return con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()


def one(sql: str, params: dict | None = None, **tables: pa.Table) -> tuple:
    return duck(sql, params, **tables)[0]


def duck_facts(table: pa.Table, column: str) -> dict:
    """What DuckDB says about one column: NaN is no min or max (the profile counts it apart)."""
    t = table.select([column])
    x = f'"{column}"'
    typ = table.schema.field(column).type
    finite = f"NOT isnan({x})" if pa.types.is_floating(typ) else "TRUE"
    row = one(f"SELECT count(*), count(*) - count({x}), min({x}) FILTER ({finite}), "
              f"max({x}) FILTER ({finite}), count(DISTINCT {x}) FROM t", t=t)
    out = dict(rows=row[0], nulls=row[1], min=row[2], max=row[3], distinct=row[4])
    if pa.types.is_string(typ):
        out["length"] = one(f"SELECT min(length({x})), max(length({x})) FROM t", t=t)
    return out


def duck_order(table: pa.Table, column: str) -> str | None:
    """increasing / non-decreasing / ... over the non-NULL values in row order."""
    t = table.select([column]).append_column("rn", pa.array(np.arange(table.num_rows)))
    x = f'"{column}"'
    flags = one(f"""SELECT count(*), bool_and(v >= p), bool_and(v > p), bool_and(v <= p), bool_and(v < p)
                           FROM (SELECT {x} AS v, lag({x}) OVER (ORDER BY rn) AS p FROM t WHERE {x} IS NOT NULL)
                           WHERE p IS NOT NULL""", t=t)
    pairs, nondec, inc, noninc, dec = flags
    if not pairs:
        return None
    if nondec and noninc:
        return "constant"
    return ("increasing" if inc else "non-decreasing" if nondec else "decreasing" if dec
            else "non-increasing" if noninc else None)


@pytest.mark.parametrize("seed", [1, 2])
def test_profile_equals_duckdb(seed: int) -> None:
    table = random_table(seed, n=400)
    found = api.profile(table)
    assert found.rows == table.num_rows
    for c in found.columns:
        want = duck_facts(table, c.name)
        assert (c.rows, c.nulls, c.distinct) == (want["rows"], want["nulls"], want["distinct"]), c.name
        assert c.distinct_exact
        assert c.min == want["min"] and c.max == want["max"], (c.name, c.min, want["min"], c.max, want["max"])
        assert c.null_fraction == pytest.approx(want["nulls"] / want["rows"])
        if "length" in want:
            assert c.length == want["length"]
        assert c.monotonic == duck_order(table, c.name), c.name
        if c.kind == "float":
            nan = pc.sum(pc.is_nan(table.column(c.name).drop_null())).as_py()
            assert c.nan == nan


def test_top_values_and_candidate_keys_equal_duckdb() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    table = pa.table({
        "id": pa.array(rng.permutation(n) + 10, pa.int64()),
        "code": pa.array(rng.choice(["a", "b", "c", "d", "e"], n, p=[.4, .3, .15, .1, .05]), pa.string()),
        "almost": pa.array(np.r_[np.arange(n - 1), [5]], pa.int64()),        # one duplicate
        "holey": pa.array(np.arange(n), pa.int64(), mask=np.arange(n) == 17),  # distinct, one NULL
    })
    found = api.profile(table)
    top = duck("SELECT code, count(*) AS k FROM t GROUP BY code ORDER BY k DESC, code", t=table)
    assert found.column("code").top == [tuple(r) for r in top]
    assert found.column("code").values == sorted(r[0] for r in top)
    assert found.candidate_keys == ["id"]
    assert found.column("id").monotonic is None


def parts_of(table: pa.Table, folder, cuts: list[int], row_group: int) -> list[str]:
    paths = []
    for k, (a, b) in enumerate(zip([0] + cuts, cuts + [table.num_rows])):
        path = str(folder / f"part-{k}.parquet")
        pq.write_table(table.slice(a, b - a), path, row_group_size=row_group)
        paths.append(path)
    return paths


def ordered_table(n: int = 3000) -> pa.Table:
    rng = np.random.default_rng(11)
    inc = np.cumsum(rng.integers(1, 4, n))
    return pa.table({
        "inc": pa.array(inc, pa.int64(), mask=rng.random(n) < 0.1),
        "nondec": pa.array(np.sort(rng.integers(0, 50, n)).astype(np.float64)),
        "dec": pa.array([f"k{v:06d}" for v in (10**6 - inc)], pa.string()),
        "sawtooth": pa.array(np.arange(n) % 1000, pa.int64()),     # resets where a file may start
        "day": pa.array(np.datetime64("2024-01-01") + (inc // 7).astype("timedelta64[D]"), pa.date32()),
        "const": pa.array(["x"] * n, pa.string()),
        "mixed": pa.array(rng.normal(size=n)),
    })


def test_merged_profile_over_files_equals_the_concatenation(tmp_path) -> None:
    table = pa.concat_tables([random_table(3, n=1500), random_table(4, n=1500)])
    table = table.append_column("rn", pa.array(np.arange(table.num_rows), pa.int64()))
    whole = api.profile(table)
    paths = parts_of(table, tmp_path, [700, 1800], row_group=256)
    merged = api.profile(paths)
    assert merged.units >= 3 and merged.rows == table.num_rows
    assert [c.to_dict() for c in merged.columns] == [c.to_dict() for c in whole.columns]
    assert merged.column("rn").monotonic == "increasing"


def test_order_across_files_is_that_of_their_concatenation(tmp_path) -> None:
    table = ordered_table()
    whole = api.profile(table)
    assert {c.name: c.monotonic for c in whole.columns} == {n: duck_order(table, n) for n in table.column_names}
    assert [whole.column(n).monotonic for n in ("inc", "nondec", "dec", "const")] == \
        ["increasing", "non-decreasing", "decreasing", "constant"]
    # files cut where the sawtooth resets: each file alone is increasing, the whole is not
    merged = api.profile(parts_of(table, tmp_path, [1000, 2000], row_group=128))
    assert [c.to_dict() for c in merged.columns] == [c.to_dict() for c in whole.columns]
    assert merged.column("sawtooth").monotonic is None


def test_any_split_and_merge_order_gives_the_same_profile() -> None:
    table, extra = random_table(5, n=600), ordered_table(600)
    for name, col in zip(extra.column_names, extra.columns):
        table = table.append_column(f"o_{name}", col)
    rng = random.Random(3)
    for check in profilers(table.schema):
        want = check.finish(check.merge([check.map(b, "<t>", 0) for b in [table.combine_chunks().to_batches()[0]]]))
        for _ in range(3):
            partials, start = [], 0
            while start < table.num_rows:
                n = rng.randint(1, 120)
                batch = table.slice(start, n).combine_chunks().to_batches()[0]
                partials.append(check.map(batch, "<t>", start))
                start += n
            while len(partials) > 1:           # merge random groups in random order
                rng.shuffle(partials)
                k = rng.randint(2, min(4, len(partials)))
                partials = [check.merge(partials[:k])] + partials[k:]
            got = check.finish(partials[0])
            assert got.column.to_dict() == want.column.to_dict(), check.column


def test_distinct_past_the_exact_limit_is_a_sketch_within_its_error(monkeypatch) -> None:
    from batchaot.profile import state
    monkeypatch.setattr(state, "EXACT_DISTINCT", 500)
    n = 5000
    table = pa.table({"k": pa.array(np.arange(n) * 7, pa.int64()), "few": pa.array(np.arange(n) % 300)})
    found = api.profile(table)
    k, few = found.column("k"), found.column("few")
    assert not k.distinct_exact and abs(k.distinct - n) <= 0.03 * n and k.distinct_upper >= k.distinct
    assert k.candidate_key                      # `unique` confirms it before it is suggested
    assert few.distinct_exact and few.distinct == 300
    assert EXACT_DISTINCT == 10_000             # the default is untouched


# --- patterns ------------------------------------------------------------------------------

@pytest.mark.parametrize("values, want", [
    (["ABC", "XYZ", "QQA"], "^[A-Z]{3}$"),
    (["12345", "00000", "99501"], "^[0-9]{5}$"),
    (["SKU-0012", "SKU-9381"], "^SKU-[0-9]{4}$"),
    (["user1", "user12345", "user77"], "^user[0-9]{1,5}$"),
    (["a.b1", "c.d2"], "^[a-z]\\.[a-z][0-9]$"),
    (["AB12", "ab12"], "^[A-Za-z]{2}12$"),
    (["x@y", "long@domain"], None),          # lengths vary in the middle
    (["same", "same"], None),                # no class at all: a value, not a pattern
    (["tab\there", "tab here"], None),       # not printable ASCII
    (["été", "ete"], None),
])
def test_patterns(values: list[str], want: str | None) -> None:
    arr = pa.array(values)
    lengths = pc.utf8_length(arr)
    got = patterns.regex(patterns.seen(arr), pc.min(lengths).as_py(), pc.max(lengths).as_py())
    assert got == want
    if got is not None:
        assert one(f"SELECT bool_and(regexp_matches(v, '{got}')) FROM t", t=pa.table({"v": arr}))[0]


def test_a_found_pattern_matches_every_value_in_duckdb() -> None:
    rng = random.Random(5)
    alphabets = ["ABC", "0123456789", "abcXYZ", "-_.", "AB01"]
    found = 0
    for _ in range(60):
        shape = [rng.choice(alphabets) for _ in range(rng.randint(1, 6))]
        values = ["".join(rng.choice(a) for a in shape[:rng.randint(max(1, len(shape) - 2), len(shape))])
                  for _ in range(rng.randint(1, 30))]
        arr = pa.array(values)
        lengths = pc.utf8_length(arr)
        got = patterns.regex(patterns.seen(arr), pc.min(lengths).as_py(), pc.max(lengths).as_py())
        if got is None:
            continue
        found += 1
        assert one("SELECT bool_and(regexp_matches(v, $p)) FROM t", {"p": got}, t=pa.table({"v": arr}))[0], \
            (values, got)
    assert found > 10


# --- suggest ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo orders (20,000 rows), its repeated order ids dropped (the demo repeats a
    few on purpose) so order_id is a key, with a product code column (`sku`: 400 codes
    like 'QXB-0417') for patterns."""
    root = tmp_path_factory.mktemp("suggest")
    (path,) = write_orders(str(root / "demo"), 20_000, with_customers=False)
    table = pq.read_table(path)
    _, first = np.unique(table.column("order_id").to_numpy(), return_index=True)
    table = table.take(pa.array(np.sort(first)))
    rng = np.random.default_rng(9)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = np.array(["".join(rng.choice(letters, 3)) + f"-{rng.integers(0, 10**4):04d}" for _ in range(400)])
    table = table.append_column("sku", pa.array(codes[rng.integers(0, 400, table.num_rows)]))
    clean = root / "clean.parquet"
    pq.write_table(table, clean, row_group_size=8192)
    rules = root / "rules.yaml"
    result = api.suggest(str(clean), output=str(rules))
    return root, table, clean, rules, result


def test_suggested_rules_pass_on_their_data_and_say_why(demo) -> None:
    root, table, clean, rules, suggested = demo
    assert suggested.dropped == []
    text = rules.read_text()
    assert text == suggested.text
    checked = batchaot.validate(str(clean), str(rules))
    assert checked.ok and all(r.passed for r in checked.rules)
    names = {r.spec.name: r.spec for r in checked.rules}
    assert {"row_count_expected", "order_id_unique", "order_id_not_null", "amount_range", "status_known_values",
            "sku_pattern", "email_length", "created_at_range"} <= set(names)
    assert "amount_not_null" not in names              # the demo's amounts have NULLs ...
    nulls = table.column("email").null_count          # ... and its emails about 1 %
    assert names["email_mostly_present"].mostly == math.floor((1 - nulls / table.num_rows) * 100) / 100 == 0.98
    assert names["sku_pattern"].body == "regexp_matches(sku, '^[A-Z]{3}-[0-9]{4}$')"
    lines = text.splitlines()
    for i, line in enumerate(lines):                   # every rule under the comment saying why
        if line.startswith("  - {"):
            assert lines[i - 1].startswith("  # "), line


def inject(table: pa.Table, column: str, rows: list[int], value) -> pa.Table:
    values = table.column(column).to_pylist()
    for r in rows:
        values[r] = value(values, r) if callable(value) else value
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, pa.array(values, table.schema.field(column).type))


def violations_in_duckdb(table: pa.Table, check: str) -> int:
    return one(f"SELECT count(*) FILTER (WHERE NOT ({check})) FROM t", t=table)[0]


DEFECTS = {
    # rule the defect must trip: (column, rows, the value written there)
    "quantity_not_null": ("quantity", [3, 500, 19_000], None),
    "email_mostly_present": ("email", list(range(0, 6000, 3)), None),     # 2,000 more NULLs: 11 % in all
    "amount_range": ("amount", [10, 20, 30, 40], 1e7),
    "status_known_values": ("status", [7, 70, 700, 7000, 17_000], "teleported"),
    "order_id_unique": ("order_id", [100], lambda values, r: values[r + 1]),
    "sku_pattern": ("sku", [5, 6], lambda values, r: ["QXB-04170", "qxb-0417"][r - 5]),
}


@pytest.mark.parametrize("rule", sorted(DEFECTS))
def test_suggested_rules_flag_each_injected_defect(demo, rule: str) -> None:
    root, table, clean, rules, _ = demo
    column, rows, value = DEFECTS[rule]
    bad = inject(table, column, rows, value)
    result = batchaot.validate(bad, str(rules))
    failing = {r.spec.name: r.summary() for r in result.rules if not r.passed}
    assert set(failing) == {rule} and not result.ok
    found = failing[rule]["violations"]
    if rule == "order_id_unique":
        assert found == 2 * len(rows)                 # the row and the one whose id it took
        assert one("SELECT count(*) FROM t WHERE order_id IN "
                   "(SELECT order_id FROM t GROUP BY order_id HAVING count(*) > 1)", t=bad)[0] == found
    elif rule == "quantity_not_null":
        assert found == len(rows) == bad.column("quantity").null_count
    elif rule == "email_mostly_present":                # every NULL row is listed, old and new
        assert found == bad.column("email").null_count == one("SELECT count(*) - count(email) FROM t", t=bad)[0]
        assert found >= len(rows)
    else:
        spec = next(r.spec for r in result.rules if r.spec.name == rule)
        assert found == len(rows) == violations_in_duckdb(bad, spec.body)


def test_a_suggestion_that_fails_on_its_data_is_dropped_and_listed(tmp_path, monkeypatch) -> None:
    """A candidate key found by the sketch (past the exact limit) that has a duplicate:
    `unique` runs before the rule is kept, finds it and drops it."""
    from batchaot.profile import state
    monkeypatch.setattr(state, "EXACT_DISTINCT", 100)
    n = 4000
    ids = np.arange(n, dtype=np.int64)
    ids[-1] = ids[0]
    table = pa.table({"id": ids})
    found = api.suggest(table)
    assert found.profile.column("id").candidate_key and not found.profile.column("id").distinct_exact
    assert [(s.name, why) for s, why in found.dropped] == [("id_unique", "2 violating row(s)")]
    assert "id_unique" not in {s.name for s in found.kept}
    assert "#   id_unique: 2 violating row(s)" in found.text
    checked = batchaot.validate(table, rules_from_document(parse_yaml(found.text, "x"), "x"))
    assert checked.ok


def test_odd_column_names_get_quoted_sql_and_plain_rule_names() -> None:
    table = pa.table({"Order Date": pa.array([dt.date(2024, 1, d) for d in range(1, 29)]),
                      "select": pa.array(["a", "b"] * 14), "x-y": pa.array(np.arange(28) * 1.5)})
    found = api.suggest(table)
    assert found.dropped == []
    by = {s.name: s.rule for s in found.kept}
    assert by["Order_Date_range"]["check"].startswith('"Order Date" BETWEEN DATE')
    assert by["select_known_values"]["check"] == "\"select\" IN ('a', 'b')"
    assert by["x_y_range"]["check"] == '"x-y" BETWEEN 0 AND 41'


def test_suggest_on_awkward_columns_keeps_only_rules_that_run() -> None:
    n = 50
    table = pa.table({
        "big": pa.array([2 ** 63 - 5 - i for i in range(n)], pa.int64()),      # rounding would leave BIGINT
        "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i) for i in range(n)],
                       pa.timestamp("us", tz="UTC")),
        # 23:30 UTC on Dec 31 is already Jan 1 in Berlin: the bounds are UTC days
        "berlin": pa.array([dt.datetime(2023, 12, 31, 23, 30) + dt.timedelta(hours=i) for i in range(n)],
                           pa.timestamp("s")).cast(pa.timestamp("s", tz="UTC"))
                   .cast(pa.timestamp("s", tz="Europe/Berlin")),
        "nested": pa.array([[1, 2]] * n),
        "nan": pa.array([float("nan")] * n),
        "empty": pa.nulls(n, pa.int64()),
    })
    found = api.suggest(table)
    assert found.dropped == []
    by = {s.name: s.rule for s in found.kept}
    assert by["big_range"]["check"] == f"big BETWEEN 9200000000000000000 AND {2 ** 63 - 5}"
    assert by["at_range"]["check"].startswith("at >= TIMESTAMPTZ '2024-01-01 00:00:00+00'")
    assert by["berlin_range"]["check"] == ("berlin >= TIMESTAMPTZ '2023-12-31 00:00:00+00' "
                                           "AND berlin < TIMESTAMPTZ '2024-01-04 00:00:00+00'")
    assert not {n for n in by if n.startswith(("nested_", "empty_"))} - {"nested_not_null"}
    assert "nan_range" not in by
    with pytest.raises(batchaot.DataError, match="empty dataset"):
        api.suggest(table.slice(0, 0))


# --- jobs and the command line -----------------------------------------------------------

def profile_job(root, paths_glob: str, extra: str = "") -> str:
    job = root / "profile.yaml"
    job.write_text(f"name: orders-profile\nkind: profile\nsource: {{path: '{paths_glob}'}}\n{extra}")
    return str(job)


def test_a_profile_job_runs_in_process_and_writes_its_summary(tmp_path) -> None:
    write_orders(str(tmp_path / "multi"), 9000, files=3)
    job = profile_job(tmp_path, "multi/*.parquet", "output: {path: out}\n")
    found = batchaot.Job.from_yaml(job).run(mode="in-process")
    assert found.mode == "in-process" and found.rows == 9000 and len(found.sources) == 3
    whole = api.profile(pa.concat_tables([pq.read_table(p) for p in found.sources]))
    assert [c.to_dict() for c in found.columns] == [c.to_dict() for c in whole.columns]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["columns"] == [c.to_dict() for c in whole.columns] and summary["job"] == "orders-profile"
    cli = CliRunner().invoke(main, ["submit", job, "--mode", "in-process", "--json"], catch_exceptions=False)
    assert cli.exit_code == 0 and json.loads(cli.stdout)["columns"] == summary["columns"]


def test_an_unreadable_file_is_named_and_the_rest_profiled(tmp_path) -> None:
    write_orders(str(tmp_path / "multi"), 3000, files=3)
    (tmp_path / "multi" / "orders-001.parquet").write_bytes(b"PAR1 not parquet at all")
    found = batchaot.Job.from_yaml(profile_job(tmp_path, "multi/*.parquet")).run(mode="in-process")
    assert found.exit_code == 1 and len(found.errors) == 1 and "orders-001.parquet" in found.errors[0]
    assert found.rows == 2000 and found.column("order_id").rows == 2000
    with pytest.raises(batchaot.DataError, match="could not all be read"):
        api.suggest(str(tmp_path / "multi" / "*.parquet"))


def test_the_example_profile_job_loads() -> None:
    job = load_job(str(REPO / "jobs" / "orders_profile.yaml"))
    assert job.kind == "profile" and job.rules == () and job.source.paths[0].endswith("multi/*.parquet")


def test_profile_job_mistakes_are_named(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("name: p\nkind: profile\n")
    with pytest.raises(SpecError, match="needs a 'source'"):
        load_job(str(tmp_path / "a.yaml"))
    (tmp_path / "b.yaml").write_text("name: p\nkind: profile\nsource: x.parquet\nrules:\n  - {name: a, check: 'x > 0'}\n")
    with pytest.raises(SpecError, match="takes no rules"):
        load_job(str(tmp_path / "b.yaml"))


def test_cli_profile_and_suggest(demo, tmp_path) -> None:
    root, table, clean, rules, suggested = demo
    runner = CliRunner()
    shown = runner.invoke(main, ["profile", str(clean)], catch_exceptions=False)
    assert shown.exit_code == 0 and "candidate keys: order_id" in shown.stdout
    as_json = runner.invoke(main, ["profile", str(clean), "--json"], catch_exceptions=False)
    assert json.loads(as_json.stdout)["candidate_keys"] == ["order_id"]
    out = tmp_path / "rules.yaml"
    made = runner.invoke(main, ["suggest", str(clean), "-o", str(out)], catch_exceptions=False)
    assert made.exit_code == 0 and out.read_text() == rules.read_text()
    printed = runner.invoke(main, ["suggest", str(clean)], catch_exceptions=False)
    assert printed.stdout == rules.read_text()
    missing = runner.invoke(main, ["profile", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 2 and "nope.parquet" in missing.stderr


def test_a_profile_job_on_ray_equals_in_process(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    write_orders(str(tmp_path / "multi"), 6000, files=3)
    job = batchaot.Job.from_yaml(profile_job(tmp_path, "multi/*.parquet"))
    local = job.run(mode="in-process")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = job.run(mode="ray", workers=2)
    finally:
        ray.shutdown()
    assert remote.mode == "ray" and remote.workers == 2
    assert [c.to_dict() for c in remote.columns] == [c.to_dict() for c in local.columns]
