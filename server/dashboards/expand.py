"""Expanding a panel query the way Grafana does before sending it (pure, no I/O).

- Template variables: ``$var``, ``${var}``, ``${var:format}``, ``[[var]]``. A multi-value or
  "include All" variable becomes ``'a','b'`` in SQL (for ``IN (...)``) and ``(a|b)``
  (regex-escaped) in InfluxQL (for ``=~ /^...$/``); formats ``regex``, ``csv``, ``pipe``,
  ``raw``, ``singlequote``, ``doublequote``, ``sqlstring`` as Grafana defines them.
- SQL macros (PostgreSQL datasource): ``$__time(col)``, ``$__timeFilter(col)``,
  ``$__timeFrom()``, ``$__timeTo()``, ``$__unixEpochFilter(col)``, ``$__unixEpochFrom()``,
  ``$__unixEpochTo()``, ``$__interval``, ``$__interval_ms``.
- InfluxQL: ``$timeFilter`` / ``$__timeFilter``, ``$__interval`` / ``$interval``,
  ``$__interval_ms``.

Anything else that looks like a variable or macro is an :class:`ExpandError`: a query that
would reach the database with a ``$name`` left in it is broken in Grafana too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

Dialect = Literal["sql", "influxql"]

# Grafana: interval = range / max data points (about the panel's width in pixels), at least
# the datasource's minimum interval, rounded to a "nice" value.
MAX_DATA_POINTS = 1000
MIN_INTERVAL_MS = 10_000  # the crp-influx datasource's timeInterval (10s)
NICE_INTERVALS_MS = (
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000,
    3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
    7 * 86_400_000, 30 * 86_400_000,
)

# Grafana's variable syntax (public/app/features/variables/utils.ts, variableRegex).
VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
SQL_MACRO_RE = re.compile(r"\$__(\w+)\(")
REGEX_SPECIALS = set("\\^$.|?*+()[]{}/")


class ExpandError(ValueError):
    pass


@dataclass(frozen=True)
class Variable:
    """A template variable's current values; ``multi`` when it is multi-value or has the
    "All" option (Grafana then quotes / regex-joins even a single value)."""

    name: str
    values: tuple[str, ...]
    multi: bool = True


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime  # timezone-aware
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ExpandError("time range bounds must be timezone-aware")
        if self.end <= self.start:
            raise ExpandError("time range: 'to' must be after 'from'")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def interval_ms(tr: TimeRange, max_points: int = MAX_DATA_POINTS, min_ms: int = MIN_INTERVAL_MS) -> int:
    raw = max((tr.end_ms - tr.start_ms) / max_points, min_ms)
    return next((n for n in NICE_INTERVALS_MS if n >= raw), NICE_INTERVALS_MS[-1])


def duration_text(ms: int) -> str:
    """``60000`` -> ``1m``: Grafana's ``$__interval`` text, valid InfluxQL duration."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def iso_z(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- variables


def escape_regex(value: str) -> str:
    return "".join("\\" + c if c in REGEX_SPECIALS else c for c in value)


def _sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_value(var: Variable, fmt: str | None, dialect: Dialect) -> str:
    vals = list(var.values)
    if fmt is None:
        if dialect == "sql":
            if not var.multi:
                return vals[0] if vals else ""
            return ",".join(_sql_quote(v) for v in vals) if vals else "NULL"
        fmt = "regex" if var.multi else "raw"
    if fmt == "regex":
        if len(vals) == 1:
            return escape_regex(vals[0])
        return "(" + "|".join(escape_regex(v) for v in vals) + ")"
    if fmt in ("csv", "raw"):
        return ",".join(vals)
    if fmt == "pipe":
        return "|".join(vals)
    if fmt in ("singlequote", "sqlstring"):
        return ",".join(_sql_quote(v) for v in vals)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in vals)
    raise ExpandError(f"unsupported variable format ':{fmt}' for ${var.name}")


def used_variables(text: str) -> list[str]:
    """Names of the template variables a query uses (macros and built-ins excluded)."""
    out = []
    for m in VARIABLE_RE.finditer(text):
        name = m.group(1) or m.group(2) or m.group(4)
        if name and not name.startswith("__") and name not in ("timeFilter", "interval") and name not in out:
            out.append(name)
    return out


def expand_variables(text: str, variables: Mapping[str, Variable], dialect: Dialect) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name.startswith("__"):
            raise ExpandError(f"unsupported macro or built-in ${name}")
        if name not in variables:
            raise ExpandError(f"undefined variable ${name}")
        return format_value(variables[name], fmt, dialect)

    return VARIABLE_RE.sub(sub, text)


# --------------------------------------------------------------------------- macros


def _macro_calls(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, name, argument)`` of each ``$__name(...)`` with balanced parentheses."""
    out = []
    for m in SQL_MACRO_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        if depth:
            raise ExpandError(f"unbalanced parentheses after $__{m.group(1)}(")
        out.append((m.start(), i, m.group(1), text[m.end() : i - 1].strip()))
    return out


def expand_sql_macros(sql: str, tr: TimeRange) -> str:
    frm, to = f"'{iso_z(tr.start)}'", f"'{iso_z(tr.end)}'"

    def one(name: str, arg: str) -> str:
        if name == "time":
            return f'{arg} AS "time"'
        if name == "timeFilter":
            return f"{arg} BETWEEN {frm} AND {to}"
        if name == "timeFrom":
            return frm
        if name == "timeTo":
            return to
        if name == "unixEpochFilter":
            return f"{arg} >= {tr.start_ms // 1000} AND {arg} <= {tr.end_ms // 1000}"
        if name == "unixEpochFrom":
            return str(tr.start_ms // 1000)
        if name == "unixEpochTo":
            return str(tr.end_ms // 1000)
        raise ExpandError(f"unsupported SQL macro $__{name}()")

    out, last = [], 0
    for start, end, name, arg in _macro_calls(sql):
        if start < last:
            raise ExpandError(f"nested macro $__{name}()")
        if name in ("time", "timeFilter", "unixEpochFilter") and not arg:
            raise ExpandError(f"$__{name}() needs a column")
        out.append(sql[last:start])
        out.append(one(name, expand_sql_macros(arg, tr) if "$__" in arg else arg))
        last = end
    out.append(sql[last:])
    return _builtins("".join(out), tr)


def expand_influx_macros(q: str, tr: TimeRange) -> str:
    f = f"time >= {tr.start_ms}ms and time <= {tr.end_ms}ms"
    q = re.sub(r"\$__timeFilter\b|\$timeFilter\b", f, q)
    return _builtins(q, tr)


def _builtins(text: str, tr: TimeRange) -> str:
    iv = interval_ms(tr)
    text = re.sub(r"\$__interval_ms\b|\$\{__interval_ms\}", str(iv), text)
    return re.sub(r"\$__interval\b|\$\{__interval\}|\$interval\b", duration_text(iv), text)


def expand_query(text: str, dialect: Dialect, tr: TimeRange, variables: Mapping[str, Variable]) -> str:
    """Macros first (they look like variables), then template variables."""
    text = expand_sql_macros(text, tr) if dialect == "sql" else expand_influx_macros(text, tr)
    return expand_variables(text, variables, dialect)


def variables_from(values: Mapping[str, Sequence[str]], multi: Mapping[str, bool] | None = None) -> dict[str, Variable]:
    multi = multi or {}
    return {k: Variable(k, tuple(v), multi.get(k, True)) for k, v in values.items()}
