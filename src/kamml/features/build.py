"""Point-in-time feature frames, labels and stacked training snapshots (DESIGN §3, §4).

`build_features(data, cutoff)` sees only rows dated before the cutoff; `build_labels(data, cutoff, h)`
only rows in [cutoff, cutoff + h). Both compute in the data's Ibis backend (DuckDB or Spark) and hand a
pandas frame indexed by account_id to the models.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import ibis
import ibis.expr.datatypes as dtypes
import ibis.expr.operations as ops
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from kamml.config import FEATURE_GROUPS, MAX_DAYS, MAX_SNAPSHOTS, ChurnLabel, Config
from kamml.data.readers import is_attribute_type
from kamml.data.sampling import RunningSample
from kamml.engine import engine_errors
from kamml.errors import ConfigError
from kamml.features._context import (
    FeatureContext,
    as_cutoff,
    check_history,
    check_observed,
    day_number,
    first_transaction,
    join_on_account,
    outer_join_on_account,
    to_day,
    with_day,
)
from kamml.features.groups import GROUPS, NON_FEATURE_ACCOUNT_COLUMNS, DailyGroup, day_rows
from kamml.features.referrals import first_referrals, spend_after_referral
from kamml.features.snapshots import Snapshot, SnapshotCache
from kamml.io import atomic_path, check_not_local_input
from kamml.text import counted

__all__ = [
    "account_base",
    "build_features",
    "build_labels",
    "build_past_window",
    "build_training_frame",
    "check_config",
    "check_days",
    "check_label_window",
    "feature_context",
    "features_expr",
    "training_cutoffs",
    "write_features",
]

log = logging.getLogger(__name__)

#: Feature columns that mean "how many / how much" and are 0 (not missing) for an account without rows;
#: every other column (ratios, gaps, recencies) stays missing when there is nothing to measure.
_ZERO_FILL = re.compile(
    r"^(frequency|recency|monetary|spend_total|orders_total|quantity_total|(spend|orders|quantity|hours)_\d+d"
    r"|refund_count|zero_amount_count|referrals_made|referrals_made_365d|referred_spend"
    r"|referrals_2hop|was_referred|hours_total|activities_365d|n_products)$"
)


def _cut(table: ir.Table | None, cutoff_day: int, column: str = "ts") -> ir.Table | None:
    """Rows of `table` dated before the cutoff, with a `day` column (None stays None)."""
    if table is None:
        return None
    t = with_day(table, column)
    return t.filter(t.day < ibis.literal(cutoff_day, type="int64"))


def check_loaded(data: Any) -> None:
    """A TypeError naming `kamml.load_data` when `data` is not a loaded dataset (a frame, a dict, a path).

    A notebook's DataFrame or dict of frames was an AttributeError ("'DataFrame' object has no attribute
    'transactions'") that did not say the tables must be loaded, and so validated, first.
    """
    if not hasattr(data, "transactions"):
        raise TypeError(
            f"data must be a kamml Dataset, got a {type(data).__name__}: load the tables with "
            "kamml.load_data(source, config) (a folder or a dict of frames), which validates them first"
        )


def check_config(config: Any) -> Config:
    """`config`, or the defaults for None; anything else a TypeError naming `kamml.load_config`.

    The config's name or path, a dict or ``cfg.data`` (which `kamml.load_data` takes) was an
    AttributeError ("'str' object has no attribute 'features'") that did not say what to pass.
    """
    if config is None:
        return Config()
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a kamml Config, got a {type(config).__name__}: load one with "
            "kamml.load_config(name or YAML path), or pass None for the defaults"
        )
    return config


def feature_context(data: Any, cutoff: Any, config: Config | None = None) -> FeatureContext:
    """Cut every table of `data` (a `kamml.data.Dataset`) at `cutoff` and gather the settings.

    A cutoff after the data end is refused (`check_observed`): every feature, score and backtest
    passes through here.
    """
    check_loaded(data)
    cfg = config or Config()
    cday = day_number(check_observed(data, cutoff))
    tx = _cut(data.transactions, cday)
    assert tx is not None
    return FeatureContext(
        cutoff_day=cday,
        tx=tx,
        rows=day_rows(tx),
        accounts=data.accounts,
        referrals=_cut(first_referrals(data.referrals), cday),
        activities=_cut(data.activities, cday),
        unit_days=cfg.time.unit_days,
        windows=tuple(cfg.features.windows),
        # the label window the models learn on: the calendar feature must mean the same in training
        # (built with that window as horizon) and at scoring (built with the horizon to predict)
        horizon_days=cfg.time.training_horizon_days,
        static_columns=_static_columns(cfg, data.accounts),
    )


def _static_columns(cfg: Config, accounts: ir.Table | None) -> tuple[str, ...] | None:
    """``features.static_columns``, checked against the accounts table (a ConfigError naming a miss).

    A named column the static group cannot use (a date, a list; account_id, created_at, owner,
    contract_end, which kamml reads for themselves) is refused: it was skipped without a word.
    """
    chosen = cfg.features.static_columns
    if chosen is None or accounts is None:
        return None if chosen is None else tuple(chosen)
    missing = [name for name in chosen if name not in accounts.columns]
    if missing:
        raise ConfigError(
            f"'features.static_columns' names {', '.join(repr(m) for m in missing)}, not a column of the "
            f"accounts table (its columns: {', '.join(accounts.columns)})"
        )
    schema = accounts.schema()
    reserved = [name for name in chosen if name in NON_FEATURE_ACCOUNT_COLUMNS]
    if reserved:
        raise ConfigError(
            f"'features.static_columns' names {', '.join(repr(m) for m in reserved)}: accounts columns kamml "
            "reads for themselves, not attributes (created_at gives account_age_days); leave them out"
        )
    unusable = [f"{name!r} ({schema[name]})" for name in chosen if not is_attribute_type(schema[name])]
    if unusable:
        raise ConfigError(
            f"'features.static_columns' names {', '.join(unusable)}: an attribute must be a number, a "
            "yes/no or a text column of the accounts table; turn a date into a number (such as the days "
            "from it to a fixed day) before loading, or leave the column out"
        )
    return tuple(chosen)


def account_base(ctx: FeatureContext) -> ir.Table:
    """Accounts that exist at the cutoff: any transaction before it, or an accounts row created before it.

    An accounts row without a ``created_at`` (or without the column) enters at its first transaction: it
    cannot be placed in time, and counting it in every past snapshot put the accounts that would become
    customers there as accounts without history whose labels show their first purchases (a leak the
    models learned: the no-history rows of a 500-account book went from 28, 2 buying, to 405, 200
    buying).
    """
    ids = ctx.tx.select("account_id").distinct()
    dated = _dated_accounts(ctx)
    return ids if dated is None else ids.union(dated, distinct=True)


def _dated_accounts(ctx: FeatureContext) -> ir.Table | None:
    """Ids of the accounts rows created before the cutoff (a known ``created_at``), or None."""
    if ctx.accounts is None or "created_at" not in ctx.accounts.columns:
        return None
    acc = ctx.accounts
    return acc.filter(acc.created_at.notnull() & (to_day(acc.created_at) < ctx.lit(ctx.cutoff_day))).select(
        "account_id"
    )


def enabled_groups(config: Config | None, data: Any) -> list[str]:
    """Names of the groups to compute: switched on in the config and with their table present."""
    cfg = config or Config()
    cfg.features.check_edits()  # windows or groups edited in place: checked as on loading
    unknown = set(cfg.features.groups) - set(GROUPS) - {"btyd"}
    if unknown:
        raise ConfigError(
            f"unknown feature group(s) in features.groups: {sorted(unknown)}; valid: {[*GROUPS, 'btyd']}"
        )
    needs = {"referral": "referrals", "effort": "activities", "static": "accounts"}
    names = []
    for name in GROUPS:
        if not cfg.features.groups.get(name, True):
            continue
        table = needs.get(name)
        if name == "products" and "product" not in data.transactions.columns:
            _note_skipped(data, "feature group 'products' skipped: transactions have no product column")
            continue
        if table is not None and getattr(data, table, None) is None:
            _note_skipped(data, f"feature group {name!r} skipped: no {table} table")
            continue
        names.append(name)
    return names


#: The "feature group skipped" lines logged so far, by the `id` of the data they were said of; an entry
#: goes when its data is collected (`_note_skipped`).
_SKIPPED_SAID: dict[int, set[str]] = {}


def _note_skipped(data: Any, message: str) -> None:
    """Log `message` at INFO once for `data`: the same tables give the same groups at every cutoff.

    Logged at each snapshot and feature build, a job said each about 8 times (a user walkthrough).
    Data that cannot be referred to weakly (not a `kamml.data.Dataset`) has it logged every time.
    """
    key = id(data)
    said = _SKIPPED_SAID.get(key)
    if said is None:
        try:
            weakref.finalize(data, _SKIPPED_SAID.pop, key, None)
        except TypeError:
            log.info(message)
            return
        said = _SKIPPED_SAID[key] = set()
    if message not in said:
        said.add(message)
        log.info(message)


def _daily_pass(
    ctx: FeatureContext, groups: list[DailyGroup], spend: bool
) -> tuple[ir.Table, ir.Table | None]:
    """One group-by over the transaction rows computing every daily group's columns for every account.

    With `spend`, the pass also returns the per-account spend the referral and effort groups need
    (see `FeatureContext.spend_by_account`).
    """
    d = ctx.rows
    aggs: dict[str, ir.Value] = {}
    for group in groups:
        aggs.update(group.aggregates(ctx, d))
    if spend:
        aggs.update(ctx.spend_aggregates())
    a = d.group_by("account_id").aggregate(**aggs)
    cols: dict[str, ir.Value] = {}
    for group in groups:
        cols.update(group.columns(ctx, a))
    spent = a.select("account_id", "_spend", "_spend365") if spend else None
    return a.select("account_id", **cols), spent


#: Table groups that read the per-account spend (`FeatureContext.spend_by_account`).
_NEEDS_SPEND = ("referral", "effort")


def feature_expr(ctx: FeatureContext, groups: Iterable[str]) -> ir.Table:
    """One Ibis expression: the accounts existing at the cutoff joined with every group's columns.

    The daily groups (rfm, windows, calendar, trend, regularity, breadth) are fused into one pass over
    the transaction rows, which also yields the spend the referral and effort groups reuse; the table
    groups (products, referral, effort, static) each join their own part.
    """
    names = list(groups)
    daily_groups = [g for n in names if isinstance(g := GROUPS[n], DailyGroup)]
    if daily_groups:
        spend = any(n in _NEEDS_SPEND for n in names)
        out, spent = _daily_pass(ctx, daily_groups, spend)
        ctx = replace(ctx, account_spend=spent)
        dated = _dated_accounts(ctx)
        if dated is not None:
            # the pass has a row per account with transactions; add the accounts created without any
            out = outer_join_on_account(out, dated)
    else:
        out = account_base(ctx)
    for name in names:
        group = GROUPS[name]
        if isinstance(group, DailyGroup):
            continue
        part = group(ctx)
        if part is None:
            continue
        out = join_on_account(out, part)
    if "cutoff_month" in out.columns:  # the cutoff's own: every row, accounts without transactions too
        out = out.mutate(
            cutoff_month=ibis.literal(float(ctx.cutoff.month), type="float64"),
            cutoff_quarter=ibis.literal(float(ctx.cutoff.quarter), type="float64"),
        )
    return out


def fetch_by_account(expr: ir.Table, doing: str = "computing a table") -> pd.DataFrame:
    """Execute an expression into pandas through Arrow, indexed by account_id and sorted by it.

    Missing numbers become NaN. Ibis's own `to_pandas` boxes nullable columns into Python objects
    first, several times slower on millions of rows. Sorted by the engine and indexed without
    `set_index`: on a million rows of 55 columns pandas' `set_index(...).sort_index()` copied the frame
    twice and took 4 s, Arrow's `sort_by` 0.5-2.4 s, DuckDB's ORDER BY adds about 0.4 s to the query.
    `doing` names the table in an `EngineError` when the engine fails (`kamml.engine.engine_errors`).
    """
    with engine_errors(doing):  # out of memory, or a Spark job failing: an EngineError
        table = expr.order_by("account_id").to_pyarrow()
    frame = settle_table(table.drop_columns(["account_id"])).to_pandas()
    frame.index = pd.Index(table["account_id"].to_pandas(), name="account_id")
    return frame


def settle_table(table: pa.Table) -> pa.Table:
    """`table` with every float64 column `settle`d, nulls as NaN.

    Done on the Arrow columns before pandas: assigning 52 settled columns to a million-row frame took
    1.3 s of pandas block management, settling them 0.4 s.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_float64(field.type):
            values = table.column(i).to_numpy()  # nulls become NaN
            table = table.set_column(i, field, pa.array(settle(values)))
    return table


def settle_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every float64 column `settle`d, in place (also returned)."""
    for name in frame.columns:
        if frame[name].dtype == np.float64:
            frame[name] = settle(frame[name].to_numpy())
    return frame


#: Low mantissa bits `settle` rounds away: 20 of 52 leave about 9.6 significant digits.
SETTLE_BITS = 20


def settle(values: np.ndarray) -> np.ndarray:
    """float64 values rounded to 32 mantissa bits (relative error below 2.4e-10), NaN and inf kept.

    The engines sum floats in parallel, so the last bits of a sum depend on how threads split the rows:
    two runs on the same data differed in about 1,000 of 250,000 feature values, and now and then
    that moved a LightGBM split, so the same data and seed gave another model. Rounded, the runs agree
    unless a value sits within its last bits of a rounding boundary (about one value in a million of
    those that differ).
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    half = np.uint64(1 << (SETTLE_BITS - 1))
    keep = np.uint64((0xFFFFFFFFFFFFFFFF >> SETTLE_BITS) << SETTLE_BITS)
    rounded = ((bits + half) & keep).view(np.float64)
    return np.where(np.isfinite(values), rounded, values)


def finish_expr(expr: ir.Table) -> ir.Table:
    """Numbers as float64 with count columns zero-filled, text as is: the output contract, in the engine."""
    cols: dict[str, ir.Value] = {}
    for name, dtype in expr.schema().items():
        if name == "account_id" or not (dtype.is_numeric() or dtype.is_boolean()):
            cols[name] = expr[name]
            continue
        value = _as_double(expr[name])
        cols[name] = value.fill_null(0.0) if _ZERO_FILL.match(name) else value
    return expr.select(**cols)


def _as_double(value: ir.Value) -> ir.FloatingValue:
    """`value` cast to float64 in the engine's SQL, even where Ibis already types it float64.

    DuckDB and Spark read a literal such as ``1.0`` as a DECIMAL, so a sum of them (orders_total,
    refund_count) or the cutoff's month is one in the engine, while Ibis, taking it for float64, drops
    ``.cast("float64")`` as a no-op: `write_features` wrote such columns as decimals.
    """
    return ops.Cast(value, to=dtypes.float64).to_expr()


def features_expr(data: Any, cutoff: Any, config: Config | None = None) -> ir.Table:
    """The whole feature set as of `cutoff` as one Ibis expression (unordered), ready to run anywhere.

    A cutoff after the data end, or on or before the first transaction's day, is a `ConfigError`.
    """
    config = check_config(config)
    ctx = feature_context(data, cutoff, config)
    check_history(data, cutoff)
    return finish_expr(feature_expr(ctx, enabled_groups(config, data)))


def build_features(data: Any, cutoff: Any, config: Config | None = None) -> pd.DataFrame:
    """Feature frame as of `cutoff`: one row per account existing then, indexed by account_id.

    Parameters
    ----------
    data : kamml.data.Dataset
        Validated tables (see `kamml.load_data`).
    cutoff : date-like
        The "as of" date; only rows with ts < cutoff are seen.
    config : Config, optional
        `features.windows`, `features.groups`, `features.static_columns`, `time.unit` and the models'
        label window (`time.train_horizon_days`, else `time.horizon_days`) are used.

    Returns
    -------
    pandas.DataFrame
        Columns as listed in docs/features.md, float64 (strings from the accounts table as category),
        sorted by account_id. ``attrs["feature_window_days"]`` holds the calendar window of
        ``spend_last_year_horizon`` and ``attrs["time_unit"]`` the unit of recency and T, so a model
        trained on another window or unit refuses the frame (`ModelBundle.predict`).
    """
    cfg = check_config(config)
    _note_unused_static_columns(data, cfg)
    return _feature_frame(data, cutoff, cfg)


def _note_unused_static_columns(data: Any, cfg: Config) -> None:
    """A warning naming ``features.static_columns`` when the data has no accounts table to apply it to.

    The setting was ignored without a word; not an error, as one config may serve data with and without
    accounts. Logged once per `build_features`, `write_features` or `build_training_frame` call.
    """
    check_loaded(data)
    chosen = cfg.features.static_columns
    if chosen and data.accounts is None:
        log.warning(
            "features.static_columns (%s) is set but the data has no accounts table: no attr_ features "
            "are built; load an accounts table or drop the setting",
            ", ".join(chosen),
        )


def _feature_frame(data: Any, cutoff: Any, cfg: Config) -> pd.DataFrame:
    """`build_features` without its note, for each snapshot of `build_training_frame`, which notes once."""
    frame = fetch_by_account(
        features_expr(data, cutoff, cfg), f"computing the features at {as_cutoff(cutoff).date()}"
    )
    for col in frame.columns:
        if not pd.api.types.is_float_dtype(frame[col]):
            frame[col] = frame[col].astype("category")
    mark_built_with(frame, cfg)
    log.debug("features at %s: %d accounts x %d columns", pd.Timestamp(cutoff).date(), *frame.shape)
    return frame


def mark_built_with(frame: pd.DataFrame, cfg: Config) -> None:
    """Record in `frame.attrs` the settings a model must share to read its rows: window and time unit.

    The window is the one `feature_context` gives the calendar feature (the training label window);
    a frame built under a 90-day config read by a 180-day model would be scored without a word.
    """
    frame.attrs["feature_window_days"] = cfg.time.training_horizon_days
    frame.attrs["time_unit"] = cfg.time.unit


def write_features(data: Any, cutoff: Any, path: str | Path, config: Config | None = None) -> Path | str:
    """Compute the feature set in the engine and write it to Parquet without collecting it in Python.

    The out-of-core path for data larger than memory: DuckDB streams the result to the file (Spark
    writes its parts); the columns are those of `build_features`, unordered, with account_id a column.
    The values are the engine's, not `settle`d as `build_features` returns them (their last bits can
    differ from run to run); `kamml.spark.score_spark` settles each batch as it reads the file, and a
    reader of its own can apply `settle_table`. The engine out of memory is an `EngineError` naming the
    setting, as in `build_features` (DuckDB's own exception came through). DuckDB's file is written
    beside `path` and renamed onto it (`kamml.io.atomic_path`), so the name holds the old file or the
    whole new one: written in place, a reader saw it grow and a killed write left a truncated file.
    Spark's folder of parts is written into a hidden folder beside `path` and renamed onto it
    (`kamml.spark.write_atomic`, any Hadoop path): written in place, a second write to the name failed
    on Spark's PATH_ALREADY_EXISTS and a reader saw the folder while its parts were being written.

    A local `path` that is one of the data's input files, a folder holding one or a path inside an input
    folder is a `DataError` before any work (`kamml.io.check_not_local_input`, as `score_spark`): written
    over the transactions file, the features replaced the table they were computed from.

    Returns the path written: a `Path`, or on Spark a URI (``s3a://...``, ``hdfs://...``) as the `str`
    given (a `Path` folds its ``//``: ``s3a://bucket/x`` came back as ``s3a:/bucket/x``).
    """
    config = check_config(config)
    _note_unused_static_columns(data, config)
    check_not_local_input(path, dict(getattr(data, "inputs", None) or {}))
    expr = features_expr(data, cutoff, config)
    backend = data.backend.name
    if backend == "pyspark":
        _write_spark(expr, path)
        return str(path) if "://" in str(path) else Path(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if backend != "duckdb":  # another Ibis backend writes as it always has
        with engine_errors():
            expr.to_parquet(target)
        return target
    with atomic_path(target) as tmp, engine_errors():
        expr.to_parquet(tmp)
    return target


def _write_spark(expr: ir.Table, path: str | Path) -> None:
    """Write `expr` (on the PySpark backend) as a folder of Parquet parts at `path`, atomically.

    The path is given to Hadoop as written (``s3a://...`` stays a URI, where `Path` would mangle it).
    """
    from kamml.spark.session import to_spark, write_atomic

    with engine_errors(f"writing the features to {path}"):
        write_atomic(to_spark(expr), str(path))


def label_expr(
    data: Any, cutoff: Any, horizon_days: int, base_cutoff: Any = None, churn: str = "no_purchase"
) -> ir.Table:
    """Labels over [cutoff, cutoff + horizon) as an Ibis expression.

    Rows are the accounts existing at `base_cutoff` (default: the cutoff); a later `base_cutoff`
    measures a past window for today's accounts. `churn` is the churned rule (see `build_labels`).
    """
    check_loaded(data)
    if churn not in get_args(ChurnLabel):
        raise ConfigError(f"unknown churn label rule {churn!r}; valid: {', '.join(get_args(ChurnLabel))}")
    nonrenewal = churn == "no_purchase_or_nonrenewal"
    if nonrenewal and (data.accounts is None or "contract_end" not in data.accounts.columns):
        raise ConfigError(
            "models.churn_label no_purchase_or_nonrenewal needs the accounts table with a contract_end "
            "column (map yours with data.columns.accounts.contract_end)"
        )
    cday = day_number(cutoff)
    stop = cday + int(horizon_days)
    tx = with_day(data.transactions)
    future = tx.filter((tx.day >= cday) & (tx.day < stop))
    value = future.group_by("account_id").aggregate(
        _value=future.amount.sum(),
        _purchases=ibis.cases((future.amount >= 0, future.day), else_=ibis.null("int64")).nunique(),
    )
    ctx = feature_context(data, cutoff if base_cutoff is None else base_cutoff)
    out = join_on_account(account_base(ctx), value)
    has_referrals = data.referrals is not None
    if has_referrals:
        refs = with_day(first_referrals(data.referrals))
        refs = refs.filter((refs.day >= cday) & (refs.day < stop))
        spend = spend_after_referral(refs, future)
        ref_value = spend.group_by(spend.referrer_id.name("account_id")).aggregate(
            _ref_value=spend.amount.sum()
        )
        ref_count = refs.group_by(refs.referrer_id.name("account_id")).aggregate(_ref_n=refs.count())
        out = join_on_account(join_on_account(out, ref_value), ref_count)
    lapses = None
    if nonrenewal:
        acc = data.accounts
        out = join_on_account(out, acc.select("account_id", _end=to_day(acc.contract_end)))
        inside = (out._end >= ibis.literal(cday, type="int64")) & (
            out._end < ibis.literal(stop, type="int64")
        )
        lapses = inside.fill_null(False)
    churned = out._purchases.fill_null(0) == 0
    if lapses is not None:
        churned = churned | lapses
    cols: dict[str, ir.Value] = {
        "value": ibis.greatest(out._value.fill_null(0.0), 0.0),
        "purchases": out._purchases.fill_null(0).cast("float64"),
        "churned": churned.cast("int64"),
    }
    if lapses is not None:
        cols["contract_lapsed"] = lapses.cast("int64")
    if has_referrals:
        cols["referral_value"] = ibis.greatest(out._ref_value.fill_null(0.0), 0.0)
        cols["referrals"] = out._ref_n.fill_null(0).cast("float64")
    return out.select("account_id", **cols)


def build_labels(data: Any, cutoff: Any, horizon_days: int, *, churn: str = "no_purchase") -> pd.DataFrame:
    """Labels over [cutoff, cutoff + horizon_days) for every account existing at the cutoff.

    Columns: ``value`` (net spend in the horizon, floored at 0), ``purchases`` (purchase days),
    ``churned`` (1 when no purchase day in the horizon) and, with a referrals table, ``referral_value``
    (spend in the horizon, after the referral, of accounts this account referred during the horizon)
    and ``referrals`` (how many it referred). Raises `ConfigError` when the window passes the data end,
    and when `horizon_days` is not a whole number of days (an int, not 1.5 or True) from 1 to
    `kamml.config.MAX_DAYS` (a century), as ``time.horizon_days`` in a config; so is a cutoff on or
    before the first transaction's day, where no account has a history yet (`check_history`: the frame
    was empty).

    With ``churn="no_purchase_or_nonrenewal"`` (config ``models.churn_label``) an account is also
    churned when its contract ends in the horizon: the accounts table's ``contract_end`` is the last
    known end, so one inside the window was not renewed. ``contract_lapsed`` says which; an account
    without a contract_end, or whose contract ended before the cutoff, follows the purchase rule.
    """
    horizon_days = check_days(horizon_days, "horizon_days")
    check_label_window(data, cutoff, horizon_days)
    check_history(data, cutoff, "labels")  # no account exists there: the frame was empty, without a word
    doing = f"computing the labels at {as_cutoff(cutoff).date()} ({horizon_days} days)"
    frame = fetch_by_account(label_expr(data, cutoff, horizon_days, churn=churn), doing)
    for col in ("churned", "contract_lapsed"):
        if col in frame.columns:
            frame[col] = frame[col].astype("int64")
    return frame


def check_days(value: Any, name: str) -> int:
    """`value` as an int of days from 1 to `MAX_DAYS`; else a `ConfigError` naming the argument `name`.

    0 or a negative horizon gave empty label windows (every account churned), 1.5 was cut to 1 day.
    An int or numpy integer only, as the estimators' ``horizon_days`` (True is no number of days).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number of days (an int), got {value!r}")
    if not 1 <= int(value) <= MAX_DAYS:
        raise ConfigError(f"{name} must be from 1 to {MAX_DAYS:,} days (a century), got {int(value):,}")
    return int(value)


def check_label_window(data: Any, cutoff: Any, horizon_days: int) -> None:
    """Refuse a label window [cutoff, cutoff + horizon_days) that ends after the data end."""
    cday = day_number(cutoff)
    end = getattr(data, "end", None)
    if end is not None and cday + int(horizon_days) > day_number(pd.Timestamp(end).normalize()):
        # `end` is exclusive (the day after the last day): name the last day and the cutoff that fits
        last = pd.Timestamp(end).normalize()
        raise ConfigError(
            f"label window {as_cutoff(cutoff).date()} + {horizon_days} days ends after the data end "
            f"{(last - pd.Timedelta(days=1)).date()} (its last day): the latest cutoff for {horizon_days} "
            f"days is {(last - pd.Timedelta(days=int(horizon_days))).date()}; move the cutoff earlier "
            "(--cutoff, time.cutoff) or shorten time.horizon_days"
        )


def rfm_only(config: Config) -> Config:
    """A copy of `config` whose features are the rfm group alone: what BG/NBD needs, for a fraction."""
    cfg = config.model_copy(deep=True)
    cfg.features.groups = {g: g == "rfm" for g in FEATURE_GROUPS if g != "btyd"}
    return cfg


def build_past_window(data: Any, cutoff: Any, days: int) -> pd.DataFrame:
    """The label quantities over the `days` before the cutoff, for every account existing at the cutoff.

    The "last period" baselines: what each account spent (and brought in by referrals) in the window
    [cutoff - days, cutoff); accounts newer than the window's start count what they did since. `days`
    is checked as `build_labels`' horizon (an int from 1 to `kamml.config.MAX_DAYS`), and the cutoff as
    `build_labels`' (on or before the first transaction's day is a `ConfigError`); the window itself may
    start before the first transaction.
    """
    days = check_days(days, "days")
    check_history(data, cutoff, "labels")  # the cutoff's own accounts; the window may start before the data
    start = pd.Timestamp(cutoff) - pd.Timedelta(days=days)
    expr = label_expr(data, start, days, base_cutoff=cutoff)
    return fetch_by_account(expr, f"computing the {days} days before {as_cutoff(cutoff).date()}")


def training_cutoffs(end: Any, horizon_days: int, snapshots: int, step_days: int) -> list[pd.Timestamp]:
    """Snapshot cutoffs whose whole label window lies before `end` (exclusive), latest first.

    The k-th cutoff (k = 1..K) is end - horizon - (k - 1) * step, so the latest snapshot's labels end at
    the data end and earlier ones step back from there. `horizon_days` and `step_days` are checked as
    ``time.horizon_days`` and ``time.step_days`` (ints from 1 to `kamml.config.MAX_DAYS`; a `ConfigError`),
    `snapshots` as ``time.snapshots`` (an int from 1 to 1,000; 0 gave no cutoffs, so no training rows).
    `end` is read as a cutoff is (`as_cutoff`: a number, a month or a date not written YYYY-MM-DD is a
    `ConfigError`; an aware one in UTC), except that a time of day counts from the midnight before it.
    The cutoffs are naive UTC midnights in nanoseconds.
    """
    horizon_days = check_days(horizon_days, "horizon_days")
    step_days = check_days(step_days, "step_days")  # 0 gave one cutoff K times, each row K times
    if isinstance(snapshots, bool) or not isinstance(snapshots, (int, np.integer)):
        raise ConfigError(f"snapshots must be a whole number (an int), got {snapshots!r}")
    if not 1 <= int(snapshots) <= MAX_SNAPSHOTS:
        raise ConfigError(f"snapshots must be from 1 to {MAX_SNAPSHOTS:,}, got {int(snapshots):,}")
    # as a cutoff: pandas read 20241231 as nanoseconds (cutoffs in 1969), 12/31/2024 month first, an
    # aware end gave cutoffs at its zone's midnights, which the training frame refused as times of day
    last = as_cutoff(end, "end", floor=True).as_unit("ns") - pd.Timedelta(days=horizon_days)
    return [last - pd.Timedelta(days=k * step_days) for k in range(snapshots)]


def _build_snapshot(data: Any, cutoff: Any, cfg: Config, snapshots: SnapshotCache | None) -> Snapshot:
    """Features joined with labels at `cutoff`, every account; left in `snapshots` too where it is wanted."""
    feats = _feature_frame(data, cutoff, cfg)
    labels = build_labels(data, cutoff, cfg.time.training_horizon_days, churn=cfg.models.churn_label)
    frame = feats.join(labels, how="inner")
    if snapshots is not None:
        snapshots.put(cutoff, cfg, frame)
    return Snapshot.of(frame, None)


def _refuse_repeats(cutoffs: list[pd.Timestamp]) -> None:
    """A `ConfigError` naming a cutoff given twice: its snapshot was stacked twice, each row counted twice."""
    repeated = sorted(c for c, n in Counter(cutoffs).items() if n > 1)
    if repeated:
        raise ConfigError(
            f"cutoffs repeat {', '.join(str(c.date()) for c in repeated)}: each snapshot would be stacked "
            "as often as its cutoff is given, so the models would weigh its rows twice; give each cutoff once"
        )


def _refuse_before_first(data: Any, cutoffs: list[pd.Timestamp]) -> None:
    """A `ConfigError` naming the cutoffs on or before the first transaction's day, and that day.

    Such a snapshot holds no purchase history (no rows, or accounts created earlier without any), and was
    stacked beside the others silently. All are refused, not skipped: a frame of fewer snapshots than
    asked for would pass unnoticed. Data without validation's first-transaction figure are not checked.
    """
    first = first_transaction(data)
    if first is None:
        return
    early = sorted(c for c in cutoffs if c <= first.normalize())
    if early:
        shown = ", ".join(str(c.date()) for c in early)
        raise ConfigError(
            f"cutoff{'s' if len(early) > 1 else ''} {shown} {'are' if len(early) > 1 else 'is'} on or before "
            f"the day of the first transaction (transactions.ts: {first.date()}): "
            f"{'those snapshots' if len(early) > 1 else 'that snapshot'} would hold no purchase history, as "
            f"features read only the days before a cutoff; give cutoffs after {first.date()}, or take them "
            "from kamml.features.training_cutoffs(end, horizon_days, snapshots, step_days)"
        )


def build_training_frame(
    data: Any,
    cutoffs: Sequence[Any],
    config: Config | None = None,
    *,
    max_accounts: int | None = None,
    snapshots: SnapshotCache | None = None,
) -> pd.DataFrame:
    """Features and labels stacked over several snapshot cutoffs, with a ``snapshot`` column.

    Rows are (snapshot, account); the index is a plain RangeIndex and ``account_id`` a column, so the
    same account appears once per snapshot; ``snapshot`` holds each cutoff as the features read it (a
    naive UTC midnight, also for a UTC-aware cutoff; datetime64[ns] whatever the cutoffs' type).
    Backtests split on ``snapshot``. The labels' window in days is kept in ``attrs["horizon_days"]`` and
    ``time.unit`` in ``attrs["time_unit"]``, so a model is not fitted to another horizon's labels or
    another unit's times.

    With `max_accounts` (``models.max_training_accounts``) the frame keeps the rows of at most that many
    accounts, the same in every snapshot: those whose ids hash lowest (`kamml.data.sampling`), the
    sample `ModelBundle.fit` would draw from the whole frame. Rows outside it are dropped snapshot by
    snapshot, so a large book's frame is never held whole; ``attrs["sampled_from"]`` then counts the
    accounts it was drawn from and ``attrs["referral_value_before_sample"]`` sums their referral value.
    `cutoffs` is a sequence (or iterable) of cutoff dates, e.g. from `training_cutoffs`; a single cutoff
    (a str, date, datetime, pandas Timestamp or numpy datetime64) is refused with a `ConfigError`, as
    a str would otherwise be read as one cutoff per character: pass ``[cutoff]`` for one snapshot. A
    cutoff given twice (also as another type of the same day) is refused, not dropped: it is a mistake;
    so is one on or before the day of the first transaction, whose snapshot would hold no history.
    With `snapshots` (`kamml.features.snapshots.SnapshotCache`) a snapshot an earlier stage of the job
    built is taken from it instead of being built again, and one it wants is left in it.
    """
    if isinstance(cutoffs, pd.Period):  # not iterable (a TypeError): as_cutoff says what to give instead
        as_cutoff(cutoffs)
    if isinstance(cutoffs, (str, bytes, dt.date, np.datetime64)):  # pd.Timestamp is a dt.datetime
        raise ConfigError(
            f"cutoffs must be a sequence of cutoff dates, got the single cutoff {cutoffs!r}: for one "
            f"snapshot pass it in a list (build_training_frame(data, [cutoff], config)), or take "
            "several from kamml.features.training_cutoffs(end, horizon_days, snapshots, step_days)"
        )
    cfg = check_config(config)
    _note_unused_static_columns(data, cfg)  # once, not once per snapshot
    frames = []
    # each as the features read it (naive UTC midnight), all checked before any is built: a UTC-aware
    # cutoff was kept aware in the snapshot column, a category of mixed objects beside naive ones; in
    # nanoseconds, as training_cutoffs gives them: a str or date made the column datetime64[s]
    cutoffs = [as_cutoff(cutoff).as_unit("ns") for cutoff in cutoffs]  # an iterator is fine too
    if not cutoffs:  # it blamed time.snapshots, a setting such a call does not use
        raise ConfigError(
            "cutoffs is empty: no training snapshots to build; give at least one cutoff date, or take "
            "several from kamml.features.training_cutoffs(end, horizon_days, snapshots, step_days)"
        )
    _refuse_repeats(cutoffs)
    _refuse_before_first(data, cutoffs)
    sample = RunningSample(max_accounts) if max_accounts is not None else None
    referral_total = 0.0
    for i, cutoff in enumerate(cutoffs, start=1):
        start = time.perf_counter()
        snapshot = snapshots.take(cutoff, cfg, max_accounts) if snapshots is not None else None
        reused = snapshot is not None
        if snapshot is None:
            snapshot = _build_snapshot(data, cutoff, cfg, snapshots)
        frame = snapshot.rows
        if sample is not None:  # the referral total, so a sample without any can say what it left out
            referral_total += snapshot.referral_value
            frame = frame[frame.index.isin(sample.add(snapshot.ids))]
        frame = frame.reset_index()  # a new frame: a snapshot's rows are not changed in place
        frame.insert(1, "snapshot", cutoff)
        frames.append(frame)
        log.info(
            "training snapshot %s of %s at %s: %s in %.1f s%s",
            f"{i:,}",
            f"{len(cutoffs):,}",
            cutoff.date(),
            counted(len(snapshot.ids), "account"),
            time.perf_counter() - start,
            " (built earlier in the job)" if reused else "",
        )
    if sample is not None and sample.ids is not None and sample.seen > sample.limit:
        chosen = sample.ids
        frames = [frame[frame["account_id"].isin(chosen)] for frame in frames]
        log.info(
            "training on the rows of %s of %s accounts (models.max_training_accounts)",
            f"{sample.limit:,}",
            f"{sample.seen:,}",
        )
    out = pd.concat(frames, ignore_index=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object:
            out[col] = out[col].astype("category")
    out.attrs["horizon_days"] = cfg.time.training_horizon_days  # the label window, checked by ModelBundle.fit
    mark_built_with(out, cfg)  # recency, T and the BTYD columns in days or weeks, checked too
    if sample is not None and sample.seen > sample.limit:
        out.attrs["sampled_from"] = sample.seen  # ModelBundle.fit names the sample in its meta and errors
        out.attrs["referral_value_before_sample"] = referral_total
    return out
