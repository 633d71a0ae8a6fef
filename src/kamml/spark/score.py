"""Distributed batch scoring: the registered bundle applied per Spark partition, scores written as parts.

Features are a lazy Spark DataFrame (computed by Ibis's PySpark backend from a Spark `Dataset`, or read
from a features Parquet file or folder); each partition is scored with ``mapInPandas`` by the bundle's own
row-independent `kamml.tracking.pyfunc.score_frame`, the function the MLflow pyfunc serves. The bundle
(LightGBM text and JSON, a few hundred kB) travels to the executors as a broadcast JSON string and is
rebuilt once per Python worker, so executors need kamml installed but no access to the MLflow store.
Nothing but the bundle and a count goes through the driver.

Why ``mapInPandas`` and not ``mlflow.pyfunc.spark_udf``: spark_udf feeds the model a struct of the
signature's columns and wants a fixed Spark return type, so the output (strings of drivers, account_id
passed through) would be squeezed into a struct and unpacked again; it also re-resolves the model URI and
its environment on every executor (the tracking store and artifact store must be reachable from the
workers). ``mapInPandas`` hands whole Arrow batches to the same scoring function, keeps account_id, owner
and any extra column beside the rows, and needs nothing from MLflow on the workers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from kamml.allocation.allocate import owner_column
from kamml.config import Config
from kamml.engine import engine_errors, told_to_driver, worker_error
from kamml.errors import (
    ConfigError,
    FeatureMismatchError,
    Problem,
    SchemaError,
)
from kamml.features._context import as_cutoff, check_scoring_cutoff, join_on_account
from kamml.features.build import account_base, feature_context, settle, settle_frame
from kamml.features.groups import rfm, static
from kamml.io import NUMBER_PATTERN, check_not_local_input
from kamml.jobs.score import (
    EXPLAIN_TOP,
    SCORE_COLUMNS,
    attribute_problem,
    examples_by_count,
    explain_priority,
    kept_order_value,
    lost_features,
    numeric_attributes,
    record_unseen_levels,
    unseen_level_note,
    warn_empty_tables,
    warn_later_training,
    warn_lost,
    warn_order_value,
    warn_other_definition,
    whole_count,
)
from kamml.models._lgbm import BYTES_CATEGORY_REASON, CATEGORY_RULE, DATED_CATEGORY_REASON, unseen_levels
from kamml.models.bundle import ModelBundle
from kamml.spark.session import (
    case_sensitive,
    check_local_parquet,
    features_frame,
    owner_text,
    read_parquet,
    spark_column,
    spark_session,
    to_spark,
    write_atomic,
)
from kamml.tracking import LoadedModel, resolve_model
from kamml.tracking.pyfunc import NOT_AN_ID_RULE, score_frame

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["score_frame_spark", "score_spark", "scores_totals", "worker_error"]

log = logging.getLogger(__name__)

#: Distinct values of one category attribute that no fitted level spells exactly, brought to the driver
#: (most frequent first) to be matched there as the model matches them.
UNSEEN_VALUES = 1000

_BUNDLES: dict[int, ModelBundle] = {}
"""Bundles rebuilt in this Python worker, by the hash of their JSON (one per model, reused by batches)."""


def _bundle_from_json(text: str) -> ModelBundle:
    key = hash(text)
    bundle = _BUNDLES.get(key)
    if bundle is None:
        bundle = ModelBundle.from_dict(json.loads(text))
        _BUNDLES.clear()
        _BUNDLES[key] = bundle
    return bundle


#: Text columns of the scores table; account_id takes the features' id type, cutoff is a timestamp,
#: horizon_days a long (int64, as in memory) and every other column of `SCORE_COLUMNS` is a double.
_TEXT_SCORES = frozenset({"model_uri", "drivers", "owner"})


def _score_schema(id_type: Any) -> Any:
    """The Spark schema of the scores table, column for column `SCORE_COLUMNS`."""
    from pyspark.sql import types as T  # noqa: N812

    def spark_type(name: str) -> Any:
        if name == "account_id":
            return id_type
        if name == "cutoff":
            return T.TimestampNTZType()
        if name == "horizon_days":
            return T.LongType()
        return T.StringType() if name in _TEXT_SCORES else T.DoubleType()

    return T.StructType([T.StructField(name, spark_type(name)) for name in SCORE_COLUMNS])


def _features(
    session: SparkSession, data: Any, cutoff: pd.Timestamp, bundle: ModelBundle, config: Config | None
) -> DataFrame:
    """Feature rows as a Spark DataFrame, from a Dataset on Spark, a Spark DataFrame or a Parquet path."""
    from pyspark.sql import DataFrame

    if isinstance(data, DataFrame):
        return data
    if isinstance(data, str | Path):
        return read_parquet(session, str(data), "features table", _FEATURES_HINT)
    if hasattr(data, "transactions") and hasattr(data, "tables"):
        frame = features_frame(data, cutoff, bundle.scoring_config(config))
        accounts = data.tables.get("accounts")
        if accounts is not None and "owner" in accounts.columns and "owner" not in frame.columns:
            owners = to_spark(accounts.select("account_id", "owner")).dropDuplicates(["account_id"])
            frame = frame.join(owners, "account_id", "left")
        return frame
    raise ConfigError(
        "score_spark needs a Dataset loaded on the Spark engine, a Spark DataFrame of features or the "
        f"path of a features Parquet file or folder, got {type(data).__name__}"
    )


#: What `score_spark` reads from a path, as its errors say.
_FEATURES_HINT = (
    "score_spark reads a features Parquet file or folder, as kamml.features.write_features writes"
)


#: What the local scorer says of a feature column no model reads as numbers (`kamml.models._lgbm.as_float`),
#: of one holding no single category (`_check_category_values`) and of ids that are lists (`_check_ids`)
#: or dates, durations and bytes (`_check_id_kinds`).
NUMERIC_RULE = "must be numeric as it was in fit, got {type}"
TEMPORAL_RULE = ": dates and durations are not numbers (send the number of days, as the features do)"
ID_RULE = "must be one id (a number or text) per row, got {type}: a list or an object"
ID_KIND_RULE = NOT_AN_ID_RULE + ", got {type}"


def _type_kind(data_type: Any) -> str | None:
    """The kind of a Spark type no feature reads as is: nested (lists, maps, structs), temporal, binary."""
    from pyspark.sql import types as T  # noqa: N812

    if isinstance(data_type, T.ArrayType | T.MapType | T.StructType):
        return "nested"
    if isinstance(data_type, T.BinaryType):
        return "binary"
    dated = (T.DateType, T.TimestampType, T.TimestampNTZType)
    if isinstance(
        data_type, (*dated, T.DayTimeIntervalType, T.YearMonthIntervalType, T.CalendarIntervalType)
    ):
        return "temporal"
    return None


def _type_rule(name: str, kind: str, shown: str, categorical: set[str]) -> str:
    """The local scorer's rule for column `name` of Spark type `shown` (of `kind`).

    A category feature of dates, durations or bytes is refused, as fit and the local scorer refuse them
    (`kamml.models._lgbm.DATED_CATEGORY_REASON`); both engines read each as a missing value before.
    """
    if name == "account_id":
        return ID_RULE.format(type=shown) if kind == "nested" else ID_KIND_RULE.format(type=shown)
    if name in categorical:
        reason = {"temporal": DATED_CATEGORY_REASON, "binary": BYTES_CATEGORY_REASON}.get(kind, "")
        return CATEGORY_RULE.format(type=shown) + reason
    return NUMERIC_RULE.format(type=shown) + (TEMPORAL_RULE if kind == "temporal" else "")


def feature_type_problems(schema: Any, bundle: ModelBundle, needed: Sequence[str]) -> list[Problem]:
    """One `Problem` of table features per column whose Spark type the model cannot read, in local words.

    Lists or structs in a feature, and dates, durations or bytes in any feature or in account_id,
    stopped each executor with kamml's own error (rows of one batch) when the scores were written.
    The schema tells them on the driver; values (text that is no number) are the worker's to find
    (`kamml.engine.worker_error`).
    """
    categorical = set(getattr(bundle.clv, "categories_", None) or {})
    problems = []
    for name in ["account_id", *needed]:
        data_type = schema[name].dataType
        kind = _type_kind(data_type)
        if kind is not None:
            problems.append(
                Problem("features", name, _type_rule(name, kind, data_type.simpleString(), categorical))
            )
    return problems


#: Why 'ACCOUNT_ID' is account_id to Spark (`repeated_feature_columns`).
ALIKE_RULE = "Spark's column names ignore case (spark.sql.caseSensitive)"


def repeated_feature_columns(
    columns: Sequence[str], read: Sequence[str], *, case_sensitive: bool
) -> list[Problem]:
    """One `Problem` of table features per column read (`read`) that more than one column names.

    Spark cannot tell them apart: selecting the rows to score raised a raw AnalysisException
    [AMBIGUOUS_REFERENCE]. Without ``spark.sql.caseSensitive`` (the default) 'ACCOUNT_ID' names
    account_id too. The words are those of the scores' `kamml.allocation.scores_file.repeated_name_problems`.
    """

    def key(name: str) -> str:
        return name if case_sensitive else name.lower()

    problems = []
    for name in read:
        alike = [c for c in columns if key(c) == key(name)]
        if len(alike) < 2:
            continue
        if len(set(alike)) == 1:
            rule = f"duplicated column name ({len(alike)} columns); keep one"
        else:
            listed = ", ".join(map(repr, alike))
            rule = f"duplicated column name ({len(alike)} columns: {listed}; {ALIKE_RULE}); keep one"
        problems.append(Problem("features", name, rule))
    return problems


def _check_feature_columns(session: SparkSession, features: DataFrame, bundle: ModelBundle) -> None:
    """SchemaError for feature columns named twice (`repeated_feature_columns`) or of a wrong type."""
    needed = list(bundle.feature_spec()["columns"])
    read = ["account_id", *needed, *(["owner"] if "owner" in features.columns else [])]
    problems = repeated_feature_columns(features.columns, read, case_sensitive=case_sensitive(session))
    if problems:
        raise SchemaError(problems)
    problems = feature_type_problems(features.schema, bundle, needed)
    if problems:
        raise SchemaError(problems)


def scored_attributes(data: Any, bundle: ModelBundle, cutoff: Any, config: Config | None) -> ir.Table | None:
    """The accounts scored (one row each, as the features' rows) with their attributes at `cutoff`.

    The static group (the accounts table at the cutoff) joined onto the accounts the features score;
    None without an accounts table or attributes. `score_frame_spark` caches it once for both checks
    below (each built it on its own: two scans of the transactions before the cutoff).
    """
    ctx = feature_context(data, cutoff, bundle.scoring_config(config))
    table = static(ctx)
    names = [c for c in table.columns if c.startswith("attr_")] if table is not None else []
    if table is None or not names:
        return None
    return join_on_account(account_base(ctx), table.select("account_id", *names))


def _lost_wanted(bundle: ModelBundle, told: list[str]) -> dict[str, Any]:
    """The attributes' training coverage, of those `warn_lost_attributes` checks (not told already)."""
    coverage = bundle.meta.get("coverage") or {}
    return {c: was for c, was in coverage.items() if c.startswith("attr_") and c not in told}


def _fitted_levels(bundle: ModelBundle) -> dict[str, Any]:
    """The category attributes' fitted levels, those `note_unseen_levels_spark` checks."""
    levels = getattr(bundle.clv, "categories_", None) or {}
    return {name: fitted for name, fitted in levels.items() if name.startswith("attr_")}


def warn_lost_attributes(
    data: Any,
    bundle: ModelBundle,
    told: list[str],
    cutoff: Any,
    config: Config | None = None,
    *,
    scored: ir.Table | None = None,
) -> list[str]:
    """`kamml.jobs.score.warn_lost_features` for the accounts' attributes, from the accounts table.

    The Spark features are lazy and not cached, so counting their values would build them once more;
    the attributes (an export that emptied ``accounts.size``) are counted on the static group at
    `cutoff` joined onto the accounts scored (`scored_attributes`, or `scored` when given), in one
    small aggregate, as a share of those accounts (NaN is no value), as in memory: shares of the
    accounts table's rows read undated accounts rows without a purchase (not scored) as accounts, and
    accounts without a row as none. Features from the other tables are not checked on Spark.
    """
    coverage = _lost_wanted(bundle, told)
    if not coverage:
        return []
    if scored is None:
        scored = scored_attributes(data, bundle, cutoff, config)
    if scored is None:
        return []
    names = [c for c in coverage if c in scored.columns]
    if not names:
        return []
    counts = {}
    for column in names:
        value = scored[column]
        if value.type().is_floating():
            value = value.isnan().ifelse(ibis.null(value.type()), value)
        counts[column] = value.count()
    row = scored.aggregate(_rows=scored.count(), **counts).to_pyarrow().to_pylist()[0]
    rows = int(row.pop("_rows"))
    shares = {c: int(n) / rows for c, n in row.items()} if rows else {}
    return warn_lost(lost_features(coverage, shares, rows, told), rows, "accounts scored")


def check_attribute_types_spark(
    data: Any, bundle: ModelBundle, cutoff: pd.Timestamp, config: Config | None
) -> None:
    """`kamml.jobs.score.check_attribute_types` on Spark: text in an attribute the model read as numbers.

    The executors stopped with the model's "column 'attr_size' must be numeric as it was in fit" inside
    a Spark traceback (exit 1). The static group alone is built here (the accounts table at the cutoff,
    one small aggregate) rather than the lazy features; text is a number when it matches
    `kamml.io.NUMBER_PATTERN`, as pandas reads numbers in memory.
    """
    table = static(feature_context(data, cutoff, bundle.scoring_config(config)))
    if table is None:
        return
    text = [c for c in numeric_attributes(bundle, table.columns) if table[c].type().is_string()]
    if not text:
        return
    bad = {c: table[c].notnull() & ~table[c].re_search(NUMBER_PATTERN) for c in text}
    counts = table.aggregate(**{c: flag.sum() for c, flag in bad.items()}).to_pyarrow().to_pylist()[0]
    problems = []
    for column, n in counts.items():
        if n:
            examples = table.filter(bad[column]).select(column).distinct().limit(5).to_pyarrow()
            problems.append(attribute_problem(column, int(n), examples.column(0).to_pylist()))
    if problems:
        raise SchemaError(problems)


def note_unseen_levels_spark(
    data: Any,
    bundle: ModelBundle,
    cutoff: pd.Timestamp,
    config: Config | None,
    *,
    scored: ir.Table | None = None,
) -> list[Problem]:
    """`kamml.jobs.score.note_unseen_levels` on Spark, from the category attributes at the cutoff.

    The Spark features are lazy: the attributes of the accounts scored are read (`scored_attributes`,
    or `scored` when given) and noted as `unseen_level_notes_spark` notes them. Counts are of the
    accounts scored, as in memory: an accounts row the features leave out (no ``created_at`` and no
    purchase before the cutoff) was counted too.
    """
    fitted = _fitted_levels(bundle)
    if not fitted:
        return []
    table = scored if scored is not None else scored_attributes(data, bundle, cutoff, config)
    if table is None:
        return []
    return unseen_level_notes_spark(to_spark(table), fitted, data)


def note_unseen_features_spark(
    features: DataFrame, bundle: ModelBundle, data: Any = None, *, attributes: bool = True
) -> list[Problem]:
    """`kamml.jobs.score.note_unseen_levels` on feature rows given to Spark, for every category feature.

    Features given as a Spark DataFrame or a Parquet path were not checked at all, while the local
    scorer given the same rows notes each category feature. `attributes` False leaves out the
    ``attr_*`` columns, which a Dataset's accounts table gives (`note_unseen_levels_spark`): its other
    category features, if a model has any, are counted on the lazy features themselves.
    """
    fitted = getattr(bundle.clv, "categories_", None) or {}
    wanted = {n: levels for n, levels in fitted.items() if attributes or not n.startswith("attr_")}
    if not any(name in features.columns for name in wanted):
        return []
    return unseen_level_notes_spark(features, wanted, data)


def unseen_level_notes_spark(frame: DataFrame, fitted: dict[str, Any], data: Any = None) -> list[Problem]:
    """The unseen-level note of each column of `fitted` (name: its levels) in `frame`, logged and recorded.

    Per column, the values no fitted level names exactly are counted in one aggregate and the most
    frequent `UNSEEN_VALUES` of them matched on the driver as the model matches them (another spelling
    of a fitted number is seen); no row reaches the driver. A column that arrives as numbers (a region
    fitted as the texts "1", "2") is noted too, as in memory: its numbers the model reads as a fitted
    level (`_fitted_numbers`) are seen. Words and examples are the local scorer's (`unseen_level_note`).
    """
    from pyspark.sql import functions as F  # noqa: N812

    notes = []
    for name, levels in fitted.items():
        if name not in frame.columns:
            continue
        rest = _not_fitted_exactly(frame, name, levels)
        counts = rest.groupBy(spark_column(name).alias("value")).agg(F.count(F.lit(1)).alias("n"))
        # values of one count by their text, as the examples are ordered (`examples_by_count`)
        top = (
            counts.orderBy(F.desc("n"), F.asc(F.col("value").cast("string"))).limit(UNSEEN_VALUES).toPandas()
        )
        if top.empty:
            continue
        # every such value came back, or only the most frequent: then count them all (one more query)
        n_rest = int(top["n"].sum()) if len(top) < UNSEEN_VALUES else rest.count()
        unseen = unseen_levels(top["value"].astype(object), levels, name)
        n_unseen = n_rest - int(top.loc[~unseen, "n"].sum())  # another spelling of a fitted level: seen
        if n_unseen > 0:
            shown = pd.Series(
                top.loc[unseen, "n"].to_numpy(), index=_as_in_memory(frame, name, top.loc[unseen, "value"])
            )
            notes.append(unseen_level_note(name, levels, n_unseen, examples_by_count(shown)))
    rows = frame.count() if notes else 0
    record_unseen_levels(notes, f"{rows:,} accounts scored", data)
    return notes


def _not_fitted_exactly(frame: DataFrame, name: str, levels: list[Any]) -> DataFrame:
    """The rows of `frame` whose `name` is given (not null, not NaN) and is no fitted level as it stands.

    Text is compared with the text levels; numbers with the numbers the model reads as a level
    (`_fitted_numbers`). What is left is matched on the driver (`unseen_levels`).
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    column = spark_column(name)
    kind = frame.schema[name].dataType
    floating = isinstance(kind, T.FloatType | T.DoubleType)
    given = column.isNotNull()
    if floating:
        given &= ~F.isnan(column)  # NaN is a missing value in memory
    if isinstance(kind, T.StringType):
        exact = [level for level in levels if isinstance(level, str)]
    elif isinstance(kind, T.IntegralType) or floating:
        exact = _fitted_numbers(levels, integer=isinstance(kind, T.IntegralType))
    else:
        exact = []
    return frame.filter(given & ~column.isin(exact) if exact else given)


def _fitted_numbers(levels: list[Any], *, integer: bool) -> list[Any]:
    """The numbers (ints when `integer`) the model reads as one of the fitted `levels`: 3 for the text "3".

    The model's own matching (`unseen_levels`) decides; a number two levels spell ("3" and "3.0") is none.
    A whole number no 64-bit integer holds is none of an integer column's values.
    """
    numbers = set()
    for level in levels:
        if isinstance(level, bool):
            continue
        try:
            number = float(level)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number) or (integer and not (number.is_integer() and abs(number) < 2.0**63)):
            continue
        numbers.add(int(number) if integer else number)
    candidates = sorted(numbers)
    if not candidates:
        return []
    seen = ~unseen_levels(pd.Series(candidates, dtype=object), levels)
    return [number for number, found in zip(candidates, seen, strict=True) if found]


def _as_in_memory(frame: DataFrame, name: str, values: pd.Series) -> list[Any]:
    """`values` of column `name` as the in-memory features hold them, for a note's examples.

    An int column with a missing value is floats there (7.0, not 7), as pandas reads it from Parquet and
    from Spark's batches: one more query, for a note only.
    """
    from pyspark.sql import types as T  # noqa: N812

    integer = isinstance(frame.schema[name].dataType, T.IntegralType)
    if integer and frame.filter(spark_column(name).isNull()).limit(1).count():
        return [float(v) for v in values]
    return list(values)


#: ``percentile_approx``'s accuracy for the accounts' typical order value (`warn_money_unit_spark`): its
#: median is within 1/100,000 of the accounts in rank of the exact one, and exact on fewer than 50,000.
ORDER_VALUE_ACCURACY = 100_000


def typical_order_value_spark(frame: DataFrame, *, settled: bool = False) -> tuple[float | None, int]:
    """The median positive, finite ``monetary`` of `frame`'s rows and how many such rows, in one aggregate.

    An approximate percentile (``percentile_approx`` at `ORDER_VALUE_ACCURACY`), taken from both ends so
    that an even count averages the two middle values as `numpy.median` does; only two numbers and a
    count reach the driver. `settled` rounds them as `kamml.features.build.settle` rounds the in-memory
    features (it keeps order, so the median of the settled values is the settled median).
    """
    from pyspark.sql import functions as F  # noqa: N812

    value = F.col("monetary").try_cast("double")  # as `positive_monetary`: text that is no number is none
    kept = frame.select(value.alias("m")).filter(~F.isnan("m") & (F.col("m") > 0) & (F.col("m") < math.inf))
    row = kept.agg(
        F.count("m").alias("n"),
        F.percentile_approx("m", 0.5, ORDER_VALUE_ACCURACY).alias("low"),
        F.percentile_approx(-F.col("m"), 0.5, ORDER_VALUE_ACCURACY).alias("high"),
    ).first()
    if row is None or not row["n"]:
        return None, 0
    middle = np.array([row["low"], -row["high"]], dtype=np.float64)
    if settled:
        middle = settle(middle)
    low, high = float(middle[0]), float(middle[1])
    return (low if low == high else float(np.mean([low, high]))), int(row["n"])


def warn_money_unit_spark(
    bundle: ModelBundle,
    features: DataFrame,
    data: Any = None,
    cutoff: pd.Timestamp | None = None,
    config: Config | None = None,
) -> float | None:
    """`kamml.jobs.score.warn_money_unit` on Spark: amounts in another unit than at training are warned.

    A Spark job scoring amounts in cents for a model trained in dollars said nothing. The median positive
    ``monetary`` of the accounts scored (`typical_order_value_spark`, approximate) goes to the in-memory
    rule and message (`kamml.jobs.score.warn_order_value`). `features` are the rows scored: their own
    column when given as a frame or a Parquet path; for a Dataset (`data`, at `cutoff`), whose features
    are lazy, the rfm group alone is computed (one group-by of the transactions, no join): only accounts
    with repeat purchases have a positive ``monetary``, the same ones and values as in the features.
    """
    if kept_order_value(bundle) is None or "monetary" not in features.columns:
        return None
    settled = data is not None
    if data is not None:
        ctx = feature_context(data, cutoff, bundle.scoring_config(config))
        by_account = ctx.rows.group_by("account_id").aggregate(**rfm.aggregates(ctx, ctx.rows))
        features = to_spark(by_account.select(monetary=rfm.columns(ctx, by_account)["monetary"]))
    typical, accounts = typical_order_value_spark(features, settled=settled)
    return None if typical is None else warn_order_value(bundle, typical, accounts)


def _check_attributes(
    data: Any, bundle: ModelBundle, needed: list[str], cut: pd.Timestamp, config: Config | None
) -> None:
    """The in-memory job's checks of the accounts' attributes, on a Dataset loaded on Spark.

    Text in a numeric attribute is refused; an attribute that lost its values warns and one with
    values the model never saw is noted, both on the attributes of the accounts scored, computed
    once (cached on the engine) for the two.
    """
    check_attribute_types_spark(data, bundle, cut, config)
    told = warn_empty_tables(data, needed)
    if not _lost_wanted(bundle, told) and not _fitted_levels(bundle):
        return
    attributes = scored_attributes(data, bundle, cut, config)
    if attributes is None:
        return
    with attributes.cache() as scored:
        warn_lost_attributes(data, bundle, told, cut, config, scored=scored)
        note_unseen_levels_spark(data, bundle, cut, config, scored=scored)


def _explain_threshold(rows: DataFrame, shared: Any, top: int, weights: Any) -> float | None:
    """The value at stake of the `top`-th account (drivers are named at or above it); None for all.

    One pass of the three models without drivers (`explain_priority` of their scores, as in memory);
    only the `top` largest stakes reach the driver.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    def values(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = _bundle_from_json(shared.value)
        with told_to_driver():
            for batch in batches:
                if not batch.empty:
                    features = settle_frame(batch.drop(columns="_owner"))
                    scores = score_frame(scorer, features, top_drivers=0)
                    yield pd.DataFrame({"stake": explain_priority(scores, weights)})

    schema = T.StructType([T.StructField("stake", T.DoubleType())])
    best = rows.mapInPandas(values, schema).orderBy(F.desc("stake")).limit(top)
    best = best.agg(F.min("stake"), F.count("stake"))
    lowest, count = best.first() or (None, 0)
    return None if lowest is None or count < top else float(lowest)


def score_frame_spark(
    model: str | LoadedModel | ModelBundle,
    data: Any,
    cutoff: Any,
    config: Config | None = None,
    *,
    top_drivers: int = 3,
    explain_top: int | None = EXPLAIN_TOP,
) -> DataFrame:
    """The scores table as a lazy Spark DataFrame (columns of `kamml.jobs.score.SCORE_COLUMNS`).

    Parameters are those of `score_spark` without the output folder. An ``owner`` column among the
    features (or in the Dataset's accounts table) is passed through; otherwise owner is null. With
    `explain_top`, the value threshold is computed here (one Spark job); the frame itself stays lazy.
    """
    from pyspark.sql import functions as F  # noqa: N812

    # as in memory: a negative count was taken as 0, and True as 1
    top_drivers = whole_count(top_drivers, "top_drivers", 0)
    explain_top = None if explain_top is None else whole_count(explain_top, "explain_top", 0)
    if isinstance(data, str | Path):
        check_local_parquet(
            str(data), "features table", _FEATURES_HINT
        )  # before the model is loaded: a mistyped path fails at once
    loaded = resolve_model(model, config.tracking if config is not None else None)
    bundle = loaded.bundle
    # a Dataset knows its end and first purchase: the same cutoff checks as in memory
    dataset = hasattr(data, "transactions") and hasattr(data, "tables")
    cut = check_scoring_cutoff(data, cutoff) if dataset else as_cutoff(cutoff)
    session = spark_session(config)
    features = _features(session, data, cut, bundle, config)
    needed = list(bundle.feature_spec()["columns"])
    if "account_id" not in features.columns:
        raise FeatureMismatchError(["account_id"], source="the features given to score_spark")
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise FeatureMismatchError(missing, source=f"the features at {cut.date()}", present=features.columns)
    _check_feature_columns(session, features, bundle)  # before a Spark job reads a column of them
    with engine_errors(f"checking the features at {cut.date()}"):  # Spark jobs: a failure is named
        if dataset:
            _check_attributes(data, bundle, needed, cut, config)
            warn_money_unit_spark(bundle, features, data, cut, config)
        else:
            warn_money_unit_spark(bundle, features)
        # a Dataset's attributes were noted from its accounts table; every other category feature here
        note_unseen_features_spark(features, bundle, data if dataset else None, attributes=not dataset)
    if config is not None:  # as in memory: the scores follow the model's horizon and churn label
        warn_other_definition(bundle, config)
    warn_later_training(bundle, cut)  # as in memory
    owner = owner_text(features) if "owner" in features.columns else F.lit(None).cast("string")
    rows = features.select("account_id", *needed, owner.alias("_owner"))
    id_type = rows.schema["account_id"].dataType
    shared = session.sparkContext.broadcast(json.dumps(bundle.to_dict()))
    uri = loaded.resolved
    top = int(top_drivers)
    weights: dict[str, Any] | None = None  # a plain dict, shipped to the workers
    if config is not None:
        weights = {str(part): weight for part, weight in config.allocation.weights.items()}
    threshold = None
    if top > 0 and explain_top is not None:
        with engine_errors(f"finding the {explain_top:,} accounts with the most value at stake to explain"):
            threshold = (
                _explain_threshold(rows, shared, int(explain_top), weights)
                if explain_top > 0
                else float("inf")
            )
        if threshold is not None:
            log.info("naming drivers for accounts with a value at stake >= %.6g", threshold)

    def score_batches(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = _bundle_from_json(shared.value)
        with told_to_driver():  # a kamml error reaches the driver as itself
            for batch in batches:
                if batch.empty:
                    continue
                owners = batch.pop("_owner")
                settle_frame(batch)  # as the in-memory path's features: bit-identical scores
                scores = score_frame(scorer, batch, top_drivers=top if threshold is None else 0)
                if threshold is not None:
                    chosen = np.flatnonzero(explain_priority(scores, weights) >= threshold)
                    if chosen.size:  # drivers only: the models are not run again
                        named = scorer.drivers(batch.iloc[chosen], top=top)
                        rows = scores.index[chosen]  # by position: the answer keeps the batch's index
                        scores.loc[rows, "drivers"] = np.asarray(named, dtype=object)
                scores["cutoff"] = cut.to_datetime64()
                scores["model_uri"] = uri
                scores["drivers"] = scores["drivers"].astype(object)
                owned = owners.to_numpy(dtype=object)
                scores["owner"] = owner_column(owned)  # as in memory: "202.0" is "202"
                yield scores[list(SCORE_COLUMNS)]

    return rows.mapInPandas(score_batches, _score_schema(id_type))


def score_spark(
    model: str | LoadedModel | ModelBundle,
    data: Any,
    cutoff: Any,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    top_drivers: int = 3,
    explain_top: int | None = EXPLAIN_TOP,
) -> str:
    """Score every account on Spark and write the scores table as Parquet parts, atomically.

    Parameters
    ----------
    model : str, LoadedModel or ModelBundle
        Any URI `kamml.tracking.load_model` accepts (``models:/name@champion`` ...; looked up in
        `config`'s tracking store when a config is given), loaded once on the driver, or a bundle in
        memory; executors get the bundle itself, not the URI.
    data : Dataset, pyspark DataFrame, str or Path
        A `kamml.data.Dataset` loaded with ``engine: {name: spark}`` (features are built in Spark at
        `cutoff` with the model's feature specification), a Spark DataFrame of feature rows, or the path
        of a features Parquet file or folder (as `kamml.features.write_features` writes) with an
        ``account_id`` column and every column of the model's feature specification.
    cutoff : date-like
        The scoring date written in the ``cutoff`` column (and the feature date for a Dataset).
    out_dir : str or Path
        Folder of Parquet parts to write (any Hadoop path: local, ``hdfs://``, ``dbfs:/``). Written to
        a hidden sibling folder first and renamed into place.
    config : Config, optional
        Engine settings (used when no SparkSession is active) and data settings.
    top_drivers : int, default 3
        How many drivers are named per account and model.
    explain_top : int or None, default 20_000
        Name drivers only for the accounts with the most value at stake, as `kamml.jobs.score.score`
        does (`explain_priority`; TreeSHAP costs about 12 predictions per row): the stake of the N-th
        account is found in one extra pass of predictions, and accounts at or above it are explained
        (ties at that stake are all explained). None explains every account.

    Returns
    -------
    str
        The folder written. Its rows equal those of `kamml.jobs.score.score` on the same data (floats
        to rounding), in no particular order.

    Raises
    ------
    kamml.errors.DataError
        When a features path is missing ("features table not found"), not Parquet, or unreadable by Spark.
    """
    t0 = time.perf_counter()
    inputs = dict(getattr(data, "inputs", None) or {})
    if isinstance(data, str | Path):
        inputs["features"] = data
    check_not_local_input(out_dir, inputs)  # before any work, as `kamml.jobs.score.score_to_file`
    frame = score_frame_spark(model, data, cutoff, config, top_drivers=top_drivers, explain_top=explain_top)
    with engine_errors(f"scoring the accounts into {out_dir}"):  # Spark's job runs here: a failure is named
        target = write_atomic(frame, out_dir)
    log.info("scored on Spark into %s in %.1f s", target, time.perf_counter() - t0)
    return target


def scores_totals(path: str | Path, config: Config | None = None) -> tuple[int, float, float, str]:
    """Accounts, total clv, mean p_churn and model URI of a scores folder: the line `kamml score` prints.

    One Spark job reading three columns of the parts just written (the scoring job itself never brings
    a row to the driver). A part removed or damaged under it is an `EngineError` naming the folder.
    """
    from pyspark.sql import functions as F  # noqa: N812

    with engine_errors(f"reading the totals of the scores {path}"):
        frame = spark_session(config).read.parquet(str(path))
        row = frame.agg(F.count(F.lit(1)), F.sum("clv"), F.avg("p_churn"), F.first("model_uri")).first()
    count, clv, churn, uri = row if row is not None else (0, None, None, None)
    return int(count), float(clv or 0.0), float("nan") if churn is None else float(churn), str(uri or "")
