"""Synthetic data and rule sets for the peer benchmarks (benchmarks/bench_peers.py).

    python benchmarks/datagen.py [--rows 10000000] [--seed 7] [--out orders.arrow]

`table(rows, seed)` builds one Arrow table, the same for a given (rows, seed) on every
machine. Each column breaks some rule on a small fraction of rows (BAD_RATE) and most
nullable columns carry NULLs, so every rule has violations to count and every engine
has to get three-valued logic right:

    column        type            content                                   NULLs
    id            int64           1..rows                                   -
    customer_id   int64           uniform 1..1,000,000; bad: 0 or -1        -
    quantity      int32           1..99; bad: 0 or 150                      0.1%
    amount        float64         lognormal (median ~33); bad: negative     1%
    discount      float64         0-30% of amount; bad: above amount        0.5%
    score         float64         normal(0, 1); bad: |score| > 4            2%
    status        string          6 values (low cardinality); bad: 'lost'   0.1%
    country       string          6 codes in mixed case; bad: 'XX', '??'    0.5%
    sku           string          'SKU-' + 5 digits (~100k values); bad: no prefix  -
    email         string          'user<n>@<domain>' (~rows distinct); bad: no '@',
                                  two '@', or very long                     1%
    comment       string          3-9 words of a small vocabulary (free text,
                                  high cardinality); bad: long, or 'URGENT'/'ASAP'  20%
    created_date  date32          a day of 2024; bad: 2023 or 2025          -
    updated_at    timestamp[us]   created + 0-10 days; bad: before created  5%

Strings are plain `string` (not dictionary): the engines get the same buffers and each
pays for its own string handling (batchaot dictionary-encodes inside its timed pass).
All text is ASCII, so character length means the same thing to every engine.

No NaN: the engines do not agree on it and not every one can be made to. DuckDB and
Polars order NaN above every number (NaN > 0 is TRUE, NaN < 5 is FALSE; batchaot
follows DuckDB), pyarrow.compute follows IEEE 754 (every comparison with NaN is
FALSE), and pandas treats NaN as a missing value, indistinguishable from NULL once the
table is converted. Floats carry NULLs only.

Rule sets are data too (RULES, RULE_SETS): a rule is a name and a SQL predicate in the
DuckDB dialect. A row violates a rule iff the predicate is FALSE; NULL passes. The
per-engine translations live in benchmarks/peers.py, keyed by rule name.

`wide_table(rows, seed)` and WIDE_RULE_SETS are the shape of cuallee's paper (19
not-null + 19 unique checks over 19 int/float columns, 20M rows by default), used by
`bench_peers.py --shape cuallee`; see the comment above wide_table.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_ROWS = 10_000_000
DEFAULT_SEED = 7
BAD_RATE = 0.002
DAY_US = 86_400_000_000

STATUSES = ["new", "paid", "shipped", "delivered", "cancelled", "refunded"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "GB"]
DOMAINS = ["example.com", "mail.test", "shop.example", "corp.test"]
WORDS = ("the order arrived late box damaged item missing please call customer happy "
         "refund thanks great quality slow delivery wrong size color fine again never "
         "ok good bad price").split()


@dataclass(frozen=True)
class Rule:
    """A row rule (kind "row": `sql` is the predicate), or a dataset-level check on one
    column (kind "not_null" or "unique"; `sql` then only describes it)."""

    name: str
    sql: str
    kind: str = "row"
    column: str | None = None

    def batchaot(self) -> dict:
        """The rule as batchaot.validate takes it."""
        if self.kind == "row":
            return {"name": self.name, "check": self.sql}
        return {"name": self.name, self.kind: [self.column] if self.kind == "unique" else self.column}


# One catalog, so a rule used by several sets has one translation per engine.
RULES = {r.name: r for r in [
    Rule("amount_positive", "amount > 0"),
    Rule("quantity_range", "quantity BETWEEN 1 AND 100"),
    Rule("discount_bounds", "discount >= 0 AND discount <= amount"),
    Rule("line_total_cap", "amount * quantity <= 25000"),
    Rule("score_z", "abs(score) <= 4"),
    Rule("customer_positive", "customer_id > 0"),
    Rule("created_in_2024", "created_date BETWEEN DATE '2024-01-01' AND DATE '2024-12-31'"),
    Rule("updated_after_created", "updated_at IS NULL OR updated_at >= created_date"),
    Rule("status_known", "status IN ('new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')"),
    Rule("email_shape", "regexp_matches(email, '^[^@]+@[^@]+$')"),
    Rule("email_like", "email LIKE '%@%.%'"),
    Rule("email_length", "length(email) BETWEEN 6 AND 40"),
    Rule("country_known", "lower(country) IN ('de', 'fr', 'us', 'jp', 'br', 'gb')"),
    Rule("sku_prefix", "starts_with(sku, 'SKU-')"),
    Rule("comment_length", "length(comment) <= 80"),
    Rule("comment_calm", "NOT regexp_matches(comment, 'URGENT|ASAP')"),
]}

RULE_SETS = {
    # no strings: ints, floats with NULLs, arithmetic, a date range, timestamp vs date
    "numeric": ["amount_positive", "quantity_range", "discount_bounds", "line_total_cap",
                "score_z", "customer_positive", "created_in_2024", "updated_after_created"],
    # the DESIGN.md measurement shape: 8 rules, 2 of them on strings
    "mixed": ["amount_positive", "status_known", "email_shape", "quantity_range",
              "discount_bounds", "updated_after_created", "line_total_cap", "created_in_2024"],
    # LIKE, regexp_matches, lower(...) IN, length, starts_with, IN, NOT regexp
    "strings": ["status_known", "email_shape", "email_like", "email_length", "country_known",
                "sku_prefix", "comment_length", "comment_calm"],
}


# "generated<N>": N threshold rules over the numeric columns and two-column arithmetic,
# each failing on a realistic share of rows: a target rate drawn log-uniformly from 0.1 %
# to 10 %, its threshold that quantile of the expression on a fixed 200,000-row sample of
# table() (seed 1), an upper bound, a lower bound or a band. The rules are plain SQL, so
# an engine without a hand-written translation reads the SQL (Polars: pl.sql_expr).
GENERATED_EXPRESSIONS = ["amount", "discount", "quantity", "score", "customer_id",
                         "amount - discount", "amount * quantity", "score * 10 + quantity"]


def generated_rules(count: int, seed: int = 11) -> list[Rule]:
    sample = table(200_000, seed=1)
    cols = {c: sample.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
            for c in ("amount", "discount", "quantity", "score", "customer_id")}
    values = {e: eval(e, {}, cols) for e in GENERATED_EXPRESSIONS}     # numpy: NaN for NULL
    rng = np.random.default_rng(seed)
    rules = []
    for k in range(count):
        expr = GENERATED_EXPRESSIONS[k % len(GENERATED_EXPRESSIONS)]
        v = values[expr][~np.isnan(values[expr])]
        rate = 10 ** rng.uniform(-3, -1)
        shape = rng.integers(0, 3)
        def q(p: float) -> float:
            return round(float(np.quantile(v, p)), 2)
        if shape == 0:
            sql = f"{expr} <= {q(1 - rate)}"
        elif shape == 1:
            sql = f"{expr} >= {q(rate)}"
        else:
            sql = f"{expr} BETWEEN {q(rate / 2)} AND {q(1 - rate / 2)}"
        rules.append(Rule(f"g{k:04d}", sql))
    return rules


def is_generated(name: str) -> bool:
    return name.startswith("generated") and name[len("generated"):].isdigit()


def rule_set(name: str) -> list[Rule]:
    if name in WIDE_RULE_SETS:
        return WIDE_RULE_SETS[name]
    if is_generated(name):
        return generated_rules(int(name[len("generated"):]))
    return [RULES[r] for r in RULE_SETS[name]]


def table(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE) -> pa.Table:
    """The synthetic table (module docstring), deterministic in (rows, seed, bad_rate).
    `bad_rate`: the share of rows each defect is injected into (default 0.2 %: 1-2 % of
    rows break a rule of a set; 0.05 gives ~30-40 %)."""
    rng = np.random.default_rng(seed)

    def some(rate: float = bad_rate) -> np.ndarray:
        return rng.random(rows) < rate

    def pick(values: list[str], idx: np.ndarray) -> pa.Array:
        return pc.take(pa.array(values, pa.string()), pa.array(idx))

    customer_id = rng.integers(1, 1_000_001, rows)
    bad = some()
    customer_id[bad] = rng.integers(-1, 1, int(bad.sum()))

    quantity = rng.integers(1, 100, rows).astype(np.int32)
    quantity[some()] = 0
    quantity[some()] = 150

    amount = np.round(rng.lognormal(3.5, 0.8, rows), 2)
    amount[some()] *= -1
    discount = np.round(np.abs(amount) * rng.uniform(0, 0.3, rows), 2)
    over = some()
    discount[over] = np.abs(amount[over]) + 1
    score = rng.normal(0, 1, rows)
    bad = some()
    score[bad] = rng.choice([-6.0, 5.0], int(bad.sum()))

    status = rng.integers(0, len(STATUSES) + 1, rows)
    status[status == len(STATUSES)] = 0          # 'new' twice as likely as the rest
    status[some()] = len(STATUSES)               # index of 'lost'
    country = rng.integers(0, len(COUNTRIES), rows)
    case = rng.integers(0, 3, rows)              # upper, lower, title case: lower() fixes all
    country_pool = COUNTRIES + [c.lower() for c in COUNTRIES] + [c.title() for c in COUNTRIES]
    country_idx = case * len(COUNTRIES) + country
    country_idx[some()] = len(country_pool)
    country_idx[some()] = len(country_pool) + 1

    sku_num = pc.cast(pa.array(rng.integers(10_000, 110_000, rows)), pa.string())
    sku = pc.binary_join_element_wise("SKU-", sku_num, "")
    sku = pc.if_else(pa.array(some()), pc.binary_join_element_wise("sku", sku_num, ""), sku)

    email = pc.binary_join_element_wise(
        "user", pc.cast(pa.array(rng.integers(0, max(rows, 1), rows)), pa.string()), "@",
        pick(DOMAINS, rng.integers(0, len(DOMAINS), rows)), "")
    bad_email = rng.integers(0, 3, rows)
    for kind, text in enumerate(["not-an-email", "a@b@c.test", "x" * 50 + "@example.com"]):
        email = pc.if_else(pa.array(some(bad_rate / 3) & (bad_email == kind)), text, email)

    words = [pick(WORDS, rng.integers(0, len(WORDS), rows)) for _ in range(9)]
    nwords = rng.integers(3, 10, rows)
    # words past a row's length become NULL, and the join skips NULLs
    words = [pc.if_else(pa.array(nwords > k), w, pa.scalar(None, pa.string()))
             for k, w in enumerate(words)]
    comment = pc.binary_join_element_wise(*words, " ", null_handling="skip")
    comment = pc.if_else(pa.array(some()), pc.binary_join_element_wise(comment, "URGENT", " "), comment)
    comment = pc.if_else(pa.array(some(bad_rate / 2)), pc.binary_join_element_wise(comment, "ASAP", " "), comment)
    comment = pc.if_else(pa.array(some()), pc.binary_join_element_wise(comment, "x" * 80, " "), comment)

    created = np.datetime64("2024-01-01") + rng.integers(0, 366, rows).astype("timedelta64[D]")
    created[some()] -= np.timedelta64(400, "D")
    created[some()] += np.timedelta64(400, "D")
    updated = created.astype("datetime64[us]").astype(np.int64) + rng.integers(0, 10 * DAY_US, rows)
    updated[some()] -= 30 * DAY_US

    return pa.table({
        "id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
        "customer_id": pa.array(customer_id, pa.int64()),
        "quantity": pa.array(quantity, pa.int32(), mask=some(0.001)),
        "amount": pa.array(amount, pa.float64(), mask=some(0.01)),
        "discount": pa.array(discount, pa.float64(), mask=some(0.005)),
        "score": pa.array(score, pa.float64(), mask=some(0.02)),
        "status": _with_nulls(pick(STATUSES + ["lost"], status), some(0.001)),
        "country": _with_nulls(pick(country_pool + ["XX", "??"], country_idx), some(0.005)),
        "sku": sku,
        "email": _with_nulls(email, some(0.01)),
        "comment": _with_nulls(comment, some(0.2)),
        "created_date": pa.array(created, pa.date32()),
        "updated_at": pa.array(updated, pa.timestamp("us"), mask=some(0.05)),
    })


def _with_nulls(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


# --- the cuallee paper's shape: 19 not-null + 19 exact-unique checks -------------------
# cuallee's paper (NYC taxi trips, ~20M rows) checks every one of 19 numeric columns for
# completeness and uniqueness. wide_table() is a synthetic table of that shape, with
# taxi-like columns so that the checks find what they would find there: two key
# columns that are unique (one sorted, one shuffled), one nearly unique with a few
# duplicates and NULLs, one float that is unique almost surely, the rest full of
# repeated values; some with NULLs. As SQL UNIQUE and batchaot's `unique`, a NULL is
# never a duplicate (its row is counted by the not-null check instead).

DEFAULT_WIDE_ROWS = 20_000_000
WIDE_COLUMNS = [
    "trip_id", "ride_key", "invoice_no", "medallion_id", "vendor_id", "passenger_count",
    "pickup_location", "dropoff_location", "payment_type", "rate_code", "pickup_epoch_s",
    "trip_distance", "fare_amount", "extra", "pickup_lat", "tip_amount", "tolls_amount",
    "total_amount", "congestion_surcharge",
]
WIDE_RULE_SETS = {"cuallee38": (
    [Rule(f"{c}_not_null", f"{c} IS NOT NULL", "not_null", c) for c in WIDE_COLUMNS]
    + [Rule(f"{c}_unique", f"unique({c})", "unique", c) for c in WIDE_COLUMNS])}


def wide_table(rows: int = DEFAULT_WIDE_ROWS, seed: int = DEFAULT_SEED) -> pa.Table:
    """19 int64/float64 columns shaped like taxi trips (see WIDE_COLUMNS above)."""
    rng = np.random.default_rng([seed, 38])

    def nulls(rate: float) -> np.ndarray:
        return rng.random(rows) < rate

    def money(scale: float) -> np.ndarray:
        return np.round(rng.exponential(scale, rows), 2)

    invoice = np.arange(1, rows + 1, dtype=np.int64)
    again = rng.integers(1, max(rows, 2), max(rows // 100_000, 1))
    invoice[again] = invoice[again - 1]              # a few invoices recorded twice
    fare = money(12.0)
    tip = money(2.5)
    cols = {
        "trip_id": (np.arange(1, rows + 1, dtype=np.int64), None),
        "ride_key": (rng.permutation(rows).astype(np.int64) + 1, None),
        "invoice_no": (invoice, nulls(0.001)),
        "medallion_id": (rng.integers(0, 4 * max(rows, 1), rows), None),
        "vendor_id": (rng.integers(1, 4, rows), None),
        "passenger_count": (rng.integers(0, 10, rows), nulls(0.01)),
        "pickup_location": (rng.integers(1, 266, rows), None),
        "dropoff_location": (rng.integers(1, 266, rows), None),
        "payment_type": (rng.integers(1, 7, rows), None),
        "rate_code": (rng.integers(1, 7, rows), nulls(0.005)),
        "pickup_epoch_s": (1_704_067_200 + rng.integers(0, 31 * 86_400, rows), None),
        "trip_distance": (money(3.0), None),
        "fare_amount": (fare, None),
        "extra": (rng.choice([0.0, 0.5, 1.0], rows), None),
        "pickup_lat": (40.5 + rng.random(rows) * 0.5, nulls(0.001)),
        "tip_amount": (tip, nulls(0.02)),
        "tolls_amount": (np.where(rng.random(rows) < 0.05, 6.94, 0.0), None),
        "total_amount": (np.round(fare + tip + 0.5, 2), None),
        "congestion_surcharge": (rng.choice([0.0, 2.5], rows), nulls(0.05)),
    }
    return pa.table({name: pa.array(values, mask=mask) for name, (values, mask) in cols.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--wide", action="store_true", help="the cuallee-shaped table instead")
    ap.add_argument("--out", help="write the table as an Arrow IPC file (else print its schema)")
    args = ap.parse_args()
    t = (wide_table if args.wide else table)(args.rows, args.seed)
    if args.out:
        with pa.OSFile(args.out, "wb") as sink, pa.ipc.new_file(sink, t.schema) as writer:
            writer.write_table(t)
        print(f"wrote {args.rows:,} rows to {os.path.relpath(args.out)}")
    else:
        print(t.schema)
        print(t.slice(0, 5).to_pandas().to_string())


if __name__ == "__main__":
    main()
