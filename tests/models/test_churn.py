from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from kamml.errors import ModelError
from kamml.models._lgbm import ModelInputError
from kamml.models.churn import BLEND_WEIGHTS, ChurnModel, centered_isotonic

FAST = {"num_threads": 1, "n_estimators": 200}


def make_churn(
    n_per_snapshot: int = 600, snapshots: int = 3, seed: int = 0, shift: float = 0.0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Churn driven by `a` and segment x; the log-odds move by `shift` per snapshot step."""
    rng = np.random.default_rng(seed)
    n = n_per_snapshot * snapshots
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "seg": pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["x", "y", "z"]),
        }
    )
    step = np.repeat(np.arange(snapshots), n_per_snapshot)
    logit = 1.5 * X["a"].to_numpy() + 0.8 * (X["seg"] == "x").to_numpy() - 0.3 + shift * step
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, np.repeat(np.arange(snapshots), n_per_snapshot)


@pytest.fixture(scope="module")
def fitted() -> tuple[ChurnModel, pd.DataFrame, np.ndarray]:
    X, y, snapshot = make_churn()
    return ChurnModel(horizon_days=120, **FAST).fit(X, y, snapshot=snapshot), X, y


def test_centered_isotonic_hand_computed() -> None:
    # PAVA pools the middle pair (1, 0) into 0.5; block centres are the mean scores of each block
    x, p = centered_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
    # the end blocks, one row each of one class, are not certain: (0 + 1/2) / (1 + 1), (1 + 1/2) / 2
    np.testing.assert_allclose(x, [0.1, 0.25, 0.4])
    np.testing.assert_allclose(p, [0.25, 0.5, 0.75])
    # weights move the centre and the rate of a pooled block; an end block stays within its neighbour
    weights = np.array([1.0, 3.0, 1.0, 1.0])
    x, p = centered_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]), weights)
    np.testing.assert_allclose(x, [0.1, 0.225, 0.4])
    np.testing.assert_allclose(p, [0.25, 0.75, 0.75])
    # the shrinkage counts rows by their effective number, whatever the weights' scale
    _, scaled = centered_isotonic(
        np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]), weights * 1e3
    )
    np.testing.assert_allclose(scaled, p)


def test_centered_isotonic_never_gives_certainty_from_a_finite_sample() -> None:
    """Calibrated churn was exactly 0.0 or 1.0 for hundreds of accounts (no finite log-odds) where
    their true chance of no purchase was 0.001 to 0.032 (a CRM audit)."""
    rng = np.random.default_rng(1)
    score = rng.random(5000)
    y = (score > 0.9) | ((score > 0.1) & (rng.random(5000) < 0.5))  # certain-looking ends
    _, p = centered_isotonic(score, y.astype(float))
    lowest, highest = (score <= 0.1).sum(), (score > 0.9).sum()
    assert p[0] == pytest.approx(0.5 / (lowest + 1))
    assert p[-1] == pytest.approx((highest + 0.5) / (highest + 1))
    assert np.all(np.diff(p) >= 0)


def test_centered_isotonic_leaves_out_rows_of_zero_weight() -> None:
    # the zero-weight row would make a block of weight 0, whose centre is 0 / 0
    x, p = centered_isotonic(
        np.array([0.1, 0.2, 0.4, 0.45, 0.5, 0.6]),
        np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
        np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0]),
    )
    np.testing.assert_allclose(x, [0.7 / 3, 0.55])
    np.testing.assert_allclose(p, [0.5 / 4, 2.5 / 3])


def test_centered_isotonic_keeps_the_ranking() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(2000)
    y = (rng.random(2000) < score**2).astype(float)
    x, p = centered_isotonic(score, y)
    assert np.all(np.diff(x) > 0)
    assert np.all(np.diff(p) > 0)
    calibrated = np.interp(score, x, p)
    inside = (score > x[0]) & (score < x[-1])
    order = np.argsort(score[inside])
    assert np.all(np.diff(calibrated[inside][order]) > 0)  # strictly increasing: no new ties
    assert roc_auc_score(y, calibrated) == pytest.approx(roc_auc_score(y, score), abs=0.002)


def test_learns_and_ranks_fresh_accounts(fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray]) -> None:
    model = fitted[0]
    X_new, y_new, _ = make_churn(n_per_snapshot=2000, snapshots=1, seed=9)
    proba = model.predict_proba(X_new)
    assert proba.shape == (2000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y_new, proba[:, 1]) > 0.75
    assert set(np.unique(model.predict(X_new))) <= {0, 1}
    np.testing.assert_array_equal(model.classes_, [0, 1])


def test_calibration_on_the_latest_snapshot_fixes_the_level() -> None:
    # churn rises from snapshot to snapshot; the map learnt on the latest one lifts the probabilities
    X, y, snapshot = make_churn(shift=0.8, seed=2)
    model = ChurnModel(**FAST).fit(X, y, snapshot=snapshot)
    X_next, _, _ = make_churn(n_per_snapshot=3000, snapshots=1, seed=4)
    rng = np.random.default_rng(4)
    logit = 1.5 * X_next["a"] + 0.8 * (X_next["seg"] == "x") - 0.3 + 0.8 * 2  # the latest level
    y_next = (rng.random(3000) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    raw = model.predict_raw(X_next)
    calibrated = model.predict_proba(X_next)[:, 1]
    assert len(model.calibration_x_) > 2
    assert calibrated.mean() > raw.mean() + 0.05
    assert abs(calibrated.mean() - y_next.mean()) < abs(raw.mean() - y_next.mean())
    assert brier_score_loss(y_next, calibrated) < brier_score_loss(y_next, raw) - 0.005
    # centred isotonic keeps the ranking: the AUC does not move
    assert roc_auc_score(y_next, calibrated) == pytest.approx(roc_auc_score(y_next, raw), abs=1e-3)


def test_identity_calibration_without_snapshot() -> None:
    X, y, _ = make_churn(n_per_snapshot=500, snapshots=1)
    model = ChurnModel(num_threads=1, n_estimators=50).fit(X, y)
    np.testing.assert_array_equal(model.calibration_x_, [0.0, 1.0])
    np.testing.assert_array_equal(model.predict_proba(X)[:, 1], model.predict_raw(X))


def test_string_labels() -> None:
    X, y, snapshot = make_churn(n_per_snapshot=300)
    labels = np.where(y == 1, "churned", "active")
    model = ChurnModel(num_threads=1, n_estimators=50).fit(X, labels, snapshot=snapshot)
    np.testing.assert_array_equal(model.classes_, ["active", "churned"])
    assert set(model.predict(X)) <= {"active", "churned"}
    # column 1 is the probability of classes_[1]: higher for accounts that churned
    p = model.predict_proba(X)[:, 1]
    assert p[labels == "churned"].mean() > p[labels == "active"].mean()


def test_label_errors() -> None:
    X, y, _ = make_churn(n_per_snapshot=100, snapshots=1)
    with pytest.raises(ModelInputError, match="one class"):
        ChurnModel(num_threads=1).fit(X, np.zeros(len(y)))
    with pytest.raises(ModelInputError, match="Only binary"):
        ChurnModel(num_threads=1).fit(X, np.arange(len(y)) % 3)
    with pytest.raises(ModelInputError, match="one class"):
        ChurnModel(num_threads=1).fit(X, y, sample_weight=y.astype(float))


def test_refuses_another_horizon(fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    assert model.predict_proba(X, horizon_days=120).shape == (len(X), 2)
    with pytest.raises(ModelError, match="120-day horizon"):
        model.predict_proba(X, horizon_days=180)
    with pytest.raises(ModelError, match="120-day horizon"):
        model.predict(X, horizon_days=30)


def test_round_trip_through_json(fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    state = json.loads(json.dumps(model.to_dict()))
    assert "calibration_x" in state
    loaded = ChurnModel.from_dict(state)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.calibration_x_, model.calibration_x_)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)


def test_deterministic_for_a_seed() -> None:
    X, y, snapshot = make_churn(n_per_snapshot=300)
    a = ChurnModel(**FAST, random_state=3).fit(X, y, snapshot=snapshot).predict_proba(X)
    b = ChurnModel(**FAST, random_state=3).fit(X, y, snapshot=snapshot).predict_proba(X)
    c = ChurnModel(**FAST, random_state=4).fit(X, y, snapshot=snapshot).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unseen_level_is_missing(fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray], caplog) -> None:
    model, X, _ = fitted
    unseen = X.assign(seg=pd.Categorical(["new"] * len(X)))
    missing = X.assign(seg=pd.Categorical([None] * len(X), categories=["x", "y", "z"]))
    np.testing.assert_array_equal(model.predict_proba(unseen), model.predict_proba(missing))
    # every value unseen: the column's coding changed, and the models lost it without a word
    assert (
        "column 'seg': none of its 1,800 values is a level seen in fit (e.g. 'new'; fit saw 'x'"
        in caplog.text
    )
    caplog.clear()
    model.predict_proba(X.assign(seg=X["seg"].astype(str).where(X.index % 2 == 0, "new")))
    model.predict_proba(unseen.iloc[:5])  # a few rows (a CRM's request): a new level is no news
    assert "none of its" not in caplog.text


def test_explain_drivers_of_churn(fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray]) -> None:
    model, _, _ = fitted
    rows = pd.DataFrame({"a": [3.0], "b": [0.0], "seg": pd.Categorical(["z"], categories=["x", "y", "z"])})
    out = model.explain(rows, top=1)
    assert out.loc[0, "driver_1"] == "a"
    assert out.loc[0, "contribution_1"] > 0


def make_blend(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Churn that falls smoothly with `expected` (a purchase expectation), plus a noise column."""
    rng = np.random.default_rng(seed)
    n, snapshots = 3000, 3
    expected = rng.lognormal(0.0, 1.0, n)
    expected[rng.random(n) < 0.05] = np.nan  # accounts without a history
    X = pd.DataFrame({"expected": expected, "noise": rng.normal(size=n)})
    logit = -1.5 * np.log(np.nan_to_num(expected, nan=1.0))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, np.repeat(np.arange(snapshots), n // snapshots)


def test_blend_with_a_purchase_expectation_ranks_better_than_a_weak_tree_model() -> None:
    X, y, snapshot = make_blend()
    stump = {"num_threads": 1, "n_estimators": 1, "params": {"num_leaves": 2}, "early_stopping_rounds": None}
    plain = ChurnModel(horizon_days=90, **stump).fit(X, y, snapshot=snapshot)
    blended = ChurnModel(horizon_days=90, blend_feature="expected", **stump).fit(X, y, snapshot=snapshot)
    assert plain.blend_ is None
    assert blended.blend_ is not None
    assert blended.blend_["weight"] in BLEND_WEIGHTS
    assert blended.blend_["weight"] > 0  # one split cannot rank a smooth signal; the feature can
    fresh, y_fresh, _ = make_blend(seed=1)
    p_plain, p_blend = plain.predict_proba(fresh)[:, 1], blended.predict_proba(fresh)[:, 1]
    assert roc_auc_score(y_fresh, p_blend) > roc_auc_score(y_fresh, p_plain) + 0.02
    assert abs(p_blend.mean() - y_fresh.mean()) < 0.03  # still calibrated on the held-out snapshot
    # rows without the feature rank by LightGBM alone, and a row scores the same alone or in a batch
    assert np.isfinite(p_blend).all()
    np.testing.assert_array_equal(blended.predict_proba(fresh.iloc[[7]])[:, 1], p_blend[[7]])


def test_blend_round_trips_and_older_models_load_without_one() -> None:
    X, y, snapshot = make_blend()
    model = ChurnModel(horizon_days=90, blend_feature="expected", **FAST).fit(X, y, snapshot=snapshot)
    back = ChurnModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert back.blend_ == model.blend_
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    state = model.to_dict()
    state.pop("blend")  # a model saved before the blend existed
    assert ChurnModel.from_dict(state).blend_ is None


def test_blend_feature_must_be_a_column() -> None:
    X, y, snapshot = make_blend()
    with pytest.raises(ModelInputError, match="blend_feature 'missing'"):
        ChurnModel(horizon_days=90, blend_feature="missing", **FAST).fit(X, y, snapshot=snapshot)


def test_blend_feature_is_checked_in_every_fit() -> None:
    """Without a held-out snapshot, or with one of one class, the blend is unused, but a blend feature
    that names no numeric column is still a mistake: it was accepted there and refused elsewhere."""
    X, y, snapshot = make_blend()
    small = {"num_threads": 1, "n_estimators": 20}
    columns = r"blend_feature 'nope' is not among the feature columns \('expected', 'noise'\)"
    with pytest.raises(ModelInputError, match=columns):
        ChurnModel(blend_feature="nope", **small).fit(X, y)
    with pytest.raises(ModelInputError, match=columns):
        ChurnModel(blend_feature="nope", **small).fit(X, y, snapshot=np.zeros(len(y)))
    one_class = np.where(snapshot == snapshot.max(), 0, y)  # calibration is skipped before the blend
    with pytest.raises(ModelInputError, match=columns):
        ChurnModel(blend_feature="nope", **small).fit(X, one_class, snapshot=snapshot)
    with pytest.raises(ModelInputError, match=r"'x2' is not among the feature columns \('x0', 'x1'\)"):
        ChurnModel(blend_feature="x2", **small).fit(X.to_numpy(), y)
    coded = X.assign(segment=pd.Categorical(np.where(X["noise"] > 0, "a", "b")))
    with pytest.raises(ModelInputError, match="blend_feature 'segment' is a categorical column"):
        ChurnModel(blend_feature="segment", **small).fit(coded, y)
    ChurnModel(blend_feature="expected", **small).fit(X, y)  # a numeric column: fine without a snapshot


def test_blended_contributions_add_up_to_the_score_the_calibration_takes() -> None:
    """With a blend, the drivers explain the blend: its contributions sum to the blended score (up to
    one constant), so the blend feature's own part is credited to it and the signs say what raises churn."""
    X, y, snapshot = make_blend()
    stump = {"num_threads": 1, "n_estimators": 1, "params": {"num_leaves": 2}, "early_stopping_rounds": None}
    model = ChurnModel(horizon_days=90, blend_feature="expected", **stump).fit(X, y, snapshot=snapshot)
    assert model.blend_ is not None
    assert model.blend_["weight"] > 0
    fresh, _, _ = make_blend(seed=1)
    matrix = model._prepare(fresh, None)
    contrib = np.asarray(model.booster_.predict(matrix, pred_contrib=True))[:, :2]
    parts = model._start_contributions(matrix, contrib)
    score = model._score(model._raw_predict(matrix), matrix)
    gap = score - parts.sum(axis=1)
    known = fresh["expected"].notna().to_numpy()  # rows without the feature: LightGBM's part alone
    for rows in (known, ~known):
        np.testing.assert_allclose(gap[rows], gap[rows][0], atol=1e-6)
    names, values = model.top_contributions(fresh, top=1, by="size")
    low = int(np.nanargmin(fresh["expected"]))  # fewest expected purchases: the blend raises its churn
    assert names[low, 0] == "expected"
    assert values[low, 0] > 0
    assert model.explain(fresh, top=1)["driver_1"].isin(["expected", "noise", None]).all()


def make_blend_without_history(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Churn set by `expected` where it is known, and by `a` for the 30 % of accounts without it (NaN)."""
    rng = np.random.default_rng(seed)
    n = 3000
    expected = rng.lognormal(0.0, 1.0, n)
    missing = rng.random(n) < 0.3
    expected[missing] = np.nan
    X = pd.DataFrame({"expected": expected, "a": rng.normal(size=n)})
    logit = np.where(missing, 2.0 * X["a"], -1.5 * np.log(np.nan_to_num(expected, nan=1.0)))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, np.repeat(np.arange(3), n // 3)


def test_rows_without_the_blend_feature_are_scored_by_lightgbm_alone() -> None:
    """A missing blend feature leaves the row to LightGBM: its probability is the logistic map of
    LightGBM's standardised logit, so it follows LightGBM's score even at weight 1 (where it was one
    probability for every such row)."""
    X, y, snapshot = make_blend_without_history()
    small = {"num_threads": 1, "n_estimators": 3, "params": {"num_leaves": 4}, "early_stopping_rounds": None}
    model = ChurnModel(horizon_days=90, blend_feature="expected", **small).fit(X, y, snapshot=snapshot)
    blend = model.blend_
    assert blend is not None
    fresh, y_fresh, _ = make_blend_without_history(seed=1)
    missing = fresh["expected"].isna().to_numpy()
    raw, p = model.predict_raw(fresh)[missing], model.predict_proba(fresh)[missing, 1]
    z = (np.log(raw / (1 - raw)) - blend["logit_mean"]) / blend["logit_std"]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(blend["intercept"] + blend["slope"] * z))))
    assert blend["weight"] == 1.0  # the feature ranks the rows that have it better than the trees
    assert len(np.unique(p)) > 1
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(p[order]) >= 0)  # rises with LightGBM's probability
    assert roc_auc_score(y_fresh[missing], p) > 0.65


def test_earlier_snapshots_with_one_class_are_refused() -> None:
    """The first model learns the snapshots before the held-out one; with one class there it would be a
    constant, and so would every calibrated probability, so fit refuses and names the class."""
    X, y, snapshot = make_churn(n_per_snapshot=200)
    labels = np.where(y == 1, "churned", "active")
    labels[snapshot < 2] = "active"  # both classes overall, but only in the latest snapshot
    with pytest.raises(ModelInputError, match=r"latest snapshot: its 400 earlier rows .* 'active'"):
        ChurnModel(num_threads=1, n_estimators=50).fit(X, labels, snapshot=snapshot)
    # the same with weights: the earlier churned accounts weigh nothing
    weight = np.where((snapshot < 2) & (y == 1), 0.0, 1.0)
    with pytest.raises(ModelInputError, match="only class 0 among those of positive weight"):
        ChurnModel(num_threads=1, n_estimators=50).fit(X, y, snapshot=snapshot, sample_weight=weight)
    # both classes before the latest snapshot: trained, and the probabilities are not one value
    model = ChurnModel(num_threads=1, n_estimators=50).fit(X, y, snapshot=snapshot)
    assert len(np.unique(model.predict_proba(X)[:, 1])) > 10


@pytest.mark.parametrize("labels", [299, 301])
def test_labels_of_another_length_than_the_weighted_rows_are_named(labels: int) -> None:
    """With sample weights, y of another length failed as numpy's IndexError ("boolean index did not
    match"), unlike the same fit without weights, which names both lengths."""
    X, y, _ = make_churn(n_per_snapshot=100)
    y = np.resize(y, labels)
    with pytest.raises(ModelInputError, match=f"X has 300 rows but y has {labels}"):
        ChurnModel(num_threads=1, n_estimators=5).fit(X, y, sample_weight=np.ones(300))


def test_a_latest_snapshot_of_zero_weight_is_not_held_out() -> None:
    """On a held-out snapshot weighing nothing early stopping kept one tree (a NaN metric) and the
    calibration was skipped as if it had one class; the latest snapshot with weight is held out instead."""
    X, y, snapshot = make_churn()
    latest = snapshot == snapshot.max()
    model = ChurnModel(**FAST).fit(X, y, snapshot=snapshot, sample_weight=np.where(latest, 0.0, 1.0))
    dropped = ChurnModel(**FAST).fit(X[~latest], y[~latest], snapshot=snapshot[~latest])
    assert np.isfinite(model.validation_score_["binary_logloss"])
    assert model.best_iteration_ == dropped.best_iteration_ > 1
    np.testing.assert_allclose(model.calibration_x_, dropped.calibration_x_)
    np.testing.assert_allclose(model.calibration_y_, dropped.calibration_y_)
    assert len(model.calibration_x_) > 2


def test_a_latest_snapshot_of_one_class_is_not_held_out(caplog) -> None:
    """Early stopping on a one-class snapshot kept a tree or two and no map could be fitted: nearly one
    probability for all (AUC 0.61). The model is fitted as without snapshots instead, with a warning."""
    X, y, snapshot = make_churn()
    y = np.where(snapshot == snapshot.max(), 0, y)
    model = ChurnModel(**FAST).fit(X, y, snapshot=snapshot)
    plain = ChurnModel(**FAST).fit(X, y)
    assert "latest snapshot holds one class only" in caplog.text
    np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X))
    earlier = snapshot < snapshot.max()
    assert roc_auc_score(y[earlier], model.predict_proba(X[earlier])[:, 1]) > 0.8


def test_a_refit_with_one_class_leaves_the_fitted_model_as_it_was(
    fitted: tuple[ChurnModel, pd.DataFrame, np.ndarray],
) -> None:
    """The labels' classes, the columns and the calibration stay those of the last fit that succeeded."""
    import copy

    model, X, y = fitted
    model = copy.deepcopy(model)
    before = model.predict_proba(X)
    with pytest.raises(ModelInputError, match="only one class"):
        model.fit(X.rename(columns={"a": "c"}), np.array(["gone"] * len(X)))
    assert list(model.classes_) == list(np.unique(y))
    assert "c" not in model.feature_names_
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_a_held_out_snapshot_the_blend_separates_gets_no_certain_probabilities() -> None:
    """The logistic map's Newton steps ran to a slope of thousands on a held-out snapshot its blended
    score separated (a small book): 99.75 % of the accounts were within 1e-6 of 0 or 1."""
    rng = np.random.default_rng(1)
    n = 1200
    snapshot = np.repeat([1, 2, 3], n // 3)
    expected = rng.gamma(1.0, 1.0, n)
    y = (rng.random(n) < np.exp(-2 * expected)).astype(int)
    held = snapshot == 3
    y[held] = (expected[held] < np.median(expected[held])).astype(int)  # separated by the feature
    X = pd.DataFrame({"x": rng.normal(size=n), "expected": expected})
    model = ChurnModel(horizon_days=90, blend_feature="expected", num_threads=1, n_estimators=50)
    model.fit(X, y, snapshot=snapshot)
    assert model.blend_ is not None
    assert model.blend_["weight"] == 1.0
    p = model.predict_proba(X)[:, 1]
    assert np.mean((p < 1e-6) | (p > 1 - 1e-6)) < 0.05
    assert roc_auc_score(y[held], p[held]) == 1.0  # the ranking is kept


@pytest.mark.parametrize("flip", [False, True])
def test_a_separated_logistic_map_passes_through_the_centred_isotonic_rates(flip: bool) -> None:
    from kamml.models.churn import _logistic_fit

    score = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 9.0])
    y = (score > 4).astype(float)
    y = 1.0 - y if flip else y
    fit = _logistic_fit(score, y, np.ones(7))
    p = 1 / (1 + np.exp(-(fit["intercept"] + fit["slope"] * np.array([1.5, 20 / 3]))))  # class means
    np.testing.assert_allclose(p, [4.5 / 5, 0.5 / 4] if flip else [0.5 / 5, 3.5 / 4])
    overlapping = _logistic_fit(score, np.array([0, 0, 1, 0, 1, 1, 1.0]), np.ones(7))
    assert 0 < overlapping["slope"] < 10  # not separated: the plain fit, as before


def test_a_blend_feature_held_out_only_in_rows_of_zero_weight_is_no_blend() -> None:
    """Its mean over the held-out rows was weighted by zeros only: a ZeroDivisionError from numpy."""
    X, y, snapshot = make_blend()
    held = snapshot == snapshot.max()
    odd = np.arange(len(y)) % 2 == 1
    X.loc[held & ~odd, "expected"] = np.nan  # the held-out rows of weight have no feature value
    weight = np.where(held & odd, 0.0, 1.0)
    model = ChurnModel(horizon_days=90, blend_feature="expected", **FAST)
    model.fit(X, y, snapshot=snapshot, sample_weight=weight)
    assert model.blend_ is None


def test_row_counts_in_a_length_mismatch_group_thousands() -> None:
    """'X has 1500 rows but y has 1499' read without separators, unlike the rest of kamml's counts."""
    X, y, _ = make_churn(n_per_snapshot=500)
    with pytest.raises(ModelInputError, match="X has 1,500 rows but y has 1,499"):
        ChurnModel(num_threads=1, n_estimators=5).fit(X, y[:-1], sample_weight=np.ones(1500))


def test_calibration_log_line_groups_its_breakpoints(monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    """'calibration map with 1234 breakpoints' read without separators (a million held-out rows give that)."""
    grid = np.linspace(0.0, 1.0, 1234)
    monkeypatch.setattr("kamml.models.churn.centered_isotonic", lambda score, y, w=None: (grid, grid))
    X, y, snapshot = make_churn()
    with caplog.at_level("INFO", logger="kamml.models.churn"):
        ChurnModel(**FAST).fit(X, y, snapshot=snapshot)
    assert "ChurnModel: calibration map with 1,234 breakpoints" in caplog.text
