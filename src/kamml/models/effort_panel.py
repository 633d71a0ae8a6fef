"""The account × planning-period panel the effort response is fitted on: orders, hours and account state.

`kamml.models.effort` fits the response (how many hours of sales effort it takes to move an account) on
this panel, built from the ``activities`` table (hours logged per account and date) and the
transactions, before a cutoff.

The time before the cutoff is cut into planning periods of ``period_months`` calendar months, counted
back from the cutoff (a cutoff on a quarter start gives calendar quarters). For each account and period
(`effort_panel`):

- ``orders``: purchase days in the period (days with a transaction of amount >= 0, as in the features);
- ``hours``: hours logged in the period;
- the account's state at the period's start, what a sales team sees when it plans the period:
  ``value`` (net spend over the trailing ``history_days``, at most, as a rate per ``horizon_days``, so
  it is on the scale of a predicted clv), ``frequency`` (purchase days per year over the same window),
  ``recency_days`` (days since the last purchase day), ``age_days`` (days since the first one) and
  ``past_hours`` (hours logged over the same window, per period: a rate over its logged part, from the
  first activity on when that is later).

Only accounts with a positive trailing spend and at least ``min_history_days`` of history enter, and only
periods whose trailing window holds ``min_history_days`` of data and whose first month saw effort
logging begin (a period may start up to 31 days before the first activity), and that start on or before
the last activity (after it nothing was logged: those periods would read as periods without effort).
"""

from __future__ import annotations

import logging
import math
from numbers import Integral
from typing import TypeAlias

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from kamml.data.quality import LONG_ACTIVITY_HOURS
from kamml.errors import ConfigError, DataError
from kamml.features._context import as_cutoff, join_on_account, net_sum, to_day
from kamml.features.build import settle_frame
from kamml.text import counted

__all__ = ["PANEL_COLUMNS", "effort_panel"]

logger = logging.getLogger("kamml.models.effort")  # one logger for the effort response, as in effort_rule

Table: TypeAlias = pd.DataFrame | ir.Table

SECONDS_PER_DAY = 86_400

PANEL_COLUMNS = (
    "account_id",
    "period",
    "period_start",
    "period_end",
    "orders",
    "hours",
    "value",
    "frequency",
    "recency_days",
    "age_days",
    "past_hours",
)
"""Columns of `effort_panel`, one row per account and planning period (plus ``size`` when asked)."""


def effort_panel(
    transactions: Table,
    activities: Table,
    cutoff: str | pd.Timestamp,
    *,
    period_months: int = 3,
    max_periods: int = 8,
    history_days: int = 365,
    min_history_days: int = 90,
    horizon_days: int = 180,
    accounts: Table | None = None,
    size_column: str | None = None,
) -> pd.DataFrame:
    """Orders, hours and account state per account and past planning period: the data of the fit.

    Parameters
    ----------
    transactions : pandas.DataFrame or ibis Table
        ``account_id``, ``ts``, ``amount`` (the contract's transactions). Rows at or after `cutoff` are
        ignored.
    activities : pandas.DataFrame or ibis Table
        ``account_id``, ``ts``, ``hours``. Rows at or after `cutoff` are ignored.
    cutoff : str or pandas.Timestamp
        A day (YYYY-MM-DD, read as `kamml.build_features` reads it: `as_cutoff`): nothing from its
        midnight on is read; the last period ends here.
    period_months : int, default 3
        Length of a planning period in calendar months, counted back from the cutoff.
    max_periods : int, default 8
        At most this many periods (the most recent ones).
    history_days : int, default 365
        Trailing window of the account's state (value, frequency) at each period's start.
    min_history_days : int, default 90
        A period needs this many days of data before it, an account this much history.
    horizon_days : int, default 180
        The value column is a rate per this many days (the horizon of the predicted clv).
    accounts : pandas.DataFrame or ibis Table, optional
        The accounts table, read for `size_column`, and for its ids: activities rows of no account (no
        transactions before the cutoff, not in this table) get a warning, as their hours are left out.
    size_column : str, optional
        A numeric column of `accounts` (an account's size: employees, seats, revenue band): the panel
        then has a ``size`` column too, NaN for accounts without one.

    Returns
    -------
    pandas.DataFrame
        Columns `PANEL_COLUMNS` (and ``size``); ``period`` 1 is the last period before the cutoff.

    Raises
    ------
    kamml.errors.DataError
        When there are no transactions or no activities before the cutoff, hours that are negative,
        missing or infinite, no planning period with enough history before it, a table lacks a
        column, or the size column is not numeric.
    kamml.errors.ConfigError
        On a non-positive period length, count or window, or a cutoff that is not a day (a time of day
        such as 12:00, as `kamml.build_features` refuses it).
    """
    cut = as_cutoff(cutoff)  # a whole day, as the features read it (a time of day is refused)
    for name, value in (
        ("period_months", period_months),
        ("max_periods", max_periods),
        ("history_days", history_days),
        ("horizon_days", horizon_days),
    ):
        if not _whole(value) or value < 1:
            raise ConfigError(f"effort response: {name} must be a whole number >= 1, got {value!r}")
    if not _whole(min_history_days) or not 0 <= min_history_days <= history_days:
        raise ConfigError(
            f"effort response: min_history_days must be a whole number in [0, history_days], "
            f"got {min_history_days!r}"
        )
    tx = _table(transactions, "transactions", ("account_id", "ts", "amount"))
    act = _table(activities, "activities", ("account_id", "ts", "hours"))
    tx_id, act_id = tx.schema()["account_id"], act.schema()["account_id"]
    if tx_id != act_id and not (tx_id.is_numeric() and act_id.is_numeric()):  # pandas' merge refused it
        raise DataError(
            f"effort response: activities.account_id is {act_id} and transactions.account_id is {tx_id}: "
            "the ids must be of one type"
        )
    sizes = None if size_column is None else _account_sizes(accounts, size_column)
    cut_day = _day_number(cut)
    tx = _with_day(tx.filter(tx.ts < cut.to_pydatetime()))
    act = _with_day(act.filter(act.ts < cut.to_pydatetime()))
    span = tx.aggregate(first=tx.day.min(), n=tx.count()).execute()
    if int(span["n"].iloc[0]) == 0:
        raise DataError(f"effort response: no transactions before the cutoff {cut.date()}")
    unknown = act.hours.isnull() | act.hours.isnan().fill_null(False) | act.hours.isinf().fill_null(False)
    act_span = act.aggregate(
        first=act.day.min(),
        last=act.day.max(),
        n=act.count(),
        total=act.hours.sum(),
        negative=(act.hours < 0).sum(),
        unknown=unknown.sum(),
        median=act.hours.approx_median(),
    ).execute()
    for column, rule in (
        ("negative", "have negative hours; activities.hours must be >= 0"),
        ("unknown", "have missing or infinite hours; activities.hours must be a finite number >= 0"),
    ):
        count = act_span[column].iloc[0]  # a sum over no rows: None on DuckDB, NaN on Spark
        if pd.notna(count) and int(count) > 0:
            raise DataError(f"effort response: {int(count)} activities rows before {cut.date()} {rule}")
    if int(act_span["n"].iloc[0]) == 0:
        raise DataError(
            f"effort response: no activities before the cutoff {cut.date()}: hours of sales effort "
            "are needed to estimate how accounts respond to them"
        )
    _check_ids_meet(tx, act, int(act_span["n"].iloc[0]), cut, _account_ids(accounts, act))
    median = act_span["median"].iloc[0]  # None or NaN over no rows, as the sums above
    _note_minutes(None if pd.isna(median) else float(median), cut)
    data_start = int(span["first"].iloc[0])
    logging_start, logging_end = int(act_span["first"].iloc[0]), int(act_span["last"].iloc[0])
    periods = _periods(
        cut, cut_day, period_months, max_periods, data_start, logging_start, history_days, min_history_days
    )
    _note_late_logging(
        periods,
        _periods(
            cut, cut_day, period_months, max_periods, data_start, data_start, history_days, min_history_days
        ),
        data_start,
        logging_start,
    )
    # a period that starts after the last activity is one in which nothing was logged, not one in which
    # no account got an hour: an export of the activities that ends early made its periods unserved ones
    logged = [p for p in periods if p[1] <= logging_end]
    if not logged:
        raise DataError(
            f"effort response: no {period_months}-month planning period before {cut.date()} has "
            f"{min_history_days} days of history before it with effort logged from its first month "
            f"on (transactions from {_from_day(data_start).date()}, activities from "
            f"{_from_day(logging_start).date()} to {_from_day(logging_end).date()})"
        )
    if len(logged) < len(periods):
        logger.warning(
            "effort response: no activities after %s, %d days before the cutoff %s: the %s after it "
            "%s left out of the fit rather than read as periods without effort",
            _from_day(logging_end).date(),
            cut_day - logging_end,
            cut.date(),
            counted(len(periods) - len(logged), "planning period"),
            "is" if len(periods) - len(logged) == 1 else "are",
        )
    periods = logged
    wide = _wide_panel(tx, act, periods)
    panel = _long_panel(wide, periods, min_history_days, horizon_days, logging_start)
    if sizes is not None:
        panel["size"] = panel["account_id"].map(sizes).to_numpy(dtype=float)
    return panel


def _check_ids_meet(
    tx: ir.Table, act: ir.Table, rows: int, cut: pd.Timestamp, listed: ir.Table | None = None
) -> None:
    """A DataError when no activity before the cutoff is of an account with transactions before it.

    Activities keyed by another system's ids read as a book in which no account got an hour ("0 with
    hours"), which sent the user looking for missing hours rather than mismatched ids. When only some
    are of no account (none with transactions before the cutoff, none in the accounts table `listed`),
    a warning says how many: their hours are left out, and the fitted scale moved without a word from the
    fit (only `kamml.data.load_data`'s notes said it).
    """
    ids = tx.select("account_id").distinct()
    matched = int(act.semi_join(ids, "account_id").count().execute())
    if matched > 0:
        if matched < rows:
            _warn_unknown_ids(act, ids, listed, rows, cut)
        return
    act_id = act.aggregate(first=act.account_id.min()).execute()["first"].iloc[0]
    tx_id = tx.aggregate(first=tx.account_id.min()).execute()["first"].iloc[0]
    raise DataError(
        f"effort response: none of the {rows:,} activities rows before {cut.date()} is of an account with "
        f"transactions before it: activities.account_id must hold the ids of transactions.account_id "
        f"(e.g. {act_id} in activities, {tx_id} in transactions)"
    )


def _warn_unknown_ids(
    act: ir.Table, buyers: ir.Table, listed: ir.Table | None, rows: int, cut: pd.Timestamp
) -> None:
    """Warn of the activities rows before the cutoff whose account_id is of no account.

    An account is one with transactions before the cutoff (`buyers`) or one of the accounts table
    (`listed`, when given: a prospect's hours before its first purchase are no stray).
    """
    if listed is None:
        known = buyers
    else:  # one type for the union: an id NOT NULL in one table and not in the other is the same id
        kind = act.schema()["account_id"].copy(nullable=True)
        known = buyers.select(account_id=buyers.account_id.cast(kind)).union(
            listed.select(account_id=listed.account_id.cast(kind)), distinct=True
        )
    unknown = act.anti_join(known, "account_id")
    found = unknown.aggregate(n=unknown.count(), first=unknown.account_id.min()).execute()
    count = int(found["n"].iloc[0])
    if count == 0:  # every one is of an account of the accounts table (a prospect with no purchase yet)
        return
    where = (
        "none with transactions before the cutoff, none in the accounts table"
        if listed is not None
        else "none with transactions before the cutoff, and no accounts table was given to look them up in"
    )
    logger.warning(  # logged, as the module's other notes, so a job's report lists it too
        "effort response: %s of the %s activities rows before %s (%.1f%%) have an activities.account_id "
        "of no account (%s; e.g. %s): their hours are left out of the fit, so the effort scale is measured "
        "on the other rows' hours alone; if they are hours of your accounts under other ids, write "
        "activities.account_id as transactions.account_id",
        f"{count:,}",
        f"{rows:,}",
        cut.date(),
        100 * count / rows,
        where,
        found["first"].iloc[0],
    )


def _account_ids(accounts: Table | None, act: ir.Table) -> ir.Table | None:
    """The ids of the accounts table, of the activities' id type; None without one (or of another type)."""
    if accounts is None or "account_id" not in accounts.columns:
        return None
    table = ibis.memtable(accounts[["account_id"]]) if isinstance(accounts, pd.DataFrame) else accounts
    if not isinstance(table, ir.Table) or not _same_type(
        table.schema()["account_id"], act.schema()["account_id"]
    ):
        return None
    return table.select("account_id").distinct()


def _same_type(a: dt.DataType, b: dt.DataType) -> bool:
    """Whether two column types are the same but for nullability (a parquet file's NOT NULL id)."""
    return bool(a.copy(nullable=True) == b.copy(nullable=True))


def _note_minutes(median: float | None, cut: pd.Timestamp) -> None:
    """Warn when the median activity lasts more than a working day: hours logged in minutes, likely.

    The fit reads ``hours`` as hours; in minutes its k was 60 times too large, without a word when the
    fit was called directly (`kamml.data.load_data` notes it too).
    """
    if median is None or median <= LONG_ACTIVITY_HOURS:
        return
    logger.warning(
        "activities.hours: the median activity before %s lasts %.4g hours (more than a working day): are "
        "the hours logged in minutes? The effort response reads them as hours, so its effort scale k would "
        "be 60 times too large; convert activities.hours to hours",
        cut.date(),
        median,
    )


def _note_late_logging(
    periods: list[tuple[int, int, int, int]],
    unlogged: list[tuple[int, int, int, int]],
    data_start: int,
    logging_start: int,
) -> None:
    """Warn when the activity log begins after the transactions and that cut periods or past hours."""
    if logging_start <= data_start + 31:  # the month's grace the periods allow
        return
    left_out = len(unlogged) - len(periods)
    if not left_out and not any(window < logging_start for *_, window in periods):
        return
    logger.warning(
        "effort response: activities.ts begins on %s, %d days after the first transaction (%s): "
        "%spast hours are counted from it rather than read as hours of zero before it",
        _from_day(logging_start).date(),
        logging_start - data_start,
        _from_day(data_start).date(),
        f"the {counted(left_out, 'planning period')} before it {'is' if left_out == 1 else 'are'} left out "
        "of the fit, and "
        if left_out
        else "",
    )


def _account_sizes(accounts: Table | None, column: str) -> pd.Series:
    """Size per account id from the accounts table (float, NaN when missing); DataError otherwise."""
    if accounts is None:
        raise DataError(f"effort response: the size column {column!r} needs an accounts table")
    if isinstance(accounts, pd.DataFrame):
        accounts = ibis.memtable(accounts)
    if not isinstance(accounts, ir.Table):
        raise DataError("effort response: accounts must be a pandas DataFrame or an Ibis table")
    if "account_id" not in accounts.columns or column not in accounts.columns:
        missing = [c for c in ("account_id", column) if c not in accounts.columns]
        raise DataError(f"effort response: the accounts table lacks column(s) {', '.join(missing)}")
    dtype = accounts.schema()[column]
    if not dtype.is_numeric():
        raise DataError(
            f"effort response: accounts.{column} must be numeric to serve as the account size, it is {dtype}"
        )
    frame = accounts.select("account_id", size=accounts[column].cast("float64")).execute()
    frame = frame.drop_duplicates("account_id")
    return pd.Series(frame["size"].to_numpy(dtype=float), index=frame["account_id"].to_numpy())


def _periods(
    cut: pd.Timestamp,
    cut_day: int,
    period_months: int,
    max_periods: int,
    data_start: int,
    logging_start: int,
    history_days: int,
    min_history_days: int,
) -> list[tuple[int, int, int, int]]:
    """(index, start day, end day, trailing window start day) of the periods that qualify."""
    out = []
    for j in range(1, max_periods + 1):
        try:
            start = _day_number(cut - pd.DateOffset(months=j * period_months))
        except (OverflowError, ValueError):  # before the year 1677, so before any data: no period
            break
        end = cut_day if j == 1 else _day_number(cut - pd.DateOffset(months=(j - 1) * period_months))
        window = min(history_days, start - data_start)
        if window < max(min_history_days, 1):
            break
        if logging_start > start + 31:  # effort logging had not started in the period's first month
            break
        out.append((j, start, end, start - window))
    return out


def _wide_panel(tx: ir.Table, act: ir.Table, periods: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """One row per account: per period its orders, hours, trailing spend and purchase days, last day."""
    # net sums as the features take them (`net_sum`): a full refund of 0.1 + 0.2 nets 5.6e-17, not 0,
    # and its account-period entered the fit with a log value some 40 below any real one
    daily = tx.group_by(["account_id", "day"]).aggregate(
        spend=net_sum(tx.amount),
        purchase=ibis.cases((tx.amount >= 0, 1.0), else_=0.0).max(),
    )
    d = daily
    metrics: dict[str, ir.Value] = {
        "first_day": ibis.cases((d.purchase > 0, d.day), else_=ibis.null("int64")).min()
    }
    for j, start, end, window in periods:
        inside = (d.day >= start) & (d.day < end)
        before = (d.day >= window) & (d.day < start)
        metrics[f"orders_{j}"] = ibis.cases((inside, d.purchase), else_=0.0).sum()
        metrics[f"spend_{j}"] = net_sum(d.spend, where=before)
        metrics[f"days_{j}"] = ibis.cases((before, d.purchase), else_=0.0).sum()
        last = ibis.cases(((d.day < start) & (d.purchase > 0), d.day), else_=ibis.null("int64"))
        metrics[f"last_{j}"] = last.max()
    per_account = d.group_by("account_id").aggregate(**metrics).execute()
    # past hours over the window of value and frequency: from the first purchase on, when that is later
    first = d.filter(d.purchase > 0).group_by("account_id").aggregate(first_purchase=d.day.min())
    act = join_on_account(act, first)
    hours_metrics: dict[str, ir.Value] = {}
    for j, start, end, window in periods:
        inside = (act.day >= start) & (act.day < end)
        before = (act.day >= window) & (act.day >= act.first_purchase) & (act.day < start)
        hours_metrics[f"hours_{j}"] = ibis.cases((inside, act.hours), else_=0.0).sum()
        hours_metrics[f"past_hours_{j}"] = ibis.cases((before, act.hours), else_=0.0).sum()
    hours = act.group_by("account_id").aggregate(**hours_metrics).execute()
    wide = per_account.merge(hours, on="account_id", how="left")
    for j, *_ in periods:
        for name in (f"hours_{j}", f"past_hours_{j}"):
            wide[name] = wide[name].astype(float).fillna(0.0)
    # the engine's row order and parallel float sums vary from run to run: fix both, so the same data
    # give the same fit (the last bits moved the fitted scale by ~2.5e-5 and reordered some ranks)
    wide = wide.sort_values("account_id", kind="stable").reset_index(drop=True)
    return settle_frame(wide)


def _long_panel(
    wide: pd.DataFrame,
    periods: list[tuple[int, int, int, int]],
    min_history_days: int,
    horizon_days: int,
    logging_start: int,
) -> pd.DataFrame:
    """The qualifying account-periods of the wide table, in the columns of `PANEL_COLUMNS`."""
    first = wide["first_day"].to_numpy(dtype=float)
    parts = []
    for j, start, end, window in periods:
        spend = wide[f"spend_{j}"].to_numpy(dtype=float)
        days = wide[f"days_{j}"].to_numpy(dtype=float)
        last = wide[f"last_{j}"].to_numpy(dtype=float)
        past = wide[f"past_hours_{j}"].to_numpy(dtype=float)
        length = np.minimum(start - window, start - first)  # NaN when the account never bought
        with np.errstate(invalid="ignore"):
            keep = (length >= max(min_history_days, 1)) & (spend > 0) & (days > 0) & ~np.isnan(last)
        length = length[keep]
        # hours are a rate over the logged part of the window: before the log began none could be read
        logged = np.minimum(length, start - logging_start)
        with np.errstate(divide="ignore", invalid="ignore"):
            past_rate = np.where(logged > 0, past[keep] / logged, 0.0)
        parts.append(
            pd.DataFrame(
                {
                    "account_id": wide["account_id"].to_numpy()[keep],
                    "period": j,
                    "period_start": _from_day(start),
                    "period_end": _from_day(end),
                    "orders": wide[f"orders_{j}"].to_numpy(dtype=float)[keep],
                    "hours": wide[f"hours_{j}"].to_numpy(dtype=float)[keep],
                    "value": spend[keep] / length * horizon_days,
                    "frequency": days[keep] / length * 365.0,
                    "recency_days": start - last[keep],
                    "age_days": start - first[keep],
                    "past_hours": past_rate * (end - start),
                }
            )
        )
    panel = pd.concat(parts, ignore_index=True)
    return panel.sort_values(["period", "account_id"], kind="stable").reset_index(drop=True)[
        list(PANEL_COLUMNS)
    ]


# ---------------------------------------------------------------------------------------------- helpers


def _whole(value: object) -> bool:
    """Whether `value` is a whole number (an integer, or a float such as 3.0; not a bool, NaN or text)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Integral):
        return True
    return isinstance(value, float) and value.is_integer()


def _day_number(ts: pd.Timestamp) -> int:
    """Days since 1970-01-01 of the day holding `ts` (as `kamml.features` counts days)."""
    return math.floor(ts.value / 1e9 / SECONDS_PER_DAY)


def _from_day(day: int) -> pd.Timestamp:
    """The midnight starting day number `day`."""
    return pd.Timestamp(day * SECONDS_PER_DAY, unit="s")


def _table(source: Table, name: str, needed: tuple[str, ...]) -> ir.Table:
    """An Ibis table from a frame or a table, with the needed columns: ts a timestamp, the last one float.

    A DataError names the table and column otherwise: integer or decimal hours of an Ibis table had no
    ``isnan`` (an AttributeError), text ones a ValueError from pandas.
    """
    if source is None:
        raise DataError(f"effort response: no {name} table given")
    if not isinstance(source, pd.DataFrame | ir.Table):
        raise DataError(f"effort response: {name} must be a pandas DataFrame or an Ibis table")
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise DataError(f"effort response: the {name} table lacks column(s) {', '.join(missing)}")
    number = needed[2]
    if isinstance(source, pd.DataFrame):
        frame = source[list(needed)].copy()
        try:
            frame["ts"] = pd.to_datetime(frame["ts"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"effort response: {name}.ts must hold dates: {exc}") from None
        try:
            frame[number] = pd.to_numeric(frame[number]).astype(float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"effort response: {name}.{number} must hold numbers: {exc}") from None
        return ibis.memtable(frame)
    schema = source.schema()
    if not schema["ts"].is_timestamp() and not schema["ts"].is_date():
        raise DataError(f"effort response: {name}.ts must be a timestamp, it is {schema['ts']}")
    if not schema[number].is_numeric():
        raise DataError(f"effort response: {name}.{number} must be numeric, it is {schema[number]}")
    ts = source.ts if schema["ts"].is_timestamp() else source.ts.cast("timestamp")  # a date: its midnight
    return source.select("account_id", ts=ts, **{number: source[number].cast("float64")})


def _with_day(table: ir.Table) -> ir.Table:
    """The table with an integer day number column."""
    return table.mutate(day=to_day(table.ts))  # the features' day numbers, on every engine
