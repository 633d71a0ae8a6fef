"""The inputs every feature group shares: the tables cut at the cutoff, day numbers and settings.

Time is handled as integer day numbers (days since 1970-01-01, UTC), computed from epoch seconds: the
same arithmetic on DuckDB and Spark, and "before the cutoff" is `day < cutoff_day` everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from kamml.errors import ConfigError

__all__ = [
    "FeatureContext",
    "as_cutoff",
    "check_history",
    "check_observed",
    "check_scoring_cutoff",
    "day_number",
    "join_on_account",
    "net_sum",
    "outer_join_on_account",
    "to_day",
    "with_day",
]

SECONDS_PER_DAY = 86_400

#: A net sum within this share of the gross amounts behind it is float rounding, not money: a full
#: refund of 0.1 + 0.2 nets 5.6e-17, and as a denominator that read as 3.6e16 hours per unit of spend.
NET_ROUNDING = 1e-9


#: A date as text: YYYY-MM-DD, maybe followed by an ISO time (which must then be midnight).
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])")


def as_cutoff(value: Any, name: str = "cutoff", *, floor: bool = False) -> pd.Timestamp:
    """`value` as a midnight timestamp (naive, UTC): a cutoff is a whole day, never a time of day.

    A date, a ``YYYY-MM-DD`` string or a midnight timestamp passes; a timezone-aware value is read in
    UTC, the data's time. No value, an unparseable one or one with a time of day other than midnight is
    a `ConfigError` naming `name` and the value: truncating 12:30 to the day would move the cutoff
    silently. So is a pandas Period or a numpy datetime64 of a month, year or week, naming the two days
    it could mean (its first, the day after it). With `floor` a time of day is taken to the midnight
    before it instead: for an exclusive data end, whose last day is then not observed whole.
    """
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        # pandas reads a number as nanoseconds since 1970 (20250705 -> 00:00:00.020250)
        raise ConfigError(f"{name} {value!r} is a number, not a date: give one as YYYY-MM-DD")
    if isinstance(value, pd.Period):  # was "not a date", a daily one too: say which day to give
        _refuse_period(value, value, name)
    if isinstance(value, np.datetime64) and np.datetime_data(value.dtype)[0] in _PERIOD_UNITS:
        # np.datetime64("2024-06") was read as 2024-06-01 (June left out), where "2024-06" is refused
        _refuse_period(
            value, pd.Period(pd.Timestamp(value), freq=_PERIOD_UNITS[np.datetime_data(value.dtype)[0]]), name
        )
    if isinstance(value, str) and not _ISO_DAY.match(value.strip()):
        # pandas reads 01/07/2025 as January 7th, and "today" as now
        raise ConfigError(f"{name} {value!r} is not a date written YYYY-MM-DD (ISO 8601): give one so")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        reason = str(exc).rsplit(": ", 1)[0]  # pandas' reason, without the value it repeats
        if "out of range" in reason or "must be in" in reason:  # 2023-02-29, though written YYYY-MM-DD
            raise ConfigError(f"{name} {value!r} is not a valid date ({reason})") from None
        raise ConfigError(f"{name} {value!r} is not a date: give one as YYYY-MM-DD") from None
    if pd.isna(stamp):
        raise ConfigError(f"no {name} given (got {value!r}): give a date as YYYY-MM-DD")
    aware = stamp.tzinfo is not None
    if aware:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    from kamml.data.validation import TS_RANGE  # here: the data package is not needed to read a date

    if not pd.Timestamp(TS_RANGE[0]) <= stamp <= pd.Timestamp(TS_RANGE[1]):  # 0202-07-01 for 2022
        raise ConfigError(
            f"{name} {value!r} is outside the dates kamml reads ({TS_RANGE[0]} to {TS_RANGE[1]}, as in the "
            "data): give a day in that range"
        )
    if stamp != stamp.normalize():
        if floor:
            return stamp.normalize()
        clock = str(stamp - stamp.normalize()).removeprefix("0 days ")  # time() drops nanoseconds
        at = f"{clock}{' UTC' if aware else ''}"
        raise ConfigError(
            f"{name} must be a date (YYYY-MM-DD), got {value!r}, which has the time of day {at}: "
            "a cutoff is a whole day (midnight, UTC)"
        )
    return stamp


#: numpy datetime64 units coarser than a day, as the pandas Period frequency each stands for.
_PERIOD_UNITS = {"Y": "Y", "M": "M", "W": "W-WED"}


def _refuse_period(value: Any, period: pd.Period, name: str) -> None:
    """A `ConfigError` for a cutoff that is a span of days, naming the two days it could mean.

    A cutoff is the first day not read: a month could mean its first day or the day after its last.
    """
    before, after = period.start_time.date(), (period + 1).start_time.date()
    raise ConfigError(
        f"{name} {value!r} is a period, not a day: a cutoff is the first day not read (the features "
        f"read the days before it, the labels start on it), so give that day as YYYY-MM-DD: {before} "
        f"to leave the period out, {after} to read it whole"
    )


def day_number(ts: Any) -> int:
    """Integer day number of a date or midnight timestamp (days since the Unix epoch); see `as_cutoff`."""
    return int(as_cutoff(ts).value // (SECONDS_PER_DAY * 10**9))


def check_observed(data: Any, cutoff: Any) -> pd.Timestamp:
    """The cutoff, refused when it lies after the data end: the days past the end are unobserved.

    Features at such a cutoff would count the unobserved days as days without purchases (recency,
    windows, BTYD's T) and quietly shrink every prediction. A cutoff exactly at the (exclusive) data
    end is the latest one observed. Data without an ``end`` is not checked.
    """
    cut = as_cutoff(cutoff)
    end = getattr(data, "end", None)
    if end is None:
        return cut
    end = as_cutoff(pd.Timestamp(end).normalize(), "data end")
    if cut > end:
        last = (end - pd.Timedelta(days=1)).date()
        source = getattr(getattr(data, "quality", None), "end_source", "") or "the data"
        raise ConfigError(
            f"cutoff {cut.date()} is after the data end {end.date()} (exclusive: the last observed day "
            f"is {last}, by {source}): the days after it are unobserved, not days without purchases. "
            f"Use a cutoff on or before {end.date()} (--cutoff, time.cutoff), or, if the data really "
            "runs later, set data.end to its last day"
        )
    return cut


def first_transaction(data: Any) -> pd.Timestamp | None:
    """The first transaction's time from validation's figures (no query); None without them."""
    tables = getattr(getattr(data, "quality", None), "tables", None) or {}
    first = getattr(tables.get("transactions"), "first", None)
    return None if first is None else pd.Timestamp(first)


def check_history(data: Any, cutoff: Any, what: Literal["features", "labels"] = "features") -> None:
    """A `ConfigError` for a cutoff on or before the first transaction's day (validation's figure).

    There no account has a purchase history: `build_features` returned an empty frame (or accounts-table
    rows without any history), `write_features` an empty file and `build_labels` labels for no account,
    without a word. `what` ("features" or "labels") says which the cutoff was given for. Data without
    that figure are not checked.
    """
    first = first_transaction(data)
    if first is None:
        return
    cut = as_cutoff(cutoff)
    if cut <= first.normalize():
        why = {
            "features": "the features read only the days before a cutoff",
            "labels": "labels are made for the accounts existing at a cutoff (a purchase before it)",
        }[what]
        raise ConfigError(
            f"cutoff {cut.date()} is on or before the day of the first transaction (transactions.ts: "
            f"{first.date()}): {why}, so no account has a purchase history there (the frame would be "
            f"empty, or hold accounts-table rows without any history); give a cutoff after {first.date()}"
        )


def check_scoring_cutoff(data: Any, cutoff: Any) -> pd.Timestamp:
    """`check_observed`, and a scoring cutoff on or before the first transaction refused too.

    There no account has a purchase history, so every score would come from the accounts table alone
    (``kamml score --cutoff`` years early scored accounts with exit 0). Training snapshots that early
    are named by the training's own check, which lists them.
    """
    cut = check_observed(data, cutoff)
    first = first_transaction(data)
    if first is not None and cut <= first.normalize():
        raise ConfigError(
            f"cutoff {cut.date()} is on or before the first transaction ({pd.Timestamp(first).date()}): no "
            "account has a purchase history there, so every score would come from nothing; use a later "
            "cutoff (--cutoff, time.cutoff)"
        )
    return cut


def net_sum(value: ir.NumericValue, where: ir.BooleanValue | None = None) -> ir.FloatingScalar:
    """Sum of `value` (over the rows where `where` holds; 0 without any), 0 when only rounding is left.

    Within `NET_ROUNDING` of the sum of the absolute values it is 0: a ratio over it is then missing,
    as for an account without net spend, not a huge number whose sign the summing order decides.
    """
    net = value.sum(where=where)
    gross = value.abs().sum(where=where)
    return ibis.cases((net.abs() > gross * NET_ROUNDING, net.cast("float64")), else_=0.0)


def to_day(column: ir.TimestampValue) -> ir.IntegerValue:
    """Day number of a timestamp column, computed in the engine.

    Truncated to the second first: Spark's UNIX_TIMESTAMP drops a fraction toward zero, so before 1970
    23:59:59.5 read as the next day's midnight there (DuckDB's EPOCH keeps the fraction and floors).
    """
    return (column.truncate("s").epoch_seconds() // SECONDS_PER_DAY).cast("int64")


def with_day(table: ir.Table, column: str = "ts") -> ir.Table:
    """The table with an integer `day` column derived from its timestamp column."""
    return table.mutate(day=to_day(table[column]))


def join_on_account(left: ir.Table, right: ir.Table) -> ir.Table:
    """Left join on account_id keeping one account_id column (the left one) and all right columns."""
    r = right.rename(_right_key="account_id")
    joined = left.left_join(r, left.account_id == r._right_key)
    return joined.select(*[joined[c] for c in joined.columns if c != "_right_key"])


def outer_join_on_account(left: ir.Table, right: ir.Table) -> ir.Table:
    """Full outer join on account_id: one account_id column (from whichever side has it), all columns."""
    r = right.rename(_outer_key="account_id")
    joined = left.outer_join(r, left.account_id == r._outer_key)
    others = [joined[c] for c in joined.columns if c not in ("account_id", "_outer_key")]
    out = joined.select(ibis.coalesce(joined.account_id, joined._outer_key).name("account_id"), *others)
    return out.view()  # a new relation: joining onto a coalesced key of a join chain is refused otherwise


@dataclass(frozen=True)
class FeatureContext:
    """Tables restricted to rows before the cutoff, with integer `day` columns, plus settings.

    Attributes
    ----------
    cutoff_day : int
        Day number of the cutoff; every table here holds only rows with day < cutoff_day.
    tx : ibis Table
        Transactions before the cutoff with a `day` column.
    rows : ibis Table
        Transactions before the cutoff with their purchase-day facts (see `kamml.features.groups.day_rows`).
    accounts, referrals, activities : ibis Table or None
        The optional tables, cut at the cutoff; the accounts table whole (its rows are today's
        attributes; `account_base` counts a row as an account from its `created_at`).
    unit_days : int
        Days per BTYD time unit (1 for days, 7 for weeks).
    windows : tuple of int
        Lookback windows in days.
    horizon_days : int
        The models' label window (``time.train_horizon_days``, else ``time.horizon_days``): the calendar
        group's year-ago window, the same length in training and at scoring.
    account_spend : ibis Table or None
        Per account: net spend before the cutoff (``_spend``) and in the last 365 days (``_spend365``),
        when the shared pass already computed it (see `spend_by_account`).
    static_columns : tuple of str or None
        The accounts columns the static group turns into features (``features.static_columns``);
        None: every numeric, boolean or text column.
    """

    cutoff_day: int
    tx: ir.Table
    rows: ir.Table
    accounts: ir.Table | None
    referrals: ir.Table | None
    activities: ir.Table | None
    unit_days: int
    windows: tuple[int, ...]
    horizon_days: int
    account_spend: ir.Table | None = None
    static_columns: tuple[str, ...] | None = None

    def spend_by_account(self) -> ir.Table:
        """Net spend per account (``_spend``, ``_spend365``): reused from the shared pass when it ran.

        The referral and effort groups need it; taking it from the shared pass spares them another
        group-by over the transactions.
        """
        if self.account_spend is not None:
            return self.account_spend
        return self.rows.group_by("account_id").aggregate(**self.spend_aggregates())

    def spend_aggregates(self) -> dict[str, ir.Value]:
        """The aggregates of `spend_by_account` over `rows`, for a pass that groups them anyway."""
        d = self.rows
        recent = d.day >= self.lit(self.cutoff_day - 365)
        return {"_spend": d.spend.sum(), "_spend365": net_sum(d.spend, recent)}

    @property
    def cutoff(self) -> pd.Timestamp:
        """The cutoff as a timestamp."""
        return pd.Timestamp(self.cutoff_day * SECONDS_PER_DAY, unit="s")

    def lit(self, value: int) -> ir.IntegerScalar:
        """An int64 literal (keeps integer arithmetic identical across engines)."""
        return ibis.literal(value, type="int64")
