"""String fast paths (engine/strings/: byte DFAs, literal sets, length) give the answers
of pyarrow.compute (RE2) and of DuckDB: NULLs, empty strings, multi-byte UTF-8, newlines,
strings full of pattern characters, LIKE escapes, random LIKE patterns and regexes; per
row and per dictionary value; VM and fused; one thread and two."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import batchaot
from batchaot.engine import columns, run, strings
from batchaot.compiler import types as T

pytestmark = pytest.mark.usefixtures("kernel_cache")

# characters that matter to LIKE and regexes, multi-byte UTF-8 (2, 3, 4 bytes), newline
ALPHABET = ["a", "b", "A", "@", ".", "%", "_", "\\", "-", " ", "\n", "é", "Ü", "日", "😀", "x"]


def random_strings(rng: np.random.Generator, n: int, null_rate: float = 0.1, max_len: int = 10) -> pa.Array:
    out = []
    for _ in range(n):
        k = int(rng.integers(0, max_len + 1))
        out.append("".join(rng.choice(ALPHABET, k)))
    mask = rng.random(n) < null_rate
    return pa.array(out, pa.string(), mask=mask)


def fast_values(sexpr: list, values: pa.Array) -> list:
    """The kernel's lookup table for `values` (without its NULL entry), as Python values."""
    plan = strings.fast_plan(sexpr)
    assert plan is not None, sexpr
    n = len(values)
    words = np.full(n + 1, 7, dtype=np.int64)
    valid = np.full(n + 1, 7, dtype=np.uint8)
    strings.run_fast(plan, strings.string_buffers(values), words, valid, 0, n)
    return [int(w) if v else None for w, v in zip(words[:n], valid[:n])]


def arrow_values(sexpr: list, values: pa.Array) -> list:
    """The same expression with pyarrow.compute: the reference."""
    out = strings.evaluate(sexpr, values)
    return [None if x is None else int(x) for x in pc.cast(out, pa.int64()).to_pylist()]


def agree(sexpr: list, values: pa.Array) -> None:
    assert fast_values(sexpr, values) == arrow_values(sexpr, values), sexpr


VALUES = random_strings(np.random.default_rng(1), 3000)
EDGE = pa.array(["", None, "a", "@", "@@", "a@b", "a@b@c", "é@日", "a\nb", "a\n", "\n", "%", "_",
                 "\\", "a%b", "a_b", "a\\b", "😀", "😀😀", "ab" * 40, "x" * 9 + "@" + "y" * 9,
                 "SKU-1", "SKU-", "SKU", "sku-1", "paid", "paid ", "PAID"], pa.string())


# --- which expressions get a kernel ------------------------------------------------

@pytest.mark.parametrize("sexpr", [
    ["like", ["col"], "%@%.%", False, None], ["like", ["col"], "a\\_b", False, "\\"],
    ["starts_with", ["col"], "SKU-"], ["regexp", ["col"], "^[^@]+@[^@]+$"],
    ["regexp", ["col"], "URGENT|ASAP"], ["regexp", ["col"], "^(?:ab|c)+x{2,3}\\.$"],
    ["in", ["col"], ["new", "paid", None]], ["cmp", "eq", ["col"], ["lit", "paid"]],
    ["cmp", "ne", ["lit", "paid"], ["col"]], ["length", ["col"]],
])
def test_common_expressions_have_a_kernel(sexpr) -> None:
    assert strings.fast_plan(sexpr) is not None


@pytest.mark.parametrize("sexpr", [
    ["like", ["col"], "a%", True, None],                   # ILIKE: Unicode case folding
    ["like", ["lower", ["col"]], "a%", False, None],       # not the column itself
    ["regexp", ["col"], "(?i)abc"], ["regexp", ["col"], "\\d+"], ["regexp", ["col"], "\\bx"],
    ["regexp", ["col"], "a^b"], ["regexp", ["col"], "^a|b$"], ["regexp", ["col"], "[[:alpha:]]"],
    ["regexp", ["col"], "a{1000}"], ["regexp", ["col"], "[]a]"],
    ["regexp", ["col"], "a{,2}"], ["regexp", ["col"], "(a"], ["regexp", ["col"], "a**"],
    ["cmp", "lt", ["col"], ["lit", "m"]], ["cmp", "eq", ["col"], ["lit", None]],
])
def test_other_expressions_stay_with_pyarrow(sexpr) -> None:
    assert strings.fast_plan(sexpr) is None


# --- kernels against pyarrow.compute ---------------------------------------------------

@pytest.mark.parametrize("sexpr", [
    ["like", ["col"], "%@%.%", False, None], ["like", ["col"], "%", False, None],
    ["like", ["col"], "", False, None], ["like", ["col"], "_", False, None],
    ["like", ["col"], "__", False, None], ["like", ["col"], "a%b", False, None],
    ["like", ["col"], "%\n%", False, None], ["like", ["col"], "a\\%%", False, "\\"],
    ["like", ["col"], "%\\\\", False, "\\"], ["like", ["col"], "a\\", False, "\\"],
    ["like", ["col"], "é_%", False, None], ["like", ["col"], "%日", False, None],
    ["like", ["col"], "%😀_", False, None], ["like", ["col"], "aa%", False, "a"],
    ["starts_with", ["col"], "a"], ["starts_with", ["col"], ""], ["starts_with", ["col"], "é"],
    ["starts_with", ["col"], "SKU-"], ["starts_with", ["col"], "abababababab"],
    ["regexp", ["col"], "^[^@]+@[^@]+$"], ["regexp", ["col"], "a.b"], ["regexp", ["col"], "^.$"],
    ["regexp", ["col"], "^..$"], ["regexp", ["col"], "b$"], ["regexp", ["col"], "^$"],
    ["regexp", ["col"], ""], ["regexp", ["col"], "[^a]"], ["regexp", ["col"], "^[^a-z\\n]*$"],
    ["regexp", ["col"], "(a|@)+\\."], ["regexp", ["col"], "^a?b?$"], ["regexp", ["col"], "x{2}"],
    ["regexp", ["col"], "^[a-b%_]{1,3}$"], ["regexp", ["col"], "\\\\|\\%"],
    ["regexp", ["col"], "^(?:a|b|)+$"], ["regexp", ["col"], "a.*?b"], ["regexp", ["col"], "[-@]"],
    ["regexp", ["col"], "é+"], ["regexp", ["col"], "^.日.$"], ["regexp", ["col"], "[^a]😀"],
    ["in", ["col"], ["a", "", "@", "é@日"]], ["in", ["col"], ["a", None]], ["in", ["col"], [None]],
    ["in", ["col"], ["ab" * 40, "😀😀", "paid"]],
    ["cmp", "eq", ["col"], ["lit", ""]], ["cmp", "ne", ["col"], ["lit", "a"]],
    ["cmp", "eq", ["lit", "😀"], ["col"]], ["length", ["col"]],
])
def test_kernel_equals_pyarrow(sexpr) -> None:
    agree(sexpr, VALUES)
    agree(sexpr, EDGE)
    agree(sexpr, VALUES.slice(17, 500))           # an array offset into the buffers
    agree(sexpr, pa.array([], pa.string()))


def test_large_string_and_all_empty_buffers() -> None:
    agree(["like", ["col"], "%a%", False, None], VALUES.cast(pa.large_string()))
    agree(["length", ["col"]], VALUES.cast(pa.large_string()))
    agree(["regexp", ["col"], "^$"], pa.array(["", None, ""], pa.string()))
    agree(["length", ["col"]], pa.array([None, None], pa.string()))


def test_ascii_and_non_ascii_lengths_in_one_array() -> None:
    values = pa.array(["abc"] * 100 + ["日本語"] + [None] + ["é" * 50], pa.string())
    agree(["length", ["col"]], values)
    agree(["length", ["col"]], values.slice(0, 100))   # an all-ASCII range


def test_skip_states_stop_on_every_byte_of_a_word() -> None:
    """The 8-bytes-at-a-time scan must find a stop byte in any position of a word."""
    values = pa.array(["x" * k + "@" + "y" * m + "." + "z" * k for k in range(20) for m in range(10)]
                      + ["x" * k + "é" + "@" for k in range(20)], pa.string())
    for sexpr in (["like", ["col"], "%@%.%", False, None], ["regexp", ["col"], "^[^@]+@[^@.]+\\.[^.]+$"],
                  ["regexp", ["col"], "é@$"], ["like", ["col"], "%é@", False, None]):
        agree(sexpr, values)


SPARSE = [["regexp", ["col"], "^[^@]+@[^@]+$"], ["like", ["col"], "%@%.%", False, None],
          ["regexp", ["col"], "^[^@]+@[^@.]+\\.[^@.]+$"], ["like", ["col"], "%a%", False, None],
          ["regexp", ["col"], "\\n"], ["like", ["col"], "%", False, None], ["regexp", ["col"], "@$"]]


@pytest.mark.parametrize("sexpr", SPARSE)
def test_sparse_and_dense_automata_agree(sexpr) -> None:
    """Patterns where only a few bytes matter run on the sparse kernel; the dense one
    must give the same answers."""
    import dataclasses
    plan = strings.fast_plan(sexpr)
    assert plan.dfa.sparse is not None
    dense = dataclasses.replace(plan, dfa=dataclasses.replace(plan.dfa, sparse=None))
    # long rows: a row's special bytes are read 56 at a time, and a slice starts mid-buffer
    long = random_strings(np.random.default_rng(2), 400, max_len=150)
    for values in (VALUES, EDGE, VALUES.slice(5, 77), long, long.slice(33, 200)):
        n = len(values)
        got = [np.zeros(n + 1, np.int64), np.zeros(n + 1, np.uint8)]
        want = [np.zeros(n + 1, np.int64), np.zeros(n + 1, np.uint8)]
        strings.run_fast(plan, strings.string_buffers(values), *got, 0, n)
        strings.run_fast(dense, strings.string_buffers(values), *want, 0, n)
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all()
        agree(sexpr, values)


def test_dense_automata_where_runs_are_not_all_alike() -> None:
    for sexpr in (["regexp", ["col"], "a.b"], ["like", ["col"], "SKU-%", False, None],
                  ["regexp", ["col"], "URGENT|ASAP"], ["like", ["col"], "%é%", False, None]):
        assert strings.fast_plan(sexpr).dfa.sparse is None


LIKE_CHARS = st.sampled_from(["a", "b", "@", ".", "%", "_", "\\", "é", "日", "😀", "\n"])


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=st.lists(LIKE_CHARS, max_size=8).map("".join), escape=st.sampled_from([None, "\\", "a"]))
def test_random_like_patterns_equal_pyarrow(pattern: str, escape) -> None:
    agree(["like", ["col"], pattern, False, escape], VALUES)


@st.composite
def regexes(draw, depth: int = 2) -> str:
    """Patterns inside the DFA subset (and some RE2 accepts in other ways)."""
    def atom(d):
        options = [st.sampled_from(["a", "b", "@", ".", "\\.", "\\\\", "\\%", "_", "-", " ", "é", "\\n"]),
                   st.sampled_from(["[ab]", "[^@]", "[^a-z]", "[a-c@]", "[-a]", "[^\\n]", "[%_]"])]
        if d > 0:
            options.append(st.builds(lambda xs: "(" + "|".join(xs) + ")",
                                     st.lists(st.deferred(lambda: seq(d - 1)), min_size=1, max_size=3)))
        return st.one_of(options).flatmap(
            lambda a: st.sampled_from(["", "*", "+", "?", "{2}", "{1,3}", "{0,}", "*?"]).map(lambda q: a + q))

    def seq(d):
        return st.lists(atom(d), max_size=4).map("".join)

    body = draw(seq(depth))
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=regexes())
def test_random_regexes_equal_re2(pattern: str) -> None:
    sexpr = ["regexp", ["col"], pattern]
    if strings.fast_plan(sexpr) is None:
        return                                   # e.g. too many DFA states: RE2 runs it
    agree(sexpr, VALUES)
    agree(sexpr, EDGE)


REGEX_CHARS = st.sampled_from(list("^$.*+?()[]{}|\\-,0123ab@é^:") + ["(?:", "(?i)", "\\n", "[^"])


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=st.lists(REGEX_CHARS, max_size=10).map("".join))
def test_regex_noise_is_accepted_only_where_re2_agrees(pattern: str) -> None:
    """Whatever the parser accepts, RE2 compiles too, and means the same."""
    sexpr = ["regexp", ["col"], pattern]
    if strings.fast_plan(sexpr) is None:
        return
    try:
        expected = arrow_values(sexpr, EDGE)
    except batchaot.errors.DataError:
        pytest.fail(f"the DFA accepted {pattern!r}, which RE2 rejects")
    assert fast_values(sexpr, EDGE) == expected
    agree(sexpr, VALUES)


@pytest.mark.parametrize("nlit", [1, 6, 300])
def test_in_lists_of_every_length_equal_pyarrow(nlit) -> None:
    """Literals of 0-24 bytes (short ones are hashed as two words, longer ones compared
    byte by byte) against rows that equal them or miss them by one byte or one length."""
    rng = np.random.default_rng(nlit)
    alphabet = ["a", "b", "\0", "é", "x", "@"]
    literals = sorted({"".join(rng.choice(alphabet, int(rng.integers(0, 25)))) for _ in range(nlit)})
    near = [lit[:-1] + "z" for lit in literals if lit] + [lit + "a" for lit in literals]
    rows = pa.array(list(rng.choice(literals + near + [None], 3000)), pa.string())
    for present in (literals, literals + [None]):
        agree(["in", ["col"], present], rows)
        agree(["in", ["col"], present], rows.slice(7, 1000))


# --- dictionary encoding of low-cardinality columns -------------------------------------

def decoded(values: pa.Array) -> list:
    codes, dictionary = strings.encode(values)
    assert len(dictionary) == len(set(dictionary.to_pylist())) and dictionary.null_count == 0
    out = dictionary.take(pa.array(codes)).to_pylist()
    return [None if v is None else x for x, v in zip(out, values.to_pylist())]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_round_trips(seed) -> None:
    rng = np.random.default_rng(seed)
    few = ["", "a", "a\0", "\0", "\0\0", "paid", "delivered", "x" * 16, "x" * 17, "é" * 9,
           "日本" * 10, "😀", "a" * 8, "a" * 8 + "\0", "ab" * 40, "ab" * 40 + "c"]
    values = pa.array(rng.choice(few, 5000), pa.string(), mask=rng.random(5000) < 0.1)
    for arr in (values, values.slice(3, 4000), values.slice(4990), values.cast(pa.large_string())):
        assert decoded(arr) == arr.to_pylist()


def test_encode_gives_up_past_its_capacity() -> None:
    many = pa.array([f"v{k}" for k in range(strings.ENCODE_MAX_DISTINCT + 1)])
    assert strings.encode(many) is None
    assert decoded(many.slice(1)) == many.slice(1).to_pylist()


# --- lookup tables through columns.build_lut ---------------------------------------------

@pytest.mark.parametrize("parts", [1, 2, 3])
def test_build_lut_fast_in_parts_equals_pyarrow(parts) -> None:
    def map_fn(fn, items):
        return [fn(*x) for x in reversed(items)]     # any order: parts write their own rows
    for sexpr, typ in ((["like", ["col"], "%a%", False, None], T.BOOL),
                       (["length", ["col"]], T.Type(T.Kind.INT)),
                       (["in", ["col"], ["a", None]], T.BOOL)):
        got = columns.build_lut(VALUES, sexpr, typ, map_fn if parts > 1 else None, parts)
        values = pa.concat_arrays([VALUES, pa.array([None], pa.string())])
        want = columns.to_words(strings.evaluate(sexpr, values), typ, len(values))
        ok = want[1] != 0
        assert (got[1] == want[1]).all() and (got[0][ok] == want[0][ok]).all(), sexpr


# --- end to end against DuckDB -----------------------------------------------------------

@pytest.fixture(autouse=True)
def fast_paths_for_small_data(monkeypatch):
    """Small tables would stay with pyarrow.compute: use the kernels whatever the size."""
    monkeypatch.setattr(columns, "FAST_MIN_VALUES", 0)


def string_table(seed: int, n: int) -> pa.Table:
    """`s`: mostly distinct (evaluated per row); `c`: few values (per dictionary value)."""
    rng = np.random.default_rng(seed)
    s = random_strings(rng, n, max_len=12)
    few = ["", "a", "a@b.c", "é@日.x", "a_b", "a%b", "x\ny", "😀", "paid", "SKU-1", "é" * 20 + "@x.y"]
    c = pa.array(rng.choice(few, n), pa.string(), mask=rng.random(n) < 0.1)
    return pa.table({"rid": pa.array(np.arange(n)), "s": s, "c": c})


def duckdb_rows(table: pa.Table, pred: str) -> list[int] | None:
    con = duckdb.connect()
    con.register("t", table)
    try:
        return [r[0] for r in con.execute(f"SELECT rid FROM t WHERE NOT ({pred}) ORDER BY rid").fetchall()]
    except duckdb.Error:
        return None


def batchaot_rows(table: pa.Table, preds: list[str], engine: str, threads: int = 1) -> list[list[int]]:
    programs = [batchaot.compile(p, table.schema, name=f"r{k}") for k, p in enumerate(preds)]
    with run.Executor(engine=engine, threads=threads) as ex:
        outcomes = ex.evaluate(programs, table.to_batches(max_chunksize=50_000))
    return [o.row_ids.tolist() for o in outcomes]


E2E = ["s LIKE '%@%.%'", "s LIKE '%a%'", "s NOT LIKE '_'", "s LIKE 'a\\_%' ESCAPE '\\'",
       "s LIKE '%\\%' ESCAPE '\\'", "s LIKE '%é%'", "s LIKE '%日_'", "starts_with(s, 'a')",
       "regexp_matches(s, '^[^@]+@[^@]+$')", "regexp_matches(s, 'a.b')", "regexp_matches(s, '^.{2,4}$')",
       "regexp_matches(s, '(@|\\.)x')", "length(s) BETWEEN 2 AND 5", "length(s) > 8",
       "s IN ('a', '', 'ab', NULL)", "s NOT IN ('a', 'b')", "s = 'a'", "s <> ''",
       "c LIKE '%@%.%'", "c IN ('paid', 'a')", "length(c) = 1", "regexp_matches(c, '^[a-z]+$')",
       "s LIKE '%a%' AND length(s) < 6 OR c = 'paid'"]


@pytest.mark.parametrize("engine", ["vm", "fused"])
def test_rules_equal_duckdb(engine) -> None:
    table = string_table(3, 20_000)
    assert columns._mostly_distinct(table["s"].combine_chunks())
    assert not columns._mostly_distinct(table["c"].combine_chunks())
    assert len(columns.load(table["c"], T.Type(T.Kind.STRING)).dictionary) == 11   # encoded here
    got = batchaot_rows(table, E2E, engine)
    for pred, rows in zip(E2E, got):
        assert rows == duckdb_rows(table, pred), pred


def test_small_data_stays_with_pyarrow(monkeypatch) -> None:
    monkeypatch.setattr(columns, "FAST_MIN_VALUES", 4096)
    called = []
    monkeypatch.setattr(strings, "run_fast", lambda *a: called.append(a))
    monkeypatch.setattr(strings, "encode", lambda *a: called.append(a))
    table = string_table(6, 4000)
    for pred in ("s LIKE '%a%'", "c = 'paid'"):
        assert batchaot_rows(table, [pred], "vm")[0] == duckdb_rows(table, pred)
    assert not called


def test_two_threads_split_per_row_tables(monkeypatch) -> None:
    monkeypatch.setattr(run, "PARALLEL_MIN_ROWS", 1000)
    monkeypatch.setattr(run, "PARALLEL_LUT_VALUES", 1000)
    table = string_table(4, 30_000)
    preds = E2E[:6] + E2E[12:14]
    for engine in ("vm", "fused"):
        got = batchaot_rows(table, preds, engine, threads=2)
        for pred, rows in zip(preds, got):
            assert rows == duckdb_rows(table, pred), (engine, pred)


_LIKE_TABLE = string_table(5, 3000)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=st.lists(LIKE_CHARS.filter(lambda ch: ch != "\n"), max_size=7).map("".join),
       escape=st.sampled_from([None, "\\"]), negate=st.booleans())
def test_random_like_patterns_equal_duckdb(pattern: str, escape, negate: bool) -> None:
    sql = pattern.replace("'", "''")
    pred = f"s {'NOT ' if negate else ''}LIKE '{sql}'" + (f" ESCAPE '{escape}'" if escape else "")
    expected = duckdb_rows(_LIKE_TABLE, pred)
    assume(expected is not None)        # DuckDB refuses a pattern ending in its escape
    assert batchaot_rows(_LIKE_TABLE, [pred], "vm")[0] == expected, pred


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=regexes())
def test_random_regexes_equal_duckdb(pattern: str) -> None:
    pred = f"regexp_matches(s, '{pattern}')"
    expected = duckdb_rows(_LIKE_TABLE, pred)
    assume(expected is not None)
    assert batchaot_rows(_LIKE_TABLE, [pred], "vm")[0] == expected, pred


@pytest.mark.parametrize("engine", ["vm", "fused"])
def test_lookup_tables_follow_each_batch_dictionary(engine) -> None:
    """Batches whose dictionaries are equal share one lookup table (the row groups of a
    Parquet file); a batch whose dictionary differs (other values, or the same values in
    another order, so other codes) gets its own, whatever came before."""
    words = ["new", "paid", "shipped", "lost", None]
    rng = np.random.default_rng(5)
    batches = []
    for k in range(12):
        order = words[:4] if k % 3 else list(reversed(words[:4]))
        if k % 4 == 3:
            order = order + ["other"]
        codes = rng.integers(0, len(order), 20_000)
        mask = rng.random(20_000) < 0.05
        batches.append(pa.record_batch([pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32(), mask=mask),
                                                                      pa.array(order))], names=["status"]))
    table = pa.Table.from_batches(batches)
    rules = [{"name": "known", "check": "status IN ('new', 'paid')"},
             {"name": "like", "check": "status LIKE '%p%'"},
             {"name": "length", "check": "length(status) > 3"}]
    programs = [batchaot.compile(r, table.schema, name=r["name"]) for r in rules]
    with run.Executor(engine=engine) as ex:
        got = [o.violations for o in ex.evaluate(programs, table.to_batches())]
    plain = table.cast(pa.schema([("status", pa.string())]))
    con = duckdb.connect()
    con.register("t", plain)
    want = con.execute("SELECT count(*) FILTER (WHERE NOT (status IN ('new', 'paid'))), "
                       "count(*) FILTER (WHERE NOT (status LIKE '%p%')), "
                       "count(*) FILTER (WHERE NOT (length(status) > 3)) FROM t").fetchone()
    assert got == list(want)
