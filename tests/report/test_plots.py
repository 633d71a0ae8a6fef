import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from kamml.allocation.allocate import allocate
from kamml.config import AllocationConfig, Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import DataError
from kamml.evaluation.backtest import backtest
from kamml.report.plots import (
    backtest_frame,
    backtest_plots,
    feature_importance,
    feature_label,
    gains_curve,
    no_owner_label,
    owner_labels,
    plan_by,
    plot_budget_curve,
    plot_churn_calibration,
    plot_decile_calibration,
    plot_feature_importance,
    plot_gains,
    plot_hours_per_rep,
    plot_tier_mix,
    tier_order,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = {"n_estimators": 40, "early_stopping_rounds": 10}


def curve(feasible_from=0):
    fraction = np.round(np.arange(1, 21) * 0.1, 1)
    hours = fraction * 500.0
    gain = 1e5 * (1 - np.exp(-hours / 300.0))
    price = 1e5 / 300.0 * np.exp(-hours / 300.0)
    gain[:feasible_from] = np.nan
    price[:feasible_from] = np.nan
    return pd.DataFrame({"fraction": fraction, "hours": hours, "total_gain": gain, "team_price": price})


def assert_png(path, min_height=200, min_width=300):
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.ndim == 3
    assert image.shape[0] > min_height
    assert image.shape[1] > min_width
    assert image.std() > 0.05  # not a blank canvas
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def predictions(n=400, seed=0):
    """Labels, scores and baselines, concatenated as a backtest does."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(6.0, 1.2, n)
    value = np.where(rng.random(n) < 0.6, size * rng.gamma(2.0, 0.5, n), 0.0)
    referral = np.where(rng.random(n) < 0.1, rng.gamma(2.0, 300.0, n), 0.0)
    labels = pd.DataFrame({"value": value, "churned": (value == 0).astype(int), "referral_value": referral})
    scores = pd.DataFrame(
        {
            "clv": size * 0.9,
            "p_churn": np.clip(0.4 + rng.normal(0, 0.2, n), 0.01, 0.99),
            "predicted_referral_value": referral * 0.5 + rng.gamma(1.0, 50.0, n),
        }
    )
    no_history = rng.random(n) < 0.05  # no purchase before the cutoff: no BTYD figure (older backtests)
    baselines = pd.DataFrame(
        {
            "btyd_value": np.where(no_history, np.nan, size * rng.uniform(0.5, 1.5, n)),
            "btyd_p_zero": np.where(no_history, np.nan, rng.uniform(0, 1, n)),
            "past_value": size * rng.gamma(1.0, 1.0, n),
            "past_referral_value": rng.gamma(0.5, 100.0, n),
        }
    )
    return pd.concat([labels, scores, baselines], axis=1)


def score_table(n=200, seed=1, owners=4):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "account_id": np.arange(1, n + 1),
            "clv": rng.lognormal(7.0, 1.0, n),
            "p_churn": rng.uniform(0.0, 1.0, n),
            "referral_value": np.where(rng.random(n) < 0.1, rng.gamma(2.0, 500.0, n), 0.0),
            "p_alive": rng.uniform(0.0, 1.0, n),
        }
    )
    if owners:
        frame["owner"] = [f"rep_{i % owners:02d}" for i in range(n)]
    return frame


# ------------------------------------------------------------------------------- budget curve


def test_writes_a_png_without_touching_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    path = plot_budget_curve(curve(feasible_from=2), tmp_path / "plots" / "budget.png")
    assert path == tmp_path / "plots" / "budget.png"
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["budget.png"]  # no temp file left
    assert matplotlib.get_backend() == backend
    assert b"http" not in path.read_bytes()  # no matplotlib web address in the PNG's text chunks


def test_the_hours_axis_names_the_plans_horizon():
    """It read "team hours in the period" beside the report's effort line "per 3-month period"."""
    from kamml.report.plots import budget_curve_figure

    assert budget_curve_figure(curve(), horizon_days=30).axes[0].get_xlabel() == (
        "team hours over the 30-day horizon"
    )
    assert budget_curve_figure(curve()).axes[0].get_xlabel() == "team hours in the period"  # not known


def test_the_curve_without_fraction_and_with_a_title(tmp_path):
    path = plot_budget_curve(curve().drop(columns="fraction"), tmp_path / "b.png", title="Team of 12")
    assert path.stat().st_size > 1000


def test_a_curve_of_zero_hours_plots_and_small_gains_keep_their_digits(tmp_path):
    """--hours 0 drew a negative hours axis and gain ticks that all read 0."""
    from kamml.report.plots import _amount

    zero = pd.DataFrame({"fraction": [1.0, 2.0], "hours": [0.0, 0.0], "total_gain": [0.0, 0.0]}).assign(
        team_price=0.0
    )
    assert_png(plot_budget_curve(zero, tmp_path / "zero.png"))
    assert [_amount(v) for v in (0.0, 0.02, 0.25, 9.5, 12_345.6)] == ["0", "0.02", "0.25", "9.5", "12,346"]


def test_bad_inputs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="lacks columns"):
        plot_budget_curve(curve().drop(columns="team_price"), tmp_path / "b.png")
    with pytest.raises(DataError, match="no feasible budget"):
        plot_budget_curve(curve(feasible_from=20), tmp_path / "b.png")
    with pytest.raises(DataError, match=r"\.png"):
        plot_budget_curve(curve(), tmp_path / "b.pdf")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- gains


def test_gains_curve_counts_ties_at_their_expectation():
    x, y = gains_curve([5.0, 0.0, 5.0, 0.0], [4.0, 3.0, 2.0, 1.0])
    assert x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert y.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    # a constant score is one tied group: the random diagonal, whatever the row order
    x, y = gains_curve([9.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    assert x.tolist() == [0.0, 1.0]
    assert y.tolist() == [0.0, 1.0]


def test_gains_curve_of_the_oracle_dominates_and_long_curves_are_resampled():
    rng = np.random.default_rng(2)
    actual = rng.gamma(0.5, 100.0, 10_000)
    score = actual + rng.normal(0, 50.0, actual.size)
    ox, oy = gains_curve(actual, actual, points=501)
    x, y = gains_curve(actual, score, points=501)
    assert ox.size == x.size == 501
    assert np.all(np.diff(oy) >= -1e-12)
    assert np.all(oy >= y - 1e-12)
    assert oy[-1] == pytest.approx(1.0)
    assert y[50] > 0.1  # better than random at 10 %


def test_gains_curve_refuses_what_it_cannot_draw():
    with pytest.raises(DataError, match="sum to 0"):
        gains_curve([0.0, 0.0], [1.0, 2.0])
    with pytest.raises(DataError, match="missing or infinite"):
        gains_curve([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(DataError, match="3 values"):
        gains_curve([1.0, 2.0], [1.0, 2.0, 3.0])


def test_plot_gains_draws_kamml_beside_baselines(tmp_path):
    frame = backtest_frame(predictions())
    models = {"kamml": "clv", "BTYD": "btyd_value", "last period": "past_value"}
    path = plot_gains(frame, tmp_path / "gains.png", actual="value", models=models)
    assert_png(path, min_width=800)


def test_backtest_frame_reads_the_label_and_the_score_and_fills_gaps(tmp_path):
    raw = predictions()
    frame = backtest_frame(raw)
    np.testing.assert_array_equal(frame["referral_value"], raw.iloc[:, 2])
    np.testing.assert_array_equal(frame["predicted_referral_value"], raw.iloc[:, 5])
    assert frame.notna().all().all()
    assert (frame["btyd_p_zero"][raw["btyd_p_zero"].isna()] == 1.0).all()
    assert (frame["btyd_value"][raw["btyd_value"].isna()] == 0.0).all()

    kwargs = {"actual": "referral_value", "title": "referrals"}
    direct = plot_gains(raw, tmp_path / "raw.png", models={"kamml": "predicted_referral_value"}, **kwargs)
    framed = plot_gains(frame, tmp_path / "ren.png", models={"kamml": "predicted_referral_value"}, **kwargs)
    self_ranked = plot_gains(frame, tmp_path / "self.png", models={"kamml": "referral_value"}, **kwargs)
    assert direct.read_bytes() == framed.read_bytes()
    assert direct.read_bytes() != self_ranked.read_bytes()


def test_plot_gains_names_a_missing_column(tmp_path):
    with pytest.raises(DataError, match="'nope'"):
        plot_gains(predictions(), tmp_path / "g.png", models={"kamml": "nope"})
    with pytest.raises(DataError, match="no models"):
        plot_gains(predictions(), tmp_path / "g.png", models={})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- calibration


def test_decile_calibration_one_panel_per_model(tmp_path):
    frame = backtest_frame(predictions())
    one = plot_decile_calibration(frame["value"], {"kamml": frame["clv"]}, tmp_path / "one.png")
    two = plot_decile_calibration(
        frame["value"].to_numpy(),
        {"kamml": frame["clv"].to_numpy(), "BTYD": frame["btyd_value"].tolist()},
        tmp_path / "two.png",
    )
    assert_png(one)
    assert_png(two)
    assert mpimg.imread(two).shape[1] > 1.5 * mpimg.imread(one).shape[1]


def test_decile_calibration_with_fewer_than_ten_accounts(tmp_path):
    path = plot_decile_calibration([5.0, 0.0, 1.0], {"kamml": [4.0, 1.0, 0.5]}, tmp_path / "d.png")
    assert_png(path)


def test_decile_calibration_refuses_unequal_lengths(tmp_path):
    with pytest.raises(DataError, match="kamml has 2 values"):
        plot_decile_calibration([1.0, 2.0, 3.0], {"kamml": [1.0, 2.0]}, tmp_path / "d.png")


def test_churn_calibration(tmp_path):
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, 2000)
    churned = (rng.uniform(0, 1, p.size) < p).astype(int)
    path = plot_churn_calibration(
        churned, {"kamml": p, "BG/NBD": np.clip(p + 0.2, 0, 1)}, tmp_path / "c.png", bins=8
    )
    assert_png(path)
    uniform = plot_churn_calibration(churned, {"kamml": p}, tmp_path / "u.png", strategy="uniform")
    assert_png(uniform)


def test_churn_calibration_refuses_bad_outcomes_and_probabilities(tmp_path):
    with pytest.raises(DataError, match="0 or 1"):
        plot_churn_calibration([0, 2], {"kamml": [0.1, 0.2]}, tmp_path / "c.png")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        plot_churn_calibration([0, 1], {"kamml": [0.1, 1.2]}, tmp_path / "c.png")


# ------------------------------------------------------------------------------- importance


def test_feature_importance_shows_the_top_features(tmp_path):
    importance = pd.Series(np.arange(30, 0, -1, dtype=float), index=[f"f{i}" for i in range(30)], name="clv")
    short = plot_feature_importance(importance, tmp_path / "short.png", top=5)
    tall = plot_feature_importance(importance, tmp_path / "tall.png", top=25)
    assert_png(short, min_height=100)
    assert_png(tall)
    assert mpimg.imread(tall).shape[0] > 2 * mpimg.imread(short).shape[0]
    zero = plot_feature_importance(pd.Series([0.0, 0.0], index=["a", "b"]), tmp_path / "zero.png")
    assert zero.is_file()


def test_feature_importance_refuses_negative_or_empty(tmp_path):
    with pytest.raises(DataError, match="negative"):
        plot_feature_importance(pd.Series([1.0, -1.0], index=["a", "b"]), tmp_path / "f.png")
    with pytest.raises(DataError, match="empty"):
        plot_feature_importance(pd.Series([], dtype=float), tmp_path / "f.png")
    with pytest.raises(DataError, match="top"):
        plot_feature_importance(pd.Series([1.0], index=["a"]), tmp_path / "f.png", top=0)


# ------------------------------------------------------------------------------- allocation


def test_tier_mix_of_a_real_allocation(tmp_path):
    table = allocate(score_table(), hours=300.0, config=AllocationConfig(floor_hours=0.5))
    path = plot_tier_mix(table, tmp_path / "tiers.png")
    assert_png(path, min_width=700)
    without_gain = plot_tier_mix(table.drop(columns=["expected_gain", "rank"]), tmp_path / "t2.png")
    assert mpimg.imread(without_gain).shape[1] < mpimg.imread(path).shape[1]


def test_tiers_read_best_first_as_configured_when_they_do_not_follow_the_rank():
    """With tier_by clv, ranks go by expected gain: ordering tiers by their best rank mixed them up."""
    table = allocate(score_table(), hours=300.0, config=AllocationConfig(floor_hours=0.5, tier_by="clv"))
    tiers = table["tier"].astype(str)
    assert table.attrs["allocation"]["tiers"] == ["strategic", "key", "maintain", "nurture"]
    present = [t for t in ["strategic", "key", "maintain", "nurture"] if t in set(tiers)]
    assert tier_order(table, tiers) == present
    unnamed = table.copy()
    unnamed.attrs = {}  # a table read from CSV: the best rank orders them, as before
    best = table.groupby("tier")["rank"].min().sort_values()
    assert tier_order(unnamed, tiers) == [str(t) for t in best.index]


def test_tier_mix_needs_tiers_and_hours(tmp_path):
    table = allocate(score_table(), hours=300.0)
    with pytest.raises(DataError, match="tier"):
        plot_tier_mix(table.drop(columns="tier"), tmp_path / "t.png")
    with pytest.raises(DataError, match="empty"):
        plot_tier_mix(table.iloc[:0], tmp_path / "t.png")


def test_hours_per_rep(tmp_path):
    table = allocate(score_table(owners=4), hours=300.0)
    path = plot_hours_per_rep(table, tmp_path / "reps.png")
    assert path == tmp_path / "reps.png"
    assert_png(path, min_height=150)
    # some accounts without owner: drawn as their own bar
    partly = table.assign(owner=table["owner"].where(table["rank"] % 3 != 0))
    assert plot_hours_per_rep(partly, tmp_path / "partly.png") is not None


def test_many_reps_are_collapsed_beyond_top(tmp_path):
    table = allocate(score_table(n=200, owners=40), hours=400.0)
    top = plot_hours_per_rep(table, tmp_path / "top.png", top=5)
    every = plot_hours_per_rep(table, tmp_path / "all.png", top=100)
    assert top is not None
    assert every is not None
    assert mpimg.imread(every).shape[0] > 2 * mpimg.imread(top).shape[0]


def test_plan_by_counts_accounts_served_hours_and_gain_per_key():
    plan = pd.DataFrame(
        {
            "owner": ["a", "b", None, "a"],
            "recommended_hours": [2.0, 0.0, 1.0, 0.0],
            "expected_gain": [10.0, 0.0, 5.0, 1.0],
        }
    )
    reps = plan_by(plan, owner_labels(plan))
    assert list(reps.index) == ["(no owner)", "a", "b"]
    assert reps["accounts"].tolist() == [1.0, 2.0, 1.0]
    assert reps["served"].tolist() == [1.0, 1.0, 0.0]
    assert reps["hours"].tolist() == [1.0, 2.0, 0.0]
    assert reps["gain"].tolist() == [5.0, 11.0, 0.0]


def test_plan_by_leaves_served_unknown_for_a_grouped_row_without_it():
    grouped = pd.DataFrame(
        {"tier": ["x", "x", "y"], "accounts": [3, 2, 4], "recommended_hours": [5.0, 0.0, 1.0]}
    )
    tiers = plan_by(grouped, grouped["tier"])
    assert tiers["accounts"].tolist() == [5.0, 4.0]
    assert tiers["served"].isna().all()  # the rows' hours do not say how many of their accounts have some
    assert "gain" not in tiers.columns
    told = plan_by(grouped.assign(served=[1, 0, 4]), grouped["tier"])
    assert told["served"].tolist() == [1.0, 4.0]


def test_hours_per_rep_is_skipped_without_owners(tmp_path):
    table = allocate(score_table(owners=0), hours=300.0)
    assert table["owner"].isna().all()
    assert plot_hours_per_rep(table, tmp_path / "reps.png") is None
    assert plot_hours_per_rep(table.drop(columns="owner"), tmp_path / "reps.png") is None
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- a real backtest


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    world = synthetic.generate(600, seed=11, years=2.0)
    path = tmp_path_factory.mktemp("world")
    world.write(path)
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )
    return backtest(load_data(path, cfg), cfg)


@pytest.mark.slow
def test_backtest_plots_write_every_png(result, tmp_path):
    paths = backtest_plots(result, tmp_path / "plots")
    expected = {"gains", "decile_calibration", "churn_calibration", "feature_importance"}
    if result.referral:
        expected.add("referral_gains")
    assert set(paths) == expected
    for path in paths.values():
        assert path.parent == tmp_path / "plots"
        assert_png(path)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths.values())


@pytest.mark.slow
def test_feature_importance_of_a_real_bundle(result):
    table = feature_importance(result.bundle)
    expected = ["clv", "churn"] + (["influence"] if result.bundle.influence is not None else [])
    assert list(table.columns) == expected
    assert set(table.index) == set(result.bundle.features)
    assert (table >= 0).all().all()
    assert (table.sum() > 0).all()
    assert table["clv"].is_monotonic_decreasing
    booster = result.bundle.clv.booster_
    gain = dict(zip(booster.feature_name(), booster.feature_importance("gain"), strict=True))
    top = table.index[0]
    assert table.loc[top, "clv"] == pytest.approx(gain[top])


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots save, in order (a spy on `save_figure`, which still writes each one)."""
    import kamml.report.plots as plots

    figures = []
    real = plots.save_figure

    def spy(figure, path):
        figures.append(figure)
        return real(figure, path)

    monkeypatch.setattr(plots, "save_figure", spy)
    return figures


def _texts(figure) -> list:
    from matplotlib.text import Text

    return [t for t in figure.findobj(Text) if t.get_text()]


@pytest.mark.parametrize("name", ["Rep #1 $$", "$50k_$100k", "$100k-$1M"])
def test_dollar_signs_in_names_are_drawn_as_written(tmp_path, name, drawn):
    """matplotlib read text between two '$' as maths: "Rep #1 $$" failed the whole report."""
    table = pd.DataFrame({"owner": [name, "b"], "tier": [name, "x"], "recommended_hours": [1.0, 2.0]})
    assert plot_hours_per_rep(table, tmp_path / "reps.png") is not None
    assert plot_tier_mix(table, tmp_path / "tiers.png") is not None
    importance = pd.Series([2.0, 1.0], index=[f"attr_{name}", "recency"], name="value")
    assert plot_feature_importance(importance, tmp_path / "importance.png") is not None
    assert len(drawn) == 3
    for figure in drawn:  # the name is in each figure as written, and no text of it is read as maths
        named = [t for t in _texts(figure) if name in t.get_text()]
        assert named
        assert not any(t.get_parse_math() for t in named)


def test_small_hours_keep_their_decimals():
    """A 4.5-hour plan's tiers read 2, 0, 1, 1 and its axis 0, 0, 1, 1, 2, 2."""
    from kamml.report.plots import _Thousands, hours_text

    assert [hours_text(v) for v in (2.25, 0.25, 1.5, 4.0, 1234.4)] == ["2.25", "0.25", "1.5", "4", "1,234"]
    assert hours_text(1999.6, exact=True) == "1,999.6"
    assert hours_text(2000.0000000001, exact=True) == "2,000"
    assert _Thousands().format_ticks([0.0, 0.5, 1.0, 1.5]) == ["0.0", "0.5", "1.0", "1.5"]
    assert _Thousands().format_ticks([0.0, 1000.0, 2000.0]) == ["0", "1,000", "2,000"]


def test_a_rep_named_like_the_other_reps_bar_keeps_its_own(tmp_path, drawn):
    table = pd.DataFrame(
        {"owner": ["2 other reps", "a", "b", "c"], "recommended_hours": [9.0, 3.0, 2.0, 1.0], "tier": "x"}
    )
    assert plot_hours_per_rep(table, tmp_path / "reps.png", top=2) is not None
    (figure,) = drawn
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks == ["2 other reps ", "a", "2 other reps"]  # bottom up: the rest (b and c), a, the rep
    totals = sorted(t.get_text() for t in _texts(figure) if " h on " in t.get_text())
    assert totals == ["3 h on 1 account", "3 h on 2 accounts", "9 h on 1 account"]


def test_a_reps_bar_says_how_many_of_its_accounts_get_hours(tmp_path, drawn):
    """A report audit: "160 h, 100 accounts" beside the tables' "Accounts" and "With hours" counts."""
    table = pd.DataFrame(
        {"owner": ["a", "a", "a", "b"], "recommended_hours": [9.0, 3.0, 0.0, 2.0], "tier": "x"}
    )
    assert plot_hours_per_rep(table, tmp_path / "reps.png") is not None
    grouped = pd.DataFrame(  # a plan summarised per tier and rep, without a count of served accounts
        {"owner": ["a", "b"], "tier": "x", "recommended_hours": [12.0, 2.0], "accounts": [3, 1]}
    )
    assert plot_hours_per_rep(grouped, tmp_path / "grouped.png") is not None
    totals = [sorted(t.get_text() for t in _texts(f) if " h on " in t.get_text()) for f in drawn]
    assert totals == [
        ["12 h on 2 of 3 accounts", "2 h on 1 account"],
        ["12 h on 3 accounts", "2 h on 1 account"],
    ]


def test_a_rep_named_no_owner_keeps_its_own_bar(tmp_path, drawn):
    """A rep literally named "(no owner)" was one bar with the accounts without an owner."""
    table = pd.DataFrame(
        {"owner": ["(no owner)", None, "a", None], "recommended_hours": [9.0, 3.0, 2.0, 1.0], "tier": "x"}
    )
    labels = owner_labels(table)
    assert labels.tolist() == [
        "(no owner)",
        "(accounts without an owner)",
        "a",
        "(accounts without an owner)",
    ]
    assert plan_by(table, labels)["hours"].to_dict() == {
        "(accounts without an owner)": 4.0,
        "(no owner)": 9.0,
        "a": 2.0,
    }
    assert plot_hours_per_rep(table, tmp_path / "reps.png") is not None
    (figure,) = drawn
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks == ["a", "(accounts without an owner)", "(no owner)"]  # bottom up
    assert no_owner_label([" (no owner) ", "(accounts without an owner)"]) == "(accounts without an owner) 2"
    assert owner_labels(table.assign(owner=["b", None, "a", None])).tolist()[1] == "(no owner)"


def test_a_reps_bar_reads_its_capacity(tmp_path, drawn):
    """Each bar read the rep's hours, not the capacity they are measured against (the summary's)."""
    table = pd.DataFrame(
        {"owner": [101, 101, 101, 202, None], "recommended_hours": [9.0, 3.0, 0.0, 2.0, 1.0], "tier": "x"}
    )
    table.attrs["allocation"] = {"rep_capacity": {"101": 12.0, "202": 5.0}}
    assert plot_hours_per_rep(table, tmp_path / "reps.png") is not None
    (figure,) = drawn
    totals = sorted(t.get_text() for t in _texts(figure) if " h " in t.get_text())
    assert totals == [
        "1 h on 1 account",  # no owner: no capacity of its own
        "12 of 12 h (at capacity) on 2 of 3 accounts",
        "2 of 5 h on 1 account",
    ]


def test_the_other_reps_bar_has_no_capacity_even_named_like_a_rep(tmp_path, drawn):
    """Beyond `top` the rest is one bar: a rep named like it keeps its capacity, the bar has none."""
    table = pd.DataFrame(
        {"owner": ["2 other reps", "b", "c"], "recommended_hours": [9.0, 2.0, 1.0], "tier": "x"}
    )
    table.attrs["allocation"] = {"rep_capacity": {"2 other reps": 9.0}}
    assert plot_hours_per_rep(table, tmp_path / "reps.png", top=1) is not None
    (figure,) = drawn
    totals = sorted(t.get_text() for t in _texts(figure) if " h " in t.get_text())
    assert totals == ["3 h on 2 accounts", "9 of 9 h (at capacity) on 1 account"]


def test_feature_importance_labels_in_words_and_a_long_title_whole(tmp_path, drawn):
    """A report audit: the title was cut at the figure's edge, and the bars named by column only."""
    importance = pd.Series([3.0, 2.0, 1.0], index=["btyd_value", "overdue_ratio", "spend_90d"])
    title = "What drives the backtest's value model at 2025-07-05, 180-day horizon (gain importance)"
    labels = {"btyd_value": "value expected from the purchase history [btyd_value]"}
    plot_feature_importance(importance, tmp_path / "f.png", title=title, labels=labels)
    (figure,) = drawn
    (ax,) = figure.axes
    heading = figure.get_suptitle()
    assert " ".join(heading.split()) == title  # wrapped onto lines, every word kept
    figure.canvas.draw()
    (shown,) = [t for t in _texts(figure) if t.get_text() == heading]
    box = shown.get_window_extent()
    assert box.x0 >= 0  # inside the canvas
    assert box.x1 <= figure.bbox.width
    ticks = [" ".join(t.get_text().split()) for t in ax.get_yticklabels()]
    assert ticks == ["spend_90d", "overdue_ratio", "value expected from the purchase history [btyd_value]"]


def test_feature_labels_name_the_column_once_in_square_brackets():
    """Attributes' words end in a bracket: the label read "size (account attribute) (attr_size)"."""
    assert feature_label("attr_size") == "size (account attribute) [attr_size]"
    assert feature_label("btyd_value", window_days=180) == (
        "value expected in 180 days, from the purchase history [btyd_value]"
    )
    assert feature_label("recency", unit_days=7).endswith("(weeks) [recency]")
    assert feature_label("no_such_feature") == "no such feature [no_such_feature]"


def test_the_budget_curve_says_where_hours_can_no_longer_be_used(tmp_path, drawn):
    """A report audit: the value of one more hour fell to 0 beyond the reps' capacities, unexplained."""
    from kamml.allocation.allocate import budget_curve

    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {"account_id": range(200), "clv": rng.gamma(1.0, 1000.0, 200), "p_churn": rng.random(200)}
    )
    scores["owner"] = np.where(np.arange(200) % 2 == 0, "a", "b")
    cfg = AllocationConfig(capacity={"a": 20.0, "b": 30.0}, floor_hours=0.0)
    plot_budget_curve(budget_curve(scores, hours=100.0, config=cfg), tmp_path / "c.png")
    texts = [t.get_text() for t in _texts(drawn[-1])]
    # the curve's budgets are 10 % steps of 100 h: 60 h is the first above the reps' 50, and the shade
    # and its words began there, while every budget past 50 h leaves hours unused (its price is 0)
    assert "beyond 50 h not every hour can be used (reps' capacities or account caps)" in texts
    (shade,) = [p for p in drawn[-1].axes[0].patches if p.get_alpha() == 0.08]
    assert shade.get_x() == pytest.approx(50.0)
    assert shade.get_x() + shade.get_width() == pytest.approx(200.0)
    plot_budget_curve(budget_curve(scores, hours=100.0, config=AllocationConfig()), tmp_path / "d.png")
    assert not any("not every hour" in t.get_text() for t in _texts(drawn[-1]))


def _drawn(monkeypatch):
    """Spy on `save_figure`: the figures drawn, each drawn once so its ticks are there."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import kamml.report.plots as plots

    figures = []
    real = plots.save_figure

    def spy(figure, path):
        FigureCanvasAgg(figure).draw()
        figures.append(figure)
        return real(figure, path)

    monkeypatch.setattr(plots, "save_figure", spy)
    return figures


def test_importance_ticks_read_the_percent_they_stand_at(tmp_path, monkeypatch):
    """Ticks every 0.5 % read "0%, 0%, 1%, 2%, 2%" (a report audit: whole percents only)."""
    figures = _drawn(monkeypatch)
    importance = pd.Series(np.r_[4.0, np.full(40, 2.4)], index=[f"f{i}" for i in range(41)])
    plot_feature_importance(importance, tmp_path / "fi.png")
    ax = figures[0].axes[0]
    for tick, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True):
        assert float(label.get_text().rstrip("%")) == pytest.approx(100 * tick)


def test_a_gains_curve_below_zero_is_inside_the_axes(tmp_path, monkeypatch):
    """The axis stopped at the oracle's lowest point, 0: a model ranking refunds first was cut off."""
    figures = _drawn(monkeypatch)
    frame = pd.DataFrame(
        {"value": [-400.0, -300.0, 100, 200, 300, 400, 500], "a": np.arange(7.0), "b": -np.arange(7.0)}
    )
    plot_gains(frame, tmp_path / "g.png", models={"a": "a", "b": "b"})
    bottom = figures[0].axes[0].get_ylim()[0]
    assert bottom <= -0.875


def test_saving_from_threads_leaves_the_maths_setting_as_it_was(tmp_path):
    """save_figure's rc_context is process-wide: threads saving at once restored each other's values
    and left text.parse_math off for the process (a report audit)."""
    import threading

    table = pd.DataFrame(
        {
            "account_id": range(40),
            "rank": range(1, 41),
            "tier": ["a", "b", "c", "d"] * 10,
            "recommended_hours": np.linspace(5, 1, 40),
            "expected_gain": np.linspace(500, 10, 40),
        }
    )

    def work(i):
        for _ in range(10):
            plot_tier_mix(table, tmp_path / f"t{i}.png")

    assert matplotlib.rcParams["text.parse_math"] is True
    for _ in range(4):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert matplotlib.rcParams["text.parse_math"] is True


def test_the_tier_charts_accounts_are_whole(tmp_path, monkeypatch):
    """A small plan's accounts axis read 0.2, 0.4 ... accounts (a report audit)."""
    figures = _drawn(monkeypatch)
    table = pd.DataFrame(
        {"account_id": [1, 2], "rank": [1, 2], "tier": ["key", "nurture"], "recommended_hours": [2.0, 1.0]}
    )
    plot_tier_mix(table, tmp_path / "t.png")
    ticks = figures[0].axes[0].get_yticks()
    assert np.all(ticks == np.round(ticks))


def test_the_tier_charts_title_names_its_panels(tmp_path, monkeypatch):
    """The chart titled "Accounts and hours by tier" drew a third panel, the expected gain (a report
    audit); without gain the title names the two panels it draws."""
    figures = _drawn(monkeypatch)
    table = pd.DataFrame(
        {"account_id": [1, 2], "rank": [1, 2], "tier": ["key", "nurture"], "recommended_hours": [2.0, 1.0]}
    )
    plot_tier_mix(table.assign(expected_gain=[30.0, 5.0]), tmp_path / "g.png")
    plot_tier_mix(table, tmp_path / "t.png")
    titles = [f.get_suptitle() for f in figures]
    assert titles == ["Accounts, hours and expected gain by tier", "Accounts and hours by tier"]


def test_names_in_scripts_the_font_lacks_give_one_log_line_not_a_warning_per_glyph(tmp_path, caplog):
    """A CJK rep name raised one UserWarning per missing glyph on every chart (an error under -W error)."""
    import warnings

    table = pd.DataFrame(
        {
            "account_id": [1, 2, 3],
            "rank": [1, 2, 3],
            "tier": ["a", "b", "a"],
            "recommended_hours": [1.0, 2.0, 3.0],
            "owner": ["王小明", "田中", 'Ann "<b>" & Co'],
        }
    )
    with warnings.catch_warnings(), caplog.at_level("WARNING", logger="kamml.report"):
        warnings.simplefilter("error")
        assert_png(plot_hours_per_rep(table, tmp_path / "reps.png"), min_height=100)
    lines = [r.getMessage() for r in caplog.records if r.name == "kamml.report.plots"]
    if lines:  # none where a font with these glyphs is installed
        assert len(lines) == 1
        assert "王" in lines[0]
        assert "reps.png" in lines[0]


def test_one_rep_beyond_top_is_one_other_rep(tmp_path, drawn):
    """The bar of the reps beyond `top` read "1 other reps"."""
    table = pd.DataFrame({"owner": ["a", "b", "c"], "tier": "x", "recommended_hours": [3.0, 2.0, 1.0]})
    plot_hours_per_rep(table, tmp_path / "reps.png", top=2)
    labels = [t.get_text() for t in drawn[-1].axes[0].get_yticklabels()]
    assert "1 other rep" in labels
    plot_hours_per_rep(table, tmp_path / "reps.png", top=1)
    assert "2 other reps" in [t.get_text() for t in drawn[-1].axes[0].get_yticklabels()]
    many = pd.DataFrame({"owner": [f"r{i}" for i in range(1032)], "tier": "x", "recommended_hours": 1.0})
    plot_hours_per_rep(many, tmp_path / "reps.png", top=30)  # thousands separated, as the accounts are
    assert "1,002 other reps" in [t.get_text() for t in drawn[-1].axes[0].get_yticklabels()]


def test_very_long_names_are_shortened_in_the_charts(tmp_path, drawn):
    """A 300-character rep or tier name collapsed the axes (matplotlib: "constrained_layout not applied")
    and ran across the neighbouring panels and the legend over the axis."""
    import warnings

    table = pd.DataFrame(
        {
            "rank": [1, 2],
            "tier": ["t" * 200, "u"],
            "recommended_hours": [1.0, 2.0],
            "expected_gain": [1.0, 3.0],
            "owner": ["R" * 300, "y"],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_hours_per_rep(table, tmp_path / "reps.png")
        plot_tier_mix(table, tmp_path / "tiers.png")
    reps, tiers = drawn[-2:]
    labels = [t.get_text() for t in reps.axes[0].get_yticklabels()]
    labels += [t.get_text() for t in reps.legends[0].get_texts()]
    labels += [t.get_text() for t in tiers.axes[0].get_xticklabels()]
    assert max(map(len, labels)) <= 40
    assert "R" * 39 + "…" in labels
    assert "y" in labels


def test_decile_errors_that_cannot_be_computed_read_as_a_dash(tmp_path, drawn):
    """With no actual value (a backtest period without purchases) the panel titles read "nan%"."""
    y = np.zeros(50)
    plot_decile_calibration(y, {"kamml": np.linspace(0.0, 5.0, 50)}, tmp_path / "d.png")
    titles = [ax.get_title() for ax in drawn[-1].axes]
    assert not any("nan" in t for t in titles), titles
    assert "decile MAPE –, aggregate error –" in titles[0]


def test_money_on_the_charts_reads_as_the_plan_line_does(tmp_path, monkeypatch):
    """Amounts kept in thousands: the tier bars read 6, 5, 7, 2 and the given budget "gain 20" beside the
    plan line's 20.3; a 1e12-stake plan's price axis read 0.5 ... 3.5 under a lone "1e11"."""
    from kamml.allocation.allocate import budget_curve
    from kamml.allocation.summary import amount

    figures = _drawn(monkeypatch)
    cfg = AllocationConfig(floor_hours=0.5)
    small = score_table(n=30).assign(clv=lambda f: f["clv"] / 1000, referral_value=0.0)
    table = allocate(small, 100.0, cfg, horizon_days=180)
    plot_tier_mix(table, tmp_path / "t.png")
    by_tier = table.groupby("tier")["expected_gain"].sum().reindex(tier_order(table, table["tier"]))
    labels = [t.get_text() for t in figures[-1].axes[2].texts]
    assert labels == [amount(g) for g in by_tier]
    assert amount(by_tier.iloc[0]) != f"{by_tier.iloc[0]:,.0f}"  # the case: gains below 100
    plot_budget_curve(budget_curve(small, 100.0, cfg, horizon_days=180), tmp_path / "c.png")
    total = amount(table.attrs["allocation"]["total_expected_gain"])
    assert f"given: 100 h, gain {total}" in [t.get_text() for t in _texts(figures[-1])]
    big = score_table(n=30).assign(clv=lambda f: f["clv"] * 1e9)
    plot_budget_curve(budget_curve(big, 100.0, cfg, horizon_days=180), tmp_path / "b.png")
    price = figures[-1].axes[1].yaxis
    assert price.get_offset_text().get_text() == ""
    ticks = [t.get_text() for t in price.get_ticklabels() if t.get_text()]
    assert ticks
    assert all("," in t for t in ticks[1:])  # whole amounts with separators


def test_a_budget_curve_without_gain_says_why_and_keeps_its_words_in_the_axes(tmp_path, monkeypatch):
    """Every account without value at stake: the curve blamed "reps' capacities or account caps" for the
    unused hours (there were none), and its "given" words, below a point at 0, lay over the hours' ticks."""
    from kamml.allocation.allocate import budget_curve

    figures = _drawn(monkeypatch)
    lapsed = score_table(n=30).assign(clv=0.0, referral_value=0.0)
    cfg = AllocationConfig(floor_hours=0.5, cap_hours=None)
    plot_budget_curve(budget_curve(lapsed, 100.0, cfg, horizon_days=180), tmp_path / "c.png")
    (figure,) = figures
    ax = figure.axes[0]
    texts = {t.get_text(): t for t in _texts(figure)}
    (note,) = [t for t in texts if "not every hour can be used" in t]
    assert note.endswith("(no account has value at stake)")
    (given,) = [texts[t] for t in texts if t.startswith("given: 100 h")]
    renderer = figure.canvas.get_renderer()
    assert given.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y0
    assert given.get_window_extent(renderer).y0 >= texts[note].get_window_extent(renderer).y1
    plot_budget_curve(budget_curve(score_table(n=30), 100.0, cfg, horizon_days=180), tmp_path / "d.png")
    (given,) = [t for t in _texts(figures[-1]) if t.get_text().startswith("given: 100 h")]
    assert given.xyann == (6, -14)  # a curve with gain keeps its words below the point


@pytest.fixture(scope="module")
def without_btyd_value(few_repeaters):
    """A backtest where Gamma-Gamma is not fitted at the cutoff: BTYD has no value forecast."""
    path, config = few_repeaters
    cfg = Config.from_dict(config)
    return backtest(load_data(path, cfg), cfg)


def test_backtest_frame_keeps_a_btyd_value_missing_for_an_account_with_a_history():
    """Only an account without a history (no P(no purchase) either) reads a BTYD value of 0; all did."""
    raw = predictions()
    lost = raw["btyd_p_zero"].notna() & (np.arange(len(raw)) % 3 == 0)
    raw.loc[lost, "btyd_value"] = np.nan
    frame = backtest_frame(raw)
    assert frame["btyd_value"][lost].isna().all()
    assert (frame["btyd_value"][raw["btyd_p_zero"].isna()] == 0.0).all()
    assert frame.drop(columns="btyd_value").notna().all().all()


def test_the_value_plots_leave_out_btyd_when_it_has_no_value_forecast(without_btyd_value, tmp_path, drawn):
    """Without Gamma-Gamma, BTYD was drawn as a forecast of 0: a gains curve at Gini 0, a calibration
    panel at -100 % beside kamml. It is left out and the title says so; the other models are kept."""
    result = without_btyd_value
    assert result.predictions["btyd_value"].isna().any()
    paths = backtest_plots(result, tmp_path)
    assert {"gains", "decile_calibration", "churn_calibration"} <= set(paths)
    texts = {name: [t.get_text() for t in _texts(f)] for name, f in zip(paths, drawn, strict=True)}
    for key in ("gains", "decile_calibration"):
        assert not [t for t in texts[key] if t.startswith("BG/NBD × Gamma-Gamma")], texts[key]
        assert any("left out: it has no value forecast" in " ".join(t.split()) for t in texts[key])
        assert any(t.startswith("kamml") for t in texts[key])
    assert any(t.startswith("last period") for t in texts["gains"])
    assert "BG/NBD P(no purchase)" in " ".join(texts["churn_calibration"])  # its churn forecast stays


def test_a_one_panel_decile_calibration_keeps_its_whole_title(tmp_path, drawn):
    """One model's panel is 5 inches wide: a backtest's title (cutoff, horizon) was cut at both ends."""
    frame = backtest_frame(predictions())
    title = "Predicted vs actual value by decile at 2024-10-03, 90-day horizon\n(a second line of note)"
    plot_decile_calibration(frame["value"], {"kamml": frame["clv"]}, tmp_path / "one.png", title=title)
    (figure,) = drawn
    (suptitle,) = [t for t in _texts(figure) if t.get_text() == figure.get_suptitle()]
    box = suptitle.get_window_extent(figure.canvas.get_renderer())
    assert box.x0 >= 0
    assert box.x1 <= figure.bbox.width
    assert figure.get_suptitle().split() == title.split()


@pytest.mark.parametrize("unit", [1e-9, 1e-3, 1.0, 1e9])
def test_the_money_charts_read_in_any_unit_of_the_amounts(tmp_path, monkeypatch, unit):
    """In amounts x1e-9 the tiers' gain bars filled 1e-4 of an axis cut at 1 (the hours' least top), and
    the gain and decile axes' ticks all read 0.000 (three decimals at most)."""
    figures = _drawn(monkeypatch)
    table = pd.DataFrame(
        {
            "account_id": [1, 2, 3],
            "rank": [1, 2, 3],
            "tier": ["key", "grow", "nurture"],
            "recommended_hours": [4.0, 2.0, 1.0],
            "expected_gain": [3000.0 * unit, 1200.0 * unit, 150.0 * unit],
        }
    )
    plot_tier_mix(table, tmp_path / "t.png")
    gain = figures[0].axes[2]
    assert gain.get_ylim()[1] == pytest.approx(3000.0 * unit * 1.15)
    labels = [t.get_text() for t in gain.get_yticklabels()]
    assert len(set(labels)) == len(labels), labels  # each tick tells its value
    rng = np.random.default_rng(0)
    y = rng.gamma(0.5, 400.0, 200) * unit
    plot_decile_calibration(y, {"kamml": y * rng.uniform(0.8, 1.2, 200)}, tmp_path / "d.png")
    labels = [t.get_text() for t in figures[1].axes[0].get_yticklabels()]
    assert len(set(labels)) == len(labels), labels


def test_length_and_missing_value_errors_group_counts_from_1000_on():
    """'score has 1233 values but the actual values have 1234' read without separators."""
    y = np.arange(1234, dtype=float)
    with pytest.raises(DataError, match="score has 1,233 values but the actual values have 1,234"):
        gains_curve(y, y[:-1])
    with pytest.raises(DataError, match="score has 1,234 missing or infinite values"):
        gains_curve(y, np.full(1234, np.nan))


def test_feature_names_and_titles_with_lone_surrogates_are_drawn(tmp_path):
    """A feature or title holding a lone surrogate failed with matplotlib's raw TypeError."""
    importance = pd.Series([3.0, 1.0], index=["spend \udcff", "recency"])
    path = plot_feature_importance(importance, tmp_path / "f.png", title="drivers \ud800")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
