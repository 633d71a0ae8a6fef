"""Effort allocation on Spark: the exact optimum of `kamml.allocation.allocate`, from distributed sums.

The problem and its solution are those of `kamml.allocation.optimizer` (DESIGN §6): account i takes
``h_i = clip(k_i * (a_i - max(nu, p_r)), floor_i, cap_i)`` hours at the team's log-price ``nu`` and its
rep's own log-price ``p_r``, with ``a_i = ln(stake_i / k_i)``. Each price is the root of a monotone,
piecewise-linear demand curve (hours asked for at that price), and a demand curve is a sum over accounts.
So the driver only ever holds a few numbers per rep: every pass over the scored table (``mapInPandas``
over Parquet parts) evaluates, for every rep at once, the demand and its slope at a handful of candidate
prices; the driver narrows each rep's bracket, takes the Newton step of each bracket end and asks again.
Once a bracket holds no kink the Newton step lands on the root, so a search takes a few passes. The stopping
rule, the price floors, the shrink-to-fit of a binding limit and the cost of the floors (the same problem
solved without floors, searched in the same passes) follow the in-memory optimizer, so the hours agree with
it to its tolerance (a relative 1e-9 of a binding limit), and in practice to rounding.

The steps, each a Spark job over the table, none collecting rows to the driver:

1. checks of the scores (`kamml.allocation.check_scores`' rules, as counts and a few examples), with
   the scores' own horizon (``horizon_days``, one per table) against any stated one, as in memory;
2. exact order statistics (median of positive clv for the effort scale, the values just below the top
   10 % for the reason codes, `kamml.allocation.tiers.top_threshold`) by ``approxQuantile`` brackets,
   a count, and the few values inside the bracket;
3. stake parts, effort scale, floors and rep codes per account with kamml's own functions, written once
   to a staging Parquet folder, then checked as `allocate` checks them (stakes that overflow, reps of
   the capacity that own no account; accounts per owner are the only rows collected);
4. the price searches (rep prices, then the team's), the limits' use, the hours, gains and reasons;
   with a budget curve, the team's price again at every budget at once (the reps' prices do not move),
   the limits' use and the gains at each: a few more passes of the same kind;
5. rank by expected gain (ties by stake, then account_id) through a range-partitioned sort, checkpointed
   so per-partition counts give each row its global rank; tiers from the rank (the rows on either side
   of each tier's edge are read, so that a tie there goes whole to one tier).

The result is written as Parquet parts, in rank order, with the plan's summary (``_allocation.json``,
the dict `allocate` puts in ``table.attrs["allocation"]``) beside them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation.allocate import (
    ALLOCATION_COLUMNS,
    BINARY_ID_RULE,
    BINARY_OWNER_RULE,
    SCORE_BOUNDS,
    TEXT_NOT_UTF8_RULE,
    WHOLE_DAYS_RULE,
    WRONG_ID_TYPE_RULE,
    active_accounts,
    allocation_config,
    check_capacity_reps,
    check_not_empty,
    curve_budgets,
    curve_hours_used,
    effort_clip_pair,
    floor_hint,
    horizon_problems,
    missing_score_columns,
    percent_hint,
    plan_hours,
    resolve_horizon,
    scoring_summary,
    stake_problems,
    stake_sum_problem,
    stated_horizon,
    warn_assumed_horizon,
    warn_missing_effort,
    warn_mixed_scorings,
    warn_uncovered_owners,
)
from kamml.allocation.optimizer import (
    RTOL,
    at_price,
    gain,
    marginal_gain,
    price_per_hour,
    rep_codes,
    rep_names,
    reps_short,
)
from kamml.allocation.scores_file import (
    HORIZON_COLUMN,
    INTEGER_TEXT,
    MISSING_TEXTS,
    OUTSIDE_INT64_RULE,
    REQUIRED_COLUMNS,
    SCORING_COLUMNS,
    parquet_name_problems,
    repeated_name_problems,
    scores_renames,
)
from kamml.allocation.stake import Weight, effort_scale, resolve_weights, stake_parts
from kamml.allocation.summary import accounts_text, amount, hours_text, rep_capacity, short_budgets
from kamml.allocation.tiers import SMALL_STAKE_SHARE, check_tiers, reason_codes, share_counts, top_count
from kamml.config import URI_SCHEME, AllocationConfig, Config
from kamml.engine import engine_errors
from kamml.errors import ConfigError, DataError, InfeasibleError, Problem, SchemaError
from kamml.io import (
    INF_PATTERN,
    NAN_PATTERN,
    NUMBER_PATTERN,
    WHOLE_FLOAT_PATTERN,
    check_not_local_input,
    is_parquet_name,
    json_text,
    visible_files,
)
from kamml.models.effort_rule import DEFAULT_HORIZON_DAYS, default_scale
from kamml.spark.session import (
    abandon_path,
    remove_path,
    remove_stale_siblings,
    spark_column,
    spark_session,
    temp_sibling,
    write_atomic,
    write_parts,
)
from kamml.text import in_hours

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SparkAllocation",
    "allocate_spark",
    "exact_quantile",
    "linear_quantile",
    "read_scores_spark",
    "read_summary",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

_FEASIBILITY_RTOL = 1e-12
_MAX_PASSES = 80
_GRID = 14
"""Evenly spaced candidate prices per bracket and pass, beside the two Newton steps."""
_CANDIDATES = _GRID + 3
_QUANTILE_ERROR = 1e-3
_SUMMARY_FILE = "_allocation.json"
#: The spaces at either end of a text, as Python's str.strip sees them (Java's \s alone left a no-break
#: space on "2\u00a0", a second account on Spark and a repeated id in memory).
PY_SPACE_ENDS = r"(?U)^[\s\x1c-\x1f]+|[\s\x1c-\x1f]+$"


@dataclass(frozen=True)
class SparkAllocation:
    """What `allocate_spark` wrote: the folder of the allocation table and the plan's summary."""

    path: str
    summary: dict[str, Any] = field(default_factory=dict)
    curve: pd.DataFrame | None = None
    """The budget curve (`kamml.allocation.budget_curve`'s table) when asked for, else None."""


# ---------------------------------------------------------------------------------------------- public


def allocate_spark(
    scores: DataFrame | str | Path,
    hours: float | None,
    config: AllocationConfig | Config | None = None,
    out_dir: str | Path | None = None,
    *,
    session: SparkSession | None = None,
    horizon_days: int | None = None,
    curve: Sequence[float] | None = None,
    before_write: Callable[[pd.DataFrame | None], object] | None = None,
) -> SparkAllocation:
    """Allocate the team's hours over a scores table on Spark, exactly as `kamml.allocate` does.

    Parameters
    ----------
    scores : pyspark DataFrame, str or Path
        The scores table (columns of `kamml.jobs.score.SCORE_COLUMNS`; at least account_id, clv and
        p_churn, and owner when ``allocation.capacity`` is set), or the path of its Parquet file or folder.
    hours : float or None
        The team's hours; ``allocation.hours`` when None.
    config : AllocationConfig or Config, optional
        Floors, caps, capacity, weights, effort scale, tiers: as in `kamml.allocate`.
    horizon_days : int, optional
        As in `kamml.allocate`: the horizon of the fixed effort rule's scale, when it is used, for
        scores without a ``horizon_days`` column; equal to that column otherwise.
    curve : sequence of float, optional
        Fractions of `hours` at which to compute the budget curve as `kamml.allocation.budget_curve` does
        (`kamml.allocation.allocate.DEFAULT_FRACTIONS`: 10 % to 200 %). The reps' prices are those of
        the plan; the team's price at every budget is searched at once, in a few more passes.
    out_dir : str or Path
        Folder of Parquet parts to write (any Hadoop path), atomically: a hidden sibling folder renamed
        into place. A staging folder of prepared rows is written beside it and removed at the end.
    session : SparkSession, optional
        The session to use; by default the active one, or one started from ``engine.spark`` of a
        `Config`.
    before_write : callable, optional
        Called with the budget curve (None without `curve`) once the plan is solved and before the table
        is written, as `kamml.allocation.allocate_file`'s hook: `kamml allocate` draws the curve's chart
        there, so a chart that cannot be drawn leaves no new plan beside an old curve.

    Returns
    -------
    SparkAllocation
        The folder written and the plan's summary (the dict `kamml.allocate` puts in
        ``table.attrs["allocation"]``: hours, hours_used, unused_hours, total_expected_gain, team_price,
        rep_price, rep_capacity, floor_cost, n_accounts, n_active, tiers) and, with `curve`, the budget
        curve.

    Raises
    ------
    kamml.errors.DataError
        When the scores path is missing, not Parquet, or unreadable by Spark.
    kamml.errors.SchemaError
        When the scores break `kamml.allocation.check_scores`' rules.
    kamml.errors.InfeasibleError
        When the floors need more hours than the team or a rep has.
    kamml.errors.ConfigError
        On bad hours or allocation settings, or a stated horizon other than the scores' horizon_days.
    """
    if out_dir is None:
        raise ConfigError("allocate_spark needs out_dir, the folder to write the allocation table to")
    t0 = time.perf_counter()
    cfg = allocation_config(config)
    team_hours = plan_hours(hours, cfg)
    if not np.isfinite(team_hours) or team_hours < 0:
        raise ConfigError(f"hours must be a finite number >= 0, got {team_hours}")
    stated = stated_horizon(config, horizon_days)
    budgets = None if curve is None else curve_budgets(team_hours, curve)  # bad fractions: before any work
    if isinstance(scores, str | Path):
        _check_local_scores(str(scores))  # before a session starts: a mistyped path fails at once
        check_not_local_input(out_dir, {"scores": scores})  # writing over the scores lost them
    spark = session or spark_session(config if isinstance(config, Config) else None)
    if isinstance(scores, str | Path):
        frame = read_scores_spark(spark, scores)
    else:  # as `kamml.allocate` takes a pandas frame: ids read as a file's, text owners as given
        frame = _ids_as_in_the_tables(scores, text_owners=False)
    target = str(out_dir)
    remove_stale_siblings(spark, target)
    staging = temp_sibling(target, "staging", spark)
    # each step runs Spark jobs: one failing (a scores part deleted after it was read) is an EngineError
    # naming the step, not a Py4J traceback (`kamml.engine.engine_errors`)
    named = f"the scores {scores}" if isinstance(scores, str | Path) else "the scores"
    try:
        with engine_errors(f"checking {named}"):
            plan = _Plan.build(frame, cfg, team_hours, stated)
        with engine_errors(f"preparing the stakes and floors of {named}"):
            prepared = plan.prepare(frame, staging)
            plan.check(prepared)
        with engine_errors("solving the allocation's prices"):
            result = plan.solve(prepared)
        curve_table = None
        if budgets is not None:  # before the table is written: an error leaves no plan without its curve
            assert curve is not None
            t1 = time.perf_counter()
            with engine_errors("computing the budget curve"):
                curve_table = plan.curve(prepared, result, budgets)
            curve_table.insert(0, "fraction", np.asarray(curve, dtype=float))
            logger.info("budget curve: %d budgets on Spark in %.1f s", len(budgets), time.perf_counter() - t1)
        with engine_errors("ranking the accounts"):
            table, summary = plan.table(prepared, result)
        if before_write is not None:
            before_write(curve_table)
        with engine_errors(f"writing the allocation to {target}"):
            write_atomic(table, target, extra={_SUMMARY_FILE: json_text(summary, indent=1)})
    except BaseException:
        abandon_path(spark, staging)
        raise
    remove_path(spark, staging)
    logger.info(
        "allocated %s of %s hours to %s on Spark in %.1f s: expected gain %s",
        hours_text(summary["hours_used"], exact=True),
        hours_text(team_hours, exact=True),
        accounts_text(summary["n_accounts"]),
        time.perf_counter() - t0,
        amount(summary["total_expected_gain"]),
    )
    return SparkAllocation(target, summary, curve_table)


def _check_local_scores(source: str) -> Path | None:
    """DataError for a local scores path that is missing or not Parquet; the local path, None if remote."""
    if URI_SCHEME.match(source) and not source.startswith("file:"):
        return None
    local = Path(source.removeprefix("file://").removeprefix("file:"))
    if not local.exists():
        raise DataError(f"scores file not found: {local}")
    if local.is_file() and local.suffix.lower() != ".parquet":
        raise DataError(
            f"cannot read {local} on Spark: scores must be Parquet (a file or a folder of parts); "
            "allocate a CSV with engine duckdb, or convert it"
        )
    return local


def read_scores_spark(spark: SparkSession, path: str | Path) -> DataFrame:
    """The scores Parquet (a file or a folder of parts) as a Spark frame; DataError naming it otherwise.

    A local path is checked before Spark reads it (missing, or a CSV, which Spark would fail on with a
    Java traceback); names repeated or alike but for case are SchemaErrors as in memory
    (`_alike_names_read`); any other failure to read, local or remote (``hdfs://``, ``s3a://``), is a
    DataError with Spark's first line.
    """
    source = str(path)
    local = _check_local_scores(source)
    try:
        frame = spark.read.parquet(source)
    except Exception as exc:  # pyspark's AnalysisException or a Py4J error, told as one DataError
        alike = _alike_names_read(spark, source, local)
        if alike is None:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(f"cannot read the scores {source} on Spark: {first}") from None
        frame = alike
    frame = _ids_as_in_the_tables(frame)
    kind = _footer_id_kind(local) if local is not None and "account_id" in frame.columns else None
    if kind is not None:  # Spark reads the ticks of a duration, the ordinals of a period, as longs
        frame = frame.withMetadata("account_id", {_ID_KIND_KEY: kind})
    return frame


def _footer_id_kind(local: Path) -> str | None:
    """What a local scores Parquet's account_id holds by one footer: durations or periods, else None.

    "duration values" or "period values", in `WRONG_ID_TYPE_RULE`'s words.

    Parquet keeps a duration, and a pandas period (pyarrow's extension type over its int64 ordinals), as
    int64 (pyarrow's type lives in the footer's Arrow schema), so Spark read a pandas timedelta or period
    account_id as plain numbers (2024-01 as 648) and planned on them, where pandas reads timedeltas or
    periods and `check_scores` refuses them. The footer of one part is read (the parts of one table
    share a type, or Spark could not read them together): a Parquet file of the folder by the readers'
    rule (`visible_files`), so a marker or a failed job's leftover under ``_temporary/`` is not one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [local] if local.is_file() else [p for p in visible_files(local) if is_parquet_name(p.name)]
    if not parts:
        return None
    try:
        schema = pq.read_schema(parts[0])
    except (pa.ArrowException, OSError, ValueError):  # Spark read it: its own reading stands
        return None
    names = {scores_renames(schema.names).get(name, name): name for name in schema.names}
    if "account_id" not in names:
        return None
    field = schema.field(names["account_id"])
    if pa.types.is_duration(field.type):
        return "duration values"
    return "period values" if _extension_name(field) == _PANDAS_PERIOD else None


#: The Arrow extension name pandas (and pyarrow) give a pandas period column written to Parquet.
_PANDAS_PERIOD = "pandas.period"


def _extension_name(field: Any) -> str | None:
    """The Arrow extension name of a pyarrow field: its registered type's, else its field metadata's."""
    name = getattr(field.type, "extension_name", None)
    if name is None and field.metadata:  # not registered (pandas not imported): the storage type is read
        raw = field.metadata.get(b"ARROW:extension:name")
        name = raw.decode("utf-8", "replace") if raw is not None else None
    return name


def _alike_names_read(spark: SparkSession, source: str, local: Path | None) -> DataFrame | None:
    """The scores whose names Spark refused as repeated, read as in memory; None if that was not why.

    Spark's names ignore case: it refused 'clv' beside 'CLV' in its raw COLUMN_ALREADY_EXISTS, where
    pandas planned on 'clv'. Names read case-sensitively (another session's setting, not the caller's)
    that break `repeated_name_problems` are refused in its words; columns the allocation does not read
    ('notes' beside 'Notes') are left out of the read, as in memory they are ignored.
    """
    from pyspark.sql import types as T  # noqa: N812

    problems = parquet_name_problems(local) if local is not None else []  # 'clv' twice: footers only
    if problems:
        raise SchemaError(problems)
    exact = spark.newSession()
    exact.conf.set("spark.sql.caseSensitive", "true")
    try:
        schema = exact.read.parquet(source).schema
    except Exception:  # not a matter of names: Spark's first line says why
        return None
    problems = repeated_name_problems(schema.names)
    if problems:
        raise SchemaError(problems)
    lowered = [name.lower() for name in schema.names]
    kept = [f for f, low in zip(schema.fields, lowered, strict=True) if lowered.count(low) == 1]
    if len(kept) == len(schema.fields):
        return None
    return spark.read.schema(T.StructType(kept)).parquet(source)


def _ids_as_in_the_tables(frame: DataFrame, *, text_owners: bool = True) -> DataFrame:
    """Ids of a scores file read as `kamml.allocation.read_scores` reads them, so both engines plan alike.

    Text account ids are trimmed (" 1" is account 1), pandas' missing-value texts ("", "NULL") are no
    id or owner, an account id "119.0" is 119, and an account_id column whose every value is the text
    of an int64, or a whole float, becomes long: one aggregate pass, only for a text or float account_id.
    Owners need no pass: `rep_names` trims them and names whole numbers alike later. Read as given,
    " 1" beside "1" was a second account on Spark and a repeated id in memory. Without `text_owners` (a
    frame given) text owners are left as given, as `kamml.allocate` leaves a pandas frame's (its text ids
    are read as a file's: a Spark frame planned " a" beside "a" as two accounts and "" as one). A float
    account_id of whole numbers becomes long: written 450.0, it was an id a CRM import does not match.
    A binary owner is its UTF-8 text, as in memory (`kamml.allocation.scores_file.text_owners`); bytes
    that are not UTF-8 are kept for `_check_scores`. A decimal account_id (a uint64 too, which Spark
    reads as decimal(20,0)) whose every id is whole and within int64 becomes long, as in memory
    (`kamml.allocation.scores_file.integer_ids`); else `_check_scores` refuses the others.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    problems = repeated_name_problems(frame.columns)  # a frame given: 'clv' beside 'CLV' as in memory
    if problems:
        raise SchemaError(problems)
    for name, column in scores_renames(frame.columns).items():  # ' clv', 'P_Churn': as `read_scores`
        frame = frame.withColumnRenamed(name, column)

    def known(column: str | Any) -> Any:
        """The column's text without the spaces str.strip drops (a no-break space too); null if missing."""
        text = F.regexp_replace(
            spark_column(column) if isinstance(column, str) else column, PY_SPACE_ENDS, ""
        )
        return F.when(~text.isin(*sorted(MISSING_TEXTS)), text)

    def utf8_known(column: str | Any) -> Any:
        """`known` where the text is UTF-8; other bytes are kept for `_check_scores` (known lost them)."""
        raw = spark_column(column) if isinstance(column, str) else column
        return F.when(F.is_valid_utf8(raw), known(raw)).otherwise(raw)

    owner = frame.schema["owner"].dataType if "owner" in frame.columns else None
    if isinstance(owner, T.BinaryType):  # Spark's cast copies the bytes: those not UTF-8 stay so
        raw = F.col("owner").cast("string")
        frame = frame.withColumn("owner", utf8_known(raw) if text_owners else raw)
        frame = frame.withMetadata("owner", {_BINARY_KEY: True})  # for `_check_scores`' wording
    elif text_owners and isinstance(owner, T.StringType):
        frame = frame.withColumn("owner", utf8_known("owner"))
    kind = frame.schema["account_id"].dataType if "account_id" in frame.columns else None
    if isinstance(kind, T.StringType):
        text = utf8_known("account_id")
        text = F.when(text.rlike(WHOLE_FLOAT_PATTERN), F.split(text, r"\.").getItem(0)).otherwise(text)
        frame = frame.withColumn("account_id", text)
        value = F.col("account_id")
        lossless = value.rlike(f"^(?:{INTEGER_TEXT})$") & value.try_cast("long").isNotNull()
        blocks = value.isNull() | ~lossless  # a missing id keeps the column text, as in memory
    elif isinstance(kind, T.DoubleType | T.FloatType):
        value = F.when(~F.isnan(F.col("account_id")), F.col("account_id"))  # a NaN id is a null id
        blocks = (value != F.floor(value)) | (F.abs(value) >= F.lit(2.0**53))
    elif isinstance(kind, T.DecimalType):  # Decimal(2) is id 2 in memory; 2.5 and 2**70 are refused
        value = F.col("account_id")
        blocks = (value != F.floor(value)) | value.try_cast("long").isNull()
    else:
        return frame
    present, blocked = frame.agg(F.count(value), F.sum(blocks.cast("long"))).first() or (0, 0)
    if present and not blocked:
        frame = frame.withColumn("account_id", value.cast("long"))
    return frame


def read_summary(path: str | Path) -> dict[str, Any]:
    """The plan's summary written beside a local allocation folder by `allocate_spark`."""
    return dict(json.loads((Path(path) / _SUMMARY_FILE).read_text(encoding="utf-8")))


def linear_quantile(n: int, q: float, below: float, above: float) -> float:
    """``numpy.quantile(values, q)`` (linear method) of n sorted values from its two neighbours.

    `below` is the value at index ``floor((n - 1) * q)`` of the sorted values and `above` the next one
    (the same when that index is the last): numpy's own interpolation, bit for bit.
    """
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return float(above)
    gamma = virtual - math.floor(virtual)
    diff = above - below
    if gamma >= 0.5:
        return float(above - diff * (1 - gamma))
    return float(below + diff * gamma)


def exact_quantile(frame: DataFrame, column: str, q: float, n: int | None = None) -> float:
    """``numpy.quantile(frame[column], q)`` computed in Spark (no nulls in the column)."""
    count = int(frame.count()) if n is None else n
    if count == 0:
        raise ValueError("quantile of an empty column")
    virtual = (count - 1) * q
    first = min(math.floor(virtual), count - 1)
    second = min(first + 1, count - 1)
    low, high = _order_stats(frame, column, [first, second], count)
    return linear_quantile(count, q, low, high)


# ------------------------------------------------------------------------------------------- the plan


@dataclass
class _Plan:
    """Settings and global statistics of one allocation, shipped (pickled) to the executors."""

    cfg: AllocationConfig
    hours: float
    n: int
    columns: list[str]
    weights: dict[str, Weight]
    scale: float
    exponent: float
    clip: tuple[float, float]
    reference: float | None
    cap: float
    floor_hours: float
    reps: list[str]
    capacity: FloatArray
    clv_top: float | None = None
    referral_top: float | None = None
    referral_median: float = 0.0
    small_stake: float | None = None  # set by `solve`
    given_effort: bool = False
    horizon_days: int | None = None
    scoring: dict[str, Any] = field(default_factory=dict)
    """The scores' one cutoff and model_uri (`kamml.allocation.allocate.scoring_summary`), by column."""

    @classmethod
    def build(
        cls, frame: DataFrame, cfg: AllocationConfig, hours: float, stated: tuple[float, str] | None = None
    ) -> _Plan:
        """Check the scores and gather the global numbers: count, effort-scale reference, thresholds.

        The fixed rule's scale for "auto" (`default_scale`) is over the scores' horizon_days, else the
        `stated` horizon (`kamml.allocation.allocate.stated_horizon`), else 180 days with a warning.
        """
        from pyspark.sql import functions as F  # noqa: N812

        n, found, scoring = _check_scores(frame, need_owner=cfg.capacity is not None)
        check_not_empty(n)
        horizon_days = resolve_horizon(found, stated)
        keep = [
            c
            for c in (*REQUIRED_COLUMNS, "referral_value", "p_alive", "owner", "drivers", "effort_uplift")
            if c in frame.columns
        ]
        # the scoring each row comes from, carried to the table as the scores type it (a column of only
        # nulls, Arrow's null type, is no scoring: typed nulls as for scores without the column)
        keep += [
            c for c in SCORING_COLUMNS if c in frame.columns and frame.schema[c].dataType.typeName() != "void"
        ]
        scale = cfg.effort_scale
        if isinstance(scale, str):
            scale = default_scale(horizon_days)
            if "effort_scale" in frame.columns:  # the rule is only the fallback of rows without a scale
                logger.info("effort scale 'auto': each account's effort_scale from the scores")
                k = F.col("effort_scale").cast("double")
                rows = int(frame.filter(k.isNull() | F.isnan(k) | (k <= 0)).count())
                if 0 < rows < n:  # as in memory: fitted where the model gave one, the rule elsewhere
                    warn_missing_effort(rows, n)
                if rows and horizon_days is None:
                    warn_assumed_horizon(rows, n)
            else:
                logger.info(
                    "effort scale 'auto' without a fitted effort response: using the fixed rule, "
                    "%.3g hours over the %g-day horizon at the median account",
                    scale,
                    DEFAULT_HORIZON_DAYS if horizon_days is None else horizon_days,
                )
                if horizon_days is None:
                    warn_assumed_horizon(n, n)
        clip = effort_clip_pair(cfg.effort_clip)
        # the same checks as kamml.allocation.stake.effort_scale, before any pass over the rows
        effort_scale(np.zeros(0), float(scale), exponent=float(cfg.effort_exponent), clip=clip, reference=1.0)
        clv = frame.select(F.col("clv").cast("double").alias("v"))
        positive = clv.filter(F.col("v") > 0)
        m = int(positive.count())
        reference: float | None = None
        if m:
            if m % 2:
                reference = _order_stats(positive, "v", [(m - 1) // 2], m)[0]
            else:
                low, high = _order_stats(positive, "v", [m // 2 - 1, m // 2], m)
                reference = float(np.mean(np.array([low, high])))
        else:
            logger.warning("no account has a positive clv: every account gets the same effort scale")
        check_tiers(cfg.tiers)
        reps: list[str] = []
        capacity = np.zeros(0)
        if cfg.capacity is not None:
            reps = list(cfg.capacity)
            capacity = np.array([float(cfg.capacity[r]) for r in reps], dtype=np.float64)
            if np.isnan(capacity).any():
                nan_reps = [r for r, c in zip(reps, capacity, strict=True) if np.isnan(c)]
                raise ValueError(f"capacity is NaN for reps {nan_reps}")
            negative = capacity < 0
            if negative.any():
                detail = ", ".join(f"{reps[i]!r}: {capacity[i]:.6g}" for i in np.flatnonzero(negative)[:5])
                raise InfeasibleError(
                    f"capacity has negative hours for {int(negative.sum())} reps ({detail})"
                )
        plan = cls(
            cfg=cfg,
            hours=hours,
            n=n,
            columns=keep,
            weights=resolve_weights(cfg.weights),
            scale=float(scale),
            exponent=float(cfg.effort_exponent),
            clip=clip,
            reference=reference,
            cap=float("inf") if cfg.cap_hours is None else float(cfg.cap_hours),
            floor_hours=float(cfg.floor_hours),
            reps=reps,
            capacity=capacity,
            given_effort=cfg.effort_scale == "auto" and "effort_scale" in frame.columns,
            horizon_days=None if horizon_days is None else int(horizon_days),
            scoring=scoring,
        )
        if n:
            # reason codes flag values above the one ranked just below the top 10 %
            # (kamml.allocation.tiers.top_threshold): the (m + 1)-th largest, ascending index n - m - 1
            m = top_count(n)
            if int(clv.filter(F.col("v") > 0).limit(1).count()):
                plan.clv_top = -math.inf if m >= n else _order_stats(clv, "v", [n - m - 1], n)[0]
            if "referral_value" in frame.columns:
                ref = frame.select(
                    F.when(F.isnan("referral_value") | F.col("referral_value").isNull(), F.lit(0.0))
                    .otherwise(F.col("referral_value").cast("double"))
                    .alias("v")
                )
                if int(ref.filter(F.col("v") > 0).limit(1).count()):
                    plan.referral_top = -math.inf if m >= n else _order_stats(ref, "v", [n - m - 1], n)[0]
                    # the median as numpy's: the mean of the middle two (one when n is odd)
                    middle = sorted({(n - 1) // 2, n // 2})
                    plan.referral_median = float(np.mean(_order_stats(ref, "v", middle, n)))
        return plan

    # ---------------------------------------------------------------------------------- preparation

    def prepare(self, frame: DataFrame, staging: str) -> DataFrame:
        """Stake parts, effort scale, activity, floor and rep code per account, written to `staging`."""
        from pyspark.sql import functions as F  # noqa: N812
        from pyspark.sql import types as T  # noqa: N812

        given_k = F.col("effort_scale").cast("double").alias("given_effort_scale")
        given = [given_k] if self.given_effort else []
        source = frame.select(*self.columns, *given)
        fields = [source.schema["account_id"]]
        for name in ("clv", "p_churn", "referral_value", "p_alive", "effort_uplift"):
            if name in self.columns:
                fields.append(T.StructField(name, T.DoubleType()))
        if "owner" in self.columns:
            fields.append(T.StructField("owner", T.StringType()))
        if "drivers" in self.columns:
            fields.append(T.StructField("drivers", T.StringType()))
        fields += [source.schema[c] for c in SCORING_COLUMNS if c in self.columns]  # passed through as typed
        for name in ("stake_retention", "stake_growth", "stake_referral", "stake", "effort_scale", "floor"):
            fields.append(T.StructField(name, T.DoubleType()))
        fields += [T.StructField("active", T.BooleanType()), T.StructField("code", T.IntegerType())]
        schema = T.StructType(fields)
        names = [f.name for f in fields]
        plan = self

        def run(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield plan._prepare_batch(batch)[names]

        source = source.select(
            *(
                _owner(source) if c == "owner" else _as_text(source, c) if c == "drivers" else source[c]
                for c in self.columns
            ),
            *(["given_effort_scale"] if self.given_effort else []),
        )
        rows = f"{staging}/rows"  # Spark warns when asked to read a hidden folder itself, not inside one
        write_parts(source.mapInPandas(run, schema), rows)
        return frame.sparkSession.read.parquet(rows)

    def _prepare_batch(self, batch: pd.DataFrame) -> pd.DataFrame:
        frame = batch.reset_index(drop=True)
        for column in ("clv", "p_churn", "referral_value", "p_alive", "effort_uplift"):
            if column in frame:
                frame[column] = pd.to_numeric(frame[column]).astype(float)
        # checked on the whole table before (`_check_scores`): a batch is not checked again
        frame = pd.concat([frame, stake_parts(frame, self.weights, check=False)], axis="columns")
        clv = frame["clv"].to_numpy()
        if self.reference is None:
            frame["effort_scale"] = np.full(len(frame), self.scale)
        else:
            frame["effort_scale"] = effort_scale(
                clv, self.scale, exponent=self.exponent, clip=self.clip, reference=self.reference
            )
        if "given_effort_scale" in frame:  # the model's fitted effort scales, as kamml.allocate uses them
            given = pd.to_numeric(frame.pop("given_effort_scale"), errors="coerce").to_numpy(dtype=float)
            usable = np.isfinite(given) & (given > 0)
            frame.loc[usable, "effort_scale"] = given[usable]
        frame["active"] = active_accounts(frame, self.cfg.active_p_alive, self.cfg.active_p_purchase)
        frame["floor"] = np.where(frame["active"].to_numpy(dtype=bool), self.floor_hours, 0.0)
        if "owner" in frame:
            frame["owner"] = rep_names(frame["owner"])
        if self.reps:
            frame["code"] = rep_codes(frame["owner"], self.reps).astype(np.int32)
        else:
            frame["code"] = np.full(len(frame), -1, dtype=np.int32)
        return frame

    def check(self, prepared: DataFrame) -> None:
        """`kamml.allocate`'s checks of the prepared rows: stakes that overflow, reps without accounts."""
        from pyspark.sql import functions as F  # noqa: N812

        parts = ("stake_retention", "stake_growth", "stake_referral")
        bad = {
            p: F.isnan(spark_column(p)) | spark_column(p).isin(float("inf"), float("-inf"))
            for p in (*parts, "stake")
        }
        any_part = bad[parts[0]] | bad[parts[1]] | bad[parts[2]]
        bad["stake"] = ~any_part & bad["stake"]
        sums = [F.sum(c.cast("long")).alias(p) for p, c in bad.items()]
        row = prepared.agg(*sums, F.sum("stake").alias("total")).collect()[0]
        counts = {p: int(row[p] or 0) for p in bad}
        if any(counts.values()):
            broken = prepared.filter(any_part | bad["stake"])
            examples = broken.orderBy("account_id").limit(5).toPandas()  # the same from run to run
            uplift = self.weights["growth"] == "auto" and "effort_uplift" in self.columns
            raise SchemaError(stake_problems(counts, examples, uplift=uplift))
        if row["total"] is not None and not math.isfinite(row["total"]):  # each finite, their sum not
            top = prepared.orderBy(F.col("stake").desc()).select("clv").limit(3).collect()
            raise SchemaError([stake_sum_problem(self.n, [r["clv"] for r in top])])
        if self.cfg.capacity is None or not self.n:
            return
        rows = prepared.filter(F.col("owner").isNotNull()).groupBy("owner").count().collect()
        owners = pd.Series({r["owner"]: int(r["count"]) for r in rows}, dtype="int64")
        owners = owners.sort_values(ascending=False, kind="stable")
        check_capacity_reps(owners, self.cfg.capacity)
        warn_uncovered_owners(owners, self.cfg.capacity)

    # ---------------------------------------------------------------------------------------- solve

    def solve(self, prepared: DataFrame) -> _Prices:
        """The rep and team log-prices of the problem (variant 0) and of it without floors (variant 1)."""
        stats = _collect(prepared, _Kernel(self, "stats"))
        floors_all = stats["floor_code"]  # (R + 1,) floors per rep code, last = no rep of capacity
        n_active_floor = int(stats["floored"][0])
        # the stake under which a lead reads "little value at stake", over the whole table as in memory
        self.small_stake = SMALL_STAKE_SHARE * float(stats["stake_sum"][0]) / self.n if self.n else 0.0
        problems = []
        need = float(floors_all.sum())
        if _short(need, self.hours):
            problems.append(
                f"the floors need {in_hours(need)} but the team has {self.hours:,.6g}: "
                f"{in_hours(need - self.hours)} short"
            )
        reps = len(self.reps)
        short = np.array([_short(floors_all[r], self.capacity[r]) for r in range(reps)], dtype=bool)
        if short.any():
            floored = np.round(floors_all[:reps] / self.floor_hours)  # every floor is floor_hours
            capacity = np.asarray(self.capacity[:reps], dtype=float)
            problems += reps_short(self.reps, floors_all[:reps], capacity, floored, short)
        if problems:
            failed = InfeasibleError("infeasible allocation: " + "; ".join(problems))
            raise floor_hint(failed, n_active_floor, self.cfg)
        variants = 2 if need > 0 else 1
        bounded = np.flatnonzero(np.isfinite(self.capacity))
        t_rep = np.full((variants, len(self.reps)), -np.inf)
        if bounded.size:
            targets = np.tile(self.capacity[bounded], variants)
            found, _ = self._search(prepared, 1, variants, bounded, targets, t_rep)
            t_rep[:, bounded] = found.reshape(variants, bounded.size)
        t_team, closed = self._search(prepared, 2, variants, bounded, np.full(variants, self.hours), t_rep)
        used = _collect(
            prepared, _Kernel(self, "used", variants, bounded, t_team=t_team, t_rep=t_rep, closed=closed)
        )
        factors = self._factors(used["h"], used["lo"], bounded, np.full(variants, self.hours))
        return _Prices(variants, bounded, t_team, t_rep, factors, need, closed)

    def curve(self, prepared: DataFrame, prices: _Prices, budgets: Sequence[float]) -> pd.DataFrame:
        """`kamml.allocation.budget_curve`'s rows (without fraction) at `budgets`, from the solved plan.

        The reps' capacities do not change with the team's budget, so neither do their prices: only the
        team's price is searched again, for every budget at once (with and without floors, each budget a
        variant), then one pass sums the hours and gains at each. Budgets below the floors are infeasible.
        """
        per = prices.variants  # 2: each budget with and without floors; 1: no floors at all
        limit = np.asarray(budgets, dtype=float)
        feasible = ~_short(prices.need, limit)
        rows = pd.DataFrame(
            {
                "hours": limit,
                "total_gain": np.nan,
                "team_price": np.nan,
                "hours_used": np.nan,
                "floor_cost": np.nan,
                "feasible": feasible,
            }
        )
        note = short_budgets(limit[~feasible], prices.need)
        if note is not None:
            logger.info(note)
        if not feasible.any():
            return rows
        targets = np.repeat(limit[feasible], per)
        variants = targets.size
        t_rep = prices.t_rep[np.arange(variants) % per]  # the reps' prices of the same floors
        bounded = prices.bounded
        t_team, closed = self._search(prepared, 2, variants, bounded, targets, t_rep)
        at = _Kernel(self, "used", variants, bounded, t_team=t_team, t_rep=t_rep, closed=closed)
        used = _collect(prepared, at)
        factors = self._factors(used["h"], used["lo"], bounded, targets)
        sums = _collect(prepared, replace(at, mode="gains", factors=factors))
        total, free = sums["g"][::per], sums["g"][per - 1 :: per]
        rows.loc[feasible, "total_gain"] = total
        rows.loc[feasible, "team_price"] = [price_per_hour(float(t)) for t in t_team[::per]]
        used_sums = zip(sums["h"][::per], limit[feasible], strict=True)  # to the optimizer's tolerance
        rows.loc[feasible, "hours_used"] = [curve_hours_used(float(u), float(b)) for u, b in used_sums]
        rows.loc[feasible, "floor_cost"] = np.maximum(0.0, free - total) if per == 2 else 0.0
        return rows

    def _search(
        self,
        prepared: DataFrame,
        stage: int,
        variants: int,
        bounded: npt.NDArray[np.intp],
        target: FloatArray,
        t_rep: FloatArray,
    ) -> tuple[FloatArray, _Closed | None]:
        """Per group (variant x rep, or variant x team), the log-price of `optimizer._search`.

        With the team's (stage 2) brackets that closed short of their hours, for `_Kernel._hours` to
        interpolate as the optimizer does (`kamml.allocation.optimizer._interpolate`); the reps' brackets
        are left as found, as there.
        """
        floors = t_rep if stage == 2 and len(self.reps) else None
        stats = _collect(
            prepared, _Kernel(self, "bracket", variants, bounded, stage=stage, target=target, t_rep=floors)
        )

        band = (target * (1 - RTOL))[:, None], (target * (1 - RTOL / 1000))[:, None]

        def demand(t: FloatArray) -> tuple[FloatArray, FloatArray]:
            kernel = _Kernel(self, "demand", variants, bounded, stage=stage, t=t, t_rep=floors)
            sums = _collect(prepared, kernel)
            d, slope = stats["fixed"][:, None] + sums["h"], sums["slope"]
            if "err" not in sums:
                return d, slope
            # the sorted sums can be off by up to err: where that could move a price across the band's
            # edges (accounts of huge effort scales, tiny budgets), those prices are summed again densely;
            # so are those whose sums overflowed (an effort scale of 1e308: k * (a - t) is -inf, the sums
            # NaN, which the search read as demand that fits and closed its bracket far below the price)
            err = sums["err"]
            with np.errstate(invalid="ignore"):
                near = (np.abs(d - band[0]) <= err) | (np.abs(d - band[1]) <= err)
                unsure = np.isfinite(t) & (~np.isfinite(d) | ~np.isfinite(err) | near)
            if unsure.any():
                logger.debug("price search: %d prices summed again account by account", int(unsure.sum()))
                again = np.where(unsure, t, np.nan)
                kernel = _Kernel(
                    self, "demand", variants, bounded, stage=stage, t=again, t_rep=floors, dense=True
                )
                exact = _collect(prepared, kernel)
                d = np.where(unsure, stats["fixed"][:, None] + exact["h"], d)
                slope = np.where(unsure, exact["slope"], slope)
            return d, slope

        # the team's demand at price 0 holds the bound reps' accounts at their own prices, not their caps
        d_inf = None if floors is None else demand(np.full((target.size, 1), -np.inf))[0][:, 0]
        t, below = _search(demand, stats, target, d_inf)
        if stage == 1:
            return t, None
        return t, self._closed(prepared, variants, bounded, target, floors, stats["fixed"], t, below)

    def _closed(
        self,
        prepared: DataFrame,
        variants: int,
        bounded: npt.NDArray[np.intp],
        target: FloatArray,
        floors: FloatArray | None,
        fixed: FloatArray,
        t: FloatArray,
        below: FloatArray,
    ) -> _Closed | None:
        """How far from each team price `t` toward `below` (its closed bracket's other end) meets `target`.

        From the demand at both ends, summed account by account; None when no bracket closed short.
        Demand is linear between two prices a few ulps apart, so moving every account that share of the
        way meets the hours exactly; at effort scales of 1e10 hours and more the price's last bit is worth
        more than the whole budget (1e12 hours, 0.001 to share: nothing was allocated).
        """
        closed = below < t
        if not closed.any():
            return None
        ends = np.where(closed[:, None], np.column_stack([t, below]), t[:, None])
        kernel = _Kernel(self, "demand", variants, bounded, stage=2, t=ends, t_rep=floors, dense=True)
        d = fixed[:, None] + _collect(prepared, kernel)["h"]
        more = d[:, 1] - d[:, 0]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            share = np.clip((target - d[:, 0]) / more, 0.0, 1.0)
        share = np.where(closed & np.isfinite(share) & (more > 0), share, 0.0)
        if not share.any():
            return None
        logger.debug("closed brackets: %d team prices moved toward their limits", int((share > 0).sum()))
        return _Closed(below, share)

    def _factors(
        self, used: FloatArray, lo: FloatArray, bounded: npt.NDArray[np.intp], hours: FloatArray
    ) -> FloatArray:
        """Shrink factors (variant x (bounded reps + team)) of `optimizer._shrink_to_fit`, rep then team.

        `used` and `lo` are the hours and floors per variant and rep code (bounded reps, then the rest);
        `hours` the team's hours per variant.
        """
        variants = used.shape[0]
        out = np.ones((variants, bounded.size + 1))
        for v in range(variants):
            rep_used, rep_lo = used[v, : bounded.size], lo[v, : bounded.size]
            limit = self.capacity[bounded]
            over = rep_used > limit
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.clip(np.where(over, (limit - rep_lo) / (rep_used - rep_lo), 1.0), 0.0, 1.0)
            factor = np.where(np.isfinite(factor), factor, 0.0)
            out[v, : bounded.size] = factor
            shrunk = rep_lo + (rep_used - rep_lo) * factor
            team_used = float(shrunk.sum() + used[v, bounded.size])
            team_lo = float(lo[v].sum())
            if team_used > hours[v]:
                # Python floats: a span of 0 (the floors fill the hours to rounding) raised
                # ZeroDivisionError where the in-memory search's numpy arrays give a factor of 0
                span = team_used - team_lo
                f = (float(hours[v]) - team_lo) / span if span > 0 else 0.0
                out[v, -1] = float(np.clip(f, 0.0, 1.0)) if np.isfinite(f) else 0.0
        return out

    # ---------------------------------------------------------------------------------------- table

    def table(self, prepared: DataFrame, prices: _Prices) -> tuple[DataFrame, dict[str, Any]]:
        """The allocation table in rank order (lazy, checkpointed sort) and the plan's summary."""
        from pyspark.sql import functions as F  # noqa: N812
        from pyspark.sql import types as T  # noqa: N812

        fields = [prepared.schema["account_id"]]
        for name in ("stake", "recommended_hours", "expected_gain", "marginal_gain_per_hour"):
            fields.append(T.StructField(name, T.DoubleType()))
        fields += [T.StructField("reasons", T.StringType()), T.StructField("owner", T.StringType())]
        for name in ("stake_retention", "stake_growth", "stake_referral", "effort_scale", "gain_free"):
            fields.append(T.StructField(name, T.DoubleType()))
        fields += [T.StructField("active", T.BooleanType()), T.StructField("clv", T.DoubleType())]
        fields += [prepared.schema[c] for c in SCORING_COLUMNS if c in prepared.columns]
        kernel = _Kernel(
            self,
            "final",
            prices.variants,
            prices.bounded,
            t_team=prices.t_team,
            t_rep=prices.t_rep,
            factors=prices.factors,
            closed=prices.closed,
        )
        names = [f.name for f in fields]

        def run(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield kernel.final(batch)[names]

        rows = prepared.mapInPandas(run, T.StructType(fields))
        by = str(self.cfg.tier_by)
        value = F.col("expected_gain")
        if by != "expected_gain":  # tiers by another order: its own global rank first (one more sort)
            value = spark_column(by)
            value = F.when(F.isnan(value) | value.isNull(), F.lit(float("-inf"))).otherwise(value)
            keys = [value.desc(), F.col("stake").desc(), F.col("account_id").asc()]
            rows, _ = _global_rank(rows, keys, "tier_rank", {})
        sums = {
            "h": F.sum("recommended_hours"),
            "g": F.sum("expected_gain"),
            "gf": F.sum("gain_free"),
            "a": F.sum(F.col("active").cast("long")),
        }
        keys = [F.col("expected_gain").desc(), F.col("stake").desc(), F.col("account_id").asc()]
        ordered, counts = _global_rank(rows, keys, "rank", sums)
        pairs = check_tiers(self.cfg.tiers)
        limits = share_counts([share for _, share in pairs], self.n)
        tier_rank = _untie(ordered, F.col("rank" if by == "expected_gain" else "tier_rank"), value, limits)
        tier = F.lit(pairs[-1][0])
        for (name, _), limit in reversed(list(zip(pairs[:-1], limits[:-1], strict=True))):
            tier = F.when(tier_rank <= F.lit(int(limit)), F.lit(name)).otherwise(tier)
        # nothing at stake, or a tier value not positive (no hours, no gain): the last tier whatever the
        # rank (`kamml.allocation.tiers.assign_tiers`); NaN read as -inf above
        tier = F.when((F.col("stake") > 0) & (value > 0), tier).otherwise(F.lit(pairs[-1][0]))
        days = F.lit(self.horizon_days).cast("long")  # null when not known, as in memory
        table = ordered.withColumn("tier", tier).withColumn(HORIZON_COLUMN, days)
        for column, kind in _SCORING_TYPES.items():  # scores without the column: typed nulls, as in memory
            if column not in table.columns:
                table = table.withColumn(column, F.lit(None).cast(kind))
        table = table.select(*ALLOCATION_COLUMNS)
        used = float(sum(float(r["h"] or 0.0) for r in counts))
        total = float(sum(float(r["g"] or 0.0) for r in counts))
        free = float(sum(float(r["gf"] or 0.0) for r in counts))
        floor_cost = max(0.0, free - total) if prices.variants == 2 else 0.0
        unused = self.hours - used
        summary = {
            "hours": self.hours,
            "hours_used": used,
            "unused_hours": unused if unused > RTOL * self.hours else 0.0,
            "total_expected_gain": total,
            "team_price": price_per_hour(float(prices.t_team[0])),
            "rep_price": {
                str(rep): price_per_hour(max(float(prices.t_team[0]), float(prices.t_rep[0, r])))
                for r, rep in enumerate(self.reps)
            },
            "rep_capacity": rep_capacity(self.cfg.capacity),  # as in memory: for the report
            "floor_cost": floor_cost,
            "n_accounts": self.n,
            "n_active": int(sum(int(r["a"] or 0) for r in counts)),
            "tiers": [name for name, _ in pairs],  # best first, as `kamml.allocate` names them
            HORIZON_COLUMN: self.horizon_days,
            **scoring_summary(self.scoring),
        }
        return table, summary


@dataclass(frozen=True)
class _Prices:
    variants: int
    bounded: npt.NDArray[np.intp]
    t_team: FloatArray
    t_rep: FloatArray
    factors: FloatArray
    need: float = 0.0
    """Hours the floors take (the team's least budget)."""
    closed: _Closed | None = None


@dataclass(frozen=True)
class _Closed:
    """Team prices whose brackets closed short of the hours: per variant, the other end and how far to go."""

    below: FloatArray
    share: FloatArray


# ------------------------------------------------------------------------------------ the executors


@dataclass
class _Kernel:
    """Per-partition numpy work of one pass; `_collect` sums its arrays over partitions.

    Modes: ``stats`` (floors per rep code, floored accounts), ``bracket`` (per group: fixed hours, hours at
    price 0, bracket ends, sums of k and k*a), ``demand`` (hours and slope per group and candidate price),
    ``used`` (hours and floors per rep code at the prices), ``gains`` (hours and expected gain per
    variant), ``final`` (rows of the table). Even variants keep the floors, odd ones drop them (the cost
    of the floors); the budget curve's variants are its budgets, each with and without floors.
    """

    plan: _Plan
    mode: str
    variants: int = 1
    bounded: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    stage: int = 2
    target: FloatArray | None = None
    t: FloatArray | None = None
    t_team: FloatArray | None = None
    t_rep: FloatArray | None = None
    factors: FloatArray | None = None
    dense: bool = False
    closed: _Closed | None = None

    @property
    def columns(self) -> list[str]:
        return ["stake", "effort_scale", "floor", "code"]

    def _remap(self, code: npt.NDArray[np.int32]) -> npt.NDArray[np.intp]:
        """Rep code -> index among bounded reps (-1: not in a bounded rep)."""
        remap = np.full(len(self.plan.reps) + 1, -1, dtype=np.intp)
        remap[self.bounded] = np.arange(self.bounded.size)
        return remap[code]

    def _base(self, batch: pd.DataFrame, v: int) -> dict[str, Any]:
        stake = batch["stake"].to_numpy(dtype=float)
        k = batch["effort_scale"].to_numpy(dtype=float)
        floor = batch["floor"].to_numpy(dtype=float)
        lo = floor if v % 2 == 0 else np.zeros_like(floor)  # odd variants: the problem without floors
        code = batch["code"].to_numpy(dtype=np.int32)
        active = (stake > 0) & (self.plan.cap > lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.log(stake) - np.log(k)
        return {"stake": stake, "k": k, "lo": lo, "code": code, "active": active, "a": a}

    def _bases(self, batch: pd.DataFrame) -> dict[int, dict[str, Any]]:
        """`_base` of the batch with floors (key 0) and, when a variant drops them, without (key 1)."""
        return {p: self._base(batch, p) for p in range(min(2, self.variants))}

    def _group(self, code: npt.NDArray[np.int32]) -> npt.NDArray[np.intp]:
        if self.stage == 1:
            return self._remap(code)
        return np.zeros(code.size, dtype=np.intp)

    def _price_floor(self, code: npt.NDArray[np.int32], v: int) -> FloatArray | None:
        if self.t_rep is None or not len(self.plan.reps):
            return None
        return np.where(code >= 0, self.t_rep[v][np.maximum(code, 0)], -np.inf)

    def sums(self, batches: Iterable[pd.DataFrame]) -> dict[str, FloatArray]:
        """The arrays of this pass, summed over the partition's batches."""
        acc: dict[str, FloatArray] = {}
        for batch in batches:
            if batch.empty:
                continue
            part = getattr(self, f"_{self.mode}")(batch)
            for key, value in part.items():
                _merge(acc, key, value)
        return acc

    def _stats(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        b = self._base(batch, 0)
        n_reps = len(self.plan.reps)
        slot = np.where(b["code"] >= 0, b["code"], n_reps)
        return {
            "floor_code": np.bincount(slot, weights=b["lo"], minlength=n_reps + 1).astype(float),
            "floored": np.array([float((b["lo"] > 0).sum())]),
            "stake_sum": np.array([float(b["stake"].sum())]),
        }

    def _bracket(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        assert self.target is not None
        n_groups = self.bounded.size if self.stage == 1 else 1
        out: dict[str, list[FloatArray]] = {
            k: [] for k in ("fixed", "cap", "max_hi", "min_lo", "sum_k", "sum_ka")
        }
        bases = self._bases(batch)
        for v in range(self.variants):
            b = bases[v % 2]
            g = self._group(b["code"])
            member = g >= 0
            act = member & b["active"]
            fixed_rows = member & ~b["active"]
            ga = g[act]
            a, k, lo = b["a"][act], b["k"][act], b["lo"][act]
            hi = np.full(a.size, self.plan.cap)
            tgt = self.target.reshape(self.variants, n_groups)[v]
            out["fixed"].append(_bincount(g[fixed_rows], b["lo"][fixed_rows], n_groups))
            out["cap"].append(
                _bincount(ga, hi, n_groups) if np.isfinite(self.plan.cap) else _inf_if(ga, n_groups)
            )
            with np.errstate(over="ignore"):  # lo / k overflows for a subnormal k: never held at its floor
                at_floor = a - lo / k  # accounts held at their floors by a rep's price cannot set the team's
                low = a - np.minimum(hi, tgt[ga]) / k
            pf = self._price_floor(b["code"], v) if self.stage == 2 else None
            if pf is not None:
                at_floor = np.where(at_floor > pf[act], at_floor, -np.inf)
            out["max_hi"].append(_extreme(at_floor, ga, n_groups, np.maximum))
            out["min_lo"].append(_extreme(low, ga, n_groups, np.minimum))
            out["sum_k"].append(_bincount(ga, k, n_groups))
            out["sum_ka"].append(_bincount(ga, k * a, n_groups))
        return {key: np.concatenate(vals).astype(float) for key, vals in out.items()}

    def _demand(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        """Hours asked for and their slope per group at its candidate log-prices (`t`, groups x c).

        The team's (stage 2) by `_team_demand`, unless `dense`: then account by account and price by
        price, exact to rounding, for the prices whose sorted sums are too coarse to decide on.
        """
        assert self.t is not None
        if self.stage == 2 and not self.dense:
            return self._team_demand(batch)
        n_groups = self.bounded.size if self.stage == 1 else 1
        c = self.t.shape[1]
        hs, slopes = [], []
        bases = self._bases(batch)
        for v in range(self.variants):
            b = bases[v % 2]
            g = self._group(b["code"])
            act = (g >= 0) & b["active"]
            ga = g[act]
            a, k, lo = b["a"][act], b["k"][act], b["lo"][act]
            hi = self.plan.cap
            tg = self.t[v * n_groups + ga]  # (m, c)
            pf = self._price_floor(b["code"], v) if self.stage == 2 else None
            te = tg if pf is None else np.maximum(tg, pf[act][:, None])
            with np.errstate(over="ignore", invalid="ignore"):
                x = k[:, None] * (a[:, None] - te)
            h = np.minimum(np.maximum(x, lo[:, None]), hi)
            moving = (x > lo[:, None]) & (x < hi)
            if pf is not None:
                moving &= tg > pf[act][:, None]
            idx = (ga[:, None] * c + np.arange(c)).ravel()
            hs.append(np.bincount(idx, h.ravel(), n_groups * c).reshape(n_groups, c))
            slopes.append(np.bincount(idx, (k[:, None] * moving).ravel(), n_groups * c).reshape(n_groups, c))
        return {"h": np.concatenate(hs), "slope": np.concatenate(slopes)}

    def _team_demand(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        """The team's demand (one group per variant) by `_sorted_demand`, one call per kind of variant.

        Variants of one parity are one demand curve at different targets (the budget curve's budgets):
        the same floors and, by construction in `_Plan.solve` and `_Plan.curve`, the same rep prices. So
        all their candidates are evaluated together in O((n + c) log c), not n x c.
        """
        assert self.t is not None
        c = self.t.shape[1]
        h = np.zeros((self.variants, c))
        slope = np.zeros((self.variants, c))
        err = np.zeros((self.variants, c))
        for p, b in self._bases(batch).items():
            rows = np.arange(p, self.variants, 2)
            act = b["active"]
            pf = self._price_floor(b["code"], p)
            hp, sp, ep = _sorted_demand(
                b["a"][act],
                b["k"][act],
                b["lo"][act],
                self.plan.cap,
                None if pf is None else pf[act],
                self.t[rows].ravel(),
            )
            h[rows], slope[rows] = hp.reshape(rows.size, c), sp.reshape(rows.size, c)
            err[rows] = ep.reshape(rows.size, c)
        return {"h": h, "slope": slope, "err": err}

    def _hours(self, b: dict[str, Any], v: int, shrink: bool) -> FloatArray:
        """Hours of the batch's accounts at the final prices (after the shrink-to-fit when `shrink`)."""
        assert self.t_team is not None
        h = b["lo"].copy()
        act = b["active"]
        pf = self._price_floor(b["code"], v)
        t_eff = np.full(act.sum(), self.t_team[v]) if pf is None else np.maximum(self.t_team[v], pf[act])
        k, a, lo = b["k"][act], b["a"][act], b["lo"][act]
        with np.errstate(over="ignore", invalid="ignore"):
            h[act] = np.clip(k * (a - t_eff), lo, self.plan.cap)
        if self.closed is not None and self.closed.share[v] > 0:
            t_alt = self.closed.below[v] if pf is None else np.maximum(self.closed.below[v], pf[act])
            with np.errstate(over="ignore", invalid="ignore"):
                step = np.clip(k * (a - t_alt), lo, self.plan.cap) - h[act]
            h[act] = np.clip(h[act] + self.closed.share[v] * step, lo, self.plan.cap)
        if shrink:
            assert self.factors is not None
            rep = self._remap(b["code"])
            f_rep = np.where(rep >= 0, self.factors[v][np.maximum(rep, 0)], 1.0)
            h = np.where(f_rep < 1.0, b["lo"] + (h - b["lo"]) * f_rep, h)
            f_team = self.factors[v][-1]
            if f_team < 1.0:
                h = b["lo"] + (h - b["lo"]) * f_team
        return h

    def _used(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        hs, los = [], []
        slots = self.bounded.size + 1
        bases = self._bases(batch)
        for v in range(self.variants):
            b = bases[v % 2]
            h = self._hours(b, v, shrink=False)
            rep = self._remap(b["code"])
            slot = np.where(rep >= 0, rep, self.bounded.size)
            hs.append(np.bincount(slot, h, slots))
            los.append(np.bincount(slot, b["lo"], slots))
        return {"h": np.vstack(hs), "lo": np.vstack(los)}

    def _gains(self, batch: pd.DataFrame) -> dict[str, FloatArray]:
        """Hours and expected gain summed per variant at the final prices: the budget curve's points."""
        hours, gains = np.zeros(self.variants), np.zeros(self.variants)
        bases = self._bases(batch)
        for v in range(self.variants):
            b = bases[v % 2]
            h = self._hours(b, v, shrink=True)
            hours[v] = h.sum()
            gains[v] = float(gain(b["stake"], b["k"], h).sum())
        return {"h": hours, "g": gains}

    def final(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Rows of the allocation table (without rank and tier) for one batch of prepared accounts."""
        b = self._base(batch, 0)
        h = self._hours(b, 0, shrink=True)
        stake, k = b["stake"], b["k"]
        gains = gain(stake, k, h)
        # strictly between floor and cap: the price itself, as in memory (`_interior_at_price`)
        assert self.t_team is not None
        reps = self.t_rep[0] if self.t_rep is not None and len(self.plan.reps) else np.empty(0)
        interior = b["active"] & (h > b["lo"]) & (h < self.plan.cap)
        marginal = at_price(marginal_gain(stake, k, h), interior, b["code"], float(self.t_team[0]), reps)
        if self.variants == 2:
            free = self._base(batch, 1)
            gain_free = gain(stake, k, self._hours(free, 1, shrink=True))
        else:
            gain_free = gains
        active = batch["active"].to_numpy(dtype=bool)
        owner = batch["owner"] if "owner" in batch else pd.Series([None] * len(batch), dtype=object)
        return pd.DataFrame(
            {
                "account_id": batch["account_id"].to_numpy(),
                "stake": stake,
                "recommended_hours": h,
                "expected_gain": gains,
                "marginal_gain_per_hour": marginal,
                "reasons": reason_codes(
                    batch,
                    active=active,
                    thresholds=(self.plan.clv_top, self.plan.referral_top),
                    small_stake=self.plan.small_stake,
                    referral_median=self.plan.referral_median,
                    high_churn=self.plan.cfg.high_churn_p,
                    weights=self.plan.cfg.weights,
                    max_chars=self.plan.cfg.reasons_max_chars,
                ).to_numpy(),
                "owner": owner.to_numpy(dtype=object),
                "stake_retention": batch["stake_retention"].to_numpy(dtype=float),
                "stake_growth": batch["stake_growth"].to_numpy(dtype=float),
                "stake_referral": batch["stake_referral"].to_numpy(dtype=float),
                "effort_scale": k,
                "gain_free": gain_free,
                "active": active,
                "clv": batch["clv"].to_numpy(dtype=float),  # for tier_by: clv
                **{c: batch[c].array for c in SCORING_COLUMNS if c in batch},  # the scoring, as given
            }
        )


def _global_rank(
    frame: DataFrame, keys: Sequence[Any], name: str, sums: dict[str, Any]
) -> tuple[DataFrame, list[Any]]:
    """`frame` sorted by `keys` (range-partitioned, checkpointed to local disk) with its global rank 1..n.

    Per-partition counts (and the `sums`, by name) give every partition its offset, so the rank is the
    offset plus the row's position in its partition: no single-partition window. Returns the ranked frame
    and the per-partition rows (``p``, ``n`` and the sums).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    ordered = frame.orderBy(*keys).localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    part = F.spark_partition_id()
    counts = (
        ordered.groupBy(part.alias("p"))
        .agg(F.count(F.lit(1)).alias("n"), *(value.alias(key) for key, value in sums.items()))
        .collect()
    )
    n_parts = ordered.rdd.getNumPartitions()
    sizes = np.zeros(n_parts, dtype=np.int64)
    for row in counts:
        sizes[int(row["p"])] = int(row["n"])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offset = F.element_at(F.array(*(F.lit(int(o)) for o in offsets)), part + 1) if n_parts else F.lit(0)
    position = F.monotonically_increasing_id() - (part.cast("long") * (1 << 33))
    return ordered.withColumn(name, (offset + position + 1).cast("long")), counts


def _untie(frame: DataFrame, rank: Any, value: Any, limits: FloatArray) -> Any:
    """`rank` with every tie that straddles a tier's edge moved to its last member's rank (`tie_ranks`).

    Only the ties at the edges can change a tier, so the rows on either side of each edge are read (one
    filter) and the last rank of each tie found there (one aggregate): no shuffle of the table.
    """
    from pyspark.sql import functions as F  # noqa: N812

    edges = sorted({int(limit) for limit in limits[:-1] if limit > 0})
    if not edges:
        return rank
    near = [e for edge in edges for e in (edge, edge + 1)]
    rows = frame.where(rank.isin(near)).select(rank.alias("r"), value.alias("v"), F.col("stake")).collect()
    at = {int(row["r"]): (row["v"], row["stake"]) for row in rows}
    ties = {at[edge] for edge in edges if edge in at and edge + 1 in at and _same(at[edge], at[edge + 1])}
    if not ties:
        return rank
    conditions = [_is(value, v) & _is(F.col("stake"), st) for v, st in ties]
    last = frame.agg(*(F.max(F.when(c, rank)).alias(f"t{i}") for i, c in enumerate(conditions))).collect()[0]
    untied = rank
    for i, condition in enumerate(conditions):
        untied = F.when(condition, F.lit(int(last[f"t{i}"]))).otherwise(untied)
    return untied


def _same(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
    """Two (value, stake) pairs are one tie: equal, NaN and None equal to themselves."""
    return all(x == y or (x is None and y is None) or (x != x and y != y) for x, y in zip(a, b, strict=True))


def _is(column: Any, value: Any) -> Any:
    """A Spark condition: `column` equals `value` (null when None; NaN equals NaN in Spark SQL)."""
    from pyspark.sql import functions as F  # noqa: N812

    return column.isNull() if value is None else column == F.lit(float(value))


def _short(need: Any, hours: Any) -> Any:
    """Whether floors that need `need` hours do not fit in `hours` (arrays too), as the optimizer tells."""
    return need > hours * (1 + _FEASIBILITY_RTOL) + _FEASIBILITY_RTOL


_SUM_ERROR = 8 * np.finfo(float).eps
"""Rounding of a running sum, per unit of the sizes summed: `_sorted_demand`'s error estimate."""


def _sorted_demand(
    a: FloatArray, k: FloatArray, lo: FloatArray, hi: float, pf: FloatArray | None, t: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Hours, slope and an error bound of the hours summed over accounts at each log-price of `t`.

    In O((n + c) log c), not n x c.

    Account i takes ``clip(k_i * (a_i - max(t, pf_i)), lo_i, hi)`` hours and adds k_i to the slope where
    that lies strictly between floor and cap at a price above its rep's (`pf`, None: no rep prices). In t
    it is a constant up to ``c1 = max(pf_i, a_i - hi / k_i)``, linear from there down to its floor at
    ``c2 = a_i - lo_i / k_i``, and the floor after; so at sorted prices the sums are cumulative sums over
    where the accounts' corners fall. NaN prices give NaN, as the direct sum does (0 without accounts).

    Running sums of k (a - t) lose what they round away from every account that passes through them, so
    the hours can be off by about eps times the sizes summed (an account with an effort scale of 1e12
    among ordinary ones: a relative 1e-5). The third array bounds that (`_SUM_ERROR` times the sizes,
    summed over partitions like the hours); the price search sums again, account by account, the prices
    whose bound reaches the edges of its band.
    """
    if a.size == 0:
        return np.zeros(t.shape), np.zeros(t.shape), np.zeros(t.shape)
    h_out = np.full(t.shape, np.nan)
    s_out = np.full(t.shape, np.nan)
    e_out = np.full(t.shape, np.nan)
    known = np.flatnonzero(~np.isnan(t))
    order = known[np.argsort(t[known], kind="stable")]
    ts = t[order]
    m = ts.size
    if m == 0:
        return h_out, s_out, e_out
    floor_price = np.full(a.size, -np.inf) if pf is None else pf
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b1 = a - hi / k if np.isfinite(hi) else np.full(a.size, -np.inf)
        c1 = np.maximum(floor_price, b1)
        c2 = np.maximum(a - lo / k, c1)
        # the constant before c1: the cap, or the hours at the rep's price when that price comes later
        before = np.where(b1 >= floor_price, hi, np.clip(k * (a - floor_price), lo, hi))
    i1 = np.searchsorted(ts, c1, side="right")  # prices ts[:i1] are <= c1
    i2 = np.maximum(np.searchsorted(ts, c2, side="left"), i1)  # prices ts[i2:] are >= c2
    finite = ts[np.isfinite(ts)]
    t0 = float(np.median(finite)) if finite.size else 0.0  # sums of k * (a - t0): centred, smaller
    with np.errstate(invalid="ignore", over="ignore"):
        ahead = np.cumsum(np.bincount(i1, before, m + 1)[::-1])[::-1][1:]  # sum over i1 > j
        floors = np.cumsum(np.bincount(i2, lo, m + 1))[:m]  # sum over i2 <= j
        moving = np.cumsum(np.bincount(i1, minlength=m + 1) - np.bincount(i2, minlength=m + 1))[:m]
        sum_k = np.cumsum(np.bincount(i1, k, m + 1) - np.bincount(i2, k, m + 1))[:m]
        ka = k * (a - t0)
        sum_ka = np.cumsum(np.bincount(i1, ka, m + 1) - np.bincount(i2, ka, m + 1))[:m]
        linear = np.where(moving > 0, sum_ka - sum_k * (ts - t0), 0.0)
        # rounding: every account that entered (and left) the running sums leaves its share of eps
        size_ka = np.cumsum(np.bincount(i1, np.abs(ka), m + 1) + np.bincount(i2, np.abs(ka), m + 1))[:m]
        size_k = np.cumsum(np.bincount(i1, k, m + 1) + np.bincount(i2, k, m + 1))[:m]
        spread = np.where(moving > 0, size_ka + size_k * np.abs(ts - t0), 0.0)
    h_out[order] = ahead + floors + linear
    s_out[order] = np.where(moving > 0, np.maximum(sum_k, 0.0), 0.0)
    e_out[order] = _SUM_ERROR * (spread + np.abs(h_out[order]))
    return h_out, s_out, e_out


def _bincount(group: npt.NDArray[np.intp], values: FloatArray, n_groups: int) -> FloatArray:
    """Sum of `values` per group code in ``0..n_groups-1``, as float64."""
    return np.asarray(np.bincount(group, weights=values, minlength=n_groups), dtype=np.float64)


def _inf_if(group: npt.NDArray[np.intp], n_groups: int) -> FloatArray:
    """+inf for groups with members, 0 for the others (sum of infinite caps)."""
    return np.where(np.bincount(group, minlength=n_groups) > 0, np.inf, 0.0)


def _extreme(values: FloatArray, group: npt.NDArray[np.intp], n_groups: int, ufunc: np.ufunc) -> FloatArray:
    start = -np.inf if ufunc is np.maximum else np.inf
    out = np.full(n_groups, start)
    ufunc.at(out, group, values)
    return out


def _merge(acc: dict[str, FloatArray], key: str, value: FloatArray) -> None:
    """Add one partial result into `acc`: ``max_*`` and ``min_*`` keys by extremum, the rest by sum."""
    if key not in acc:
        acc[key] = value
    elif key.startswith("max_"):
        acc[key] = np.maximum(acc[key], value)
    elif key.startswith("min_"):
        acc[key] = np.minimum(acc[key], value)
    else:
        acc[key] = acc[key] + value


def _collect(prepared: DataFrame, kernel: _Kernel) -> dict[str, FloatArray]:
    """Run one pass of `kernel` over the prepared rows and combine the partitions' arrays on the driver."""
    from pyspark.sql import types as T  # noqa: N812

    def run(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sums = kernel.sums(batches)
        if sums:
            yield pd.DataFrame(
                {
                    "key": list(sums),
                    "shape": [list(v.shape) for v in sums.values()],
                    "values": [np.ravel(v).tolist() for v in sums.values()],
                }
            )

    schema = T.StructType(
        [
            T.StructField("key", T.StringType()),
            T.StructField("shape", T.ArrayType(T.IntegerType())),
            T.StructField("values", T.ArrayType(T.DoubleType())),
        ]
    )
    rows = prepared.select(*kernel.columns).mapInPandas(run, schema).collect()
    out: dict[str, FloatArray] = {}
    for row in rows:
        key = row["key"]
        _merge(out, key, np.asarray(row["values"], dtype=float).reshape(row["shape"]))
    if not out:  # no rows at all: zero sums of the right shapes come from an empty batch
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in ("stake", "effort_scale", "floor")})
        empty["code"] = pd.Series(dtype=np.int32)
        out = {k: np.asarray(v, dtype=float) for k, v in getattr(kernel, f"_{kernel.mode}")(empty).items()}
    return out


# -------------------------------------------------------------------------------------- the search


def _search(
    demand: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    stats: dict[str, FloatArray],
    target: FloatArray,
    d_inf: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per group, the smallest log-price whose demand fits `target` (-inf: price 0), as the optimizer's.

    `d_inf` is each group's demand at price 0, when it is not the floors' and caps' sum (the team's,
    whose bound reps' accounts stay at their reps' prices).

    Demand at log-price t is non-increasing and piecewise linear in t. Each pass evaluates every open
    group at its first guess (all accounts between floor and cap), at the Newton steps from both ends of
    its bracket and at `_GRID` evenly spaced prices inside; a group stops at a price whose demand lies in
    ``[target * (1 - RTOL), target * (1 - RTOL / 1000)]``, preferring the one nearest to
    ``target * (1 - RTOL / 2)`` (where `kamml.allocation.optimizer._search` aims its Newton steps).

    Also returns, as the optimizer's search does, the infeasible end of each bracket that closed to a few
    ulps before its demand met the target (the others: the price itself), for `_interpolation`.
    """
    n_groups = target.size
    result = np.full(n_groups, -np.inf)
    upper = target * (1 - RTOL / 1000)
    lower = target * (1 - RTOL)
    aim = target * (1 - RTOL / 2)
    fixed = stats["fixed"]
    if d_inf is None:
        d_inf = fixed + stats["cap"]
    todo = d_inf > target
    if not todo.any():
        return result, result.copy()
    t_hi = stats["max_hi"].copy()
    t_lo = stats["min_lo"].copy()
    sum_k, sum_ka = stats["sum_k"], stats["sum_ka"]
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = (sum_ka + fixed - aim) / sum_k
    first = True
    with np.errstate(invalid="ignore", over="ignore"):  # closed groups may hold infinite brackets
        return _search_passes(demand, result, todo, t_lo, t_hi, guess, (lower, upper, aim), first)


def _search_passes(
    demand: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    result: FloatArray,
    todo: npt.NDArray[np.bool_],
    t_lo: FloatArray,
    t_hi: FloatArray,
    guess: FloatArray,
    band: tuple[FloatArray, FloatArray, FloatArray],
    first: bool,
) -> tuple[FloatArray, FloatArray]:
    """The passes of `_search` (see there), from the brackets and first guesses."""
    lower, upper, aim = band
    n_groups = result.size
    below = result.copy()  # the infeasible end of a bracket that closed
    # ends of each bracket: demand and slope there once known (NaN: not evaluated yet)
    d_lo = np.full(n_groups, np.nan)
    s_lo = np.full(n_groups, np.nan)
    d_hi = np.full(n_groups, np.nan)
    s_hi = np.full(n_groups, np.nan)
    for step in range(_MAX_PASSES):
        cand = np.full((n_groups, _CANDIDATES), np.nan)
        open_ = np.flatnonzero(todo)
        if first:
            cand[open_, 0] = t_hi[open_]  # the floors' own price: "filled" when demand there reaches lower
            inside = (guess > t_lo) & (guess < t_hi)
            cand[open_, 1] = np.where(inside, guess, t_lo + (t_hi - t_lo) / 2)[open_]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                newton_lo = t_lo + (d_lo - aim) / s_lo
                newton_hi = t_hi + (d_hi - aim) / s_hi
            for col, newton in ((0, newton_lo), (1, newton_hi)):
                ok = np.isfinite(newton) & (newton > t_lo) & (newton < t_hi)
                cand[open_, col] = np.where(ok, newton, np.nan)[open_]
        grid = (np.arange(1, _GRID + 1) / (_GRID + 1))[None, :]
        cand[open_, 3:] = (t_lo[:, None] + (t_hi - t_lo)[:, None] * grid)[open_]
        d, slope = demand(cand)
        if first:
            filled = todo & (d[:, 0] >= lower)
            result[filled] = below[filled] = t_hi[filled]
            todo &= ~filled
            cand[:, 0] = np.nan
            first_guess_ok = todo & (d[:, 1] >= lower) & (d[:, 1] <= upper)
            result[first_guess_ok] = below[first_guess_ok] = cand[first_guess_ok, 1]
            todo &= ~first_guess_ok
            first = False
        valid = np.isfinite(cand) & todo[:, None]
        in_band = valid & (d >= lower[:, None]) & (d <= upper[:, None])
        hit = in_band.any(axis=1)
        if hit.any():
            miss = np.where(in_band, np.abs(d - aim[:, None]), np.inf)
            best = np.argmin(miss, axis=1)
            rows = np.flatnonzero(hit)
            result[rows] = below[rows] = cand[rows, best[rows]]
            todo &= ~hit
            valid &= todo[:, None]
        over = valid & (d > upper[:, None])
        under = valid & ~over
        lo_cand = np.where(over, cand, -np.inf)
        j = np.argmax(lo_cand, axis=1)
        rows = np.flatnonzero(over.any(axis=1))
        better = rows[lo_cand[rows, j[rows]] > t_lo[rows]]
        t_lo[better], d_lo[better], s_lo[better] = (
            cand[better, j[better]],
            d[better, j[better]],
            slope[better, j[better]],
        )
        hi_cand = np.where(under, cand, np.inf)
        j = np.argmin(hi_cand, axis=1)
        rows = np.flatnonzero(under.any(axis=1))
        better = rows[hi_cand[rows, j[rows]] < t_hi[rows]]
        t_hi[better], d_hi[better], s_hi[better] = (
            cand[better, j[better]],
            d[better, j[better]],
            slope[better, j[better]],
        )
        collapsed = todo & (t_hi - t_lo <= 4 * np.spacing(np.maximum(np.abs(t_lo), np.abs(t_hi))))
        result[collapsed] = t_hi[collapsed]
        below[collapsed] = t_lo[collapsed]
        todo &= ~collapsed
        if not todo.any():
            logger.debug("price search: %d groups in %d passes", n_groups, step + 1)
            return result, below
    logger.warning(
        "price search stopped after %d passes; using the feasible side of the bracket", _MAX_PASSES
    )
    result[todo] = t_hi[todo]
    # a bracket still wide: a few ulps below t_hi, as `kamml.allocation.optimizer._search`
    below[todo] = np.maximum(t_lo[todo], t_hi[todo] - 4 * np.spacing(np.abs(t_hi[todo])))
    return result, below


# -------------------------------------------------------------------------- order statistics, checks


def _order_stats(frame: DataFrame, column: str, ranks: Sequence[int], n: int) -> list[float]:
    """Exact values at 0-based `ranks` of `column` sorted ascending (n rows, no nulls), in Spark.

    ``approxQuantile`` brackets each rank (its rank error is at most 0.1 % of n); one pass counts the
    rows below and inside the brackets, and only the rows inside (about 0.6 % of n) reach the driver.
    """
    from pyspark.sql import functions as F  # noqa: N812

    col = spark_column(column)
    probs: list[float] = []
    for r in ranks:
        p = r / max(n - 1, 1)
        probs += [max(0.0, p - 3 * _QUANTILE_ERROR), min(1.0, p + 3 * _QUANTILE_ERROR)]
    bounds = frame.approxQuantile(column, probs, _QUANTILE_ERROR)
    pairs = [(bounds[2 * i], bounds[2 * i + 1]) for i in range(len(ranks))]
    aggs = []
    for i, (low, high) in enumerate(pairs):
        aggs.append(F.sum((col < F.lit(low)).cast("long")).alias(f"b{i}"))
        aggs.append(F.sum(((col >= F.lit(low)) & (col <= F.lit(high))).cast("long")).alias(f"w{i}"))
    counts = frame.agg(*aggs).collect()[0]
    out = []
    for i, r in enumerate(ranks):
        low, high = pairs[i]
        below, inside = int(counts[f"b{i}"] or 0), int(counts[f"w{i}"] or 0)
        if not below <= r < below + inside:  # pragma: no cover - outside approxQuantile's guarantee
            low, high, below = -math.inf, math.inf, 0
        if low == high:
            out.append(float(low))
            continue
        values = np.sort(
            np.array(
                [row[0] for row in frame.filter((col >= F.lit(low)) & (col <= F.lit(high))).collect()],
                dtype=float,
            )
        )
        out.append(float(values[r - below]))
    return out


def _check_scores(frame: DataFrame, *, need_owner: bool) -> tuple[int, float | None, dict[str, Any]]:
    """`kamml.allocation.check_scores`' rules as one aggregate pass (and a look-up per broken rule).

    Returns the number of rows, the scores' horizon in days (None without a horizon_days column) and the
    value of each of `SCORING_COLUMNS` that every row holds (none for a column with several, or a null);
    raises SchemaError listing every broken rule, one horizon per table included.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    problems = missing_score_columns(list(frame.columns), need_owner=need_owner)
    if problems:
        raise SchemaError(problems)
    binary_id = isinstance(frame.schema["account_id"].dataType, T.BinaryType)
    id_kind = _wrong_id_kind(frame.schema["account_id"].dataType)
    footer_kind = frame.schema["account_id"].metadata.get(_ID_KIND_KEY)  # `read_scores_spark`: the footer's
    if footer_kind is not None:
        id_kind = footer_kind
    rules: list[tuple[str, str, Any]] = []
    # rule 'in [0, 1]' (its index): rows off [0, 100] too, rows above 1, finite rows: `percent_hint`'s
    # arguments, as `kamml.allocation._checks._percent_hint` counts them in memory
    no_percent: dict[int, tuple[Any, Any, Any]] = {}
    if binary_id:  # as in memory: a wrong type, and no other rule of the ids
        rules.append(("account_id", BINARY_ID_RULE, F.col("account_id").isNotNull()))
    elif id_kind is not None:  # dates, periods, durations, yes/no: as in memory, no other rule of the ids
        rules.append(("account_id", WRONG_ID_TYPE_RULE, F.col("account_id").isNotNull()))
    else:
        rules.append(("account_id", "null id", F.col("account_id").isNull()))
    for column in ("account_id", "owner"):  # a list of reps or ids, as in memory
        if column in frame.columns and _nested(frame, column):
            rules.append((column, "not one value (a list or a mapping)", spark_column(column).isNotNull()))
    for column in ("account_id", "owner"):  # bytes not UTF-8 (`_ids_as_in_the_tables` read the others)
        if column in frame.columns and isinstance(frame.schema[column].dataType, T.StringType):
            binary = frame.schema[column].metadata.get(_BINARY_KEY, False)
            rule = BINARY_OWNER_RULE if binary else TEXT_NOT_UTF8_RULE
            rules.append((column, rule, ~F.is_valid_utf8(spark_column(column))))
    nested_id = _nested(frame, "account_id") or binary_id or id_kind is not None
    whole_rule = "not a whole number (an id is a whole number or a text)"
    if frame.schema["account_id"].dataType.typeName() in ("double", "float"):  # 3.5 is no id
        ids = F.col("account_id")
        # a remainder as in memory (np.mod): Spark's floor is a long, 9.2e18 for an id of 1e308
        rules.append(("account_id", whole_rule, ~F.isnan(ids) & ((ids % F.lit(1.0)) != F.lit(0.0))))
    if isinstance(frame.schema["account_id"].dataType, T.DecimalType):  # as in memory (`outside_int64`)
        ids = F.col("account_id")
        whole = ids == F.floor(ids)
        rules.append(("account_id", whole_rule, ~whole))
        rules.append(("account_id", OUTSIDE_INT64_RULE, whole & ids.try_cast("long").isNull()))
    for column, (low, high, nan_ok) in SCORE_BOUNDS.items():
        if column not in frame.columns:
            continue
        raw = spark_column(column)
        kind = frame.schema[column].dataType.typeName()
        if kind not in _NUMBER_KINDS:  # dates, yes/no, lists: no cast (Spark's analysis refused a date's)
            what = "yes/no values" if kind == "boolean" else f"a {kind} column"
            rules.append((column, f"not a number ({what})", raw.isNotNull()))
            continue
        number = raw.try_cast("double")  # Spark 4's ANSI cast threw on text that is no number
        if kind == "string":  # Java's cast also reads "1d" and "0x1p3", refused in memory (`NUMBER_PATTERN`)
            number = F.when(raw.rlike(NUMBER_PATTERN) & _read_as_pandas(raw, number), number)
        if kind not in ("double", "float", "integer", "long", "short"):
            rules.append((column, "not a number", raw.isNotNull() & number.isNull()))
        missing = raw.isNull() | F.isnan(number)
        if not nan_ok:
            rules.append((column, "missing value", missing))
        infinite = number.isin(float("inf"), float("-inf"))
        rules.append((column, "must be finite", infinite))
        outside = ~missing & ~infinite & ((number < F.lit(low)) | (number > F.lit(high)))
        rule = f"must be >= {low:g}" if high == math.inf else f"must be in [{low:g}, {high:g}]"
        rules.append((column, rule, outside))
        if high == 1.0:  # as in memory (`PERCENT_HINT`): p_churn of 20 and 70 is likely a percentage
            finite = ~missing & ~infinite
            off = outside & ((number < F.lit(0.0)) | (number > F.lit(100.0)))
            no_percent[len(rules) - 1] = (off, finite & (number > F.lit(1.0)), finite)
        if column == HORIZON_COLUMN:  # as in memory: the plan is over whole days
            rules.append((column, WHOLE_DAYS_RULE, ~missing & ~infinite & (number != F.floor(number))))
    aggs = [F.count(F.lit(1)).alias("n")]
    aggs += [
        F.sum(F.coalesce(cond, F.lit(False)).cast("long")).alias(f"r{i}")
        for i, (_, _, cond) in enumerate(rules)
    ]
    aggs += [
        F.sum(F.coalesce(cond, F.lit(False)).cast("long")).alias(f"{key}{i}")
        for i, conds in no_percent.items()
        for key, cond in zip("qpf", conds, strict=True)
    ]
    days = F.col(HORIZON_COLUMN).try_cast("double")
    horizon_kind = frame.schema[HORIZON_COLUMN].dataType.typeName() if HORIZON_COLUMN in frame.columns else ""
    if horizon_kind in _NUMBER_KINDS:  # the valid horizons' range, in the same pass (a date: refused above)
        low, high, _ = SCORE_BOUNDS[HORIZON_COLUMN]
        valid = F.when(~F.isnan(days) & (days >= F.lit(low)) & (days <= F.lit(high)), days)
        aggs += [F.min(valid).alias("h_low"), F.max(valid).alias("h_high")]
    scorings = [c for c in SCORING_COLUMNS if c in frame.columns]  # one value each, unless tables joined
    for c in scorings:
        aggs += [
            F.min(spark_column(c).cast("string")).alias(f"{c}_low"),
            F.max(spark_column(c).cast("string")).alias(f"{c}_high"),
            F.count(spark_column(c)).alias(f"{c}_n"),
            F.first(spark_column(c), ignorenulls=True).alias(f"{c}_one"),
        ]
    row = frame.agg(*aggs).collect()[0]
    for i, (column, rule, cond) in enumerate(rules):
        count = int(row[f"r{i}"] or 0)
        if rule == WHOLE_DAYS_RULE and any(p.column == column for p in problems):
            continue  # as in memory: told only of horizons breaking no other rule (0.5 is out of range only)
        if rule == WRONG_ID_TYPE_RULE:  # pandas reads a boolean column with nulls as objects: yes/no values
            got = "yes/no values" if id_kind == "bool" and count < int(row["n"]) else id_kind
            rule = WRONG_ID_TYPE_RULE.format(got=got)
        if i in no_percent:  # as in memory: nothing off [0, 100], at least half above 1
            rule += percent_hint(*(int(row[f"{key}{i}"] or 0) for key in "qpf"))
        if count:
            examples: tuple[Any, ...] = ()
            if rule not in ("null id", "missing value"):
                as_bytes = rule in (BINARY_OWNER_RULE, TEXT_NOT_UTF8_RULE)
                value = spark_column(column).cast("binary") if as_bytes else spark_column(column)
                bad = frame.filter(cond).select(value.alias(column))  # the smallest five: run to run alike
                order = (
                    spark_column(column).cast("string") if _nested(frame, column) else spark_column(column)
                )
                examples = tuple(_bytes(r[0]) for r in bad.orderBy(order).limit(5).collect())
            problems.append(Problem("scores", column, rule, count, examples))
    dups = (
        frame.filter(F.col("account_id").isNotNull()).groupBy("account_id").count().filter(F.col("count") > 1)
    )
    n_dup = 0 if nested_id else dups.agg(F.sum("count")).collect()[0][0]  # lists: refused above
    if n_dup:
        examples = tuple(r[0] for r in dups.select("account_id").orderBy("account_id").limit(5).collect())
        problems.append(Problem("scores", "account_id", "duplicated id", int(n_dup), examples))
    found = None
    if HORIZON_COLUMN in frame.columns and not any(p.column == HORIZON_COLUMN for p in problems):
        found = None if row["h_low"] is None else float(row["h_low"])
        if row["h_low"] != row["h_high"]:  # rows per horizon (a few values), as `check_scores` counts them
            counts = frame.groupBy(days.alias("h")).count().limit(1000).collect()
            problems += horizon_problems({float(r["h"]): int(r["count"]) for r in counts})
    if problems:
        raise SchemaError(problems)
    for c in scorings:
        if row[f"{c}_low"] != row[f"{c}_high"]:  # rows per value (a few), as the in-memory path counts them
            text = spark_column(c).cast("string")
            counts = frame.filter(text.isNotNull()).groupBy(text.alias("v")).count().limit(1000).collect()
            warn_mixed_scorings(c, {r["v"]: int(r["count"]) for r in counts})
    one = {
        c: row[f"{c}_one"]
        for c in scorings
        if row[f"{c}_low"] == row[f"{c}_high"] and row[f"{c}_n"] == row["n"]
    }
    return int(row["n"]), found, one


# -------------------------------------------------------------------------------------------- helpers

#: Column metadata naming what a scores account_id holds when its Parquet footer says durations or
#: periods, which Spark reads as longs ("duration values", "period values"; `read_scores_spark`).
_ID_KIND_KEY = "kamml_id_kind"

#: Column metadata marking a scores owner read from binary (`_ids_as_in_the_tables`), for its rule's wording.
_BINARY_KEY = "kamml_binary"

#: Spark types whose values the scores' number rules cast (text is checked against `NUMBER_PATTERN`).
_NUMBER_KINDS = frozenset(
    {"double", "float", "integer", "long", "short", "byte", "decimal", "string", "void"}
)


#: Spark types of the table's scoring columns for scores without them (`score_spark` writes these types).
_SCORING_TYPES = {"cutoff": "timestamp_ntz", "model_uri": "string"}


def _wrong_id_kind(kind: Any) -> str | None:
    """What an account_id of dates, durations or yes/no values holds, in `WRONG_ID_TYPE_RULE`; else None.

    In memory such ids are refused as a wrong type (`kamml.allocation.allocate._id_type_problems`); Spark
    planned on them and wrote dates, or true and false, that no CRM account matches. A Parquet date32 or
    boolean is named in pandas' words ("date values", "bool"); a timestamp by Spark's (pandas names its
    unit, which Spark does not keep).
    """
    from pyspark.sql import types as T  # noqa: N812

    if isinstance(kind, T.BooleanType):
        return "bool"
    if isinstance(kind, T.DateType):
        return "date values"
    if isinstance(kind, T.TimestampType | T.TimestampNTZType):
        return "timestamp values"
    if isinstance(kind, T.DayTimeIntervalType | T.YearMonthIntervalType | T.CalendarIntervalType):
        return "duration values"
    return None


def _read_as_pandas(text: Any, number: Any) -> Any:
    """Whether number text cast to `number` is a number as `check_scores` reads it (pandas' to_numeric).

    pandas reads "NaN" and a number past the largest float ("1e309") as no number: in memory a scores
    text "NaN" was "not a number", and on Spark a missing value (accepted where NaN is, then a raw Python
    worker error); "1e309" was "must be finite" on Spark.
    """
    infinite = number.isin(float("inf"), float("-inf"))
    return ~text.rlike(NAN_PATTERN) & (~infinite | text.rlike(INF_PATTERN))


def _bytes(value: Any) -> Any:
    """A value collected from Spark as an example: binary (Spark's bytearray) as bytes, as in memory."""
    return bytes(value) if isinstance(value, bytearray) else value


def _nested(frame: DataFrame, column: str) -> bool:
    """Whether a column holds lists, mappings or records rather than one value per row."""
    from pyspark.sql import types as T  # noqa: N812

    return isinstance(frame.schema[column].dataType, T.ArrayType | T.MapType | T.StructType)


def _owner(frame: DataFrame) -> Any:
    """The owner column for `kamml.names.rep_names`: numbers and text as is, else text."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    if isinstance(frame.schema["owner"].dataType, T.NumericType | T.StringType | T.BooleanType):
        return F.col("owner")  # a yes/no owner is rep "True" as in memory (Java's text: "true")
    return _as_text(frame, "owner")


def _as_text(frame: DataFrame, column: str) -> Any:
    """A text column as strings; a list of phrases (drivers) joined with "; "."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    if isinstance(frame.schema[column].dataType, T.ArrayType):
        return F.array_join(spark_column(column).cast("array<string>"), "; ").alias(column)
    return spark_column(column).cast("string").alias(column)
