"""The README's performance claims are those of the committed results (benchmarks/results).

Every number the README prints with a unit of time or memory is either in the Performance
table (checked cell by cell against the peers JSON) or in a sentence of CLAIMS below,
which names the JSON file and key of each number; a number printed with k decimals must
equal the measured value rounded to k decimals. Comparisons in words ("faster than",
"as fast") are checked against the same files. A new timing in the README without an
entry here fails the test, as does a rerun of a benchmark that changes a cited number.
"""
from __future__ import annotations

import json
import re
from functools import cache

import pytest

from jobdata import REPO

RESULTS = REPO / "benchmarks" / "results"
PEERS = "peers-10000000-rows-2cores.json"
GENERATED = "peers-generated1000-10000000-rows-2cores.json"
CUALLEE = "peers-cuallee38-20000000-rows-2cores.json"
ENGINES = "engines-10000000-rows-2cores.json"
SCALE = "scale-2cores.json"
SUBMIT = "submit-12000000-rows-2cores.json"
SUBMIT50 = "submit-50000000-rows-2cores.json"
SUBMIT50_NODES = "submit-50000000-rows-2nodes-2cores.json"
SMALL = "small-job-200000-rows-2cores.json"
SPILL = "spill-36000000-rows-2cores.json"


@cache
def result(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def values(name: str, path: str) -> list[float]:
    """The numbers at a '/'-separated key path of a results file; '*' matches every key
    (or list item) at its level."""
    found = [result(name)]
    for key in path.split("/"):
        nxt = []
        for node in found:
            if key == "*":
                nxt += list(node.values()) if isinstance(node, dict) else list(node)
            else:
                nxt.append(node[int(key)] if isinstance(node, list) else node[key])
        found = nxt
    return found


def at(name: str, path: str, scale: float = 1.0, agg=None):
    """One cited number: the value at `path` (× scale), or agg (min/max) over a '*' path."""
    found = [v * scale for v in values(name, path)]
    assert agg is not None or len(found) == 1, path
    return (name, path, agg(found) if agg else found[0])


# README text with {} where each number stands (line breaks in the README do not matter),
# and where each number comes from.
CLAIMS = [
    ("(12M rows on 2 cores: {} s in-process, {} s on an already running local Ray with 2 workers, "
     "and {} s more to start one;",
     [at(SUBMIT, "submit in-process s"), at(SUBMIT, "submit ray 2 workers s"), at(SUBMIT, "ray_startup_s")]),
    ("at 50M rows in 10 files: {} s in-process and {} s on Ray, {} s with one worker, and {} s on Ray "
     "with the worker actors of an earlier run kept",
     [at(SUBMIT50, "submit in-process s"), at(SUBMIT50, "submit ray 2 workers s"),
      at(SUBMIT50, "submit ray 1 worker s"), at(SUBMIT50, "submit ray 2 workers kept s")]),
    ("the 50M rows take {} s on one worker and {} s on two ({} s on two kept workers), against {} s "
     "in-process in that run.",
     [at(SUBMIT50_NODES, "submit ray 1 worker s"), at(SUBMIT50_NODES, "submit ray 2 workers s"),
      at(SUBMIT50_NODES, "submit ray 2 workers kept s"), at(SUBMIT50_NODES, "submit in-process s")]),
    ("`batchaot validate` takes {} s, and {} s when Numba's cache is empty (before `batchaot warmup`); a fresh "
     "DuckDB process counting the same predicates takes {} s and Polars {} s.",
     [at(SMALL, "results/batchaot validate/warm_best_s"), at(SMALL, "results/batchaot validate/cold_s"),
      at(SMALL, "results/duckdb/warm_best_s"), at(SMALL, "results/polars/warm_best_s")]),
    ("a Ray worker loads them in {} to {} ms instead of compiling them",
     [at(ENGINES, "sets/*/compile/fresh_process/kernel_load_s", 1e3, min),
      at(ENGINES, "sets/*/compile/fresh_process/kernel_load_s", 1e3, max)]),
    ("1,000 generated threshold rules that each fail on 0.1-10 % of rows take {} s on 1 thread and "
     "{} s on 2; Polars lazy takes {} / {} s for the same counts",
     [at(GENERATED, f"rule_sets/generated1000/results/{tool}/{t}/best_s")
      for tool in ("batchaot-fused", "polars") for t in (1, 2)]),
    ("batchaot takes {} s on 1 thread and {} s on 2. Polars `is_duplicated` takes {} / {} s, "
     "DuckDB `GROUP BY` {} / {} s, and cuallee (Polars) {} / {} s.",
     [at(CUALLEE, f"rule_sets/cuallee38/results/{tool}/{t}/best_s")
      for tool in ("batchaot", "polars", "duckdb", "cuallee-polars") for t in (1, 2)]),
    ("The table of those rows ({}M of them",
     [at(CUALLEE, "rule_sets/cuallee38/results/batchaot/1/materialized_rows", 1e-6)]),
    ("Building the checks' tables takes another {} s on 1 thread and {} s on 2,",
     [at(CUALLEE, f"rule_sets/cuallee38/results/batchaot/{t}/materialize_s") for t in (1, 2)]),
    ("1,000 generated rules on 10M rows take {} s on 2 threads ({} s on 1); DuckDB needs {} ns per "
     "row·rule (timed on 1M rows).",
     [at(ENGINES, "sets/scale 1000/results/batchaot fused (2 threads)/seconds"),
      at(ENGINES, "sets/scale 1000/results/batchaot fused (1 thread)/seconds"),
      at(ENGINES, "sets/scale 1000/duckdb_sample/ns_per_row_rule")]),
    ("but not on the numeric set ({} s vs {} s on 1 thread) nor with 10 rules ({} s vs {} s).",
     [at(ENGINES, "sets/demo numeric/results/batchaot VM (1 thread)/seconds"),
      at(ENGINES, "sets/demo numeric/results/DuckDB (1 thread)/seconds"),
      at(ENGINES, "sets/scale 10/results/batchaot VM (1 thread)/seconds"),
      at(ENGINES, "sets/scale 10/results/DuckDB (1 thread)/seconds")]),
    ("batchaot takes {}-{} ns per row from 1M to 100M rows, with flat memory (peak RSS {}-{} MB): {} ns at 1M "
     "rows (a process's first 2M rows run on the VM compiled ahead of time, on one thread; the repeated runs "
     "timed here then load Numba), {} ns at 10M and {} ns at 100M. DuckDB takes {} ns per row at 1M rows, "
     "{} ns at 10M and {} ns at 100M.",
     [at(SCALE, "results/*/batchaot_ns_per_row", agg=min), at(SCALE, "results/*/batchaot_ns_per_row", agg=max),
      at(SCALE, "results/*/batchaot_peak_rss_mb", agg=min), at(SCALE, "results/*/batchaot_peak_rss_mb", agg=max)]
     + [at(SCALE, f"results/{i}/batchaot_ns_per_row") for i in range(3)]
     + [at(SCALE, f"results/{i}/duckdb_ns_per_row") for i in range(3)]),
    ("One worker took {} s for 12M rows here, actor start included, so about {} ns per row: "
     "1 billion rows need about {} s of every worker's time",
     [at(SUBMIT, "submit ray 1 worker s"), at(SUBMIT, "submit ray 1 worker s", 1e9 / 12e6),
      at(SUBMIT, "submit ray 1 worker s", 1e9 / 12e6 / 160)]),
    ("whose bucket pieces take {} GB, under an address-space limit {} MB above the runtime's own peak: "
     "holding the keys runs out of memory (exit {}); the default budget spills them and gives DuckDB's "
     "count in {} s (DuckDB {} s). Without a limit, a 256 MB budget took {} s at a peak RSS of {} MB; "
     "holding every key took {} s at {} MB.",
     [at(SPILL, "results/default_budget_limited/spilled_bytes", 1e-9), at(SPILL, "headroom_mb"),
      at(SPILL, "results/held_limited/exit_code"), at(SPILL, "results/default_budget_limited/seconds"),
      at(SPILL, "results/duckdb/seconds"), at(SPILL, "results/spilled_256MB/seconds"),
      at(SPILL, "results/spilled_256MB/peak_rss_mb"), at(SPILL, "results/held/seconds"),
      at(SPILL, "results/held/peak_rss_mb")]),
]

# The Performance table: column header → tool in the peers file; row label → rule set.
TABLE_TOOLS = {"batchaot fused 1t / 2t": "batchaot-fused", "Polars lazy": "polars", "DuckDB": "duckdb",
               "pyarrow": "pyarrow", "pandera": "pandera", "cuallee (Polars)": "cuallee-polars"}
TABLE_SETS = {"mixed (2 string rules)": "mixed", "strings": "strings", "numeric": "numeric"}

# Numbers with a unit that are settings, not measurements.
NOT_MEASURED = ["(4 GB when the row count is unknown)", "a rules file is at most 64 MB",
                "waits for the first (up to 60 s)", "memory_budget: 2GB  ", "`submit --memory-budget 2GB`",
                "a 256 MB budget"]   # limits and settings, not measurements

NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
MEASURE = re.compile(r"(?<![\w.])[0-9][0-9,]*(?:\.[0-9]+)?\s?(?:s|ms|ns|µs|GB|MB)\b")


@cache
def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def pattern(text: str) -> re.Pattern:
    parts = [re.escape(p) for p in text.split("{}")]
    return re.compile(NUMBER.join(parts).replace(r"\ ", r"\s+"))


def agrees(printed: str, value: float) -> bool:
    """`printed` is `value` rounded to as many decimals as it shows."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return float(printed.replace(",", "")) == round(value, decimals)


@pytest.mark.parametrize("text, cited", CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_each_cited_number_is_the_measured_one(text, cited) -> None:
    found = pattern(text).search(readme())
    assert found, f"README no longer says: {text}"
    for printed, (name, path, value) in zip(found.groups(), cited, strict=True):
        assert agrees(printed, value), f"README says {printed}, {name} [{path}] says {value}"


def table_rows() -> tuple[list[str], list[list[str]], tuple[int, int]]:
    text = readme()
    start = text.index("| 8 rules, 10M rows |")
    end = text.index("\n\n", start)
    lines = text[start:end].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:], (start, end)


def test_performance_table_is_the_peers_file() -> None:
    peers = result(PEERS)
    assert (peers["rows"], peers["cores"], peers["machine"]) == (10_000_000, 2, "x86_64")
    header, rows, _ = table_rows()
    assert [TABLE_TOOLS[h] for h in header[1:]] and len(rows) == len(TABLE_SETS)
    for row in rows:
        rule_set = TABLE_SETS[row[0]]
        assert len(peers["rule_sets"][rule_set]["rules"]) == 8
        for head, cell in zip(header[1:], row[1:], strict=True):
            one, two = re.fullmatch(rf"{NUMBER} / {NUMBER} s", cell).groups()
            for printed, threads in ((one, 1), (two, 2)):
                value = peers["rule_sets"][rule_set]["results"][TABLE_TOOLS[head]][str(threads)]["best_s"]
                assert agrees(printed, value), (row[0], head, threads, printed, value)


def test_comparisons_in_words_hold() -> None:
    peers = result(PEERS)["rule_sets"]["numeric"]["results"]
    best = {(tool, t): peers[tool][str(t)]["best_s"] for tool in ("polars", "batchaot-fused") for t in (1, 2)}
    assert "On numeric rules Polars is as fast on one thread and faster on two." in readme()
    assert best[("polars", 1)] <= best[("batchaot-fused", 1)] * 1.05          # as fast
    assert best[("polars", 2)] < best[("batchaot-fused", 2)]                  # faster
    # "The VM tier alone (no fused kernels) is faster than DuckDB on the mixed set and with
    # 100 or 1,000 rules, but not on the numeric set ... nor with 10 rules"
    assert re.search(r"The VM tier alone \(no fused kernels\) is faster\s+than DuckDB on the mixed set and "
                     r"with 100 or 1,000 rules, but not on the numeric set", readme())
    sets = result(ENGINES)["sets"]

    def vm_vs_duckdb(name: str) -> tuple[float, float]:
        res = sets[name]["results"]
        vm = res["batchaot VM (1 thread)"]["ns_per_row_rule"]
        duck = res["DuckDB (1 thread)"]["ns_per_row_rule"] if "DuckDB (1 thread)" in res \
            else sets[name]["duckdb_sample"]["ns_per_row_rule"]
        return vm, duck
    for name in ("demo mixed", "scale 100", "scale 1000"):
        vm, duck = vm_vs_duckdb(name)
        assert vm < duck, name
    for name in ("demo numeric", "scale 10"):
        vm, duck = vm_vs_duckdb(name)
        assert vm > duck, name
    assert set(sets) == {"demo numeric", "demo mixed", "scale 10", "scale 100", "scale 1000"}
    # the cuallee shape: 19 not_null + 19 unique checks on 20M rows
    cuallee = result(CUALLEE)
    rules = cuallee["rule_sets"]["cuallee38"]["rules"]
    assert cuallee["rows"] == 20_000_000 and len(rules) == 38
    assert sum(r["sql"].startswith("unique(") for r in rules) == 19


def test_every_measurement_in_the_readme_is_cited() -> None:
    """No time or memory figure outside the checked claims and the table."""
    text = readme()
    covered = [table_rows()[2]]
    for claim, _ in CLAIMS:
        covered += [m.span() for m in pattern(claim).finditer(text)]
    for phrase in NOT_MEASURED:
        start = text.index(phrase)
        covered.append((start, start + len(phrase)))
    loose = [m.group() for m in MEASURE.finditer(text)
             if not any(a <= m.start() < b for a, b in covered)]
    assert not loose, f"README numbers with no entry in tests/test_readme_claims.py: {loose}"
