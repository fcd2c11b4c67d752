"""DuckDB's text forms: strings → numbers, dates and timestamps (CAST / TRY_CAST of a
string column), and values → strings (CAST(x AS VARCHAR)).

Each function works on a pyarrow array of the *distinct* values of a column (a lookup
table's input), so a Python loop here runs once per distinct value, never per row; the
common clean shapes (``'42'``, ``'2024-01-05'``) go through pyarrow's vectorized casts
first and only the rest reach the Python parsers.

The accepted syntax follows DuckDB 1.x/2.x, checked value by value against DuckDB in
tests/test_sql_functions.py (a corpus of edge cases for every target type):

- integers: ASCII whitespace around, an optional sign, digits with single underscores
  between them, an optional fraction and exponent; the exact value is rounded half away
  from zero ('2.5' → 3, '-0.5' → -1) and must fit the target type. Hex ('0x1F') and
  binary ('0b101') without a sign.
- doubles: the same decimal syntax (no hex), plus inf / infinity / nan in any case and
  with a sign.
- decimals: the decimal syntax, rounded half away from zero to the scale; the result
  must fit the precision.
- booleans: exactly true/t/yes/y/1 or false/f/no/n/0, in any case, no whitespace.
- dates: [-]Y-M-D with '-', '/' or ' ' as the (repeated) separator, 1-2 digit month and
  day, an optional ' (BC)', optionally followed by a time as in a timestamp (dropped);
  'epoch', 'infinity', '-infinity'.
- timestamps: a date, then 'T' or spaces and H:M[:S[.fraction]] (24:00:00 is the next
  day), then an optional time zone (Z, ±HH[:MM[:SS]], or a name), which a TIMESTAMP
  without time zone ignores, as DuckDB does.

Anything else is NULL. A failed CAST is NULL too (TRY_CAST's answer): a data-quality
run never aborts on one row of bad text; `strict: true` (or `TRY_CAST(x AS T) IS NOT
NULL`) flags such rows.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .civil import days_from_civil, days_in_month

_WS = " \t\n\r\v\f"
_DIGITS = r"\d+(?:_\d+)*"
_NUMBER = re.compile(rf"([+-]?)({_DIGITS})?(?:\.({_DIGITS})?)?(?:[eE]([+-]?{_DIGITS}))?\Z")
_HEX = re.compile(r"0[xX]([0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)\Z")
_BIN = re.compile(r"0[bB]([01]+(?:_[01]+)*)\Z")
_SIMPLE_INT = r"^[+-]?\d{1,18}$"
_SIMPLE_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$"
_SIMPLE_DATE = r"^\d{4}-\d{2}-\d{2}$"

# integer CAST targets (SQL type name → inclusive range)
INT_RANGES = {
    "TINYINT": (-(1 << 7), (1 << 7) - 1), "SMALLINT": (-(1 << 15), (1 << 15) - 1),
    "INT": (-(1 << 31), (1 << 31) - 1), "BIGINT": (-(1 << 63), (1 << 63) - 1),
    "UTINYINT": (0, (1 << 8) - 1), "USMALLINT": (0, (1 << 16) - 1), "UINT": (0, (1 << 32) - 1),
    "UBIGINT": (0, (1 << 63) - 1), "HUGEINT": (-(1 << 63), (1 << 63) - 1),
}
# UBIGINT / HUGEINT values above int64 do not fit a 64-bit word: NULL here, where DuckDB
# has the value (documented in the README).

# What the engine can build for the binder: "joint" lookup tables over two string
# columns (strings.joint_lut), "text" columns (CAST(x AS VARCHAR) of a non-string
# column, to_text). The binder refuses rules that need a feature missing here. Both are
# this package's engine's (engine/run.py _BatchInputs), stated here rather than
# registered when the engine is imported, so that a rule compiles the same whatever a
# process happened to import first.
ENGINE_FEATURES: set[str] = {"joint", "text"}

_EPOCH = _dt.date(1970, 1, 1)
_DATE_INF = (1 << 31) - 1            # DuckDB's date 'infinity' (days)
_TS_INF = (1 << 63) - 1              # DuckDB's timestamp 'infinity' (any unit)


def _strip(text: str) -> str:
    return text.strip(_WS)


# -- numbers ---------------------------------------------------------------------------

def _decimal(text: str) -> decimal.Decimal | None:
    m = _NUMBER.match(text)
    if m is None or (m.group(2) is None and m.group(3) is None):
        return None
    sign, whole, frac, exp = m.groups()
    digits = (whole or "0").replace("_", "") + "." + (frac or "0").replace("_", "")
    value = decimal.Decimal(sign + digits)
    if exp is not None:
        e = int(exp.replace("_", ""))
        if e > 400:
            return decimal.Decimal("Infinity") if value else value
        if e < -400:
            return decimal.Decimal(0)
        value = value.scaleb(e)
    return value


def _round_half_away(value: decimal.Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_HALF_UP))


def parse_int(text: str, lo: int, hi: int) -> int | None:
    s = _strip(text)
    m = _HEX.match(s) or _BIN.match(s)
    if m is not None:
        v = int(m.group(1).replace("_", ""), 16 if s[1] in "xX" else 2)
    else:
        d = _decimal(s)
        if d is None or not d.is_finite() or d.adjusted() > 40:
            return None
        if lo == 0 and d < 0:            # unsigned: no minus sign, but '-0' is 0
            return None
        v = _round_half_away(d)
    return v if lo <= v <= hi else None


def parse_float(text: str) -> float | None:
    s = _strip(text)
    low = s.lower().lstrip("+-")
    if low in ("inf", "infinity", "nan"):
        v = math.inf if low != "nan" else math.nan
        return -v if s.startswith("-") and low != "nan" else v
    d = _decimal(s)
    if d is None:
        return None
    return float(d) if d.is_finite() else math.copysign(math.inf, 1 if d > 0 else -1)


def parse_decimal(text: str, precision: int, scale: int) -> int | None:
    """The value scaled by 10^scale, if it fits DECIMAL(precision, scale)."""
    d = _decimal(_strip(text))
    if d is None or not d.is_finite() or d.adjusted() > precision:
        return None
    v = _round_half_away(d.scaleb(scale))
    return v if abs(v) < 10 ** precision else None


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def parse_bool(text: str) -> bool | None:
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else None


# -- dates and timestamps -----------------------------------------------------------------

_DATE = re.compile(r"(-?)(\d{1,7})([-/ ])(\d{1,2})\3(\d{1,2})( \(BC\))?")
_TIME = re.compile(r"(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d*))?)?")
_ZONE = re.compile(r"[ ]*(?:Z|[+-]\d\d(?::?\d\d(?::?\d\d)?)?)|[ ]+[A-Za-z][A-Za-z0-9_/+\-:]*")
_SPECIAL = {"epoch": 0, "infinity": 1, "-infinity": -1, "inf": 1, "-inf": -1}


def _split_date(s: str):
    """(days, rest of the text) of a leading date, or None."""
    m = _DATE.match(s)
    if m is None:
        return None
    neg, year, _, month, day, bc = m.groups()
    y, mo, d = int(year), int(month), int(day)
    if neg:
        if bc:
            return None
        y = -y
    elif bc:
        y = 1 - y
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)):
        return None
    days = days_from_civil(y, mo, d)
    if not _DATE_MIN <= days <= _DATE_MAX:
        return None
    return days, s[m.end():]


def _time_of_day(rest: str, digits: int):
    """Ticks (10^-digits s) since midnight of a time after a date, and whether the text
    was whole: (ticks, ok). An empty rest is midnight."""
    if rest == "":
        return 0, True
    if rest[0] == "T":
        rest = rest[1:].lstrip(" ")
    elif rest[0] == " ":
        rest = rest.lstrip(" ")
        if rest == "":
            return 0, True
    else:
        return 0, False
    m = _TIME.match(rest)
    if m is None:
        return 0, False
    hh, mm, ss, frac = m.groups()
    h, mi, sec = int(hh), int(mm), int(ss or 0)
    micro_text = (frac or "")[:digits].ljust(digits, "0")
    ticks_frac = int(micro_text) if digits else 0
    if h == 24 and mi == 0 and sec == 0 and not (frac or "").strip("0"):
        h = 24
    elif not (h < 24 and mi < 60 and sec < 60):
        return 0, False
    tail = rest[m.end():]
    if tail:
        z = _ZONE.match(tail)
        if z is None or tail[z.end():].strip(" "):
            return 0, False
    return ((h * 60 + mi) * 60 + sec) * 10 ** digits + ticks_frac, True


def _special(text: str) -> int | None:
    """'epoch' 0, '[-]inf[inity]' +-1 (DuckDB trims around 'epoch', only after 'inf')."""
    low = text.rstrip(_WS).lower()
    if low in _SPECIAL:
        return _SPECIAL[low]
    return 0 if _strip(text).lower() == "epoch" else None


def parse_date(text: str) -> int | None:
    special = _special(text)
    if special is not None:
        return special * _DATE_INF
    s = _strip(text)
    got = _split_date(s)
    if got is None:
        return None
    days, rest = got
    if rest and not _time_of_day(rest, 0)[1]:
        return None
    return days


def parse_timestamp(text: str, digits: int) -> int | None:
    """Ticks since the epoch in units of 10^-digits seconds. As DuckDB, the text is read
    to microseconds (nanoseconds for TIMESTAMP_NS), must fit 64 bits there, and is then
    rounded half away from zero to seconds or milliseconds."""
    special = _special(text)
    if special is not None:
        return special * _TS_INF
    got = _split_date(_strip(text))
    if got is None:
        return None
    days, rest = got
    read = 9 if digits == 9 else 6
    ticks, ok = _time_of_day(rest, read)
    if not ok:
        return None
    value = days * 86400 * 10 ** read + ticks
    if not -_TS_INF < value < _TS_INF:
        return None
    if digits < read:
        step = 10 ** (read - digits)
        q, r = divmod(abs(value), step)
        value = (q + (2 * r >= step)) * (1 if value >= 0 else -1)
    return value


# -- casts of string arrays ---------------------------------------------------------------

def cast_strings(arr: pa.Array, kind: str, scale: int, type_name: str | None = None,
                 precision: int = 18) -> pa.Array:
    """DuckDB's TRY_CAST of each string to the target (NULL where it does not parse)."""
    arr = arr.cast(pa.string()) if arr.type != pa.string() else arr
    if kind == "boolean":
        return pa.array([None if v is None else parse_bool(v) for v in arr.to_pylist()], pa.bool_())
    if kind == "bigint":
        lo, hi = INT_RANGES.get(type_name or "BIGINT", INT_RANGES["BIGINT"])
        return _fast_then_slow(arr, _SIMPLE_INT, pa.int64(), lambda v: parse_int(v, lo, hi),
                               (lo, hi))
    if kind == "double":
        return _fast_then_slow(arr, _SIMPLE_FLOAT, pa.float64(), parse_float)
    if kind == "decimal":
        out = [None if v is None else parse_decimal(v, precision, scale) for v in arr.to_pylist()]
        return pa.array([None if v is None else decimal.Decimal(v).scaleb(-scale) for v in out],
                        pa.decimal128(38, scale)).cast(pa.decimal128(18, scale))
    if kind == "date":
        return _fast_then_slow(arr, _SIMPLE_DATE, pa.date32(), parse_date, raw=pa.int32())
    if kind == "timestamp":
        unit = {0: "s", 3: "ms", 6: "us", 9: "ns"}[scale]
        return pa.array([None if v is None else parse_timestamp(v, scale) for v in arr.to_pylist()],
                        pa.int64()).cast(pa.timestamp(unit))
    raise ValueError(f"no cast from strings to {kind}")


def _fast_then_slow(arr: pa.Array, simple: str, target: pa.DataType, parse, bounds=None,
                    raw: pa.DataType | None = None) -> pa.Array:
    """Vectorized cast of the values matching `simple` (where pyarrow and DuckDB agree),
    the Python parser for the others."""
    trimmed = pc.utf8_trim(arr, characters=_WS)
    easy = pc.fill_null(pc.match_substring_regex(trimmed, simple), False)
    out = None
    if pc.all(pc.or_(easy, pc.is_null(arr))).as_py():
        try:
            out = pc.cast(trimmed, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = None
        if out is not None and bounds is not None and len(out) and out.null_count < len(out):
            lo, hi = pc.min_max(out).values()
            if lo.as_py() < bounds[0] or hi.as_py() > bounds[1]:
                out = None
    if out is not None:
        return out
    values = [None if v is None else parse(v) for v in arr.to_pylist()]
    if raw is not None:
        return pa.array(values, raw).cast(target)
    return pa.array(values, target)


# -- text of values: CAST(x AS VARCHAR) ------------------------------------------------------

def to_text(arr: pa.Array) -> pa.Array:
    """DuckDB's text of each value (CAST(x AS VARCHAR)); NULL stays NULL."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.string())
    if pa.types.is_null(t):
        return arr.cast(pa.string())
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        return pc.cast(arr, pa.string())             # booleans: 'true' / 'false'
    if pa.types.is_floating(t):
        single = not pa.types.is_float64(t)
        return pa.array([None if v is None else float_text(v, single) for v in arr.cast(pa.float64()).to_pylist()],
                        pa.string())
    if pa.types.is_decimal(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_date(t):
        days = pc.fill_null(arr.cast(pa.date32()).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        return _texts(arr, [date_text(int(d)) for d in days])
    if pa.types.is_timestamp(t):
        digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[t.unit]
        ticks = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        zone = "+00" if t.tz is not None else ""      # TIMESTAMPTZ, in UTC
        return _texts(arr, [timestamp_text(int(v), digits) + zone for v in ticks])
    raise ValueError(f"no text form for {t}")


def _texts(arr: pa.Array, texts: list[str]) -> pa.Array:
    return pa.array(texts, pa.string(), mask=np.asarray(arr.is_null(), dtype=bool) if arr.null_count else None)


def float_text(v: float, single: bool = False) -> str:
    """DuckDB's text of a DOUBLE (`single`: of a FLOAT): the shortest digits that read
    back as the same value, written as Python writes a float (123456790.0, 1e+20)."""
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if single:      # float32's shortest digits, read as a double: at most 9 digits round-trip
        return repr(float(np.format_float_scientific(np.float32(v), unique=True)))
    return repr(float(v))


def civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def date_text(days: int) -> str:
    if days == _DATE_INF:
        return "infinity"
    if days == -_DATE_INF:
        return "-infinity"
    y, m, d = civil_from_days(days)
    if y <= 0:
        return f"{1 - y:04d}-{m:02d}-{d:02d} (BC)"
    return f"{y:04d}-{m:02d}-{d:02d}"


def timestamp_text(ticks: int, digits: int) -> str:
    if ticks == _TS_INF:
        return "infinity"
    if ticks == -_TS_INF:
        return "-infinity"
    per_day = 86400 * 10 ** digits
    days, tod = divmod(ticks, per_day)
    secs, frac = divmod(tod, 10 ** digits)
    h, rem = divmod(secs, 3600)
    mi, s = divmod(rem, 60)
    out = f"{date_text(days)} {h:02d}:{mi:02d}:{s:02d}"
    if frac:
        out += "." + f"{frac:0{digits}d}".rstrip("0")
    return out


_DATE_MAX = days_from_civil(5881580, 7, 10)     # DuckDB's last finite date
_DATE_MIN = days_from_civil(-5877641, 6, 25)    # and its first
