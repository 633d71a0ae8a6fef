from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import ConfigError
from kamml.evaluation.backtest import (
    TEXT_COLUMNS,
    BacktestResult,
    _season_frame,
    backtest,
    default_cutoff,
    snapshot_plan,
    train_bundle,
)
from kamml.evaluation.benchmark import ACQUISITION_END, EARLIEST_SNAPSHOT, honest_train_horizon
from kamml.evaluation.metrics import churn_metrics
from kamml.features import build_features
from kamml.features.build import check_label_window
from kamml.features.referrals import referral_spend_by_age
from kamml.io import json_text
from kamml.models.influence import MIN_SEEN, referral_window_ratio

FAST = {"n_estimators": 40, "early_stopping_rounds": 10}


CFG = {
    "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
    "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
}


@pytest.fixture(scope="module")
def world():
    return synthetic.generate(400, seed=3, years=2.0)


@pytest.fixture(scope="module")
def result(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("world")
    world.write(path)
    cfg = Config.from_dict(CFG)
    data = load_data(path, cfg)
    return data, backtest(data, cfg)


def test_json_has_the_design_keys(result):
    _, r = result
    payload = json.loads(json.dumps(r.to_dict()))
    assert set(payload) == {"protocol", "btyd_params", "value", "churn", "referral"}
    assert set(payload["value"]) == {"kamml", "btyd", "last_period"}
    assert set(payload["churn"]) == {"kamml", "btyd", "recency"}
    assert set(payload["referral"]) == {"kamml", "past_rate"}
    assert "referral_note" not in payload  # only when there is no referral section to read
    for key in ("gini", "spearman", "top10_capture", "decile_mape", "aggregate_error", "rmse"):
        assert key in payload["value"]["kamml"]
    for key in ("r", "alpha", "a", "b", "p", "q", "gamma"):
        assert key in payload["btyd_params"]


def test_the_referral_key_is_null_with_the_reason_without_a_referrals_table(world):
    """No referrals table (as on CDNOW): "referral" is still in the JSON, as null, and says why."""
    cfg = Config.from_dict(CFG)
    data = load_data({"transactions": world.transactions, "accounts": world.accounts}, cfg)
    r = backtest(data, cfg)
    payload = json.loads(json.dumps(r.to_dict()))
    assert set(payload) >= {"protocol", "btyd_params", "value", "churn", "referral"}
    assert payload["referral"] is None
    assert "no referrals table" in payload["referral_note"]
    assert "referral: not evaluated: no referrals table" in r.to_text()


def test_the_referral_key_is_null_when_no_referral_brings_value_in_the_test_window(world, result):
    _, full = result
    cutoff = pd.Timestamp(full.protocol["cutoff"])
    referrals = world.referrals[world.referrals["ts"] < cutoff]  # nothing referred in the test window
    tables = {"transactions": world.transactions, "accounts": world.accounts, "referrals": referrals}
    cfg = Config.from_dict(CFG)
    cfg.data.end = world.end.date()
    r = backtest(load_data(tables, cfg), cfg, cutoff)
    payload = r.to_dict()
    assert payload["referral"] is None
    assert f"{cutoff.date()}" in payload["referral_note"]
    assert "no referred account" in payload["referral_note"]


def test_churn_is_reported_beside_the_recency_rule_of_design_5(world, result):
    """DESIGN §5's churn baselines are BG/NBD P(no purchase) and a recency rule; only the first was
    reported. The rule: an account without a purchase in the horizon before the cutoff churns."""
    _, r = result
    cut, horizon = pd.Timestamp(r.protocol["cutoff"]), r.protocol["horizon_days"]
    tx = world.transactions
    recent = tx[(tx["ts"] >= cut - pd.Timedelta(days=horizon)) & (tx["ts"] < cut) & (tx["amount"] >= 0)]
    rule = (~r.predictions.index.isin(recent["account_id"])).astype(float)
    assert r.churn["recency"] == churn_metrics(r.predictions["churned"].to_numpy(), rule)
    assert 0.5 < r.churn["recency"]["roc_auc"] < 1.0
    assert "recency" in r.to_text()


def test_no_training_label_reaches_the_test_window(result):
    data, r = result
    cutoff = pd.Timestamp(r.protocol["cutoff"])
    assert cutoff == default_cutoff(data, 90)
    for snap in r.protocol["training_snapshots"]:
        assert pd.Timestamp(snap) + pd.Timedelta(days=r.protocol["train_horizon_days"]) <= cutoff


def test_the_protocol_names_the_season_snapshots_whose_labels_the_models_read(result):
    """The season's two snapshots (labels included) set the value and churn levels, but the JSON named
    only the training snapshots: whether their label windows end by the test cutoff was in the log only."""
    _, r = result
    cutoff = pd.Timestamp(r.protocol["cutoff"])
    season = r.bundle.meta["season"]["snapshots"]
    assert r.protocol["season_snapshots"] == season
    for snap in season:
        assert pd.Timestamp(snap) + pd.Timedelta(days=r.protocol["train_horizon_days"]) <= cutoff
    assert json.loads(json_text(r.to_dict()))["protocol"]["season_snapshots"] == season


def test_training_snapshots_leave_room_for_the_training_horizon_not_the_test_one(result):
    """train_horizon_days 120 > horizon 60: each snapshot's 120-day label window ends by the test cutoff."""
    data, _ = result
    cfg = Config.from_dict({**CFG, "time": {**CFG["time"], "horizon_days": 60, "train_horizon_days": 120}})
    cutoff = default_cutoff(data, 60)
    _, train = train_bundle(data, cfg, cutoff)
    snapshots = sorted(train["snapshot"].unique())
    assert len(snapshots) == 2
    for snap in snapshots:
        assert pd.Timestamp(snap) + pd.Timedelta(days=120) <= cutoff


def test_referral_value_is_carried_from_the_training_window_by_when_referred_accounts_spend(result):
    """Referral value over 90 days from 45-day labels: by the measured timing, not in proportion to time
    (referred accounts keep spending, so the 90-day total was under-predicted: 60 days from 180 on a
    5,000-account world, aggregate -55.7 % against +1.5 % now)."""
    data, _ = result
    cfg = Config.from_dict({**CFG, "time": {**CFG["time"], "train_horizon_days": 45}})
    cutoff = default_cutoff(data, 90)
    bundle, _ = train_bundle(data, cfg, cutoff)
    assert bundle.influence is not None
    spend, seen = referral_spend_by_age(data, cutoff, 90)
    assert seen[44] >= MIN_SEEN
    assert bundle.referral_ratio == referral_window_ratio(spend, seen, 45, 90)
    assert 2.0 < bundle.referral_ratio <= 4.0
    same = Config.from_dict(CFG)  # no carry without a shorter training window
    assert train_bundle(data, same, cutoff)[0].referral_ratio is None


def test_default_cutoff_is_the_latest_whose_label_window_fits_in_the_data():
    data = SimpleNamespace(end=pd.Timestamp("2025-01-01"))  # exclusive: the data's last day is 2024-12-31
    cutoff = default_cutoff(data, 90)
    assert cutoff == pd.Timestamp("2024-10-03")  # [2024-10-03, 2025-01-01) is 90 days
    check_label_window(data, cutoff, 90)
    with pytest.raises(ConfigError, match="ends after the data end"):
        check_label_window(data, cutoff + pd.Timedelta(days=1), 90)


def _hand_result(value, churn, referral):
    protocol = {
        "cutoff": "2025-01-02",
        "horizon_days": 180,
        "training_snapshots": ["2024-07-06"],
        "train_horizon_days": 180,
        "training_rows": 10,
        "test_accounts": 5,
    }
    return BacktestResult(protocol, {}, value, churn, referral, pd.DataFrame(), None)  # type: ignore[arg-type]


def test_the_text_names_the_metrics_a_baseline_does_better_on():
    """A notebook audit: BTYD won every churn metric of the quickstart's table and no text said so."""
    value = {
        "kamml": {"gini": 0.9, "spearman": 0.5, "aggregate_error": 0.12, "rmse": 3.0},
        "btyd": {"gini": 0.8, "spearman": 0.6, "aggregate_error": -0.04, "rmse": 3.0},
        "last_period": {"gini": 0.7, "spearman": 0.7, "aggregate_error": -0.2, "rmse": math.nan},
    }
    churn = {
        "kamml": {"roc_auc": 0.8, "pr_auc": 0.7, "brier": 0.10},
        "btyd": {"roc_auc": 0.7, "pr_auc": 0.6, "brier": 0.12},
    }
    referral = {"kamml": {"gini": math.nan, "rmse": 2.0}, "past_rate": {"gini": 0.1, "rmse": 1.0}}
    r = _hand_result(value, churn, referral)
    assert r.behind() == {
        "value": {"spearman": ["btyd", "last_period"], "aggregate_error": ["btyd"]},  # a tie is no loss
        "referral": {"gini": ["past_rate"], "rmse": ["past_rate"]},  # NaN loses to any figure
    }
    for frame in (value, churn, referral):  # to_text prints the columns it knows
        for metrics in frame.values():
            for column in ("gini", "spearman", "top10_capture", "decile_mape", "decile_wape"):
                metrics.setdefault(column, 0.0)
            for column in ("aggregate_error", "rmse"):
                metrics.setdefault(column, 0.0)
    text = r.to_text()
    assert "a baseline does better on: spearman (btyd, last_period), aggregate_error (btyd)" in text
    assert "churn\n" in text
    assert "no baseline does better on any of these" in text  # churn: kamml ahead everywhere


def test_a_baseline_equal_but_for_float_noise_does_not_do_better():
    """A notebook audit: CDNOW from 1997-12-31 printed "a baseline does better on: aggregate_error (btyd)"
    under two figures that both read -0.0352: kamml's total is BTYD's level, the two differed by 1e-16."""
    value = {
        "kamml": {"gini": 0.75, "aggregate_error": -0.0352266422531142},
        "btyd": {"gini": 0.72, "aggregate_error": -0.03522664225311408},
    }
    churn = {
        "kamml": {"roc_auc": 0.7990, "brier": 0.1292},
        "btyd": {"roc_auc": 0.7990 + 1e-15, "brier": 0.1311},
    }
    r = _hand_result(value, churn, {})
    assert r.behind() == {}
    value["btyd"]["aggregate_error"] = -0.0351  # a real difference, however small on the page, still counts
    churn["btyd"]["roc_auc"] = 0.79901
    assert r.behind() == {"value": {"aggregate_error": ["btyd"]}, "churn": {"roc_auc": ["btyd"]}}


def test_the_text_head_reads_a_one_day_horizon_and_one_snapshot_in_the_singular():
    """`kamml backtest --horizon-days 1` printed "horizon 1 days, trained on 1 snapshots"."""
    value = {"kamml": dict.fromkeys(TEXT_COLUMNS["value"], 0.5)}
    r = _hand_result(value, {}, {})
    r.protocol.update(horizon_days=1, train_horizon_days=1, training_rows=1, test_accounts=1)
    head = r.to_text().splitlines()[0]
    assert head == (
        "backtest at 2025-01-02: horizon 1 day, trained on 1 snapshot (1-day labels) of 1 row; 1 test account"
    )


def test_text_table_names_every_model(result):
    _, r = result
    text = r.to_text()
    for name in ("kamml", "btyd", "last_period", "past_rate"):
        assert name in text


@pytest.mark.parametrize(
    ("cutoff", "horizon", "expected"),
    [("1997-10-01", 273, (126, 3)), ("1998-01-01", 181, (181, 3)), ("1997-06-01", 273, (28, 2))],
)
def test_honest_train_horizon(cutoff, horizon, expected):
    got = honest_train_horizon(ACQUISITION_END, pd.Timestamp(cutoff), horizon, 3, 28)
    assert got == expected
    h, k = got
    assert pd.Timestamp(cutoff) - pd.Timedelta(days=h + (k - 1) * 28) >= ACQUISITION_END


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [("1997-06-01", (28, 3)), ("1997-05-16", (28, 3)), ("1997-04-23", (28, 3)), ("1997-10-01", (126, 3))],
)
def test_honest_train_horizon_moves_the_first_snapshot_back_for_all_of_them(cutoff, expected):
    """Where three snapshots do not fit after the cohort completes, they start earlier with 28-day windows."""
    got = honest_train_horizon(ACQUISITION_END, pd.Timestamp(cutoff), 273, 3, 28, EARLIEST_SNAPSHOT)
    assert got == expected
    h, k = got
    first = pd.Timestamp(cutoff) - pd.Timedelta(days=h + (k - 1) * 28)
    assert first >= EARLIEST_SNAPSHOT
    assert (first < ACQUISITION_END) == (cutoff != "1997-10-01")  # moved only when needed


@pytest.mark.parametrize("cutoff", ["1997-04-22", "1997-04-03"])
def test_honest_train_horizon_not_before_the_earliest_snapshot(cutoff):
    """From 1997-04-22 three snapshots would start on 1997-01-28, a day before the earliest, and one after
    the cohort completes has 21 days (too short): two start after the earliest. Such ends were refused."""
    assert honest_train_horizon(ACQUISITION_END, pd.Timestamp(cutoff), 273, 3, 28, EARLIEST_SNAPSHOT) == (
        28,
        2,
    )
    assert pd.Timestamp(cutoff) - pd.Timedelta(days=28 + 28) >= EARLIEST_SNAPSHOT
    with pytest.raises(ConfigError, match=r"too short"):  # and none before the earliest
        honest_train_horizon(ACQUISITION_END, pd.Timestamp(cutoff), 273, 3, 28, pd.Timestamp(cutoff))


def test_honest_train_horizon_refuses_too_short():
    """The message named the test cutoff (1997-04-20) as the calibration end (1997-04-19)."""
    with pytest.raises(ConfigError, match=r"calibration end 1997-04-19 leaves 19 days .* too short"):
        honest_train_horizon(ACQUISITION_END, pd.Timestamp("1997-04-20"), 273, 3, 28)


def test_a_holdout_shorter_than_four_weeks_is_named():
    """A 27-day holdout was reported as a calibration period of 429 days being too short."""
    with pytest.raises(ConfigError, match=r"a holdout of 27 days is shorter than .* \(28 days\)"):
        honest_train_horizon(ACQUISITION_END, pd.Timestamp("1998-06-04"), 27, 3, 28)


def test_backtest_scores_exactly_as_the_served_model_does(result):
    """The backtest's kamml column equals row-by-row predictions of its (anchored) bundle."""
    from kamml.features import build_features

    data, res = result
    features = build_features(data, res.protocol["cutoff"], res.bundle.scoring_config())
    rows = features.iloc[:7]
    served = pd.concat([res.bundle.predict(rows.iloc[[i]], refit_btyd=False) for i in range(len(rows))])
    np.testing.assert_allclose(
        served["clv"].to_numpy(), res.predictions.loc[rows.index, "clv"].to_numpy(), rtol=1e-12
    )


def test_a_cutoff_whose_oldest_snapshot_precedes_every_purchase_names_that_snapshot(result):
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cut = first + pd.Timedelta(days=100)  # snapshots at first + 10 (with purchases) and first - 50 (none)
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 2, "step_days": 60}})
    oldest = (cut - pd.Timedelta(days=150)).date()
    with pytest.raises(ConfigError, match=rf"1 of 2 training snapshots .*\({oldest}\).*time\.snapshots"):
        backtest(data, cfg, cut)


def test_a_snapshot_the_day_after_the_first_purchase_is_the_settings_error(result):
    """Every T is 0 there: BG/NBD's "nothing to fit" read as an input-data error (exit 3)."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 2, "step_days": 60}})
    cut = first + pd.Timedelta(days=1 + 90 + 60)  # the oldest snapshot on the day after the first purchase
    oldest = (first + pd.Timedelta(days=1)).date()
    with pytest.raises(ConfigError, match=rf"1 of 2 training snapshots .*a day of it \({oldest}\)"):
        backtest(data, cfg, cut)


def test_snapshots_without_history_are_named_beside_the_first_purchase_day(result):
    """The error named the empty snapshots' dates but not the day the data's purchases begin, so a cutoff
    near the start of the data did not say how far the settings reached back past it."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cfg = Config.from_dict({"time": {"horizon_days": 30, "snapshots": 1}})
    cut = first + pd.Timedelta(days=14)  # the snapshot 30 days back is 16 days before the first purchase
    with pytest.raises(ConfigError, match=rf"first purchase.* {first.date()}"):
        backtest(data, cfg, cut)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_snapshots_days_after_the_first_purchase_name_the_time_settings_not_gamma_gamma(result):
    """A training snapshot 5 days after the first purchase holds 1 repeat buyer: the job stopped with
    Gamma-Gamma's "at least 10 repeat buyers" (a ModelError, exit 5), naming neither the snapshot nor the
    time settings, though the data hold hundreds of repeat buyers by their end."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 1}, "models": {"threads": 1}})
    snapshot = first + pd.Timedelta(days=5)
    with pytest.raises(ConfigError) as caught:
        backtest(data, cfg, snapshot + pd.Timedelta(days=90))
    message = str(caught.value)
    assert f"training snapshot {snapshot.date()} holds 1 repeat buyer " in message
    assert f"5 days after the first purchase ({first.date()})" in message
    assert "at least 10" in message
    for setting in ("time.cutoff", "--cutoff", "time.horizon_days", "models.clv.offset_feature: null"):
        assert setting in message


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_book_with_too_few_repeat_buyers_by_its_end_still_blames_the_data(tmp_path):
    """Ten accounts hold under 10 repeat buyers at any cutoff: no time setting helps, so the error stays
    the models' (at most 9 repeat buyers, give more accounts or history), not the time settings'."""
    from kamml.errors import ModelError

    synthetic.generate(n_accounts=10, seed=3).write(tmp_path)
    data = load_data(tmp_path)
    cfg = Config()
    with pytest.raises(ModelError, match=r"at most \d: give more accounts"):
        train_bundle(data, cfg, default_cutoff(data, cfg.time.horizon_days))


def _five_repeat_buyers(world) -> tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame]:
    """The data end, a cutoff 90 days before it and the world's transactions with only 5 repeat buyers
    before that cutoff (everyone else's first purchase only), hundreds after it."""
    end = world.end.normalize()
    cut = end - pd.Timedelta(days=90)
    tx = world.transactions.sort_values("ts", kind="stable")
    before, after = tx[tx["ts"] < cut], tx[tx["ts"] >= cut]
    repeaters = before["account_id"].unique()[:5]
    firsts = before.groupby("account_id").head(1)
    once = firsts[~firsts["account_id"].isin(repeaters)]
    return end, cut, pd.concat([once, before[before["account_id"].isin(repeaters)], after])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_repeat_buyers_only_after_the_latest_possible_snapshot_do_not_blame_the_time_settings(world):
    """5 repeat buyers before the test cutoff, hundreds in its label window: no cutoff the data allow
    gives a training snapshot 10, so the time settings are not the cause and the fit's error stands."""
    from kamml.errors import ModelError

    end, cut, transactions = _five_repeat_buyers(world)
    cfg = Config.from_dict({**CFG, "data": {"end": str(end.date())}})
    with pytest.raises(ModelError, match=r"at least 10 repeat buyers .* at most [0-5]: "):
        backtest(load_data({"transactions": transactions}, cfg), cfg, cut)


def test_snapshots_before_every_purchase_are_refused_before_any_is_built(result, monkeypatch):
    """400 snapshots were all built (over five minutes) before the empty ones were named."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 400, "step_days": 30}})

    def built(*args, **kwargs):
        raise AssertionError("a snapshot was built")

    monkeypatch.setattr("kamml.evaluation.backtest.build_training_frame", built)
    with pytest.raises(ConfigError, match=r"of 400 training snapshots hold no purchase history"):
        train_bundle(data, cfg, first + pd.Timedelta(days=400))


def test_a_test_window_without_any_purchase_is_named(world):
    """Transactions that stop at the test cutoff (the data end set later): NaN metrics, exit 0, before."""
    from kamml.errors import DataError

    end = world.end.normalize()
    cut = end - pd.Timedelta(days=90)
    tx = world.transactions[world.transactions["ts"] < cut]
    cfg = Config.from_dict({**CFG, "data": {"end": str(end.date())}})
    data = load_data({"transactions": tx}, cfg)
    with pytest.raises(DataError, match=r"no account bought anything in the test window"):
        backtest(data, cfg, cut)


def test_a_sampled_training_reports_the_rows_it_trained_on(result):
    data, full = result
    assert "sampled_accounts" not in full.protocol
    cfg = Config.from_dict({**CFG, "models": {**CFG["models"], "max_training_accounts": 200}})
    sampled = backtest(data, cfg)
    assert sampled.protocol["training_rows"] == sampled.bundle.meta["rows"] < full.protocol["training_rows"]
    assert sampled.protocol["sampled_accounts"].startswith("200 of ")


def test_the_backtest_names_no_drivers(result):
    """No metric reads them: naming them for every test account took minutes at a million accounts."""
    _, res = result
    assert (res.predictions["drivers"] == "").all()


def test_the_levels_carry_the_season_measured_a_year_earlier(result):
    """Two snapshots 364 days before the test cutoff and before the latest training snapshot."""
    data, r = result
    cut = default_cutoff(data, CFG["time"]["horizon_days"])
    year, h = pd.Timedelta(days=364), pd.Timedelta(days=CFG["time"]["horizon_days"])
    season = r.bundle.meta["season"]
    assert season["snapshots"] == [str((cut - h - year).date()), str((cut - year).date())]
    assert 0.5 <= season["value_ratio"] <= 2.0
    assert abs(season["churn_shift"]) < 1


def test_no_season_for_windows_of_a_year_or_without_a_year_and_four_months_of_history(result):
    """A season needs its earlier snapshot a year back to have four months of history before it.

    With less, BTYD's misfit there holds the data's start, not the calendar: on 2-year synthetic worlds
    (four seeds) a season measured 62-120 days into the data made the aggregate worse at 21 of 28 cutoffs
    (mean |error| 0.095 against 0.057 without), one measured 150-300 days in made it better at 16 of 20
    (0.104 against 0.187); on CDNOW the one-month holdout from 1998-03-31 read +73 % against BTYD's +25 %.
    """
    data, _ = result
    cfg = Config.from_dict(CFG)
    end = data.end.normalize()
    assert _season_frame(data, cfg, end, 364, end - pd.Timedelta(days=364)) is None  # every season in it
    first = data.quality.tables["transactions"].first.normalize()
    early = first + pd.Timedelta(days=364 + 90 + 121)  # the earlier year-ago snapshot has 121 days before it
    assert _season_frame(data, cfg, early, 90, early - pd.Timedelta(days=90)) is None
    later = early + pd.Timedelta(days=1)  # four months (122 days) of history: enough
    frame = _season_frame(data, cfg, later, 90, later - pd.Timedelta(days=90))
    assert frame is not None
    assert frame["snapshot"].nunique() == 2
    assert not any(c.startswith(("spend_", "n_products")) for c in frame.columns)  # rfm and labels only


@pytest.mark.slow
def test_a_january_month_is_not_valued_at_decembers_season(tmp_path, monkeypatch):
    """At a 30-day horizon the latest window is December (season 1.45 in the world, January 0.85): its
    BTYD bias put January's total 75 % too high (the demo's world, seed 42, at 2025-01-01). The season
    measured a year earlier takes December's out; without one, the bias is not carried at all."""
    import kamml.evaluation.backtest as module

    world = synthetic.generate(2_000, seed=42, years=3.0)
    world.write(tmp_path)
    cfg = Config.from_dict({**CFG, "time": {"horizon_days": 30, "snapshots": 3, "step_days": 60}})
    data = load_data(tmp_path, cfg)
    with_season = backtest(data, cfg, "2025-01-01")
    monkeypatch.setattr(module, "_season_frame", lambda *args: None)
    without = backtest(data, cfg, "2025-01-01")
    assert "season" in with_season.bundle.meta
    assert "season" not in without.bundle.meta
    new, old = (abs(r.value["kamml"]["aggregate_error"]) for r in (with_season, without))
    assert new < 0.15  # December's bias carried to January read +75 %
    assert old < 0.15  # without a season, BTYD's own total (its December bias was +75 % here)
    assert with_season.churn["kamml"]["brier"] < without.churn["kamml"]["brier"]


def test_the_baselines_are_scored_on_their_own_predictions(result):
    """BTYD refitted at the cutoff and last period's spend, recomputed here, give the reported metrics."""
    from kamml.evaluation.metrics import churn_metrics, value_metrics
    from kamml.features import build_features
    from kamml.models.btyd_features import add_btyd_features, fit_btyd

    data, r = result
    cut, h = pd.Timestamp(r.protocol["cutoff"]), CFG["time"]["horizon_days"]
    p = r.predictions
    y = p["value"].to_numpy(float)
    tx = data.to_pandas("transactions")
    window = tx[(tx["ts"] >= cut - pd.Timedelta(days=h)) & (tx["ts"] < cut)]  # [cut - h, cut)
    past = window.groupby("account_id")["amount"].sum().reindex(p.index).fillna(0.0).to_numpy()
    np.testing.assert_allclose(p["past_value"].to_numpy(float), past, rtol=1e-9, atol=1e-9)
    assert r.value["last_period"] == pytest.approx(value_metrics(y, past), nan_ok=True)
    features = build_features(data, cut, Config.from_dict(CFG))
    btyd = add_btyd_features(features, h / r.bundle.unit_days, fit_btyd(features))["btyd_value"]
    btyd = btyd.reindex(p.index).fillna(0.0).to_numpy(float)
    assert r.value["btyd"] == pytest.approx(value_metrics(y, btyd), rel=1e-6, nan_ok=True)
    # the predictions hold what was scored: recomputing from them gives the reported figures (they held
    # NaN for accounts without a history, which the metrics read as 0 and 1; a data-science audit)
    assert not p[["btyd_value", "btyd_p_zero"]].isna().any().any()
    assert r.value["btyd"] == pytest.approx(value_metrics(y, p["btyd_value"].to_numpy(float)), nan_ok=True)
    assert r.churn["btyd"] == pytest.approx(
        churn_metrics(p["churned"].to_numpy(int), p["btyd_p_zero"].to_numpy(float)), nan_ok=True
    )
    assert r.value["btyd"]["gini"] != pytest.approx(r.value["kamml"]["gini"], abs=1e-6)


def test_snapshots_a_day_apart_are_warned_of(result, caplog, monkeypatch):
    """A 1-day step let the held-out snapshot repeat the training rows (kamml then lost to BTYD)."""
    data, _ = result
    cfg = Config.from_dict({**CFG, "time": {"horizon_days": 90, "snapshots": 2, "step_days": 1}})
    monkeypatch.setattr(
        "kamml.evaluation.backtest.ModelBundle.fit", lambda *args, **kwargs: SimpleNamespace(influence=None)
    )
    with caplog.at_level("WARNING", logger="kamml.evaluation.backtest"):
        train_bundle(data, cfg, data.end.normalize())
    assert "time.step_days 1: snapshots this close" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kamml.evaluation.backtest"):
        train_bundle(data, Config.from_dict(CFG), data.end.normalize())  # 60 days apart: no warning
    assert "snapshots this close" not in caplog.text


@pytest.mark.parametrize("limit", [None, 200])
def test_the_deployed_training_reuses_the_backtests_snapshots_and_equals_a_fresh_one(world, limit):
    """As `kamml.jobs.train` does: backtest at end - H, then train at end on the snapshots it kept.

    Three snapshots 45 days apart with H = 90: the deployed model's latest snapshot is the backtest's
    test cutoff (its features and labels), its oldest is the backtest's latest training snapshot, and
    its later season snapshot (a year before its latest) is the backtest's earlier one.
    """
    from kamml.features.snapshots import SnapshotCache

    models = {**CFG["models"], "max_training_accounts": limit}
    cfg = Config.from_dict(
        {**CFG, "time": {"horizon_days": 90, "snapshots": 3, "step_days": 45}, "models": models}
    )
    data = load_data({"transactions": world.transactions, "accounts": world.accounts}, cfg)
    end = data.end.normalize()
    snapshots = SnapshotCache(limit)
    snapshots.want(snapshot_plan(cfg, end))
    backtest(data, cfg, end - pd.Timedelta(days=90), snapshots=snapshots)
    snapshots.want(())
    assert len(snapshots) == 3
    bundle, train = train_bundle(data, cfg, end, snapshots=snapshots)
    assert snapshots.reused == 3
    assert len(snapshots) == 0
    fresh_bundle, fresh = train_bundle(data, cfg, end)
    pd.testing.assert_frame_equal(train, fresh)
    assert train.attrs == fresh.attrs
    features = build_features(data, end, cfg)
    pd.testing.assert_frame_equal(bundle.predict(features), fresh_bundle.predict(features))


@pytest.fixture(scope="module")
def long_world():
    return synthetic.generate(300, seed=4, years=4.0, start="2021-06-01")


@pytest.mark.parametrize(
    ("time", "reused"),
    [
        # whole weeks: the backtest's training snapshot at end - 364 is the deployed model's season date,
        # which it builds rfm-only, so the full one must not be kept for it (a review found it held);
        # kept: the test cutoff, end - 364 and end - 455 (full), end - 546 (the season's, rfm-only)
        ({"horizon_days": 182, "snapshots": 4, "step_days": 91}, 4),
        # no season snapshots at a year's window; kept: the test cutoff
        ({"horizon_days": 364, "snapshots": 2, "step_days": 182}, 1),
        # steps that do not divide H; kept: the test cutoff and one season snapshot (end - 484)
        ({"horizon_days": 120, "snapshots": 3, "step_days": 70}, 2),
    ],
)
def test_a_job_keeps_no_snapshot_the_deployed_training_does_not_take(long_world, time, reused):
    from kamml.features.snapshots import SnapshotCache

    cfg = Config.from_dict({**CFG, "time": time})
    data = load_data({"transactions": long_world.transactions, "accounts": long_world.accounts}, cfg)
    end = data.end.normalize()
    snapshots = SnapshotCache()
    snapshots.want(snapshot_plan(cfg, end))
    backtest(data, cfg, end - pd.Timedelta(days=time["horizon_days"]), snapshots=snapshots)
    snapshots.want(())
    assert len(snapshots) == reused
    _, train = train_bundle(data, cfg, end, snapshots=snapshots)
    assert snapshots.reused == reused
    assert len(snapshots) == 0
    pd.testing.assert_frame_equal(train, train_bundle(data, cfg, end)[1])


def test_without_gamma_gamma_the_btyd_value_baseline_is_not_scored_as_a_forecast_of_zero(world):
    """Fewer than 10 repeat buyers before the cutoff: Gamma-Gamma is skipped and BTYD has no value.

    Its missing values were filled with 0 and scored as a forecast of nothing (Gini 0, aggregate error
    -1), beside kamml as if it were BTYD's; the JSON also lost the p, q and gamma keys of DESIGN §10.
    """
    end, cut, transactions = _five_repeat_buyers(world)
    clv = {**FAST, "offset_feature": None}  # the value model needs Gamma-Gamma otherwise
    cfg = Config.from_dict({**CFG, "models": {**CFG["models"], "clv": clv}, "data": {"end": str(end.date())}})
    r = backtest(load_data({"transactions": transactions}, cfg), cfg, cut)
    assert r.bundle.btyd.gamma_gamma is None
    assert set(r.value["btyd"]) == set(r.value["kamml"])
    assert all(math.isnan(v) for v in r.value["btyd"].values())
    assert not math.isnan(r.value["last_period"]["gini"])
    payload = json.loads(json_text(r.to_dict()))
    assert {"p", "q", "gamma"} <= set(payload["btyd_params"])
    assert payload["btyd_params"]["gamma"] is None
    assert payload["value"]["btyd"]["gini"] is None
    assert "Gamma-Gamma" in payload["protocol"]["btyd_value_note"]
    history = r.predictions["btyd_p_zero"] < 1
    assert r.predictions.loc[history, "btyd_value"].isna().all()
    assert (r.predictions.loc[~history, "btyd_value"] == 0).all()
    assert "btyd" not in r.behind().get("value", {}).get("gini", [])


@pytest.mark.parametrize("days_before", [0, 400])
def test_a_cutoff_before_the_data_names_the_datas_span(result, days_before):
    """A cutoff on or before the first purchase's day is outside the data: the error said that training
    snapshots a year or two before it held no purchase history, naming neither the cutoff nor the data."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    cut = first - pd.Timedelta(days=days_before)
    last = (pd.Timestamp(data.end) - pd.Timedelta(days=1)).date()
    with pytest.raises(
        ConfigError, match=rf"cutoff {cut.date()} is .*first purchase.*{first.date()} to {last}"
    ):
        backtest(data, Config.from_dict(CFG), cut)


def test_a_default_cutoff_before_the_data_names_the_horizon_not_a_later_cutoff(result):
    """With no cutoff given (and in kamml train and run), the test cutoff is the data end minus the
    horizon: on two years of data a two-year horizon put it before the first purchase, and the error
    advised a later --cutoff, which only moves the label window past the data end. It now says the
    horizon is longer than the data allow."""
    data, _ = result
    first = pd.Timestamp(data.tables["transactions"].ts.min().to_pandas()).normalize()
    days = (pd.Timestamp(data.end).normalize() - first).days  # the cutoff on the first purchase's day
    cfg = Config.from_dict({**CFG, "time": {**CFG["time"], "horizon_days": days}})
    latest = pd.Timestamp(data.end).normalize() - pd.Timedelta(days=days)
    for cutoff in (None, latest):  # kamml train and run give the latest cutoff explicitly
        with pytest.raises(
            ConfigError, match=rf"time\.horizon_days \({days} days\).*shorten time\.horizon_days"
        ) as exc:
            backtest(data, cfg, cutoff)
        assert "later --cutoff" not in str(exc.value)


def test_the_printed_table_says_n_a_and_why_where_btyd_has_no_value_forecast(few_repeaters):
    """`kamml backtest` printed NaN in BTYD's value row and did not say why (the JSON's note was unread)."""
    path, config = few_repeaters
    cfg = Config.from_dict(config)
    r = backtest(load_data(path, cfg), cfg)
    note = r.protocol["btyd_value_note"]
    text = r.to_text()
    assert "nan" not in text.lower()
    value = text.split("\n\nchurn")[0]
    btyd_row = next(line for line in value.splitlines() if line.startswith("btyd "))
    assert btyd_row.split()[1:] == ["n/a"] * len(TEXT_COLUMNS["value"])
    assert text.count(note) == 1
    assert "btyd" not in value.split("\n")[-2]  # the verdict: a missing figure beats nothing


def test_the_text_writes_the_rmse_in_any_unit_of_the_amounts():
    """RMSE is in the amounts' unit: in amounts x1e-9 every model's read "0.0000" (others keep 4 places)."""
    value = {"kamml": {"gini": 0.9, "rmse": 3.21e-7}, "btyd": {"gini": 0.8, "rmse": 4.56e-7}}
    for metrics in value.values():
        for column in ("spearman", "top10_capture", "decile_mape", "decile_wape", "aggregate_error"):
            metrics[column] = 0.5
    text = _hand_result(value, {}, {}).to_text()
    assert "3.21e-07" in text
    assert "4.56e-07" in text
    assert "0.9000" in text  # unitless figures as before
    value["kamml"]["rmse"], value["btyd"]["rmse"] = 3.2e9, 4.5e9
    text = _hand_result(value, {}, {}).to_text()
    assert "3.2e+09" in text
    assert "4.5e+09" in text
    assert "a baseline does better on" not in text


def test_an_infinite_metric_is_null_in_the_json_with_its_sign_under_non_finite():
    """The printed table read inf where the JSON had null, with nothing to tell it from an undefined
    (NaN, printed n/a) figure."""
    base = dict.fromkeys(TEXT_COLUMNS["value"], 0.5)
    value = {
        "kamml": {**base, "decile_mape": math.inf, "aggregate_error": math.nan},
        "btyd": {**base, "aggregate_error": -math.inf},
    }
    r = _hand_result(value, {"kamml": {"roc_auc": 0.8, "pr_auc": 0.7, "brier": 0.1}}, {})
    assert "inf" in r.to_text()
    payload = json.loads(json_text(r.to_dict()))
    assert payload["value"]["kamml"]["decile_mape"] is None
    assert payload["value"]["kamml"]["aggregate_error"] is None
    assert payload["non_finite"] == {
        "value": {"kamml": {"decile_mape": "inf"}, "btyd": {"aggregate_error": "-inf"}}
    }
    finite = _hand_result({"kamml": base}, {}, {}).to_dict()
    assert "non_finite" not in finite


def test_the_table_of_a_result_without_any_figure_has_its_index_and_no_rows():
    """`table()` raised KeyError "None of ['task', 'model'] are in the columns" when no task had a model."""
    table = _hand_result({}, {}, {}).table()
    assert table.empty
    assert list(table.index.names) == ["task", "model"]


def test_a_figure_read_back_from_the_json_as_null_is_a_missing_figure():
    """The JSON writes an undefined metric as null (`kamml.io.json_text`); read back into a result, None
    raised "must be real number, not NoneType" in behind() and to_text() where NaN is "n/a"."""
    base = dict.fromkeys(TEXT_COLUMNS["value"], 0.5)
    saved = json.loads(json_text({"kamml": {**base, "gini": math.nan}, "btyd": {**base, "rmse": math.nan}}))
    assert saved["kamml"]["gini"] is None
    r = _hand_result(saved, {}, {})
    assert r.behind() == {"value": {"gini": ["btyd"]}}  # kamml's missing figure loses; btyd's beats nothing
    kamml_row = next(line for line in r.to_text().splitlines() if line.startswith("kamml"))
    assert kamml_row.split()[1] == "n/a"


def test_an_aware_end_plans_the_season_snapshots_at_utc_midnights_as_the_training_ones():
    """`training_cutoffs` reads an aware end in UTC; the season's cutoffs read it in its own zone, so a
    New York end gave a season snapshot at New York's midnight (05:00 UTC), a time of day the training
    frame refuses, beside training snapshots at UTC midnights."""
    cfg = Config.from_dict({**CFG, "time": {"horizon_days": 90, "snapshots": 2, "step_days": 45}})
    naive = snapshot_plan(cfg, pd.Timestamp("2025-07-01"))
    aware = snapshot_plan(cfg, pd.Timestamp("2025-07-01 01:00", tz="Europe/Berlin"))  # 2025-06-30 23:00 UTC
    shifted = [c + pd.Timedelta(days=1) for c, _ in aware]
    assert [c for c, _ in naive] == shifted
    assert all(c.tzinfo is None and c == c.normalize() for c, _ in aware)
