from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import FeatureMismatchError, ModelError
from kamml.features import build_features, build_training_frame, training_cutoffs
from kamml.models import ModelBundle

FAST = {"n_estimators": 40, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def world_data(tmp_path_factory):
    world = synthetic.generate(400, seed=11, years=2.0)
    path = tmp_path_factory.mktemp("world")
    world.write(path)
    return load_data(path)


def config(**time):
    return Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60, **time},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )


@pytest.fixture(scope="module")
def fitted(world_data):
    cfg = config()
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    return ModelBundle.fit(train, cfg), build_features(world_data, end, cfg)


def test_predict_columns_and_ranges(fitted):
    bundle, features = fitted
    scores = bundle.predict(features)
    assert list(scores.columns) == [
        "clv",
        "p_churn",
        "referral_value",
        "p_alive",
        "expected_purchases",
        "effort_scale",
        "drivers",
    ]
    assert scores.index.equals(features.index)
    assert (scores["clv"] >= 0).all()
    assert scores["p_churn"].between(0, 1).all()
    assert scores["drivers"].str.len().gt(0).mean() > 0.5
    assert bundle.influence is not None


def test_save_load_round_trip_gives_identical_scores(fitted, tmp_path):
    bundle, features = fitted
    path = bundle.save(tmp_path / "bundle")
    assert path.name == "bundle.json"
    back = ModelBundle.load(tmp_path / "bundle")
    a = bundle.predict(features, refit_btyd=False)
    b = back.predict(features, refit_btyd=False)
    pd.testing.assert_frame_equal(a, b)
    assert not list(tmp_path.rglob("*.pkl"))


def test_saved_models_are_native_lightgbm_text_files(fitted, tmp_path):
    import json

    import lightgbm as lgb

    bundle, _features = fitted
    bundle.save(tmp_path)
    state = json.loads((tmp_path / "bundle.json").read_text())
    assert state["clv"]["booster_file"] == "clv.txt"
    assert "booster" not in state["clv"]
    booster = lgb.Booster(model_file=str(tmp_path / "clv.txt"))
    assert booster.feature_name() == bundle.clv.feature_names_
    (tmp_path / "churn.txt").unlink()
    with pytest.raises(ModelError, match=r"churn\.txt"):
        ModelBundle.load(tmp_path)


def test_feature_spec_rebuilds_the_same_features(fitted, world_data):
    bundle, features = fitted
    spec = bundle.feature_spec()
    assert spec["horizon_days"] == 90
    assert spec["unit"] == "days"
    assert set(spec["columns"]) <= set(features.columns)
    other = Config.from_dict({"features": {"windows": [7]}, "time": {"horizon_days": 30}})
    cfg = bundle.scoring_config(other)
    rebuilt = build_features(world_data, world_data.end.normalize(), cfg)
    pd.testing.assert_frame_equal(rebuilt[spec["columns"]], features[spec["columns"]])


def test_missing_feature_is_a_named_error(fitted):
    bundle, features = fitted
    with pytest.raises(FeatureMismatchError, match="spend_90d"):
        bundle.predict(features.drop(columns=["spend_90d"]))


def test_shorter_training_window_is_stretched_to_the_horizon(world_data):
    end = world_data.end.normalize()
    cfg = config(train_horizon_days=45)
    train_cfg = config(horizon_days=45)
    train = build_training_frame(world_data, training_cutoffs(end, 45, 2, 60), train_cfg)
    bundle = ModelBundle.fit(train, cfg)
    assert (bundle.train_horizon_days, bundle.horizon_days) == (45, 90)
    features = build_features(world_data, end, cfg)
    rows, _ = bundle.with_btyd(features)
    raw = bundle.clv.predict(rows[bundle.features], horizon_days=45)
    stretched = bundle.predict(features)["clv"].to_numpy()
    known = features["frequency"].notna().to_numpy()
    assert np.all(stretched[known] >= raw[known] - 1e-9)  # more time, at least as much value
    assert stretched.sum() > raw.sum()


def test_training_frame_without_snapshot_is_refused():
    with pytest.raises(ModelError, match="snapshot"):
        ModelBundle.fit(pd.DataFrame({"value": [1.0]}), config())


def test_one_row_and_whole_frame_paths_give_the_same_scores(fitted):
    """Small requests take the array path (one conversion, scalar BTYD series): same numbers."""
    bundle, features = fitted
    whole = bundle.predict(features, refit_btyd=False)
    for i in (0, 5, len(features) - 1):
        one = bundle.predict(features.iloc[[i]], refit_btyd=False)
        pd.testing.assert_frame_equal(one, whole.iloc[[i]], rtol=1e-12)


def test_non_numeric_feature_value_is_a_named_error(fitted):
    bundle, features = fitted
    rows = features.head(2).astype({"spend_90d": object})
    rows.iloc[0, rows.columns.get_loc("spend_90d")] = "a lot"
    with pytest.raises(ModelError, match="'spend_90d' must be numeric"):
        bundle.predict(rows, refit_btyd=False)
    rows = features.head(2).astype({"recency": object})
    rows.iloc[0, rows.columns.get_loc("recency")] = "spring"
    with pytest.raises(ModelError, match="'recency' must be numeric"):
        bundle.predict(rows, refit_btyd=False)
