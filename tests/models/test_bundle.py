from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import spearmanr

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import ConfigError, FeatureMismatchError, ModelError
from kamml.features import build_features, build_training_frame, training_cutoffs
from kamml.models import ModelBundle
from kamml.models.btyd_features import (
    BtydFit,
    btyd_columns,
    expected_purchase_ratio,
    no_purchase_exponent,
    rfm_arrays,
)
from kamml.models.bundle import (
    PREDICTION_COLUMNS,
    SHAPE_POINTS,
    add_snapshot_btyd,
    apply_value_shape,
    check_model_settings,
    fit_value_shape,
    sample_accounts,
    shape_weight,
)
from kamml.models.drivers import target_of
from kamml.models.effort import EffortResponse

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


@pytest.fixture(scope="module")
def latest_snapshot(world_data, fitted):
    """The latest training snapshot of `fitted` with its own BTYD columns, rebuilt independently."""
    bundle, _ = fitted
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), config())
    train = add_snapshot_btyd(train, 90 / bundle.unit_days)
    return train[train["snapshot"] == train["snapshot"].max()]


def test_churn_bias_is_measured_on_the_latest_snapshot_and_not_carried_without_a_season(
    fitted, latest_snapshot
):
    """Actual churn rate minus BTYD's mean P(no purchase) there, kept as a record; the level is BTYD's."""
    bundle, _ = fitted
    rows = latest_snapshot[latest_snapshot["btyd_p_zero"].notna()]
    expected = rows["churned"].mean() - rows["btyd_p_zero"].mean()
    assert expected != pytest.approx(0.0, abs=1e-3)  # so a flipped sign shows
    assert bundle.meta["latest_churn_bias"] == pytest.approx(expected, rel=1e-9)
    assert bundle.churn_bias == 0.0


def test_btyd_bias_is_measured_on_the_latest_snapshot_and_not_carried_without_a_season(
    fitted, latest_snapshot
):
    """Without a season the latest window's bias is kept as a record, and the level is BTYD's total:
    carried forward, it lost the aggregate to BTYD alone at most CDNOW splits (docs/models.md)."""
    bundle, _ = fitted
    expected = latest_snapshot["value"].sum() / np.nansum(latest_snapshot["btyd_value"])
    assert expected != pytest.approx(1.0, abs=1e-3)  # so an inverted ratio shows
    assert "season" not in bundle.meta
    assert bundle.meta["latest_btyd_bias"] == pytest.approx(expected, rel=1e-9)
    assert bundle.btyd_bias == 1.0


def _latest_bias(world_data, h: float, cfg: Config) -> tuple[pd.DataFrame, float]:
    """The training frame of two snapshots with h-day labels, and BTYD's bias on its latest snapshot."""
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, h, 2, 60), cfg)
    rows = add_snapshot_btyd(train, h / cfg.time.unit_days)
    rows = rows[rows["snapshot"] == rows["snapshot"].max()]
    return train, float(rows["value"].sum() / np.nansum(rows["btyd_value"]))


def test_a_measured_season_keeps_the_latest_bias_times_its_ratio(world_data):
    """With the season a year earlier measured, the latest window's bias is carried, corrected by it."""
    from kamml.evaluation.backtest import _season_frame

    cfg = config()
    train, measured = _latest_bias(world_data, 90, cfg)
    season = _season_frame(world_data, cfg, world_data.end.normalize(), 90, train["snapshot"].max())
    assert season is not None
    bundle = ModelBundle.fit(train, cfg, season=season)
    assert bundle.btyd_bias == pytest.approx(measured * bundle.meta["season"]["value_ratio"], rel=1e-9)
    assert "latest_btyd_bias" not in bundle.meta
    assert "latest_churn_bias" not in bundle.meta
    assert bundle.churn_bias != 0.0


def test_a_window_of_a_year_keeps_its_bias_without_a_season(world_data):
    """A year-long window holds every season, and no season is measured for it: its bias is carried."""
    cfg = config(horizon_days=364)
    train, measured = _latest_bias(world_data, 364, cfg)
    bundle = ModelBundle.fit(train, cfg)
    assert measured != pytest.approx(1.0, abs=1e-3)
    assert bundle.btyd_bias == pytest.approx(measured, rel=1e-9)
    assert "latest_btyd_bias" not in bundle.meta
    assert "latest_churn_bias" not in bundle.meta
    assert bundle.churn_bias != 0.0


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
        "effort_uplift",
        "drivers",
        "horizon_days",
    ]
    assert list(scores.columns) == list(PREDICTION_COLUMNS)  # the list the pyfunc and scores table share
    assert scores[["effort_scale", "effort_uplift"]].isna().all().all()  # no effort response fitted
    assert scores["horizon_days"].dtype == np.int64
    assert (scores["horizon_days"] == 90).all()
    assert scores.index.equals(features.index)
    assert (scores["clv"] >= 0).all()
    assert scores["p_churn"].between(0, 1).all()
    assert scores["drivers"].str.len().gt(0).mean() > 0.5
    assert bundle.influence is not None


def test_value_model_boosts_from_btyd_value_unless_the_config_turns_it_off(fitted, world_data):
    bundle, _ = fitted
    assert bundle.clv.offset_feature == "btyd_value"
    assert bundle.clv.offset_weight == 0.5
    assert bundle.clv.offset_floor_ > 0
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {
                "threads": 1,
                "clv": {**FAST, "offset_feature": None},
                "churn": {**FAST, "blend_feature": None},
            },
        }
    )
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    plain = ModelBundle.fit(train, cfg)
    assert plain.clv.offset_feature is None
    assert plain.clv.offset_floor_ is None
    assert plain.churn.blend_feature is None
    assert plain.churn.blend_ is None


@pytest.mark.slow  # over 10 s on two shared cores
def test_money_features_constrain_value_up_and_churn_down_unless_the_config_says_otherwise(
    fitted, world_data
):
    bundle, _ = fitted
    money = ["monetary", "spend_total", "spend_30d", "spend_90d", "spend_180d", "spend_365d"]
    money += ["spend_last_year_horizon", "btyd_expected_purchases", "btyd_order_value", "btyd_value"]
    assert bundle.clv.monotone == dict.fromkeys(money, 1)
    assert bundle.churn.monotone == dict.fromkeys(money, -1)
    assert bundle.influence.monotone is None
    given = bundle.clv.booster_.params["monotone_constraints"]
    constraints = dict(zip(bundle.clv.feature_names_, given, strict=True))
    assert {name for name, c in constraints.items() if c} == set(money)  # the booster got them by name
    assert "referred_spend" in constraints  # a spend feature that is not the account's own: free
    end = world_data.end.normalize()

    def fit(**models):
        cfg = config()
        cfg = cfg.model_copy(
            update={"models": cfg.models.model_copy(update={k: {**FAST, **v} for k, v in models.items()})}
        )
        return ModelBundle.fit(build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg), cfg)

    positional = [0] * len(bundle.features)
    own = fit(clv={"monotone": {"spend_90d": 1}}, churn={"mc": positional}, influence={"linear_tree": True})
    assert own.clv.monotone == {"spend_90d": 1}
    assert own.churn.monotone is None  # LightGBM's positional constraints replace the default
    assert own.churn.booster_.params["monotone_constraints"] == positional
    assert own.influence.monotone is None
    text_false = fit(clv={"linear_tree": "false", "monotone": {"attr_industry": 0}})  # as LightGBM reads it
    assert text_false.clv.monotone == {"attr_industry": 0}  # 0 on a categorical feature constrains nothing
    assert fit(clv={"linear_tree": "false"}).clv.monotone == dict.fromkeys(money, 1)
    off = fit(churn={"monotone": None}, clv={"linear_tree": True})
    assert off.churn.monotone is None
    assert off.clv.monotone is None  # constraints do not hold in linear leaves: no default then
    assert "monotone_constraints" not in off.churn.booster_.params
    with pytest.raises(
        ConfigError, match=r"'models\.churn\.monotonic_cst' has 2 values for the \d+ features"
    ):
        fit(churn={"monotonic_cst": "1,0"})  # before LightGBM trains, naming the key as written
    with pytest.raises(
        ConfigError, match=r"'models\.clv\.monotone' names categorical features.*attr_industry"
    ):
        fit(clv={"monotone": {"attr_industry": 1}})
    with pytest.raises(ConfigError, match=r"'models\.clv\.monotone' names features .* \['spend_60d'\]"):
        fit(clv={"monotone": {"spend_60d": 1}})


def test_churn_model_blends_with_btyd_expected_purchases_by_default(fitted):
    bundle, features = fitted
    assert bundle.churn.blend_feature == "btyd_expected_purchases"
    back = ModelBundle.from_dict(json.loads(json.dumps(bundle.to_dict())))
    assert back.churn.blend_ == bundle.churn.blend_  # the fitted weight (None when 0 won) is saved
    pd.testing.assert_series_equal(
        back.predict(features, refit_btyd=False)["p_churn"],
        bundle.predict(features, refit_btyd=False)["p_churn"],
    )


def test_a_fitted_effort_response_gives_each_account_its_scale_and_the_uplift(fitted):
    bundle, features = fitted
    assert bundle.horizon_days == 90
    response = EffortResponse(scale=2.0, exponent=0.5, reference_value=100.0, horizon_days=90, uplift=0.4)
    with_effort = dataclasses.replace(bundle, effort=response)
    scores = with_effort.predict(features, refit_btyd=False)
    np.testing.assert_allclose(scores["effort_scale"], response.effort_scale(scores["clv"]))
    assert (scores["effort_uplift"] == 0.4).all()
    # a response over 180 days (k hours over 180 days, value per 180 days) is carried to the model's 90:
    # it was used as it was, every k twice too large (an audit of the effort response)
    longer = dataclasses.replace(response, scale=4.0, reference_value=200.0, horizon_days=180)
    carried = dataclasses.replace(bundle, effort=longer).predict(features, refit_btyd=False)
    np.testing.assert_allclose(carried["effort_scale"], scores["effort_scale"], rtol=1e-12)
    fixed = dataclasses.replace(bundle, effort=EffortResponse.fixed())  # a hand-set rule is no measurement
    assert fixed.predict(features, refit_btyd=False)["effort_uplift"].isna().all()


def test_an_effort_response_with_a_size_term_reads_the_size_feature(fitted):
    bundle, features = fitted
    response = EffortResponse(
        scale=2.0,
        exponent=0.2,
        reference_value=100.0,
        size_column="size",
        size_exponent=0.4,
        size_reference=50.0,
        horizon_days=90,
        uplift=0.4,
    )
    with_effort = dataclasses.replace(bundle, effort=response)
    scores = with_effort.predict(features, refit_btyd=False)
    expected = response.effort_scale(scores["clv"], features["attr_size"])
    np.testing.assert_allclose(scores["effort_scale"], expected)
    value_only = dataclasses.replace(response, size_exponent=0.0).effort_scale(scores["clv"])
    assert not np.allclose(expected, value_only)
    with pytest.raises(FeatureMismatchError, match="attr_size"):
        with_effort.predict(features.drop(columns="attr_size"), refit_btyd=False)


def test_drivers_alone_equal_those_of_predict(fitted):
    bundle, features = fitted
    rows = features.iloc[::7]
    expected = bundle.predict(rows, refit_btyd=False, top_drivers=2)["drivers"].tolist()
    assert bundle.drivers(rows, top=2) == expected
    assert bundle.drivers(rows, top=0) == [""] * len(rows)
    with pytest.raises(FeatureMismatchError, match="spend_90d"):
        bundle.drivers(rows.drop(columns="spend_90d"))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_a_count_of_drivers_that_is_no_whole_number_from_0_is_refused(fitted, bad):
    """top_drivers=-1 and top=-1 gave empty texts; the REST endpoint refuses them (0: no drivers)."""
    bundle, features = fitted
    rows = features.head(5)
    with pytest.raises(ModelError, match=r"top_drivers must be a whole number of drivers, 0 or more"):
        bundle.predict(rows, refit_btyd=False, top_drivers=bad)
    with pytest.raises(ModelError, match=r"top must be a whole number of drivers, 0 or more"):
        bundle.drivers(rows, top=bad)
    assert bundle.predict(rows, refit_btyd=False, top_drivers=np.int64(0))["drivers"].tolist() == [""] * 5


def test_numbers_sent_as_text_read_as_numbers_in_the_drivers(fitted):
    """JSON from a CRM may carry numbers as strings: the drivers read "84%", not "0.8395812502130866"."""
    bundle, features = fitted
    rows = features.head(30)
    as_text = rows.astype({c: str for c in rows.columns if pd.api.types.is_float_dtype(rows[c])})
    expected = bundle.predict(rows, top_drivers=3)
    got = bundle.predict(as_text, top_drivers=3)
    assert got["drivers"].tolist() == expected["drivers"].tolist()
    assert bundle.drivers(as_text, top=3) == expected["drivers"].tolist()  # drivers alone read them too
    np.testing.assert_array_equal(got["clv"], expected["clv"])


@pytest.mark.parametrize("rows", [5, 120])  # a request's row-by-row phrases and a batch's
def test_a_category_the_models_never_saw_is_named_as_such_in_the_drivers(fitted, rows):
    """An unseen industry is scored as a missing one, but the drivers read "industry: mining (raises
    value)", as if the models had learnt something of mining."""
    bundle, features = fitted
    assert "mining" not in bundle.clv.categories_["attr_industry"]
    sent = features.head(rows).copy()
    sent["attr_industry"] = sent["attr_industry"].astype(object)
    sent.iloc[::2, sent.columns.get_loc("attr_industry")] = "mining"
    scores = bundle.predict(sent, refit_btyd=False, top_drivers=len(bundle.features))
    phrases = [p for text in scores["drivers"] for p in text.split("; ") if p.startswith("industry ")]
    new = [p for p in phrases if "mining" in p]
    assert new
    assert all(
        p.startswith("industry (account attribute): mining (new to the models: read as no data) (")
        for p in new
    )
    assert any("mining" not in p and "new to the models" not in p for p in phrases)  # known ones as they were
    assert bundle.drivers(sent, top=len(bundle.features)) == scores["drivers"].tolist()


def test_drivers_name_each_models_top_movers_with_their_direction(fitted):
    """Per model, the `top` features with the largest contributions either way, each phrase ending in
    the model it explains and the direction the account's TreeSHAP value takes it."""
    bundle, features = fitted
    rows = features.iloc[::9]
    prepared = bundle._prepare(rows, bundle.btyd)[0]
    texts = bundle.drivers(rows, top=2)
    h = bundle.train_horizon_days
    models = {"value": bundle.clv, "churn": bundle.churn, "referral": bundle.influence}
    expected = {}
    for key, model in models.items():
        names, contrib = model.top_contributions(prepared, top=2, horizon_days=h, by="size")
        expected[key] = (names, contrib)
    lowered = 0
    for i, text in enumerate(texts):
        parts = text.split("; ")
        for key, (names, contrib) in expected.items():
            mine = [p for p in parts if target_of(p) == key]
            kept = [j for j in range(2) if names[i, j] is not None]
            assert len(mine) == len(kept)
            for p, j in zip(mine, kept, strict=True):
                assert ("(raises " if contrib[i, j] > 0 else "(lowers ") in p
                lowered += contrib[i, j] < 0
        assert all(target_of(p) is not None for p in parts)
    assert lowered > 0  # what lowers a prediction is named too


def test_save_load_round_trip_gives_identical_scores(fitted, tmp_path):
    bundle, features = fitted
    path = bundle.save(tmp_path / "bundle")
    assert path.name == "bundle.json"
    back = ModelBundle.load(tmp_path / "bundle")
    a = bundle.predict(features, refit_btyd=False)
    b = back.predict(features, refit_btyd=False)
    pd.testing.assert_frame_equal(a, b)
    assert not list(tmp_path.rglob("*.pkl"))


def test_repr_summarises_the_bundle_in_a_line(fitted):
    """The dataclass's repr printed every feature, every model's monotone map and the meta's coverage of
    each feature: about 4,000 characters in a notebook for this 58-feature bundle."""
    bundle, features = fitted
    text = repr(bundle)
    assert len(text) < 300, text
    assert text.startswith("ModelBundle(horizon_days=90, train_horizon_days=90, unit_days=1, ")
    assert f"features={len(bundle.features)} [frequency, recency, T, ...]" in text
    assert "models=[clv, churn, influence]" in text
    assert text.endswith("effort=None, anchored=False)")
    assert repr(bundle.anchor(features)).endswith("anchored=True)")


def test_a_pickled_bundle_scores_the_same(fitted):
    """A notebook's pickle (joblib, multiprocessing) of a fitted bundle gives identical scores."""
    import pickle

    bundle, features = fitted
    anchored = bundle.anchor(features)
    back = pickle.loads(pickle.dumps(anchored))
    pd.testing.assert_frame_equal(back.predict(features), anchored.predict(features))


def test_a_save_over_an_earlier_bundle_leaves_only_its_own_files(fitted, tmp_path):
    """A bundle without an influence model saved over one with it left the old influence.txt behind."""
    bundle, features = fitted
    bundle.save(tmp_path)
    assert (tmp_path / "influence.txt").is_file()
    alone = dataclasses.replace(bundle, influence=None)
    alone.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json", "churn.txt", "clv.txt"]
    back = ModelBundle.load(tmp_path)
    assert back.influence is None
    pd.testing.assert_series_equal(
        back.predict(features, refit_btyd=False)["clv"], bundle.predict(features, refit_btyd=False)["clv"]
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_book_too_small_for_gamma_gamma_says_why_the_value_offset_fails(tmp_path):
    """Under 10 repeat buyers Gamma-Gamma is skipped and btyd_value is missing: the value model's own
    error ("offset_feature 'btyd_value' has no positive value") did not say why or what to do."""
    synthetic.generate(n_accounts=10, seed=3).write(tmp_path)
    data = load_data(tmp_path)
    train = build_training_frame(data, training_cutoffs(data.end.normalize(), 180, 4, 90), Config())
    with pytest.raises(ModelError, match=r"at least 10 repeat buyers .* at most 9: .*offset_feature: null"):
        ModelBundle.fit(train, Config())
    alone = ModelBundle.fit(train, Config.from_dict({"models": {"clv": {"offset_feature": None}}}))
    assert alone.clv.offset_feature is None


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


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: (d / "bundle.json").write_text('{"format_version": 1, "horiz'), "bundle.json is not JSON"),
        (lambda d: (d / "bundle.json").write_text("[]"), "bundle.json is not an object"),
        (lambda d: _edit_state(d, lambda s: s.pop("btyd")), "KeyError: 'btyd'"),
        (lambda d: _edit_state(d, lambda s: s["clv"].update(booster_file="../clv.txt")), "names the file"),
        (lambda d: (d / "clv.txt").write_text("garbage"), r"clv\.txt is not the file it was saved with"),
        (
            lambda d: _edit_state(d, lambda s: s.update(value_shape={"x": [1.0, 2.0], "y": [1.0]})),
            "value_shape needs x and y of equal length",
        ),
        (
            lambda d: _edit_state(d, lambda s: s.update(value_shape={"x": [2.0, 1.0], "y": [1.0, 2.0]})),
            "x strictly increasing",
        ),
        # hand edits that loaded and then scored silently: NaN values, negative ones, certainty, a crash
        (lambda d: _edit_state(d, lambda s: s["clv"].update(scale=float("nan"))), "scale must be a finite"),
        (
            lambda d: _edit_state(d, lambda s: s.update(value_level=-1.0)),
            r"value_level must be a finite number > 0",
        ),
        (
            lambda d: _edit_state(d, lambda s: s.update(churn_shift=float("inf"))),
            "churn_shift must be a finite",
        ),
        (lambda d: _edit_state(d, lambda s: s.update(unit_days=0)), "unit_days 1 or 7"),
        (
            lambda d: _edit_state(d, lambda s: s.update(btyd_bias=-0.5)),
            "btyd_bias must be a finite number >= 0",
        ),
        (
            lambda d: _edit_state(d, lambda s: s["btyd"]["bgnbd"].update(r=-1.0)),
            "btyd bgnbd r must be a finite",
        ),
        (
            lambda d: _edit_state(
                d, lambda s: s["churn"].update(calibration_x=[1.0, 0.0], calibration_y=[0, 1])
            ),
            "x increasing",
        ),
        (lambda d: _edit_state(d, lambda s: s["churn"].update(blend={"weight": 0.5})), "blend lacks"),
        (
            lambda d: _edit_state(d, lambda s: s["clv"].update(feature_names=s["clv"]["feature_names"][:-1])),
            r"ClvModel state names \d+ features .* for a LightGBM model of",
        ),
        (lambda d: _edit_state(d, lambda s: s.update(features=s["features"][1:])), "other feature columns"),
    ],
)
def test_a_damaged_bundle_is_a_named_model_error(fitted, tmp_path, damage, says):
    """These were a JSONDecodeError, AttributeError, KeyError or LightGBMError: a traceback and exit 1;
    the hand edits loaded and scored NaN or negative values, every p_churn 1, or a ZeroDivisionError."""
    fitted[0].save(tmp_path)
    damage(tmp_path)
    with pytest.raises(ModelError, match=f"model bundle {tmp_path} .*{says}"):
        ModelBundle.load(tmp_path)


def test_a_bundle_whose_latest_snapshot_spent_nothing_loads(fitted, tmp_path):
    """btyd_bias is actual over BTYD value on the latest snapshot: 0 when nothing was spent there."""
    bundle = dataclasses.replace(fitted[0], btyd_bias=0.0)
    bundle.save(tmp_path)
    assert ModelBundle.load(tmp_path).btyd_bias == 0.0


def _edit_state(folder, edit) -> None:
    state = json.loads((folder / "bundle.json").read_text())
    edit(state)
    (folder / "bundle.json").write_text(json.dumps(state))


@pytest.mark.parametrize("with_hash", [True, False])
def test_a_model_file_cut_short_is_refused_before_lightgbm_reads_it(fitted, tmp_path, with_hash):
    """LightGBM aborted the whole process (SIGABRT, SIGSEGV) on a cut model text: checked in a child."""
    import subprocess
    import sys

    fitted[0].save(tmp_path)
    text = (tmp_path / "clv.txt").read_bytes()
    (tmp_path / "clv.txt").write_bytes(text[: len(text) - 700])  # "end of trees" kept, parameters cut
    if not with_hash:  # a bundle saved before the hash: the end LightGBM writes is checked
        _edit_state(tmp_path, lambda s: s["clv"].pop("booster_sha256"))
    code = f"from kamml.models import ModelBundle\nModelBundle.load({str(tmp_path)!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.returncode  # a Python error, not a signal (negative return code)
    assert "ModelError" in run.stderr
    assert "is damaged: clv.txt" in run.stderr


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


def test_predict_value_equals_predicts_clv_without_the_other_models(fitted, monkeypatch):
    bundle, features = fitted
    expected = bundle.predict(features, refit_btyd=False)["clv"].to_numpy()

    def not_run(*args, **kwargs):
        raise AssertionError("the churn model was run")

    monkeypatch.setattr(bundle.churn, "predict_proba", not_run)
    np.testing.assert_array_equal(bundle.predict_value(features), expected)


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

    # one factor for every account, set in training and again when anchored at the scoring cutoff
    for factor in (bundle.value_ratio, bundle.churn_exponent):
        assert factor is not None
        assert 1.0 < factor < 90 / 45  # dropout: less than a steady buyer's H / h
    anchored = bundle.anchor(features)
    has_rfm = features[["frequency", "recency", "T"]].notna().all(axis=1).to_numpy()
    f, r, t = (features[c].to_numpy(float)[has_rfm] for c in ("frequency", "recency", "T"))
    bg, _ = anchored.btyd.models()
    h, H = anchored.train_units, anchored.horizon_units
    rows, _ = anchored.with_btyd(features, refit=False)
    scores = anchored.predict(features, refit_btyd=False)

    # value: the model's h-window value times sum E[X(H)] / sum E[X(h)], so its order is kept
    purchases_h, purchases_H = (bg.conditional_expected_purchases(w, f, r, t).sum() for w in (h, H))
    assert anchored.value_ratio == pytest.approx(purchases_H / purchases_h, rel=1e-12)
    raw_h = anchored.clv.predict(rows[anchored.features], horizon_days=45)
    level = anchored.value_level
    assert level is not None
    unshaped = raw_h * level * anchored.value_ratio
    # then shaped toward BTYD's spread over H (h < H): the order and the total are kept
    shape = anchored.value_shape
    assert shape is not None
    assert bundle.value_shape is None  # set by anchor only
    np.testing.assert_allclose(scores["clv"].to_numpy(), apply_value_shape(unshaped, shape), rtol=1e-12)
    clv_H = scores["clv"].to_numpy()
    assert not np.allclose(clv_H, unshaped)
    assert np.all(np.diff(clv_H[np.argsort(unshaped, kind="stable")]) >= 0)
    # fitted on the accounts with a BTYD value (those with a history), applied to every account (new
    # ones too, so the order holds across all), and the total over every account is kept
    btyd_H = btyd_columns(*rfm_arrays(features), H, anchored.btyd)["btyd_value"]
    np.testing.assert_array_equal(np.isnan(btyd_H), ~has_rfm)
    assert not np.allclose(clv_H[~has_rfm], unshaped[~has_rfm])
    assert clv_H.sum() == pytest.approx(unshaped.sum(), rel=1e-12)
    # the level: the h-window total is BTYD's at the cutoff, times btyd_bias (1 here: no season measured)
    assert bundle.value_level is None  # set by anchor only
    assert anchored.btyd_bias == bundle.btyd_bias
    assert anchored.btyd_bias > 0
    target = anchored.btyd_bias * np.nansum(rows["btyd_value"].to_numpy(float))
    assert 0.5 < level < 2.0  # inside the clip on this world
    assert raw_h.sum() * level == pytest.approx(target, rel=1e-9)

    # churn: P0(H) = P0(h)^e with one exponent, so the churn model's order is kept too
    e = anchored.churn_exponent
    p_h = anchored.churn.predict_proba(rows[anchored.features], horizon_days=45)[:, 1]
    shift = anchored.churn_shift
    assert shift is not None
    assert -1.0 < shift < 1.0  # inside the bound on this world
    p_H = scores["p_churn"].to_numpy()
    stretched = p_h**e
    inside = (stretched > 0) & (stretched < 1)
    assert inside.sum() > len(p_H) / 2
    logit_H = np.log(stretched[inside]) - np.log1p(-stretched[inside]) + shift  # one shift on the logit
    np.testing.assert_allclose(p_H[inside], 1 / (1 + np.exp(-logit_H)), rtol=1e-9)
    np.testing.assert_array_equal(p_H[~inside], stretched[~inside])  # calibrated 0 and 1 stay
    assert np.all(np.diff(p_H[np.argsort(p_h)]) >= -1e-12)  # the churn model's order is kept
    # the churn level: mean p_churn over accounts with a history is BTYD's mean P0(H) plus its error
    # on the latest training snapshot
    assert anchored.churn_bias == bundle.churn_bias
    p0_H_all = bg.p_zero_purchases(H, f, r, t)
    assert p_H[has_rfm].mean() == pytest.approx(p0_H_all.mean() + anchored.churn_bias, abs=1e-7)
    # the population's share of non-buyers over H follows BG/NBD from h to H
    p0_h, p0_H = (bg.p_zero_purchases(w, f, r, t) for w in (h, H))
    assert np.mean(p0_h**e) == pytest.approx(np.mean(p0_H), rel=1e-5)

    np.testing.assert_array_equal(anchored.predict_value(features), scores["clv"].to_numpy())  # stretched too
    # row-independent: an account without a history scored alone gets its scores of the whole batch
    new = np.flatnonzero(~has_rfm)
    assert new.size > 0
    alone = anchored.predict(features.iloc[new[:1]], refit_btyd=False)
    for column in ("clv", "p_churn", "referral_value"):
        assert alone[column].iloc[0] == pytest.approx(scores[column].iloc[new[0]], rel=1e-12), column

    # saved and loaded with them; a bundle saved before they existed keeps per-account ratios
    state = anchored.to_dict()
    loaded = ModelBundle.from_dict(state)
    fields = (
        "value_ratio",
        "churn_exponent",
        "btyd_bias",
        "value_level",
        "churn_bias",
        "churn_shift",
        "value_shape",
    )
    assert [getattr(loaded, name) for name in fields] == [getattr(anchored, name) for name in fields]
    np.testing.assert_array_equal(loaded.predict(features, refit_btyd=False)["clv"].to_numpy(), clv_H)
    for key in fields:
        del state[key]
    old = ModelBundle.from_dict(state).predict(features, refit_btyd=False)
    assert not np.allclose(old["p_churn"].to_numpy(), p_H)
    old_ratio = old["clv"].to_numpy() / raw_h  # per-account ratios, no level
    assert not np.allclose(old_ratio, old_ratio[0])
    assert np.all((old["p_churn"] >= 0) & (old["p_churn"] <= 1))


def test_longer_training_window_is_carried_down_to_the_horizon(world_data):
    """train_horizon_days 90 for a 30-day horizon: value by BG/NBD's ratio, P0 by an exponent below 1."""
    end = world_data.end.normalize()
    cfg = config(horizon_days=30, train_horizon_days=90)
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), config())
    bundle = ModelBundle.fit(train, cfg)
    assert (bundle.train_horizon_days, bundle.horizon_days) == (90, 30)
    features = build_features(world_data, end, cfg)
    anchored = bundle.anchor(features)
    assert anchored.value_shape is None  # the shape toward BTYD is only for a shorter window
    # dropout: a third of the time holds more than a third of the purchases, and P0 rises less than
    # a steady buyer's P0(h)^(H / h)
    assert 30 / 90 < anchored.value_ratio < 1.0
    assert 30 / 90 < anchored.churn_exponent < 1.0
    rows, _ = anchored.with_btyd(features, refit=False)
    X = rows[anchored.features]
    scores = anchored.predict(features, refit_btyd=False)
    level = anchored.value_level
    assert level is not None
    raw_clv = anchored.clv.predict(X, horizon_days=90) * level
    np.testing.assert_allclose(scores["clv"], raw_clv * anchored.value_ratio, rtol=1e-12)
    p_h = anchored.churn.predict_proba(X, horizon_days=90)[:, 1]
    p_H = p_h**anchored.churn_exponent  # not p_h x H / h: a probability of no purchase rises as time shrinks
    assert np.all(p_H >= p_h)
    shift = anchored.churn_shift
    assert shift is not None
    inside = (p_H > 0) & (p_H < 1)
    logit = np.log(p_H[inside]) - np.log1p(-p_H[inside]) + shift
    np.testing.assert_allclose(scores["p_churn"].to_numpy()[inside], 1 / (1 + np.exp(-logit)), rtol=1e-9)
    referral = anchored.influence.predict(X, horizon_days=90)
    np.testing.assert_allclose(scores["referral_value"], referral * 30 / 90, rtol=1e-12)


def test_value_shape_keeps_order_and_total_and_moves_the_spread_toward_btyd():
    rng = np.random.default_rng(3)
    clv = rng.lognormal(2.0, 2.0, 5000)  # the value model's spread
    btyd = rng.lognormal(2.0, 1.0, 5000)  # BTYD's, narrower
    for weight in (0.0, 0.5, 1.0):
        shape = fit_value_shape(clv, btyd, weight)
        assert shape is not None
        assert len(shape["x"]) == SHAPE_POINTS
        out = apply_value_shape(clv, shape)
        order = np.argsort(clv)
        assert np.all(np.diff(out[order]) > 0)  # the value model's order, ties none
        assert out.sum() == pytest.approx(clv.sum(), rel=1e-12)
        # the k-th smallest value becomes the geometric mean of both k-th smallest, rescaled; between
        # the breakpoints interpolated, so compared by decile
        geo = np.exp(weight * np.log(np.sort(clv)) + (1 - weight) * np.log(np.sort(btyd)))
        deciles = [part.sum() for part in np.array_split(out[order], 10)]
        wanted = [part.sum() for part in np.array_split(geo * clv.sum() / geo.sum(), 10)]
        np.testing.assert_allclose(deciles, wanted, rtol=0.02)
    np.testing.assert_allclose(apply_value_shape(clv, fit_value_shape(clv, btyd, 1.0)), clv, rtol=1e-9)
    spread = [np.std(np.log(apply_value_shape(clv, fit_value_shape(clv, btyd, w)))) for w in (0, 0.5, 1)]
    assert spread[0] < spread[1] < spread[2]  # BTYD's narrower spread at weight 0
    assert spread[0] == pytest.approx(np.std(np.log(btyd)), rel=1e-2)


def test_value_shape_edges():
    shape = fit_value_shape(np.array([1.0, 2.0, 4.0]), np.array([3.0, 2.0, 1.0]), 0.0)
    assert shape is not None
    # beyond the breakpoints the end ratios; 0, NaN and negative values pass through as they are
    end_low, end_high = shape["y"][0] / shape["x"][0], shape["y"][-1] / shape["x"][-1]
    out = apply_value_shape(np.array([0.5, 8.0, 0.0, np.nan, -1.0]), shape)
    np.testing.assert_allclose(out[:2], [0.5 * end_low, 8.0 * end_high], rtol=1e-12)
    np.testing.assert_array_equal(out[2:], [0.0, np.nan, -1.0])
    # ties in the values: one breakpoint for them, one value out
    tied = fit_value_shape(np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0]), 0.5)
    assert tied is not None
    assert tied["x"] == [1.0, 2.0]
    # the tie's targets (geometric means of 1 with 1, 2, 3 at weight 1/2) meet in their geometric mean
    out = apply_value_shape(np.array([1.0, 1.0, 1.0, 2.0]), tied)
    tie, top = np.sqrt([1.0, 2.0, 3.0]).prod() ** (1 / 3), np.sqrt(2.0 * 4.0)
    scale = 5.0 / (3 * tie + top)
    np.testing.assert_allclose(out, [tie * scale] * 3 + [top * scale], rtol=1e-12)
    # values across the float range: nothing overflows or vanishes, the order and the total are kept
    wide = np.geomspace(1e-200, 1e200, 2000)
    for values in (wide, wide * 1e105):
        mapped = apply_value_shape(values, fit_value_shape(values, np.geomspace(1.0, 10.0, 2000), 0.99))
        assert np.all(np.isfinite(mapped))
        assert np.all(np.diff(mapped) > 0)
        assert np.log(mapped).max() == pytest.approx(np.log(values).max(), rel=0.01)
        assert logsumexp(np.log(mapped)) == pytest.approx(logsumexp(np.log(values)), rel=1e-12)
    # too little to fit: fewer than two accounts with a value from both, or one value for all
    assert fit_value_shape(np.array([1.0, np.nan]), np.array([1.0, 2.0]), 0.5) is None
    assert fit_value_shape(np.array([2.0, 2.0]), np.array([1.0, 2.0]), 0.5) is None
    assert fit_value_shape(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 0.5) is None
    assert shape_weight(45, 90) == pytest.approx(np.sqrt(0.5))
    assert shape_weight(90, 90) == shape_weight(120, 90) == 1.0


def test_stretch_factors_edge_cases():
    fit = BtydFit({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, None)
    x, tx, T = np.array([0.0, 2, 5]), np.array([0.0, 10, 20]), np.array([30.0, 30, 30])
    assert no_purchase_exponent(fit, x, tx, T, 10.0, 10.0) == 1.0  # same window
    nan = np.full(3, np.nan)
    assert no_purchase_exponent(fit, nan, nan, nan, 10.0, 20.0) == 1.0  # no history to go by
    longer = no_purchase_exponent(fit, x, tx, T, 10.0, 20.0)
    assert 1.0 < longer < 2.0
    assert no_purchase_exponent(fit, x, tx, T, 10.0, 40.0) > longer
    assert expected_purchase_ratio(fit, x, tx, T, 10.0, 10.0) == 1.0
    assert expected_purchase_ratio(fit, nan, nan, nan, 10.0, 20.0) == 2.0  # nothing known: in proportion
    assert 1.0 < expected_purchase_ratio(fit, x, tx, T, 10.0, 20.0) < 2.0


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


def test_an_anchored_bundle_never_refits_btyd_by_default(fitted):
    """The deployed (anchored) bundle scores a row the same in any batch; a merely fitted one refits."""
    bundle, features = fitted
    assert not bundle.anchored
    anchored = bundle.anchor(features)
    assert anchored.anchored
    assert ModelBundle.from_dict(anchored.to_dict()).anchored  # saved with it
    whole = anchored.predict(features)
    part = anchored.predict(features.iloc[:150])  # >= 100 rows: the old default refitted BTYD on them
    pd.testing.assert_frame_equal(part, whole.iloc[:150], rtol=1e-12)
    refitted = bundle.predict(features.iloc[:150])
    assert not np.allclose(refitted["clv"], bundle.predict(features.iloc[:150], refit_btyd=False)["clv"])


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


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("spend_90d", pd.Timestamp("2025-01-01")),
        ("recency", pd.Timestamp("2025-01-01", tz="UTC")),
        ("T", pd.Period("2025-01", freq="M")),
    ],
)
def test_dates_and_durations_in_a_numeric_column_are_refused(fitted, column, value):
    """numpy turned them into nanosecond counts and the pyfunc scored those without a word."""
    bundle, features = fitted
    with pytest.raises(ModelError, match=f"'{column}' must be numeric .*dates and durations are not numbers"):
        bundle.predict(features.head(2).assign(**{column: value}), refit_btyd=False)
    full = bundle.with_btyd(features.head(2), refit=False)[0]
    columns = {name: full[name].to_numpy() for name in full.columns}  # typed arrays, one per column
    columns["T"] = np.array(["2025-01-01", "2025-01-02"], dtype="datetime64[ns]")
    with pytest.raises(ModelError, match="'T' must be numeric as it was in fit, got datetime64"):
        bundle.clv.prepare_columns(columns, 2, horizon_days=bundle.train_horizon_days)
    rows = features.head(2).copy()
    rows["spend_90d"] = pd.to_timedelta(rows["spend_90d"].fillna(0), unit="D")  # a CRM's now - last
    with pytest.raises(ModelError, match="'spend_90d' must be numeric as it was in fit, got timedelta"):
        bundle.predict(rows, refit_btyd=False)


@pytest.mark.parametrize("rows", [2, 100])  # a request's few rows take one conversion (`_small_numbers`)
@pytest.mark.parametrize(
    "value", [np.datetime64("2025-01-01"), np.timedelta64(3, "D"), dt.timedelta(days=3), dt.date(2025, 1, 1)]
)
def test_numpy_dates_and_durations_among_numbers_are_refused(fitted, rows, value):
    """A numpy date or duration object beside numbers (pandas infers "mixed") was cast to its count:
    a date scored as 20,089 days, 3 days as 3, and a clv moved from 372 to 384 without a word."""
    bundle, features = fitted
    frame = pd.concat([features] * (rows // len(features) + 1)).head(rows).astype({"spend_90d": object})
    frame.iloc[-1, frame.columns.get_loc("spend_90d")] = value
    said = r"'spend_90d' must be numeric .*dates and durations are not numbers"
    with pytest.raises(ModelError, match=said):
        bundle.predict(frame, refit_btyd=False)


def test_an_infinite_feature_value_is_named_with_its_row(fitted):
    """It was refused naming the column only: in a batch of thousands, which row held it was unknown."""
    bundle, features = fitted
    frame = features.head(5).copy()
    frame.iloc[3, frame.columns.get_loc("spend_90d")] = -np.inf
    with pytest.raises(ModelError, match=r"infinite values in feature columns \['spend_90d'\] \(row 3 of"):
        bundle.predict(frame, refit_btyd=False)


def test_snapshots_without_any_purchase_history_are_refused_by_their_cutoffs(world_data):
    first = pd.Timestamp(world_data.tables["transactions"].ts.min().to_pandas()).normalize()
    early = [first - pd.Timedelta(days=30), first - pd.Timedelta(days=90)]  # accounts exist, no purchases
    cfg = config()
    with pytest.raises(ConfigError, match=r"cutoffs .* are on or before the day of the first transaction"):
        build_training_frame(world_data, early, cfg)  # refused before it is built
    # a frame built otherwise (a notebook's, data without validation's figures): the fit refuses it
    later = [first + pd.Timedelta(days=90), first + pd.Timedelta(days=30)]
    train = build_training_frame(world_data, later, cfg)
    train["T"] = np.nan
    shown = ", ".join(str(c.date()) for c in sorted(later))
    with pytest.raises(
        ConfigError, match=rf"2 of 2 training snapshots hold no purchase history .*\({shown}\)"
    ) as caught:
        ModelBundle.fit(train, cfg)
    # what sets how far back they reach, for a kamml run (which has no --cutoff) too
    for setting in ("time.horizon_days", "time.snapshots", "time.step_days", "kamml train and run backtest"):
        assert setting in str(caught.value)


def test_btyd_without_any_purchase_history_is_a_model_error_not_sklearns():
    from kamml.models.btyd_features import fit_btyd

    rows = pd.DataFrame(
        {"frequency": [0.0, 0.0], "recency": [0.0, 0.0], "T": [np.nan, np.nan], "monetary": 0.0}
    )
    with pytest.raises(ModelError, match="none of the 2 rows has one"):
        fit_btyd(rows)


def test_gamma_gamma_without_a_finite_mean_gives_missing_values_not_infinite():
    """q <= 1 (a few, very uneven spenders): the population mean order value does not exist."""
    from kamml.models.btyd_features import btyd_columns

    fit = BtydFit({"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}, {"p": 0.5, "q": 0.9, "gamma": 300.0})
    frequency, recency = np.array([0.0, 1.0, 4.0]), np.array([0.0, 10.0, 30.0])
    T, monetary = np.array([40.0, 40.0, 40.0]), np.array([0.0, 50.0, 80.0])
    columns = btyd_columns(frequency, recency, T, monetary, 30.0, fit)
    order, value = columns["btyd_order_value"], columns["btyd_value"]
    assert np.isnan(order[0])  # no repeat purchase: the population mean, infinite when q <= 1
    assert np.isnan(value[0])
    np.testing.assert_allclose(order[1:], [437.5, 163.15789474])  # repeat buyers: p x + q - 1 > 0
    assert np.isfinite(value[1:]).all()


def test_feature_rows_breaking_the_purchase_history_rules_are_named(fitted):
    bundle, features = fitted
    rows = features.iloc[:4].copy()
    rows.iloc[0, rows.columns.get_loc("recency")] = np.nan  # T given (a history), recency not
    rows.iloc[2, rows.columns.get_loc("frequency")] = -1.0
    with pytest.raises(ModelError) as info:
        bundle.predict(rows, refit_btyd=False)
    message = str(info.value)
    assert "features.recency: missing while T is given; row(s) 0" in message
    assert "features.frequency: must be a whole number of repeat purchases >= 0; row(s) 2" in message
    # a row without any history is no error: it scores from its other features
    blank = features.iloc[[1]].copy()
    blank[["frequency", "recency", "monetary"]] = 0.0  # as the features give an account without one
    blank["T"] = np.nan
    assert np.isfinite(bundle.predict(blank, refit_btyd=False)["clv"]).all()


@pytest.mark.parametrize("rows", [10, 100])  # the last copy won up to 64 rows; a shape error above
def test_a_column_named_twice_is_refused_whatever_the_batch_size(fitted, rows):
    bundle, features = fitted
    doubled = pd.concat([features.iloc[:rows], features[["spend_90d"]].iloc[:rows] + 12345.0], axis=1)
    with pytest.raises(ModelError, match="name column\\(s\\) 'spend_90d' more than once"):
        bundle.predict(doubled, refit_btyd=False)


def test_feature_rows_with_columns_on_two_levels_are_refused_by_rule(fitted):
    """Columns on two levels (a pivot, a concat with keys) were a bare KeyError: 'frequency'."""
    bundle, features = fitted
    rows = pd.concat({"features": features.iloc[:3]}, axis=1)
    with pytest.raises(ModelError, match=r"feature rows have column names on 2 levels .*one level"):
        bundle.predict(rows, refit_btyd=False)


def test_more_repeat_days_than_the_history_spans_or_an_endless_T_is_refused(fitted):
    """A CRM's frequency of 1e15 or T of 1e300 days was scored (p_alive 0, a value of the trees' edge)."""
    bundle, features = fitted
    rows = features[features["frequency"] > 1].iloc[:3].copy()
    assert np.isfinite(bundle.predict(rows, refit_btyd=False)["clv"]).all()  # the features' own rows pass
    rows.iloc[0, rows.columns.get_loc("frequency")] = rows["recency"].iloc[0] * bundle.unit_days + 1
    rows.iloc[2, rows.columns.get_loc("T")] = 1e300
    with pytest.raises(ModelError) as info:
        bundle.predict(rows, refit_btyd=False)
    message = str(info.value)
    assert re.search(r"features\.frequency: must be <= recency x \d [^;]*; row\(s\) 0 \(1 row", message)
    assert re.search(r"features\.T: must be <= [\d,]+ [^;]*; row\(s\) 2 \(1 row", message)


def test_a_row_without_T_but_with_a_purchase_history_is_refused_not_scored_as_new(fitted):
    """A null T (no first purchase) beside repeat purchases is contradictory: it scored as a new account."""
    bundle, features = fitted
    rows = features[features["frequency"] > 0].iloc[:3].copy()
    rows.iloc[1, rows.columns.get_loc("T")] = np.nan
    with pytest.raises(ModelError) as info:
        bundle.predict(rows, refit_btyd=False)
    message = str(info.value)
    for column in ("frequency", "recency", "monetary"):
        assert f"features.{column}: must be 0 or missing when T is missing" in message
    assert "row(s) 1 (1 row" in message
    alone = rows.iloc[[1]].copy()
    alone[["recency", "monetary"]] = 0.0  # frequency alone breaks the rule too
    with pytest.raises(ModelError, match=r"features\.frequency: must be 0 or missing when T is missing"):
        bundle.predict(alone, refit_btyd=False)
    alone[["frequency", "recency", "monetary"]] = np.nan  # missing instead of 0: no history either
    assert np.isfinite(bundle.predict(alone, refit_btyd=False)["clv"]).all()


@pytest.mark.parametrize(
    ("models", "says"),
    [
        ({"clv": {"objective": "binary"}}, r"'models\.clv\.objective' must be tweedie or poisson"),
        ({"clv": {"num_iterations": 0}}, r"'models\.clv\.num_iterations' must be a whole number of boosting"),
        # beside n_estimators (an alias to LightGBM): the params' key, not "models.clv: the number of ..."
        (
            {"churn": {"n_estimators": 40, "num_trees": 0}},
            r"'models\.churn\.num_trees' must be a whole number of boosting rounds >= 1, got 0$",
        ),
        (
            {"churn": {"learning_rate": -1}},
            r"'models\.churn\.learning_rate' must be a finite number > 0, got -1$",
        ),
        (
            {"influence": {"early_stopping_round": 3}},
            r"'models\.influence\.early_stopping_round' must be given as '.*\.early_stopping_rounds'",
        ),
        (
            {"clv": {"num_leaves": "x"}},
            r"'models\.clv\.num_leaves' must be a whole number, got 'x'$",
        ),
        (
            {"churn": {"min_data_in_leaf": -3}},
            r"'models\.churn\.min_data_in_leaf' must be >= 0, got -3$",
        ),
        (
            {"clv": {"monotone": [1, 0]}},
            r"'models\.clv\.monotone' must map feature names to 1, -1 or 0, or be null, got \[1, 0\]$",
        ),
        ({"churn": {"monotone": {"spend_90d": -2}}}, r"'models\.churn\.monotone\.spend_90d' must be 1, -1"),
        ({"influence": {"monotone": {"x": 1}, "mc": [1]}}, r"'models\.influence\.mc' must be left out when"),
        (
            {"clv": {"offset_feature": "nosuch"}},
            r"'models\.clv\.offset_feature' names 'nosuch', which is not a feature",
        ),
        (
            {"churn": {"blend_feature": "nope"}},
            r"'models\.churn\.blend_feature' names 'nope', which is not a feature",
        ),
        # true read as 1: one tree, a learning rate of 1, without a word (an audit)
        (
            {"clv": {"n_estimators": True}},
            r"'models\.clv\.n_estimators' must be a whole number >= 1, got true",
        ),
        ({"churn": {"learning_rate": True}}, r"'models\.churn\.learning_rate' must be .*, got true$"),
        ({"clv": {"offset_weight": False}}, r"'models\.clv\.offset_weight' must be .*, got false$"),
        # an alias of n_estimators stays in the params: int() read true as one tree, 2.5 as 2
        ({"clv": {"num_trees": True}}, r"'models\.clv\.num_trees' must be a whole number .*, got true$"),
        ({"churn": {"num_iterations": 2.5}}, r"'models\.churn\.num_iterations' must be .*, got 2\.5$"),
        # no metric for early stopping to watch: LightGBM's traceback after the features (an audit)
        (
            {"churn": {"metric": "none"}},
            r"'models\.churn\.metric': ChurnModel: LightGBM computes no evaluation",
        ),
        ({"clv": {"metric": "bogus"}}, r"'models\.clv\.metric': ClvModel: .* for metric='bogus'"),
        # LightGBM's refusal of no one parameter's type or range: the section named, as the config's are
        (
            {"clv": {"boosting": "nonsense"}},
            r"^config: 'models\.clv': LightGBM refuses the parameters: Unknown boosting type nonsense$",
        ),
    ],
)
def test_model_settings_that_cannot_train_are_config_errors_before_any_work(models, says):
    with pytest.raises(ConfigError, match=says):  # when the config is built
        Config.from_dict({"time": {"horizon_days": 90}, "models": models})
    cfg = Config.from_dict({"time": {"horizon_days": 90}})
    for name, settings in models.items():
        getattr(cfg.models, name).update(settings)  # an edit in place: no validation has seen it
    with pytest.raises(ConfigError, match=says):
        check_model_settings(cfg)
    with pytest.raises(ConfigError, match=says):  # ModelBundle.fit checks before it touches the frame
        ModelBundle.fit(pd.DataFrame(), cfg)


def test_whole_number_settings_given_as_floats_train_as_their_whole_numbers(world_data, fitted):
    """``n_estimators: 40.0`` (YAML 40.0) was refused while ``time.horizon_days: 90.0`` and ``num_iterations:
    40.0`` were read as whole numbers; the estimators get ints and the models are those of 40 and 10."""
    floats = {"n_estimators": 40.0, "early_stopping_rounds": 10.0}
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": floats, "churn": floats, "influence": floats},
        }
    )
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    bundle = ModelBundle.fit(train, cfg)
    for model in (bundle.clv, bundle.churn):
        assert type(model.n_estimators) is int
        assert type(model.early_stopping_rounds) is int
    reference, features = fitted
    pd.testing.assert_frame_equal(bundle.predict(features), reference.predict(features))
    cfg.models.clv["n_estimators"] = 40.0  # edited in place: checked and converted as well
    check_model_settings(cfg)


#: LightGBM's whole-number parameters (main names and aliases), away from kamml's defaults.
WHOLE = {"num_leaves": 7, "max_depth": 4, "min_child_samples": 30, "max_bin": 63, "bagging_freq": 2}


@pytest.mark.parametrize("name", ["clv", "churn", "influence"])
@pytest.mark.parametrize(
    ("key", "value"), [(k, float(v)) for k, v in WHOLE.items()] + [("min_data_in_bin", 5.0)]
)
def test_lightgbm_s_whole_number_parameters_given_as_whole_floats_are_read_as_ints(name, key, value):
    """``num_leaves: 31.0`` was refused ("'models.clv.num_leaves' must be a whole number, got 31.0") where
    ``n_estimators: 2.0`` read as 2; LightGBM's own int parameters are learnt from LightGBM."""
    cfg = Config.from_dict({"models": {name: {key: value}}})
    assert getattr(cfg.models, name)[key] == value  # the config keeps what was written
    check_model_settings(cfg)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"num_leaves": 31.5}, "'models.clv.num_leaves' must be a whole number, got 31.5"),
        ({"min_child_samples": 20.25}, "'models.clv.min_child_samples' must be a whole number, got 20.25"),
        ({"max_bin": float("inf")}, "'models.clv.max_bin' must be a whole number, got inf"),
        ({"num_leaves": True}, "'models.clv.num_leaves' must be a whole number, got true"),
    ],
)
def test_lightgbm_s_whole_number_parameters_still_refuse_a_fraction_or_a_switch(settings, says):
    """Only a float without a fraction reads as its int: 31.5 and inf are refused by key, true is no 1."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"models": {"clv": settings}})
    assert str(caught.value) == f"config: {says}"


def test_lightgbm_s_whole_number_parameters_as_floats_train_the_models_of_their_ints(world_data):
    """A YAML ``num_leaves: 7.0`` trains the model ``num_leaves: 7`` trains: LightGBM gets the int."""
    end = world_data.end.normalize()
    bundles = []
    for params in (WHOLE, {key: float(value) for key, value in WHOLE.items()}):
        settings = {**FAST, **params}
        cfg = Config.from_dict(
            {
                "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
                "models": {"threads": 1, "clv": settings, "churn": settings, "influence": settings},
            }
        )
        train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
        bundles.append((ModelBundle.fit(train, cfg), build_features(world_data, end, cfg)))
    (ints, features), (floats, _) = bundles
    for model in (floats.clv, floats.churn):
        assert {key: type(model.params[key]) for key in WHOLE} == dict.fromkeys(WHOLE, int)
    pd.testing.assert_frame_equal(floats.predict(features), ints.predict(features))


_FATAL_CHECK = """
import sys
from kamml.config import Config
from kamml.errors import ConfigError
sys.stderr.write("before\\n")
try:
    Config.from_dict({"models": {"clv": {"reg_alpha": -1}}})
except ConfigError as exc:
    print(exc)
sys.stderr.write("after\\n")
"""


def test_lightgbm_s_fatal_line_is_kept_off_stderr_only_while_no_other_thread_runs(capfd):
    """LightGBM's C++ wrote "[LightGBM] [Fatal] Check failed ..." to stderr before kamml's error.

    The one-round check points the process's stderr elsewhere only while no other thread runs (the
    command line): another thread would lose what it writes meanwhile. What else is written comes back.
    The quiet case runs in a process of its own: earlier tests leave threads (MLflow's, Spark's) in this one.
    """
    import subprocess
    import sys
    import threading

    done = subprocess.run([sys.executable, "-c", _FATAL_CHECK], capture_output=True, text=True, check=True)
    assert "'models.clv.reg_alpha' must be >= 0, got -1" in done.stdout
    assert done.stderr == "before\nafter\n"
    caught: list[BaseException] = []

    def build() -> None:
        try:
            Config.from_dict({"models": {"clv": {"reg_alpha": -1}}})
        except ConfigError as exc:
            caught.append(exc)

    capfd.readouterr()
    other = threading.Thread(target=build)
    other.start()
    other.join()
    assert len(caught) == 1
    assert "[LightGBM] [Fatal] Check failed: (lambda_l1) >= (0.0)" in capfd.readouterr().err


def test_no_metric_is_fine_without_early_stopping_and_edits_in_place_are_checked():
    check_model_settings(
        Config.from_dict({"models": {"churn": {"metric": "none", "early_stopping_rounds": None}}})
    )
    cfg = Config()
    cfg.models.clv["n_estimators"] = 0  # inside the dict: not seen by validation on assignment
    with pytest.raises(ConfigError, match=r"models\.clv.*n_estimators"):
        check_model_settings(cfg)


def test_few_accounts_and_clipped_levels_are_warned(world_data, caplog):
    """A 30-account book trained and scored with exit 0 and every p_churn 0: now the log says why."""
    import logging

    cfg = config()
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    small = train.groupby("snapshot", group_keys=False).head(150)  # 150 accounts per snapshot
    with caplog.at_level(logging.WARNING, logger="kamml"):
        bundle = ModelBundle.fit(small, cfg)
    assert any("accounts in the latest training snapshot" in r.getMessage() for r in caplog.records)
    # the run's report lists it: it says what it means for the plan and where to look, in plain words
    assert "treat the predicted values and churn probabilities, and so the plan's ranking" in caplog.text
    assert "see in the report's backtest whether its BG/NBD rows predicted better" in caplog.text
    caplog.clear()
    features = build_features(world_data, end, cfg)
    bundle.btyd_bias = 100.0  # BTYD's total far above the model's: the level clip binds
    with caplog.at_level(logging.WARNING, logger="kamml"):
        anchored = bundle.anchor(features)
    assert anchored.value_level == 2.0
    assert any("value level clipped at 2" in r.getMessage() for r in caplog.records)


def test_anchoring_logs_the_level_and_shift_beside_btyds_own_figures(fitted, caplog):
    """The lines read "BTYD total x 1.0000 = 327245", naming BTYD's bias but never BTYD's own total."""
    bundle, features = fitted
    with caplog.at_level("INFO", logger="kamml.models.bundle"):
        anchored = bundle.anchor(features)
    lines = [r.getMessage() for r in caplog.records]
    value = next(line for line in lines if line.startswith("value level "))
    assert re.fullmatch(
        rf"value level {anchored.value_level:.4f}: the value model's total [\d,]+ set to BTYD's [\d,]+ "
        rf"x bias {bundle.btyd_bias:.4f} = [\d,]+",
        value,
    ), value
    churn = next(line for line in lines if line.startswith("churn shift "))
    assert re.fullmatch(
        r"churn shift [+-]\d\.\d{4}: the churn model's mean 0\.\d{4} set to BTYD's 0\.\d{4} [+-] bias "
        r"\d\.\d{4} = 0\.\d{4}",
        churn,
    ), churn


def test_amounts_in_millions_give_the_same_bundle(fitted, tmp_path):
    """The amounts' unit scales the value scores and changes little else (the label unit, docs/models.md).

    In millions the value model kept one tree: LightGBM's L2 penalty held its leaves near 0, and it
    forecast 6.2 times the value (Spearman 0.91 with the model in units; referral value 0.54). Not to
    the digit: LightGBM's bins of a rescaled feature can move by a value (rounding merges two values one
    ulp apart), as a seed would move them.
    """
    bundle, features = fitted
    synthetic.generate(400, seed=11, years=2.0).write(tmp_path)  # `world_data`'s world
    transactions = pd.read_parquet(tmp_path / "transactions.parquet")
    transactions.assign(amount=transactions["amount"] * 1e-6).to_parquet(tmp_path / "transactions.parquet")
    small = load_data(tmp_path)
    cfg = config()
    end = small.end.normalize()
    scaled = ModelBundle.fit(build_training_frame(small, training_cutoffs(end, 90, 2, 60), cfg), cfg)
    assert scaled.clv.best_iteration_ == bundle.clv.best_iteration_
    got, want = scaled.predict(build_features(small, end, cfg)), bundle.predict(features)
    for column, spearman in (("clv", 0.99), ("referral_value", 0.98)):  # measured 0.9989, 0.9963
        assert spearmanr(got[column], want[column])[0] > spearman, column
        assert got[column].sum() == pytest.approx(want[column].sum() * 1e-6, rel=0.02), column
    np.testing.assert_allclose(got["p_churn"], want["p_churn"], atol=1e-9)


def test_labels_beyond_float32s_range_fit_as_in_units(world_data, fitted):
    """Spend beyond LightGBM's 32-bit labels (3.4e38) was refused, but the models learn y / its mean."""
    bundle, features = fitted
    cfg = config()
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    scaled = ModelBundle.fit(
        train.assign(value=train["value"] * 1e300, referral_value=train["referral_value"] * 1e300), cfg
    )
    got, want = scaled.predict(features), bundle.predict(features)
    for column in ("clv", "referral_value"):
        np.testing.assert_allclose(got[column] / 1e300, want[column], rtol=1e-6, err_msg=column)
    np.testing.assert_array_equal(got["p_churn"], want["p_churn"])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"value": 0.0}, "no account spent anything in a label window"),
        ({"churned": 1}, "every account churned"),
        ({"churned": 0}, "no account churned"),
        # amounts in a unit far below money's: their features fall below the 1e-35 that LightGBM reads
        # as 0, so the money features are lost without a word
        ({"value": lambda d: d["value"] * 1e-300}, r"value label.*transactions.amount.*1e-35"),
        ({"referral_value": lambda d: d["referral_value"] * 1e-300}, r"referral_value label.*1e-35"),
    ],
)
def test_labels_that_leave_nothing_to_learn_name_the_data(world_data, change, says):
    """These surfaced as a model's complaint about an offset feature or a class of y."""
    cfg = config()
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg).assign(**change)
    with pytest.raises(ModelError, match=says):
        ModelBundle.fit(train, cfg)


def test_predict_refuses_an_array_with_a_named_error(fitted):
    bundle, features = fitted
    with pytest.raises(ModelError, match="pandas DataFrame of feature rows"):
        bundle.predict(features.to_numpy())


def test_fit_refuses_labels_of_another_horizon(world_data):
    """A frame built for 60-day labels fitted under a 90-day config would pass its horizon check."""
    end = world_data.end.normalize()
    short = config(horizon_days=60)
    train = build_training_frame(world_data, training_cutoffs(end, 60, 2, 60), short)
    assert train.attrs["horizon_days"] == 60
    with pytest.raises(ConfigError, match="labels cover 60 days, but the config trains for 90"):
        ModelBundle.fit(train, config())


def test_fit_refuses_times_in_another_unit_and_warns_without_a_recorded_horizon(world_data, caplog):
    """A weeks frame fitted under a days config was taken (aggregate error -85 %), and a frame whose
    attrs pd.concat dropped skipped the horizon check without a word (an API audit)."""
    end = world_data.end.normalize()
    weeks = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), config(unit="weeks"))
    assert weeks.attrs["time_unit"] == "weeks"
    with pytest.raises(ConfigError, match=r"recency and T are in weeks, but the config's time\.unit is days"):
        ModelBundle.fit(weeks, config())
    days = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), config())
    assert pd.concat([weeks, days]).attrs == {}  # pandas drops attrs that differ between the pieces
    bare = days.copy()
    bare.attrs = {}
    with caplog.at_level("WARNING", logger="kamml.models.bundle"):
        ModelBundle.fit(bare, config())
    assert "the training frame carries no horizon" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kamml.models.bundle"):
        ModelBundle.fit(days, config())
    assert "carries no horizon" not in caplog.text


def test_feature_rows_of_another_window_or_unit_are_refused_and_unmarked_rows_are_scored(fitted, world_data):
    """Rows built under a 180-day config (their spend_last_year_horizon covers 180 days) or in weeks
    were scored by a 90-day, days model without a word (an API audit); a CRM's rows carry no record."""
    bundle, features = fitted
    end = world_data.end.normalize()
    assert features.attrs == {"feature_window_days": 90, "time_unit": "days"}
    longer = build_features(world_data, end, config(horizon_days=180))
    with pytest.raises(ConfigError, match=r"built for a 180-day window, but the model was trained on 90"):
        bundle.predict(longer)
    with pytest.raises(ConfigError, match="built for a 180-day window"):
        bundle.anchor(longer)
    weeks = build_features(world_data, end, config(unit="weeks"))
    with pytest.raises(ConfigError, match="recency and T are in weeks, but the model was trained in days"):
        bundle.drivers(weeks)
    # the bundle's own scoring config rebuilds rows it accepts, whatever the caller's time settings
    rebuilt = build_features(world_data, end, bundle.scoring_config(config(horizon_days=180)))
    assert rebuilt.attrs["feature_window_days"] == 90
    expected = bundle.predict(features)
    pd.testing.assert_frame_equal(bundle.predict(rebuilt), expected)
    unmarked = longer.copy()
    unmarked.attrs = {}
    assert len(bundle.predict(unmarked)) == len(longer)  # not checkable: scored as sent


def test_a_regularity_or_recency_column_missing_beside_the_history_it_measures_is_refused(fitted):
    """gap_mean, overdue_ratio or days_since_last left out of a CRM's record with a purchase history
    was scored as 'no history' (clv x 0.54 to 1.56, p_churn moved up to 0.22; a CRM audit)."""
    bundle, features = fitted
    repeat = int(np.flatnonzero(features["frequency"].to_numpy() >= 1)[0])
    one_day = int(np.flatnonzero((features["frequency"] == 0) & features["T"].notna())[0])
    rows = features.iloc[[repeat, one_day]].copy()
    bundle.predict(rows)  # a one-day buyer's gaps are missing in the features too
    assert rows.iloc[1][["gap_mean", "gap_std", "gap_max", "overdue_ratio"]].isna().all()
    for column, says in [
        ("gap_mean", "a repeat purchase day (frequency >= 1)"),
        ("overdue_ratio", "a repeat purchase day"),
        ("days_since_last", "a purchase day (T given)"),
    ]:
        keyless = rows.copy()
        keyless.iloc[0, keyless.columns.get_loc(column)] = np.nan
        with pytest.raises(
            ModelError, match=rf"features\.{column}: missing in row\(s\) 0: .*{re.escape(says)}"
        ):
            bundle.predict(keyless)
    blank = rows.copy()
    blank.iloc[1, blank.columns.get_loc("days_since_last")] = np.nan
    with pytest.raises(ModelError, match=r"days_since_last: missing in row\(s\) 1"):
        bundle.predict(blank)
    many = pd.concat([features] * 2)  # above SMALL_FRAME_ROWS: the whole-frame path names them too
    last_repeat = int(np.flatnonzero(many["frequency"].to_numpy() >= 1)[-1])
    many.iloc[last_repeat, many.columns.get_loc("gap_max")] = np.nan
    with pytest.raises(ModelError, match=rf"gap_max: missing in row\(s\) {last_repeat}:"):
        bundle.predict(many)


def test_a_missing_calendar_column_is_refused_with_what_it_holds(fitted):
    """A null cutoff_month was refused as "never missing in the features (0 for an account without
    any)": no account has month 0; the refusal says what the column is (a CRM audit)."""
    bundle, features = fitted
    rows = features.iloc[:2].copy()
    rows.iloc[1, rows.columns.get_loc("cutoff_month")] = np.nan
    with pytest.raises(ModelError) as info:
        bundle.predict(rows)
    message = str(info.value)
    assert "features.cutoff_month: missing in row(s) 1: it is never missing in the features" in message
    assert "month (1-12) of the cutoff" in message
    assert "0 for an account without any" not in message
    counts = features.iloc[:2].copy()
    counts.iloc[0, counts.columns.get_loc("spend_90d")] = np.nan
    with pytest.raises(ModelError, match=r"spend_90d: missing in row\(s\) 0: .*0 for an account without any"):
        bundle.predict(counts)


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        (
            "cutoff_month",
            13.0,
            "cutoff_month: outside its range in row(s) 1: the features hold numbers from 1 to 12",
        ),
        ("cutoff_quarter", 0.0, "from 1 to 4"),
        (
            "days_since_last",
            -100.0,
            "days_since_last: outside its range in row(s) 1: the features hold numbers >= 0",
        ),
        ("orders_90d", -1.0, ">= 0 (1 row; e.g. -1.0)"),
        ("was_referred", 2.0, "from 0 to 1"),
    ],
)
def test_a_feature_value_outside_the_range_the_features_keep_is_refused(fitted, column, value, says):
    """Month 13, quarter 0 and a negative day count were scored (clv x 0.95 to 1.76; a CRM audit)."""
    bundle, features = fitted
    rows = features.iloc[:3].copy()
    rows.iloc[1, rows.columns.get_loc(column)] = value
    with pytest.raises(ModelError, match=re.escape(says)):
        bundle.predict(rows)


def test_every_built_feature_is_within_its_catalogued_range(world_data):
    from kamml.features.catalogue import bounds

    checked = 0
    for cutoff in (world_data.end.normalize(), world_data.end.normalize() - pd.Timedelta(days=300)):
        built = build_features(world_data, cutoff, config())
        for column in built.columns:
            limits = bounds(column)
            if limits is None:
                continue
            low, high = limits
            values = built[column].dropna()
            assert (values >= low).all(), column
            assert high is None or (values <= high).all(), column
            checked += 1
    assert checked >= 30


def test_a_bundles_horizon_cannot_be_reassigned_but_replace_builds_a_new_one(fitted):
    """``bundle.horizon_days = 365`` relabelled 180-day predictions as a year's (an API audit)."""
    import dataclasses

    bundle, _ = fitted
    for name in ("horizon_days", "train_horizon_days", "unit_days"):
        with pytest.raises(AttributeError, match=f"ModelBundle.{name} is fixed by the label windows"):
            setattr(bundle, name, 365)
    bundle.horizon_days = bundle.horizon_days  # the same value is no change
    assert dataclasses.replace(bundle, horizon_days=120).horizon_days == 120
    assert bundle.horizon_days == 90


def test_max_training_accounts_trains_on_the_same_sample_of_accounts_in_every_snapshot(world_data, caplog):
    end = world_data.end.normalize()
    cfg = config()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    sampled_cfg = cfg.model_copy(
        update={"models": cfg.models.model_copy(update={"max_training_accounts": 150})}
    )
    sample = sample_accounts(train, 150)
    chosen = set(sample["account_id"])
    assert len(chosen) == 150
    for snapshot, rows in train.groupby("snapshot"):  # by account: every chosen account's row, each time
        expected = set(rows["account_id"]) & chosen
        assert set(sample.loc[sample["snapshot"] == snapshot, "account_id"]) == expected
    assert set(sample["account_id"]) <= set(train["account_id"])
    shuffled = train.sample(frac=1.0, random_state=3)
    assert set(sample_accounts(shuffled, 150)["account_id"]) == set(sample["account_id"])  # not row order
    as_text = train.assign(account_id=train["account_id"].astype(str))
    assert set(sample_accounts(as_text, 150)["account_id"]) == set(sample["account_id"].astype(str))
    assert sample_accounts(train, 10_000) is train
    with caplog.at_level("INFO", logger="kamml.models.bundle"):
        bundle = ModelBundle.fit(train, sampled_cfg)
    assert bundle.meta["rows"] == len(sample)
    assert bundle.meta["sampled_accounts"] == f"150 of {train['account_id'].nunique()}"
    assert "training on 150 of" in caplog.text
    with pytest.raises(ModelError, match="no 'account_id' column to sample accounts by"):
        sample_accounts(train.drop(columns="account_id"), 10)
    with pytest.raises(ModelError, match="1 rows without an account_id"):
        sample_accounts(
            train.astype({"account_id": "Int64"}).assign(
                account_id=lambda f: f["account_id"].where(f.index != f.index[0])
            ),
            10,
        )
    tiny = cfg.model_copy(update={"models": cfg.models.model_copy(update={"max_training_accounts": 2})})
    with pytest.raises(ModelError, match=r"sample of 2 accounts, models\.max_training_accounts"):
        ModelBundle.fit(train, tiny)  # what the checks would blame on the data is the sample


@pytest.mark.slow  # over 10 s on two shared cores
def test_a_frame_sampled_while_built_is_the_sample_fit_would_draw(world_data, caplog):
    """build_training_frame(max_accounts=) drops rows snapshot by snapshot: the same rows, the same model."""
    end = world_data.end.normalize()
    cfg = config()
    cuts = training_cutoffs(end, 90, 3, 60)
    whole = build_training_frame(world_data, cuts, cfg)
    with caplog.at_level("INFO", logger="kamml.features.build"):
        early = build_training_frame(world_data, cuts, cfg, max_accounts=150)
    assert "training on the rows of 150 of" in caplog.text
    late = sample_accounts(whole, 150)
    pd.testing.assert_frame_equal(early, late.reset_index(drop=True), check_categorical=False)
    assert early.attrs["sampled_from"] == whole["account_id"].nunique()
    assert early.attrs["referral_value_before_sample"] == pytest.approx(whole["referral_value"].sum())
    assert "sampled_from" not in build_training_frame(world_data, cuts, cfg, max_accounts=10**6).attrs
    limited = cfg.model_copy(update={"models": cfg.models.model_copy(update={"max_training_accounts": 150})})
    from_early, from_whole = ModelBundle.fit(early, cfg), ModelBundle.fit(whole, limited)
    assert from_early.meta == from_whole.meta  # "150 of N" either way, though the config sets no limit
    assert from_early.meta["sampled_accounts"] == f"150 of {whole['account_id'].nunique()}"
    features = build_features(world_data, end, cfg)
    np.testing.assert_array_equal(from_early.predict_value(features), from_whole.predict_value(features))
    smaller = cfg.model_copy(update={"models": cfg.models.model_copy(update={"max_training_accounts": 100})})
    drawn = ModelBundle.fit(early, smaller).meta["sampled_accounts"]
    assert drawn == f"100 of {whole['account_id'].nunique()}"
    tiny = build_training_frame(world_data, cuts, cfg, max_accounts=2)
    with pytest.raises(ModelError, match=r"sample of 2 accounts, models\.max_training_accounts"):
        ModelBundle.fit(tiny, cfg)  # the errors still blame the sample, not the data


def test_referral_value_only_in_the_latest_snapshot_trains_no_influence_model(world_data, caplog):
    """Its first fit learns the earlier snapshots: all zeros there made LightGBM fail with a bare error."""
    cfg = config()
    end = world_data.end.normalize()
    train = build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg)
    latest = train["snapshot"] == train["snapshot"].max()
    assert train.loc[latest, "referral_value"].sum() > 0
    young = train.assign(referral_value=train["referral_value"].where(latest, 0.0))
    with caplog.at_level("WARNING", logger="kamml.models.bundle"):
        bundle = ModelBundle.fit(young, cfg)
    assert bundle.influence is None
    assert "referral value only in the latest training snapshot" in caplog.text
    unspent = train.assign(value=train["value"].where(latest, 0.0))
    with pytest.raises(ModelError, match="no account spent anything in a label window before the latest"):
        ModelBundle.fit(unspent, cfg)


def test_value_never_rises_as_repeat_orders_are_refunded(fitted):
    """monetary <= 0 (repeat orders netted to nothing) took Gamma-Gamma's population mean: 7x the value."""
    bundle, features = fitted
    row = features[features["frequency"] > 5].iloc[[0]]
    ladder = pd.concat([row.assign(monetary=m) for m in (-200.0, -1.0, 0.0, 0.01, 1.0, 100.0)])
    clv = bundle.predict_value(ladder)
    assert np.all(np.diff(clv) >= 0), clv


def test_the_account_sample_is_pinned():
    """The sample must not move with a pandas release: these ids were chosen by its fixed hash."""
    frame = pd.DataFrame({"account_id": list(range(1, 21)) * 2, "snapshot": [1] * 20 + [2] * 20})
    assert sorted(sample_accounts(frame, 5)["account_id"].unique()) == [5, 7, 9, 13, 17]
    as_text = frame.assign(account_id=frame["account_id"].astype(str))
    assert sorted(sample_accounts(as_text, 5)["account_id"].unique(), key=int) == ["5", "7", "9", "13", "17"]
    with pytest.raises(ConfigError, match="max_training_accounts"):
        Config.from_dict({"models": {"max_training_accounts": 0}})


def test_the_bundle_docstring_names_every_prediction_column():
    """`ModelBundle`'s docstring listed the columns of `predict` without horizon_days, which it returns."""
    from kamml.models.bundle import PREDICTION_COLUMNS, ModelBundle

    listed = (ModelBundle.__doc__ or "").split("per account:")[1]
    assert [name for name in PREDICTION_COLUMNS if name not in re.findall(r"\w+", listed)] == []


def test_referral_value_is_carried_to_the_horizon_by_the_referral_ratio(world_data):
    """Referral value over H from the influence model's h-day value: by `referral_ratio` when measured
    (referred accounts keep spending, so a longer window holds more than in proportion to time)."""
    end = world_data.end.normalize()
    cfg = config(train_horizon_days=45)
    train = build_training_frame(world_data, training_cutoffs(end, 45, 2, 60), config(horizon_days=45))
    bundle = ModelBundle.fit(train, cfg)
    assert bundle.influence is not None
    assert bundle.referral_ratio is None  # measured from the data by train_bundle, not from the frame
    features = build_features(world_data, end, cfg)
    anchored = bundle.anchor(features)
    rows, _ = anchored.with_btyd(features, refit=False)
    raw = anchored.influence.predict(rows[anchored.features], horizon_days=45)
    in_time = anchored.predict(features, refit_btyd=False)["referral_value"].to_numpy()
    np.testing.assert_allclose(in_time, raw * 2.0, rtol=1e-12)
    anchored.referral_ratio = 3.1
    measured = anchored.predict(features, refit_btyd=False)["referral_value"].to_numpy()
    np.testing.assert_allclose(measured, raw * 3.1, rtol=1e-12)
    loaded = ModelBundle.from_dict(anchored.to_dict())
    assert loaded.referral_ratio == 3.1
    state = anchored.to_dict()
    state["referral_ratio"] = -1.0  # `load` names such a bundle damaged
    with pytest.raises(ValueError, match="referral_ratio"):
        ModelBundle.from_dict(state)


def test_training_log_line_groups_rows_from_1000_on(world_data, caplog):
    """'training on 1200 rows (3 snapshots) x 40 features' read without separators."""
    cfg = config(snapshots=3)
    train = build_training_frame(world_data, training_cutoffs(world_data.end.normalize(), 90, 3, 60), cfg)
    assert len(train) >= 1000
    with caplog.at_level("INFO", logger="kamml"):
        ModelBundle.fit(train, cfg)
    assert f"training on {len(train):,} rows (3 snapshots) x " in caplog.text


def test_empty_snapshots_error_groups_the_snapshot_count():
    """time.snapshots may be 1,000: '1 of 1000 training snapshot(s)' read without separators."""
    from kamml.models.bundle import empty_snapshots_error

    error = empty_snapshots_error([pd.Timestamp("2020-01-01")], 1000)
    assert str(error).startswith("1 of 1,000 training snapshots holds no purchase history")
    both = [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-03-01")]
    assert str(empty_snapshots_error(both, 2)).startswith("2 of 2 training snapshots hold no purchase")
    assert str(empty_snapshots_error(both[:1], 1)).startswith("1 of 1 training snapshot holds no purchase")


def test_empty_snapshots_error_agrees_with_its_count():
    """One empty snapshot read "holds no purchase history before their cutoffs": singular and plural mixed."""
    from kamml.models.bundle import empty_snapshots_error

    one = str(empty_snapshots_error([pd.Timestamp("2020-01-01")], 1))
    assert one.startswith("1 of 1 training snapshot holds no purchase history before its cutoff, or a day")
    assert "their cutoffs" not in one
    two = str(empty_snapshots_error([pd.Timestamp("2020-01-01"), pd.Timestamp("2020-03-01")], 3))
    assert two.startswith("2 of 3 training snapshots hold no purchase history before their cutoffs, or a day")


def test_value_shape_log_line_groups_its_breakpoints(fitted, monkeypatch, caplog):
    """The shape keeps up to SHAPE_POINTS (1,025) breakpoints: '1025 breakpoints' read without separators."""
    bundle, features = fitted
    points = list(np.linspace(1.0, 2.0, SHAPE_POINTS))
    monkeypatch.setattr("kamml.models.bundle.fit_value_shape", lambda *args: {"x": points, "y": points})
    longer = dataclasses.replace(bundle, horizon_days=bundle.train_horizon_days + 30, value_ratio=1.0)
    with caplog.at_level("INFO", logger="kamml"):
        longer._value_shape(features)
    assert f"value shape: {SHAPE_POINTS:,} breakpoints (" in caplog.text


def test_named_features_are_checked_as_the_fit_checks_them_and_influence_only_with_referrals():
    """`check_named_features` runs the fit's own rule (`_lgbm_kwargs`) on the features to come; the
    influence model is not trained without referrals, so its settings are not judged then."""
    from kamml.models.btyd_features import BTYD_COLUMNS
    from kamml.models.bundle import check_named_features, names_features, training_features

    features = training_features(["account_id", "recency", "spend_90d", "attr_segment", "value", "snapshot"])
    assert features[:3] == ["recency", "spend_90d", "attr_segment"]
    assert features[3:] == list(BTYD_COLUMNS)
    cfg = Config.from_dict({"models": {"influence": {"monotone": {"referrals_made": 1}}}})
    assert names_features(cfg)
    check_named_features(cfg, features, ["attr_segment"], influence=False)
    with pytest.raises(
        ConfigError, match=r"'models\.influence\.monotone' names features .*\['referrals_made'\]"
    ):
        check_named_features(cfg, features, ["attr_segment"])
    ordered = Config.from_dict({"models": {"clv": {"monotone": {"attr_segment": 1}}}})
    with pytest.raises(ConfigError, match=r"'models\.clv\.monotone' names categorical features"):
        check_named_features(ordered, features, ["attr_segment"])
    offset = Config.from_dict({"models": {"clv": {"offset_feature": "attr_segment"}}})
    assert names_features(offset)
    with pytest.raises(
        ConfigError, match=r"'models\.clv\.offset_feature' names 'attr_segment', which is a categorical"
    ):
        check_named_features(offset, features, ["attr_segment"])
    blend = Config.from_dict({"models": {"churn": {"blend_feature": "attr_region"}}})
    with pytest.raises(
        ConfigError, match=r"'models\.churn\.blend_feature' names 'attr_region', which is not a feature"
    ):
        check_named_features(blend, features, ["attr_segment"])
    assert not names_features(Config())


@pytest.mark.parametrize("value", ["yes", 1.0, 2])
def test_a_lightgbm_switch_lightgbm_cannot_read_is_named_by_its_key(value):
    """``linear_tree: yes`` read "models.clv: LightGBM refuses the parameters: Parameter linear_tree should
    be "true"/"+" or "false"/"-", got "yes"", naming no key: its wording is not of a type or a range."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"models": {"clv": {"linear_tree": value}}})
    assert str(caught.value).startswith("config: 'models.clv.linear_tree' must be true or false, got ")


def test_per_column_lightgbm_params_are_judged_on_as_many_columns_as_they_have_values():
    """``max_bin_by_feature`` with a value per training feature was refused as the config was read: the
    one-round check trains on two columns ("Check failed: (static_cast<size_t>(num_col)) == ...")."""
    wide = Config.from_dict({"models": {"clv": {"max_bin_by_feature": [63] * 40, "fc": [1.0] * 40}}})
    assert wide.models.clv["max_bin_by_feature"] == [63] * 40
    with pytest.raises(
        ConfigError,
        match=r"^config: 'models\.clv\.max_bin_by_feature' has 3 values and 'models\.clv\.fc' 4: each "
        r"holds one value per feature of the training frame$",
    ):
        Config.from_dict({"models": {"clv": {"max_bin_by_feature": [63] * 3, "fc": [1.0] * 4}}})
    with pytest.raises(
        ConfigError, match=r"'models\.churn\.max_bin_by_feature' must be > 1 in every value, got \[-3, 4\]$"
    ):
        Config.from_dict({"models": {"churn": {"max_bin_by_feature": [-3, 4]}}})


@pytest.mark.slow  # a bundle fit
def test_per_column_lightgbm_params_are_counted_against_the_training_features(fitted, world_data):
    bundle, _ = fitted
    cfg = config()

    def fit(**models):
        update = {k: {**FAST, **v} for k, v in models.items()}
        edited = cfg.model_copy(update={"models": cfg.models.model_copy(update=update)})
        return ModelBundle.fit(
            build_training_frame(world_data, training_cutoffs(end, 90, 2, 60), cfg), edited
        )

    end = world_data.end.normalize()
    n = len(bundle.features)
    with pytest.raises(
        ConfigError,
        match=rf"^'models\.clv\.fc' \(LightGBM's feature_contri\) has 3 values for the {n} features "
        r"of the training frame; LightGBM reads one per feature, in the frame's order$",
    ):
        fit(clv={"fc": [1.0] * 3})  # before LightGBM trains, naming the key as written
    own = fit(influence={"max_bin_by_feature": [31] * n})
    assert own.influence.booster_.params["max_bin_by_feature"] == [31] * n
