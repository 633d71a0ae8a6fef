from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from kamml.errors import ModelError
from kamml.evaluation.metrics import normalized_gini
from kamml.models.influence import InfluenceModel

FAST = {"num_threads": 1, "n_estimators": 200}


def make_referrals(n: int = 1800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Referral value: rare referrals driven by past referrals and a weak tie to spend, heavy-tailed value."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "referrals_made": rng.poisson(0.3, n).astype(float),
            "spend_total": rng.gamma(1.0, 100.0, n),
            "region": pd.Categorical(rng.choice(["north", "south"], n)),
        }
    )
    rate = 0.08 * np.exp(1.2 * X["referrals_made"] + 0.002 * X["spend_total"])
    referrals = rng.poisson(rate)
    y = referrals * rng.gamma(2.0, 60.0, n)
    return X, y, np.repeat([1, 2, 3], n // 3)


@pytest.mark.parametrize("objective", ["tweedie", "poisson"])
def test_learns_who_brings_in_value(objective: str) -> None:
    X, y, snapshot = make_referrals()
    model = InfluenceModel(objective=objective, **FAST).fit(X, y, snapshot=snapshot)
    assert model.lgb_params()["objective"] == objective
    X_new, y_new, _ = make_referrals(n=3000, seed=5)
    pred = model.predict(X_new)
    assert np.all(pred >= 0)
    assert normalized_gini(y_new, pred) > 0.35
    assert model.explain(X_new.head(5))["driver_1"].notna().any()


@pytest.mark.parametrize("objective", ["tweedie", "poisson"])
def test_referral_value_in_millions_fits_the_model_it_fits_in_units(objective: str) -> None:
    """LightGBM learns y / its mean, so the amounts' unit scales the forecast and changes nothing else."""
    X, y, snapshot = make_referrals()
    base = InfluenceModel(objective=objective, **FAST).fit(X, y, snapshot=snapshot)
    small = X.assign(spend_total=X["spend_total"] * 1e-6)
    scaled = InfluenceModel(objective=objective, **FAST).fit(small, y * 1e-6, snapshot=snapshot)
    assert scaled.best_iteration_ == base.best_iteration_
    np.testing.assert_allclose(scaled.predict(small), base.predict(X) * 1e-6, rtol=1e-4)


def test_defaults() -> None:
    params = InfluenceModel().lgb_params()
    assert params["objective"] == "tweedie"
    assert params["tweedie_variance_power"] == 1.5


def test_bad_objective_is_refused() -> None:
    X, y, _ = make_referrals(n=300)
    with pytest.raises(InvalidParameterError, match="objective"):
        InfluenceModel(objective="binary").fit(X, y)


def test_horizon_round_trip_and_determinism() -> None:
    X, y, snapshot = make_referrals(n=900)
    model = InfluenceModel(horizon_days=365, **FAST).fit(X, y, snapshot=snapshot)
    with pytest.raises(ModelError, match="365-day horizon"):
        model.predict(X, horizon_days=180)
    loaded = InfluenceModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(loaded.predict(X, horizon_days=365), model.predict(X))
    again = InfluenceModel(horizon_days=365, **FAST).fit(X, y, snapshot=snapshot)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


@pytest.mark.parametrize("objective", ["tweedie", "poisson"])
def test_a_target_without_positive_value_to_learn_from_is_a_named_error(objective: str) -> None:
    """LightGBM's own answer was a bare '[tweedie]: sum of labels is zero' and a [Fatal] line."""
    X, y, snap = make_referrals(300)
    model = InfluenceModel(objective=objective, **FAST)
    with pytest.raises(ModelError, match="all 300 rows have y = 0"):
        model.fit(X, np.zeros(300))
    only_latest = np.where(snap == 3, y, 0.0)  # a referral programme younger than one label window
    assert only_latest.sum() > 0
    with pytest.raises(ModelError, match="its 200 earlier rows all have y = 0"):
        model.fit(X, only_latest, snapshot=snap)
    model.fit(X, only_latest)  # without snapshots every row is learnt from
    with pytest.raises(ModelError, match="at least 2 rows, got 0 samples"):
        model.fit(X.iloc[:0], y[:0])


def test_a_latest_snapshot_of_zero_weight_is_not_held_out() -> None:
    """Early stopping on a held-out snapshot weighing nothing kept one tree (a NaN metric); the latest
    snapshot with weight is held out instead, as if the weightless rows were not there."""
    X, y, snap = make_referrals()
    latest = snap == snap.max()
    model = InfluenceModel(**FAST).fit(X, y, snapshot=snap, sample_weight=np.where(latest, 0.0, 1.0))
    dropped = InfluenceModel(**FAST).fit(X[~latest], y[~latest], snapshot=snap[~latest])
    assert np.isfinite(model.validation_score_["tweedie"])
    assert model.best_iteration_ == dropped.best_iteration_ > 1
    assert model.scale_ == pytest.approx(dropped.scale_)


def test_a_latest_snapshot_with_nothing_referred_takes_the_lowest_scale(caplog):
    """A total of 0 left the scale at 1 (no correction) while a total of 1 halved it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3))
    y = rng.poisson(0.3 * np.exp(X[:, 0])) * 50.0
    snapshot = np.repeat([1, 2, 3], 500)
    y[snapshot == 3] = 0.0
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = InfluenceModel(n_estimators=40, num_threads=1).fit(X, y, snapshot=snapshot)
    assert model.scale_ == model.scale_bounds[0]
    assert "total scale at its lower bound" in caplog.text


def test_early_stopping_at_the_first_tree_is_a_warning(caplog):
    """A held-out snapshot that no second tree improves left a near-constant model with an INFO line."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 1))
    snapshot = np.repeat([1, 2, 3], 500)
    sign = np.where(snapshot == 3, -1.0, 1.0)  # what the earlier snapshots teach, the latest reverses
    y = rng.poisson(0.3 * np.exp(1.5 * sign * X[:, 0])) * 50.0
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = InfluenceModel(n_estimators=40, num_threads=1, early_stopping_rounds=5).fit(
            X, y, snapshot=snapshot
        )
    assert model.best_iteration_ == 1
    assert "early stopping kept 1 tree of 40" in caplog.text
    caplog.clear()
    y = rng.poisson(0.3 * np.exp(X[:, 0])) * 50.0  # the same relation throughout
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = InfluenceModel(n_estimators=40, num_threads=1, early_stopping_rounds=5).fit(
            X, y, snapshot=snapshot
        )
    assert model.best_iteration_ > 1
    assert "early stopping kept" not in caplog.text


def test_an_objective_in_params_that_contradicts_the_argument_is_refused() -> None:
    """params={"objective": "poisson"} trained poisson while objective (and to_dict) said tweedie."""
    X, y, _ = make_referrals()
    for params in ({"objective": "poisson"}, {"loss": "poisson"}):
        with pytest.raises(ValueError, match=r"objective='tweedie' and 'poisson' in params"):
            InfluenceModel(params=params, **FAST).fit(X, y)
    model = InfluenceModel(objective="poisson", params={"objective": "poisson"}, **FAST).fit(X, y)
    assert model.lgb_params()["objective"] == "poisson"
