from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from kamml.errors import ModelError
from kamml.evaluation.metrics import aggregate_error, normalized_gini
from kamml.models._lgbm import ModelInputError, canonical_params
from kamml.models.clv import ClvModel

FAST = {"num_threads": 1, "n_estimators": 200}


def make_value(
    n_per_snapshot: int = 600, snapshots: int = 3, seed: int = 0, drift: float = 1.0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Accounts over `snapshots` cutoffs: spend driven by `a` and segment x, level times drift per step."""
    rng = np.random.default_rng(seed)
    n = n_per_snapshot * snapshots
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "seg": pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["x", "y", "z"]),
        },
        index=pd.Index(np.arange(n) + 1000, name="account_id"),
    )
    step = np.repeat(np.arange(snapshots), n_per_snapshot)
    rate = np.exp(0.9 * X["a"].to_numpy() + 0.8 * (X["seg"] == "x").to_numpy() - 0.5) * drift**step
    orders = rng.poisson(rate)
    y = orders * rng.gamma(5.0, 8.0, n)
    snapshot = pd.to_datetime("2020-01-01") + pd.to_timedelta(90 * step, unit="D")
    return X, y, np.asarray(snapshot)


@pytest.fixture(scope="module")
def fitted() -> tuple[ClvModel, pd.DataFrame, np.ndarray]:
    X, y, snapshot = make_value()
    return ClvModel(horizon_days=180, **FAST).fit(X, y, snapshot=snapshot), X, y


def test_learns_the_signal_on_fresh_accounts(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model = fitted[0]
    X_new, y_new, _ = make_value(n_per_snapshot=2000, snapshots=1, seed=7)
    pred = model.predict(X_new)
    assert pred.shape == (2000,)
    assert np.all(pred >= 0)
    assert normalized_gini(y_new, pred) > 0.45
    assert abs(aggregate_error(y_new, pred)) < 0.15


def test_fitted_attributes(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model = fitted[0]
    assert model.n_features_in_ == 3
    assert list(model.feature_names_in_) == ["a", "b", "seg"]
    assert model.categories_ == {"seg": ["x", "y", "z"]}
    assert model.horizon_days_ == 180
    assert 1 <= model.best_iteration_ <= 200
    assert model.booster_.current_iteration() == model.best_iteration_
    assert set(model.validation_score_) == {"tweedie"}
    assert model.feature_importance().index[0] in {"a", "seg"}


def test_early_stopping_stops_on_noise() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(900, 4))
    y = rng.poisson(1.0, 900) * 10.0  # no signal at all
    model = ClvModel(num_threads=1, n_estimators=300, early_stopping_rounds=10)
    model.fit(X, y, snapshot=np.repeat([1, 2, 3], 300))
    assert model.best_iteration_ < 100
    no_stop = ClvModel(num_threads=1, n_estimators=60, early_stopping_rounds=None).fit(
        X, y, snapshot=np.repeat([1, 2, 3], 300)
    )
    assert no_stop.best_iteration_ == 60


def test_total_calibration_follows_the_latest_level() -> None:
    # spend grows 40 % per snapshot: the latest held-out snapshot shows the model predicts too low
    X, y, snapshot = make_value(drift=1.4, seed=3)
    scaled = ClvModel(**FAST).fit(X, y, snapshot=snapshot)
    plain = ClvModel(**FAST, calibrate_total=False).fit(X, y, snapshot=snapshot)
    assert plain.scale_ == 1.0
    assert scaled.scale_ > 1.1
    X_next, y_next, _ = make_value(n_per_snapshot=3000, snapshots=1, seed=11)
    y_next = y_next * 1.4**2  # the level of the latest snapshot
    assert abs(aggregate_error(y_next, scaled.predict(X_next))) < abs(
        aggregate_error(y_next, plain.predict(X_next))
    )


@pytest.mark.parametrize(("jump", "scale"), [(5.0, 2.0), (0.2, 0.5)])
def test_total_scale_is_clipped_to_half_and_double(jump: float, scale: float) -> None:
    """A held-out level 5x (or 1/5) the earlier snapshots' would scale by 5: the scale stops at 2 (0.5)."""
    X, y, snapshot = make_value(seed=3)
    y = np.where(snapshot == snapshot.max(), y * jump, y)
    model = ClvModel(num_threads=1, n_estimators=40).fit(X, y, snapshot=snapshot)
    assert model.scale_ == scale


def test_no_snapshot_means_no_holdout() -> None:
    X, y, _ = make_value(n_per_snapshot=300, snapshots=1)
    model = ClvModel(num_threads=1, n_estimators=40).fit(X, y)
    assert model.best_iteration_ == 40
    assert model.validation_score_ == {}
    # the total is calibrated in sample: the predicted total of the training rows is their actual total
    assert model.scale_ != 1.0
    assert model.predict(X).sum() == pytest.approx(y.sum())
    plain = ClvModel(num_threads=1, n_estimators=40, calibrate_total=False).fit(X, y)
    assert plain.scale_ == 1.0


def test_deterministic_for_a_seed() -> None:
    X, y, snapshot = make_value(n_per_snapshot=300)
    first = ClvModel(**FAST, random_state=1).fit(X, y, snapshot=snapshot).predict(X)
    again = ClvModel(**FAST, random_state=1).fit(X, y, snapshot=snapshot).predict(X)
    other = ClvModel(**FAST, random_state=2).fit(X, y, snapshot=snapshot).predict(X)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_refuses_another_horizon(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    np.testing.assert_array_equal(model.predict(X, horizon_days=180), model.predict(X))
    with pytest.raises(ModelError, match="180-day horizon"):
        model.predict(X, horizon_days=90)
    with pytest.raises(ModelError, match="180-day horizon"):
        model.explain(X, horizon_days=365)
    for near in (180.9, "180", 180.0, True):  # int() let 180.9 and "180" through (an API audit)
        with pytest.raises(ModelError, match="whole number of days"):
            model.predict(X, horizon_days=near)  # type: ignore[arg-type]
    np.testing.assert_array_equal(model.predict(X, horizon_days=np.int64(180)), model.predict(X))


def test_round_trip_through_json_gives_identical_predictions(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray],
) -> None:
    model, X, _ = fitted
    state = json.loads(json.dumps(model.to_dict()))
    loaded = ClvModel.from_dict(state)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    pd.testing.assert_frame_equal(loaded.explain(X.head(20)), model.explain(X.head(20)))
    assert loaded.get_params() == model.get_params()
    assert loaded.scale_ == model.scale_
    assert list(loaded.feature_names_in_) == ["a", "b", "seg"]
    assert loaded.categories_ == model.categories_


def test_settings_given_as_numpy_numbers_save_as_json() -> None:
    """A GridSearchCV grid hands out np.int64: the checks passed them, then `to_dict` could not be saved."""
    X, y, snapshot = make_value(n_per_snapshot=300)
    model = ClvModel(
        num_threads=np.int64(1),
        n_estimators=np.int64(20),
        random_state=np.int64(7),
        params={"feature_fraction": np.float32(0.75), "max_bin": np.int32(63)},
    ).fit(X, y, snapshot=snapshot)
    state = json.loads(json.dumps(model.to_dict()))
    assert state["params"]["params"] == {"feature_fraction": 0.75, "max_bin": 63}
    np.testing.assert_array_equal(ClvModel.from_dict(state).predict(X), model.predict(X))


def test_from_dict_refuses_other_models_and_versions(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray],
) -> None:
    state = fitted[0].to_dict()
    from kamml.models.influence import InfluenceModel

    with pytest.raises(ModelError, match="ClvModel"):
        InfluenceModel.from_dict(state)
    with pytest.raises(ModelError, match="format version"):
        ClvModel.from_dict({**state, "format_version": 99})


def test_category_levels_are_reapplied_at_predict(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    base = model.predict(X)
    # the same values with the categories declared in another order (other integer codes)
    reordered = X.assign(seg=X["seg"].cat.reorder_categories(["z", "y", "x"]))
    np.testing.assert_array_equal(model.predict(reordered), base)
    as_strings = X.assign(seg=X["seg"].astype(str))
    np.testing.assert_array_equal(model.predict(as_strings), base)
    # a level unseen in fit is treated as missing, not as another level
    unseen = X.assign(seg=pd.Categorical(["w"] * len(X)))
    missing = X.assign(seg=pd.Categorical([None] * len(X), categories=["x", "y", "z"]))
    np.testing.assert_array_equal(model.predict(unseen), model.predict(missing))
    assert not np.array_equal(model.predict(unseen), base)


def test_string_columns_are_categorical() -> None:
    X, y, _ = make_value(n_per_snapshot=400, snapshots=1)
    X = X.assign(seg=X["seg"].astype(object))
    model = ClvModel(num_threads=1, n_estimators=50).fit(X, y)
    assert model.categories_ == {"seg": ["x", "y", "z"]}


def test_feature_mismatch_is_a_model_error(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    with pytest.raises(ModelInputError, match="feature names"):
        model.predict(X.rename(columns={"b": "c"}))
    with pytest.raises(ModelInputError):
        model.predict(X[["a", "b"]])
    with pytest.raises(ModelInputError, match="categorical"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(ModelInputError, match="numeric"):
        model.predict(X.assign(a="high"))
    assert issubclass(ModelInputError, ModelError)
    assert issubclass(ModelInputError, ValueError)


def test_negative_target_is_refused() -> None:
    X, y, _ = make_value(n_per_snapshot=100, snapshots=1)
    y[0] = -5.0
    with pytest.raises(ModelInputError, match="non-negative"):
        ClvModel(num_threads=1).fit(X, y)


def test_predict_before_fit_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not fitted"):
        ClvModel().predict(np.zeros((2, 2)))


def test_explain_lists_the_features_pushing_up(fitted: tuple[ClvModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    rows = pd.DataFrame(
        {"a": [3.0, -2.0], "b": [0.0, 0.0], "seg": pd.Categorical(["y", "x"], categories=["x", "y", "z"])},
        index=pd.Index([1, 2], name="account_id"),
    )
    out = model.explain(rows, top=2)
    assert list(out.columns) == ["driver_1", "contribution_1", "driver_2", "contribution_2"]
    assert out.index.equals(rows.index)
    assert out.loc[1, "driver_1"] == "a"  # a very high `a` drives the first account's value
    assert out.loc[2, "driver_1"] == "seg"  # segment x, with a low `a`, drives the second
    assert out.loc[1, "contribution_1"] > 0
    # contributions are LightGBM's pred_contrib: their sum plus the bias is the log prediction in label units
    contrib = model.booster_.predict(model._to_matrix(rows, reset=False), pred_contrib=True)
    np.testing.assert_allclose(
        np.exp(contrib.sum(axis=1)) * model.label_unit_ * model.scale_, model.predict(rows)
    )
    full = model.explain(X, top=3)
    values = full[["contribution_1", "contribution_2", "contribution_3"]].to_numpy()
    assert np.all(np.nan_to_num(values[:, 0], nan=np.inf) >= np.nan_to_num(values[:, 1], nan=-np.inf))
    assert np.all((values > 0) | np.isnan(values))


def test_explain_has_at_most_one_driver_per_feature_and_refuses_a_bad_top(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray],
) -> None:
    """top=100 on 3 features gave 200 columns padded with None and NaN."""
    model, X, _ = fitted
    out = model.explain(X.head(5), top=100, by="size")
    assert list(out.columns) == [f"{kind}_{j}" for j in (1, 2, 3) for kind in ("driver", "contribution")]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ModelInputError, match="top must be a whole number of drivers, 1 or more"):
            model.explain(X.head(5), top=bad)
    with pytest.raises(ModelInputError, match="top must be a whole number of drivers, 0 or more"):
        model.top_contributions(X.head(5), top=-1)


def test_numpy_input_works_without_names() -> None:
    X, y, snapshot = make_value(n_per_snapshot=200)
    arr = X[["a", "b"]].to_numpy()
    model = ClvModel(num_threads=1, n_estimators=50).fit(arr, y, snapshot=snapshot)
    assert not hasattr(model, "feature_names_in_")
    assert model.feature_names_ == ["x0", "x1"]
    assert model.explain(arr[:3])["driver_1"].isin(["x0", "x1", None]).all()


def test_lgb_params_layers_and_aliases() -> None:
    params = ClvModel(num_threads=3, random_state=7, learning_rate=0.1).lgb_params()
    assert params["objective"] == "tweedie"
    assert params["tweedie_variance_power"] == 1.3
    assert (params["num_threads"], params["seed"], params["learning_rate"]) == (3, 7, 0.1)
    assert params["deterministic"] is True
    assert params["verbosity"] == -1
    custom = ClvModel(params={"min_child_samples": 5, "objective": "poisson", "n_estimators": 30})
    p = custom.lgb_params()
    assert p["min_data_in_leaf"] == 5
    assert "min_child_samples" not in p
    assert p["objective"] == "poisson"
    assert custom._num_rounds() == 30
    with pytest.raises(ValueError, match="twice"):
        canonical_params({"min_data_in_leaf": 3, "min_child_samples": 5})
    with pytest.raises(ValueError, match="objective"):
        ClvModel(params={"objective": "binary"}).lgb_params()
    with pytest.raises(ValueError, match="early_stopping_rounds"):
        ClvModel(params={"early_stopping_round": 5}).lgb_params()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"num_leave": 3, "lamda_l2": 100},
            r"unknown params keys 'num_leave', 'lamda_l2'.*did you mean num_leaves",
        ),
        ({"nonsense": 1}, r"ClvModel: unknown params key 'nonsense': not a LightGBM parameter"),
        (
            {"offset_feature": "a"},
            r"offset_feature is an argument of ClvModel: ClvModel\(offset_feature=\.\.\.\)",
        ),
    ],
)
def test_fit_refuses_a_params_key_lightgbm_does_not_know(params: dict[str, object], message: str) -> None:
    """LightGBM only warns (hidden by verbosity -1) and trains with the default: the config's check."""
    from sklearn.utils._param_validation import InvalidParameterError

    X, y, _ = make_value(n_per_snapshot=100, snapshots=1)
    with pytest.raises(InvalidParameterError, match=message):
        ClvModel(num_threads=1, n_estimators=5, params=params).fit(X, y)
    ClvModel(num_threads=1, n_estimators=5, params={"num_leaves": 3, "reg_lambda": 2.0}).fit(X, y)  # aliases


@pytest.mark.parametrize("value", [True, False, 2.5, None, "many"])
def test_fit_refuses_rounds_in_params_that_are_no_whole_number(value: object) -> None:
    """``num_trees: true`` (an alias of n_estimators, left in the params) trained one tree without a word.

    The config's ``models.clv.n_estimators: true`` was refused; its aliases, kept in ``params``, were
    read by ``int()``: true as 1 tree, 2.5 as 2 (docs/config.md: true and false are refused where a
    number goes, in the models sections too).
    """
    from sklearn.utils._param_validation import InvalidParameterError

    X, y, _ = make_value(n_per_snapshot=100, snapshots=1)
    with pytest.raises(InvalidParameterError, match=r"ClvModel: params key 'num_trees' .*whole number"):
        ClvModel(num_threads=1, params={"num_trees": value}).fit(X, y)
    assert ClvModel(num_threads=1, params={"num_trees": 3.0}).fit(X, y)._num_rounds() == 3


def test_a_metric_early_stopping_cannot_watch_is_named() -> None:
    """metric "none" (LightGBM's own value) ended fit in LightGBM's early-stopping traceback."""
    X, y, snapshot = make_value(n_per_snapshot=100)
    model = ClvModel(num_threads=1, n_estimators=5, params={"metric": "none"})
    with pytest.raises(
        ValueError, match=r"ClvModel: LightGBM computes no evaluation metric for metric='none'"
    ):
        model.fit(X, y, snapshot=snapshot)
    model.set_params(early_stopping_rounds=None).fit(X, y, snapshot=snapshot)  # nothing to watch: fine


def test_dates_in_fit_are_named_as_no_numbers() -> None:
    """The refusal read "must be numeric as it was in fit" in fit itself."""
    X, y, _ = make_value(n_per_snapshot=50, snapshots=1)
    X["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(X)), unit="D")
    with pytest.raises(ModelInputError, match=r"ClvModel: columns \['when'\] hold dates or durations"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y)


@pytest.mark.parametrize(
    ("column", "says"),
    [
        (lambda n: pd.Categorical(pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 3, unit="D")),
         r"columns \['when'\] hold dates or durations"),
        (lambda n: np.array([b"a", b"b"] * (n // 2), dtype=object),
         r"column 'when' has category levels the model cannot save as JSON \(e\.g\. b'a', a bytes\)"),
        # a date among text is a date column (`_temporal` looks inside pandas' "mixed"), refused as such
        (lambda n: np.array([pd.Timestamp("2024-01-01"), "soon"] * (n // 2), dtype=object),
         r"columns \['when'\] hold dates or durations"),
    ],
)  # fmt: skip
def test_category_levels_json_cannot_hold_are_refused_in_fit(column, says) -> None:
    """Fit and predict worked; to_dict and ModelBundle.save then failed with a TypeError naming no column."""
    X, y, _ = make_value(n_per_snapshot=50, snapshots=1)
    X["when"] = column(len(X))
    with pytest.raises(ModelInputError, match=says):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y)


def test_a_frame_without_columns_is_named() -> None:
    """LightGBM's error spoke of a forced splits file."""
    X, y, _ = make_value(n_per_snapshot=50, snapshots=1)
    with pytest.raises(ModelInputError, match="ClvModel: X has no feature columns"):
        ClvModel(num_threads=1, n_estimators=5).fit(X[[]], y)


def test_labels_of_another_horizon_are_refused() -> None:
    """build_training_frame's attrs say the labels' window; a 90-day frame fitted at 180 was scored at 180."""
    X, y, _ = make_value(n_per_snapshot=100, snapshots=1)
    X.attrs["horizon_days"] = 90
    with pytest.raises(ModelInputError, match=r"X's labels cover 90 days .* ClvModel has horizon_days=180"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y)
    assert ClvModel(num_threads=1, n_estimators=5, horizon_days=90).fit(X, y).horizon_days_ == 90
    X.attrs.clear()
    y = pd.Series(y)
    y.attrs["horizon_days"] = 30
    with pytest.raises(ModelInputError, match=r"y's labels cover 30 days"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y)


def test_sample_weight_changes_the_fit() -> None:
    X, y, _ = make_value(n_per_snapshot=400, snapshots=1)
    w = np.where(X["seg"] == "x", 5.0, 1.0)
    plain = ClvModel(num_threads=1, n_estimators=50).fit(X, y).predict(X)
    weighted = ClvModel(num_threads=1, n_estimators=50).fit(X, y, sample_weight=w).predict(X)
    assert not np.allclose(plain, weighted)
    with pytest.raises(ValueError, match="non-zero"):
        ClvModel(num_threads=1).fit(X, y, sample_weight=np.zeros(len(y)))


def test_snapshot_length_must_match() -> None:
    X, y, snapshot = make_value(n_per_snapshot=50)
    with pytest.raises(ModelInputError, match="snapshot"):
        ClvModel(num_threads=1).fit(X, y, snapshot=snapshot[:-1])


def test_category_codes_agree_for_small_and_large_inputs():
    import pandas as pd

    from kamml.models._lgbm import _category_codes

    levels = ["a", "b", "c"]
    values = pd.Series(["b", None, "z", "a", "c", float("nan")] * 20, dtype=object)
    small = np.concatenate([_category_codes(values.iloc[i : i + 6], levels) for i in range(0, 120, 6)])
    large = _category_codes(values, levels)
    np.testing.assert_array_equal(small, large)
    np.testing.assert_array_equal(large[:6], [1.0, np.nan, np.nan, 0.0, 2.0, np.nan])
    as_category = values.astype("category")
    np.testing.assert_array_equal(_category_codes(as_category.iloc[:6], levels), large[:6])


@pytest.mark.parametrize("repeat", [1, 40])  # a REST request's path, and a batch's
def test_a_number_spelled_otherwise_is_its_fitted_level(repeat: int) -> None:
    import pandas as pd

    from kamml.models._lgbm import _category_codes

    # fit saw the text "3" and the number 7: a JSON client sends 3, "3.0", "7", 7.0
    levels = ["3", 7, "north", "03"]
    sent = [3, "3.0", "7", 7.0, "north", "03", 3.5, "7.5", True, None, " 3", "3e0"]
    codes = _category_codes(pd.Series(sent * repeat, dtype=object), levels)[:12]
    np.testing.assert_array_equal(
        codes, [0.0, 0.0, 1.0, 1.0, 2.0, 3.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]
    )
    # two levels that are one number ("5" and 5): each matches itself, another spelling matches neither
    both = ["5", 5]
    exact = _category_codes(pd.Series([5, "5"] * repeat, dtype=object), both)[:2]
    np.testing.assert_array_equal(exact, [1.0, 0.0])
    other = _category_codes(pd.Series(["5.0", "5.00"] * repeat, dtype=object), both)[:2]
    np.testing.assert_array_equal(other, [np.nan, np.nan])


@pytest.mark.parametrize("repeat", [1, 40])
def test_a_bool_is_no_number_and_does_not_hide_one_sent_after_it(repeat: int) -> None:
    """True == 1 in Python: a True first in a batch made a later 1 unseen, and True matched "1"."""
    import pandas as pd

    from kamml.models._lgbm import _category_codes

    levels = ["1", "2", "retail"]
    for sent, expected in [([True, 1, "x"], [np.nan, 0.0, np.nan]), ([1, True, "x"], [0.0, np.nan, np.nan])]:
        codes = _category_codes(pd.Series(sent * repeat, dtype=object), levels)[:3]
        np.testing.assert_array_equal(codes, expected)


@pytest.mark.parametrize("rows", [3, 200])  # a REST request's path, and a batch's
def test_a_list_or_dict_in_a_text_column_is_a_named_error(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray], rows: int
) -> None:
    """JSON's list or object in a category column failed inside pandas (a generic 400 over REST)."""
    model, X, _ = fitted
    seg = X["seg"].astype(object).iloc[:rows].to_numpy()
    seg[1], seg[2] = ["x", "y"], {"name": "x"}
    with pytest.raises(ModelInputError) as info:
        model.predict(X.iloc[:rows].assign(seg=seg))
    message = str(info.value)
    assert "column 'seg' must hold one category (text) per row" in message
    assert "got dict and list value(s) in row(s) 1, 2 (2 rows)" in message
    plain = X.iloc[:rows].assign(seg=X["seg"].astype(object).iloc[:rows].to_numpy())
    np.testing.assert_array_equal(model.predict(plain), model.predict(X.iloc[:rows]))


#: Category values fit refuses (a date column, a level JSON cannot hold), as scoring may be sent them.
NOT_CATEGORIES = {
    "timestamps": (lambda n: pd.Series([pd.Timestamp("2024-01-01")] * n), "Timestamp", "dates and durations"),
    "dates": (lambda n: np.array([dt.date(2024, 1, 1)] * n, dtype=object), "date", "dates and durations"),
    "durations": (lambda n: pd.Series(pd.to_timedelta(np.arange(n), unit="D")), "Timedelta", "dates and"),
    "dated levels": (
        lambda n: pd.Categorical([pd.Timestamp("2024-01-01")] * n),
        "Timestamp",
        "dates and durations",
    ),
    "a date among text": (
        lambda n: np.array(["a", pd.Timestamp("2024-01-01")] + ["a"] * (n - 2), dtype=object),
        "Timestamp",
        "dates and durations",
    ),
    "bytes": (lambda n: np.array([b"a"] * n, dtype=object), "bytes", "bytes are not categories"),
    "bytes among text": (
        lambda n: np.array(["a", b"a"] + ["a"] * (n - 2), dtype=object),
        "bytes",
        "bytes are not categories",
    ),
}


@pytest.mark.parametrize("rows", [3, 200])  # a REST request's path, and a batch's
@pytest.mark.parametrize("kind", list(NOT_CATEGORIES))
def test_dates_or_bytes_in_a_text_column_are_refused_at_scoring_as_in_fit(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray], rows: int, kind: str
) -> None:
    """Fit refuses a date column and bytes levels; scoring read each such value as an unseen level (a
    missing value), with at most a warning."""
    model, X, _ = fitted
    make, type_name, reason = NOT_CATEGORIES[kind]
    values = make(rows)
    with pytest.raises(ModelInputError) as info:
        model.predict(
            X.iloc[:rows].assign(seg=values.to_numpy() if isinstance(values, pd.Series) else values)
        )
    message = str(info.value)
    assert "column 'seg' must hold one category (text) per row as it was in fit, got " in message
    assert f"got {type_name} value(s) in row(s) " in message
    assert reason in message
    assert "send the category as text" in message
    first = 1 if "among" in kind else 0
    assert f"in row(s) {first}" in message


@pytest.mark.parametrize("rows", [3, 200])  # a REST request's path (the rows made objects), and a batch's
@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[ns]", "period[D]"])
def test_a_dated_column_without_a_value_in_a_text_column_is_refused_by_its_type(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray], rows: int, dtype: str
) -> None:
    """Every value NaT read as a missing value, so the model scored it where fit refuses a date column."""
    model, X, _ = fitted
    empty = pd.Series(pd.NaT, index=X.index[:rows], dtype=dtype)
    with pytest.raises(ModelInputError) as info:
        model.predict(X.iloc[:rows].assign(seg=empty))
    assert str(info.value) == (
        f"column 'seg' must hold one category (text) per row as it was in fit, got {dtype}: dates and "
        "durations are neither numbers nor categories, and fit refuses them: send the category as text"
    )


# ---- the offset: boosting from a prior value --------------------------------------------------------


def prior_data(n: int = 4000, seed: int = 0, factor: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Spend proportional to a prior value times a feature effect, as BTYD's value and the trees split it."""
    rng = np.random.default_rng(seed)
    prior = rng.lognormal(3, 1, n) * factor
    z = rng.normal(size=n)
    y = rng.poisson(prior / 10 * np.exp(0.5 * z)) * 10.0
    return pd.DataFrame({"prior": prior, "z": z}), y


def test_offset_carries_the_prior_beyond_the_training_range() -> None:
    X, y = prior_data()
    snapshot = np.repeat([0, 1], len(y) // 2)
    kwargs = {"horizon_days": 90, "n_estimators": 200}
    with_prior = ClvModel(offset_feature="prior", **kwargs).fit(X, y, snapshot=snapshot)
    without = ClvModel(**kwargs).fit(X, y, snapshot=snapshot)
    far, _ = prior_data(seed=1, factor=20.0)  # priors 20x those seen in training: trees plateau
    truth = far["prior"] * np.exp(0.5 * far["z"])
    error = {
        name: float(np.mean(np.abs(np.log(m.predict(far, horizon_days=90) / truth))))
        for name, m in (("with", with_prior), ("without", without))
    }
    assert error["with"] < error["without"] - 0.15, error  # measured: 0.34 against 0.61
    assert with_prior.offset_floor_ == pytest.approx(0.1 * X["prior"].mean())
    assert without.offset_floor_ is None
    assert without.offset_mean_ is None


def test_offset_round_trips_and_is_credited_in_explanations() -> None:
    X, y = prior_data()
    model = ClvModel(horizon_days=90, n_estimators=100, offset_feature="prior").fit(X, y)
    back = ClvModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(back.predict(X, horizon_days=90), model.predict(X, horizon_days=90))
    top = X["prior"].idxmax()  # far above the mean prior: the offset is its main driver
    assert model.explain(X.loc[[top]])["driver_1"].iloc[0] == "prior"
    missing = X.head(3).assign(prior=np.nan)  # a missing prior counts as the floor
    assert np.isfinite(model.predict(missing, horizon_days=90)).all()


@pytest.mark.parametrize("offset", [None, "prior"])
@pytest.mark.parametrize("unit", [1e-6, 1e4])
def test_the_amounts_unit_does_not_change_the_model(offset: str | None, unit: float) -> None:
    """Amounts in millions or in cents fit the model they fit in units: LightGBM learns y / its mean.

    Its L2 penalty is absolute and tweedie's hessians shrink with the labels, so in a small unit every
    leaf stayed near 0 (CDNOW in millions of dollars kept one tree and forecast 43 times the spend).
    """
    X, y = prior_data()
    snapshot = np.repeat([0, 1], len(y) // 2)
    kwargs = {"horizon_days": 90, "n_estimators": 200, "offset_feature": offset}
    base = ClvModel(**kwargs).fit(X, y, snapshot=snapshot)
    scaled_X = X.assign(prior=X["prior"] * unit)
    scaled = ClvModel(**kwargs).fit(scaled_X, y * unit, snapshot=snapshot)
    assert scaled.best_iteration_ == base.best_iteration_
    np.testing.assert_allclose(
        scaled.predict(scaled_X, horizon_days=90), base.predict(X, horizon_days=90) * unit, rtol=1e-4
    )
    assert scaled.label_unit_ == pytest.approx(base.label_unit_ * unit)
    assert base.label_unit_ == pytest.approx(y.mean())
    explained = scaled.explain(scaled_X.head(50), top=2, by="size")
    pd.testing.assert_frame_equal(explained, base.explain(X.head(50), top=2, by="size"), rtol=1e-4)


@pytest.mark.parametrize("offset", [None, "prior"])
@pytest.mark.parametrize("largest", [1e-295, 1e300, 1e308])
def test_a_target_beyond_float32s_range_fits_as_in_units(offset: str | None, largest: float) -> None:
    """Targets beyond LightGBM's 32-bit labels (1e-297 read as 0, 1e302 as infinite) fit as in units.

    LightGBM learns y / its mean, so they were refused for a limit the model no longer has; at 1e308 the
    target's sum overflows a float, so its mean is taken on y / its largest value.
    """
    X, y = prior_data()
    snapshot = np.repeat([0, 1], len(y) // 2)
    kwargs = {"horizon_days": 90, "n_estimators": 200, "offset_feature": offset}
    base = ClvModel(**kwargs).fit(X, y, snapshot=snapshot)
    unit = largest / y.max()
    scaled = ClvModel(**kwargs).fit(X, y * unit, snapshot=snapshot)
    assert scaled.best_iteration_ == base.best_iteration_
    assert scaled.scale_ == pytest.approx(base.scale_, rel=1e-9)
    np.testing.assert_allclose(
        scaled.predict(X, horizon_days=90) / unit, base.predict(X, horizon_days=90), rtol=1e-4
    )


def test_a_model_saved_before_the_label_unit_scores_as_it_did() -> None:
    """A state without ``label_unit`` and ``start_shift`` learnt y from the bare offset: unit 1, shift 0."""
    X, y = prior_data(n=1000)
    model = ClvModel(horizon_days=90, n_estimators=30, offset_feature="prior").fit(X, y)
    state = model.to_dict()
    for key in ("label_unit", "start_shift"):
        del state[key]
    old = ClvModel.from_dict(state)
    assert (old.label_unit_, old.start_shift_) == (1.0, 0.0)
    raw = old.booster_.predict(X.to_numpy(), raw_score=True)
    start = 0.5 * np.log(np.maximum(X["prior"].to_numpy(), old.offset_floor_))
    np.testing.assert_allclose(old.predict(X, horizon_days=90), np.exp(raw + start) * old.scale_, rtol=1e-12)


def test_offset_feature_must_be_a_column_with_positive_values() -> None:
    X, y = prior_data(n=200)
    with pytest.raises(ModelInputError, match="offset_feature 'btyd_value' is not among the feature columns"):
        ClvModel(horizon_days=90, n_estimators=5, offset_feature="btyd_value").fit(X, y)
    with pytest.raises(ModelInputError, match="offset_feature 'z' has no positive value"):
        ClvModel(horizon_days=90, n_estimators=5, offset_feature="z").fit(X.assign(z=-1.0), y)


def test_training_logs_its_start_end_and_progress(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """A long training is never silent: a line every PROGRESS_SECONDS, and (debug) at the start and end."""
    monkeypatch.setattr("kamml.models._lgbm.PROGRESS_SECONDS", 0.0)  # a progress line every round
    X, y, snapshot = make_value(n_per_snapshot=200)
    with caplog.at_level("DEBUG", logger="kamml.models._lgbm"):
        model = ClvModel(horizon_days=180, num_threads=1, n_estimators=5).fit(X, y, snapshot=snapshot)
    lines = [r.getMessage() for r in caplog.records]
    start = "ClvModel: training on 400 rows x 3 features, up to 5 rounds"
    assert any(line.startswith(start) for line in lines)
    assert any(line.startswith("ClvModel: training on 600 rows") for line in lines)  # the refit on all
    progress = [line for line in lines if ": round " in line]
    assert progress
    assert "held-out" in progress[0]
    assert any(line.startswith(f"ClvModel: best round {model.best_iteration_} of ") for line in lines)


# ---- monotone constraints by feature name -----------------------------------------------------------


def dip_data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Spend rising with `spend` except a dip in the middle of its range, plus noise from `z`."""
    rng = np.random.default_rng(seed)
    spend = rng.uniform(0, 10, n)
    z = rng.normal(size=n)
    rate = np.exp(0.3 * spend - 2.5 * ((spend > 4) & (spend < 6)) + 0.3 * z)
    return pd.DataFrame({"spend": spend, "z": z}), rng.poisson(rate) * 10.0


def _steps_down(model: ClvModel, X: pd.DataFrame, column: str) -> int:
    """How many steps of a grid over `column` lower the prediction (the other columns at row 0's)."""
    grid = X.head(1).loc[np.zeros(50, dtype=int)].assign(**{column: np.linspace(0, 10, 50)})
    return int((np.diff(model.predict(grid)) < -1e-12).sum())


def test_monotone_constrains_the_named_feature_only() -> None:
    X, y = dip_data()
    free = ClvModel(horizon_days=90, n_estimators=150, num_threads=1).fit(X, y)
    rising = ClvModel(horizon_days=90, n_estimators=150, num_threads=1, monotone={"spend": 1}).fit(X, y)
    assert _steps_down(free, X, "spend") > 0  # the dip is learnt without the constraint
    assert _steps_down(rising, X, "spend") == 0
    params = rising.lgb_params()
    assert params["monotone_constraints_method"] == "intermediate"
    assert "monotone_constraints_method" not in free.lgb_params()
    back = ClvModel.from_dict(json.loads(json.dumps(rising.to_dict())))
    assert back.monotone == {"spend": 1}
    np.testing.assert_array_equal(back.predict(X), rising.predict(X))


def test_monotone_is_checked() -> None:
    X, y = dip_data(n=300)
    fast = {"horizon_days": 90, "n_estimators": 5, "num_threads": 1}
    with pytest.raises(ModelInputError, match=r"not training columns: \['spend_90d'\]"):
        ClvModel(monotone={"spend_90d": 1}, **fast).fit(X, y)
    with pytest.raises(ModelInputError, match=r"not training columns: \['spend_90d'\]"):
        ClvModel(monotone={"spend_90d": 0}, **fast).fit(X, y)  # a slip whatever its direction, as in a config
    with pytest.raises(ValueError, match=r"must be 1 .* -1 .* or 0, got \{'spend': 2\}"):
        ClvModel(monotone={"spend": 2}, **fast).fit(X, y)
    with pytest.raises(ValueError, match=r"not also as LightGBM.s monotone_constraints \(or its alias mc\)"):
        ClvModel(monotone={"spend": 1}, params={"mc": [1, 0]}, **fast).lgb_params()
    categorical = X.assign(z=pd.Categorical(np.where(X["z"] > 0, "a", "b")))
    with pytest.raises(ModelInputError, match=r"categorical features, which have no order: \['z'\]"):
        ClvModel(monotone={"z": 1}, **fast).fit(categorical, y)
    ClvModel(monotone={"z": 0}, **fast).fit(categorical, y)  # 0 constrains nothing
    with pytest.raises(ModelInputError, match=r"monotone_constraints in the params has 3 values for 2"):
        ClvModel(params={"monotone_constraints": [1, 0, 0]}, **fast).fit(X, y)  # LightGBM would abort
    ClvModel(params={"mc": "1,0"}, **fast).fit(X, y)  # LightGBM's text form counts by its commas
    with pytest.raises(ValueError, match=r"do not hold with linear_tree"):
        ClvModel(monotone={"spend": 1}, params={"linear_trees": True}, **fast).lgb_params()
    with pytest.raises(ValueError, match=r"one of basic, intermediate, advanced, got 'intermedate'"):
        ClvModel(monotone={"spend": 1}, params={"mc_method": "intermedate"}, **fast).lgb_params()
    assert (
        ClvModel(monotone={"spend": 1}, params={"mc_method": "basic"}).lgb_params()[
            "monotone_constraints_method"
        ]
        == "basic"
    )


def test_monotone_saves_as_json_and_an_older_kamml_says_what_it_cannot_read() -> None:
    X, y = dip_data(n=300)
    model = ClvModel(horizon_days=90, n_estimators=5, num_threads=1, monotone={"spend": np.int64(1)})
    state = json.loads(json.dumps(model.fit(X, y).to_dict()))  # numpy ints as plain ints
    assert state["params"]["monotone"] == {"spend": 1}
    state["params"]["setting_of_a_newer_kamml"] = 1
    with pytest.raises(ModelError, match="saved by a newer kamml"):
        ClvModel.from_dict(state)


def test_a_latest_snapshot_of_zero_weight_is_not_held_out(caplog: pytest.LogCaptureFixture) -> None:
    """Rows of zero weight count as absent: on a held-out snapshot weighing nothing LightGBM's metric was
    NaN and early stopping kept one tree; the latest snapshot with weight is held out instead."""
    X, y, snapshot = make_value()
    latest = snapshot == snapshot.max()
    weight = np.where(latest, 0.0, 1.0)
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        model = ClvModel(**FAST).fit(X, y, snapshot=snapshot, sample_weight=weight)
    assert "after snapshot 2020-03-31 00:00:00 has zero weight" in caplog.text
    # the first model, its early stopping and the total scale are those without the weightless rows
    dropped = ClvModel(**FAST).fit(X[~latest], y[~latest], snapshot=snapshot[~latest])
    assert np.isfinite(model.validation_score_["tweedie"])
    assert model.validation_score_ == pytest.approx(dropped.validation_score_)
    assert model.best_iteration_ == dropped.best_iteration_ > 1
    assert model.scale_ == pytest.approx(dropped.scale_)
    # with one snapshot of positive weight left, none is held out
    first = snapshot == snapshot.min()
    model = ClvModel(num_threads=1, n_estimators=40).fit(
        X, y, snapshot=snapshot, sample_weight=np.where(first, 1.0, 0.0)
    )
    assert model.validation_score_ == {}
    assert model.best_iteration_ == 40


def test_a_thread_count_in_params_is_used_for_prediction_too():
    """Training took params' n_jobs, prediction the num_threads argument."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = rng.poisson(np.exp(X[:, 0])) * 10.0
    model = ClvModel(n_estimators=5, num_threads=1, params={"n_jobs": 2}).fit(X, y)
    assert model.booster_.params.get("num_threads") == 2
    assert model._predict_threads(np.zeros((50_000, 3))) == 2
    assert model._predict_threads(np.zeros((5, 3))) == 1


def test_an_object_column_of_numbers_is_a_number_not_a_category() -> None:
    """SQL DECIMAL arrives as Decimal objects: as levels, every new value scored as missing (an audit)."""
    from decimal import Decimal

    X, y, _ = make_value(n_per_snapshot=400, snapshots=1)
    as_objects = X.assign(a=[Decimal(f"{v:.6f}") for v in X["a"]])
    model = ClvModel(num_threads=1, n_estimators=50).fit(as_objects, y)
    assert set(model.categories_) == {"seg"}
    floats = ClvModel(num_threads=1, n_estimators=50).fit(X.assign(a=X["a"].round(6)), y)
    new = X.head(5).assign(a=[Decimal("2.345"), Decimal("-1.999"), Decimal("0.5"), None, Decimal("1")])
    expected = floats.predict(new.assign(a=new["a"].astype(float)))
    np.testing.assert_allclose(model.predict(new), expected, rtol=1e-12)


def test_a_refit_that_fails_leaves_the_fitted_model_as_it_was(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray],
) -> None:
    """The failed refit had taken the new columns while the booster kept the old: wrong scores, no error."""
    import copy

    model, X, _ = fitted
    model = copy.deepcopy(model)
    before = model.predict(X)
    other = pd.DataFrame({"visits": np.arange(50.0), "tenure": np.ones(50)})
    with pytest.raises(ModelInputError):
        model.fit(other, np.zeros(50))  # nothing positive to learn from
    assert model.feature_names_ == ["a", "b", "seg"]
    np.testing.assert_array_equal(model.predict(X), before)
    with pytest.raises(ModelInputError, match="feature names"):
        model.predict(other)


def test_more_threads_than_cores_is_warned_once(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """A config written for a bigger machine (models.threads 16 on 2 cores) trained slower, unsaid."""
    import kamml.models._lgbm as lgbm

    monkeypatch.setattr(lgbm, "_usable_cores", lambda: 1)
    monkeypatch.setattr(lgbm, "_WARNED_THREADS", set())
    X, y, snap = make_value(n_per_snapshot=150, snapshots=2)
    with caplog.at_level("WARNING", logger="kamml.models._lgbm"):
        ClvModel(horizon_days=90, num_threads=2, n_estimators=5).fit(X, y, snapshot=snap)
        ClvModel(horizon_days=90, num_threads=2, n_estimators=5).fit(X, y, snapshot=snap)
        ClvModel(horizon_days=90, num_threads=1, n_estimators=5).fit(X, y, snapshot=snap)
    said = [r.getMessage() for r in caplog.records if "CPU core" in r.getMessage()]
    assert said == [
        "LightGBM num_threads (models.threads) is 2 but this process may use 1 CPU core: threads beyond "
        "the cores slow training down; set it to 1 or less"
    ]


def test_a_value_that_is_not_a_number_is_named_with_its_row() -> None:
    """A batch's refusal named the column and the text, not which row held it (a tracking audit)."""
    from kamml.models._lgbm import as_float

    with pytest.raises(ModelInputError, match=r"'recency' must be numeric .* \(row 2: ''\)$"):
        as_float(pd.Series([1.0, None, "", "x"], dtype=object), "recency")
    np.testing.assert_array_equal(as_float(pd.Series([1, None], dtype=object), "r"), [1.0, np.nan])


def test_counts_in_input_errors_and_the_fit_line_group_thousands(
    fitted: tuple[ClvModel, pd.DataFrame, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """Counts of rows read with thousands separators from 1,000 on, as the other messages ('1234 rows')."""
    model, X, y = fitted
    rows = X.iloc[:1234].assign(seg=pd.Series([["x"]] * 1234, index=X.index[:1234], dtype=object))
    with pytest.raises(ModelInputError, match=r"in row\(s\) 0, 1, 2, 3, 4 \(1,234 rows\)"):
        model.predict(rows)
    with pytest.raises(ModelInputError, match="X has 1,800 rows but y has 1,799"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y[:-1])
    with pytest.raises(ModelInputError, match="snapshot has 1,799 values for 1,800 rows"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y, snapshot=np.zeros(1799))
    with pytest.raises(ModelInputError, match=r"Negative values in y: 1,800 rows"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, -1.0 - y)
    snapshot = np.repeat([1, 2, 3], 600)
    with caplog.at_level("INFO", logger="kamml.models._lgbm"):
        ClvModel(num_threads=1, n_estimators=5).fit(X, y, snapshot=snapshot)
    assert "ClvModel: 1,200 earlier rows, validated on the latest snapshot's 600; best" in caplog.text
    assert re.search(r"best iteration \d+ of 5; held-out tweedie \d+\.?\d*(e[+-]\d+)?$", caplog.text.strip())
