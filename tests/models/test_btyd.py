"""Tests of kamml.models.btyd: published CDNOW parameters, formulas against simulation, stability, API."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import betaln, expit, gammaln, hyp2f1
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from kamml.datasets.cdnow import load_cdnow
from kamml.errors import ModelError, SchemaError
from kamml.models.btyd import (
    BetaGeo,
    GammaGamma,
    _alive_purchases_quadrature,
    _alive_purchases_series,
    _minimize,
)

CALIBRATION_END = pd.Timestamp("1997-09-30")
# Fader, Hardie & Lee (2005), CDNOW sample, weeks.
CDNOW_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def _rfm(transactions: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Weekly BTYD summary of a transaction log: same-day purchases merged, T = (end - first) / 7."""
    calib = transactions[transactions["date"] <= end]
    daily = calib.groupby(["id", "date"], as_index=False)["amount"].sum()
    by_id = daily.groupby("id")["date"]
    first, last, days = by_id.min(), by_id.max(), by_id.size()
    out = pd.DataFrame(
        {
            "frequency": (days - 1).astype(float),
            "recency": (last - first).dt.days / 7.0,
            "T": (end - first).dt.days / 7.0,
        }
    )
    repeat = daily[daily["date"] > daily["id"].map(first)]
    out["monetary"] = repeat.groupby("id")["amount"].mean().reindex(out.index).fillna(0.0)
    return out


def _read(sample: bool) -> pd.DataFrame:
    """The packaged CDNOW log (the files of /work/shared/data/cdnow, checked by sha256 on load)."""
    frame = load_cdnow(sample=sample)
    return frame.rename(columns={"account_id": "id", "ts": "date"})[["id", "date", "amount"]]


@pytest.fixture(scope="module")
def cdnow_sample() -> pd.DataFrame:
    return _rfm(_read(sample=True), CALIBRATION_END)


@pytest.fixture(scope="module")
def cdnow_model(cdnow_sample: pd.DataFrame) -> BetaGeo:
    return BetaGeo().fit(cdnow_sample)


def _model(params: dict[str, float], horizon: float = 1.0) -> BetaGeo:
    """A BetaGeo with given (true) parameters, as if fitted."""
    model = BetaGeo(horizon=horizon)
    model.params_ = dict(params)
    return model


def _simulate_bgnbd(
    rng: np.random.Generator, n: int, params: dict[str, float], T: float, t: float
) -> dict[str, np.ndarray]:
    """Simulate the BG/NBD process: a history on (0, T] and the purchase count in (T, T + t]."""
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    drop_at = rng.geometric(p)  # the repeat purchase after which the customer drops out
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, drop_at)
    alive = arrivals < drop_at
    # the x-th of `arrivals` uniform arrival times on (0, T) is T * Beta(x, arrivals - x + 1)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1)), 0.0)
    future = np.where(alive, np.minimum(rng.poisson(lam * t), rng.geometric(p)), 0)
    return {"frequency": x.astype(float), "recency": t_x, "alive": alive, "future": future.astype(float)}


def _alive_purchases_reference(params: dict[str, float], t: float, x: float, T: float) -> float:
    """E[purchases in (T, T+t] | alive] by adaptive quadrature of E_p[(1 - (1 + p s)^-(r+x)) / p]."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    n, s, bx = r + x, t / (alpha + T), b + x

    def integrand(u: float) -> float:  # p = exp(u)
        p = np.exp(u)
        log_dens = a * u + (bx - 1.0) * np.log1p(-p) - betaln(a, bx)  # Beta(a, bx) density times dp/du = p
        return float(np.exp(log_dens) * -np.expm1(-n * np.log1p(p * s)) / p)

    mode = np.log(a / (a + bx))
    points = sorted({v for v in (mode - 5.0, mode, mode + 2.0, -np.log(n * s)) if -200.0 < v < -1e-3})
    value, _ = quad(integrand, -200, -1e-12, points=points, limit=500, epsabs=0, epsrel=1e-11)
    return value


# --------------------------------------------------------------------------------------------------
# published values
# --------------------------------------------------------------------------------------------------


def test_bgnbd_reproduces_fader_hardie_lee_on_cdnow_sample(cdnow_sample: pd.DataFrame) -> None:
    model = BetaGeo().fit(cdnow_sample)
    assert len(cdnow_sample) == 2357
    for name, published in CDNOW_PARAMS.items():
        assert round(model.params_[name], 3) == published, (name, model.params_[name])
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert model.n_features_in_ == 3
    assert list(model.feature_names_in_) == ["frequency", "recency", "T"]


def test_bgnbd_on_cdnow_master_file() -> None:
    rfm = _rfm(_read(sample=False), CALIBRATION_END)
    assert len(rfm) == 23570
    model = BetaGeo().fit(rfm)
    expected = {"r": 0.252, "alpha": 4.789, "a": 0.723, "b": 2.161}
    for name, value in expected.items():
        assert model.params_[name] == pytest.approx(value, abs=1e-3), name


def test_gamma_gamma_reproduces_published_cdnow_parameters(cdnow_sample: pd.DataFrame) -> None:
    model = GammaGamma().fit(cdnow_sample)
    assert int((cdnow_sample["frequency"] > 0).sum()) == 946
    for name, published in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert abs(model.params_[name] - published) < 0.02, (name, model.params_[name])


def test_conditional_expectation_matches_paper(cdnow_model: BetaGeo) -> None:
    # FHL (2005): a customer with x = 2, t_x = 30.43, T = 38.86 is expected to buy 1.226 times in 39 weeks.
    value = cdnow_model.conditional_expected_purchases(39, 2, 30.43, 38.86)
    assert float(value) == pytest.approx(1.226, abs=5e-4)


def test_expected_purchases_match_hardie_spreadsheet(cdnow_model: BetaGeo) -> None:
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(cdnow_model.expected_purchases(times), expected, rtol=1e-3, atol=5e-5)


def test_matches_scipy_closed_form_where_scipy_is_reliable(cdnow_model: BetaGeo) -> None:
    p = cdnow_model.params_
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    x, t_x, T, t = np.array([0.0, 1, 3, 7]), np.array([0.0, 5, 20, 30]), np.array([38.0, 30, 35, 38]), 10.0
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    log_odds = np.where(
        x > 0, np.log(a / (b + np.maximum(x, 1) - 1)) + (r + x) * np.log((alpha + T) / (alpha + t_x)), -np.inf
    )
    closed = (a + b + x - 1) / (a - 1) * bracket / (1 + np.exp(log_odds))
    np.testing.assert_allclose(cdnow_model.conditional_expected_purchases(t, x, t_x, T), closed, rtol=1e-9)


# --------------------------------------------------------------------------------------------------
# formulas against simulation of the model itself
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "horizon"),
    [
        ({"r": 2.0, "alpha": 8.0, "a": 1.2, "b": 4.0}, 20.0),  # s < 0.6: power series
        ({"r": 2.0, "alpha": 8.0, "a": 1.2, "b": 4.0}, 80.0),  # s > 0.6: quadrature
        ({"r": 0.8, "alpha": 3.0, "a": 0.6, "b": 2.0}, 52.0),  # a < 1
    ],
)
def test_conditional_predictions_agree_with_simulation(params: dict[str, float], horizon: float) -> None:
    rng = np.random.default_rng(7)
    n, T = 60_000, 39.0
    sim = _simulate_bgnbd(rng, n, params, T, horizon)
    model = _model(params)
    x, t_x = sim["frequency"], sim["recency"]
    checks = {
        "expected purchases": (model.conditional_expected_purchases(horizon, x, t_x, T), sim["future"]),
        "P(alive)": (model.p_alive(x, t_x, T), sim["alive"].astype(float)),
        "P(zero purchases)": (model.p_zero_purchases(horizon, x, t_x, T), (sim["future"] == 0).astype(float)),
    }
    for name, (predicted, observed) in checks.items():
        # By the law of total expectation the mean prediction equals the mean outcome.
        se = np.std(observed - predicted) / np.sqrt(n)
        assert abs(predicted.mean() - observed.mean()) < 4.5 * se, (
            name,
            predicted.mean(),
            observed.mean(),
            se,
        )


def test_unconditional_expectation_agrees_with_simulation() -> None:
    params = {"r": 0.8, "alpha": 3.0, "a": 0.9, "b": 2.5}
    sim = _simulate_bgnbd(np.random.default_rng(3), 80_000, params, T=0.0, t=30.0)
    expected = float(_model(params).expected_purchases(30.0))
    se = sim["future"].std() / np.sqrt(len(sim["future"]))
    assert abs(sim["future"].mean() - expected) < 4.5 * se


def test_parameters_recovered_from_simulated_customers() -> None:
    params = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    rng = np.random.default_rng(11)
    n = 40_000
    T = rng.integers(1, 365, n) / 7.0
    rows = []
    for age in np.unique(T):
        mask = np.isclose(T, age)
        sim = _simulate_bgnbd(rng, int(mask.sum()), params, float(age), 1.0)
        rows.append(np.column_stack([sim["frequency"], sim["recency"], np.full(mask.sum(), age)]))
    X = np.vstack(rows)
    fitted = BetaGeo().fit(X).params_
    for name, value in params.items():
        assert fitted[name] == pytest.approx(value, rel=0.15), (name, fitted[name])


def test_gamma_gamma_recovers_parameters_and_predicts_unbiased_means() -> None:
    p, q, gamma = 6.0, 3.5, 15.0
    rng = np.random.default_rng(5)
    n = 30_000
    nu = rng.gamma(q, 1.0 / gamma, n)
    x = rng.integers(1, 12, n).astype(float)
    monetary = rng.gamma(p * x, 1.0 / nu) / x
    model = GammaGamma().fit(np.column_stack([x, monetary]))
    for name, value in {"p": p, "q": q, "gamma": gamma}.items():
        assert model.params_[name] == pytest.approx(value, rel=0.1), name
    error = model.conditional_expected_value(x, monetary) - p / nu
    assert abs(error.mean()) < 4.5 * error.std() / np.sqrt(n)


@pytest.mark.parametrize("unit", [1e-2, 1e4, 1e7, 1e9])
def test_gamma_gamma_does_not_depend_on_the_currency(unit: float) -> None:
    """From gamma = 1, order values of 1e7 and more stopped on the flat ridge of large p (p 3.8e4)."""
    rng = np.random.default_rng(3)
    n = 2000
    nu = rng.gamma(3.7, 1.0 / 13.0, n)
    x = rng.integers(1, 8, n).astype(float)
    monetary = rng.gamma(7.2 * x, 1.0 / nu) / x
    base = GammaGamma().fit(np.column_stack([x, monetary]))
    scaled = GammaGamma().fit(np.column_stack([x, monetary * unit]))
    assert scaled.params_["p"] == pytest.approx(base.params_["p"], rel=1e-4)
    assert scaled.params_["q"] == pytest.approx(base.params_["q"], rel=1e-4)
    assert scaled.params_["gamma"] == pytest.approx(base.params_["gamma"] * unit, rel=1e-4)
    np.testing.assert_allclose(
        scaled.conditional_expected_value(x, monetary * unit),
        base.conditional_expected_value(x, monetary) * unit,
        rtol=1e-5,
    )
    assert scaled.log_likelihood_ == pytest.approx(base.log_likelihood_ - n * np.log(unit), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# P(alive), P(zero), numerical stability
# --------------------------------------------------------------------------------------------------


def test_p_alive_is_one_without_repeat_purchases(cdnow_model: BetaGeo) -> None:
    T = np.array([0.0, 1.0, 38.86, 1e4])
    np.testing.assert_array_equal(cdnow_model.p_alive(0, 0, T), np.ones(4))
    assert np.all(cdnow_model.p_alive([1, 5, 20], [1.0, 10.0, 20.0], 38.0) < 1.0)


def test_p_zero_purchases_never_exceeds_one(cdnow_model: BetaGeo) -> None:
    """The sum of its two terms came out 1 ulp above 1 at t = 0 (a log(1 - P0) downstream is NaN)."""
    x, T = np.meshgrid(np.arange(0.0, 20.0), np.linspace(0.5, 80.0, 60))
    for t in (0.0, 1e-12, 1e-6):
        p0 = cdnow_model.p_zero_purchases(t, x, np.minimum(x, T), T)
        assert np.all(p0 <= 1.0)
        assert np.all(p0 >= 1.0 - 1e-5)


def test_p_zero_purchases_is_exactly_one_in_a_window_of_no_time(
    cdnow_model: BetaGeo, cdnow_sample: pd.DataFrame
) -> None:
    """Its two terms, P(dead) + P(alive), summed to 1 - 2 ulp for 67 of CDNOW's 2,357 customers at t = 0."""
    model = cdnow_model
    x, t_x, T = (cdnow_sample[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_array_equal(model.p_zero_purchases(0.0, x, t_x, T), np.ones(len(x)))
    np.testing.assert_array_equal(model.history_scores(0.0, x, t_x, T)[2], np.ones(len(x)))


def test_p_zero_purchases_formula_and_limits(cdnow_model: BetaGeo) -> None:
    p = cdnow_model.params_
    x, t_x, T, t = np.array([0.0, 2, 7]), np.array([0.0, 30.43, 10]), np.array([20.0, 38.86, 38]), 39.0
    alive = cdnow_model.p_alive(x, t_x, T)
    silent = ((p["alpha"] + T) / (p["alpha"] + T + t)) ** (p["r"] + x)
    expected = (1 - alive) + alive * silent
    np.testing.assert_allclose(cdnow_model.p_zero_purchases(t, x, t_x, T), expected, rtol=1e-12)
    np.testing.assert_array_equal(cdnow_model.p_zero_purchases(0.0, x, t_x, T), np.ones(3))
    longer = cdnow_model.p_zero_purchases([1.0, 10.0, 100.0, 1e4], 2, 30.43, 38.86)
    assert np.all(np.diff(longer) < 0)
    assert longer[-1] > 1 - float(cdnow_model.p_alive(2, 30.43, 38.86))


def test_history_scores_are_the_three_methods_bit_for_bit(cdnow_model: BetaGeo) -> None:
    """The BTYD feature columns' one-pass form gives exactly the three methods' numbers and errors."""
    x, t_x, T = np.array([0.0, 2, 7, 40]), np.array([0.0, 30.43, 10, 38]), np.array([20.0, 38.86, 38, 39])
    for t in (0.0, 39.0, 1e4):
        expected, alive, p_zero = cdnow_model.history_scores(t, x, t_x, T)
        np.testing.assert_array_equal(expected, cdnow_model.conditional_expected_purchases(t, x, t_x, T))
        np.testing.assert_array_equal(alive, cdnow_model.p_alive(x, t_x, T))
        np.testing.assert_array_equal(p_zero, cdnow_model.p_zero_purchases(t, x, t_x, T))
    with pytest.raises(SchemaError, match="must be <= T"):
        cdnow_model.history_scores(39.0, [1.0], [50.0], [40.0])
    with pytest.raises(SchemaError, match="window length"):
        cdnow_model.history_scores(-1.0, x, t_x, T)


def test_stable_for_large_frequency_and_age(cdnow_model: BetaGeo) -> None:
    x, T = 1000.0, 10000.0
    recency = np.array([0.5, 100.0, 5000.0, 9990.0, 10000.0])
    for t in (1.0, 39.0, 1000.0, 1e5):
        value = cdnow_model.conditional_expected_purchases(t, x, recency, T)
        assert np.all(np.isfinite(value))
        assert np.all(value >= 0)
    alive = cdnow_model.p_alive(x, recency, T)
    assert alive[0] == 0.0
    assert alive[-1] > 0.999
    # A customer seen buying 1000 times in 10000 weeks, last at T: about 0.1 * t purchases in t weeks.
    value = cdnow_model.conditional_expected_purchases([39.0, 1000.0, 1e5], x, T, T)
    reference = [
        alive[-1] * _alive_purchases_reference(cdnow_model.params_, t, x, T) for t in (39.0, 1000.0, 1e5)
    ]
    np.testing.assert_allclose(value, reference, rtol=1e-7)
    assert value[0] == pytest.approx(0.1 * 39, rel=0.01)
    zero = cdnow_model.p_zero_purchases(np.array([[1.0], [39.0]]), x, recency, T)
    assert np.all(np.isfinite(zero))
    assert np.all((zero >= 0) & (zero <= 1))


@pytest.mark.parametrize(
    "params",
    [
        {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
        # scipy's hyp2f1 is wrong by a factor 1e12 here at x=50, T=200, t=500
        {"r": 1.5, "alpha": 0.1, "a": 0.2, "b": 40.0},
        {"r": 30.0, "alpha": 1.0, "a": 50.0, "b": 3.0},
        {"r": 0.3, "alpha": 2.0, "a": 1.0, "b": 0.4},  # a = 1: the closed form is 0/0
    ],
)
def test_alive_expectation_matches_independent_quadrature(params: dict[str, float]) -> None:
    model = _model(params)
    cases = [
        (0.0, 0.0, 39.0),
        (2.0, 10.0, 5.0),
        (50.0, 200.0, 500.0),
        (7.0, 38.0, 0.01),
        (300.0, 500.0, 52.0),
    ]
    for x, T, t in cases:
        alive = float(model.p_alive(x, T, T))  # recency = T
        got = float(model.conditional_expected_purchases(t, x, T, T)) / alive
        assert got == pytest.approx(_alive_purchases_reference(params, t, x, T), rel=1e-7), (x, T, t)


@pytest.mark.parametrize(
    "params",
    [
        {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
        {"r": 2.0, "alpha": 0.5, "a": 5.0, "b": 3.0},
        {"r": 0.5, "alpha": 1.0, "a": 1.0, "b": 1.0},
        {"r": 1.0, "alpha": 1.0, "a": 30.0, "b": 100.0},
    ],
)
def test_huge_windows_stay_accurate_positive_and_increasing(params: dict[str, float]) -> None:
    # t / (alpha + T) of 1e10 and more: the quadrature's exact corrections, times r + x and that ratio,
    # turned their rounding into the answer (1.47 for 1.75 at 1e13, negative beyond 1e16)
    model = _model(params)
    T = 10.0
    for x, recency in ((0.0, 0.0), (5.0, T)):
        t = np.logspace(6, 20, 8) * (params["alpha"] + T)
        got = model.conditional_expected_purchases(t, x, recency, T) / model.p_alive(x, recency, T)
        reference = [_alive_purchases_reference(params, ti, x, T) for ti in t]
        np.testing.assert_allclose(got, reference, rtol=1e-7)
        huge = model.conditional_expected_purchases(np.logspace(6, 300, 60), x, recency, T)
        assert np.all(np.isfinite(huge))
        assert np.all(huge > 0)
        assert np.all(np.diff(huge) >= -1e-12 * huge[1:])  # increasing, to rounding where it levels off


def test_series_and_quadrature_agree_where_both_apply() -> None:
    a, b, r = 0.793, 2.426, 0.243
    s = np.array([0.01, 0.1, 0.3, 0.59])
    for x in (0.0, 1.0, 10.0, 400.0):
        series, ok = _alive_purchases_series(np.full(4, r + x), a, np.full(4, a + b + x - 1), s)
        assert ok.all()
        np.testing.assert_allclose(series, _alive_purchases_quadrature(r + x, a, b + x, s), rtol=1e-9)


# --------------------------------------------------------------------------------------------------
# weights, inputs, errors
# --------------------------------------------------------------------------------------------------


def test_weights_give_the_same_fit_as_repeated_rows(cdnow_sample: pd.DataFrame) -> None:
    X = cdnow_sample[["frequency", "recency", "T"]].to_numpy()
    unique, counts = np.unique(X, axis=0, return_counts=True)
    assert len(unique) < len(X)  # the sample has duplicated histories
    weighted = BetaGeo().fit(unique, sample_weight=counts)
    expanded = BetaGeo().fit(np.repeat(unique, counts, axis=0))
    for name in CDNOW_PARAMS:
        assert weighted.params_[name] == pytest.approx(expanded.params_[name], rel=1e-10)
    assert weighted.log_likelihood_ == pytest.approx(expanded.log_likelihood_, rel=1e-12)
    twice = BetaGeo().fit(unique, sample_weight=2 * counts)
    assert twice.log_likelihood_ == pytest.approx(2 * weighted.log_likelihood_, rel=1e-9)
    zero_weight = BetaGeo().fit(np.vstack([unique, [[3, 1, 30]]]), sample_weight=np.append(counts, 0))
    assert zero_weight.params_ == pytest.approx(weighted.params_, rel=1e-10)


def test_gamma_gamma_weights_and_ignored_rows(cdnow_sample: pd.DataFrame) -> None:
    X = cdnow_sample[["frequency", "monetary"]].to_numpy()
    used = X[X[:, 0] > 0]
    unique, counts = np.unique(used, axis=0, return_counts=True)
    full = GammaGamma().fit(X)
    assert GammaGamma().fit(unique, sample_weight=counts).params_ == pytest.approx(full.params_, rel=1e-7)
    with_refund = np.vstack([X, [[2.0, -15.0], [3.0, 0.0]]])
    assert GammaGamma().fit(with_refund).params_ == pytest.approx(full.params_, rel=1e-12)
    with pytest.raises(ValueError, match="frequency > 0 and monetary > 0"):
        GammaGamma().fit([[0, 0.0], [0, 0.0], [2, -3.0]])


def test_dataframe_columns_by_name(cdnow_sample: pd.DataFrame) -> None:
    shuffled = cdnow_sample[["T", "monetary", "recency", "frequency"]].assign(extra="x")
    model = BetaGeo(horizon=39.0).fit(shuffled)
    array_model = BetaGeo(horizon=39.0).fit(cdnow_sample[["frequency", "recency", "T"]].to_numpy())
    assert model.params_ == pytest.approx(array_model.params_, rel=1e-12)
    np.testing.assert_allclose(
        model.predict(shuffled), array_model.predict(cdnow_sample[["frequency", "recency", "T"]].to_numpy())
    )
    with pytest.raises(SchemaError, match=r"X\.recency: missing column"):
        BetaGeo().fit(cdnow_sample[["frequency", "T"]])
    with pytest.raises(SchemaError, match=r"X\.monetary: missing column"):
        GammaGamma().fit(cdnow_sample[["frequency", "T"]])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([-1, 0, 5], r"X\.frequency: Negative values in data"),
        ([2, 6, 5], r"X\.recency: must be <= T"),
        ([0, 1, 5], r"X\.recency: must be 0 when frequency is 0"),
        ([1.5, 1, 5], r"X\.frequency: must be a whole number"),
        ([1, np.nan, 5], "NaN"),
        ([1, 1, np.inf], "infinity"),
    ],
)
def test_invalid_histories_are_refused_with_a_named_rule(
    row: list[float], message: str, cdnow_model: BetaGeo
) -> None:
    X = np.array([[0, 0, 10], [1, 2, 10], row], dtype=float)
    with pytest.raises(ValueError, match=message):
        BetaGeo().fit(X)
    with pytest.raises(ValueError, match=message):
        cdnow_model.predict(pd.DataFrame(X, columns=["frequency", "recency", "T"]))


def test_public_methods_check_their_inputs(cdnow_model: BetaGeo, small_rfm: np.ndarray) -> None:
    with pytest.raises(SchemaError, match=r"X\.recency: must be <= T .*\(1 row; e\.g\. 12\.0\)"):
        cdnow_model.p_alive(2, 12.0, 10.0)
    # t is an argument of its own, not a column of X
    with pytest.raises(
        SchemaError, match=r"\n  - t: window length must be finite and >= 0 \(1 row; e\.g\. -1\.0\)"
    ):
        cdnow_model.conditional_expected_purchases(-1.0, 2, 1.0, 10.0)
    with pytest.raises(SchemaError, match="whole number"):
        cdnow_model.p_zero_purchases(1.0, 0.5, 0.0, 10.0)
    with pytest.raises(ValueError, match="expecting 3 features"):
        BetaGeo().fit(small_rfm).predict(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"X has 2 feature\(s\), but BetaGeo needs 3 columns"):
        BetaGeo().fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        BetaGeo().fit(np.array([[0, 0, 10], [1, 2, 10]]), sample_weight=[1.0, -1.0])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -1.0, 2.0], r"sample_weight: must be >= 0 \(1 row; e\.g\. -1\.0\)"),
        (
            [1.0, np.nan, np.inf],
            r"sample_weight: must be finite \(no NaN or infinity\) \(2 rows; e\.g\. nan, inf\)",
        ),
        ([0.0, 0.0, 0.0], r"sample_weight: every weight is zero: at least one must be non-zero"),
        ([1.0, 1.0], r"sample_weight: one weight per row of X: got shape \(2,\), expected \(3,\)"),
        (["1", "one", "2"], r"sample_weight: must be one number per row of X: could not convert .*'one'"),
        ([1.0, None, pd.NA], r"sample_weight: must be one number per row of X"),
    ],
)
@pytest.mark.parametrize("model_class", [BetaGeo, GammaGamma])
def test_bad_weights_are_a_schema_error_naming_sample_weight(
    model_class: Any, weights: list[float], message: str
) -> None:
    """They were bare ValueErrors (sklearn's words for NaN; numpy's for a text, naming no argument), not
    kamml's errors with rows and examples."""
    X = np.array([[0, 0, 10], [1, 2, 10], [3, 8, 12]], dtype=float)
    if model_class is GammaGamma:
        X = np.array([[0, 0.0], [1, 20.0], [3, 12.0]])
    with pytest.raises(SchemaError, match=message):
        model_class().fit(X, sample_weight=weights)


def test_not_fitted_is_both_a_model_error_and_sklearns() -> None:
    for model, X in ((BetaGeo(), np.array([[0, 0, 10.0]])), (GammaGamma(), np.array([[1, 10.0]]))):
        with pytest.raises(NotFittedError):
            model.predict(X)
        with pytest.raises(ModelError, match="not fitted"):
            model.predict(X)
    with pytest.raises(ModelError):
        BetaGeo().p_alive(0, 0, 1)


def test_constructor_parameters_are_validated_in_fit() -> None:
    X = np.array([[0, 0, 10], [1, 2, 10], [3, 8, 9]])
    with pytest.raises(ValueError, match="penalizer"):
        BetaGeo(penalizer=-1.0).fit(X)
    with pytest.raises(ValueError, match="max_iter"):
        GammaGamma(max_iter=0).fit([[1, 10.0]])


def test_penalizer_shrinks_parameters(cdnow_sample: pd.DataFrame) -> None:
    plain = BetaGeo().fit(cdnow_sample).params_
    shrunk = BetaGeo(penalizer=0.1).fit(cdnow_sample).params_
    assert sum(v**2 for v in shrunk.values()) < sum(v**2 for v in plain.values())


def test_non_convergence_warns(cdnow_sample: pd.DataFrame) -> None:
    with pytest.warns(
        ConvergenceWarning, match="stopped after 2 iterations, its limit, without converging; raise"
    ):
        BetaGeo(max_iter=2).fit(cdnow_sample)


def test_out_of_iterations_is_said_in_words_and_the_optimizer_message_only_in_debug(
    cdnow_sample: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    """The note a job logs quoted scipy's "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", which a report's
    reader cannot act on; it says in words that the fit ran out of iterations, and the raw message is
    logged at DEBUG."""
    from kamml.models.btyd import convergence_noted

    with caplog.at_level("DEBUG", logger="kamml.models.btyd"), convergence_noted() as notes:
        BetaGeo(max_iter=2).fit(cdnow_sample)
    assert notes == ["stopped after 2 iterations, its limit, without converging"]
    debug = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert any("TOTAL NO. OF ITERATIONS REACHED LIMIT" in line for line in debug)


def _spends(n: int, seed: int, *, one_rate: bool = False) -> np.ndarray:
    """Gamma-Gamma data: repeat purchases and their mean value (every customer at one rate if asked)."""
    rng = np.random.default_rng(seed)
    nu = np.full(n, 0.6) if one_rate else rng.gamma(3.0, 1 / 5.0, n)
    x = rng.poisson(1.5, n) + 1.0
    return np.column_stack([x, rng.gamma(14.0 * x, 1 / (nu * x))])


def test_a_line_search_stalled_at_the_rounding_floor_is_convergence(caplog: pytest.LogCaptureFixture) -> None:
    # on these 3,000 customers L-BFGS-B's line search finds no lower value at a gradient of ~1e-7 (the
    # likelihood's rounding): the fit is done, and said "did not converge" before (CDNOW's training
    # snapshot at 1997-08-31 did the same)
    X = _spends(3000, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with caplog.at_level("DEBUG", logger="kamml.models.btyd"):
            fitted = GammaGamma().fit(X)
    assert "rounding floor" in caplog.text
    loose = GammaGamma(tol=1e-5).fit(X)  # stops on its gradient, no stall
    for name, value in loose.params_.items():
        assert fitted.params_[name] == pytest.approx(value, rel=1e-6)


def test_a_flat_likelihood_still_warns_and_says_so() -> None:
    # every customer spends at one rate: q and gamma grow together without changing the likelihood
    with pytest.warns(
        ConvergenceWarning,
        match=r"flat where it stopped: q and gamma move .*\(every customer spends at about one",
    ):
        GammaGamma(max_iter=2000).fit(_spends(2000, 0, one_rate=True))


def _one_rate_buyers(n: int, seed: int) -> np.ndarray:
    """BG/NBD data where every customer buys at one rate (0.3 a week) and dropout varies (Beta(1, 4))."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in rng.beta(1.0, 4.0, n):
        t, last, repeats = 0.0, 0.0, 0
        while (t := t + rng.exponential(1 / 0.3)) <= 52.0:
            repeats, last = repeats + 1, t
            if rng.random() < p:
                break
        rows.append((repeats, last, 52.0))
    return np.array(rows)


def test_a_flat_likelihood_names_the_parameters_that_move_together() -> None:
    # one purchase rate for all: r and alpha run off together (a and b are well determined), and the
    # warning names them, not BG/NBD's other flat pair
    with pytest.warns(
        ConvergenceWarning, match=r"flat where it stopped: r and alpha move .*one rate"
    ) as seen:
        BetaGeo(max_iter=2000).fit(_one_rate_buyers(2000, 4))
    assert "a and b" not in str(seen[0].message)


def test_a_stall_short_of_a_minimum_says_so() -> None:
    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # the slope reported for u is off by 1, so the steps it asks for do not lower the value
        value = float(theta[0] ** 2 + (theta[1] - 1.0) ** 2)
        return value, np.array([2 * theta[0] + 1.0, 2 * (theta[1] - 1.0)])

    with pytest.warns(
        ConvergenceWarning,
        match="could not improve its fit any further; the largest gradient is still .*loosen tol",
    ):
        _minimize(objective, np.zeros(2), 1e-7, 500, "Toy", ("u", "v"), {})


def test_a_parameter_at_its_bound_is_named() -> None:
    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # falls without end in u; past 29.9 the slope it reports is wrong, so no step is accepted there
        slope = -1.0 if theta[0] < 29.9 else 5.0
        return -theta[0] + (theta[1] - 1.0) ** 2, np.array([slope, 2 * (theta[1] - 1.0)])

    with pytest.warns(ConvergenceWarning, match=r"u ran to the bound exp\(\+-30\)"):
        _minimize(objective, np.zeros(2), 1e-7, 500, "Toy", ("u", "v"), {})


def test_predict_uses_the_horizon(cdnow_sample: pd.DataFrame) -> None:
    model = BetaGeo(horizon=39.0).fit(cdnow_sample)
    X = cdnow_sample[["frequency", "recency", "T"]]
    expected = model.conditional_expected_purchases(39.0, X["frequency"], X["recency"], X["T"])
    np.testing.assert_array_equal(model.predict(X), expected)
    # the calibration sample buys about 1,800 times in the 39-week holdout (FHL 2005 fig. 3 region)
    assert 1500 < model.predict(X).sum() < 2100
    assert np.all(model.set_params(horizon=0.0).predict(X) == 0.0)


def test_gamma_gamma_conditional_value(cdnow_sample: pd.DataFrame) -> None:
    model = GammaGamma().fit(cdnow_sample)
    p, q, gamma = model.params_["p"], model.params_["q"], model.params_["gamma"]
    population = p * gamma / (q - 1)
    assert float(model.conditional_expected_value(0, 123.0)) == pytest.approx(population)
    value = model.conditional_expected_value([1, 10, 10_000], 100.0)
    assert np.all((value > population) & (value < 100.0))
    assert np.all(np.diff(value) > 0)
    assert value[-1] == pytest.approx(100.0, rel=1e-3)
    np.testing.assert_allclose(
        model.predict(cdnow_sample),
        model.conditional_expected_value(cdnow_sample["frequency"], cdnow_sample["monetary"]),
    )
    # net refunds (which fit skips) count as orders of value 0: never negative, and never above what a
    # small positive mean gives (they got the population mean, so refunding everything raised the value)
    refunds = model.predict(pd.DataFrame({"frequency": [5.0, 20.0], "monetary": [-100.0, 0.0]}))
    np.testing.assert_allclose(refunds, [p * gamma / (p * x + q - 1) for x in (5.0, 20.0)])
    assert np.all((refunds > 0) & (refunds < population))
    ladder = model.conditional_expected_value(24, [-50.0, -0.01, 0.0, 0.01, 1.0, 50.0])
    assert np.all(np.diff(ladder) >= 0)
    assert ladder[2] == pytest.approx(float(model.conditional_expected_value(24, 1e-12)))


def test_customer_lifetime_value(cdnow_sample: pd.DataFrame) -> None:
    bg = BetaGeo().fit(cdnow_sample)
    gg = GammaGamma().fit(cdnow_sample)
    f, r, T, m = (cdnow_sample[c].to_numpy() for c in ("frequency", "recency", "T", "monetary"))
    plain = gg.customer_lifetime_value(bg, f, r, T, m, t=39.0)
    product = bg.conditional_expected_purchases(39.0, f, r, T) * gg.conditional_expected_value(f, m)
    np.testing.assert_allclose(plain, product, rtol=1e-10)
    np.testing.assert_allclose(
        gg.customer_lifetime_value(bg, f, r, T, m, t=39.0, n_periods=9), product, rtol=1e-9
    )
    discounted = gg.customer_lifetime_value(bg, f, r, T, m, t=39.0, n_periods=9, discount_rate=0.01)
    assert np.all(discounted <= plain)
    assert discounted.sum() < 0.99 * plain.sum()
    np.testing.assert_allclose(
        gg.customer_lifetime_value(bg, f, r, T, m, t=39.0, n_periods=9.0), product, rtol=1e-9
    )
    with pytest.raises(ValueError, match=r"whole n_periods >= 1.*n_periods=2\.5"):
        gg.customer_lifetime_value(bg, f, r, T, m, t=39.0, n_periods=2.5)
    for rate in (float("nan"), float("inf"), -0.1):  # NaN passed the check and gave NaN values
        with pytest.raises(ValueError, match=rf"finite discount_rate >= 0.*discount_rate={rate}"):
            gg.customer_lifetime_value(bg, f, r, T, m, t=39.0, n_periods=2, discount_rate=rate)


@pytest.mark.parametrize("params", [{"max_iter": True}, {"penalizer": True}, {"tol": False}])
def test_true_or_false_is_no_number(params, cdnow_sample: pd.DataFrame) -> None:
    """sklearn's intervals take True as 1 (one iteration) and False as 0."""
    from sklearn.utils._param_validation import InvalidParameterError

    model = BetaGeo if "max_iter" in params else GammaGamma
    with pytest.raises(InvalidParameterError, match="must be a number, not"):
        model(**params).fit(cdnow_sample)


def test_a_fit_without_repeat_purchases_warns() -> None:
    """With every frequency 0 the likelihood does not depend on a and b: their start came back silently."""
    rows = np.column_stack([np.zeros(40), np.zeros(40), np.linspace(10, 300, 40)])
    with pytest.warns(UserWarning, match="no customer has a repeat purchase"):
        model = BetaGeo().fit(rows)
    assert model.params_["a"] == pytest.approx(1.0)
    assert model.params_["b"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# scikit-learn conventions
# --------------------------------------------------------------------------------------------------

_WIDTH = "fits on generic data of another width; {name} has a fixed schema of named columns ({columns})"
_DOMAIN = (
    "fits on random continuous data, which is no purchase history "
    "(frequency must be a whole number >= 0, recency <= T); the same property is tested below on valid data"
)
_UNNAMED = (
    "passes a DataFrame with unnamed columns; kamml reads the columns by name and refuses unnamed frames"
)
_BETAGEO_FAILS = {
    **dict.fromkeys(
        [
            "check_estimators_overwrite_params",
            "check_estimators_fit_returns_self",
            "check_readonly_memmap_input",
            "check_n_features_in_after_fitting",
            "check_estimators_dtypes",
            "check_sample_weights_not_an_array",
            "check_sample_weights_shape",
            "check_sample_weights_not_overwritten",
            "check_sample_weight_equivalence_on_dense_data",
            "check_dtype_object",
            "check_fit2d_1sample",
            "check_fit_idempotent",
            "check_fit_check_is_fitted",
            "check_n_features_in",
        ],
        _WIDTH.format(name="BetaGeo", columns="frequency, recency, T"),
    ),
    **dict.fromkeys(
        [
            "check_fit_score_takes_y",
            "check_dont_overwrite_parameters",
            "check_sample_weights_list",
            "check_pipeline_consistency",
            "check_estimators_nan_inf",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_dict_unchanged",
            "check_fit2d_predict1d",
        ],
        _DOMAIN,
    ),
    "check_sample_weights_pandas_series": _UNNAMED,
}
_GAMMAGAMMA_FAILS = {
    **dict.fromkeys(
        [
            "check_fit_score_takes_y",
            "check_dont_overwrite_parameters",
            "check_n_features_in_after_fitting",
            "check_positive_only_tag_during_fit",
            "check_estimators_dtypes",
            "check_sample_weights_list",
            "check_sample_weight_equivalence_on_dense_data",
            "check_dtype_object",
            "check_pipeline_consistency",
            "check_estimators_nan_inf",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_fit2d_1sample",
            "check_dict_unchanged",
            "check_fit2d_predict1d",
        ],
        _WIDTH.format(name="GammaGamma", columns="frequency, monetary"),
    ),
    **dict.fromkeys(
        [
            "check_estimators_overwrite_params",
            "check_estimators_fit_returns_self",
            "check_readonly_memmap_input",
            "check_fit_idempotent",
            "check_fit_check_is_fitted",
            "check_n_features_in",
        ],
        _DOMAIN,
    ),
    "check_sample_weights_pandas_series": _UNNAMED,
}


def _expected_failed_checks(estimator: Any) -> dict[str, str]:
    return _BETAGEO_FAILS if isinstance(estimator, BetaGeo) else _GAMMAGAMMA_FAILS


@parametrize_with_checks(
    [BetaGeo(), GammaGamma()], expected_failed_checks=_expected_failed_checks, xfail_strict=True
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    name = getattr(check, "func", check).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if name not in _expected_failed_checks(estimator):
            check(estimator)
            return
        try:
            check(estimator)
        except Exception as exc:  # an expected failure: a one-line report instead of a deep traceback
            raise AssertionError(f"{name}: {type(exc).__name__}: {str(exc)[:200]}") from None


@pytest.fixture(scope="module")
def small_rfm(cdnow_sample: pd.DataFrame) -> np.ndarray:
    return cdnow_sample[["frequency", "recency", "T"]].to_numpy()[:600]


def test_clone_pickle_and_idempotent_fit(small_rfm: np.ndarray) -> None:
    model = BetaGeo(penalizer=0.001, horizon=13.0)
    assert clone(model).get_params() == model.get_params()
    fitted = model.fit(small_rfm)
    first = dict(fitted.params_)
    assert fitted.fit(small_rfm).params_ == first
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(small_rfm), fitted.predict(small_rfm))
    assert not hasattr(clone(fitted), "params_")


def test_order_and_subset_invariance(small_rfm: np.ndarray) -> None:
    model = BetaGeo(horizon=39.0).fit(small_rfm)
    order = np.random.default_rng(0).permutation(len(small_rfm))
    assert BetaGeo(horizon=39.0).fit(small_rfm[order]).params_ == pytest.approx(model.params_, rel=1e-7)
    full = model.predict(small_rfm)
    np.testing.assert_allclose(model.predict(small_rfm[order]), full[order], rtol=1e-12)
    np.testing.assert_allclose(
        np.concatenate([model.predict(small_rfm[:100]), model.predict(small_rfm[100:])]), full, rtol=1e-12
    )


def test_dtypes_and_readonly_inputs_are_not_modified(small_rfm: np.ndarray) -> None:
    reference = BetaGeo().fit(small_rfm).params_
    for X in (small_rfm.astype(np.float32), np.asfortranarray(small_rfm)):
        assert BetaGeo().fit(X).params_ == pytest.approx(reference, rel=1e-4)
    integers = np.array([[0, 0, 10], [1, 2, 10], [3, 8, 9], [2, 5, 7]], dtype=np.int64)
    assert BetaGeo().fit(integers).predict(integers).dtype == np.float64
    readonly = small_rfm.copy()
    readonly.setflags(write=False)
    weights = np.ones(len(readonly))
    weights.setflags(write=False)
    BetaGeo().fit(readonly, sample_weight=weights).predict(readonly)
    np.testing.assert_array_equal(readonly, small_rfm)


def test_series_summed_per_row_matches_the_vectorised_sum(monkeypatch):
    """A few rows are summed in floats (REST latency); the terms and stopping rules are the same."""
    from kamml.models import btyd as module

    rng = np.random.default_rng(0)
    for _ in range(300):
        a = rng.uniform(0.05, 5.0)
        n = rng.uniform(0.1, 60.0, size=4)
        c = a + rng.uniform(0.5, 100.0, size=4)
        s = rng.uniform(0.0, 0.6, size=4)
        by_row = module._alive_purchases_series(n, a, c, s)
        monkeypatch.setattr(module, "_SERIES_ROW_LIMIT", 0)
        vectorised = module._alive_purchases_series(n, a, c, s)
        monkeypatch.undo()
        np.testing.assert_array_equal(by_row[1], vectorised[1])
        np.testing.assert_allclose(by_row[0][by_row[1]], vectorised[0][by_row[1]], rtol=1e-13)


def test_data_without_information_or_with_impossible_repeats_is_refused() -> None:
    """Every T = 0 left a flat likelihood (the start came back as the fit); repeat purchases with
    recency 0 drove alpha to 1e-13 and the log-likelihood to +87,000."""
    nothing = np.zeros((50, 3))
    with pytest.raises(SchemaError, match=r"X\.T: .*every T is 0"):  # X, as the other rules of fit say
        BetaGeo().fit(nothing)
    rows = np.column_stack([np.ones(20), np.zeros(20), np.linspace(10, 300, 20)])
    with pytest.raises(SchemaError, match="must be > 0 when frequency is > 0"):
        BetaGeo().fit(rows)


@pytest.mark.parametrize("model_class", [BetaGeo, GammaGamma])
def test_score_is_the_mean_log_likelihood_highest_at_the_fit(
    model_class: Any, cdnow_sample: pd.DataFrame
) -> None:
    """score() was missing (cross_val_score(BetaGeo(), X) failed); it is the fit's likelihood per customer."""
    from sklearn.model_selection import cross_val_score

    X = cdnow_sample[list(model_class.columns)]
    model = model_class().fit(X)
    fitted = model.score(X)
    used = (X["frequency"] > 0) & (X["monetary"] > 0) if model_class is GammaGamma else X["frequency"] >= 0
    assert fitted == pytest.approx(model.log_likelihood_ / used.sum())  # without a penalty
    for name in model.params_:
        for factor in (0.8, 1.25):
            perturbed = clone(model)
            perturbed.params_ = {**model.params_, name: model.params_[name] * factor}
            perturbed.n_features_in_ = model.n_features_in_
            perturbed.feature_names_in_ = model.feature_names_in_
            assert perturbed.score(X) < fitted, (name, factor)
    # weights: a weight of k is k copies of the row, as in fit
    weights = np.arange(len(X)) % 3
    repeated = X.loc[X.index.repeat(weights)]
    assert model.score(X, sample_weight=weights) == pytest.approx(model.score(repeated))
    scores = cross_val_score(model_class(), X, cv=3)
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))


def test_nan_or_infinity_in_the_inputs_names_the_column():
    """sklearn's own check said only 'Input X contains NaN', naming no column."""
    X = pd.DataFrame({"frequency": [1.0, 2.0, 0.0], "recency": [3.0, np.nan, 0.0], "T": [5.0, 6.0, 7.0]})
    with pytest.raises(SchemaError, match=r"X\.recency: must be finite"):
        BetaGeo().fit(X)
    values = pd.DataFrame({"frequency": [1.0, 2.0], "monetary": [np.inf, 3.0]})
    with pytest.raises(SchemaError, match=r"X\.monetary: must be finite"):
        GammaGamma().fit(values)
    with pytest.raises(ValueError, match="NaN"):  # without the model's columns: sklearn's check
        BetaGeo().fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    # `build_features` gives no T to an account without a purchase day: the error says what to do
    no_day = X.assign(recency=[3.0, 4.0, 0.0], T=[5.0, 6.0, np.nan])
    with pytest.raises(SchemaError, match=r"X\.T: must be finite .* no purchase day .* drop those rows"):
        BetaGeo().fit(no_day)


def test_customer_lifetime_value_of_no_purchases_is_zero_even_at_an_infinite_mean() -> None:
    """With q <= 1 the mean order value of a customer without repeats is infinite; over an empty window
    (t = 0) no purchase is expected, so the value is 0, not 0 * inf = NaN."""
    bg, gg = _model(CDNOW_PARAMS), GammaGamma()
    gg.params_ = {"p": 2.0, "q": 0.9, "gamma": 5.0}
    f, r, T, m = np.array([0.0, 2.0]), np.array([0.0, 5.0]), np.array([10.0, 10.0]), np.array([0.0, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        np.testing.assert_array_equal(gg.customer_lifetime_value(bg, f, r, T, m, t=0.0), [0.0, 0.0])
        over_five = gg.customer_lifetime_value(bg, f, r, T, m, t=5.0, n_periods=5, discount_rate=0.1)
    assert over_five[0] == np.inf
    assert 0 < over_five[1] < np.inf


def test_customer_lifetime_value_refuses_a_window_array() -> None:
    """`t` is one window length; an array failed with numpy's "truth value ... is ambiguous"."""
    bg, gg = _model(CDNOW_PARAMS), GammaGamma()
    gg.params_ = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    with pytest.raises(ValueError, match=r"a finite t >= 0.*t=array"):
        gg.customer_lifetime_value(bg, 1.0, 2.0, 3.0, 4.0, t=np.array([1.0, 2.0]))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# independent references: Fader, Hardie & Lee (2005) formulas and integrals over (lambda, p)
# --------------------------------------------------------------------------------------------------

_EDGE_HISTORIES = [  # (x, t_x, T): no repeat, t_x == T, ordinary, very large x and T
    (0.0, 0.0, 30.0),
    (0.0, 0.0, 1e5),
    (5.0, 30.0, 30.0),
    (2.0, 20.0, 30.0),
    (1e4, 1e5, 1e5),
    (1e4, 9.9e4, 1e5),
]


def _fhl_loglik(params: dict[str, float], x: float, t_x: float, T: float) -> float:
    """FHL (2005) eq. (6), in logs: ln A1 + ln(A2 / (alpha+T)^(r+x) + [x>0] A3 / (alpha+t_x)^(r+x))."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    dead = betaln(a + 1, b + x - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x) if x > 0 else -np.inf
    return float(log_a1 + np.logaddexp(alive, dead))


def _fhl_p_alive(params: dict[str, float], x: float, t_x: float, T: float) -> float:
    """FHL (2008) P(alive | x, t_x, T) = 1 / (1 + [x>0] a / (b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    if x == 0:
        return 1.0
    return float(expit(-(np.log(a / (b + x - 1)) + (r + x) * np.log((alpha + T) / (alpha + t_x)))))


def _history_integral(params: dict[str, float], x: float, t_x: float, T: float, silent_for: float) -> float:
    """Integral over lambda ~ Gamma(r, alpha) of the history's likelihood (p integrated out by beta
    functions) times P(no purchase in (T, T + silent_for]); silent_for = 0 gives P(history) up to a constant.

    Summed in v = log(lambda): the integrand exp((r+x) v - rate e^v) peaks at log((r+x) / rate).
    """
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    w_alive = np.exp(betaln(a, b + x) - betaln(a, b))  # E[(1-p)^x]
    w_dead = np.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) if x > 0 else 0.0  # E[p (1-p)^(x-1)]
    rate_alive, rate_dead = alpha + T + silent_for, alpha + t_x
    peaks = [np.log((r + x) / rate_alive), np.log((r + x) / rate_dead)]
    shift = (r + x) * max(peaks) - (r + x)  # the log-integrand's largest value at most

    def integrand(v: float) -> float:
        alive = w_alive * np.exp((r + x) * v - rate_alive * np.exp(v) - shift)
        return float(alive + w_dead * np.exp((r + x) * v - rate_dead * np.exp(v) - shift))

    lo, hi = min(peaks) - 60.0 / (r + x) - 5.0, max(peaks) + 5.0
    return quad(integrand, lo, hi, points=sorted(set(peaks)), limit=500, epsabs=0, epsrel=1e-12)[0]


@pytest.mark.parametrize("history", _EDGE_HISTORIES[:4])
def test_log_likelihood_p_alive_and_p_zero_against_fhl(history: tuple[float, float, float]) -> None:
    """Per-row likelihood and P(alive) by FHL's printed formulas; P(no purchase in t) as a ratio of two
    integrals over lambda of the history's likelihood (with and without t silent weeks appended)."""
    model = _model(CDNOW_PARAMS)
    x, t_x, T = history
    assert model.score(np.array([[x, t_x, T]])) == pytest.approx(
        _fhl_loglik(CDNOW_PARAMS, x, t_x, T), rel=1e-12
    )
    assert float(model.p_alive(x, t_x, T)) == pytest.approx(_fhl_p_alive(CDNOW_PARAMS, x, t_x, T), rel=1e-12)
    for t in (0.0, 1.0, 39.0, 1e4):
        expected = _history_integral(CDNOW_PARAMS, x, t_x, T, t) / _history_integral(
            CDNOW_PARAMS, x, t_x, T, 0
        )
        assert float(model.p_zero_purchases(t, x, t_x, T)) == pytest.approx(expected, rel=1e-8), t


def test_edge_histories_against_fhl_at_large_x_and_t() -> None:
    """x = 1e4, T = 1e5 and T = 1e5 without repeats: the printed formulas, evaluated in logs."""
    model = _model(CDNOW_PARAMS)
    for x, t_x, T in _EDGE_HISTORIES:
        row = np.array([[x, t_x, T]])
        assert model.score(row) == pytest.approx(_fhl_loglik(CDNOW_PARAMS, x, t_x, T), rel=1e-12)
        assert float(model.p_alive(x, t_x, T)) == pytest.approx(
            _fhl_p_alive(CDNOW_PARAMS, x, t_x, T), rel=1e-12
        )
    assert 0 < float(model.p_alive(1e4, 9.9e4, 1e5)) < 1e-39  # log-odds of death about 90


def test_conditional_expectation_against_a_double_integral_over_rate_and_dropout() -> None:
    """E[Y(t) | x, t_x, T] as E[purchases in t, alive-at-T likelihood] / E[likelihood] over (lambda, p):
    an alive customer with (lambda, p) buys (1 - exp(-lambda p t)) / p times in t on average."""
    from scipy.integrate import dblquad

    p = CDNOW_PARAMS
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    model = _model(p)
    for x, t_x, T, t in ((2.0, 20.0, 30.0, 10.0), (0.0, 0.0, 30.0, 52.0), (5.0, 30.0, 30.0, 100.0)):

        def joint(
            lam: float,
            q: float,
            with_future: bool,
            x: float = x,
            t_x: float = t_x,
            T: float = T,
            t: float = t,
        ) -> float:
            prior = np.exp(
                (r - 1) * np.log(lam)
                - alpha * lam
                + (a - 1) * np.log(q)
                + (b - 1) * np.log1p(-q)
                - betaln(a, b)
            )
            alive = (1 - q) ** x * lam**x * np.exp(-lam * T)
            if with_future:
                return float(prior * alive * -np.expm1(-lam * q * t) / q)
            dead = q * (1 - q) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0
            return float(prior * (alive + dead))

        kw = {"epsabs": 0, "epsrel": 1e-10}
        numerator = dblquad(lambda lam, q: joint(lam, q, True), 0, 1, 0, np.inf, **kw)[0]
        denominator = dblquad(lambda lam, q: joint(lam, q, False), 0, 1, 0, np.inf, **kw)[0]
        got = float(model.conditional_expected_purchases(t, x, t_x, T))
        assert got == pytest.approx(numerator / denominator, rel=1e-6), (x, t_x, T, t)


def test_a_fit_on_one_customer_is_that_customers_point_mass() -> None:
    """One history: the likelihood's maximum is a limit of the model (every parameter runs off, no
    warning), the point mass at the customer's own likeliest rate and dropout probability (docs/models.md)."""
    from scipy.optimize import minimize

    x, t_x, T = 2.0, 5.0, 10.0

    def point_nll(v: np.ndarray) -> float:
        lam, q = np.exp(v[0]), float(expit(v[1]))
        return -float(
            np.log(lam**x * (1 - q) ** (x - 1) * ((1 - q) * np.exp(-lam * T) + q * np.exp(-lam * t_x)))
        )

    lam, q = (
        f(v)
        for f, v in zip((np.exp, expit), minimize(point_nll, [0.0, 0.0], method="Nelder-Mead").x, strict=True)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BetaGeo(horizon=1.0).fit(np.array([[x, t_x, T]]))
    assert min(model.params_.values()) > 1e4
    alive = (1 - q) * np.exp(-lam * T) / ((1 - q) * np.exp(-lam * T) + q * np.exp(-lam * t_x))
    assert float(model.p_alive(x, t_x, T)) == pytest.approx(alive, rel=1e-3)
    expected = alive * -np.expm1(-lam * q * 1.0) / q  # an alive customer buys until a dropout or the end
    assert float(model.predict(np.array([[x, t_x, T]]))[0]) == pytest.approx(expected, rel=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # q and gamma on their ridge: one mean for all
        spend = GammaGamma().fit(np.array([[3.0, 25.0]]))
    assert float(spend.predict(np.array([[3.0, 25.0]]))[0]) == pytest.approx(25.0, rel=1e-6)


def test_the_gamma_gamma_fit_line_counts_rows_with_thousands_separators(
    caplog: pytest.LogCaptureFixture,
) -> None:
    X = np.vstack([_spends(1500, 2), np.zeros((20, 2))])  # 20 customers without repeat purchases
    with caplog.at_level("INFO", logger="kamml.models.btyd"):
        GammaGamma().fit(X)
    assert "GammaGamma: fitting on 1,500 of 1,520 rows (frequency > 0, monetary > 0)" in caplog.text


def test_convergence_noted_takes_the_warning_in_its_own_context_only() -> None:
    """Inside `convergence_noted` a fit notes its detail (no advice) and does not warn; a fit in a thread
    started there still warns (the notes are the asking thread's own, not global warning state, even
    where threads inherit their starter's context)."""
    import contextvars
    import threading

    from kamml.models.btyd import convergence_noted

    X = _spends(2000, 0, one_rate=True)
    elsewhere: list[list[warnings.WarningMessage]] = []

    def fit_in_a_thread() -> None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            GammaGamma(max_iter=2000).fit(X)
        elsewhere.append(seen)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with convergence_noted() as notes:
            GammaGamma(max_iter=2000).fit(X)
            inherited = contextvars.copy_context()  # as free-threaded Python 3.14 starts a thread
            thread = threading.Thread(target=inherited.run, args=(fit_in_a_thread,))
            thread.start()
            thread.join()
    assert len(notes) == 1
    assert notes[0].startswith("stopped after ")
    assert "without converging: it could not improve its fit any further; the likelihood is flat" in notes[0]
    assert "ABNORMAL" not in notes[0]
    assert "q and gamma move together" in notes[0]
    assert "penalizer" not in notes[0]
    assert any(issubclass(w.category, ConvergenceWarning) for w in elsewhere[0])
