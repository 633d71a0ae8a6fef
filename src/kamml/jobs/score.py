"""Batch scoring: features for every account at a cutoff, a model applied in chunks, the scores table.

The model comes from any URI `kamml.tracking.load_model` accepts. Features are rebuilt with the model's
own feature specification (windows, groups, time unit, horizon), so a model never meets columns computed
differently from those it learned on; a model needing columns the data cannot give (a referral model on
data without referrals) is refused with the list of columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kamml.allocation.allocate import owner_column
from kamml.allocation.stake import stake_parts
from kamml.allocation.summary import accounts_text
from kamml.config import Config
from kamml.data import Dataset
from kamml.data.quality import N_EXAMPLES, plain_examples
from kamml.errors import ConfigError, FeatureMismatchError, ModelError, Problem, SchemaError
from kamml.features import build_features
from kamml.features._context import check_scoring_cutoff
from kamml.features.catalogue import describe
from kamml.io import NUMBER_PATTERN, check_output_path, write_table
from kamml.models._lgbm import (
    CATEGORY_RULE,
    DATED_CATEGORY_REASON,
    ModelInputError,
    check_count,
    dated_dtype,
    not_categories,
    unseen_levels,
)
from kamml.models.bundle import ModelBundle, positive_monetary
from kamml.progress import track
from kamml.text import counted
from kamml.tracking import LoadedModel, resolve_model

__all__ = [
    "EXPLAIN_TOP",
    "SCORE_COLUMNS",
    "account_owners",
    "explain_priority",
    "indexed_by_account",
    "score",
    "score_to_file",
    "whole_count",
]

log = logging.getLogger(__name__)

#: Accounts whose drivers a batch scoring names by default (those with the most value at stake).
EXPLAIN_TOP = 20_000

#: The scores table of DESIGN §10, then kamml's extras (drivers in words, owner, the fitted effort
#: response's scale and uplift per account, and the horizon in days the predictions are over, the
#: model's, so that `kamml allocate` needs no config to know it): the keys, then every
#: `kamml.models.bundle.PREDICTION_COLUMNS` in the contract's order (tested). horizon_days comes last, so
#: the columns before it keep their places.
SCORE_COLUMNS = (
    "account_id",
    "cutoff",
    "clv",
    "p_churn",
    "referral_value",
    "p_alive",
    "expected_purchases",
    "model_uri",
    "drivers",
    "owner",
    "effort_scale",
    "effort_uplift",
    "horizon_days",
)


def explain_priority(scores: pd.DataFrame, weights: Mapping[Any, Any] | None = None) -> np.ndarray:
    """Which accounts get drivers first: their value at stake as the allocation weighs it.

    The stake (retention, growth and referral parts, `kamml.allocation.stake.stake_parts` with
    ``allocation.weights``, the defaults when None) is what the plan's hours and tiers follow, so the
    explained accounts are the ones the plan puts first; ranking by clv alone left strategic accounts
    without drivers in large books while explaining high-value accounts the plan barely serves. A
    missing stake comes last.
    """
    stake = np.asarray(stake_parts(scores, weights, check=False)["stake"], dtype=float)  # NaN: missing
    return np.where(np.isnan(stake), -np.inf, stake)  # last on both engines (Spark sorts NaN first)


#: Feature groups built from one optional table, and what the group's columns are when it has no rows.
_GROUP_TABLES = {
    "referral": ("referrals", "0 for every account, as if none had referred anyone"),
    "effort": ("activities", "0 for every account, as if none had any sales hours"),
    "static": ("accounts", "missing for every account, as if none had attributes or an owner"),
}


def warn_empty_tables(data: Dataset, columns: Sequence[str]) -> list[str]:
    """Warn when a table behind some of the model's features is given but holds no rows.

    Without the table the model's columns are missing and scoring is refused; with an empty one (a
    header-only export) they are built as 0 for every account (no referrals, no hours logged), which
    moves the scores: on a 2,000-account book total value rose 12 % with no word but a data-quality note.
    A header-only accounts table leaves the attributes and account ages missing (a 300-account book's
    total value fell 19 %). Returns the columns warned about.
    """
    told: list[str] = []
    for group, (table, empty_means) in _GROUP_TABLES.items():
        stats = data.quality.tables.get(table)
        if stats is None or stats.rows > 0:
            continue
        used = [c for c in columns if _group(c) == group]
        told += used
        if used:
            log.warning(
                "the %s table has no rows, so the model's %s features (%s) are %s: if the export lost "
                "its rows, give them (or leave the table out, and scoring is refused for the missing "
                "features)",
                table,
                group,
                ", ".join(used[:4]) + (", ..." if len(used) > 4 else ""),
                empty_means,
            )
    return told


def check_attribute_types(bundle: ModelBundle, features: pd.DataFrame) -> None:
    """A `SchemaError` naming ``accounts.<column>`` when an attribute the model read as numbers is text now.

    One value such as 'n/a' turns an accounts column into text; the model then stopped with "column
    'attr_size' must be numeric as it was in fit" (exit 5, a model error), without the table, the rows
    or the values to fix.
    """
    problems = []
    for name in numeric_attributes(bundle, features.columns):
        column = features[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        values = column.astype(object)
        text = values[values.notna()].astype(str)
        bad = text[~text.str.match(NUMBER_PATTERN)]  # "nan" is a missing number, as on Spark
        if len(bad):  # text that reads as numbers throughout is taken by the model's own cast
            problems.append(attribute_problem(name, len(bad), bad.drop_duplicates().head(5)))
    if problems:
        raise SchemaError(problems)


def check_category_types(bundle: ModelBundle, features: pd.DataFrame) -> None:
    """A `SchemaError` naming each category feature that holds lists, dicts, dates, durations or bytes.

    Fit refuses dates and bytes (a date column, levels the model cannot save); scoring read each as an
    unseen level, a missing value, and the models refuse all of them with a model error (exit 5). The
    problem is the one Spark's schema check names (`kamml.spark.score.feature_type_problems`), with the
    rows and values found here; a column typed as dates with no date in it is refused by its type, as
    Spark refuses a timestamp column.
    """
    problems = []
    for name in getattr(bundle.clv, "categories_", None) or {}:
        if name in features.columns:
            problem = category_type_problem(name, features[name])
            if problem is not None:
                problems.append(problem)
    if problems:
        raise SchemaError(problems)


def category_type_problem(name: str, column: pd.Series) -> Problem | None:
    """The `check_category_types` problem of category feature `name`, None when its values are categories."""
    found = not_categories(column)
    if found is None:
        dtype = dated_dtype(column)  # every value missing (NaT): no row to name, the type is the fault
        return (
            None
            if dtype is None
            else Problem("features", name, CATEGORY_RULE.format(type=dtype) + DATED_CATEGORY_REASON)
        )
    rows, reason = found
    values = [v.tolist() if isinstance(v, np.ndarray) else v for v in column.iloc[rows]]
    kinds = " and ".join(sorted({type(v).__name__ for v in values}))
    distinct = list({repr(v): v for v in values}.values())  # lists and dicts cannot be hashed
    return Problem(
        "features", name, CATEGORY_RULE.format(type=kinds) + reason, len(rows), plain_examples(distinct)
    )


def numeric_attributes(bundle: ModelBundle, columns: Iterable[str]) -> list[str]:
    """The model's ``attr_*`` features among `columns` that it learned as numbers (not as categories)."""
    categorical = set(getattr(bundle.clv, "categories_", None) or {})
    present = set(columns)
    return [
        name
        for name in bundle.feature_spec()["columns"]
        if name.startswith("attr_") and name not in categorical and name in present
    ]


def attribute_problem(feature: str, n_rows: int, examples: Iterable[Any]) -> Problem:
    """The `Problem` of `check_attribute_types`: text in the accounts column behind `feature`."""
    rule = "not a number, while the model in use learned this attribute as numbers"
    return Problem("accounts", feature.removeprefix("attr_"), rule, n_rows, plain_examples(examples))


#: Fewer scoring rows than this say little about a column's coverage (a CRM's handful of accounts).
COVERAGE_MIN_ROWS = 50


def warn_other_definition(bundle: ModelBundle, config: Config) -> None:
    """Warn when the model answers another question than the config asks: its horizon or churn label.

    The champion trained before a config changed its ``models.churn_label`` kept scoring with the old
    definition, and nothing said so (a bundle saved before it recorded its label is not checked). A
    ``time.horizon_days`` the config sets that differs from the model's was scored at the model's
    horizon without a word, while `kamml allocate` with that config refuses the scores.
    """
    label = bundle.meta.get("churn_label")
    if label is not None and label != config.models.churn_label:
        log.warning(
            "the model was trained with models.churn_label %s, but the config says %s: its p_churn "
            "(and the plan's retention stakes) follow the model's definition; train a model with this "
            "config's label (kamml train), which the registry promotes for that reason",
            label,
            config.models.churn_label,
        )
    set_here = "horizon_days" in config.time.model_fields_set
    if set_here and bundle.horizon_days != config.time.horizon_days:
        log.warning(
            "the model predicts over %d days, but the config's time.horizon_days is %d: the scores are "
            "over %d days (their horizon_days column), and allocating them with this config is refused; "
            "score with a model of this horizon, or set the config's horizon to the model's",
            bundle.horizon_days,
            config.time.horizon_days,
            bundle.horizon_days,
        )


def outcomes_end(bundle: ModelBundle) -> pd.Timestamp | None:
    """The (exclusive) end of the outcomes the model learned from: its latest snapshot plus its label window.

    None for a bundle that does not record its training snapshots.
    """
    snapshots = bundle.meta.get("snapshots") or []
    if not snapshots:
        return None
    latest = max(pd.Timestamp(s) for s in snapshots)
    return latest + pd.Timedelta(days=bundle.train_horizon_days)


def warn_later_training(bundle: ModelBundle, cutoff: pd.Timestamp) -> None:
    """Warn when the model learned from outcomes after the scoring cutoff (a later week's champion).

    A weekly job rerun for an earlier week after a retrain (``models:/NAME@champion``) scored that week
    with a model whose training labels ran past it, without a word: not the week's own scores, and from a
    model that knew what followed the cutoff.
    """
    learned = outcomes_end(bundle)
    if learned is None or cutoff >= learned:
        return
    log.warning(
        "the model learned from outcomes up to %s (exclusive), after the cutoff %s: it was trained on what "
        "followed the cutoff, so these are not the scores a model of that date gave; to repeat an "
        "earlier week's scores, score with the version that made them (their model_uri), not a later "
        "champion",
        learned.date(),
        cutoff.date(),
    )


def unseen_level_notes(bundle: ModelBundle, features: pd.DataFrame) -> list[Problem]:
    """One note per category column with values the models never saw in training (a new segment).

    The models score them as a missing value, as LightGBM does with a level outside its splits: right
    for a new level or two, never an error, but it moves those accounts' scores, and nothing said so.
    The note names the column (``accounts.<name>`` for an attribute), the accounts and their most
    frequent values.
    """
    notes = []
    for name, levels in (getattr(bundle.clv, "categories_", None) or {}).items():
        if name not in features.columns:
            continue
        column = features[name]
        unseen = unseen_levels(column, levels, name)
        if not unseen.any():
            continue
        given = column[unseen].astype("float64" if _ints_with_missing(column) else object)
        values = examples_by_count(given.astype(object).value_counts(sort=False))
        notes.append(unseen_level_note(name, levels, int(unseen.sum()), values))
    return notes


def _ints_with_missing(column: pd.Series) -> bool:
    """Whether `column` is a nullable int column holding a missing value (pandas' Int64 from Parquet).

    Its values are noted as floats (7.0, not 7), as the features built from the tables and Spark's
    batches hold such a column (`kamml.spark.score`'s notes say the same words).
    """
    dtype = column.dtype
    nullable = isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(dtype)
    return bool(nullable and column.hasnans)


def examples_by_count(counts: pd.Series) -> list[Any]:
    """A note's examples from `counts` (value: rows): most frequent first, values of one count by their text.

    pandas kept values of one count in their order of appearance and Spark in its own value order, so
    the two engines named other examples for the same rows; the text decides the same on both.
    """
    if len(counts) > N_EXAMPLES:  # the ties at the last place stay: the text chooses among them
        counts = counts[counts >= counts.nlargest(N_EXAMPLES).iloc[-1]]
    ordered = sorted(
        zip(counts.index, counts.to_numpy(), strict=True), key=lambda item: (-item[1], str(item[0]))
    )
    return [value for value, _ in ordered[:N_EXAMPLES]]


def unseen_level_note(name: str, levels: Sequence[Any], n_rows: int, values: Iterable[Any]) -> Problem:
    """The note of `unseen_level_notes` for feature `name`: `n_rows` hold `values` (most frequent first)."""
    known = ", ".join(map(repr, levels[:5])) + (", ..." if len(levels) > 5 else "")
    rule = (
        "a value the models never saw in training, scored as a missing value (LightGBM's branch for "
        f"levels outside its splits) until a model is trained on it; training saw "
        f"{counted(len(levels), 'level')}: {known}"
    )
    attribute = name.startswith("attr_")
    table, column_name = ("accounts", name.removeprefix("attr_")) if attribute else ("features", name)
    return Problem(table, column_name, rule, n_rows, plain_examples(values))


def note_unseen_levels(bundle: ModelBundle, features: pd.DataFrame, data: Dataset | None) -> list[Problem]:
    """Log `unseen_level_notes` once per column and add them to the data's quality notes (the report's).

    A note already among them (the same data scored again) is not added twice. Returns the notes.
    """
    notes = unseen_level_notes(bundle, features)
    record_unseen_levels(notes, f"{len(features):,} accounts scored", data)
    return notes


def record_unseen_levels(notes: Sequence[Problem], of: str, data: Any) -> None:
    """Log each unseen-level note (its rows out of `of`) and add it to `data`'s quality notes, once."""
    quality = getattr(data, "quality", None)
    for note in notes:
        log.warning(
            "%s.%s: %s of %s hold %s (e.g. %s)",
            note.table,
            note.column,
            f"{note.n_rows:,}",
            of,
            note.rule,
            ", ".join(map(repr, note.examples[:3])),
        )
        if quality is not None and note not in quality.notes:
            quality.notes.append(note)


def warn_lost_features(bundle: ModelBundle, features: pd.DataFrame, told: Sequence[str] = ()) -> list[str]:
    """Warn when a feature the models learned from has far fewer values now than in training.

    An accounts column emptied by an export (every ``size`` null) scores every account as "size
    unknown", which the trees learned from few accounts or none: on the demo's world total value moved
    by -9 % without a word. The rule is `lost_features`'; columns `told` (an empty table's,
    `warn_empty_tables`) are not told twice. Returns those flagged.
    """
    coverage = bundle.meta.get("coverage") or {}
    shares = {c: float(features[c].notna().mean()) for c in coverage if c in features.columns}
    return warn_lost(lost_features(coverage, shares, len(features), told), len(features), "accounts scored")


#: How far the accounts' typical order value may sit from the training's before amounts read as being in
#: another unit (`warn_money_unit`): an order of magnitude, where prices and mixes rarely go in months,
#: while cents for dollars or thousands for units go a hundred or a thousand times.
MONEY_UNIT_FACTOR = 10.0


def warn_money_unit(bundle: ModelBundle, features: pd.DataFrame) -> float | None:
    """Warn when the accounts' typical order value is 10 times the training's or more, or a tenth or less.

    Amounts in another unit (a CRM export switched to cents) were scored without a word: the trees'
    thresholds are in the training's money, so every account read off their scale (total value x16, one
    account x37, on a batch-job audit's world). The typical order value is the median positive
    `monetary` (repeat buyers), kept in the bundle's meta at training (`order_value`); fewer than
    `COVERAGE_MIN_ROWS` such accounts, or a bundle saved without it, tell nothing. Returns the ratio when
    warned. The rule and message are `warn_order_value`'s, which the Spark job shares.
    """
    if kept_order_value(bundle) is None:
        return None
    values = positive_monetary(features)
    if values.size == 0:
        return None
    return warn_order_value(bundle, float(np.median(values)), int(values.size))


def kept_order_value(bundle: ModelBundle) -> float | None:
    """The typical order value the bundle kept at training (``meta["order_value"]``), None without one."""
    kept = bundle.meta.get("order_value")
    if not isinstance(kept, (int, float)) or not 0 < kept < np.inf:
        return None
    return float(kept)


def warn_order_value(bundle: ModelBundle, typical: float, accounts: int) -> float | None:
    """`warn_money_unit`'s rule and message, given the accounts' typical order value and their number.

    Shared by the in-memory job and the Spark one (`kamml.spark.score.warn_money_unit_spark`), which
    takes the median on the cluster. Returns the ratio to the training's when warned, else None.
    """
    kept = kept_order_value(bundle)
    if kept is None or accounts < COVERAGE_MIN_ROWS or not 0 < typical < np.inf:
        return None
    ratio = typical / kept
    if 1 / MONEY_UNIT_FACTOR < ratio < MONEY_UNIT_FACTOR:
        return None
    log.warning(
        "transactions.amount: the accounts' typical order value is %s, %.3g times the %s the model learned "
        "from at training: amounts in another unit (cents for dollars, thousands for units?) put every "
        "account off the scale the models know; give the amounts in the training's unit, or train again",
        f"{typical:,.4g}",
        ratio,
        f"{kept:,.4g}",
    )
    return ratio


def lost_features(
    coverage: Mapping[str, float], shares: Mapping[str, float], rows: int, told: Sequence[str] = ()
) -> list[tuple[str, float, float]]:
    """(column, training share, share now) of each column whose share of values fell too far.

    Flagged: a column with a value on at least 5 % of the latest training snapshot's accounts
    (`coverage`, the bundle's ``meta["coverage"]``, `kamml.models.bundle.feature_coverage`) and on none
    now, or on at least 20 % then and under a quarter of that share now. Bundles saved before the
    shares existed, columns without a share now, and batches under `COVERAGE_MIN_ROWS` rows are not
    checked.
    """
    if rows < COVERAGE_MIN_ROWS:
        return []
    lost = []
    for column, was in coverage.items():
        now = shares.get(column)
        if now is None or column in told:
            continue
        if (was >= 0.05 and now == 0.0) or (was >= 0.2 and now < was / 4):
            lost.append((column, was, now))
    return lost


def warn_lost(lost: Sequence[tuple[str, float, float]], rows: int, counted: str) -> list[str]:
    """Log one warning per `lost_features` column, naming where its values come from; returns the names."""
    for column, was, now in lost:
        source = (
            f"accounts.{column.removeprefix('attr_')}"
            if column.startswith("attr_")
            else f"the {_GROUP_TABLES.get(_group(column) or '', ('transactions',))[0]} table"
        )
        log.warning(
            "feature %s has a value on %.1f %% of the %s %s, against %.1f %% in the model's "
            "latest training snapshot: the models score the others as if unknown, which moves their "
            "scores; check %s (an export that lost the column's values?)",
            column,
            100 * now,
            f"{rows:,}",
            counted,
            100 * was,
            source,
        )
    return [column for column, _, _ in lost]


def _group(column: str) -> str | None:
    """The catalogue group of a feature column (None for one the catalogue does not know)."""
    try:
        return describe(column)[0]
    except KeyError:
        return None


def account_owners(data: Dataset, ids: pd.Index) -> pd.Series | None:
    """The owner (sales rep) per account from the accounts table, when it has one.

    Feature rows given with ids of another type than the table's (text "450" for the number 450) match
    no account: every score had no owner, without a word; that is warned about, naming both types.
    """
    accounts = data.tables.get("accounts")
    if accounts is None or "owner" not in accounts.columns:
        return None
    owners = accounts.select("account_id", "owner").to_pandas().drop_duplicates("account_id")
    found = owners.set_index("account_id")["owner"].reindex(ids)
    if len(ids) and owners["owner"].notna().any() and not ids.isin(owners["account_id"]).any():
        log.warning(
            "features.account_id matches no accounts.account_id (features: %s ids such as %r; accounts: %s "
            "ids such as %r): every account is scored without an owner; give the rows the accounts' ids",
            ids.dtype,
            ids[0],
            owners["account_id"].dtype,
            owners["account_id"].iloc[0],
        )
    return found


def whole_count(value: Any, name: str, minimum: int) -> int:
    """`value` as an int >= `minimum`, else a ConfigError naming `name` (not True, not 2.5).

    `score`'s ``explain_top=-1`` named drivers for every account but one, and ``chunk_size=0`` failed
    with a ZeroDivisionError.
    """
    try:
        return check_count(value, name, minimum)  # the rule of the models' top_drivers
    except ModelInputError:
        raise ConfigError(f"{name} must be a whole number, {minimum} or more (got {value!r})") from None


def indexed_by_account(features: pd.DataFrame) -> pd.DataFrame:
    """Feature rows given to `score` indexed by account_id: an ``account_id`` column becomes the index.

    The scores take their ids from the index: rows with the ids in a column (as `write_features` writes
    them) were scored as accounts 0, 1, 2 ... with those accounts' owners. Rows with no ids are refused,
    and so are null or duplicated ids: one account's rows given twice were scored twice, a scores table
    `kamml allocate` refuses after the whole scoring.
    """
    if not isinstance(features, pd.DataFrame):
        raise ModelError(f"features must be a pandas DataFrame of rows, got {type(features).__name__}")
    if "account_id" in features.columns:
        features = features.set_index("account_id")
    if features.index.name != "account_id":
        rule = (
            "missing: give the feature rows' ids as their index named account_id (as build_features "
            "returns them) or as an account_id column"
        )
        raise SchemaError([Problem("features", "account_id", rule)])
    ids = pd.Series(features.index.to_numpy())
    null = ids.isna()
    duplicated = ids.duplicated(keep=False) & ~null
    problems = [Problem("features", "account_id", "null id", int(null.sum()))] if null.any() else []
    if duplicated.any():
        examples = plain_examples(ids[duplicated].drop_duplicates())
        problems.append(Problem("features", "account_id", "duplicated id", int(duplicated.sum()), examples))
    if problems:
        raise SchemaError(problems)
    return features


def score(
    model: str | LoadedModel | ModelBundle,
    data: Dataset,
    cutoff: Any,
    config: Config | None = None,
    *,
    chunk_size: int = 200_000,
    top_drivers: int = 3,
    explain_top: int | None = EXPLAIN_TOP,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scores table for every account known before `cutoff`: with transactions, or an accounts row.

    Parameters
    ----------
    model : str, LoadedModel or ModelBundle
        A model URI (``models:/name@champion``, ``models:/name/3``, ``runs:/...``, a local folder; looked
        up in `config`'s tracking store when a config is given), a loaded model, or a bundle in memory.
    data : kamml.data.Dataset
        Validated tables.
    cutoff : date-like
        Scoring date: features use only data before it.
    config : Config, optional
        Engine, data and tracking settings; the features and time settings come from the model.
    chunk_size : int, default 200_000
        Rows per predict call, 1 or more (bounds the memory of explanations).
    top_drivers : int, default 3
        How many drivers are named per account and model (value, churn, influence).
    explain_top : int or None, default 20_000
        Name drivers only for this many accounts (0 or more) with the most value at stake
        (`explain_priority`: the ones a team works); the others get an empty ``drivers``. None explains
        every account.
        LightGBM's TreeSHAP contributions cost about 50 times a prediction, so on a million accounts
        this is most of the scoring time.
    features : pandas.DataFrame, optional
        Feature rows already built at `cutoff` with the model's specification (the training job has
        them), indexed by account_id or with an account_id column (`indexed_by_account`); built here
        when omitted.
    """
    chunk_size = whole_count(chunk_size, "chunk_size", 1)
    top_drivers = whole_count(top_drivers, "top_drivers", 0)
    explain_top = None if explain_top is None else whole_count(explain_top, "explain_top", 0)
    if features is not None:  # bad rows are refused before the model loads
        features = indexed_by_account(features)
    loaded = resolve_model(model, config.tracking if config is not None else None)
    bundle = loaded.bundle
    cut = check_scoring_cutoff(data, cutoff)
    t0 = time.perf_counter()
    given = features is not None
    if features is None:
        features = build_features(data, cut, bundle.scoring_config(config))
    needed = bundle.feature_spec()["columns"]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise FeatureMismatchError(
            missing, source=f"the features built from the data at {cut.date()}", present=features.columns
        )
    told = warn_empty_tables(data, needed)
    if config is not None:
        warn_other_definition(bundle, config)
    warn_later_training(bundle, cut)
    check_attribute_types(bundle, features)
    check_category_types(bundle, features)
    warn_lost_features(bundle, features, told)
    warn_money_unit(bundle, features)
    note_unseen_levels(bundle, features, data)
    # rows given (`kamml run` passes the training job's) took no time here: "in 0.0 s" read as a fault
    how = "given, not built again" if given else f"in {time.perf_counter() - t0:.1f} s"
    log.info("features for %s at %s %s", accounts_text(len(features)), cut.date(), how)
    rows = features  # the bundle takes its columns by name: no copy of a million rows
    n_chunks = max(1, -(-len(rows) // chunk_size))
    explain_all = explain_top is None or explain_top >= len(rows)
    first_top = top_drivers if explain_all else 0
    parts = [
        loaded.predict(rows.iloc[i * chunk_size : (i + 1) * chunk_size], top_drivers=first_top)
        for i in track(range(n_chunks), n_chunks, f"scoring {accounts_text(len(rows))}")
    ]
    scores = pd.concat(parts, ignore_index=True) if parts else loaded.predict(rows)
    if not explain_all and top_drivers > 0 and explain_top:
        weights = config.allocation.weights if config is not None else None
        top = np.argsort(-explain_priority(scores, weights), kind="stable")[:explain_top]
        named = bundle.drivers(rows.iloc[top], top=top_drivers)  # the models are not run again
        scores.loc[top, "drivers"] = np.asarray(named, dtype=object)
        log.info("named drivers for the %s accounts with the most value at stake", f"{len(top):,}")
    scores["account_id"] = features.index.to_numpy()
    scores["cutoff"] = cut
    scores["model_uri"] = loaded.resolved
    scores["horizon_days"] = np.int64(bundle.horizon_days)  # the model's own, not the config's
    owners = account_owners(data, features.index)
    scores["owner"] = owner_column(owners if owners is not None else np.full(len(scores), None, object))
    log.info("scored %s accounts in %.1f s", f"{len(scores):,}", time.perf_counter() - t0)
    return scores[list(SCORE_COLUMNS)]


def score_to_file(
    model: str | LoadedModel | ModelBundle,
    data: Dataset,
    cutoff: Any,
    out: str | Path,
    config: Config | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """`score`, written atomically to `out` (``.parquet`` or ``.csv``): never a partial file.

    `out` is checked before any work: a writable table name, and not one of the files `data` was read
    from (`kamml.io.check_not_input`).
    """
    check_output_path(out, getattr(data, "inputs", None))
    table = score(model, data, cutoff, config, **kwargs)
    write_table(table, out)
    log.info("wrote %s", out)
    return table
