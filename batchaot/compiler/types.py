"""SQL value types of the typed IR and their mapping from Arrow.

Every type has a *physical* class in the VM: ``i`` (a 64-bit integer word: ints, bools,
dates as days, timestamps in their unit, decimals as scaled integers, string dictionary
codes) or ``f`` (float64). Decimals are exact: a DECIMAL(p, s) value v is stored as
v * 10^s in an int64, so no rounding ever happens behind the user's back.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    BOOL = "boolean"
    INT = "bigint"
    FLOAT = "double"
    DECIMAL = "decimal"
    DATE = "date"
    TIMESTAMP = "timestamp"
    STRING = "varchar"
    NULL = "null"


@dataclass(frozen=True)
class Type:
    kind: Kind
    # DECIMAL: digits after the point; TIMESTAMP: 0 (s), 3 (ms), 6 (us), 9 (ns);
    # FLOAT: 0 for DOUBLE, 32 for DuckDB's FLOAT (float32 values, held exactly in a float64
    # register and rounded back to float32 after every operation that can leave it)
    scale: int = 0

    @property
    def physical(self) -> str:
        return "f" if self.kind is Kind.FLOAT else "i"

    @property
    def is_single(self) -> bool:
        return self.kind is Kind.FLOAT and self.scale == 32

    @property
    def is_numeric(self) -> bool:
        return self.kind in (Kind.INT, Kind.FLOAT, Kind.DECIMAL, Kind.BOOL)

    @property
    def is_temporal(self) -> bool:
        return self.kind in (Kind.DATE, Kind.TIMESTAMP)

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL:
            return f"decimal(18,{self.scale})"
        if self.kind is Kind.TIMESTAMP:
            return {0: "timestamp_s", 3: "timestamp_ms", 6: "timestamp", 9: "timestamp_ns"}[self.scale]
        if self.is_single:
            return "float"
        return self.kind.value


BOOL = Type(Kind.BOOL)
INT = Type(Kind.INT)
FLOAT = Type(Kind.FLOAT)
FLOAT32 = Type(Kind.FLOAT, 32)
DATE = Type(Kind.DATE)
STRING = Type(Kind.STRING)
NULL = Type(Kind.NULL)
TIMESTAMP_US = Type(Kind.TIMESTAMP, 6)

_TS_SCALE = {"s": 0, "ms": 3, "us": 6, "ns": 9}
MAX_DECIMAL_PRECISION = 18  # what an int64 holds exactly


class UnsupportedType(Exception):
    """Raised with the Arrow type that has no IR equivalent (the binder names the column)."""


def from_arrow(t: pa.DataType) -> Type:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        # uint64 too: its values below 2^63 are bigints; engine/columns.py refuses a batch
        # holding a larger one (naming the column) rather than wrap it negative
        return INT
    if pa.types.is_floating(t):        # float16 values are float32 values too
        return FLOAT if pa.types.is_float64(t) else FLOAT32
    if pa.types.is_decimal(t):         # decimal32/64/128/256 alike: the value is what counts
        if t.precision > MAX_DECIMAL_PRECISION:
            raise UnsupportedType(f"{t}: precision above {MAX_DECIMAL_PRECISION} cannot be "
                                  "held exactly; CAST it to DOUBLE in the rule if rounding is acceptable")
        return Type(Kind.DECIMAL, t.scale)
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_timestamp(t):
        return Type(Kind.TIMESTAMP, _TS_SCALE[t.unit])
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STRING
    if pa.types.is_null(t):
        return NULL
    raise UnsupportedType(str(t))


# The range an integer CAST target holds (enum ba_int of native/batchaot_native.h, the
# immediate of NARROW_I): a value outside it becomes NULL, as DuckDB's TRY_CAST.
INT_RANGE_CODES = {"TINYINT": 1, "SMALLINT": 2, "INT": 3, "UTINYINT": 4, "USMALLINT": 5,
                   "UINT": 6, "UBIGINT": 7}

# SQL type names (as sqlglot's DataType.Type names them) accepted in CAST.
CAST_TARGETS = {
    "BOOLEAN": BOOL,
    "TINYINT": INT, "SMALLINT": INT, "INT": INT, "BIGINT": INT, "UTINYINT": INT,
    "USMALLINT": INT, "UINT": INT, "UBIGINT": INT, "HUGEINT": INT,
    "FLOAT": FLOAT32, "DOUBLE": FLOAT,
    "DATE": DATE, "TIMESTAMP": TIMESTAMP_US, "DATETIME": TIMESTAMP_US,
    "VARCHAR": STRING, "TEXT": STRING, "CHAR": STRING, "NVARCHAR": STRING,
}
