from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from kamml.errors import ModelError
from kamml.evaluation.metrics import normalized_gini
from kamml.models.influence import MIN_SEEN, InfluenceModel, referral_window_ratio

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


def test_a_total_scale_at_its_bound_is_a_warning(caplog):
    """The demo's scoring model read "total scale 2.0000" at INFO, its latest total 2.69 x the predicted."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3))
    snapshot = np.repeat([1, 2, 3], 500)
    y = rng.poisson(0.3 * np.exp(X[:, 0]) * np.where(snapshot == 3, 4.0, 1.0)) * 50.0
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = InfluenceModel(n_estimators=40, num_threads=1).fit(X, y, snapshot=snapshot)
    assert model.scale_ == model.scale_bounds[1]
    assert (
        "actual referral value totals 5.54 times what the earlier snapshots predicted for it, but the "
        "model's correction of its total stops at 2 times (the total scale's clip), so the predicted "
        "referral value is likely too low"
    ) in caplog.text
    # the run's report lists it: what it means for the plan, in plain words
    assert (
        "the ranking of accounts by it holds, but take its amounts, and their weight in the plan, as rough"
        in (caplog.text)
    )
    caplog.clear()
    y = rng.poisson(0.3 * np.exp(X[:, 0])) * 50.0  # the same level throughout: no bound, no warning
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = InfluenceModel(n_estimators=40, num_threads=1).fit(X, y, snapshot=snapshot)
    assert model.scale_bounds[0] < model.scale_ < model.scale_bounds[1]
    assert "likely too" not in caplog.text


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
    # the run's report lists it: what it means for the predictions, in plain words
    assert "so the model gives nearly the same referral value to every account and the reasons" in caplog.text
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


# ------------------------------------------------------------------ referral value from h to H days


def _window_total(rate: np.ndarray, W: int) -> float:
    """Referral value of a W-day window, one referral a day, each spending `rate[a]` on its a-th day."""
    return float(sum(rate[: W - t].sum() for t in range(W)))


def test_window_ratio_is_in_proportion_to_time_when_referred_accounts_spend_only_when_referred() -> None:
    spend, seen = np.zeros(180), np.full(180, 100.0)
    spend[0] = 5000.0
    assert referral_window_ratio(spend, seen, 60, 180) == pytest.approx(3.0)


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.05])
def test_window_ratio_matches_the_windows_of_a_steady_stream_of_referrals(decay: float) -> None:
    """One referral a day, each spending at a rate that falls with age: the ratio of the windows' totals."""
    rate = 10.0 * np.exp(-decay * np.arange(180))
    seen = np.linspace(400.0, 200.0, 180)  # fewer referrals are old enough to be seen at higher ages
    ratio = referral_window_ratio(rate * seen, seen, 60, 180)
    assert ratio == pytest.approx(_window_total(rate, 180) / _window_total(rate, 60), rel=1e-9)
    assert 3.0 < ratio <= 9.0


def test_window_ratio_carries_the_last_rate_seen_to_older_ages() -> None:
    """Referrals seen only up to 100 days: older ages take the last 28 days' pooled rate."""
    seen = np.where(np.arange(180) < 100, 50.0, 3.0)
    spend = 2.0 * seen
    spend[100:] = 1e6  # few referrals at these ages: not read
    expected = _window_total(np.full(180, 2.0), 180) / _window_total(np.full(180, 2.0), 60)
    assert referral_window_ratio(spend, seen, 60, 180) == pytest.approx(expected)


def test_window_ratio_needs_referrals_seen_over_the_training_window() -> None:
    seen = np.where(np.arange(180) < 59, float(MIN_SEEN), MIN_SEEN - 1.0)
    assert referral_window_ratio(np.ones(180), seen, 60, 180) is None
    assert referral_window_ratio(np.zeros(180), np.full(180, 100.0), 60, 180) is None  # nothing spent
    assert referral_window_ratio(np.ones(90), np.ones(90), 90, 90) == 1.0
    with pytest.raises(ValueError, match="cover 180 days"):
        referral_window_ratio(np.ones(90), np.full(90, 100.0), 180, 60)


def test_window_ratio_carries_a_longer_training_window_down_to_the_horizon() -> None:
    """90-day labels for a 30-day horizon: the inverse of carrying 30 days up to 90."""
    rate = 10.0 * np.exp(-0.02 * np.arange(90))
    seen = np.full(90, 300.0)
    down = referral_window_ratio(rate * seen, seen, 90, 30)
    assert down == pytest.approx(_window_total(rate, 30) / _window_total(rate, 90), rel=1e-9)
    assert down == pytest.approx(1 / referral_window_ratio(rate * seen, seen, 30, 90), rel=1e-12)
    assert 1 / 9 <= down < 1 / 3


def test_window_ratio_stays_between_time_and_its_square() -> None:
    seen = np.full(180, 100.0)
    growing = seen * np.arange(180.0) ** 3  # spend growing fast with age: more than a steady rate
    assert referral_window_ratio(growing, seen, 60, 180) == pytest.approx(9.0)
    refunds = np.zeros(180)
    refunds[0], refunds[1:] = 5000.0, -1.0  # refunds after the first day: less than in proportion
    assert referral_window_ratio(refunds, seen, 60, 180) == pytest.approx(3.0)


def make_referral_history(
    n: int = 3000, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Accounts with a gamma-distributed referral rate per day: their past referrals, age and P(alive),
    the referral value of the next window (driven by the same rate), and the rates themselves."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 0.0004, n)  # per day: a few referrals in a few years for the keenest
    days = rng.uniform(30, 1000, n)
    alive = rng.uniform(0.2, 1.0, n)
    X = pd.DataFrame(
        {
            "referrals_made": rng.poisson(rate * days).astype(float),
            "days_since_first": days,
            "btyd_p_alive": alive,
            "noise": rng.normal(size=n),
        }
    )
    y = rng.poisson(rate * 180 * alive) * rng.gamma(2.0, 500.0, n)
    return X, y, rate, np.repeat([1, 2, 3], n // 3)


def test_the_referral_prior_is_fitted_by_moments_to_the_books_rates() -> None:
    """The gamma prior's mean a / b is the book's referral rate and its variance a / b^2 the spread of
    the accounts' rates beyond their counts' Poisson noise (here the truth: Gamma(0.5, scale 0.0004))."""
    X, y, rate, snapshot = make_referral_history(n=60_000, seed=3)
    model = InfluenceModel(**{**FAST, "n_estimators": 5}).fit(X, y, snapshot=snapshot)
    a, b = model.prior_
    assert a / b == pytest.approx(rate.mean(), rel=0.05)
    assert a / b**2 == pytest.approx(rate.var(), rel=0.25)
    assert (
        InfluenceModel(**{**FAST, "n_estimators": 5}, prior_weight=0)
        .fit(X, y, snapshot=np.repeat([1, 2, 3], 20_000))
        .prior_
        is None
    )


def test_boosting_from_the_referral_prior_ranks_what_few_trees_could_not() -> None:
    """Sparse referral labels stop boosting after a few trees; from the prior (rate shrunk toward the
    book's, times P(alive)) the ranking is there from the start. Without the three columns, or with
    prior_weight 0, the start is a constant, as before."""
    X, y, _, snapshot = make_referral_history()
    X_new, _, rate_new, _ = make_referral_history(seed=9)
    truth = rate_new * X_new["btyd_p_alive"].to_numpy()
    few = {**FAST, "n_estimators": 3}
    with_prior = InfluenceModel(**few).fit(X, y, snapshot=snapshot)
    without = InfluenceModel(**few, prior_weight=0).fit(X, y, snapshot=snapshot)
    assert (
        normalized_gini(truth, with_prior.predict(X_new))
        > normalized_gini(truth, without.predict(X_new)) + 0.1
    )
    assert without.prior_ is None
    assert InfluenceModel(**few).fit(X.drop(columns="btyd_p_alive"), y, snapshot=snapshot).prior_ is None
    loaded = InfluenceModel.from_dict(json.loads(json.dumps(with_prior.to_dict())))
    assert loaded.prior_ == with_prior.prior_
    np.testing.assert_array_equal(loaded.predict(X_new), with_prior.predict(X_new))
    # the prior's share of the prediction is credited to referrals_made among the drivers
    contributions = with_prior.explain(X_new.head(50))
    assert "referrals_made" in set(contributions["driver_1"])


def test_no_referral_prior_where_no_row_is_alive_by_bg_nbd() -> None:
    """P(alive) missing on every row (no purchase history to fit BG/NBD on) leaves no prior to start
    from: the model starts from a constant, not from an offset of zeros it would refuse."""
    X, y, _, snapshot = make_referral_history(n=900)
    model = InfluenceModel(**FAST).fit(X.assign(btyd_p_alive=np.nan), y, snapshot=snapshot)
    assert model.prior_ is None
    assert np.all(model.predict(X.assign(btyd_p_alive=np.nan)) >= 0)
