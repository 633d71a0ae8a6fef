"""The config's check of a models section refuses a setting exactly when the estimator it trains does.

`kamml.models.bundle.check_models_section` words the estimators' rules in config terms (`_params_problem`,
`_monotone_problem`, `_argument_problem`, `_rounds_problem`, LightGBM's one-round check): a second copy of
the rules of `LGBMModel.lgb_params`, `_monotone_directions`, `_monotone_params`, `_num_rounds` and the
estimators' parameter constraints. Each row below goes to both sides: the config (built, then the
bundle's feature-aware step `_lgbm_kwargs`, which runs before any model trains) and the estimator the
bundle would train, given the settings as the bundle hands them over, fitted on a small real training
frame. A rule changed on one side only shows as a row where they part.
"""

from __future__ import annotations

import re
from typing import Any

import lightgbm as lgb
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import ConfigError
from kamml.features import build_training_frame, training_cutoffs
from kamml.models import ChurnModel, ClvModel, InfluenceModel
from kamml.models._lgbm import canonical_params, is_categorical, is_true
from kamml.models.bundle import (
    CHURN_BLEND,
    CLV_OFFSET,
    _lgbm_kwargs,
    _whole,
    add_snapshot_btyd,
    default_monotone,
    feature_columns,
)

HORIZON = 90
#: Few rounds on a few hundred rows: each fit takes milliseconds. A row's own settings win.
FAST = {"n_estimators": 3, "early_stopping_rounds": 2}
MODELS: dict[str, Any] = {"clv": ClvModel, "churn": ChurnModel, "influence": InfluenceModel}
LABELS = {"clv": "value", "churn": "churned", "influence": "referral_value"}
#: The settings each estimator takes as an argument (the rest go to its LightGBM ``params``).
ARGUMENTS = {
    "clv": {"offset_feature", "offset_weight"},
    "churn": {"blend_feature"},
    "influence": {"objective", "prior_weight"},
}
COMMON = {"n_estimators", "learning_rate", "early_stopping_rounds", "monotone"}
#: The bundle's defaults of the estimators' own arguments.
DEFAULTS: dict[str, dict[str, Any]] = {
    "clv": {"offset_feature": CLV_OFFSET},
    "churn": {"blend_feature": CHURN_BLEND},
    "influence": {},
}

#: A categorical and a numeric feature of the generated frame (asserted in `frame`).
CATEGORY = "attr_segment"
NUMBER = "spend_90d"

OK, AT_BUILD, AT_TRAINING = "ok", "refused when the config is built", "refused before training"


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A small real training frame (two snapshots of 150 generated accounts) with its BTYD columns."""
    path = tmp_path_factory.mktemp("rules")
    synthetic.generate(150, seed=11, years=2.0).write(path)
    data = load_data(path)
    cfg = Config.from_dict({"time": {"horizon_days": HORIZON, "snapshots": 2, "step_days": 60}})
    train = build_training_frame(data, training_cutoffs(data.end.normalize(), HORIZON, 2, 60), cfg)
    train = add_snapshot_btyd(train, HORIZON / cfg.time.unit_days)
    assert is_categorical(train[CATEGORY])
    assert not is_categorical(train[NUMBER])
    return train


def _features(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The frame's feature columns and the categorical ones among them, as `ModelBundle.fit` finds them."""
    features = feature_columns(frame)
    return features, [c for c in features if is_categorical(frame[c])]


def config_verdict(name: str, settings: dict[str, Any], frame: pd.DataFrame) -> tuple[str, str]:
    """Whether the config refuses the settings when built, before training (by feature), or not at all."""
    try:
        cfg = Config.from_dict({"models": {"threads": 1, name: {**FAST, **settings}}})
    except ConfigError as exc:
        return AT_BUILD, str(exc)
    try:
        _lgbm_kwargs(cfg.models, name, *_features(frame))
    except ConfigError as exc:
        return AT_TRAINING, str(exc)
    return OK, ""


def estimator_kwargs(name: str, settings: dict[str, Any], features: list[str]) -> dict[str, Any]:
    """The settings as the estimator's arguments and ``params``, with the bundle's defaults.

    Whole floats of the arguments read as ints (``n_estimators: 3.0``), as the config documents (those of
    ``params`` the estimator reads itself, `lightgbm_whole`); the money features are
    constrained by default unless the params hold positional constraints or linear trees.
    """
    kwargs: dict[str, Any] = dict(DEFAULTS[name])
    params: dict[str, Any] = {}
    for key, value in settings.items():
        if key in COMMON | ARGUMENTS[name]:
            kwargs[key] = _whole(value) if key in FAST or key == "learning_rate" else value
        else:
            params[key] = value  # num_leaves: 7.0 as given: the estimator reads it as 7 itself
    try:
        given = canonical_params(params)
    except ValueError:  # aliases given twice: the estimator refuses them itself
        given = {}
    if (
        "monotone" not in kwargs
        and "monotone_constraints" not in given
        and not is_true(given.get("linear_tree"))
    ):
        kwargs["monotone"] = default_monotone(name, features)
    return {**kwargs, "params": params or None}


def estimator_verdict(name: str, settings: dict[str, Any], frame: pd.DataFrame) -> str | None:
    """The estimator's refusal of the settings, built and fitted as the bundle trains it; None if none."""
    features, _ = _features(frame)
    try:
        model = MODELS[name](
            horizon_days=HORIZON, num_threads=1, **estimator_kwargs(name, {**FAST, **settings}, features)
        )
        model.fit(frame[features], frame[LABELS[name]], snapshot=frame["snapshot"].to_numpy())
    except (TypeError, ValueError, lgb.basic.LightGBMError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _positional(values: int) -> list[int]:
    """Positional monotone constraints of `values` length (the first feature constrained)."""
    return [1] + [0] * (values - 1)


#: The frame's feature count (60), for positional constraints; `test_the_frame_has_the_feature_count`.
N_FEATURES = 60

CASES: list[tuple[str, dict[str, Any], str]] = [
    # objectives each model accepts and refuses (and their aliases)
    ("clv", {}, OK),
    ("clv", {"objective": "tweedie"}, OK),
    ("clv", {"objective": "poisson"}, OK),
    ("clv", {"objective": "binary"}, AT_BUILD),
    ("clv", {"objective": "regression"}, AT_BUILD),
    ("clv", {"objective": "Tweedie"}, AT_BUILD),
    ("clv", {"objective": None}, AT_BUILD),
    ("clv", {"loss": "poisson"}, OK),
    ("clv", {"application": "binary"}, AT_BUILD),
    ("churn", {}, OK),
    ("churn", {"objective": "binary"}, OK),
    ("churn", {"objective": "tweedie"}, AT_BUILD),
    ("churn", {"objective": "cross_entropy"}, AT_BUILD),
    ("churn", {"app": "poisson"}, AT_BUILD),
    ("influence", {}, OK),
    ("influence", {"objective": "poisson"}, OK),
    ("influence", {"objective": "tweedie"}, OK),
    ("influence", {"objective": "binary"}, AT_BUILD),
    ("influence", {"objective": None}, AT_BUILD),
    ("influence", {"loss": "tweedie"}, OK),  # the argument's default, named once
    ("influence", {"loss": "poisson"}, AT_BUILD),  # beside the argument's default tweedie
    ("influence", {"objective": "poisson", "loss": "poisson"}, OK),
    ("influence", {"objective": "poisson", "objective_type": "tweedie"}, AT_BUILD),
    # monotone by feature name
    ("clv", {"monotone": None}, OK),
    ("clv", {"monotone": {}}, OK),
    ("clv", {"monotone": {NUMBER: 1}}, OK),
    ("churn", {"monotone": {NUMBER: -1}}, OK),
    ("influence", {"monotone": {NUMBER: 1}}, OK),
    ("clv", {"monotone": {NUMBER: 1.0}}, OK),
    ("clv", {"monotone": {NUMBER: 0}}, OK),
    ("clv", {"monotone": {NUMBER: 2}}, AT_BUILD),
    ("churn", {"monotone": {NUMBER: -2}}, AT_BUILD),
    ("clv", {"monotone": {NUMBER: 0.5}}, AT_BUILD),
    ("clv", {"monotone": {NUMBER: True}}, AT_BUILD),
    ("clv", {"monotone": {NUMBER: "1"}}, AT_BUILD),
    ("clv", {"monotone": {NUMBER: None}}, AT_BUILD),
    ("clv", {"monotone": [1, 0]}, AT_BUILD),
    ("clv", {"monotone": "spend_90d"}, AT_BUILD),
    ("clv", {"monotone": 1}, AT_BUILD),
    ("clv", {"monotone": {"no_such_feature": 1}}, AT_TRAINING),
    ("churn", {"monotone": {"no_such_feature": 0}}, AT_TRAINING),  # a name that is no column is a slip
    ("clv", {"monotone": {CATEGORY: 1}}, AT_TRAINING),
    ("influence", {"monotone": {CATEGORY: -1}}, AT_TRAINING),
    ("clv", {"monotone": {CATEGORY: 0}}, OK),  # no constraint: no order needed
    # positional monotone_constraints (and aliases), alone and beside monotone
    ("clv", {"monotone_constraints": _positional(N_FEATURES)}, OK),
    ("churn", {"mc": _positional(N_FEATURES)}, OK),
    ("influence", {"monotonic_cst": _positional(N_FEATURES)}, OK),
    ("clv", {"monotone_constraint": ",".join(map(str, _positional(N_FEATURES)))}, OK),
    ("clv", {"monotone_constraints": [1, 0]}, AT_TRAINING),
    ("churn", {"mc": "1,0,-1"}, AT_TRAINING),
    ("clv", {"monotone": {NUMBER: 1}, "mc": _positional(N_FEATURES)}, AT_BUILD),
    ("influence", {"monotone": {NUMBER: -1}, "monotone_constraints": [1]}, AT_BUILD),
    ("clv", {"monotone": {NUMBER: 0}, "mc": _positional(N_FEATURES)}, OK),
    ("clv", {"monotone": {}, "mc": _positional(N_FEATURES)}, OK),
    ("clv", {"monotone": None, "mc": _positional(N_FEATURES)}, OK),
    # of another length beside monotone without a direction: the estimator counts them as when alone
    ("clv", {"monotone": {NUMBER: 0}, "mc": [1, 0]}, AT_TRAINING),
    ("churn", {"monotone": {}, "monotone_constraints": [1]}, AT_TRAINING),
    ("influence", {"monotone": None, "mc": "1,0,0"}, AT_TRAINING),
    # linear trees with monotone constraints
    ("clv", {"linear_tree": True}, OK),  # the default constraints are left out
    ("churn", {"linear_trees": True}, OK),
    ("clv", {"linear_tree": True, "monotone": {NUMBER: 1}}, AT_BUILD),
    ("churn", {"linear_trees": "true", "monotone": {NUMBER: -1}}, AT_BUILD),
    ("influence", {"linear_tree": 1, "monotone": {NUMBER: 1}}, AT_BUILD),
    ("clv", {"linear_tree": False, "monotone": {NUMBER: 1}}, OK),
    ("clv", {"linear_tree": "false", "monotone": {NUMBER: 1}}, OK),
    ("clv", {"linear_tree": True, "monotone": {NUMBER: 0}}, OK),
    ("clv", {"linear_tree": True, "mc": _positional(N_FEATURES)}, OK),
    # monotone_constraints_method
    ("clv", {"monotone_constraints_method": "advanced"}, OK),
    ("churn", {"mc_method": "basic"}, OK),
    ("influence", {"monotone_constraining_method": "intermediate", "monotone": {NUMBER: 1}}, OK),
    ("clv", {"monotone_constraints_method": "bogus"}, AT_BUILD),
    ("churn", {"mc_method": "Advanced"}, AT_BUILD),
    ("influence", {"monotone_constraints_method": 1}, AT_BUILD),
    # a parameter given twice (as aliases), early stopping in the params
    ("clv", {"num_leaves": 7, "max_leaves": 7}, AT_BUILD),
    ("churn", {"lambda_l2": 1.0, "reg_lambda": 2.0}, AT_BUILD),
    ("influence", {"mc": [1], "monotone_constraints": [1]}, AT_BUILD),
    ("clv", {"num_trees": 4, "num_iterations": 4}, AT_BUILD),
    ("clv", {"early_stopping_round": 3}, AT_BUILD),
    ("churn", {"early_stopping": 3}, AT_BUILD),
    ("influence", {"n_iter_no_change": 3}, AT_BUILD),
    ("clv", {"early_stopping_rounds": None}, OK),
    ("clv", {"learning_rate": 0.1, "eta": 0.2}, OK),  # the argument, then the params' alias wins
    # the estimators' own arguments: types and bounds
    ("clv", {"n_estimators": 1}, OK),
    ("clv", {"n_estimators": 3.0}, OK),
    ("clv", {"n_estimators": 0}, AT_BUILD),
    ("clv", {"n_estimators": 2.5}, AT_BUILD),
    ("clv", {"n_estimators": "3"}, AT_BUILD),
    ("churn", {"n_estimators": True}, AT_BUILD),
    ("clv", {"learning_rate": 1e-9}, OK),
    ("churn", {"learning_rate": 0}, AT_BUILD),
    ("influence", {"learning_rate": -0.1}, AT_BUILD),
    ("clv", {"learning_rate": True}, AT_BUILD),
    ("clv", {"learning_rate": "0.1"}, AT_BUILD),
    ("churn", {"early_stopping_rounds": 1}, OK),
    ("churn", {"early_stopping_rounds": 0}, AT_BUILD),
    ("influence", {"early_stopping_rounds": 1.5}, AT_BUILD),
    ("clv", {"offset_weight": 0}, OK),
    ("clv", {"offset_weight": 1.5}, OK),
    ("clv", {"offset_weight": -0.5}, AT_BUILD),
    ("clv", {"offset_weight": False}, AT_BUILD),
    ("clv", {"offset_feature": None}, OK),
    ("clv", {"offset_feature": "btyd_expected_purchases"}, OK),
    ("clv", {"offset_feature": 3}, AT_BUILD),
    ("clv", {"offset_feature": "no_such_feature"}, AT_BUILD),
    ("churn", {"blend_feature": None}, OK),
    ("churn", {"blend_feature": "btyd_p_alive"}, OK),
    ("churn", {"blend_feature": ["btyd_p_alive"]}, AT_BUILD),
    ("churn", {"blend_feature": "no_such_feature"}, AT_BUILD),
    # a feature of the catalogue as these data give it: a category, or an attribute they lack
    ("clv", {"offset_feature": CATEGORY}, AT_TRAINING),
    ("churn", {"blend_feature": CATEGORY}, AT_TRAINING),
    ("clv", {"offset_feature": "attr_no_such_column"}, AT_TRAINING),
    ("churn", {"blend_feature": "attr_no_such_column"}, AT_TRAINING),
    ("influence", {"prior_weight": 0}, OK),
    ("influence", {"prior_weight": 2}, OK),
    ("influence", {"prior_weight": -1}, AT_BUILD),
    ("influence", {"prior_weight": True}, AT_BUILD),
    # a setting of another model, or no setting at all
    ("churn", {"offset_weight": 0.5}, AT_BUILD),
    ("clv", {"prior_weight": 0.5}, AT_BUILD),
    ("influence", {"blend_feature": CHURN_BLEND}, AT_BUILD),
    ("clv", {"calibrate_total": False}, AT_BUILD),
    ("clv", {"num_leave": 7}, AT_BUILD),
    # the number of rounds as LightGBM's num_iterations (or an alias)
    ("clv", {"num_iterations": 4}, OK),
    ("churn", {"num_trees": 4.0}, OK),
    ("influence", {"num_boost_round": "4"}, OK),
    # beside n_estimators (FAST), which LightGBM lists as an alias of num_iterations
    ("clv", {"num_iterations": 0}, AT_BUILD),
    ("churn", {"num_rounds": -2}, AT_BUILD),
    ("influence", {"nrounds": 2.5}, AT_BUILD),
    ("clv", {"num_trees": True}, AT_BUILD),
    ("clv", {"num_iterations": "four"}, AT_BUILD),
    # LightGBM's own types and ranges
    ("clv", {"num_leaves": 2}, OK),
    ("clv", {"num_leaves": 7.0}, OK),
    ("clv", {"num_leaves": 1}, AT_BUILD),
    ("clv", {"num_leaves": "x"}, AT_BUILD),
    ("churn", {"num_leaves": 7.5}, AT_BUILD),
    ("churn", {"min_child_samples": -3}, AT_BUILD),
    ("influence", {"reg_alpha": -1}, AT_BUILD),
    ("clv", {"bagging_fraction": 1.0}, OK),
    ("clv", {"bagging_fraction": 0.0}, AT_BUILD),
    ("clv", {"subsample": 1.5}, AT_BUILD),
    ("churn", {"feature_fraction": 0.0}, AT_BUILD),
    ("clv", {"tweedie_variance_power": 1.9}, OK),
    ("clv", {"tweedie_variance_power": 2.0}, AT_BUILD),
    ("influence", {"tweedie_variance_power": 1.0}, OK),
    ("influence", {"tweedie_variance_power": 0.99}, AT_BUILD),
    # the metric early stopping watches
    ("churn", {"metric": "auc"}, OK),
    ("churn", {"metric": "none"}, AT_BUILD),
    ("churn", {"metric": "none", "early_stopping_rounds": None}, OK),
    ("clv", {"metric": "bogus"}, AT_BUILD),
    # parameters kamml sets itself, given anyway
    ("clv", {"seed": 7}, OK),
    ("churn", {"n_jobs": 1}, OK),
    ("influence", {"deterministic": False, "verbose": 1}, OK),
    ("clv", {"force_row_wise": True}, OK),
]


def _case_id(case: tuple[str, dict[str, Any], str]) -> str:
    name, settings, _ = case
    return f"{name}-{settings}"


def test_the_frame_has_the_feature_count(frame: pd.DataFrame) -> None:
    assert len(feature_columns(frame)) == N_FEATURES


@pytest.mark.parametrize(("name", "settings", "expected"), CASES, ids=[_case_id(c) for c in CASES])
def test_the_config_refuses_a_models_setting_exactly_when_its_estimator_does(
    frame: pd.DataFrame, name: str, settings: dict[str, Any], expected: str
) -> None:
    verdict, config_error = config_verdict(name, settings, frame)
    estimator_error = estimator_verdict(name, settings, frame)
    assert (verdict, estimator_error is not None) == (expected, expected != OK), (
        f"config: {verdict} {config_error!r}; estimator: {estimator_error!r}"
    )
    if verdict != OK:  # in the config's words, by the copy of the rule: the key as written
        assert any(re.search(rf"\bmodels\.{name}\.{key}\b", config_error) for key in settings), config_error
