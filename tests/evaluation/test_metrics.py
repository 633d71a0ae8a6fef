from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from kamml.evaluation.metrics import (
    UndefinedMetricWarning,
    aggregate_error,
    calibration_table,
    churn_metrics,
    decile_mape,
    decile_table,
    decile_wape,
    mae,
    normalized_gini,
    rmse,
    spearman,
    top_capture,
    value_metrics,
)


def naive_gini(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle-style normalised Gini with a plain stable sort (no tie handling)."""

    def gini(a: np.ndarray, p: np.ndarray) -> float:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(a[order]) / a.sum()
        n = len(a)
        return cum.sum() / n - (n + 1) / (2 * n)

    return gini(y_true, y_pred) / gini(y_true, y_true)


# ---- normalised Gini ------------------------------------------------------------------------------


def test_gini_perfect_reversed_and_constant() -> None:
    y = np.array([1.0, 0, 0, 0])
    assert normalized_gini(y, [4, 3, 2, 1]) == pytest.approx(1.0)
    assert normalized_gini(y, [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert normalized_gini(y, [5, 5, 5, 5]) == pytest.approx(0.0)


def test_gini_hand_computed_with_ties() -> None:
    # top tie group {1, 0}: the two orders give normalised Gini 1 and 1/3, so the expectation is 2/3
    assert normalized_gini([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(2 / 3)
    # a non-binary hand example: sorted actuals [3, 1, 2] -> cumulative [3, 4, 6] / 6
    # gini = (0.5 + 0.6667 + 1) / 3 - 4 / 6 = 0.05556; perfect [3, 2, 1] -> (0.5 + 0.8333 + 1) / 3 - 2/3
    assert normalized_gini([3, 1, 2], [9, 8, 7]) == pytest.approx((13 / 18 - 2 / 3) / (7 / 9 - 2 / 3))


def test_gini_ties_equal_the_average_over_all_tie_breaks() -> None:
    y = np.array([5.0, 0, 2, 0, 1, 7])
    p = np.array([3.0, 3, 1, 1, 1, 0])
    groups = [np.flatnonzero(p == v) for v in (3.0, 1.0, 0.0)]
    values = []
    for perm_a in itertools.permutations(groups[0]):
        for perm_b in itertools.permutations(groups[1]):
            order = np.r_[list(perm_a), list(perm_b), groups[2]]
            # a strictly decreasing forecast that encodes this tie-break
            broken = np.empty(len(y))
            broken[order] = np.arange(len(y), 0, -1)
            values.append(naive_gini(y, broken))
    assert normalized_gini(y, p) == pytest.approx(np.mean(values))


def test_gini_ignores_row_order() -> None:
    rng = np.random.default_rng(3)
    y = rng.gamma(0.5, 10, 200) * (rng.random(200) < 0.4)
    p = np.round(y + rng.normal(0, 5, 200), -1)  # many ties
    perm = rng.permutation(200)
    assert normalized_gini(y[perm], p[perm]) == pytest.approx(normalized_gini(y, p), abs=1e-12)


def test_gini_of_binary_target_is_2auc_minus_1() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.round(y * 0.3 + rng.random(300), 1)  # ties across classes
    assert normalized_gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1)


def test_gini_is_nan_when_nothing_to_rank() -> None:
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(normalized_gini([0, 0, 0], [1, 2, 3]))
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(normalized_gini([2, 2, 2], [1, 2, 3]))


# ---- other value metrics ---------------------------------------------------------------------------


def test_spearman() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    y, p = [0, 0, 1, 3, 2], [1, 2, 2, 5, 5]
    assert spearman(y, p) == pytest.approx(stats.spearmanr(y, p).statistic)


def test_top_capture_hand_computed() -> None:
    y = [5, 3, 2, 0, 0, 0, 0, 0, 0, 0]
    ranks = list(range(9, -1, -1))
    assert top_capture(y, ranks, 0.1) == pytest.approx(0.5)
    assert top_capture(y, ranks, 0.2) == pytest.approx(0.8)
    assert top_capture(y, ranks[::-1], 0.2) == pytest.approx(0.0)
    # all tied: every account is equally likely in the top 10 %, so 10 % of the value is expected
    assert top_capture(y, [1] * 10, 0.1) == pytest.approx(0.1)
    # 5 accounts, share 0.1: half of the top account counts
    assert top_capture([4, 1, 0, 0, 0], [5, 4, 3, 2, 1], 0.1) == pytest.approx(0.5 * 4 / 5)


def test_top_capture_rejects_bad_share() -> None:
    with pytest.raises(ValueError, match="share"):
        top_capture([1, 2], [1, 2], 0.0)


def test_aggregate_error_rmse_mae() -> None:
    assert aggregate_error([10, 10], [12, 9]) == pytest.approx(0.05)
    assert aggregate_error([10, 10], [5, 5]) == pytest.approx(-0.5)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(aggregate_error([0, 0], [1, 1]))
    assert rmse([0, 0, 3], [0, 4, 3]) == pytest.approx(math.sqrt(16 / 3))
    assert mae([0, 0, 3], [0, 4, 1]) == pytest.approx(2.0)


@pytest.mark.parametrize("size", [1e-200, 1e-100, 1.0, 1e155, 1e200])
def test_rmse_squares_no_error_out_of_range(size: float) -> None:
    """Squaring 1e155 overflowed to inf and 1e-200 underflowed to 0 (an audit helper's finding)."""
    assert rmse([0.0, 0.0, 3 * size], [0.0, 4 * size, 3 * size]) == pytest.approx(size * math.sqrt(16 / 3))
    assert rmse([size, size], [size, size]) == 0.0


def test_unit_free_metrics_do_not_overflow_where_the_sums_would() -> None:
    """Two accounts of 1e308 summed to inf: top-decile capture read 0.0 and the Gini NaN (an audit)."""
    y, p = [1e308, 1e308, 0.0], [3.0, 2.0, 1.0]
    small = [1.0, 1.0, 0.0]
    assert top_capture(y, p, 0.2) == top_capture(small, p, 0.2) == pytest.approx(0.3)
    assert normalized_gini(y, p) == normalized_gini(small, p) == 1.0
    assert decile_mape(y, y) == 0.0
    assert decile_wape(y, [1e308, 0.0, 0.0]) == pytest.approx(0.5)
    assert aggregate_error([1e308, 1e308], [1e308, 0.0]) == -0.5
    assert mae([1e308, 1e308], [-1e308, 0.0]) == pytest.approx(1.5e308)


def test_decile_table_hand_computed() -> None:
    # 20 accounts, 2 per decile; forecast 20..1, actual = 2 * forecast except decile 3 (forecast 16, 15)
    p = np.arange(20, 0, -1, dtype=float)
    y = 2 * p
    y[4:6] = 0.0
    table = decile_table(y, p)
    assert list(table["decile"]) == list(range(1, 11))
    assert list(table["n"]) == [2] * 10
    assert table.loc[0, "predicted_total"] == pytest.approx(39)
    assert table.loc[0, "actual_total"] == pytest.approx(78)
    assert table.loc[0, "ape"] == pytest.approx(0.5)
    assert math.isnan(table.loc[2, "ape"])
    assert table["cumulative_actual_share"].iloc[-1] == pytest.approx(1.0)
    # every decile but the empty one is off by exactly 50 %
    assert decile_mape(y, p) == pytest.approx(0.5)


def test_decile_wape_weighs_deciles_by_what_they_bought() -> None:
    # 20 accounts, two per decile; the bottom decile bought 1 against 10 predicted (900 %), the others
    # are exact: MAPE is dominated by that decile, WAPE counts its 9 against everything bought
    p = np.repeat(np.arange(10, 0, -1, dtype=float) * 10, 2)
    y = p.copy()
    y[-2:] = [1.0, 0.0]
    p[-2:] = [5.0, 5.0]
    assert decile_mape(y, p) == pytest.approx(0.9)
    assert decile_wape(y, p) == pytest.approx(9 / y.sum())
    # a decile that bought nothing is left out of MAPE, not of WAPE
    y[-2:] = 0.0
    assert decile_mape(y, p) == pytest.approx(0.0)
    assert decile_wape(y, p) == pytest.approx(10 / y.sum())
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(decile_wape([0.0] * 10, [1.0] * 10))


def test_decile_table_splits_ties_by_expectation() -> None:
    # 10 accounts all tied: each decile expects a tenth of the actual total
    table = decile_table([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1] * 10)
    assert np.allclose(table["actual_total"], 1.0)
    assert decile_mape([10] + [0] * 9, [1] * 10) == pytest.approx(0.0)


def test_decile_table_with_fewer_than_ten_accounts() -> None:
    table = decile_table([3, 1, 0], [3, 2, 1])
    assert list(table["n"]) == [1, 1, 1]
    assert table["actual_total"].tolist() == [3, 1, 0]


def test_decile_table_cuts_at_rounded_positions() -> None:
    # 15 accounts: cuts at round(1.5 * k) = 0, 2, 3, 4, 6, 8, 9, 10, 12, 14, 15 (halves to even)
    p = np.arange(15, 0, -1, dtype=float)
    table = decile_table(p, p)
    assert table["n"].tolist() == [2, 1, 1, 2, 2, 1, 1, 2, 2, 1]
    assert table["actual_total"].tolist() == [29, 13, 12, 21, 17, 7, 6, 9, 5, 1]


def test_value_metrics_keys_and_perfect_forecast() -> None:
    y = np.array([0, 0, 0, 10, 0, 50, 0, 5, 0, 0, 100, 0], dtype=float)
    out = value_metrics(y, y)
    assert set(out) == {
        "gini",
        "spearman",
        "top10_capture",
        "top20_capture",
        "decile_mape",
        "decile_wape",
        "aggregate_error",
        "rmse",
        "mae",
    }
    assert out["gini"] == pytest.approx(1.0)
    assert out["aggregate_error"] == 0.0
    assert out["rmse"] == 0.0
    assert out["decile_mape"] == pytest.approx(0.0)
    assert out["decile_wape"] == pytest.approx(0.0)
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([1, 2], [1], "has 2 values"),
        ([], [], "at least one"),
        ([1, np.nan], [1, 2], "NaN"),
        ([[1, 2]], [[1, 2]], "1-D"),
    ],
)
def test_bad_inputs_raise(y: list, p: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        value_metrics(y, p)


# ---- churn -----------------------------------------------------------------------------------------


def test_churn_metrics_hand_computed() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    out = churn_metrics(y, p)
    assert out["roc_auc"] == pytest.approx(0.75)
    # precision 1 at recall 0.5, then 2/3 at recall 1
    assert out["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert out["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert out["base_rate"] == 0.5


def test_churn_metrics_one_class_and_bad_input() -> None:
    with pytest.warns(UndefinedMetricWarning):
        out = churn_metrics([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(out["roc_auc"])
    assert math.isnan(out["pr_auc"])
    assert out["brier"] == pytest.approx((0.64 + 0.25 + 0.01) / 3)
    with pytest.raises(ValueError, match="0/1"):
        churn_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        churn_metrics([0, 1], [0.1, 1.2])


def test_calibration_table_uniform() -> None:
    y = [0, 1, 1, 0, 1, 0]
    p = [0.1, 0.9, 0.8, 0.3, 0.55, 0.05]
    table = calibration_table(y, p, bins=10)
    assert list(table["bin"]) == [0, 1, 3, 5, 8, 9]
    assert list(table["n"]) == [1] * 6
    assert table.loc[table["bin"] == 3, "p_low"].item() == pytest.approx(0.3)
    assert table["observed_rate"].tolist() == [0, 0, 0, 1, 1, 1]
    two = calibration_table(y, p, bins=2)
    assert two["n"].tolist() == [3, 3]
    assert two["mean_predicted"].tolist() == pytest.approx([0.15, 0.75])
    assert two["observed_rate"].tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("bins", [0, 2.5, True, "3"])
def test_calibration_table_refuses_bins_that_are_not_a_whole_number(bins) -> None:
    """2.5 bins made a last edge of 1.2, outside the probabilities' range."""
    with pytest.raises(ValueError, match="bins must be a whole number >= 1"):
        calibration_table([0, 1, 1], [0.2, 0.5, 0.9], bins=bins)


def test_calibration_table_quantile() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = calibration_table(y, p, bins=5, strategy="quantile")
    assert isinstance(table, pd.DataFrame)
    assert table["n"].tolist() == [200] * 5
    # outcomes drawn from p: observed rates follow the mean probabilities
    assert np.allclose(table["observed_rate"], table["mean_predicted"], atol=0.08)
    with pytest.raises(ValueError, match="strategy"):
        calibration_table(y, p, strategy="kmeans")  # type: ignore[arg-type]


def _by_account(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.Index([101, 102, 103, 104, 105], name="account_id"), dtype=float)


def test_series_with_the_same_labels_in_another_order_are_paired_by_label() -> None:
    """Positional pairing of a shuffled Series gave a Gini near 0 for a perfect forecast."""
    y = _by_account([5.0, 0.0, 1.0, 0.0, 9.0])
    shuffled = y.iloc[[3, 0, 4, 1, 2]]
    assert normalized_gini(y, shuffled) == pytest.approx(1.0)
    assert value_metrics(y, shuffled) == value_metrics(y, y)
    churned = _by_account([1, 0, 1, 0, 0])
    p = _by_account([0.9, 0.1, 0.8, 0.2, 0.3])
    assert churn_metrics(churned, p.iloc[::-1]) == churn_metrics(churned, p)
    # numpy arrays and Series with identical indexes stay paired by position
    assert normalized_gini(y.to_numpy(), shuffled.to_numpy()) < 1.0
    assert normalized_gini(y, y.to_numpy()[::-1]) < 1.0


@pytest.mark.parametrize(
    ("y_pred", "match"),
    [
        (_by_account([1.0, 2, 3, 4, 5]).iloc[:3], r"2 of y_true's 5 are not in y_pred and 0 of y_pred's 3"),
        (pd.Series([1.0, 2, 3, 4, 5]), r"y_pred a RangeIndex \(0 \.\. 4: row positions, not account ids\)"),
        (pd.Series([1.0, 2, 3, 4, 5], index=[101, 101, 102, 103, 104]), r"y_pred's index repeats 1 labels"),
    ],
)
def test_series_with_other_labels_are_refused_with_the_count(y_pred: pd.Series, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        value_metrics(_by_account([5.0, 0.0, 1.0, 0.0, 9.0]), y_pred)


@pytest.mark.parametrize(("value", "n"), [(0.3, 1001), (2.2, 1001), (0.1, 1001), (19.99, 250)])
def test_gini_of_equal_actuals_is_nan_and_never_outside_one(value, n):
    """A metrics audit: equal actuals read -19.5 or 1.0 (a ratio of two rounding remainders), and one
    account 1e-12 apart read 10.1."""
    rng = np.random.default_rng(n)
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(normalized_gini(np.full(n, value), rng.random(n)))
    nearly = np.full(n, value)
    nearly[3] += 1e-12
    assert -1.0 <= normalized_gini(nearly, rng.random(n)) <= 1.0
    assert normalized_gini(nearly, nearly) == pytest.approx(1.0)


def test_refunds_that_net_to_nothing_are_a_total_of_zero():
    """[0.1, 0.2, -0.3] sums to 5.6e-17: the aggregate error read 2.5e18, and a decile netting to
    -9e-13 set decile MAPE to 6.6e11 (a metrics audit)."""
    nets = [0.1, 0.2, -0.3]
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(aggregate_error(nets, [1.0, 1.0, 1.0]))
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(top_capture(nets, [3.0, 2.0, 1.0]))
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(normalized_gini(nets, [3.0, 2.0, 1.0]))
    actual = np.r_[np.arange(100.0, 127.0), [53.73, 88.12, -141.85]]
    forecast = np.r_[np.arange(127.0, 100.0, -1.0), [3.0, 2.0, 1.0]]
    table = decile_table(actual, forecast)
    assert table["actual_total"].iloc[-1] == 0.0
    assert np.isnan(table["ape"].iloc[-1])
    assert decile_mape(actual, forecast) < 1.0


def test_a_block_of_tied_probabilities_is_a_quantile_bin_of_its_own():
    """The block sat on a repeated quantile edge and joined the next bin: one bin from 0.1 to 0.9
    where scikit-learn gives two (a metrics audit)."""
    table = calibration_table([0] * 7 + [1, 1, 1], [0.1] * 8 + [0.5, 0.9], bins=4, strategy="quantile")
    assert table["n"].tolist() == [8, 2]
    assert table[["p_low", "p_high"]].iloc[0].tolist() == [0.1, 0.1]
    assert table["mean_predicted"].tolist() == pytest.approx([0.1, 0.7])
    top = calibration_table([0, 1, 0, 1, 1, 1], [0.2, 0.4, 0.6, 0.9, 0.9, 0.9], bins=2, strategy="quantile")
    assert top["n"].tolist() == [3, 3]  # a block at the top is its own last bin
    one = calibration_table([0, 1], [0.3, 0.3], bins=5, strategy="quantile")
    assert one["n"].tolist() == [2]


def test_a_tied_blocks_quantile_bin_has_its_probability_for_edges():
    """numpy's float quantile positions fell a few ulps off the 0.68 block (24.999999999999996 for
    25): its bin read [0.6799999999999999, 0.6799999999999999] for six accounts at 0.68."""
    p = [0.25] * 5 + [0.38] * 7 + [0.49] * 6 + [0.65] * 7 + [0.68] * 6
    table = calibration_table([0] * len(p), p, bins=6, strategy="quantile")
    top = table.iloc[-1]
    assert (top["p_low"], top["p_high"], top["n"]) == (0.68, 0.68, 6)
    for _, row in table.iterrows():  # every bin's accounts lie between its edges
        inside = [v for v in p if row["p_low"] <= v <= row["p_high"]]
        assert len(inside) >= row["n"]


def test_the_forecasts_size_changes_neither_the_gini_nor_the_capture():
    """Both inputs were scaled by the larger one's power of two: actuals of 1e-30 beside forecasts of
    1e300 underflowed to 0 (Gini and capture NaN), and forecasts of 1e-300 beside one of 1e308 became a
    tie (Gini -0.75 for -0.5): only the forecast's order counts (a metrics audit)."""
    y = [1e-30, 2e-30, 0.0, 3e-30]
    assert normalized_gini(y, [1e300, 2e300, 3e300, 4e300]) == normalized_gini(y, [1, 2, 3, 4])
    assert normalized_gini(y, [1, 2, 3, 4]) == pytest.approx(0.4)
    assert top_capture(y, [1e300, 2e300, 3e300, 4e300], 0.5) == pytest.approx(0.5)
    assert normalized_gini([0, 1, 2], [1e308, 1e-300, 2e-300]) == pytest.approx(-0.5)
    assert top_capture([0, 1, 2], [1e308, 1e-300, 2e-300], 2 / 3) == pytest.approx(2 / 3)


def test_rmse_and_mae_measure_errors_in_the_errors_unit():
    """An error past the float range (1.5e308 against -1.5e308) made RMSE inf where it is 3e307, and
    MAE in units of the largest value lost a 1e-20 error beside equal values of 1e300 (a metrics audit)."""
    y, p = [1.5e308] + [0.0] * 99, [-1.5e308] + [0.0] * 99
    assert rmse(y, p) == pytest.approx(3e307)
    assert mae(y, p) == pytest.approx(3e306)
    assert mae([1e300, 1e-20], [1e300, 2e-20]) == pytest.approx(5e-21, rel=1e-12)
    assert rmse([1e300, 1e-20], [1e300, 2e-20]) == pytest.approx(1e-20 / math.sqrt(2), rel=1e-12)
    assert mae([0.0], [5e-324]) == rmse([0.0], [5e-324]) == 5e-324


def test_decile_figures_at_the_ends_of_the_float_range():
    """decile_table summed values of 1e308 unscaled: every actual total read 0.0 and the predicted ones
    inf or NaN; decile MAPE dropped an infinite percentage error as if the decile bought nothing and
    read NaN (a metrics audit)."""
    table = decile_table([1e308] * 10, [1e308] * 10)
    for column in ("actual_total", "predicted_total", "actual_mean"):  # differences of cumulative sums
        assert table[column].tolist() == pytest.approx([1e308] * 10, rel=1e-12)
    assert table["ape"].tolist() == pytest.approx([0.0] * 10, abs=1e-12)
    assert table["cumulative_actual_share"].iloc[-1] == pytest.approx(1.0)
    assert decile_mape([1e-20] * 10, [1e300] * 10) == math.inf


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (
            pd.Series(pd.to_timedelta([1, 2], unit="D")),
            [0.0, 0.0],
            r"y_true must be numbers, got durations \(timedelta64\[ns\]\); pass the amounts or probabilities",
        ),
        (
            [1.0, 2.0],
            pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"])),
            r"y_pred must be numbers, got dates \(datetime64\[ns\]\)",
        ),
        (
            [1.0, 2.0],
            pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("UTC")),
            r"y_pred must be numbers, got dates \(datetime64\[ns, UTC\]\)",
        ),
        (
            [1.0, 2.0],
            np.array([1 + 1j, 2]),
            r"y_pred must be real numbers, got complex values \(complex128\)",
        ),
        (
            [np.datetime64("2024-01-01"), np.datetime64("2024-02-01")],
            [0.0, 0.0],
            "y_true must be numbers, got dates",
        ),
        (
            [pd.Period("2024-01", "M"), pd.Period("2024-02", "M")],
            [0.0, 0.0],
            r"y_true must be numbers, got dates \(object\); pass the amounts or probabilities",
        ),
        ([1.0, 2.0], ["a", "b"], "y_pred must be numbers: could not convert"),
    ],
)
def test_inputs_that_are_not_numbers_are_refused_by_name(y, p, match: str) -> None:
    """A timedelta read as nanoseconds (an MAE of 1.3e14), a datetime as nanoseconds since 1970 and a
    complex number as its real part (a metrics audit)."""
    with pytest.raises(ValueError, match=match):
        value_metrics(y, p)


@pytest.mark.parametrize("share", [True, np.True_, "0.1", None, [0.1]])
def test_top_capture_refuses_a_share_that_is_not_a_fraction(share) -> None:
    """True was read as 1.0 (the whole book's capture); a string or None gave Python's TypeError."""
    with pytest.raises(ValueError, match="share must be a number in \\(0, 1\\]"):
        top_capture([1, 2], [1, 2], share)


def test_aggregate_error_is_positive_for_a_forecast_above_a_net_refund_total() -> None:
    """Divided by a negative actual total (refunds outweighing purchases), a forecast above the actual
    total read as an under-forecast: -0.5 for -5 predicted against -10 (an evaluation audit)."""
    assert aggregate_error([-10.0, 0.0], [-5.0, 0.0]) == pytest.approx(0.5)
    assert aggregate_error([-10.0, 0.0], [-15.0, 0.0]) == pytest.approx(-0.5)
    assert aggregate_error([10.0, 0.0], [5.0, 0.0]) == pytest.approx(-0.5)  # unchanged for sales


@pytest.mark.parametrize(
    ("metric", "y", "p", "match"),
    [
        (normalized_gini, [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], r"gini is NaN: y_true's 3 values are all equal"),
        (normalized_gini, [5.0, -5.0], [1.0, 2.0], r"gini is NaN: y_true's values sum to 0"),
        (spearman, [1.0, 2.0, 3.0], [4.0, 4.0, 4.0], r"spearman is NaN: y_pred's 3 values are all equal"),
        (spearman, [1.0], [4.0], r"spearman is NaN: it needs at least 2 accounts, got 1"),
        (top_capture, [0.0, 0.0], [1.0, 2.0], r"top_capture is NaN: y_true's values sum to 0"),
        (aggregate_error, [1.0, -1.0], [1.0, 2.0], r"aggregate_error is NaN: y_true's values sum to 0"),
        (decile_mape, [0.0] * 10, [1.0] * 10, r"decile_mape is NaN: every decile's actual total is 0"),
        (decile_wape, [0.0] * 10, [1.0] * 10, r"decile_wape is NaN: y_true's values sum to 0"),
    ],
)
def test_a_nan_metric_warns_naming_the_argument_and_the_rule(metric, y, p, match) -> None:
    """A NaN came back without a word where scipy and scikit-learn warn: a user averaging folds read
    NaN with nothing saying which input made it (an evaluation audit)."""
    with pytest.warns(UndefinedMetricWarning, match=match):
        assert math.isnan(metric(y, p))


@pytest.mark.parametrize(("y", "outcome"), [([1, 1, 1], r"1 \(churned\)"), ([0, 0, 0], r"0 \(not churned\)")])
def test_churn_auc_of_one_outcome_warns(y, outcome) -> None:
    """ROC and PR AUC are NaN when every account has one outcome; it said nothing (an evaluation audit)."""
    match = rf"roc_auc and pr_auc are NaN: every one of y_true's 3 accounts is {outcome}"
    with pytest.warns(UndefinedMetricWarning, match=match):
        out = churn_metrics(y, [0.2, 0.5, 0.9])
    assert math.isnan(out["roc_auc"])
    assert math.isnan(out["pr_auc"])


def test_defined_metrics_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value_metrics([5.0, 0.0, 1.0, 0.0], [3.0, 1.0, 2.0, 0.0])
        churn_metrics([1, 0, 1], [0.8, 0.1, 0.4])


def test_calibration_table_allocates_for_the_accounts_not_the_bins():
    """bins=10**9 allocated two arrays of a billion edges (16 GB) for three accounts."""
    import tracemalloc

    y, p = [0, 1, 1], [0.2, 0.5, 0.9]
    tracemalloc.start()
    try:
        uniform = calibration_table(y, p, bins=10**7)
        quantile = calibration_table(y, p, bins=10**7, strategy="quantile")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert uniform["bin"].tolist() == [2 * 10**6, 5 * 10**6, 9 * 10**6]
    assert uniform["p_low"].tolist() == [0.2, 0.5, 0.9]
    assert uniform["p_high"].tolist() == [(k * 10**6 + 1) / 10**7 for k in (2, 5, 9)]
    # more quantile bins than accounts are one per account: the same as bins = 3
    pd.testing.assert_frame_equal(quantile, calibration_table(y, p, bins=3, strategy="quantile"))
    assert calibration_table(y, p, bins=10**9)["n"].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match=r"at most 2\*\*52"):
        calibration_table(y, p, bins=2**53)


def test_uniform_calibration_bins_are_those_of_the_edges_k_over_bins():
    """The bins that hold accounts are found without the edges; each account is where k / bins puts it."""
    rng = np.random.default_rng(4)
    for bins in (1, 3, 7, 10, 1000, 99_991):
        p = np.r_[rng.random(200), np.arange(bins + 1)[:: max(bins // 50, 1)] / bins, 0.0, 1.0]
        y = rng.integers(0, 2, p.size)
        table = calibration_table(y, p, bins=bins)
        edges = np.arange(bins + 1) / bins
        which = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)
        used, counts = np.unique(which, return_counts=True)
        assert table["bin"].tolist() == used.tolist()
        assert table["n"].tolist() == counts.tolist()
        assert table["p_low"].tolist() == edges[used].tolist()
        assert table["p_high"].tolist() == edges[used + 1].tolist()
        sums = np.bincount(which, weights=p)[used]
        assert table["mean_predicted"].tolist() == (sums / counts).tolist()


def test_a_capture_of_a_negative_total_is_nan_with_a_warning_naming_the_rule():
    """Refunds outweighing purchases: the top account's 5 of a total of -5 read a capture of -1.0."""
    rule = r"top_capture is NaN: y_true's values sum to less than 0"
    with pytest.warns(UndefinedMetricWarning, match=rule):
        assert math.isnan(top_capture([5.0, -10.0], [2.0, 1.0], share=0.5))
    with pytest.warns(UndefinedMetricWarning, match="top_capture is NaN"):
        metrics = value_metrics([5.0, -10.0, 1.0], [3.0, 2.0, 1.0])
    assert math.isnan(metrics["top10_capture"])
    assert math.isnan(metrics["top20_capture"])
    shares = decile_table([5.0, -10.0, 1.0], [3.0, 2.0, 1.0])
    assert shares["actual_share"].isna().all()
    assert shares["cumulative_actual_share"].isna().all()
    assert top_capture([5.0, -1.0], [2.0, 1.0], share=0.5) == pytest.approx(1.25)  # a positive total


@pytest.mark.parametrize(
    "y",
    [
        np.array([1.0, pd.NA, 3.0], dtype=object),
        [1.0, pd.NA, 3.0],
        pd.Series([1, pd.NA, 3], dtype="Int64"),
        pd.Series([1.0, None, 3.0]),
        [1.0, np.nan, 3.0],
    ],
)
def test_a_missing_value_is_named_as_missing_whatever_marks_it(y) -> None:
    """pd.NA in an object column read "y_true must hold numbers (float() argument ... 'NAType')" where the
    same gap in an Int64 column read "contains NaN or infinite values (1)"; neither said where nor what
    to do (an evaluation audit). pd.NA is a missing value, as `kamml.allocation.optimize` reads it."""
    missing = r"y_true has 1 missing \(NaN, None or pd.NA\) value \(position 1\)"
    with pytest.raises(ValueError, match=missing):
        value_metrics(y, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"y_pred has 1 infinite value \(position 2\)"):
        value_metrics([1.0, 2.0, 3.0], [1.0, 2.0, np.inf])
    with pytest.raises(ValueError, match="drop those accounts or fill them"):
        rmse([1.0, 2.0, 3.0], y)


def test_labels_and_probabilities_out_of_range_are_named_with_their_count() -> None:
    """Labels coded 1/2 read "y_true must hold 0/1 (or boolean) outcomes", with neither the values found
    nor how many accounts held them (an evaluation audit)."""
    with pytest.raises(ValueError, match=r"y_true must hold 0/1.*2 of its 4 values are not: 2"):
        churn_metrics([1, 2, 2, 1], [0.1, 0.2, 0.3, 0.4])
    outside = r"p must hold probabilities in \[0, 1\]: 2 of its 3 values are outside it.*from -0.5 to 1.2"
    with pytest.raises(ValueError, match=outside):
        churn_metrics([0, 1, 1], [-0.5, 0.2, 1.2])
    with pytest.raises(ValueError, match=r"y_true must hold 0/1"):
        calibration_table([0, 3], [0.1, 0.2])


def test_a_masked_value_is_refused_not_read_as_the_number_under_its_mask() -> None:
    """numpy reads a masked array's hidden numbers: the RMSE of [1, 2, 3] against [1, --, 3] read 0.0
    from the 2 under the mask (an evaluation audit; `kamml.allocation.optimize` refuses them too)."""
    hidden = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(ValueError, match=r"y_pred has 1 masked value \(position 1;.*y_pred\.filled\(0\)"):
        rmse([1.0, 2.0, 3.0], hidden)
    with pytest.raises(ValueError, match=r"y_true has 1 masked value"):
        churn_metrics(np.ma.masked_array([0, 1], mask=[True, False]), [0.1, 0.2])
    assert rmse([1.0, 2.0, 3.0], np.ma.masked_array([1.0, 2.0, 4.0])) == pytest.approx(np.sqrt(1 / 3))
