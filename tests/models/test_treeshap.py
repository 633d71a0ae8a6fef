"""TreeSHAP from leaf tables: LightGBM's ``pred_contrib`` numbers on every kind of split and input."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from kamml.models import _treeshap
from kamml.models._treeshap import contributions, leaf_tables


def _train(X: np.ndarray, y: np.ndarray, rounds: int = 30, **params) -> lgb.Booster:
    base = {"verbose": -1, "max_depth": 5, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 1}
    categorical = params.pop("categorical_feature", "auto")
    data = lgb.Dataset(X, y, categorical_feature=categorical)
    return lgb.train({**base, **params}, data, rounds)


def _odd_rows(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with what LightGBM treats specially: NaN, zeros, values below its zero threshold, extremes."""
    odd = X[:200].copy()
    odd[rng.random(odd.shape) < 0.15] = np.nan
    odd[rng.random(odd.shape) < 0.15] = 0.0
    odd[rng.random(odd.shape) < 0.05] = 1e-40
    odd[rng.random(odd.shape) < 0.05] = -1e-40
    odd[rng.random(odd.shape) < 0.02] = 1e300
    odd[rng.random(odd.shape) < 0.02] = -np.inf
    return np.vstack([X, odd])


def _check(booster: lgb.Booster, X: np.ndarray) -> None:
    tables = leaf_tables(booster, X.shape[1])
    assert tables is not None
    expected = booster.predict(X, pred_contrib=True)
    got = contributions(tables, X, threads=2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(contributions(tables, X, threads=1), got)  # rows are independent


def test_numerical_splits_with_nan_and_zero_missing_types():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6))
    X[rng.random(X.shape) < 0.2] = np.nan  # NaN as the missing type where trained on NaN
    X[:, 5] = np.where(rng.random(3000) < 0.4, 0.0, X[:, 5])
    y = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 1]) * (X[:, 2] > 0) + rng.normal(size=3000)
    for zero_as_missing in (False, True):  # missing type NaN, or Zero
        booster = _train(X, y, zero_as_missing=zero_as_missing)
        _check(booster, _odd_rows(X, rng))
    booster = _train(np.nan_to_num(X), y, use_missing=False)  # missing type None: NaN reads as 0
    _check(booster, _odd_rows(X, rng))


def test_repeated_features_on_a_path_and_binary_and_poisson_objectives():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 3))  # three features for depth-5 trees: features repeat on paths
    logit = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    _check(_train(X, (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(float), objective="binary"), X)
    _check(_train(X, rng.poisson(np.exp(0.5 * logit)).astype(float), objective="poisson"), X)


def test_categorical_splits_with_unseen_negative_and_fractional_codes():
    rng = np.random.default_rng(7)
    n = 4000
    X = np.column_stack([rng.integers(0, 40, n).astype(float), rng.normal(size=n)])
    effect = rng.normal(size=40)
    y = effect[X[:, 0].astype(int)] + 0.3 * X[:, 1] + rng.normal(scale=0.1, size=n)
    booster = _train(X, y, categorical_feature=[0], max_cat_to_onehot=4, min_data_per_group=5, cat_smooth=1)
    assert "num_cat=0" not in booster.model_to_string().split("Tree=0")[1].split("Tree=1")[0]
    odd = X[:12].copy()
    odd[:, 0] = [np.nan, -1, -0.5, 0.5, 39.9, 40, 63, 64, 1e12, -1e12, 2.0**31, 31]
    _check(booster, np.vstack([X, odd]))


def test_constant_trees_give_the_expected_value_only():
    X = np.random.default_rng(0).normal(size=(500, 2))
    booster = _train(X, np.full(500, 3.0), rounds=5)
    _check(booster, X)
    np.testing.assert_allclose(contributions(leaf_tables(booster, 2), X)[:, :2], 0.0)


def test_deep_trees_and_trees_too_deep_for_tables(monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 12))
    deep = _train(X, X @ rng.normal(size=12), rounds=3, max_depth=-1, num_leaves=200, min_data_in_leaf=2)
    tables = leaf_tables(deep, 12)
    assert tables is not None
    assert tables.leaf_depth.max() >= 7  # paths on seven distinct features (kamml's default trees: 5)
    _check(deep, X)
    shallow = _train(X, X[:, 0] + X[:, 1] * X[:, 2], rounds=3)
    assert _treeshap._build(shallow.model_to_string(), 3) is None  # fewer columns than the model's
    monkeypatch.setattr(_treeshap, "MAX_TABLE_SIZE", 10)
    assert _treeshap._build(shallow.model_to_string(), 12) is None
    monkeypatch.undo()
    monkeypatch.setattr(_treeshap, "MAX_PATH_FEATURES", 1)
    assert _treeshap._build(shallow.model_to_string(), 12) is None


def test_tables_are_built_once_per_booster_and_width_and_again_when_its_trees_change():
    X = np.random.default_rng(2).normal(size=(300, 2))
    booster = _train(X, X[:, 0])
    assert leaf_tables(booster, 2) is leaf_tables(booster, 2)
    assert leaf_tables(booster, 3).n_features == 3  # another width: other tables, not the cached ones
    assert leaf_tables(booster, 2).n_features == 2
    booster.best_iteration = 10  # predict and model_to_string now use the first ten trees
    _check(booster, X)
    grown = lgb.train({"verbose": -1, "max_depth": 3}, lgb.Dataset(X, X[:, 1]), 5, keep_training_booster=True)
    before = leaf_tables(grown, 2)
    grown.update()  # one more tree
    assert leaf_tables(grown, 2) is not before
    assert leaf_tables(grown, 2).tree_nodes.size == before.tree_nodes.size + 1


def test_rows_of_another_width_are_refused():
    X = np.random.default_rng(4).normal(size=(50, 3))
    tables = leaf_tables(_train(X, X[:, 0]), 3)
    with pytest.raises(ValueError, match=r"rows of 3 features, got an array of shape \(50, 2\)"):
        contributions(tables, X[:, :2])
    with pytest.raises(ValueError, match="rows of 3 features"):
        contributions(tables, X[0])
    np.testing.assert_array_equal(contributions(tables, X, threads=0), contributions(tables, X, threads=1))


@pytest.mark.parametrize(("model", "tables"), [("clv", True), ("churn", True), ("clv", False)])
def test_kamml_models_explain_with_lightgbm_values(model, tables, monkeypatch):
    """A fitted kamml model's explanation names the drivers ``pred_contrib`` gives (start offset included).

    Without tables (trees too deep for them) the model asks ``pred_contrib`` itself.
    """
    from kamml.models import ChurnModel, ClvModel

    if not tables:
        monkeypatch.setattr(_treeshap, "MAX_PATH_FEATURES", 0)
        monkeypatch.setattr(_treeshap, "contributions", None)  # not reached

    rng = np.random.default_rng(11)
    X = rng.gamma(2.0, size=(1500, 4))
    if model == "clv":
        estimator = ClvModel(n_estimators=40, random_state=0).fit(X, rng.gamma(1.0, X[:, 0] + X[:, 1]))
    else:
        estimator = ChurnModel(n_estimators=40, random_state=0).fit(X, (rng.random(1500) < 0.3).astype(int))
    names, values = estimator.top_contributions(X, top=4, by="size")
    matrix = estimator._prepare(X, None)
    reference = estimator._start_contributions(
        matrix, np.asarray(estimator.booster_.predict(matrix, pred_contrib=True))[:, : X.shape[1]]
    )
    order = np.argsort(-np.abs(reference), axis=1, kind="stable")
    np.testing.assert_allclose(values, np.take_along_axis(reference, order, axis=1), atol=1e-12)
    assert (names == np.asarray(estimator.feature_names_, dtype=object)[order]).all()


def test_kernels_compile_where_no_cache_folder_can_be_kept():
    """Numba refuses ``cache=True`` without a writable cache folder; the kernels then compile uncached."""
    namespace: dict = {}
    exec("def plus_one(x):\n    return x + 1\n", namespace)  # no file: numba finds no cache locator
    compiled = _treeshap._compiled(nogil=True)(namespace["plus_one"])
    assert compiled(41) == 42
