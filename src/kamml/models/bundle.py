"""The fitted model bundle: BTYD parameters, the three LightGBM models and the feature specification.

A bundle is trained on stacked snapshots (`kamml.features.build_training_frame`), predicts the scores
table's model columns from feature rows, and saves as plain files (bundle.json plus one native LightGBM
text file per model, no pickle) so that MLflow, a CRM or a batch job can load it without kamml's training
stack.

Horizons: the models are trained on label windows of `train_horizon_days` (h). When h is shorter than the
prediction horizon H (data too short to hold whole H windows before the cutoff, as in CDNOW's classic
split), predictions are carried from h to H per account with the BG/NBD model fitted at the scoring
cutoff, by two factors that are the same for every account and stored in the bundle: value by the ratio
of the population's expected purchases, sum E[X(H)] / sum E[X(h)] (`expected_purchase_ratio`), and the
probability of no purchase by an exponent, P0(H) = P0(h)^e, with e such that the population's mean P0
follows BG/NBD from h to H (`no_purchase_exponent`); referral value by how referred accounts spent after
their referral before the cutoff (`referral_ratio`: between H / h and (H / h)^2, since accounts referred
early in a longer window keep spending in it; in proportion to time without that measure). The
models rank the accounts and BG/NBD carries the population through time: per-account BG/NBD ratios
reshuffled the models' order, which on CDNOW cost value Gini, churn ROC AUC and Brier on every
calibration end tried (docs/models.md). The stretched values' spread across accounts is then moved
toward BTYD's over H, in the value model's order and keeping the total (`value_shape`, set by `anchor`,
weight sqrt(h / H) for the model's own shape: `fit_value_shape`).

Value level: the value model's total drifts when its training snapshots, at least one label window
old, are carried to the cutoff (trees do not extrapolate an ageing book). `anchor` therefore sets the
model's h-window total at the cutoff to BTYD's, refitted there, times BTYD's bias measured on the latest
training snapshot (actual over BTYD value, `btyd_bias`) when a season correction (below) tells that
window's calendar from BTYD's misfit or the window is a year or longer, else times 1: one multiplier,
`value_level`, clipped to [0.5, 2]. The model still ranks the accounts. Without a season the latest
window's bias did not tell the next window's miss on CDNOW (fifty-fifth session, docs/models.md). The churn
probability is levelled on the logit scale: one shift, `churn_shift` (|shift| <= 1), sets its mean over
the accounts with a history to BTYD's mean P(no purchase) at the cutoff plus BTYD's error on the latest
snapshot (`churn_bias`), which likewise is carried only with a season or a window of a year or more.

Season: BTYD's error on one label window shorter than a year holds that window's season (a December window's
bias applied to January put a 30-day value total 75 % too high on the synthetic world). When the data reach a
year before the latest training snapshot and four months (`kamml.evaluation.backtest.SEASON_HISTORY_DAYS`), or
one label window if longer, further back, `fit` is given the two snapshots 364 days before the cutoff and
before the latest snapshot (`season`), and the biases are corrected by the change of BTYD's error between
those two windows a year earlier: the value bias times its ratio (`seasonal_correction`), the churn bias plus
its difference. Without a season (and for windows under a year) neither bias is carried: the levels are BTYD's
own at the cutoff (`_drop_unseasoned_biases`). No README CDNOW end has such a year.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import logsumexp

from kamml.config import Config, ModelsConfig
from kamml.data.sampling import sample_ids
from kamml.errors import ConfigError, FeatureMismatchError, KammlError, ModelError, Problem
from kamml.io import atomic_path
from kamml.models._lgbm import (
    MONOTONE_METHODS,
    NO_EVAL_METRIC,
    SMALL_FRAME_ROWS,
    as_float,
    canonical_params,
    check_count,
    check_dated_categories,
    column_arrays,
    constraint_count,
    is_categorical,
    is_true,
    lightgbm_refusal,
    lightgbm_whole,
    no_autolog,
    no_metric_message,
    per_feature_counts,
    per_feature_problem,
    quiet_fatal,
    stored_number,
)
from kamml.models.btyd_features import (
    BTYD_COLUMNS,
    MIN_REPEAT_BUYERS,
    BtydFit,
    add_btyd_features,
    btyd_columns,
    check_history,
    expected_purchase_ratio,
    fit_btyd,
    no_purchase_exponent,
    rfm_arrays,
)
from kamml.models.churn import ChurnModel
from kamml.models.clv import ClvModel
from kamml.models.drivers import DRIVER_TARGETS, phrase
from kamml.models.effort import EffortResponse
from kamml.models.influence import InfluenceModel
from kamml.text import counted

__all__ = [
    "LABELS",
    "PREDICTION_COLUMNS",
    "ModelBundle",
    "add_snapshot_btyd",
    "check_model_settings",
    "check_models_section",
    "check_named_features",
    "feature_columns",
    "names_features",
    "training_features",
]

log = logging.getLogger(__name__)

#: Columns of a training frame that are targets or keys, never features.
LABELS = ("value", "purchases", "churned", "contract_lapsed", "referral_value", "referrals")
KEYS = ("account_id", "snapshot")
#: The columns `ModelBundle.predict` returns, in order: the one list the pyfunc's answer
#: (`kamml.tracking.pyfunc.OUTPUT_COLUMNS`) and the scores table (`kamml.jobs.score.SCORE_COLUMNS`) draw on.
PREDICTION_COLUMNS = (
    "clv",
    "p_churn",
    "referral_value",
    "p_alive",
    "expected_purchases",
    "effort_scale",
    "effort_uplift",
    "drivers",
    "horizon_days",
)
FORMAT_VERSION = 1
_MODELS = ("clv", "churn", "influence")
#: The value model's offset (`ClvModel` ``offset_feature``): it boosts from half the log of BTYD's value,
#: so accounts beyond the training range keep BTYD's extrapolation; ``models.clv.offset_feature: null``
#: turns it off.
CLV_OFFSET = "btyd_value"

#: Fewer accounts than this in the latest training snapshot get a warning: too few to learn from.
FEW_ACCOUNTS = 200

#: One year back, in days, for the seasonal correction: 52 weeks, so the windows keep their weekdays.
SEASON_DAYS = 364
#: The seasonal value ratio is clipped to this range, as the value level is.
SEASON_BOUNDS = (0.5, 2.0)
#: The churn model's blend partner (`ChurnModel` ``blend_feature``): BG/NBD's expected purchases over the
#: training window, blended with LightGBM's logit at a weight chosen on the held-out snapshot;
#: ``models.churn.blend_feature: null`` turns it off.
CHURN_BLEND = "btyd_expected_purchases"

#: The money features: net spend (in total, per window, per repeat purchase, in last year's label window)
#: and BTYD's expected purchases, order value and value. By default the value model's prediction never
#: falls as one of them rises (all else equal) and the churn model's never rises: LightGBM's monotone
#: constraints, chosen on the CDNOW sample and then measured on the full data (docs/models.md).
MONEY_FEATURES = re.compile(
    r"^(monetary|spend_total|spend_\d+d|spend_last_year_horizon|btyd_expected_purchases|btyd_order_value"
    r"|btyd_value)$"
)
#: Direction of each model's default constraint on the money features (none for the influence model).
_MONEY_DIRECTION = {"clv": 1, "churn": -1}


def default_monotone(name: str, features: Sequence[str]) -> dict[str, int] | None:
    """The default monotone constraints of model `name` on these feature columns (None: unconstrained)."""
    direction = _MONEY_DIRECTION.get(name)
    if direction is None:
        return None
    chosen = {f: direction for f in features if MONEY_FEATURES.match(f)}
    return chosen or None


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model features of a training or feature frame: everything but keys and labels."""
    return [c for c in frame.columns if c not in LABELS and c not in KEYS]


def training_features(columns: Sequence[str]) -> list[str]:
    """The features a bundle fits on, from the columns of the feature frames its snapshots are built of.

    `_fit_sampled` appends BTYD's columns (`add_snapshot_btyd`) and fits on all but keys and labels
    (`feature_columns`): the same list, known before any snapshot is built.
    """
    own = [c for c in columns if c not in LABELS and c not in KEYS and c not in BTYD_COLUMNS]
    return [*own, *BTYD_COLUMNS]


def check_named_features(
    cfg: Config, features: Sequence[str], categorical: Collection[str], *, influence: bool = True
) -> None:
    """A ConfigError when a models section names features the training frame will not have, or misuses one.

    ``monotone`` names (and positional ``monotone_constraints``' count), and the offset and blend
    features, were checked only as each model was fitted, after the backtest's snapshots were built:
    minutes on a large book. The fit's own check (`_lgbm_kwargs`) on the frame's `features`
    (`training_features`), before. The influence model is left out without referrals (`influence`
    False): it is not trained then, and its settings unused.
    """
    for name in ("clv", "churn", "influence") if influence else ("clv", "churn"):
        _lgbm_kwargs(cfg.models, name, features, categorical)


def names_features(cfg: Config) -> bool:
    """Whether a models section names or counts features: monotone, offset or blend ones, or constraints."""
    named = ("monotone", "offset_feature", "blend_feature")
    sections = (cfg.models.clv, cfg.models.churn, cfg.models.influence)
    return any(
        any(key in s for key in named) or "monotone_constraints" in canonical_params(s) for s in sections
    )


def sample_accounts(train: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The training rows of at most `limit` accounts, the same accounts in every snapshot (all: None).

    The accounts whose ids (as text: 947 and "947" alike, 947.0 not) hash lowest: a fixed pseudo-random
    sample, the same from run to run and from engine to engine; with the same accounts in every
    snapshot, the held-out snapshot still follows the accounts the earlier ones trained on. Training
    time falls about in proportion (LightGBM and BTYD's fits); scoring is not sampled.
    """
    if limit is None:
        return train
    if "account_id" not in train.columns:
        raise ModelError(
            "the training frame has no 'account_id' column to sample accounts by "
            "(models.max_training_accounts): build it with build_training_frame"
        )
    if train["account_id"].isna().any():
        raise ModelError(
            f"the training frame has {int(train['account_id'].isna().sum())} rows without an account_id; "
            "build it with build_training_frame"
        )
    ids = pd.Index(pd.unique(train["account_id"]))
    if len(ids) <= limit:
        return train
    sample = train[train["account_id"].isin(sample_ids(ids, limit))]
    log.info(
        "training on %s of %s accounts (%s of %s rows; models.max_training_accounts)",
        f"{limit:,}",
        f"{len(ids):,}",
        f"{len(sample):,}",
        f"{len(train):,}",
    )
    return sample


@contextlib.contextmanager
def _blaming_the_sample(limit: int) -> Iterator[None]:
    """Errors of a fit on a sample of `limit` accounts name the sample as a cause.

    A small ``models.max_training_accounts`` can leave no purchase history or no positive value to
    learn from, which the checks would otherwise blame on the data.
    """
    try:
        yield
    except KammlError as exc:
        note = (
            f" (the models trained on a sample of {limit:,} accounts, models.max_training_accounts: "
            "raise or remove it if the full data are sound)"
        )
        try:
            blamed = type(exc)(f"{exc}{note}")
        except TypeError:  # an error built from parts: the note goes with it
            exc.add_note(note.strip(" ()"))
            raise exc from exc.__cause__
        raise blamed from exc


def check_snapshot_history(train: pd.DataFrame) -> None:
    """Refuse training snapshots in which no account has bought before the cutoff: BTYD has no data there.

    A `ConfigError` names the snapshot cutoffs; it comes from a ``time.cutoff`` (or backtest cutoff) so
    early that ``time.snapshots`` steps of ``time.step_days`` reach back before the first transaction.
    """
    if train.empty or not {"frequency", "T"} <= set(train.columns):
        return
    history = train["T"].notna() & train["frequency"].notna()
    per_snapshot = history.groupby(train["snapshot"], observed=True).any()
    empty = sorted(pd.Timestamp(s) for s in per_snapshot.index[~per_snapshot.to_numpy(dtype=bool)])
    if empty:
        raise empty_snapshots_error(empty, len(per_snapshot))


def empty_snapshots_error(
    empty: Sequence[pd.Timestamp], total: int, first: pd.Timestamp | None = None
) -> ConfigError:
    """The error for training snapshots whose cutoffs come before any purchase, naming the settings.

    With `first` (the first transaction) its day is named too: how far the snapshots reach back past it.
    """
    shown = ", ".join(str(pd.Timestamp(s).date()) for s in sorted(empty))
    since = "" if first is None else f" of data whose first purchase is on {pd.Timestamp(first).date()}"
    holds, cutoffs = ("holds", "its cutoff") if len(empty) == 1 else ("hold", "their cutoffs")
    return ConfigError(
        f"{len(empty):,} of {counted(total, 'training snapshot')} {holds} no purchase history before "
        f"{cutoffs}, or a day of it ({shown}){since}: BG/NBD has nothing to fit. The snapshots step back "
        "from the cutoff by the label window (time.train_horizon_days, else time.horizon_days) and "
        "then time.snapshots - 1 steps of time.step_days, and kamml train and run backtest one "
        "time.horizon_days earlier still: use a shorter horizon, fewer snapshots or a shorter step, "
        "or a later cutoff (time.cutoff; --cutoff of kamml backtest)"
    )


def seasonal_correction(season: pd.DataFrame, horizon: float) -> tuple[float, float] | None:
    """BTYD's error on the later of two snapshots relative to the earlier: value ratio, churn difference.

    `season` holds two snapshots with labels, a year before the cutoff (later) and a year before the
    latest training snapshot (earlier); BG/NBD and Gamma-Gamma are fitted on each one's rows, as on the
    training snapshots. The value ratio is (actual over BTYD value, later) / (the same, earlier), clipped
    to `SEASON_BOUNDS`; the churn difference is (actual churn rate minus BTYD's mean P(no purchase)),
    later minus earlier, over the accounts with a history. None when either snapshot cannot say (no
    history to fit BTYD on, nothing spent or predicted), with a log line.
    """
    cuts = sorted(season["snapshot"].unique())
    if len(cuts) != 2:
        raise ModelError(f"the season frame needs two snapshots, got {len(cuts)}")
    try:
        rows = add_snapshot_btyd(season, horizon)
    except KammlError as exc:
        log.info("no seasonal correction: BTYD cannot be fitted a year earlier (%s)", exc)
        return None
    errors = []
    for cut in cuts:
        part = rows[rows["snapshot"] == cut]
        actual, predicted = float(part["value"].sum()), float(np.nansum(part["btyd_value"].to_numpy(float)))
        known = part["btyd_p_zero"].notna().to_numpy()
        if not (actual > 0 and predicted > 0 and known.any()):
            log.info("no seasonal correction: nothing spent or predicted in the window from %s", cut)
            return None
        churn = float(part["churned"][known].mean() - part["btyd_p_zero"][known].mean())
        errors.append((actual / predicted, churn))
    (early_value, early_churn), (late_value, late_churn) = errors
    ratio = float(np.clip(late_value / early_value, *SEASON_BOUNDS))
    return ratio, late_churn - early_churn


def add_snapshot_btyd(train: pd.DataFrame, horizon: float) -> pd.DataFrame:
    """Fit BG/NBD and Gamma-Gamma on each snapshot's own rows and add the btyd feature columns."""
    parts = []
    for _, rows in train.groupby("snapshot", sort=True, observed=True):
        parts.append(add_btyd_features(rows, horizon))
    return pd.concat(parts).loc[train.index]


def _lgbm_kwargs(
    models: ModelsConfig, name: str, features: Sequence[str] | None = None, categorical: Collection[str] = ()
) -> dict[str, Any]:
    """Constructor arguments of one LightGBM model from the config's models section.

    With the training `features` (and which of them are `categorical`), ``monotone`` is the config's
    (its names checked against them) or `default_monotone` (not when the params hold LightGBM's own
    ``monotone_constraints`` or ``linear_tree``, under which constraints do not hold); without, only the
    config's. Positional constraints are counted against the features whenever ``monotone`` constrains
    none (null, empty or all 0), as the estimator counts them at fit.
    """
    params = dict(getattr(models, name))
    kwargs: dict[str, Any] = {"num_threads": models.threads, "random_state": models.seed}
    for key in ("n_estimators", "learning_rate", "early_stopping_rounds"):
        if key in params:
            kwargs[key] = _whole(params.pop(key))
    if name == "influence" and "objective" in params:
        kwargs["objective"] = params.pop("objective")
    if name == "influence" and "prior_weight" in params:
        kwargs["prior_weight"] = params.pop("prior_weight")
    if name == "churn":
        kwargs["blend_feature"] = params.pop("blend_feature", CHURN_BLEND)
    if name == "clv":
        kwargs["offset_feature"] = params.pop("offset_feature", CLV_OFFSET)
        if "offset_weight" in params:
            kwargs["offset_weight"] = params.pop("offset_weight")
    if "monotone" in params:
        kwargs["monotone"] = _configured_monotone(name, params.pop("monotone"), features, categorical)
    if features is not None:
        for key in ("offset_feature", "blend_feature"):
            _check_model_column(name, key, kwargs.get(key), features, categorical)
        _check_per_feature_lengths(name, params, features)
        given = canonical_params(params)
        if "monotone_constraints" in given:
            if not any(direction != 0 for direction in (kwargs.get("monotone") or {}).values()):
                _check_positional_constraints(name, params, given["monotone_constraints"], features)
        elif "monotone" not in kwargs and not is_true(given.get("linear_tree")):
            kwargs["monotone"] = default_monotone(name, features)
    kwargs["params"] = {key: lightgbm_whole(key, value) for key, value in params.items()} or None
    return kwargs


def _whole(value: Any) -> Any:
    """A float without a fraction as its int (``n_estimators: 2.0``), as the config reads its whole numbers.

    pydantic reads ``time.horizon_days: 2.0`` as 2, and `LGBMModel._num_rounds` ``num_iterations: 2.0``;
    scikit-learn's rule of the estimators' whole-number arguments refuses a float. Others stay as given.
    """
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_positional_constraints(
    name: str, params: Mapping[str, Any], value: Any, features: Sequence[str]
) -> None:
    """A ConfigError naming the key when LightGBM's positional constraints miss the feature count."""
    count = None if value is None else constraint_count(value)
    if count is not None and count != len(features):
        key = next(
            (k for k in params if canonical_params({k: None}).keys() == {"monotone_constraints"}), "mc"
        )
        raise ConfigError(
            f"'models.{name}.{key}' has {count} values for the {len(features)} features of the "
            f"training frame (in their order); give the constraints by name in models.{name}.monotone instead"
        )


def _check_per_feature_lengths(name: str, params: Mapping[str, Any], features: Sequence[str]) -> None:
    """A ConfigError naming the key when a per-column LightGBM parameter misses the feature count."""
    found = per_feature_problem(params, len(features))
    if found is not None:
        key, main, count = found
        also = "" if key == main else f" (LightGBM's {main})"
        raise ConfigError(
            f"'models.{name}.{key}'{also} has {counted(count, 'value')} for the {len(features)} features "
            "of the training frame; LightGBM reads one per feature, in the frame's order"
        )


def _check_model_column(
    name: str, key: str, column: Any, features: Sequence[str], categorical: Collection[str]
) -> None:
    """A ConfigError when the value model's offset or the churn model's blend is no numeric training feature.

    A name of the catalogue these data give no column for (an ``attr_`` attribute the accounts table
    lacks) failed as the model was fitted; a category (``attr_segment``) was refused by the churn model
    at fit, and the value model boosted from the log of its codes.
    """
    if column is None:
        return
    if column not in features:
        raise ConfigError(
            f"'models.{name}.{key}' names {column!r}, which is not a feature of the training frame: "
            "these data give no such column (docs/features.md says which tables each feature needs)"
        )
    if column in categorical:
        raise ConfigError(
            f"'models.{name}.{key}' names {column!r}, which is a categorical feature: the model takes "
            "the log of a positive number from it; name a numeric feature, or null for none"
        )


def _configured_monotone(
    name: str, value: Any, features: Sequence[str] | None, categorical: Collection[str] = ()
) -> dict[str, int] | None:
    """``models.<name>.monotone`` as given (a mapping or null); a ConfigError names what is wrong."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"'models.{name}.monotone' must map feature names to 1, -1 or 0, or be null, got {value!r}"
        )
    if features is not None:
        unknown = sorted(set(map(str, value)) - set(features))
        if unknown:
            raise ConfigError(
                f"'models.{name}.monotone' names features the training frame does not have: {unknown}"
            )
    unordered = sorted({str(k) for k, v in value.items() if v != 0} & set(categorical))
    if unordered:
        raise ConfigError(
            f"'models.{name}.monotone' names categorical features, which have no order: {unordered}"
        )
    return dict(value)


def check_model_settings(cfg: Config) -> None:
    """A ConfigError naming the model and the setting when a `models` section cannot train, before any work.

    Validating the section again (`check_edits`) runs `check_models_section`, as building a config does:
    here for a section edited in place (``cfg.models.clv["n_estimators"] = 0``), which no validation saw.
    """
    cfg.models.check_edits()


def check_models_section(models: ModelsConfig) -> None:
    """A ConfigError naming the model and the setting when a models section cannot train.

    The estimators' own checks (objective, learning rate, early stopping, parameter types) ran only
    inside training, after the data and features, and surfaced as tracebacks. `ModelsConfig` runs this
    whenever it is validated (a config read, built or assigned), so it never validates the section itself.
    """
    for name, model_class in (("clv", ClvModel), ("churn", ChurnModel), ("influence", InfluenceModel)):
        settings = getattr(models, name)
        problem = _argument_problem(name, model_class, settings) or _rounds_problem(name, settings)
        if problem is not None:
            raise ConfigError(problem)
        kwargs = _lgbm_kwargs(models, name)  # its ConfigError names the key itself
        problem = _params_problem(name, model_class, kwargs)
        if problem is not None:
            raise ConfigError(problem)
        try:
            model = model_class(**kwargs)
            model._validate_params()
            model.lgb_params()
            rounds = model._num_rounds()
        except (TypeError, ValueError) as exc:  # sklearn's InvalidParameterError is both
            raise ConfigError(f"'models.{name}': {exc}") from None
        if rounds < 1:
            raise ConfigError(f"'models.{name}': the number of boosting rounds must be >= 1, got {rounds}")
        stops = model.early_stopping_rounds is not None
        _check_lightgbm_accepts(
            name, type(model).__name__, model.lgb_params(), settings, early_stopping=stops
        )
        _check_known_features(name, settings)


#: Arguments of the estimators a models section does not set as such: checked elsewhere (``monotone``), or
#: the config's own keys (``models.seed``, ``models.threads``), or no setting (``params``, the horizon).
_NOT_SETTINGS = frozenset({"monotone", "params", "horizon_days", "random_state", "num_threads"})


def _shown(value: Any) -> str:
    """A setting's value as the config's errors show it: true and false as YAML writes them, else repr."""
    return str(value).lower() if isinstance(value, bool | np.bool_) else repr(value)


def _setting_problem(name: str, key: str, rule: str, value: Any) -> str:
    """A models setting's error in the config's words: the key's path, the rule and the value given."""
    return f"'models.{name}.{key}' must be {rule}, got {_shown(value)}"


def _argument_problem(name: str, model_class: type[Any], settings: Mapping[str, Any]) -> str | None:
    """The first setting of a section that breaks its estimator argument's rule (n_estimators, offset_weight).

    scikit-learn said "The 'learning_rate' parameter of ClvModel must be a float in the range (0.0, inf).
    Got -1 instead.", naming the class, not the config's key. True and false are refused where a number
    goes, as the estimators refuse them (`kamml.models._checks.KammlEstimator`).
    """
    from sklearn.utils._param_validation import Interval, make_constraint

    for key, value in settings.items():
        constraints = model_class._parameter_constraints.get(key)
        if constraints is None or key in _NOT_SETTINGS:
            continue
        number = any(isinstance(c, Interval) for c in constraints)
        if (number and isinstance(value, bool | np.bool_)) or not any(
            make_constraint(c).is_satisfied_by(_whole(value)) for c in constraints
        ):
            return _setting_problem(name, key, _rule_words(constraints), value)
    return None


def _params_problem(name: str, model_class: type[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The first rule of the estimator's `lgb_params` a section breaks, in the config's words; else None.

    The estimator's own message suits a call in Python ("ClvModel supports objective tweedie or poisson,
    not 'binary'"); from a config it read with a ``models.clv:`` prefix, naming the class and not the key.
    `kwargs` are the estimator's arguments from the section (`_lgbm_kwargs`); the checks are those of
    `LGBMModel.lgb_params` and `LGBMModel._monotone_directions`, in their order.
    """
    params = kwargs.get("params") or {}
    keys: dict[str, str] = {}  # LightGBM's main name -> the section's key
    for key in params:
        param = canonical_params({key: None}).popitem()[0]
        if param in keys:  # LightGBM would take one of them without a word
            return _setting_problem(name, key, f"left out beside 'models.{name}.{keys[param]}'", params[key])
        keys[param] = key

    def problem(param: str, rule: str) -> str:
        return _setting_problem(name, keys[param], rule, params[keys[param]])

    if "early_stopping_round" in keys:
        return problem("early_stopping_round", f"given as 'models.{name}.early_stopping_rounds'")
    if "objective" in keys:
        argument = inspect.signature(model_class).parameters.get("objective")  # InfluenceModel's
        if argument is not None and params[keys["objective"]] != kwargs.get("objective", argument.default):
            return problem("objective", f"given as 'models.{name}.objective'")
        if params[keys["objective"]] not in model_class._objectives:
            return problem("objective", " or ".join(model_class._objectives))
    return _monotone_problem(name, kwargs.get("monotone") or {}, params, keys)


def _monotone_problem(
    name: str, monotone: Mapping[str, Any], params: Mapping[str, Any], keys: Mapping[str, str]
) -> str | None:
    """The first rule of monotone constraints a section breaks (`_params_problem`); else None.

    `keys` maps LightGBM's main names to the section's keys of `params` (``mc`` for monotone_constraints).
    """

    def problem(param: str, rule: str) -> str:
        return _setting_problem(name, keys[param], rule, params[keys[param]])

    for feature, direction in monotone.items():
        if isinstance(direction, bool | np.bool_) or direction not in (-1, 0, 1):
            return _setting_problem(name, f"monotone.{feature}", "1, -1 or 0", direction)
    constrained = any(direction != 0 for direction in monotone.values())
    if constrained and "monotone_constraints" in keys:
        return problem(
            "monotone_constraints",
            f"left out when 'models.{name}.monotone' gives the constraints by feature name",
        )
    if constrained and "linear_tree" in keys and is_true(params[keys["linear_tree"]]):
        return problem(
            "linear_tree",
            f"false when 'models.{name}.monotone' constrains a feature (LightGBM holds the constraints "
            "at the splits, not in the leaves' linear models)",
        )
    method = params.get(keys.get("monotone_constraints_method", ""))
    if method is not None and method not in MONOTONE_METHODS:
        rule = f"{', '.join(MONOTONE_METHODS[:-1])} or {MONOTONE_METHODS[-1]}"
        return problem("monotone_constraints_method", rule)
    return None


def _rule_words(constraints: Sequence[Any]) -> str:
    """scikit-learn's parameter constraints in the config's words ("a whole number >= 1 or null")."""
    from sklearn.utils._param_validation import Interval, StrOptions

    words = []
    for constraint in constraints:
        if isinstance(constraint, Interval):
            words.append(_interval_words(constraint))
        elif isinstance(constraint, StrOptions):
            words.append(" or ".join(sorted(constraint.options)))
        elif constraint is str:
            words.append("text")
        elif constraint is dict:
            words.append("a mapping")
        elif constraint == "boolean":
            words.append("true or false")
        elif constraint is not None:
            words.append(str(constraint))
    if None in constraints:
        words.append("null")
    return " or ".join(words)


def _interval_words(interval: Any) -> str:
    """A scikit-learn `Interval` in words: "a whole number >= 1", "a finite number from 0 to 1"."""
    what = "a whole number" if interval.type is Integral else "a finite number"
    low_closed = interval.closed in ("left", "both")
    high_closed = interval.closed in ("right", "both")
    low, high = interval.left, interval.right
    if low is not None and high is not None and low_closed and high_closed:
        return f"{what} from {low:g} to {high:g}"
    limits = []
    if low is not None:
        limits.append(f"{'>=' if low_closed else '>'} {low:g}")
    if high is not None:
        limits.append(f"{'<=' if high_closed else '<'} {high:g}")
    return " ".join([what, " and ".join(limits)]).strip()


def _rounds_problem(name: str, settings: Mapping[str, Any]) -> str | None:
    """The error of a number of boosting rounds given as LightGBM's ``num_iterations`` (or an alias).

    `LGBMModel._num_rounds` takes a whole number (3.0 and "3" too); its error named the class
    ("ClvModel: params key 'num_trees' (boosting rounds) ...") and 0 was "the number of boosting rounds
    must be >= 1", naming no key. ``n_estimators``, which LightGBM lists as an alias too, is the
    estimator's own argument (`_argument_problem`), not in its params: beside it, the params' key is checked.
    """
    key = next(
        (
            k
            for k in settings
            if k != "n_estimators" and canonical_params({k: None}).keys() == {"num_iterations"}
        ),
        None,
    )
    if key is None:
        return None
    value = settings[key]
    try:
        number = None if isinstance(value, bool | np.bool_) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None and number.is_integer() and number >= 1:
        return None
    return _setting_problem(name, key, "a whole number of boosting rounds >= 1", value)


def _lightgbm_problem(name: str, settings: Mapping[str, Any], reason: str) -> str | None:
    """LightGBM's refusal of one parameter in the config's words, naming the key the section gave; else None.

    LightGBM names the parameter by its main name (``lambda_l1`` for ``reg_alpha``) and writes neither the
    config's key nor the value given: read by `lightgbm_refusal`, as the estimators read it at fit. None
    when its message is of another kind, or the parameter is none the section set (one of kamml's defaults).
    """
    refused = lightgbm_refusal(reason, settings)
    if refused is None:
        return None
    key, _, rule = refused
    return _setting_problem(name, key, rule, settings[key])


def _check_known_features(name: str, settings: Mapping[str, Any]) -> None:
    """A ConfigError for an offset or blend feature no feature group makes: it failed after the features."""
    from kamml.features.catalogue import describe  # here, as in drivers: no Ibis at import

    for key in ("offset_feature", "blend_feature"):
        column = settings.get(key)
        if not isinstance(column, str):
            continue
        try:
            describe(column)
        except KeyError:
            raise ConfigError(
                f"'models.{name}.{key}' names {column!r}, which is not a feature column kamml builds "
                "(docs/features.md lists them)"
            ) from None


def _check_lightgbm_accepts(
    name: str, model: str, params: dict[str, Any], settings: Mapping[str, Any], *, early_stopping: bool
) -> None:
    """A ConfigError when LightGBM itself refuses the parameters (a value it cannot read: num_leaves x).

    One round on 20 rows (a few milliseconds), so a bad value stops the job before the data is read
    instead of as LightGBM's traceback after the features. Positional ``monotone_constraints`` are
    left out: their length is that of the training columns (`_lgbm_kwargs` counts them against the
    features). The rows have as many columns as the other per-column parameters (``max_bin_by_feature``,
    ...) have values, so LightGBM judges each value; those must agree on their count. With
    `early_stopping`, on a held-out set as in training: a ``metric`` that gives LightGBM none to watch
    ("none", or a name it does not know) ended the job in LightGBM's traceback after the features.
    `settings` (the section as given) name the key of a refused parameter (`_lightgbm_problem`).
    """
    counts = per_feature_counts(params)
    if len(set(counts.values())) > 1:
        (first, n), (other, m) = next(
            ((a, n), (b, m)) for a, n in counts.items() for b, m in counts.items() if n != m
        )
        raise ConfigError(
            f"'models.{name}.{first}' has {counted(n, 'value')} and 'models.{name}.{other}' {m}: each "
            "holds one value per feature of the training frame"
        )
    columns = next(iter(counts.values()), 2)
    rows = np.arange(20 * columns, dtype=float).reshape(20, columns)
    labels = np.tile([0.0, 1.0], 10)
    params = {k: v for k, v in params.items() if k != "monotone_constraints"}
    try:
        with no_autolog(), quiet_fatal():
            data = lgb.Dataset(rows, labels)
            valid = [lgb.Dataset(rows, labels, reference=data)] if early_stopping else None
            callbacks: list[Any] = [lgb.early_stopping(1, verbose=False)] if early_stopping else []
            lgb.train(
                {**params, "num_threads": 1}, data, num_boost_round=1, valid_sets=valid, callbacks=callbacks
            )
    except lgb.basic.LightGBMError as exc:
        reason = str(exc).split(" at /")[0].strip()  # not the path of LightGBM's C++ source
        problem = _lightgbm_problem(name, settings, reason)
        raise ConfigError(problem or f"'models.{name}': LightGBM refuses the parameters: {reason}") from None
    except ValueError as exc:
        if NO_EVAL_METRIC not in str(exc):
            raise
        message = no_metric_message(model, params.get("metric"))
        raise ConfigError(f"'models.{name}.metric': {message}") from None


def _earlier(train: pd.DataFrame) -> pd.Series:
    """Which rows the first, early-stopping fit learns from: those before the latest snapshot (all: one)."""
    latest = train["snapshot"] == train["snapshot"].max()
    return ~latest if (~latest).any() else latest


def _referrals_to_learn(train: pd.DataFrame) -> bool:
    """Whether the influence model can train: referral value in the rows its first fit learns from.

    Referral value only in the held-out latest snapshot (a referral programme younger than one label
    window) leaves it nothing to learn; that is logged, and the bundle has no influence model.
    """
    if "referral_value" not in train.columns or not train["referral_value"].sum() > 0:
        return False
    if train.loc[_earlier(train), "referral_value"].sum() > 0:
        return True
    log.warning(
        "referral value only in the latest training snapshot (%s): the influence model has nothing to "
        "learn before it, so no influence model is trained (referral_value scores 0); more history "
        "with referrals, or fewer or closer snapshots (time.snapshots, time.step_days), give it some",
        pd.Timestamp(train["snapshot"].max()).date(),
    )
    return False


#: LightGBM reads a feature value this small (in size) as 0 (its ``kZeroThreshold``).
LIGHTGBM_ZERO = 1e-35
#: The least largest spend in a label window kamml trains on: amounts that small keep their features
#: far enough above `LIGHTGBM_ZERO` (a world in units of 1e-30 trains the model it trains in units).
SMALLEST_LABEL = 1e-20


def check_labels(train: pd.DataFrame) -> None:
    """A ModelError saying what is wrong with the data when the training labels leave nothing to learn.

    The models' own errors named an offset feature or a class of y (``offset_feature 'btyd_value' has
    no positive value``), not the data: no positive spend at all, every account churned, or none did.
    """
    snapshots = ", ".join(sorted(str(pd.Timestamp(s).date()) for s in train["snapshot"].unique()))
    where = f"in the {len(train):,} training rows (snapshots {snapshots})"
    if "value" in train and not train["value"].sum() > 0:
        raise ModelError(
            f"no account spent anything in a label window {where}: the value model has nothing to learn; "
            "are the amounts all zero or refunds, or do the transactions end before the label windows?"
        )
    if "value" in train and not train.loc[_earlier(train), "value"].sum() > 0:
        raise ModelError(
            f"no account spent anything in a label window before the latest snapshot {where}: the value "
            "model learns from those and is checked on the latest; do the transactions start inside the "
            "latest label window? Fewer or closer snapshots (time.snapshots, time.step_days) fit them"
        )
    for label, what in (("value", "spend"), ("referral_value", "referred accounts' spend")):
        largest = float(train[label].max()) if label in train else np.nan
        if 0 < largest < SMALLEST_LABEL:
            raise ModelError(
                f"the {label} label (an account's {what} in a label window, from transactions.amount) "
                f"{where} is at most {largest:.3g}, below the {SMALLEST_LABEL:g} kamml takes: the money "
                f"features of amounts this small fall below the {LIGHTGBM_ZERO:g} under which LightGBM "
                "reads a feature as 0; give the amounts in another unit (cents, or millionths)"
            )
    if "churned" in train:
        rate = float(train["churned"].mean())
        if rate == 1.0:
            raise ModelError(
                f"every account churned (no purchase in its label window) {where}: do the transactions "
                "reach the data end (data.end), or is there a gap in them?"
            )
        if rate == 0.0:
            raise ModelError(
                f"no account churned (every one bought in its label window) {where}: the churn model "
                "needs both; a longer time.horizon_days, more snapshots (time.snapshots) or more "
                "accounts give it some"
            )


def check_value_offset(train: pd.DataFrame, offset: str | None) -> None:
    """A ModelError saying why BTYD's value, the value model's offset, is never positive, and what to do.

    Gamma-Gamma is fitted per snapshot on at least `MIN_REPEAT_BUYERS` repeat buyers; on a tiny book it
    is skipped and ``btyd_value`` is missing everywhere, and the value model's own error ("offset_feature
    'btyd_value' has no positive value in training") did not say why.
    """
    if offset != CLV_OFFSET or (train[CLV_OFFSET].to_numpy(float) > 0).any():
        return
    repeat = (train["frequency"] > 0) & (train["monetary"] > 0)
    most = int(repeat.groupby(train["snapshot"]).sum().max())
    raise ModelError(
        f"the value model boosts from BTYD's expected value ({CLV_OFFSET}), which needs Gamma-Gamma, fitted "
        f"on at least {MIN_REPEAT_BUYERS} repeat buyers with a positive order value in a snapshot; the "
        f"training snapshots have at most {most}: give more accounts or history, or set "
        f"models.clv.offset_feature: null to train the value model without the offset"
    )


def _stretch_no_purchase(p_churn: np.ndarray, exponent: float) -> np.ndarray:
    """P(no purchase) over the training window carried to the horizon: P0(H) = P0(h)^exponent."""
    return np.clip(p_churn, 0.0, 1.0) ** exponent


#: How a driver names a category value the models never saw in training (scored as a missing value).
UNSEEN_LEVEL = "new to the models: read as no data"

#: Breakpoints of the stored value shape (`fit_value_shape`): quantiles of the anchoring accounts' values.
SHAPE_POINTS = 1025


def shape_weight(train_horizon_days: float, horizon_days: float) -> float:
    """The value model's share of the shape at the horizon: sqrt(h / H), 1 when nothing is stretched."""
    return float(np.sqrt(min(1.0, train_horizon_days / horizon_days)))


def fit_value_shape(clv: np.ndarray, btyd_value: np.ndarray, weight: float) -> dict[str, list[float]] | None:
    """A monotone map from the stretched values to values shaped partly as BTYD's at the horizon.

    The k-th smallest value becomes the geometric mean, at `weight` for the value model, of itself and
    the k-th smallest BTYD value over the horizon (BTYD refitted at the cutoff), rescaled so that the
    accounts' total is kept: the order, and so every ranking metric, is the value model's; the spread
    across accounts moves toward BTYD's, whose model of time carries the population from the training
    window to the horizon (docs/models.md, "the value's shape"). Accounts tied on a value get the
    geometric mean of their targets (one value out). Fitted on the accounts with a positive value from
    both; stored as at most `SHAPE_POINTS` breakpoints (x, y), applied by `apply_value_shape` to every
    account (those without a BTYD value, such as new ones, too: the order is kept across all) and
    rescaled so that the interpolated map keeps the total of every account with a positive value. Sums
    are taken in log space, so values anywhere in the float range neither overflow nor vanish. None when
    fewer than two accounts have a value from both, or they have one value.
    """
    ok = np.isfinite(clv) & np.isfinite(btyd_value) & (clv > 0) & (btyd_value > 0)
    if ok.sum() < 2:
        return None
    x = np.sort(clv[ok])
    if x[0] == x[-1]:
        return None
    log_x = np.log(x)
    log_target = weight * log_x + (1.0 - weight) * np.log(np.sort(btyd_value[ok]))
    distinct, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    log_y = np.bincount(group, weights=log_target) / counts  # a tie: the geometric mean of its targets
    log_y += logsumexp(log_x) - logsumexp(log_y, b=counts)
    pick = np.unique(
        np.round(np.linspace(0, distinct.size - 1, min(SHAPE_POINTS, distinct.size))).astype(np.intp)
    )
    shape = {"x": distinct[pick], "y": np.exp(log_y[pick])}
    # the map is interpolated between breakpoints and applied to accounts without a BTYD value too:
    # rescale so that the total of every account with a value is kept exactly
    valued = clv[np.isfinite(clv) & (clv > 0)]
    log_mapped = np.log(apply_value_shape(valued, shape))
    shape["y"] = np.exp(log_y[pick] + logsumexp(np.log(valued)) - logsumexp(log_mapped))
    return {"x": shape["x"].tolist(), "y": shape["y"].tolist()}


def apply_value_shape(clv: np.ndarray, shape: Mapping[str, Any]) -> np.ndarray:
    """Values through the stored shape: linear in log-log between breakpoints, the end ratios beyond.

    Values that are not positive and finite (0, NaN, negative) pass through unchanged.
    """
    x = np.log(np.asarray(shape["x"], dtype=float))
    y = np.log(np.asarray(shape["y"], dtype=float))
    out = np.array(clv, dtype=float, copy=True)
    ok = np.isfinite(out) & (out > 0)
    v = np.log(out[ok])
    mapped = np.interp(v, x, y)
    mapped = np.where(v < x[0], v + (y[0] - x[0]), mapped)
    mapped = np.where(v > x[-1], v + (y[-1] - x[-1]), mapped)
    out[ok] = np.exp(mapped)
    return out


def _shift_logit(p: np.ndarray, shift: float) -> np.ndarray:
    """Probabilities moved by `shift` on the logit scale; 0 and 1 stay as they are (order kept)."""
    inside = (p > 0.0) & (p < 1.0)
    q = np.where(inside, p, 0.5)
    moved = 1.0 / (1.0 + np.exp(-(np.log(q) - np.log1p(-q) + shift)))
    return np.where(inside, moved, p)


def _sha256(text: str) -> str:
    """The SHA-256 of a model text, as `save` stores it beside the file's name."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_booster(folder: Path, name: str, file: object, sha256: object) -> str:
    """The LightGBM text of model `name`, checked before LightGBM parses it.

    LightGBM's parser aborts the whole process (SIGABRT or SIGSEGV, no Python exception) on a truncated
    model text, as a half-copied bundle holds: a bundle saved with the text's SHA-256 is checked against
    it, an older one for the end LightGBM always writes. The file must lie in the bundle's folder.
    """
    if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
        raise ModelError(f"model bundle {folder} is damaged: its {name} model names the file {file!r}")
    booster = folder / file
    if not booster.is_file():
        raise ModelError(f"model bundle {folder} lacks its LightGBM file {booster.name}")
    try:
        text = booster.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"model bundle {folder} is damaged: {file} is not LightGBM model text") from None
    if sha256 is not None:
        if _sha256(text) != sha256:
            raise ModelError(
                f"model bundle {folder} is damaged: {file} is not the file it was saved with (its SHA-256 "
                f"differs; {len(text.encode('utf-8')):,} bytes): copy the bundle again"
            )
    elif "\nend of trees" not in text or "\nend of parameters" not in text:
        raise ModelError(
            f"model bundle {folder} is damaged: {file} is not a whole LightGBM model (it lacks the end "
            "LightGBM writes; a copy cut short?): copy the bundle again"
        )
    return text


def _shape(value: Any) -> dict[str, list[float]] | None:
    """A stored value shape (breakpoints x and y), or None when the bundle has none.

    ValueError (a damaged bundle, for `load`) unless x and y are two or more positive finite numbers
    each, as many of one as of the other, x strictly increasing.
    """
    if value is None:
        return None
    x, y = ([float(v) for v in value[key]] for key in ("x", "y"))
    xs, ys = np.asarray(x), np.asarray(y)
    if (
        len(x) != len(y)
        or len(x) < 2
        or not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)))
        or not (np.all(xs > 0) and np.all(ys > 0))
        or not np.all(np.diff(xs) > 0)
    ):
        raise ValueError(
            "value_shape needs x and y of equal length >= 2, positive and finite, x strictly increasing"
        )
    return {"x": x, "y": y}


def _optional_float(
    value: Any, name: str, *, positive: bool = False, nonnegative: bool = False
) -> float | None:
    """A stored number, finite (and > 0 or >= 0 as asked), or None when the bundle has none."""
    return None if value is None else stored_number(value, name, positive=positive, nonnegative=nonnegative)


def _stored_time(state: Mapping[str, Any]) -> tuple[int, int, int]:
    """horizon_days, train_horizon_days and unit_days of a saved bundle: whole days >= 1, a unit of 1 or 7."""
    horizon, train, unit = (int(state[k]) for k in ("horizon_days", "train_horizon_days", "unit_days"))
    if horizon < 1 or train < 1 or unit not in (1, 7):
        raise ValueError(
            f"horizon_days {horizon} and train_horizon_days {train} must be 1 or more, unit_days 1 or 7 "
            f"(got {unit})"
        )
    return horizon, train, unit


def _stored_btyd(state: Mapping[str, Any]) -> BtydFit:
    """The saved BTYD parameters, each a finite number > 0 (ValueError naming it)."""

    def checked(part: str) -> dict[str, float]:
        return {str(k): stored_number(v, f"btyd {part} {k}", positive=True) for k, v in state[part].items()}

    gamma_gamma = None if state["gamma_gamma"] is None else checked("gamma_gamma")
    return BtydFit(checked("bgnbd"), gamma_gamma)


@functools.lru_cache(maxsize=8)
def _filled_positions(names: tuple[str, ...]) -> np.ndarray:
    """Positions of the feature columns that `build_features` never leaves missing."""
    from kamml.features.catalogue import never_missing  # here, as in drivers: no Ibis at import

    return np.array([j for j, name in enumerate(names) if never_missing(name)], dtype=np.intp)


@functools.lru_cache(maxsize=8)
def _history_positions(names: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """Positions of the feature columns filled whenever there is a purchase history, with its column."""
    from kamml.features.catalogue import FILLED_WITH_HISTORY

    return tuple(
        (j, FILLED_WITH_HISTORY[name]) for j, name in enumerate(names) if name in FILLED_WITH_HISTORY
    )


def _filled_as(name: str) -> str:
    """How `build_features` fills a never-missing column, in a refusal: "0 for an account without any".

    The calendar columns say their definition instead: no account has month 0.
    """
    from kamml.features.catalogue import describe

    group, definition = describe(name)  # a never-missing column is one the catalogue knows
    return definition if group == "calendar" else "0 for an account without any"


#: What `FILLED_WITH_HISTORY`'s conditions say, in a refusal.
_HISTORY_WORDS = {"T": "a purchase day (T given)", "frequency": "a repeat purchase day (frequency >= 1)"}


def _check_filled(matrix: np.ndarray, names: Sequence[str], f: np.ndarray, t: np.ndarray) -> None:
    """ModelError naming a column `build_features` always fills that is missing in rows.

    Counts and sums are never missing; the regularity and recency columns never for an account with the
    purchase history they measure (frequency `f`, T `t`). A CRM record without the key was scored as an
    unknown value no account in training had (a gap_mean left out moved a clv from 14.5 to 20.5).
    """
    positions = _filled_positions(tuple(names))
    history = _history_positions(tuple(names))
    problems = []
    if len(matrix) > SMALL_FRAME_ROWS or np.isnan(matrix[:, positions]).any():  # few rows: one check
        for j in positions:  # column by column: no copy of the whole block
            bad = np.isnan(matrix[:, j])
            if bad.any():
                rule = f"it is never missing in the features ({_filled_as(names[j])})"
                problems.append(_rows_problem(names[j], bad, "missing", rule))
    having = {"T": ~np.isnan(t), "frequency": f >= 1} if history else {}
    for j, needs in history:
        bad = np.isnan(matrix[:, j]) & having[needs]
        if bad.any():
            rule = f"it is never missing in the features for an account with {_HISTORY_WORDS[needs]}"
            problems.append(_rows_problem(names[j], bad, "missing", rule))
    if not problems:
        return
    raise ModelError("feature rows lack values: " + "; ".join(map(str, problems)))


@functools.lru_cache(maxsize=8)
def _bounded_positions(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the feature columns `build_features` keeps in a range, their lows and highs (inf)."""
    from kamml.features.catalogue import bounds

    found = [(j, b) for j, name in enumerate(names) if (b := bounds(name)) is not None]
    positions = np.array([j for j, _ in found], dtype=np.intp)
    lows = np.array([b[0] for _, b in found], dtype=float)
    highs = np.array([np.inf if b[1] is None else b[1] for _, b in found], dtype=float)
    return positions, lows, highs


def _check_ranges(matrix: np.ndarray, names: Sequence[str]) -> None:
    """ModelError naming a column whose value lies outside the range `build_features` keeps it in.

    Month 13, quarter 0 or a negative count of days in a CRM's row was scored as a feature value no
    account had (`kamml.features.catalogue.BOUNDS`).
    """
    positions, lows, highs = _bounded_positions(tuple(names))
    if len(matrix) <= SMALL_FRAME_ROWS:  # a request's few rows: one check of the small block
        block = matrix[:, positions]
        if not ((block < lows) | (block > highs)).any():
            return
    problems = []
    for j, low, high in zip(positions, lows, highs, strict=True):  # column by column: no copy
        column = matrix[:, j]
        bad = (column < low) | (column > high)
        if bad.any():
            allowed = f">= {low:g}" if np.isinf(high) else f"from {low:g} to {high:g}"
            rule = f"the features hold numbers {allowed}"
            problems.append(_rows_problem(names[j], bad, "outside its range", rule, column[bad][:5].tolist()))
    if problems:
        raise ModelError("feature rows hold impossible values: " + "; ".join(map(str, problems)))


def _rows_problem(
    column: str, bad: np.ndarray, what: str, rule: str, examples: Sequence[Any] = ()
) -> Problem:
    """A `Problem` of a features column: `what` is wrong in the rows `bad` marks (the first five named)."""
    rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
    return Problem("features", column, f"{what} in row(s) {rows}: {rule}", int(bad.sum()), examples)


def feature_coverage(rows: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """The share of `rows` with a value, per built feature column (BTYD's are the bundle's own).

    Kept in the bundle's meta from the latest training snapshot, so that scoring can say when a column
    the models learned from arrives empty (`kamml.jobs.score.warn_lost_features`).
    """
    built = [c for c in columns if not c.startswith("btyd_")]
    if not len(rows):
        return {}
    shares = rows[built].notna().mean()
    return {str(c): round(float(shares[c]), 4) for c in built}


def positive_monetary(rows: pd.DataFrame) -> np.ndarray:
    """The positive, finite `monetary` of `rows` (repeat buyers' mean orders); none without the column."""
    if "monetary" not in rows.columns:
        return np.empty(0)
    values = pd.to_numeric(rows["monetary"], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values) & (values > 0)]


def typical_order_value(rows: pd.DataFrame) -> float | None:
    """The median positive `monetary` (a repeat buyer's mean order) of `rows`, None without any.

    Kept in the bundle's meta from the latest training snapshot, so that scoring can tell amounts given
    in another unit (`kamml.jobs.score.warn_money_unit`).
    """
    values = positive_monetary(rows)
    return float(np.median(values)) if values.size else None


def check_unique_columns(features: pd.DataFrame) -> None:
    """A ModelError naming the columns a frame of feature rows names more than once, or on several levels.

    Which copy a model read depended on the batch's size (the last one up to 64 rows, an error about
    array shapes above), so the answer changed with how many rows were sent. Column names on several
    levels (a pivot's, or a concat's with keys) are refused too: they were a bare KeyError.
    """
    if features.columns.nlevels > 1:
        raise ModelError(
            f"feature rows have column names on {features.columns.nlevels} levels (a MultiIndex, as a "
            "pivot or a concat with keys makes): give one level, the feature names"
        )
    doubled = features.columns[features.columns.duplicated()].unique()
    if len(doubled):
        raise ModelError(f"feature rows name column(s) {', '.join(map(repr, doubled))} more than once")


#: The bundle's time settings its models learned with (`ModelBundle.__setattr__` keeps them).
_LEARNED_TIME = frozenset({"horizon_days", "train_horizon_days", "unit_days"})


@dataclass
class ModelBundle:
    """Everything needed to turn feature rows into scores: BTYD fit, three models, feature names.

    Build one with `ModelBundle.fit(train, config)`, anchor it at the scoring cutoff with
    `anchor(features)` (as `kamml train` deploys it); `predict(features)` returns `PREDICTION_COLUMNS`
    per account: clv, p_churn, referral_value, p_alive, expected_purchases, effort_scale, effort_uplift,
    drivers and horizon_days.
    """

    horizon_days: int
    train_horizon_days: int
    unit_days: int
    features: list[str]
    btyd: BtydFit
    clv: ClvModel
    churn: ChurnModel
    influence: InfluenceModel | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    feature_config: dict[str, Any] = field(default_factory=dict)
    effort: EffortResponse | None = None
    #: The h -> H stretch (module docs): clv x value_ratio, P0(H) = P0(h)^churn_exponent. None in
    #: bundles saved before they existed, which keep per-account BG/NBD ratios.
    value_ratio: float | None = None
    churn_exponent: float | None = None
    #: Referral value's h -> H factor, from when referred accounts spend after their referral
    #: (`kamml.models.influence.referral_window_ratio`, set by `kamml.evaluation.backtest.train_bundle`).
    #: None: in proportion to time, H / h (a bundle fitted by hand, or saved before it existed).
    referral_ratio: float | None = None
    #: The value level (module docs): actual over BTYD value on the latest training snapshot times the
    #: seasonal ratio when fitted with a season (meta["season"]), as measured for a window of a year or
    #: more, else 1 (the measured bias kept in meta["latest_btyd_bias"]), and the multiplier on the value
    #: model set by `anchor`. None in bundles saved before they existed.
    btyd_bias: float | None = None
    value_level: float | None = None
    #: The churn level (module docs): actual churn rate minus BTYD's mean P(no purchase) on the latest
    #: training snapshot (plus the seasonal difference) with a season or a window of a year or more, else
    #: 0 (the measured one kept in meta["latest_churn_bias"]), and the logit shift set by `anchor`.
    churn_bias: float | None = None
    churn_shift: float | None = None
    #: The value's shape at the horizon (`fit_value_shape`), set by `anchor` when h < H: breakpoints
    #: ``x`` (stretched values) and ``y`` (shaped values). None when nothing is stretched, and in
    #: bundles saved before it existed.
    value_shape: dict[str, list[float]] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse a new horizon or time unit once set: the models learned on those label windows.

        ``bundle.horizon_days = 365`` relabelled 180-day predictions as a year's (their values unchanged);
        `dataclasses.replace` builds a new bundle for the rare caller that means to.
        """
        if name in _LEARNED_TIME and name in self.__dict__ and self.__dict__[name] != value:
            raise AttributeError(
                f"ModelBundle.{name} is fixed by the label windows its models learned on "
                f"({self.__dict__[name]}): train a bundle with the time settings you want"
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        """A one-line summary: horizons, time unit, features, models, effort response, anchoring.

        The dataclass's own repr printed every feature name, every model's monotone map and the meta's
        coverage of each feature: about 4,000 characters in a notebook for a 58-feature bundle.
        """
        shown = ", ".join(self.features[:3]) + (", ..." if len(self.features) > 3 else "")
        models = ", ".join(name for name in _MODELS if getattr(self, name, None) is not None)
        effort = None if self.effort is None else "fitted"
        return (
            f"ModelBundle(horizon_days={self.horizon_days}, train_horizon_days={self.train_horizon_days}, "
            f"unit_days={self.unit_days}, features={len(self.features)} [{shown}], models=[{models}], "
            f"effort={effort}, anchored={self.anchored})"
        )

    def feature_spec(self) -> dict[str, Any]:
        """How to rebuild this bundle's feature rows: the features section, time unit and horizon.

        `kamml score` builds features at a new cutoff with exactly these settings, so a model is never
        applied to columns computed differently from those it learned on.
        """
        return {
            "features": dict(self.feature_config),
            "unit": "weeks" if self.unit_days == 7 else "days",
            "horizon_days": self.horizon_days,
            "columns": [c for c in self.features if not c.startswith("btyd_")],
        }

    def scoring_config(self, config: Config | None = None) -> Config:
        """`config` (data, engine) with the features and time settings this bundle was trained with."""
        cfg = (config or Config()).model_copy(deep=True)
        if self.feature_config:
            cfg.features = type(cfg.features).model_validate(self.feature_config)
        cfg.time.unit = "weeks" if self.unit_days == 7 else "days"
        cfg.time.horizon_days = self.horizon_days
        # the features' calendar window is the training label window (`feature_context`)
        cfg.time.train_horizon_days = (
            self.train_horizon_days if self.train_horizon_days != self.horizon_days else None
        )
        return cfg

    @property
    def horizon_units(self) -> float:
        """The prediction horizon in the rfm time unit (days or weeks)."""
        return self.horizon_days / self.unit_days

    @property
    def train_units(self) -> float:
        """The training label window in the rfm time unit."""
        return self.train_horizon_days / self.unit_days

    @classmethod
    def fit(
        cls, train: pd.DataFrame, config: Config | None = None, *, season: pd.DataFrame | None = None
    ) -> ModelBundle:
        """Train on a stacked snapshot frame with labels (`kamml.build_training_frame`).

        BTYD features are fitted per snapshot; the value, churn and (with a referral_value label)
        influence models learn on every snapshot with the latest one held out for early stopping and
        calibration. The BTYD parameters kept are those of the latest snapshot. `season`, when given,
        holds two snapshots with labels (rfm columns suffice) a year before the cutoff and before the
        latest snapshot, from which the levels' seasonal correction is measured (module docs).
        """
        cfg = config or Config()
        horizon = cfg.time.horizon_days
        h = cfg.time.training_horizon_days
        unit = cfg.time.unit_days
        labelled = train.attrs.get("horizon_days")
        if labelled is not None and int(labelled) != h:
            raise ConfigError(
                f"the training frame's labels cover {labelled} days, but the config trains for {h} "
                "(time.train_horizon_days, else time.horizon_days): build the frame with the same config"
            )
        timed = train.attrs.get("time_unit")
        if timed is not None and timed != cfg.time.unit:  # weeks read as days: aggregate -85 % (an audit)
            raise ConfigError(
                f"the training frame's recency and T are in {timed}, but the config's time.unit is "
                f"{cfg.time.unit}: build the frame with the same config"
            )
        if labelled is None:
            log.warning(
                "the training frame carries no horizon (its attrs, lost by pd.concat or a file, or a frame "
                "built by hand): its labels and times cannot be checked against time.horizon_days (%d) "
                "and time.unit (%s); build_training_frame with this config records them",
                h,
                cfg.time.unit,
            )
        check_model_settings(cfg)
        if "snapshot" not in train.columns:
            raise ModelError(
                "the training frame has no 'snapshot' column: build it with build_training_frame"
            )
        limit = cfg.models.max_training_accounts
        sample = sample_accounts(train, limit)
        drawn_from = train.attrs.get("sampled_from")  # sampled already: build_training_frame(max_accounts=)
        if sample is not train:
            drawn_from = drawn_from or train["account_id"].nunique()
        else:
            limit = train["account_id"].nunique() if drawn_from else None
        if limit is None:  # every account
            return cls._fit_sampled(train, cfg, horizon, h, unit, season)
        if season is not None:  # the same accounts (a frame built with max_accounts is sampled already)
            season = sample_accounts(season, limit)
        with _blaming_the_sample(limit):
            bundle = cls._fit_sampled(sample, cfg, horizon, h, unit, season)
        bundle.meta["sampled_accounts"] = f"{limit} of {drawn_from}"
        referrals = train.attrs.get("referral_value_before_sample")
        if referrals is None:
            referrals = train["referral_value"].sum() if "referral_value" in train.columns else 0.0
        in_sample = sample["referral_value"].sum() if "referral_value" in sample.columns else 0.0
        if not in_sample > 0 and referrals > 0:
            log.warning(
                "no referral value among the %s sampled accounts (models.max_training_accounts): "
                "no influence model; raise the limit to train one",
                f"{limit:,}",
            )
        return bundle

    @classmethod
    def _fit_sampled(
        cls,
        train: pd.DataFrame,
        cfg: Config,
        horizon: int,
        h: int,
        unit: int,
        season: pd.DataFrame | None = None,
    ) -> ModelBundle:
        """`fit` on the (possibly sampled) training rows, its settings checked."""
        check_snapshot_history(train)
        check_labels(train)
        train = add_snapshot_btyd(train, h / unit)
        features = feature_columns(train)
        latest = train["snapshot"].max()
        btyd = fit_btyd(train[train["snapshot"] == latest])
        X, snap = train[features], train["snapshot"].to_numpy()
        log.info(
            "training on %s (%s) x %s",
            counted(len(X), "row"),
            counted(train["snapshot"].nunique(), "snapshot"),
            counted(len(features), "feature"),
        )
        n_latest = int((snap == latest).sum())
        if n_latest < FEW_ACCOUNTS:
            log.warning(
                "only %d accounts in the latest training snapshot, and the models learn little from fewer "
                "than %d (they tune and check themselves on that snapshot): treat the predicted values and "
                "churn probabilities, and so the plan's ranking of accounts, as rough, and see in the "
                "report's backtest whether its BG/NBD rows predicted better",
                n_latest,
                FEW_ACCOUNTS,
            )
        unordered = [c for c in features if is_categorical(train[c])]
        # both checked before either trains: a churn setting's error does not wait for the value model
        settings = {name: _lgbm_kwargs(cfg.models, name, features, unordered) for name in ("clv", "churn")}
        check_value_offset(train, settings["clv"].get("offset_feature"))
        clv = ClvModel(horizon_days=h, **settings["clv"]).fit(X, train["value"], snapshot=snap)
        churn = ChurnModel(horizon_days=h, **settings["churn"]).fit(X, train["churned"], snapshot=snap)
        influence = None
        if _referrals_to_learn(train):
            influence = InfluenceModel(
                horizon_days=h, **_lgbm_kwargs(cfg.models, "influence", features, unordered)
            ).fit(X, train["referral_value"], snapshot=snap)
        latest_rows = train[train["snapshot"] == latest]
        meta = {
            "snapshots": sorted(str(pd.Timestamp(s).date()) for s in train["snapshot"].unique()),
            "rows": len(train),
            "coverage": feature_coverage(latest_rows, features),
            "order_value": typical_order_value(latest_rows),  # money's unit at training (warn_money_unit)
            "churn_label": cfg.models.churn_label,  # what p_churn means: the gate and scoring compare it
        }
        bundle = cls(horizon, h, unit, features, btyd, clv, churn, influence, meta, cfg.features.model_dump())
        bundle._set_stretch(latest_rows, btyd)
        predicted = float(np.nansum(latest_rows["btyd_value"].to_numpy(float)))
        if predicted > 0:
            bundle.btyd_bias = float(latest_rows["value"].sum()) / predicted
        has_history = latest_rows["btyd_p_zero"].notna().to_numpy()
        if has_history.any():
            rows = latest_rows[has_history]
            bundle.churn_bias = float(rows["churned"].mean() - rows["btyd_p_zero"].mean())
        if season is not None:
            bundle._set_season(season)
        if "season" not in bundle.meta and bundle.train_horizon_days < SEASON_DAYS:
            bundle._drop_unseasoned_biases()
        return bundle

    def _drop_unseasoned_biases(self) -> None:
        """Level value and churn on BTYD's own at the cutoff where no season separates their biases.

        A label window shorter than a year without the season measured a year earlier: BTYD's miss on
        the latest window is that window's calendar and noise as much as a lasting misfit. Carried
        forward on CDNOW the value's lost the aggregate to BTYD alone at most splits (1997-07-31 to
        1997-09-30: +32.6 % against +13.5 %), and the churn's lost Brier at 5 of 30 splits, 3 without it
        (module docs). Both are kept in meta ("latest_btyd_bias", "latest_churn_bias") and the log. A
        window of a year or more holds every season: its biases are carried as before (not measured
        otherwise).
        """
        bias, churn = self.btyd_bias, self.churn_bias
        if bias is not None:
            self.meta["latest_btyd_bias"], self.btyd_bias = float(bias), 1.0
        if churn is not None:
            self.meta["latest_churn_bias"], self.churn_bias = float(churn), 0.0
        log.info(
            "levels on BTYD's own at the cutoff: BTYD's bias on the latest %d-day training window (value x "
            "%s, churn rate %s) is not carried forward without a season measured a year earlier to tell "
            "the calendar from a misfit",
            self.train_horizon_days,
            "none" if bias is None else f"{bias:.4f}",
            "none" if churn is None else f"{churn:+.4f}",
        )

    def _set_season(self, season: pd.DataFrame) -> None:
        """Correct the value and churn biases by the change of BTYD's error a year earlier (module docs)."""
        found = seasonal_correction(season, self.train_units)
        if found is None:
            return
        ratio, shift = found
        snapshots = sorted(str(pd.Timestamp(s).date()) for s in season["snapshot"].unique())
        self.meta["season"] = {"snapshots": snapshots, "value_ratio": ratio, "churn_shift": shift}
        if self.btyd_bias is not None:
            self.btyd_bias *= ratio
        if self.churn_bias is not None:
            self.churn_bias += shift
        log.info(
            "season: BTYD's bias a year before the cutoff over a year before the latest snapshot (%s): "
            "value x %.4f, churn %+.4f",
            ", ".join(snapshots),
            ratio,
            shift,
        )

    def _set_stretch(self, features: pd.DataFrame, fit: BtydFit) -> None:
        """Set the h -> H stretch factors from BG/NBD on these accounts (1 and 1 when h equals H)."""
        f, r, t, _ = rfm_arrays(features)
        h, H = self.train_units, self.horizon_units
        self.value_ratio = expected_purchase_ratio(fit, f, r, t, h, H)
        self.churn_exponent = no_purchase_exponent(fit, f, r, t, h, H)

    def anchor(self, features: pd.DataFrame) -> ModelBundle:
        """A copy whose BG/NBD and Gamma-Gamma are refitted on every account at the scoring cutoff.

        BTYD parameters need no labels, so the deployed bundle can carry a fit at the very cutoff it
        scores at (the backtest does the same at its test cutoff); its predictions stay row-independent.
        """
        self._check_built_for(features)
        anchored = dataclasses.replace(self, meta={**self.meta, "anchored_accounts": len(features)})
        anchored.btyd = fit_btyd(features)
        anchored._set_stretch(features, anchored.btyd)
        if len(features) > 0:
            prepared, extra, _, rfm = anchored._prepare(features, anchored.btyd)
            anchored.value_level = anchored._value_level(prepared, extra)
            anchored.churn_shift = anchored._churn_shift(prepared, rfm)
            anchored.value_shape = anchored._value_shape(features)
        return anchored

    def _value_shape(self, features: pd.DataFrame) -> dict[str, list[float]] | None:
        """The value's shape at the horizon for these (the cutoff's) accounts; None when h equals H."""
        if self.train_horizon_days >= self.horizon_days or self.value_ratio is None:
            return None
        unshaped = dataclasses.replace(self, value_shape=None)
        clv = unshaped.predict_value(features)
        btyd_value = btyd_columns(*rfm_arrays(features), self.horizon_units, self.btyd)["btyd_value"]
        weight = shape_weight(self.train_horizon_days, self.horizon_days)
        shape = fit_value_shape(clv, btyd_value, weight)
        log.info(
            "value shape: %s (the value model's share %.3f, training window %d of %d days)",
            "none (too few accounts with a value)"
            if shape is None
            else counted(len(shape["x"]), "breakpoint"),
            weight,
            self.train_horizon_days,
            self.horizon_days,
        )
        return shape

    def _value_level(self, prepared: Any, extra: dict[str, np.ndarray]) -> float | None:
        """The multiplier that sets the value model's total at the cutoff to BTYD's times `btyd_bias`.

        Target: btyd_bias x the sum of BTYD value over the training window at the cutoff (BTYD refitted
        there), clipped to [0.5, 2] x the model's own total. None without a bias or a positive total.
        """
        if self.btyd_bias is None:
            return None
        model_total = float(np.sum(self.clv.predict(prepared, horizon_days=self.train_horizon_days)))
        btyd_total = float(np.nansum(extra["btyd_value"]))
        target = self.btyd_bias * btyd_total
        if model_total <= 0 or target <= 0:
            return None
        low, high = ClvModel.scale_bounds
        level = float(np.clip(target / model_total, low, high))
        log.info(
            "value level %.4f: the value model's total %s set to BTYD's %s x bias %.4f = %s",
            level,
            f"{model_total:,.0f}",
            f"{btyd_total:,.0f}",
            self.btyd_bias,
            f"{target:,.0f}",
        )
        if level in (low, high):  # the model and BTYD disagree more than the clip allows
            log.warning(
                "value level clipped at %g: the value model's total (%.6g) is %.3g times the level's BTYD "
                "total (%.6g); with few accounts or a gap in the data the value scale is unreliable",
                level,
                model_total,
                model_total / target,
                target,
            )
        return level

    def _churn_shift(self, prepared: Any, rfm: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float | None:
        """The logit shift that sets the mean churn probability at the cutoff to BTYD's plus `churn_bias`.

        Over the accounts with a history: mean P0(H) by BTYD refitted at the cutoff, plus churn_bias.
        The shift is at most 1 either way. None without a bias or a history.
        """
        f, r, t = rfm
        known = ~(np.isnan(f) | np.isnan(r) | np.isnan(t))
        if self.churn_bias is None or not known.any():
            return None
        p = self.churn.predict_proba(prepared, horizon_days=self.train_horizon_days)[known, 1]
        if self.churn_exponent is not None:  # as served: stretched to H (the exponent is 1 when h = H)
            p = _stretch_no_purchase(p, self.churn_exponent)
        bg, _ = self.btyd.models()
        p0 = bg.p_zero_purchases(self.horizon_units, f[known], r[known], t[known])
        btyd_mean = float(np.mean(p0))
        target = float(np.clip(btyd_mean + self.churn_bias, 0.01, 0.99))

        def gap(shift: float) -> float:
            return float(np.mean(_shift_logit(p, shift))) - target

        low, high = gap(-1.0), gap(1.0)
        if low * high > 0:  # out of reach: the nearer end
            shift = -1.0 if abs(low) < abs(high) else 1.0
        else:
            shift = float(brentq(gap, -1.0, 1.0, xtol=1e-9))
        log.info(
            "churn shift %+.4f: the churn model's mean %.4f set to BTYD's %.4f %s bias %.4f = %.4f",
            shift,
            p.mean(),
            btyd_mean,
            "-" if self.churn_bias < 0 else "+",
            abs(self.churn_bias),
            target,
        )
        if abs(shift) >= 1.0 and abs(gap(shift)) > 0.01:
            log.warning(
                "churn shift clipped at %+g: the churn model's mean probability %.3f cannot reach the "
                "level's BTYD mean %.3f (it stays at %.3f); with few accounts the probabilities are "
                "unreliable",
                shift,
                p.mean(),
                target,
                target + gap(shift),
            )
        return shift

    def _prepare(
        self, features: pd.DataFrame, btyd: BtydFit
    ) -> tuple[Any, dict[str, np.ndarray], dict[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The models' float matrix of feature rows with btyd columns; those columns; all; f, r, T."""
        columns = column_arrays(features)
        check_dated_categories(features, columns, self.clv.categories_)  # a few rows' arrays lost their dtype
        f, r, t, m = (as_float(columns[c], c) for c in ("frequency", "recency", "T", "monetary"))
        check_history(f, r, t, m, unit_days=self.unit_days)
        extra = btyd_columns(f, r, t, m, self.train_units, btyd)
        columns.update(extra)
        # converted once into one float matrix shared by the three models and the explanations
        prepared = self.clv.prepare_columns(columns, len(features), horizon_days=self.train_horizon_days)
        _check_filled(prepared.matrix, self.clv.feature_names_, f, t)
        _check_ranges(prepared.matrix, self.clv.feature_names_)
        return prepared, extra, columns, (f, r, t)

    def with_btyd(
        self, features: pd.DataFrame, refit: bool = True, fit: BtydFit | None = None
    ) -> tuple[pd.DataFrame, BtydFit]:
        """Feature rows with the btyd columns, and the BTYD fit used.

        A given `fit` is used as is. Otherwise BTYD is refitted on these rows when `refit` and there are
        enough of them (batch scoring of every account at a cutoff), else the bundle's own fit is used (a
        few rows from a CRM).
        """
        if fit is None:
            fit = fit_btyd(features) if refit and len(features) >= 100 else self.btyd
        return add_btyd_features(features, self.train_units, fit), fit

    @property
    def anchored(self) -> bool:
        """Whether `anchor` set this bundle's BTYD at its scoring cutoff (then predictions never refit it)."""
        levels = (self.value_level, self.churn_shift)
        return "anchored_accounts" in self.meta or any(v is not None for v in levels)

    def predict(
        self,
        features: pd.DataFrame,
        *,
        refit_btyd: bool | None = None,
        btyd: BtydFit | None = None,
        top_drivers: int = 3,
    ) -> pd.DataFrame:
        """Scores for feature rows (as from `build_features`), indexed like them.

        Returns clv (value over the horizon), p_churn (no purchase in the horizon), referral_value,
        p_alive, expected_purchases (BG/NBD, horizon), effort_scale and effort_uplift (the fitted effort
        response's k and uplift; NaN without one), drivers (per model, the `top_drivers` features
        that move the prediction most, in words; `_drivers`; `top_drivers` is a whole number, 0 for no
        drivers (empty texts), as the REST endpoint's param: -1 or 2.5 is a `ModelError`) and
        horizon_days (the horizon the predictions are over: `allocate` reads it from the frame). `btyd`
        passes a BG/NBD fit the caller already has, so it is not fitted again. Columns other than the
        bundle's features (an account_id, an owner) are ignored.

        `refit_btyd` (default: only when the bundle is not `anchored`) refits BG/NBD and Gamma-Gamma on
        these rows when there are at least 100 of them; an anchored bundle keeps its own fit, so a row
        scores the same alone or in any batch.
        """
        scores = self.score_columns(features, refit_btyd=refit_btyd, btyd=btyd, top_drivers=top_drivers)
        return pd.DataFrame(scores, index=features.index)

    def score_columns(
        self,
        features: pd.DataFrame,
        *,
        refit_btyd: bool | None = None,
        btyd: BtydFit | None = None,
        top_drivers: int = 3,
        value_only: bool = False,
    ) -> dict[str, Any]:
        """`predict` as a dict of columns (arrays, drivers a list): for callers that add their own.

        With `value_only`, only ``clv`` is returned and the churn and influence models are not run.
        """
        top_drivers = check_count(top_drivers, "top_drivers")
        effort = self.effort if self.effort is not None and self.effort.source == "fitted" else None
        if effort is not None:  # k is hours over the response's horizon: carried to the model's
            effort = effort.at_horizon(self.horizon_days)
        self._check_columns(features, effort.size_feature if effort else None)
        if refit_btyd is None:
            refit_btyd = not self.anchored
        if btyd is None:
            btyd = fit_btyd(features) if refit_btyd and len(features) >= 100 else self.btyd
        prepared, extra, columns, (f, r, t) = self._prepare(features, btyd)
        h = self.train_horizon_days
        others = [self.churn] if self.influence is None else [self.churn, self.influence]
        if not all(model.accepts(prepared) for model in others):
            raise ModelError("the bundle's models were trained on different feature columns")
        clv = self.clv.predict(prepared, horizon_days=h)
        if self.value_level is not None:
            clv = clv * self.value_level
        p_churn, referral = np.zeros(len(f)), np.zeros(len(f))
        if not value_only:
            p_churn = self.churn.predict_proba(prepared, horizon_days=h)[:, 1]
            if self.influence is not None:
                referral = self.influence.predict(prepared, horizon_days=h)
        known = ~(np.isnan(f) | np.isnan(r) | np.isnan(t))
        expected_H = np.full(len(f), np.nan)
        if h == self.horizon_days:
            expected_H[known] = extra["btyd_expected_purchases"][known]
        else:  # every row is carried to H, with a history or not: no row depends on its batch
            bg, _ = btyd.models()
            rfm = (f[known], r[known], t[known])
            if known.any():
                expected_H[known] = bg.conditional_expected_purchases(self.horizon_units, *rfm)
            clv, p_churn, referral = self._stretch(known, extra, expected_H, bg, rfm, clv, p_churn, referral)
        if value_only:
            return {"clv": clv}
        if self.churn_shift is not None:
            p_churn = _shift_logit(p_churn, self.churn_shift)
        p_alive = np.where(known, extra["btyd_p_alive"], np.nan)  # no horizon in P(alive)

        values = self._driver_values(columns, prepared)
        drivers = self._drivers(prepared, values, len(f), top=top_drivers)
        k = np.full(len(f), np.nan)
        if effort is not None:
            size_feature = effort.size_feature
            k = effort.effort_scale(clv, None if size_feature is None else values(size_feature))
        uplift = np.nan if effort is None or effort.uplift is None else float(effort.uplift)
        return {  # in the order of PREDICTION_COLUMNS
            "clv": clv,
            "p_churn": np.clip(p_churn, 0.0, 1.0),
            "referral_value": referral,
            "p_alive": p_alive,
            "expected_purchases": expected_H,
            "effort_scale": k,
            "effort_uplift": np.full(len(f), uplift),
            "drivers": drivers,
            "horizon_days": np.full(len(f), self.horizon_days, dtype=np.int64),
        }

    def predict_value(self, features: pd.DataFrame, *, btyd: BtydFit | None = None) -> np.ndarray:
        """The ``clv`` column of `predict` on an anchored bundle, without the churn and influence models.

        For a pass that only needs the value (the churn and influence models cost as much again).
        `btyd` defaults to the bundle's stored fit, as `kamml.tracking.pyfunc.score_frame` scores. Every
        bundle a job trains is anchored, so this is `predict`'s column; on a bundle not anchored,
        `predict` refits BTYD on a batch of 100 rows or more (``refit_btyd``) and differs: pass
        ``btyd=fit_btyd(features)`` (`kamml.models.btyd_features`) for its numbers.
        """
        columns = self.score_columns(features, btyd=self.btyd if btyd is None else btyd, value_only=True)
        return np.asarray(columns["clv"], dtype=float)

    def drivers(self, features: pd.DataFrame, *, top: int = 3, btyd: BtydFit | None = None) -> list[str]:
        """The drivers in words of feature rows, as `predict`'s ``drivers`` on an anchored bundle.

        For a batch job that names drivers for its top accounts after scoring every account without
        them: the three models are not run again. `btyd` defaults to the bundle's stored fit (the one
        `kamml.tracking.pyfunc.score_frame` scores with); on a bundle not anchored, `predict` refits
        BTYD on its batch and names drivers from that fit (see `predict_value`). `top` as `predict`'s
        `top_drivers`: a whole number, 0 (empty texts) or more; -1 is a `ModelError`.
        """
        top = check_count(top, "top")
        self._check_columns(features, None)
        prepared, _, columns, _ = self._prepare(features, self.btyd if btyd is None else btyd)
        return self._drivers(prepared, self._driver_values(columns, prepared), len(features), top=top)

    def _driver_values(self, columns: Mapping[str, Any], prepared: Any) -> Callable[[str], np.ndarray]:
        """A feature's values as its drivers name them: what the models read, not only what was sent.

        A number sent as text (JSON from a CRM) reads as the number; a category the models never saw,
        scored as a missing value, says so (it read as a level the models had learnt something of).
        """
        names = self.clv.feature_names_

        def values(name: str) -> np.ndarray:
            column = np.asarray(columns[name])
            if name not in names:
                return column
            read = prepared.matrix[:, names.index(name)]
            if name not in self.clv.categories_:
                return read if column.dtype.kind in "OUS" else column
            unseen = np.isnan(read) & np.asarray(pd.notna(column.astype(object)), dtype=bool)
            if not unseen.any():
                return column
            column = column.astype(object)  # a copy: the caller's rows stay as they were
            column[unseen] = [f"{v} ({UNSEEN_LEVEL})" for v in column[unseen]]
            return column

        return values

    def _check_columns(self, features: pd.DataFrame, size_feature: str | None) -> None:
        """FeatureMismatchError naming the model's columns (and the effort size feature) not in `features`."""
        if not isinstance(features, pd.DataFrame):  # the columns are matched by name
            raise ModelError(
                f"a ModelBundle scores a pandas DataFrame of feature rows with named columns (as from "
                f"kamml.build_features), got {type(features).__name__}"
            )
        check_unique_columns(features)
        self._check_built_for(features)
        needed = [*self.features, *([size_feature] if size_feature else [])]
        # a set of the (unique, text) labels: ~1 us less per feature than asking the Index each time
        present = features.columns if isinstance(features.columns, pd.MultiIndex) else set(features.columns)
        missing = [c for c in dict.fromkeys(needed) if c not in present and not c.startswith("btyd_")]
        if missing:
            raise FeatureMismatchError(missing, present=present)

    def _check_built_for(self, features: pd.DataFrame) -> None:
        """A ConfigError when `features` record another window or time unit than this bundle's.

        `mark_built_with` records them: ``spend_last_year_horizon`` would cover another span, or recency
        and T be in another unit. Frames without the record (a CRM's rows, a file) are not checked.
        """
        window = features.attrs.get("feature_window_days")
        if window is not None and window != self.train_horizon_days:
            raise ConfigError(
                f"the feature rows were built for a {window}-day window, but the model was trained on "
                f"{self.train_horizon_days}-day label windows (spend_last_year_horizon covers that "
                "span): build them with bundle.scoring_config(config), as kamml score does"
            )
        unit = features.attrs.get("time_unit")
        own = "weeks" if self.unit_days == 7 else "days"
        if unit is not None and unit != own:
            raise ConfigError(
                f"the feature rows' recency and T are in {unit}, but the model was trained in {own}: "
                "build them with bundle.scoring_config(config), as kamml score does"
            )

    def _stretch(
        self,
        known: np.ndarray,
        extra: dict[str, np.ndarray],
        expected_H: np.ndarray,
        bg: Any,
        rfm: tuple[np.ndarray, np.ndarray, np.ndarray],
        clv: np.ndarray,
        p_churn: np.ndarray,
        referral: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Carry predictions from the training window h to the horizon H (module docs).

        By the bundle's `value_ratio` and `churn_exponent`; bundles saved without them use per-account
        BG/NBD ratios: E[X(H)] / E[X(h)] for value and (1 - P0(H)) / (1 - P0(h)) for the probability of
        a purchase, where E[X(h)] and P0(h) are the btyd feature columns and E[X(H)] is given.
        """
        H, h = self.horizon_units, self.train_units
        if self.value_ratio is not None and self.churn_exponent is not None:
            p_churn_H = _stretch_no_purchase(p_churn, self.churn_exponent)
            clv_H = clv * self.value_ratio
            if self.value_shape is not None:
                clv_H = apply_value_shape(clv_H, self.value_shape)
            return clv_H, p_churn_H, referral * self._referral_stretch()
        ratio = np.full(len(clv), H / h)
        buy_ratio = np.ones(len(clv))
        if known.any():
            e_h, e_H = extra["btyd_expected_purchases"][known], expected_H[known]
            ratio[known] = np.where(e_h > 0, e_H / np.maximum(e_h, 1e-12), H / h)
            p0_h = extra["btyd_p_zero"][known]
            p0_H = bg.p_zero_purchases(H, *rfm)
            buy_ratio[known] = np.where(1 - p0_h > 1e-12, (1 - p0_H) / np.maximum(1 - p0_h, 1e-12), 1.0)
        p_buy = np.clip((1 - p_churn) * buy_ratio, 0.0, 1.0)
        return clv * ratio, 1 - p_buy, referral * self._referral_stretch()

    def _referral_stretch(self) -> float:
        """Referral value's factor from h to H: `referral_ratio`, else in proportion to time."""
        if self.referral_ratio is not None:
            return self.referral_ratio
        return self.horizon_units / self.train_units

    def _drivers(self, prepared: Any, values: Any, n: int, top: int = 3) -> list[str]:
        """Each account's drivers in words, '; '-separated ('' for top 0), per model its top movers.

        For the value, churn and influence models in turn, the `top` features whose contributions move
        the account's prediction most, either way; each phrase ends in what it does, e.g. "(raises
        value)", "(lowers churn risk)", "(raises referral value)" (`kamml.models.drivers`).

        `values(name)` gives a feature's column as an array. Phrases are built per feature over all the
        rows naming it (a few dozen features), not per row (about 2 s per 100,000 rows); the TreeSHAP
        values (`kamml.models._treeshap`), about 12 predictions per row and model, are most of the cost
        (three models of 635 trees in all: about 3.4 s for 20,000 rows on 2 cores).
        """
        if n == 0:
            return []
        if top < 1:
            return [""] * n
        models: list[tuple[Any, str]] = [(self.clv, DRIVER_TARGETS["value"])]
        models.append((self.churn, DRIVER_TARGETS["churn"]))
        if self.influence is not None:
            models.append((self.influence, DRIVER_TARGETS["referral"]))
        phrases: list[list[str]] = [[] for _ in range(n)]
        for model, target in models:
            names, contrib = model.top_contributions(
                prepared, top=top, horizon_days=self.train_horizon_days, by="size"
            )
            if n <= SMALL_FRAME_ROWS:  # a request's few rows: row by row, without a mask per feature
                self._row_phrases(phrases, names, contrib, values, target)
                continue
            for j in range(names.shape[1]):
                column = names[:, j]
                for name in {name for name in column.tolist() if name is not None}:
                    where = np.flatnonzero(column == name)
                    chosen = values(str(name))[where]
                    ups = contrib[where, j] > 0
                    for i, value, up in zip(where.tolist(), chosen.tolist(), ups.tolist(), strict=True):
                        phrases[i].append(self._phrase(str(name), value, up, target))
        return ["; ".join(p) for p in phrases]

    def _row_phrases(
        self, phrases: list[list[str]], names: np.ndarray, contrib: np.ndarray, values: Any, target: str
    ) -> None:
        """`_drivers`' phrases of one model appended row by row: the same texts, in the same order.

        For a few rows the per-feature masks cost more than the phrases (about 0.1 ms a request).
        """
        for i, (row_names, row_contrib) in enumerate(zip(names.tolist(), contrib.tolist(), strict=True)):
            for name, size in zip(row_names, row_contrib, strict=True):
                if name is None:
                    continue
                value = values(str(name))[i : i + 1].tolist()[0]
                phrases[i].append(self._phrase(str(name), value, size > 0, target))

    def _phrase(self, name: str, value: Any, up: bool, target: str) -> str:
        """A driver in words, e.g. "days since the last purchase: 212 (raises churn risk)"."""
        words = phrase(name, value, self.unit_days, self.train_horizon_days)
        return f"{words} ({'raises' if up else 'lowers'} {target})"

    # ---- persistence: JSON + LightGBM text, no pickle ---------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole bundle as JSON-able data (LightGBM models as their model text)."""
        return {
            "format_version": FORMAT_VERSION,
            "horizon_days": self.horizon_days,
            "train_horizon_days": self.train_horizon_days,
            "unit_days": self.unit_days,
            "features": self.features,
            "feature_config": self.feature_config,
            "btyd": self.btyd.to_dict(),
            "clv": self.clv.to_dict(),
            "churn": self.churn.to_dict(),
            "influence": None if self.influence is None else self.influence.to_dict(),
            "meta": self.meta,
            "effort": None if self.effort is None else self.effort.to_dict(),
            "value_ratio": self.value_ratio,
            "churn_exponent": self.churn_exponent,
            "referral_ratio": self.referral_ratio,
            "btyd_bias": self.btyd_bias,
            "value_level": self.value_level,
            "churn_bias": self.churn_bias,
            "churn_shift": self.churn_shift,
            "value_shape": self.value_shape,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ModelBundle:
        """Rebuild a bundle saved by `to_dict`."""
        if state.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"unknown model bundle format {state.get('format_version')!r}")
        horizon, train, unit = _stored_time(state)
        clv = ClvModel.from_dict(state["clv"])
        churn = ChurnModel.from_dict(state["churn"])
        influence = None if state["influence"] is None else InfluenceModel.from_dict(state["influence"])
        features = list(state["features"])
        for model in (clv, churn, influence):
            if model is not None and (model.feature_names_ != features or model.horizon_days_ != train):
                raise ValueError(
                    f"the {type(model).__name__} was trained on other feature columns or another window "
                    f"({model.horizon_days_} days) than the bundle's features and train_horizon_days "
                    f"({train})"
                )
        return cls(
            horizon_days=horizon,
            train_horizon_days=train,
            unit_days=unit,
            features=features,
            btyd=_stored_btyd(state["btyd"]),
            clv=clv,
            churn=churn,
            influence=influence,
            meta=dict(state.get("meta", {})),
            feature_config=dict(state.get("feature_config", {})),
            effort=None if state.get("effort") is None else EffortResponse.from_dict(state["effort"]),
            value_ratio=_optional_float(state.get("value_ratio"), "value_ratio", positive=True),
            churn_exponent=_optional_float(state.get("churn_exponent"), "churn_exponent", positive=True),
            referral_ratio=_optional_float(state.get("referral_ratio"), "referral_ratio", positive=True),
            btyd_bias=_optional_float(state.get("btyd_bias"), "btyd_bias", nonnegative=True),
            value_level=_optional_float(state.get("value_level"), "value_level", positive=True),
            churn_bias=_optional_float(state.get("churn_bias"), "churn_bias"),
            churn_shift=_optional_float(state.get("churn_shift"), "churn_shift"),
            value_shape=_shape(state.get("value_shape")),
        )

    def save(self, path: str | Path) -> Path:
        """Write the bundle into the folder `path`; return the path of its `bundle.json`.

        Each LightGBM model goes into its own native text file (``clv.txt``, ``churn.txt``,
        ``influence.txt``, loadable with ``lightgbm.Booster(model_file=...)``); everything else (feature
        specification, BTYD parameters, calibration arrays, horizons) into ``bundle.json``, which names
        the text files. No pickle. Each file is written whole or not at all (`atomic_path`), bundle.json
        last; a model file of an earlier bundle that this one lacks (``influence.txt``) is removed, so
        the folder holds this bundle alone.
        """
        folder = Path(path)
        state = self.to_dict()
        boosters: dict[str, str] = {}
        for name in _MODELS:
            if state[name] is not None:
                boosters[name] = text = state[name].pop("booster")
                state[name]["booster_file"] = f"{name}.txt"
                state[name]["booster_sha256"] = _sha256(text)  # `load` refuses a damaged copy
        # made before any file is written: a state JSON cannot hold leaves no half bundle
        document = json.dumps(state, indent=1)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in boosters.items():
            with atomic_path(folder / f"{name}.txt") as tmp:
                tmp.write_text(text, encoding="utf-8")
        target = folder / "bundle.json"
        with atomic_path(target) as tmp:
            tmp.write_text(document, encoding="utf-8")
        for name in _MODELS:
            if name not in boosters:
                (folder / f"{name}.txt").unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        """Read a bundle written by `save` (its folder or its bundle.json)."""
        target = Path(path)
        if target.is_dir():
            target = target / "bundle.json"
        if not target.is_file():
            raise ModelError(f"no model bundle at {path} (expected a folder holding bundle.json)")
        folder = target.parent
        try:
            state = json.loads(target.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(
                f"model bundle {folder} is damaged: its bundle.json is not JSON ({exc})"
            ) from None
        if not isinstance(state, dict):
            raise ModelError(f"model bundle {folder} is damaged: its bundle.json is not an object")
        for name in _MODELS:
            part = state.get(name)
            if isinstance(part, dict) and "booster_file" in part:
                part["booster"] = _read_booster(
                    folder, name, part.pop("booster_file"), part.pop("booster_sha256", None)
                )
        try:
            return cls.from_dict(state)
        except KammlError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, lgb.basic.LightGBMError) as exc:
            raise ModelError(
                f"model bundle {folder} is damaged: {type(exc).__name__}: {exc} (save or copy it again)"
            ) from None
