"""Validate raw tables against the contract in the engine and build the canonical typed tables.

Every rule is a boolean Ibis expression. Parsed values (trimmed text, numbers, timestamps, UTC offsets)
are derived once per row in a few stacked projections, and the rules refer to them by name, so the SQL
stays small however many rules use a column. One aggregate query per table counts the rows that break
each rule (plus a few statistics); only for rules that fail does a second query fetch up to five example
values. Nothing is pulled into pandas, so this works on tables far bigger than memory. All hard problems
of all tables are collected before `SchemaError` is raised.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd
from ibis import _
from ibis.common.deferred import Deferred

from kamml.data.contract import TABLES, ColumnSpec, Kind, TableSpec
from kamml.data.quality import N_EXAMPLES, TableStats, plain_examples
from kamml.data.readers import (
    RawTable,
    backend_errors,
    clean_name,
    delimiter_problem,
    engine_message,
    floor_to_microseconds,
    source_files,
    unreadable_hint,
    untyped_null,
)
from kamml.engine import engine_failure
from kamml.errors import DataError, Problem
from kamml.io import (
    INT_PATTERN,
    NAN_PATTERN,
    NUMBER_PATTERN,
    OUTSIDE_INT64_RULE,
    UTF8_FIX,
    WHOLE_FLOAT_PATTERN,
)

__all__ = ["TablePlan", "Validated", "plan_table", "validate_tables"]

log = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1
#: The largest total size of a table's amounts or hours: the features multiply such sums (slopes, BTYD's
#: value), and 1e300 leaves them room below the largest float (1.8e308).
MAX_TOTAL = 1e300
#: A time of day followed by a UTC offset at the end of a date text (+HH:MM:SS, +HH:MM, +HHMM or +HH; the
#: engine applies an offset's seconds too).
TZ_TAIL_PATTERN = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*[+-][0-9]{2}(:?[0-9]{2}(:[0-9]{2})?)?$"
#: An offset with seconds at the end of a date text; groups: the sign and hours, the minutes, the seconds.
OFFSET_SECONDS_PATTERN = r"([+-][0-9]{2}):([0-9]{2}):([0-9]{2})$"
#: A time of day followed by a named time zone ("EST", "America/New_York"), which the engine applies too.
ZONE_NAME_PATTERN = (
    r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s+[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
)
#: A time of day and its UTC offset in forms an engine may not parse: blanks between them ("10:00:00
#: +0100", Ruby's and Rails' exports; neither engine) or no seconds ("10:00+01:00", "10:00Z"; Spark), and
#: a Z after a blank ("10:00:00 Z"; DuckDB). Groups: the
#: text up to the minutes, the seconds, their fraction, the offset; rejoined as "10:00:00+0100".
LOOSE_OFFSET_PATTERN = r"^(.*?[0-9]{2}:[0-9]{2})(:[0-9]{2}([.,][0-9]+)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
#: The date texts kamml reads, on either engine: an ISO day (one-digit month and day too), maybe a time
#: (hours 0 to 23, minutes, maybe seconds and a fraction), maybe then Z, a UTC offset of two-digit hours
#: or a zone's name (an upper-case abbreviation or Region/City, each part capitalised). The engines' casts
#: read other text apart: 2024-01, 2024 and 2024-01-05T10 on Spark only, 2024/01/05, 24:00:00 and lower-case
#: zone names (utc, europe/london) on DuckDB only; such text is an unparseable date on both.
DATE_TEXT_PATTERN = (
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ]([01]?[0-9]|2[0-3]):[0-9]{1,2}(:[0-9]{2}([.,][0-9]+)?)?"
    r"(\s*(Z|[+-][0-9]{2}(:?[0-9]{2}(:[0-9]{2})?)?)"
    r"|\s+([A-Z]{3}[A-Z0-9_:+-]*|[A-Z][A-Za-z0-9_+-]*(/[A-Z][A-Za-z0-9_+-]*)+))?)?$"
)

#: Zone abbreviations whose common meanings lie hours apart, where the engine takes one (ICU: BST is
#: Bangladesh, not British Summer Time; IST India, not Ireland or Israel; CST Chicago, not China):
#: refused in dates. EST, PST and the other North American ones mean what US exports mean.
AMBIGUOUS_ZONES = ("BST", "IST", "CST", "AST", "GST", "ECT", "SST")

_EXPECTED = {
    Kind.ID: "whole numbers or text",
    Kind.TIMESTAMP: "dates or timestamps (or text such as 2024-01-31 or 2024-01-31T10:00:00)",
    Kind.FLOAT: "numbers (or text such as 12.5)",
}


@dataclass(frozen=True)
class Context:
    """What the canonical columns depend on once every table is counted."""

    keys_as_int: bool
    values: Mapping[str, Any]


Builder = Callable[[Context], Deferred]


@dataclass
class _Rule:
    """A rule as a deferred expression: `bad` is true on rows that break it."""

    column: str | None
    rule: str
    bad: Deferred
    example: Deferred | None
    hard: bool = True
    key: str = ""
    order: Deferred | None = None  # the examples' order (`_examples`), when not the example's own


@dataclass(frozen=True)
class _TzCheck:
    """Counts of values with and without a UTC offset in one text date column, and how many offsets."""

    column: str
    keys: tuple[str, str, str]
    text: Deferred
    ok: Deferred
    has_offset: Deferred
    normal: Deferred


@dataclass(frozen=True)
class _TypedZone:
    """A typed date column whose file says whether it is time-zone-aware (Parquet), and its dates' count."""

    column: str
    zoned: bool
    dated: str  # the metric counting its dates
    ok: Deferred
    value: Deferred


@dataclass(frozen=True)
class _FiniteCheck:
    """Infinite values of a numeric attribute: refused when the column is a number (`_plan_extra`)."""

    column: str
    bad: Deferred
    example: Deferred
    infinite: str  # the metric counting them
    not_float: str | None  # the metric counting text values that are no number (then it is text)


@dataclass(frozen=True)
class _ThousandsCheck:
    """Counts of one number column's values written with a decimal point, and of those that look grouped."""

    column: str
    dotted: str  # the metric counting values with a decimal point
    grouped: str  # the metric counting those of 1-3 digits, a point and exactly 3 digits (1.017)
    bad: Deferred
    example: Deferred
    unless: tuple[str, ...] = ()  # metrics that are not all zero where the column is not read as numbers


#: A semicolon-delimited export's amounts look like thousands written with a dot (1.017 for 1,017) when
#: at least `THOUSANDS_MIN_DOTTED` values have a decimal point and `THOUSANDS_SHARE` of them are 1-3
#: digits, a point and 3 digits. Money has 2 decimals and measured numbers a varying count, so a column
#: where 9 in 10 dotted values have exactly 3 (and at most 3 digits before the point) is very unlikely
#: to hold real decimals; 20 values keep a handful of 3-decimal prices (unit prices, a few currencies with
#: 3 decimals) from raising it. A heuristic, so a note, never an error.
THOUSANDS_MIN_DOTTED = 20
THOUSANDS_SHARE = 0.9
#: A number as a dot-thousands export writes one: up to 3 digits, a point, 3 digits (1.017, -12.500).
GROUPED_PATTERN = r"^[+-]?[0-9]{1,3}\.[0-9]{3}$"
#: A number written with a decimal point (12.99, 1.017, .5).
DOTTED_PATTERN = r"^[+-]?[0-9]*\.[0-9]+$"


@dataclass
class TablePlan:
    """Everything needed to check one table and turn it into its canonical form.

    Attributes
    ----------
    name : str
        Contract table name.
    raw : RawTable
        The table as read.
    found : dict of str to str
        kamml column name -> the raw column holding it.
    problems : list of Problem
        Hard problems known before any query (missing columns, header problems).
    notes : list of Problem
        Soft notes known before any query (an optional column's name written another way).
    type_problems : list of Problem
        Columns of a wrong type: hard problems unless the table is empty.
    epoch_checks : list of (int, str, str)
        Date columns of numbers: (index in `type_problems`, metrics of their least and greatest value),
        so the problem can say which epoch unit the numbers look like.
    stages : list of dict
        Derived columns, computed in this order, each stage from the columns of the ones before.
    rules : list
        Row rules to count in the engine.
    metrics : dict of str to Deferred
        Extra aggregates (min/max dates, distinct ids, ...) computed in the same query.
    builders : dict of str to callable
        kamml name -> function of the `Context` giving the canonical column.
    key_metrics : list of str
        Metrics counting text account keys that are not whole numbers (all zero: keys become int64).
    int_distinct : dict of str to str
        Metrics counting distinct whole-number ids -> the raw id column: counted by a bitmap where
        the engine has one (`_bitmap_distinct`).
    total_checks : list of (str, str, Deferred)
        Amount and hours columns: (raw column, metric of the column's total size, the parsed value).
    thousands_checks : list of _ThousandsCheck
        Number columns of a semicolon-delimited CSV, whose dotted values may be thousands (1.017).
    values : dict
        The results of the aggregate query.
    """

    name: str
    raw: RawTable
    found: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    stages: list[dict[str, Deferred]] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    metrics: dict[str, Deferred] = field(default_factory=dict)
    builders: dict[str, Builder] = field(default_factory=dict)
    key_metrics: list[str] = field(default_factory=list)
    int_distinct: dict[str, str] = field(default_factory=dict)
    type_problems: list[Problem] = field(default_factory=list)
    epoch_checks: list[tuple[int, str, str]] = field(default_factory=list)
    tz_checks: list[_TzCheck] = field(default_factory=list)
    typed_zones: list[_TypedZone] = field(default_factory=list)
    finite_checks: list[_FiniteCheck] = field(default_factory=list)
    total_checks: list[tuple[str, str, Deferred]] = field(default_factory=list)
    thousands_checks: list[_ThousandsCheck] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    _staged: ir.Table | None = None

    @property
    def spec(self) -> TableSpec:
        """The contract of this table."""
        return TABLES[self.name]

    @property
    def source(self) -> ir.Table:
        """The raw Ibis table (only valid when the header was readable)."""
        assert self.raw.table is not None
        return self.raw.table

    @property
    def table(self) -> ir.Table:
        """The raw table with every derived column, one projection per stage."""
        if self._staged is None:
            table = self.source
            for stage in self.stages:
                # view() keeps each stage a subquery, so a derived value is computed once, not inlined
                table = table.mutate(**stage).view()
            self._staged = table
        return self._staged

    def derive(self, level: int, hint: str, expr: Deferred) -> Deferred:
        """Compute `expr` once per row at stage `level` and return a reference to it."""
        while len(self.stages) <= level:
            self.stages.append({})
        name = f"_kamml_{sum(map(len, self.stages))}_{hint}"
        self.stages[level][name] = expr
        return _[name]

    def add(
        self,
        column: str | None,
        rule: str,
        bad: Deferred,
        example: Deferred | None,
        hard: bool = True,
        *,
        order: Deferred | None = None,
    ) -> None:
        """Register a row rule; its count is computed in the table's aggregate query.

        `order` sorts the examples when the example's own order is not its value's (a CSV's text).
        """
        key = f"rule_{len(self.rules)}"
        self.rules.append(_Rule(column, rule, bad, example, hard, key=key, order=order))

    def metric(self, name: str, value: Deferred) -> str:
        """Register an extra aggregate and return its key."""
        key = f"m_{len(self.metrics)}_{name}"
        self.metrics[key] = value
        return key


@dataclass
class Validated:
    """Canonical tables and what the checks found (see `validate_tables`)."""

    tables: dict[str, ir.Table]
    stats: dict[str, TableStats]
    notes: list[Problem]
    problems: list[Problem]
    max_ts: pd.Timestamp | None
    costly: frozenset[str] = frozenset()


# --- planning: one rule set per table ----------------------------------------------------------------


def plan_table(
    raw: RawTable,
    mapping: Mapping[str, str],
    *,
    end: pd.Timestamp | None,
    today: pd.Timestamp,
) -> TablePlan:
    """Find the contract's columns in a raw table and express every rule on them.

    Parameters
    ----------
    raw : RawTable
        The table as read.
    mapping : mapping of str to str
        kamml column name -> the user's column name (see `kamml.data.contract.column_mapping`).
        Names match ignoring case and surrounding spaces, as SQL engines do.
    end : pandas.Timestamp, optional
        Exclusive data end from the config; ``ts`` at or after it is an error.
    today : pandas.Timestamp
        Midnight UTC of today; ``ts`` on a later day is an error.

    Returns
    -------
    TablePlan
    """
    plan = TablePlan(raw.name, raw, problems=list(raw.problems))
    if raw.table is None:
        return plan
    spec = plan.spec
    raw_columns = list(raw.table.columns)
    by_key = {clean_name(c).lower(): c for c in raw_columns}
    for kamml_name, user_name in mapping.items():
        column = by_key.get(clean_name(user_name).lower())
        if column is not None:
            plan.found[kamml_name] = column
        elif user_name != kamml_name and not _is_required(spec, kamml_name):
            # a required column is reported missing below; an optional one mapped to nothing was silently
            # dropped, and a raw column with kamml's own name could then pass as a static attribute
            plan.problems.append(_mapped_missing(raw, kamml_name, user_name, raw_columns))
    plan.notes.extend(_spelled_otherwise(raw, spec, mapping, plan.found, raw_columns))
    missing = [c.name for c in spec.columns if c.required and c.name not in plan.found]
    for name in missing:
        plan.problems.append(_missing(raw, name, mapping, raw_columns))
    wrong_delimiter = delimiter_problem(raw) if missing else None
    if wrong_delimiter is not None:
        plan.problems.append(wrong_delimiter)
    for kamml_name, column in plan.found.items():
        known = spec.column(kamml_name)
        if known is None:
            continue
        if known.kind is Kind.ID:
            _plan_id(plan, known, column)
        elif known.kind is Kind.TIMESTAMP:
            _plan_timestamp(plan, known, column, end=end, today=today)
        elif known.kind is Kind.FLOAT:
            _plan_float(plan, known, column)
        else:
            _plan_string(plan, known, column)
    if spec.keep_extra:
        used = set(plan.found.values())
        for kamml_name, column in plan.found.items():
            if spec.column(kamml_name) is None:
                _plan_extra(plan, kamml_name, column)
        taken = {n.lower() for n in plan.found}
        for column in raw_columns:
            if column in used or clean_name(column).lower() in taken:
                continue
            if re.fullmatch(NAMELESS_PATTERN, clean_name(column)):  # row numbers, or empty columns
                c = _[column]
                plan.add(column, NAMELESS_RULE, c.notnull(), c, hard=False)
                continue
            _plan_extra(plan, clean_name(column), column)
    else:
        dropped = [c for c in raw_columns if c not in plan.found.values()]
        if dropped:
            log.debug("%s: ignoring columns the contract does not use: %s", raw.name, ", ".join(dropped))
    _plan_table_rules(plan)
    return plan


def _is_required(spec: TableSpec, name: str) -> bool:
    known = spec.column(name)
    return known is not None and known.required


def _mapped_missing(raw: RawTable, name: str, user: str, columns: list[str]) -> Problem:
    """A column named in data.columns that the table does not have."""
    found = ", ".join(columns) if columns else "none"
    return Problem(
        raw.name,
        user,
        f"column mapped in data.columns.{raw.name} (as kamml's {name}) not found; columns found: {found}",
    )


def _missing(raw: RawTable, name: str, mapping: Mapping[str, str], columns: list[str]) -> Problem:
    user = mapping.get(name, name)
    found = ", ".join(columns) if columns else "none"
    rule = "missing required column"
    if user != name:
        rule += f" (kamml's {name}, mapped in data.columns.{raw.name})"
    rule += f"; columns found: {found}"
    if user != name and name.lower() in {clean_name(c).lower() for c in columns}:
        rule += f"; the table has a column '{name}': check the mapping"
    # a CRM's "Account ID" or "AccountId": names match ignoring case only, so say which mapping reads it;
    # two such columns are both named (no guessing between them, as `_spelled_otherwise`)
    alike = [clean_name(c) for c in columns if _squeezed(c) == _squeezed(name)] if user == name else []
    settings = " or ".join(_mapping(raw.name, name, c) for c in alike)
    if len(alike) == 1:
        rule += f"; '{alike[0]}' looks like it: rename it, or set {settings} in the config"
    elif alike:
        named = ", ".join(f"'{c}'" for c in alike[:-1]) + f" and '{alike[-1]}'"
        every = "both" if len(alike) == 2 else "all"
        rule += f"; {named} {every} look like it: rename the one holding it, or set {settings} in the config"
    elif user == name and columns:
        # no column looks like it (a CDNOW-style "customer_id"): say how a column of another name is read
        rule += f"; name a column {name}, or map yours: {_mapping(raw.name, name, '<column>')}"
    return Problem(raw.name, user, rule)


def _mapping(table: str, name: str, header: str) -> str:
    """The config setting that reads the column `header` of `table` as kamml's column `name`."""
    return f"data.columns: {{{table}: {{{name}: {json.dumps(header)}}}}}"


def _spelled_otherwise(
    raw: RawTable, spec: TableSpec, mapping: Mapping[str, str], found: Mapping[str, str], columns: list[str]
) -> list[Problem]:
    """Notes for optional columns whose name is written another way ("Transaction ID", "createdAt").

    As a required column's (`_missing`), the name is not matched by guessing: such a column was passed
    over without a word (no deduplication by id, no account age). Only a column that alone looks like the
    contract's name is named, and only when the config maps no other name to it.
    """
    notes = []
    used = set(found.values())
    for cspec in spec.columns:
        if cspec.required or cspec.name in found or mapping.get(cspec.name, cspec.name) != cspec.name:
            continue
        alike = [c for c in columns if c not in used and _squeezed(c) == _squeezed(cspec.name)]
        if len(alike) != 1:  # none, or two candidates: no guessing between them
            continue
        header = clean_name(alike[0])
        setting = _mapping(raw.name, cspec.name, header)
        rule = (
            f"looks like kamml's optional column {cspec.name} ({cspec.description}) written another way, "
            f"so it is not read as {cspec.name}: rename it, or set {setting} in the config"
        )
        notes.append(Problem(raw.name, header, rule))
    return notes


def _no_date_hint(cspec: ColumnSpec) -> str:
    """What to write in an optional date column (created_at, contract_end) where there is no date.

    CRMs write 9999-12-31 for a contract without an end; kamml reads no date after 2262-04-11.
    """
    if not cspec.nullable:
        return ""
    case = " (an open-ended contract)" if cspec.name == "contract_end" else ""
    return f"; where there is none{case}, leave it empty, not a date such as 9999-12-31"


def _squeezed(name: str) -> str:
    """A column name without case, spaces, underscores, dashes or points ("Account ID" as account_id)."""
    return re.sub(r"[\s_.-]", "", clean_name(name)).lower()


def _mapped(plan: TablePlan, cspec: ColumnSpec) -> str:
    """A note naming kamml's column when the user's column has another name."""
    column = plan.found[cspec.name]
    return "" if clean_name(column).lower() == cspec.name else f" [{cspec.name}]"


#: Text that stands for a missing value in exports (upper case): refused as an id, noted as an owner.
#: "NA" is left out: it is also a code (North America, Namibia).
NULL_MARKERS = ("NULL", "NONE", "NAN", "N/A", "#N/A", "NIL")

#: What an unparseable number should look like: spreadsheets write 1,5 or 1.234,56 or $12.50.
NUMBER_HINT = "; write 1234.56 (a decimal point, no thousands separators, currency signs or units)"
#: What an unparseable date should look like: spreadsheets write 31/01/2024 or 31-Jan-2024.
DATE_HINT = "; write dates as ISO 8601, such as 2024-01-31 or 2024-01-31T10:00:00"

#: A column without a name in its header, as the CSV reader names it (``unnamed_4``) or pandas reads one
#: back (``Unnamed: 0``, the row numbers ``to_csv()`` writes by default).
NAMELESS_PATTERN = r"unnamed_[0-9]+|Unnamed: [0-9]+(_level_[0-9]+)?"
NAMELESS_RULE = (
    "a column without a name in the header (an export's row numbers, such as pandas' to_csv() writes, or "
    "empty trailing columns): not read as an attribute; name it in the header to use it"
)

#: An id as a spreadsheet or a float writes a large number: one digit, a fraction, a signed exponent
#: (4.50000E+15, 1.2e+16). Codes such as "1E5" have no sign and stay ids.
SCIENTIFIC_ID_PATTERN = r"^-?[0-9](\.[0-9]+)?[eE][+-][0-9]{1,3}$"

_NULLS: dict[Kind, dt.DataType] = {Kind.ID: dt.int64, Kind.TIMESTAMP: dt.Timestamp(), Kind.FLOAT: dt.float64}


def _wrong_type(plan: TablePlan, cspec: ColumnSpec, column: str, dtype: dt.DataType) -> None:
    """A column of the wrong type: an error unless the table turns out empty (then it is a typed null).

    An optional column of only nulls that Parquet wrote without a type (`untyped_null`) is no error: it
    is missing values, as the same column from a pandas frame or a CSV file reads (an audit). A required
    one is said to be empty: its type (DuckDB's "unknown(... NULL)", Spark's null) told the user nothing.
    """
    if cspec.nullable and untyped_null(dtype):
        null = ibis.null(_NULLS.get(cspec.kind, dt.string))
        # a deferred of the column, so that it combines with the other columns' deferred expressions
        plan.builders[cspec.name] = _fixed(ibis.ifelse(_[column].isnull(), null, null))
        return
    expected = _EXPECTED.get(cspec.kind, "text")
    if untyped_null(dtype):
        rule = (
            "required column is empty: it holds only nulls (Parquet's null type, as pyarrow writes a "
            f"column of only None); fill in its values, {expected}{_mapped(plan, cspec)}"
        )
    else:
        rule = f"wrong type: expected {expected}, got {dtype}{_mapped(plan, cspec)}"
    plan.type_problems.append(Problem(plan.name, column, rule))
    if cspec.kind is Kind.ID:
        # an empty table's id column (an extract of untyped columns) takes the book's id type: int64
        # beside text ids failed the relationship notes and the features' joins with an Ibis type error
        def builder(ctx: Context) -> Deferred:
            return ibis.null(dt.int64 if _as_int(ctx, cspec) else dt.string)

        plan.builders[cspec.name] = builder
        return
    plan.builders[cspec.name] = _fixed(ibis.null(_NULLS.get(cspec.kind, dt.string)))


def _plan_id(plan: TablePlan, cspec: ColumnSpec, column: str) -> None:
    """Ids: whole numbers or text, never null or empty when they name an account."""
    c = _[column]
    dtype = plan.source[column].type()
    tag = _mapped(plan, cspec)
    key: Deferred
    builder: Builder
    if dtype.is_integer():
        null = c.isnull()
        key = c
        if dtype.is_uint64():  # kamml keeps ids as int64: larger unsigned ids would wrap or fail in a join
            too_big = c > ibis.literal(_INT64_MAX, type="uint64")
            plan.add(column, f"{OUTSIDE_INT64_RULE}{tag}", too_big, c)

        def builder(ctx: Context) -> Deferred:
            return c.cast("int64") if _as_int(ctx, cspec) else c.cast("int64").cast("string")

    elif dtype.is_decimal():
        # exactly, not through a float: decimal(38,0) ids (Snowflake's and Oracle's NUMBER) above 2**53
        # were rounded to a float's 53 bits, and two accounts became one
        i = plan.derive(0, "id", c.try_cast("int64"))  # null beyond int64
        null = c.isnull()
        plan.add(column, f"not a whole number (ids must be whole numbers or text){tag}", ~null & (i != c), c)
        plan.add(column, f"{OUTSIDE_INT64_RULE}{tag}", ~null & i.isnull(), c)
        key = i

        def builder(ctx: Context) -> Deferred:
            return i if _as_int(ctx, cspec) else i.cast("string")

    elif dtype.is_floating():
        f = plan.derive(0, "id", c.cast("float64"))
        null = f.isnull() | _nan(plan, f)
        plan.add(
            column,
            f"not a whole number (ids must be whole numbers or text){tag}",
            ~null & (_infinite(f) | ((f % 1.0) != 0) | (f.abs() >= 2.0**63)),
            c,
        )
        key = f

        def builder(ctx: Context) -> Deferred:
            as_int = ibis.ifelse(null, ibis.null("float64"), f).cast("int64")
            return as_int if _as_int(ctx, cspec) else as_int.cast("string")

    elif dtype.is_string():
        _refuse_bad_utf8(plan, cspec, column)
        s = plan.derive(0, "id", _whole_float_text(_trim(c)))
        null = c.isnull() | (s.length() == 0)
        # a spreadsheet's or database's word for "no value": pandas reads these as missing, and an
        # account named NULL was scored like any other
        marker = _trim(c).upper().isin(NULL_MARKERS)
        plan.add(column, f"a null marker where an id goes (the id is missing){tag}", marker, c)
        # a spreadsheet's number format: 4.50000E+15 keeps 6 of 16 digits, so accounts merged in silence
        rounded = _trim(c).re_search(SCIENTIFIC_ID_PATTERN)
        rule = (
            "an id in scientific notation (a spreadsheet rounded it, so accounts may merge): format the "
            f"column as text before exporting, or export it from the source system{tag}"
        )
        plan.add(column, rule, rounded, c)
        # two exports joined: the accounts' second header was an account named for the id column, whose
        # other columns' names became its attributes, and made every id text, without a word
        header = _trim(c).lower() == column.strip().lower()
        rule = f"the column's own name as an id: a header line repeated inside the file? remove it{tag}"
        plan.add(column, rule, header, c)
        # 18 digits always fit int64; 19 (or 18 and a minus) are int64's only up to its limits, 2**63 - 1
        whole = s.re_search(INT_PATTERN) & ((s.length() < 19) | s.try_cast("int64").notnull())
        not_int = plan.metric(f"{cspec.name}_not_int", ((s.length() > 0) & ~whole).cast("int64").sum())
        if cspec.key:
            plan.key_metrics.append(not_int)
        key = s

        def builder(ctx: Context) -> Deferred:
            text = s.nullif("")
            as_int = ctx.keys_as_int if cspec.key else _count(ctx.values.get(not_int)) == 0
            return text.cast("int64") if as_int else text

    else:
        _wrong_type(plan, cspec, column, dtype)
        return
    if not cspec.nullable:
        plan.add(column, f"null or empty id{tag}", null, None)
    plan.builders[cspec.name] = builder
    distinct: list[str] = []
    if cspec.name == "account_id":
        distinct.append("accounts")
    if cspec.name == "transaction_id" or (plan.name == "accounts" and cspec.name == "account_id"):
        # a blank id is no id, in the notes' groups as in the counts and the drop ("" kept as an id
        # gave "-1 rows" of duplicates, and an exact repeat beside blank ids read as lines that differ)
        plan.values[f"{cspec.name}_key"] = ibis.ifelse(null, ibis.null(), key)
        plan.metrics[f"{cspec.name}_nonnull"] = plan.values[f"{cspec.name}_key"].count()
        distinct.append(f"{cspec.name}_distinct")
    for metric in distinct:
        plan.metrics[metric] = ibis.ifelse(null, ibis.null(), key).nunique()
        if dtype.is_integer() and not dtype.is_uint64():  # the bitmap's bounds are int64
            plan.int_distinct[metric] = column


def _as_int(ctx: Context, cspec: ColumnSpec) -> bool:
    """Numeric ids stay int64 unless a key elsewhere is text (then every key is text, so joins work)."""
    return ctx.keys_as_int if cspec.key else True


def _plan_timestamp(
    plan: TablePlan, cspec: ColumnSpec, column: str, *, end: pd.Timestamp | None, today: pd.Timestamp
) -> None:
    """Dates: typed timestamps (tz-aware become naive UTC) or ISO text with one consistent time zone."""
    c = _[column]
    dtype = plan.source[column].type()
    tag = _mapped(plan, cspec)
    hint = cspec.name
    if dtype.is_timestamp() or dtype.is_date():
        nanoseconds = dtype.is_timestamp() and (dtype.scale or 6) > 6 and _engine_name(plan) == "duckdb"
        typed = floor_to_microseconds(c) if nanoseconds else c.cast(dt.Timestamp())
        raw = plan.derive(0, hint, typed)
        ts = plan.derive(1, hint, _in_range(raw))
        missing = c.isnull()
        plan.add(
            column,
            f"date outside {TS_RANGE[0]} to {TS_RANGE[1]}{tag}{_no_date_hint(cspec)}",
            raw.notnull() & ts.isnull(),
            c,
        )
        if plan.raw.zoned is not None:  # converted to UTC when zoned; the note beside others as text's
            dated = plan.metric(f"{hint}_dated", ts.notnull().cast("int64").sum())
            plan.typed_zones.append(_TypedZone(column, column in plan.raw.zoned, dated, ts.notnull(), c))
    elif dtype.is_string():
        s = plan.derive(0, hint, _trim(c))
        missing = c.isnull() | (s.length() == 0)
        # parsed as an instant (a UTC offset in the text is applied; none means UTC), then naive UTC;
        # "infinity" and dates pandas cannot hold count as unparseable, and so do the engines' other
        # special words ("epoch" was read as 1970-01-01) and every text not of `DATE_TEXT_PATTERN`'s
        # forms, which the two engines' casts read apart (2024-01 as January 1st on Spark only)
        # ISO 8601's decimal comma ("10:00:00,5", as Python's logging writes times) neither cast reads;
        # `shaped` admits a comma only there, so a point in its place reads the same time (one cast)
        point = s.replace(",", ".")
        cast = point.try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
        cast = ibis.ifelse(cast.isnull(), _loose_offset(point), cast)
        cast = _later_of_repeated_hour(plan, point, cast)
        shaped = s.re_search(DATE_TEXT_PATTERN)
        parsed = plan.derive(1, hint, ibis.ifelse(shaped, cast, ibis.null(dt.Timestamp())))
        ts = plan.derive(2, hint, _in_range(parsed))
        has_offset, normal = _utc_offset(plan, s, hint)
        outside = f"(or outside {TS_RANGE[0]} to {TS_RANGE[1]})"
        rule = f"unparseable date {outside}{DATE_HINT}{tag}{_no_date_hint(cspec)}"
        unparsed = ~missing & ts.isnull()
        # numbers that read as Unix epoch times get their own rule, which names the unit they look like
        unit = plan.derive(3, hint, ibis.ifelse(unparsed, _epoch_unit(s), ibis.null("string")))
        # a date and time whose zone abbreviation the engines' casts do not know (EDT, CEST): a plain
        # "unparseable date" hid that the date was fine and only the zone needed writing as an offset
        abbreviation = r"\s+[A-Z]{3}[A-Z0-9_:+-]*$"
        bare = s.re_replace(abbreviation, "")
        # only the unparsed rows pay for the second cast (as `unit` above)
        zoned = s.re_search(abbreviation) & bare.try_cast(dt.Timestamp()).notnull()
        unknown_zone = ibis.ifelse(unparsed & shaped, zoned, False)
        plan.add(column, rule, unparsed & unit.isnull() & ~unknown_zone, c)
        rule = (
            "a time zone abbreviation the engines do not know (EDT, CEST, ...): write the offset (-04:00) "
            f"or the zone's name (America/New_York){tag}"
        )
        plan.add(column, rule, unknown_zone, c)
        for code, word, _scale in EPOCH_UNITS:
            rule = f"unparseable date: numbers that look like Unix epoch {word}{_epoch_hint(code)}{tag}"
            plan.add(column, rule, unit.notnull() & (unit == code), c)
        # the engine picks one meaning of each (BST as Bangladesh, +06:00, where a British export means
        # +01:00): hours off, events moved across days and cutoffs
        ambiguous = s.re_search(ZONE_NAME_PATTERN) & normal.upper().isin(AMBIGUOUS_ZONES)
        rule = (
            "a time zone abbreviation with more than one meaning (BST, IST, CST, ...): write the offset "
            f"(+01:00) or the zone's name (Europe/London){tag}"
        )
        plan.add(column, rule, ambiguous, c)
        ok = ~missing & ts.notnull()
        keys = (
            plan.metric(f"{hint}_with_offset", (ok & has_offset).cast("int64").sum()),
            plan.metric(f"{hint}_without_offset", (ok & ~has_offset).cast("int64").sum()),
            plan.metric(f"{hint}_offsets", ibis.ifelse(ok & has_offset, normal, ibis.null()).nunique()),
        )
        plan.tz_checks.append(_TzCheck(column, keys, c, ok, has_offset, normal))
    else:
        index = len(plan.type_problems)
        _wrong_type(plan, cspec, column, dtype)
        if len(plan.type_problems) > index and dtype.is_numeric():
            # epoch times? the problem says so once the least and greatest number are counted
            lo = plan.metric(f"{hint}_min", c.min().cast("float64"))
            plan.epoch_checks.append((index, lo, plan.metric(f"{hint}_max", c.max().cast("float64"))))
        return
    if not cspec.nullable:
        plan.add(column, f"missing date{tag}", missing, None)
    if cspec.name == "ts":
        if end is not None:
            last = (end - pd.Timedelta(days=1)).date()
            rule = f"after the data end (config data.end: {last}, the last day included){tag}"
            plan.add(column, rule, ts >= end, c, order=ts)
        tomorrow = today + pd.Timedelta(days=1)
        future = ts >= tomorrow
        if end is not None:
            future = future & (ts < end)
        plan.add(column, f"in the future (after today, {today.date()}){tag}", future, c, order=ts)
    elif cspec.name == "created_at":  # an account dated later has no age at any cutoff (feature missing)
        later = end if end is not None else today + pd.Timedelta(days=1)
        since = "the data end" if end is not None else f"today, {today.date()}"
        rule = f"created after {since}: the account's age is unknown at every cutoff{tag}"
        plan.add(column, rule, ts >= later, c, hard=False, order=ts)
    plan.metrics[f"{cspec.name}_min"] = ts.min()
    plan.metrics[f"{cspec.name}_max"] = ts.max()
    plan.builders[cspec.name] = _fixed(ts)


#: Units of Unix epoch times (code, name, per second), and the seconds a date given so is taken to lie in
#: (1973-03-03 to 2099-12-03) for kamml to say that numbers look like one: the units' ranges do not meet.
EPOCH_UNITS = (
    ("s", "seconds", 1),
    ("ms", "milliseconds", 10**3),
    ("us", "microseconds", 10**6),
    ("ns", "nanoseconds", 10**9),
)
EPOCH_SECONDS = (1e8, 4.1e9)


def _epoch_unit(s: Deferred) -> Deferred:
    """The `EPOCH_UNITS` code a text of digits (and a fraction) would be an epoch time in, or null."""
    number = ibis.ifelse(s.re_search(r"^[0-9]+(\.[0-9]*)?$"), s.try_cast("float64"), ibis.null("float64"))
    lo, hi = EPOCH_SECONDS
    cases = [(number.between(lo * k, hi * k), code) for code, _word, k in EPOCH_UNITS]
    return ibis.cases(*cases, else_=ibis.null("string"))


def epoch_unit(lo: float | None, hi: float | None) -> str | None:
    """The `EPOCH_UNITS` code both ends of a column's numbers would be epoch times in, if one."""
    if lo is None or hi is None:
        return None
    for code, _word, k in EPOCH_UNITS:
        if EPOCH_SECONDS[0] * k <= lo and hi <= EPOCH_SECONDS[1] * k:
            return code
    return None


def _with_epoch_hints(plan: TablePlan) -> list[Problem]:
    """The table's type problems, those of date columns whose numbers look like epoch times saying so."""
    out = list(plan.type_problems)
    for index, lo, hi in plan.epoch_checks:
        code = epoch_unit(plan.values.get(lo), plan.values.get(hi))
        if code is not None:
            word = next(w for c, w, _k in EPOCH_UNITS if c == code)
            problem = out[index]
            rule = f"{problem.rule}; the numbers look like Unix epoch {word}{_epoch_hint(code)}"
            out[index] = Problem(problem.table, problem.column, rule, problem.n_rows, problem.examples)
    return out


def _epoch_hint(code: str) -> str:
    """What to do with dates written as epoch numbers: kamml refuses to guess their unit."""
    k = next(scale for c, _word, scale in EPOCH_UNITS if c == code)
    return (
        f" ({1704067200 * k} would be 2024-01-01); kamml does not guess a number's unit: convert the column "
        f'before saving it (pandas: pd.to_datetime(x, unit="{code}")) or write dates such as 2024-01-31'
    )


TS_RANGE = ("1677-09-22", "2262-04-11")
"""Dates kamml accepts: those a pandas timestamp (nanoseconds) can hold; infinity and the rest are refused."""


def _in_range(ts: Deferred) -> Deferred:
    """`ts` where it lies in `TS_RANGE`, else null (so infinite or far dates never reach an aggregate)."""
    lo, hi = (ibis.literal(pd.Timestamp(d).to_pydatetime(), type=dt.Timestamp()) for d in TS_RANGE)
    return ibis.ifelse((ts >= lo) & (ts <= hi), ts, ibis.null(dt.Timestamp()))


def _loose_offset(s: Deferred) -> Deferred:
    """A date text of `LOOSE_OFFSET_PATTERN`'s forms, parsed as "10:00:00+0100"; null for other text.

    Used only where the engine's own cast failed (a regex on every value costs on millions of rows). The
    text is rejoined from the groups because Spark and DuckDB spell a replacement's back-references apart.
    """
    head, seconds, offset = (s.re_extract(LOOSE_OFFSET_PATTERN, i) for i in (1, 2, 4))
    joined = head + ibis.ifelse(seconds == "", ":00", seconds) + offset  # "" where a group is unmatched
    parsed = joined.try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
    return ibis.ifelse(s.re_search(LOOSE_OFFSET_PATTERN), parsed, ibis.null(dt.Timestamp()))


def _utc_offset(plan: TablePlan, s: Deferred, hint: str) -> tuple[Deferred, Deferred]:
    """Whether a date text ends in a time zone (Z, +HH:MM, +HHMM, +HH or a zone's name after a time), and it.

    The offset is normalised to +HH:MM so that "+02", "+0200", "+02:00" and "+02:00:00" count as one time
    zone (+HH:MM:SS when its seconds are not 0; they were counted as no offset); a named zone
    ("America/New_York") is its name. Only computed for values that have one. A named zone counts as one
    so that naive text beside it is the mixed-zone error, as beside "-05:00".
    """
    named = s.re_search(ZONE_NAME_PATTERN)
    has_offset = plan.derive(1, hint, s.endswith("Z") | s.re_search(TZ_TAIL_PATTERN) | named)
    tail6, tail5 = s.right(6), s.right(5)
    hours, minutes, seconds = (s.re_extract(OFFSET_SECONDS_PATTERN, i) for i in (1, 2, 3))
    normal = plan.derive(
        2,
        hint,
        ibis.cases(
            (~has_offset, ibis.null("string")),
            (s.endswith("Z"), "+00:00"),
            (named, s.re_extract(r"([A-Za-z][A-Za-z0-9_/+-]*)$", 1)),
            (
                s.re_search(OFFSET_SECONDS_PATTERN),
                hours + ":" + minutes + ibis.ifelse(seconds == "00", "", ":" + seconds),
            ),
            (tail6.re_search("^[+-][0-9]{2}:[0-9]{2}$"), tail6),
            (tail5.re_search("^[+-][0-9]{4}$"), tail5.substr(0, 3) + ":" + tail5.substr(3, 2)),
            else_=s.right(3) + ":00",
        ),
    )
    return has_offset, normal


#: How far a DST change may set clocks back (Lord Howe's half hour, an hour, Antarctica/Troll's two hours),
#: longest first: the later reading of a repeated local time is this much after the earlier one.
DST_SHIFTS_S = (7200, 3600, 1800)


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _from_utc_timestamp(ts: dt.timestamp, zone: dt.string) -> dt.timestamp:
    """Spark's local time in `zone` of the UTC instant `ts`."""


def _later_of_repeated_hour(plan: TablePlan, point: Deferred, cast: Deferred) -> Deferred:
    """On Spark, a zone name's local time that a DST change repeats read as its later instant, as on DuckDB.

    ``2025-10-26 02:30 Europe/Berlin`` happens twice: DuckDB reads the later one (01:30 UTC, standard
    time), Spark's cast the earlier (00:30 UTC), an hour apart and, in a zone such as Antarctica/Troll,
    a UTC day. The earlier reading `cast` is moved to the later one where the zone's clock shows the same
    local time again that much later. Other engines' casts are left as they read.
    """
    if _engine_name(plan) != "pyspark":
        return cast
    zone = point.re_extract(r"\s([A-Za-z][A-Za-z0-9_/+-]*)$", 1)
    local = point.re_replace(r"\s+[A-Za-z][A-Za-z0-9_/+-]*$", "").try_cast(dt.Timestamp())
    later = ibis.cases(
        *(
            (
                _from_utc_timestamp(cast + ibis.interval(seconds=shift), zone) == local,
                cast + ibis.interval(seconds=shift),
            )
            for shift in DST_SHIFTS_S
        ),
        else_=cast,
    )
    return ibis.ifelse(point.re_search(ZONE_NAME_PATTERN) & cast.notnull(), later, cast)


def _whole_float_text(c: Deferred) -> Deferred:
    """Ids such as "119.0" as "119", the whole number they spell, as the same ids read from Parquet are.

    A float id column written as text (a CSV from pandas, whose ids with gaps are floats) spells them
    so. Other text stays as written ("007.0" keeps its zeros: a code, not a number).
    """
    whole = c.re_search(WHOLE_FLOAT_PATTERN)
    return ibis.ifelse(whole, c.substr(0, c.find(".")), c)


def _trim(c: Deferred) -> Deferred:
    """Text without surrounding blanks; trims only values that have them (trimming every value is slow)."""
    blank = ibis.literal(False)
    for ch in (" ", "\t", "\n"):
        blank = blank | c.startswith(ch) | c.endswith(ch)
    return ibis.ifelse(blank, c.strip(), c)


def _float(plan: TablePlan, s: Deferred, *, strict: bool = False) -> Deferred:
    """Number text as float64, a NaN with a sign ("-nan", as C's printf writes it) included on every engine.

    DuckDB reads "-nan" as NaN, and Spark's cast read it as no number: an "unparseable number" amount
    there, and an accounts attribute of numbers beside one "-nan" became a category (a number on DuckDB).
    On Spark the NaN pattern is tried only where the cast gave no number (null, or NaN, which ibis's
    isnull counts there), not on every value. `strict` (DuckDB): a cast that fails raises, for text
    already known to be numbers.
    """
    if _engine_name(plan) == "duckdb":
        return s.cast("float64") if strict else s.try_cast("float64")
    cast = s.try_cast("float64")  # Spark 4's ANSI cast throws on text that is no number
    return ibis.ifelse(cast.isnull() & s.re_search(NAN_PATTERN), ibis.literal(math.nan, type="float64"), cast)


def _number(plan: TablePlan, s: Deferred) -> Deferred:
    """Trimmed text as float64 where `NUMBER_PATTERN` reads a number, else null; alike on every engine.

    The pattern first: the engines' casts accept different text beyond it ("1_000" on DuckDB, "1d" on
    Spark), and within it a signed NaN differs (`_float`).
    """
    return ibis.ifelse(s.re_search(NUMBER_PATTERN), _float(plan, s), ibis.null("float64"))


def _plan_thousands(
    plan: TablePlan, name: str, column: str, s: Deferred, unless: tuple[str, ...] = ()
) -> None:
    """Count a semicolon CSV's dotted numbers, which may be thousands (1.017 for 1,017), for a note.

    `unless`: metrics that are not all zero where the column is not read as numbers (an attribute of text).
    """
    if plan.raw.delimiter != ";":  # only a European export writes 1.017 for 1,017
        return
    dotted, grouped = s.re_search(DOTTED_PATTERN), s.re_search(GROUPED_PATTERN)
    plan.thousands_checks.append(
        _ThousandsCheck(
            column,
            plan.metric(f"{name}_dotted", dotted.cast("int64").sum()),
            plan.metric(f"{name}_grouped", grouped.cast("int64").sum()),
            grouped,
            _[column],
            unless,
        )
    )


def _plan_float(plan: TablePlan, cspec: ColumnSpec, column: str) -> None:
    """Numbers: finite floats; text is parsed and what does not parse is counted."""
    c = _[column]
    dtype = plan.source[column].type()
    tag = _mapped(plan, cspec)
    on_duckdb = _engine_name(plan) == "duckdb"
    if dtype.is_numeric():
        f = plan.derive(0, cspec.name, c.cast("float64"))
        missing = c.isnull()
        if dtype.is_floating() and not on_duckdb:
            # Ibis on Spark counts NaN as null: a file's NaN amount read "missing value", a NaN quantity
            # was filled with 1 unit (refused on DuckDB); a frame's missing floats are nulls (`_register`)
            missing = missing & ~c.isnan()
    elif dtype.is_string():
        s = plan.derive(0, cspec.name, _trim(c))
        f = plan.derive(1, cspec.name, _number(plan, s))
        missing = c.isnull() | (s.length() == 0)
        plan.add(
            column, f"unparseable number{NUMBER_HINT}{tag}", ~missing & _null(plan, f), c
        )  # "nan" is one
        _plan_thousands(plan, cspec.name, column, s)
    else:
        _wrong_type(plan, cspec, column, dtype)
        return
    if not cspec.nullable:
        plan.add(column, f"missing value{tag}", missing, None)
    nonfinite = _nan(plan, f) | (f.notnull() & _infinite(f))  # `_nan`, not notnull: NaN is null on Spark
    # a float column's on Spark as text: its values come back through pandas, where a NaN became None
    shown = f.cast("string") if dtype.is_numeric() and not on_duckdb else c
    plan.add(column, f"not a finite number (NaN or infinite){tag}", nonfinite, shown, order=f)
    finite_size = ibis.cases((nonfinite, 0.0), else_=f.abs())  # a NaN or inf row is its own problem
    if cspec.name == "hours":
        plan.add(column, f"negative hours{tag}", f < 0, c, order=f)
    if cspec.name in ("amount", "hours"):
        plan.total_checks.append((column, plan.metric(f"{cspec.name}_size", finite_size.sum()), f))
    if cspec.name == "amount":
        plan.add(column, "refunds or credits (amount < 0)", f < 0, c, hard=False, order=f)
        plan.add(column, "zero amounts", f == 0, None, hard=False)
    plan.builders[cspec.name] = _fixed(f)  # a missing quantity is filled beside the amount (`_units`)


def _units(amount: ir.NumericValue, quantity: ir.NumericValue | None) -> ir.NumericValue:
    """Transaction quantities, a missing one (or a missing column) filled: 1 unit, 0 on a refund row.

    A refund without a quantity counted +1 unit, so an account that returned goods read as one that
    bought more (quantity windows, order size trend).
    """
    one, none = ibis.literal(1).cast("float64"), ibis.literal(0).cast("float64")  # Spark read 1.0 as decimal
    unit = ibis.cases((amount < 0, none), else_=one)
    # a frame's missing value is null on Spark too (`_register`), and a file's NaN is refused before here
    return unit if quantity is None else quantity.fill_null(unit)


def _plan_string(plan: TablePlan, cspec: ColumnSpec, column: str) -> None:
    """Text columns take any type; surrounding spaces are trimmed and empty text becomes null."""
    c = _[column]
    kind = plan.source[column].type()
    s = c if kind.is_string() else c.cast("string")
    if kind.is_string():
        _refuse_bad_utf8(plan, cspec, column)
    if kind.is_binary():
        s = _binary_text(plan, cspec, column)
    elif cspec.name == "owner" and kind.is_floating():  # rep 12345678, not Java's text "1.2345678E7"
        whole = (c == c.floor()) & (c.abs() < 2.0**53)
        s = c.isnan().ifelse(ibis.null("string"), whole.ifelse(c.cast("int64").cast("string"), s))
    elif cspec.name == "owner" and kind.is_boolean():  # rep "True", as Python names it (engines: "true")
        s = ibis.cases((c, "True"), (~c, "False"), else_=ibis.null("string"))
    if cspec.name == "owner":  # a rep named NULL gets a budget of their own
        marker = _trim(s).upper().isin(NULL_MARKERS)
        rule = "a null marker as the owner, read as a rep of that name (leave the cell empty for none)"
        plan.add(column, rule + _mapped(plan, cspec), marker, c, hard=False)
    plan.builders[cspec.name] = _fixed(_trim(s).nullif(""))


def _binary_text(plan: TablePlan, cspec: ColumnSpec, column: str) -> Deferred:
    """A binary text column (Parquet's BYTE_ARRAY without the UTF8 mark) as its UTF-8 text.

    DuckDB's cast wrote every non-ASCII byte as an escape (rep 'zoë' read as 'zo' and two escapes, a
    name no capacity holds). Bytes that are not UTF-8 are refused by name, as the scores' owners are.
    """
    c = _[column]
    if _engine_name(plan) == "duckdb":
        text = _try(_decode(c))
        bad = c.notnull() & text.isnull()
    else:
        text = c.cast("string")
        bad = c.notnull() & ~_is_valid_utf8(text)
    why = (
        " (an owner is a rep's name); write the owners"
        if cspec.name == "owner"
        else f"; write the {cspec.name}"
    )
    plan.add(column, f"binary that is not UTF-8 text{why} as UTF-8 text{_mapped(plan, cspec)}", bad, c)
    return text


def _refuse_bad_utf8(plan: TablePlan, cspec: ColumnSpec, column: str) -> None:
    """Spark reads Parquet text whose bytes are not UTF-8 without a word (an id '2\ufffd'): refuse it.

    DuckDB stops at such a file (`unreadable_hint` names the column); a CSV's text is decoded by the
    reader, and a frame's is Python's own.
    """
    if _engine_name(plan) == "duckdb" or plan.raw.text or not plan.raw.from_file:
        return
    c = _[column]
    plan.add(
        column,
        f"text that is not UTF-8; {UTF8_FIX}{_mapped(plan, cspec)}",
        c.notnull() & ~_is_valid_utf8(c),
        c,
    )


def _plan_extra(plan: TablePlan, name: str, column: str) -> None:
    """A static attribute: kept as given, text trimmed and empty text null; CSV text is typed.

    From CSV, numbers (int64, then float64), true/false (boolean) and ISO dates (timestamp) are
    recognised, as a typed file or frame holds them, so the features do not depend on the file format
    (an audit: a CSV's booleans were categories and its dates a feature that Parquet's were not).
    """
    c = _[column]
    kind = plan.source[column].type()
    if not (plan.raw.text and kind.is_string()):
        plan.builders[name] = _fixed(_trim(c).nullif("") if kind.is_string() else c)
        if kind.is_floating():
            infinite = plan.metric(f"{name}_infinite", _infinite(c).cast("int64").sum())
            plan.finite_checks.append(_FiniteCheck(column, _infinite(c), c, infinite, None))
        return
    s = plan.derive(0, "attr", _trim(c).nullif(""))
    # by the pattern, as amounts: DuckDB's cast read "1_000" as 1000 and Spark's "1d" as 1.0, so one CSV
    # gave the two engines a number and a category (`_number`)
    number = _number(plan, s)
    not_float = plan.metric(f"{name}_not_float", (s.notnull() & _null(plan, number)).cast("int64").sum())
    bad = s.notnull() & number.notnull() & _infinite(number)
    infinite = plan.metric(f"{name}_infinite", bad.cast("int64").sum())
    plan.finite_checks.append(_FiniteCheck(column, bad, c, infinite, not_float))
    # whole numbers with a sign as NUMBER_PATTERN allows ("+5"), up to int64's 19 digits; beyond it the
    # column stays text, as a frame's too large integers do (a float lost the last digits)
    digits = s.re_search(r"^[+-]?[0-9]+$")
    whole = ibis.ifelse(digits, s.try_cast("int64").notnull(), False)
    not_int = plan.metric(f"{name}_not_int", (s.notnull() & ~whole).cast("int64").sum())
    too_large = plan.metric(f"{name}_too_large", (s.notnull() & digits & ~whole).cast("int64").sum())
    codes = plan.metric(f"{name}_codes", (s.notnull() & s.re_search("^[+-]?0[0-9]")).cast("int64").sum())
    truth = s.lower()
    not_bool = plan.metric(
        f"{name}_not_bool", (s.notnull() & ~truth.isin(("true", "false"))).cast("int64").sum()
    )
    date = ibis.ifelse(s.re_search(ISO_DATE_PATTERN), s.try_cast(dt.Timestamp()), ibis.null(dt.Timestamp()))
    not_date = plan.metric(f"{name}_not_date", (s.notnull() & date.isnull()).cast("int64").sum())
    values = plan.metric(f"{name}_values", s.count())
    # a European export's employees 1.200 were read as 1.2 without a word (amounts had this note)
    _plan_thousands(plan, name, column, s, unless=(not_float, codes))

    def builder(ctx: Context) -> Deferred:
        if _count(ctx.values.get(codes)):  # "007" is a code, not a number
            return s
        n_not_int = _count(ctx.values.get(not_int))
        if n_not_int == 0:
            return s.cast("int64")
        if n_not_int == _count(ctx.values.get(too_large)):  # whole numbers, some beyond int64
            return s
        if _count(ctx.values.get(not_float)) == 0:
            return _float(plan, s, strict=True)
        if _count(ctx.values.get(values)) and _count(ctx.values.get(not_bool)) == 0:
            return truth == "true"
        if _count(ctx.values.get(values)) and _count(ctx.values.get(not_date)) == 0:
            return date
        return s

    plan.builders[name] = builder


ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T]([01][0-9]|2[0-3]):[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$"
"""An attribute's CSV text read as a date: ISO day, optionally with a time (no zone: none is needed)."""


def _fixed(expr: Deferred) -> Builder:
    """A builder whose column does not depend on the other tables."""

    def build(ctx: Context) -> Deferred:
        return expr

    return build


def _plan_table_rules(plan: TablePlan) -> None:
    """Rules across columns: no self-referral; a note for a purchase with a negative quantity.

    Referrer and referred are compared as text, so 7 and "7" are the same account. Not when either id
    column (or either of amount and quantity) is of a wrong type (booleans, dates, Parquet's null type
    of an empty extract): it holds no values to compare, its type problem says so (none for an empty
    table), and comparing two such columns' null literals was a scalar that crashed the table's query
    with an AttributeError.
    """
    text = Context(keys_as_int=False, values={})
    ids = {"referrer_id", "referred_id"}
    mistyped = {p.column for p in plan.type_problems}

    def usable_pair(names: set[str]) -> bool:
        """Both columns were read, neither of a wrong type (whose null literals compare to a scalar)."""
        return names <= set(plan.builders) and not {plan.found[name] for name in names} & mistyped

    if plan.name == "referrals" and usable_pair(ids):
        a = plan.builders["referrer_id"](text)
        b = plan.builders["referred_id"](text)
        column = plan.found["referrer_id"]
        plan.add(column, "self-referral (referrer_id equals referred_id)", a == b, _[column])
    if plan.name == "transactions" and usable_pair({"amount", "quantity"}):
        # a refund's quantity is negative as a rule; a purchase's was taken as it came, and its account
        # read as one that bought fewer units than none (quantity windows, order size trend)
        amount, quantity = plan.builders["amount"](text), plan.builders["quantity"](text)
        column = plan.found["quantity"]
        rule = "negative quantity on a purchase (amount > 0), counted as negative units"
        plan.add(column, rule, (amount > 0) & (quantity < 0), _[column], hard=False)


# --- running: one aggregate query per table ----------------------------------------------------------


def _count(value: Any) -> int:
    """An aggregate's count as int (NULL on an empty table counts as 0)."""
    if value is None:
        return 0
    try:
        if pd.isna(value):
            return 0
    except (TypeError, ValueError):
        pass
    return int(value)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value)


def _execute(plan: TablePlan, expr: ir.Table) -> dict[str, list[Any]]:
    """Run a query into columns of Python values.

    A file the engine cannot scan is a `DataError`, the engine out of memory an `EngineError`; any
    other error is a bug and propagates.
    """
    try:
        return expr.to_pyarrow().to_pydict()
    except backend_errors() as exc:
        failure = engine_failure(exc)  # the engine's memory, not the file: an EngineError
        if failure is not None:
            raise failure from None
        if not plan.raw.from_file:
            raise
        message = engine_message(exc)
        # Spark reads mixed line endings; DuckDB names no column of Parquet text that is not UTF-8
        files = source_files(plan.raw.origin) if _engine_name(plan) == "duckdb" else []
        raise DataError(
            f"{plan.name}: cannot read {plan.raw.origin}: {message}{unreadable_hint(message, files)}"
        ) from None


#: Widest id range (max - min + 1) counted by a bitmap: 2**27 bits, a 16 MB bitstring per thread.
BITMAP_MAX_BITS = 2**27


@ibis.udf.agg.builtin(name="bitstring_agg")
def _bitstring_agg(arg: dt.int64, low: dt.int64, high: dt.int64) -> dt.string:
    """DuckDB's bitstring of the distinct values of `arg` in [low, high] (NULLs ignored)."""


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(bits: dt.string) -> dt.int64:
    """DuckDB's count of set bits."""


def _bitmap_distinct(plan: TablePlan) -> dict[str, Any]:
    """Exact distinct counts of whole-number ids as bitmaps, where DuckDB runs and their range is narrow.

    ``count(DISTINCT id)`` hashes every row: on 22 million transaction ids it took 3-4 s of a 6 s
    validation query. A bitmap over [min, max] counts the same in 0.3 s. The range comes from a first
    query (Parquet answers it from its statistics). Other engines and wide ranges keep ``nunique``.
    """
    if not plan.int_distinct or _engine_name(plan) != "duckdb":
        return {}
    columns = sorted(set(plan.int_distinct.values()))
    bounds: dict[str, Any] = {}
    for i, column in enumerate(columns):
        bounds[f"low_{i}"] = _[column].cast("int64").min()
        bounds[f"high_{i}"] = _[column].cast("int64").max()
    found = _execute(plan, plan.source.aggregate(**bounds))
    out: dict[str, Any] = {}
    for metric, column in plan.int_distinct.items():
        i = columns.index(column)
        low, high = found[f"low_{i}"][0], found[f"high_{i}"][0]
        if low is None or high is None or high - low + 1 > BITMAP_MAX_BITS:
            continue
        out[metric] = _bit_count(_bitstring_agg(_[column].cast("int64"), int(low), int(high)))
    return out


def _run(plan: TablePlan) -> None:
    """Count every rule and metric of one table in one aggregate query."""
    aggs: dict[str, Any] = {"n_rows": _.count()}
    for rule in plan.rules:
        aggs[rule.key] = rule.bad.cast("int64").sum()
    aggs.update(plan.metrics)
    aggs.update(_bitmap_distinct(plan))
    row = _execute(plan, plan.table.aggregate(**aggs))
    plan.values.update({k: v[0] for k, v in row.items()})


def _engine_name(plan: TablePlan) -> str:
    """The name of the engine the table runs on; an in-memory Ibis table (no backend yet) runs on DuckDB."""
    try:
        return str(plan.source._find_backend().name)
    except ibis.common.exceptions.IbisError:  # ibis.memtable: executed by the default backend, DuckDB
        return "duckdb"


@ibis.udf.scalar.builtin(name="decode")
def _decode(value: dt.binary) -> dt.string:
    """DuckDB's UTF-8 text of a blob (an error where its bytes are not UTF-8)."""


@ibis.udf.scalar.builtin(name="try")
def _try(value: dt.string) -> dt.string:
    """DuckDB's try: null where the expression fails."""


@ibis.udf.scalar.builtin(name="is_valid_utf8")
def _is_valid_utf8(value: dt.string) -> dt.boolean:
    """Spark's check that a text's bytes (a binary column cast to text) are UTF-8."""


@ibis.udf.scalar.builtin(name="isfinite")
def _isfinite(value: float) -> bool:  # type: ignore[empty-body]
    """DuckDB's isfinite (false for NaN and +-infinity)."""


def _nan(plan: TablePlan, value: Deferred) -> Deferred:
    """Whether a float is NaN, on every engine.

    DuckDB (2.0) folds ``isnan`` on a Parquet float column to false when the file's min/max statistics
    leave its NaN out, as pyarrow, polars and Spark write them: a NaN amount passed validation. Its
    ``isfinite`` is not folded.
    """
    if _engine_name(plan) == "duckdb":
        return value.notnull() & ~_isfinite(value) & ~_infinite(value)
    return value.isnan()


def _null(plan: TablePlan, value: Deferred) -> Deferred:
    """Whether a float is null and not NaN, on every engine (Ibis on Spark counts NaN as null)."""
    if _engine_name(plan) == "duckdb":
        return value.isnull()
    return value.isnull() & ~value.isnan()  # Spark's isnan(NULL) is false


def _infinite(value: Deferred) -> Deferred:
    """Whether a float is +-infinity; Ibis 12 compiles ``isinf()`` on PySpark to a constant false."""
    return (value == ibis.literal(float("inf"))) | (value == ibis.literal(float("-inf")))


def _examples(
    plan: TablePlan, bad: Deferred, example: Deferred, order: Deferred | None = None
) -> tuple[Any, ...]:
    """Up to `N_EXAMPLES` distinct values of `example` among the rows where `bad` holds, smallest first.

    Smallest by `order` (the parsed number or date of a CSV's text, shown as written), else by the value
    itself: a CSV's refunds were its text's smallest ("-1", "-10", "-100", "-2"), not the largest, and
    Parquet's numbers, picked by value, were then shown as text sorts them (-10.0, -100.0, -3.0). Grouped,
    not ``distinct()``: Ibis compiled the latter on PySpark into a DISTINCT over the filter's columns too,
    so rows with one example and other amounts came back once each ("-2.0, -2.0").
    """
    # ordered before the limit, so both engines show the same (smallest) examples
    if order is None:  # grouped on the value alone: any type groups, not all have a min() on Spark
        rows = plan.table.filter(bad).select(example=example)
        query = rows.group_by("example").aggregate(n=rows.count()).select("example", order="example")
    else:
        rows = plan.table.filter(bad).select(example=example, order=order)
        query = rows.group_by("example").aggregate(order=rows.order.min())
    query = query.order_by([ibis.asc("order", nulls_first=False), "example"]).limit(N_EXAMPLES)
    found = _execute(plan, query)
    pairs = sorted(zip(found["order"], found["example"], strict=True), key=_by_value)
    return plain_examples(value for _order, value in pairs)


def _by_value(pair: tuple[Any, Any]) -> tuple[Any, ...]:
    """An (order, example) pair's place: by the order's value, a NaN after the numbers, nulls last."""
    order, example = pair
    if order is None:
        return (2, 0, str(example))
    if isinstance(order, float) and order != order:
        return (1, 0, str(example))
    return (0, order, str(example))


def _duplicates(plan: TablePlan, column: str) -> tuple[int, tuple[Any, ...]]:
    """How many rows repeat an id already seen in `column`, with up to five repeated ids."""
    dups = _count(plan.values.get(f"{column}_nonnull")) - _count(plan.values.get(f"{column}_distinct"))
    if dups <= 0:
        return 0, ()
    key = plan.values[f"{column}_key"]
    grouped = plan.table.group_by(key=key).aggregate(n=_.count())
    query = (
        grouped.filter(grouped.key.notnull() & (grouped.n > 1))
        .select("key")
        .order_by(_by_id_number(grouped.key))
        .limit(N_EXAMPLES)
    )
    return dups, plain_examples(_execute(plan, query)["key"])


def _shared_id_examples(plan: TablePlan) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Up to five transaction ids with a row repeated exactly, and up to five whose rows differ.

    Rows are compared in every input column as given, as `_exact_repeats` counts them and the drop
    keeps them; an id can be in both (a line delivered twice beside another line).
    """
    key = plan.values["transaction_id_key"]
    raw = plan.table
    name = "_kamml_id"  # not a name of the input's columns, which are grouped on beside it
    rows = raw.filter(key.notnull()).group_by([key.name(name), *(raw[c] for c in raw.columns)])
    variants = rows.aggregate(_kamml_n=_.count()).group_by(name)
    variants = variants.aggregate(rows=_._kamml_n.sum(), variants=_.count())

    def first(condition: Deferred) -> tuple[Any, ...]:
        query = variants.filter(condition).select(name)
        query = query.order_by(_by_id_number(query[name])).limit(N_EXAMPLES)
        return plain_examples(_execute(plan, query)[name])

    return first(_.rows > _.variants), first(_.variants > 1)


#: An accounting export's negative number: a trailing minus (12.50-) or parentheses ((12.50)).
ACCOUNTING_NEGATIVE_PATTERN = re.compile(r"^\s*(\(\s*[0-9][0-9.,]*\s*\)|[0-9][0-9.,]*\s*-)\s*$")
#: A spreadsheet's serial day (days since 1899-12-30) of 1954 to 2119, maybe with the time as a fraction.
SERIAL_DAY_PATTERN = re.compile(r"^\s*[2-7][0-9]{4}(\.[0-9]+)?\s*$")
SERIAL_DAY_HINT = (
    "; numbers such as 45123 look like a spreadsheet's serial days (45123 is 2023-07-16): format the column "
    'as dates before exporting, or convert it (pandas: pd.to_datetime(x, unit="D", origin="1899-12-30"))'
)
NEGATIVE_HINT = "; a negative number is written with a leading minus (-12.50), not as 12.50- or (12.50)"


def _example_hint(rule: str, examples: tuple[Any, ...]) -> str:
    """The likely fix an unparseable value's examples show: a spreadsheet's serial days, a trailing minus."""
    shown = [str(v) for v in examples]
    if rule.startswith("unparseable date") and shown and all(SERIAL_DAY_PATTERN.match(v) for v in shown):
        return SERIAL_DAY_HINT
    if rule.startswith("unparseable number") and any(ACCOUNTING_NEGATIVE_PATTERN.match(v) for v in shown):
        return NEGATIVE_HINT
    return ""


def _collect(plan: TablePlan) -> tuple[list[Problem], list[Problem]]:
    """Hard problems and soft notes of one table from its counts (fetching examples for the failures)."""
    hard: list[Problem] = []
    soft: list[Problem] = []
    if _count(plan.values.get("n_rows")) == 0:
        problem = Problem(plan.name, None, f"empty table (no rows in {plan.raw.origin})")
        (hard if plan.spec.required else soft).append(problem)
        return hard, soft
    for rule in plan.rules:
        n = _count(plan.values.get(rule.key))
        if not n:
            continue
        examples = _examples(plan, rule.bad, rule.example, rule.order) if rule.example is not None else ()
        text = rule.rule
        if (
            "header line" not in text
            and rule.column is not None
            and any(str(v).strip().lower() == rule.column.strip().lower() for v in examples)
        ):
            text += "; a value equals the column name: is a header line repeated inside the file?"
        text += _example_hint(text, examples)
        (hard if rule.hard else soft).append(Problem(plan.name, rule.column, text, n, examples))
    for finite in plan.finite_checks:
        n = _count(plan.values.get(finite.infinite))
        if n and (finite.not_float is None or _count(plan.values.get(finite.not_float)) == 0):
            what = "not a finite number (numeric attributes feed the models: leave the cell empty if unknown)"
            examples = _examples(plan, finite.bad, finite.example)
            hard.append(Problem(plan.name, finite.column, what, n, examples))
    for column, key, value in plan.total_checks:
        size = plan.values.get(key)
        if size is not None and not float(size) <= MAX_TOTAL:  # NaN, inf or beyond: not money or hours
            v = ibis._.v  # not `_`: this function binds that name below
            top = plan.table.select(v=value).filter(v.notnull()).order_by(v.abs().desc()).limit(N_EXAMPLES)
            examples = tuple(top.to_pyarrow().column("v").to_pylist())
            what = (
                f"the values add up to more than {MAX_TOTAL:g} in size (the largest float is 1.8e308): "
                "too large for any sum of money or hours, and the features' sums would overflow; "
                "mis-keyed values or another unit? The largest: " + ", ".join(f"{x:.6g}" for x in examples)
            )
            hard.append(Problem(plan.name, column, what, 0, examples))
    for thousands in plan.thousands_checks:
        dotted, grouped = (
            _count(plan.values.get(thousands.dotted)),
            _count(plan.values.get(thousands.grouped)),
        )
        as_text = any(_count(plan.values.get(key)) for key in thousands.unless)
        if dotted >= THOUSANDS_MIN_DOTTED and grouped >= THOUSANDS_SHARE * dotted and not as_text:
            what = (
                f"{grouped:,} of the {dotted:,} values with a decimal point have exactly three decimals "
                "(1.017): thousands written with a dot, as European exports do (1.017 for 1,017)? They "
                "are read as decimals; if so, export the numbers without thousands separators and with a "
                "decimal point (1017, 1234.56)"
            )
            examples = _examples(plan, thousands.bad, thousands.example)
            soft.append(Problem(plan.name, thousands.column, what, grouped, examples))
    for check in plan.tz_checks:
        mixed, offsets = _tz_problems(plan, check)
        hard.extend(mixed)
        soft.extend(offsets)
    # a key only where the id column has an id's type (a wrong type's builder is a typed null)
    if plan.name == "accounts" and "account_id_key" in plan.values:
        n, examples = _duplicates(plan, "account_id")
        if n:
            what = "duplicate account ids (the accounts table needs one row per account)"
            hard.append(Problem(plan.name, plan.found["account_id"], what, n, examples))
    if plan.name == "transactions" and "transaction_id_key" in plan.values:
        n, _ = _duplicates(plan, "transaction_id")
        if n:
            column = plan.found["transaction_id"]
            exact = _exact_repeats(plan)
            repeated, differing = _shared_id_examples(plan)
            if exact:
                what = "duplicate transaction ids (rows repeating another row exactly: dropped, one kept)"
                soft.append(Problem(plan.name, column, what, exact, repeated))
            if n - exact:
                what = (
                    "transaction ids shared by rows that differ (kept, as lines of one transaction or "
                    "a refund of it)"
                )
                soft.append(Problem(plan.name, column, what, n - exact, differing))
    no_id = plan.name == "activities" or (
        plan.name == "transactions" and "transaction_id" not in plan.builders
    )
    if no_id and not hard:  # a row delivered twice counts twice: said, and kept
        n, examples = _repeats_without_id(plan)
        if n:
            soft.append(Problem(plan.name, None, REPEATS_WITHOUT_ID[plan.name], n, examples))
    if plan.name == "transactions" and "transaction_id_key" in plan.values and not hard:
        without = _count(plan.values.get("n_rows")) - _count(plan.values.get("transaction_id_nonnull"))
        if without > 1:  # rows without an id are kept as they are: say when some repeat each other
            key = plan.values["transaction_id_key"]
            unnamed = plan.table.filter(key.isnull()).select(*plan.source.columns)
            n, examples = _repeats_without_id(plan, unnamed)
            if n:
                what = (
                    "rows without a transaction id repeating another such row in every column, of the "
                    "account ids shown (kept: without an id a row delivered twice cannot be told from two "
                    "equal purchases)"
                )
                soft.append(Problem(plan.name, plan.found["transaction_id"], what, n, examples))
    return hard, soft


#: The note on rows repeating another in every column, for the tables read without an id.
REPEATS_WITHOUT_ID = {
    "transactions": (
        "rows repeating another row in every column, of the account ids shown (kept: without a "
        "transaction_id a row delivered twice cannot be told from two equal purchases; map one "
        "to drop repeats)"
    ),
    "activities": (
        "activities repeating another row in every column, of the account ids shown (kept: two "
        "equal activities can be real, but a row delivered twice makes its hours count twice in "
        "the effort features and the effort response; drop repeats if the export doubled them)"
    ),
}


#: Above this many rows, rows repeated without a transaction id are first looked for among the accounts
#: of one hash bucket in `REPEAT_SAMPLE` (about 0.3 s at 10M rows and 3.6 s at 100M, against 1.6 s and
#: ~20 s over every row), and counted over every row only when some are found there.
EXACT_REPEAT_ROWS = 2_000_000
REPEAT_SAMPLE = 32


def _repeats_without_id(plan: TablePlan, raw: ir.Table | None = None) -> tuple[int, tuple[Any, ...]]:
    """Rows repeating another in every input column (transactions without ids, activities), up to 5 accounts.

    ``raw`` is the input's rows to look in (default: all; the rows with an empty id when the table has
    the column). Repeats are rows of one account, so a sample of whole accounts keeps them together: a
    file delivered twice shows in any bucket; a few scattered repeats among more than `EXACT_REPEAT_ROWS`
    rows can be missed by the sample (the note is a hint, the rows are kept either way).
    """
    raw = plan.source if raw is None else raw
    account = plan.found["account_id"]

    def repeats(table: ir.Table) -> tuple[int, tuple[Any, ...]]:
        """The rows beyond the first of each repeated row, and the first accounts with some: one query."""
        rows = table.group_by([table[c] for c in table.columns]).aggregate(_kamml_n=_.count())
        extra = rows.filter(_._kamml_n > 1).group_by(account).aggregate(_kamml_extra=(_._kamml_n - 1).sum())
        query = extra.mutate(_kamml_total=extra._kamml_extra.sum().over())
        found = _execute(plan, query.order_by(_by_id_number(query[account])).limit(N_EXAMPLES))
        total = _count(found["_kamml_total"][0]) if found["_kamml_total"] else 0
        return total, plain_examples(found[account])

    if _count(plan.values.get("n_rows")) > EXACT_REPEAT_ROWS:
        bucket, _examples = repeats(raw.filter(raw[account].hash() % REPEAT_SAMPLE == 0))
        if not bucket:
            return 0, ()
    return repeats(raw)


def _by_id_number(ids: ir.Value) -> list[Any]:
    """Sort keys for ids: text of digits by its number (9 before 10), then the rest as they sort."""
    if not ids.type().is_string():  # numbers are their own order
        return [ids]
    return [ibis.asc(_id_number(ids), nulls_first=False), ids]


def _id_number(ids: ir.Value) -> ir.Value:
    """Ids in their order as numbers: a text id of digits as its int64 (9 before 10, not "10" before "9").

    Null for other text (after the numbers); a number column is its own order.
    """
    if not ids.type().is_string():
        return ids
    bare = ids.strip()
    return ibis.ifelse(bare.re_search(r"^-?[0-9]{1,18}$"), bare.try_cast("int64"), ibis.null("int64"))


def _exact_repeats(plan: TablePlan) -> int:
    """Rows with a transaction id that repeat another row in every column (a file delivered twice)."""
    with_id = plan.table.filter(plan.values["transaction_id_key"].notnull())
    distinct = _execute(plan, with_id.distinct().aggregate(n=_.count()))["n"][0]
    return _count(plan.values.get("transaction_id_nonnull")) - int(distinct)  # rows counted in validation


def _tz_problems(plan: TablePlan, check: _TzCheck) -> tuple[list[Problem], list[Problem]]:
    """Time zones in one text column: errors (some values with a UTC offset, some without) and notes.

    A note when every value has an offset but they differ (daylight saving: +01:00 in winter, +02:00 in
    summer). Each value with an offset is converted to UTC by its own offset, so several offsets are exact; a
    value without one would be read as UTC, which is a guess when others say otherwise.
    """
    with_offset, without, offsets = (_count(plan.values.get(k)) for k in check.keys)
    if with_offset and without:
        examples = (
            _examples(plan, check.ok & check.has_offset, check.text)[:2]
            + _examples(plan, check.ok & ~check.has_offset, check.text)[:3]
        )
        rule = (
            f"mixed time zones: {with_offset:,} {'value has' if with_offset == 1 else 'values have'} a UTC "
            f"offset or a named time zone and {without:,} {'has' if without == 1 else 'have'} none; give "
            "every value an offset, or convert all to UTC"
        )
        return [Problem(plan.name, check.column, rule, min(with_offset, without), examples)], []
    if offsets > 1:
        rows = plan.table.filter(check.ok & check.has_offset)
        query = rows.group_by(offset=check.normal).aggregate(example=check.text.min()).order_by("offset")
        found = _execute(plan, query.limit(N_EXAMPLES))
        shown = ", ".join(map(str, found["offset"]))
        rule = f"{offsets} different UTC offsets ({shown}): each value converted to UTC by its own offset"
        return [], [Problem(plan.name, check.column, rule, with_offset, plain_examples(found["example"]))]
    return [], []


def _zones_across_columns(plans: Iterable[TablePlan]) -> list[Problem]:
    """A note for each date column without UTC offsets where another column has one on every value.

    Within one column a mix is an error; across columns each was read on its own, so
    `transactions.ts` at +02:00 (converted to UTC) beside `accounts.created_at` in local time (taken as
    UTC) shifted one table by two hours without a word. Parquet's typed columns take part as their
    files type them: a time-zone-aware one as one with an offset, a naive one or a date as one without.
    """
    zoned: list[str] = []
    naive: list[tuple[TablePlan, str, int, Deferred, Deferred]] = []
    for plan in plans:
        for check in plan.tz_checks:
            with_offset, without = (_count(plan.values.get(k)) for k in check.keys[:2])
            if with_offset and not without:
                zoned.append(f"{plan.name}.{check.column}")
            elif without and not with_offset:
                naive.append((plan, check.column, without, check.ok & ~check.has_offset, check.text))
        for typed in plan.typed_zones:
            dated = _count(plan.values.get(typed.dated))
            if dated and typed.zoned:
                zoned.append(f"{plan.name}.{typed.column}")
            elif dated:
                naive.append((plan, typed.column, dated, typed.ok, typed.value))
    notes = []
    for plan, column, without, bad, value in naive:
        if zoned:
            rule = (
                f"no UTC offset (taken as UTC), while {' and '.join(zoned)} "
                f"{'has' if len(zoned) == 1 else 'have'} one on every value: if these are local times, "
                "write their offset"
            )
            notes.append(Problem(plan.name, column, rule, without, _examples(plan, bad, value)))
    return notes


def validate_tables(
    raws: Mapping[str, RawTable],
    mappings: Mapping[str, Mapping[str, str]],
    *,
    end: pd.Timestamp | None = None,
    today: pd.Timestamp | None = None,
) -> Validated:
    """Check every table and build the canonical ones; hard problems are returned, not raised.

    Parameters
    ----------
    raws : mapping of str to RawTable
        The tables as read, by contract name.
    mappings : mapping of str to mapping
        Per table: kamml column name -> the user's column name.
    end : pandas.Timestamp, optional
        Exclusive data end from the config.
    today : pandas.Timestamp, optional
        Midnight UTC of today (for the "in the future" rule); the real today when not given.

    Returns
    -------
    Validated
        Canonical tables (only when there are no hard problems), table statistics, soft notes, hard
        problems, and which tables are costly to recompute (parsed from text or deduplicated).
    """
    if today is None:
        today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    plans = {name: plan_table(raw, mappings[name], end=end, today=today) for name, raw in raws.items()}
    problems: list[Problem] = []
    notes: list[Problem] = []
    for plan in plans.values():
        problems.extend(plan.problems)
        notes.extend(plan.notes)
        if plan.raw.table is None or any(c not in plan.found for c in plan.spec.required_columns):
            problems.extend(plan.type_problems)
            continue
        _run(plan)
        if _count(plan.values.get("n_rows")):
            problems.extend(_with_epoch_hints(plan))
        hard, soft = _collect(plan)
        problems.extend(hard)
        notes.extend(soft)
    if not problems:
        notes.extend(_zones_across_columns(plans.values()))
    stats = {name: _stats(plan) for name, plan in plans.items() if "n_rows" in plan.values}
    tx = plans.get("transactions")
    max_ts = _timestamp(tx.values.get("ts_max")) if tx is not None else None
    if problems:
        return Validated({}, stats, notes, problems, max_ts)
    keys_as_int = all(_count(p.values.get(k)) == 0 for p in plans.values() for k in p.key_metrics)
    tables: dict[str, ir.Table] = {}
    for name, plan in plans.items():
        ctx = Context(keys_as_int=keys_as_int, values=plan.values)
        columns: dict[str, Any] = {k: b(ctx) for k, b in plan.builders.items()}
        if name == "transactions":
            columns["quantity"] = _units(columns["amount"], columns.get("quantity"))
        order = [c.name for c in plan.spec.columns if c.name in columns]
        order += [c for c in columns if c not in order]
        selected = {c: columns[c] for c in order}
        repeats = name == "transactions" and _duplicates_count(plan, "transaction_id") > 0
        if repeats:  # told apart by the input's own columns, as _exact_repeats counted them
            selected[REPEAT] = _repeat_number(plan.table)
        tables[name] = plan.table.select(**selected)
        if repeats:
            tables[name] = _drop_repeats(tables[name])
    costly = {name for name, plan in plans.items() if plan.raw.text}
    if "transactions" in tables and _duplicates_count(plans["transactions"], "transaction_id") > 0:
        costly.add("transactions")
    stats = {name: _with_columns(stats[name], tuple(t.columns)) for name, t in tables.items()}
    return Validated(tables, stats, notes, [], max_ts, frozenset(costly))


def _duplicates_count(plan: TablePlan, column: str) -> int:
    return _count(plan.values.get(f"{column}_nonnull")) - _count(plan.values.get(f"{column}_distinct"))


REPEAT = "_kamml_repeat"


def _repeat_number(raw: ir.Table) -> ir.IntegerValue:
    """0 for the first of rows that are equal in every column of the input as given, 1, 2... for repeats.

    Every input column counts, the ones kamml does not read (a line number) and the text as written
    ("10" and "10.00") included: rows that differ there are not a file delivered twice.
    """
    return ibis.row_number().over(ibis.window(group_by=[raw[c] for c in raw.columns]))


def _drop_repeats(tx: ir.Table) -> ir.Table:
    """Drop rows with a transaction id that repeat another row of the input exactly; keep the rest.

    Rows that share an id but differ are lines of one invoice or a refund of it: all kept (keeping one
    per id dropped the other lines, and kept whichever came first, a refund line included). Rows
    without an id are all kept.
    """
    kept = tx.filter(tx.transaction_id.isnull() | (tx[REPEAT] == 0))
    return kept.drop(REPEAT)


def _with_columns(stats: TableStats, columns: tuple[str, ...]) -> TableStats:
    return TableStats(stats.name, stats.origin, stats.rows, stats.accounts, stats.first, stats.last, columns)


def _stats(plan: TablePlan) -> TableStats:
    v = plan.values
    accounts = None if plan.name == "referrals" else v.get("accounts")
    ts_key = "created_at" if plan.name == "accounts" else "ts"
    return TableStats(
        name=plan.name,
        origin=plan.raw.origin,
        rows=_count(v.get("n_rows")),
        accounts=None if accounts is None else _count(accounts),
        first=_timestamp(v.get(f"{ts_key}_min")),
        last=_timestamp(v.get(f"{ts_key}_max")),
        columns=tuple(plan.found),
    )
