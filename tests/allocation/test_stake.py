import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kamml.allocation import stake as stake_module
from kamml.allocation.stake import (
    DEFAULT_WEIGHTS,
    FALLBACK_GROWTH,
    effort_scale,
    growth_weight,
    resolve_weights,
    stake_parts,
)
from kamml.errors import ConfigError, SchemaError
from kamml.models import effort_rule as effort_rule_module
from kamml.models.effort_rule import DEFAULT_SCALE, default_scale


def test_doctests():
    result = doctest.testmod(stake_module)
    assert result.attempted >= 2
    assert result.failed == 0
    rule = doctest.testmod(effort_rule_module)
    assert rule.attempted >= 3
    assert rule.failed == 0


def test_the_fixed_rule_follows_the_horizon_and_a_set_scale_does_not():
    """A fitted k is a period's k x horizon / period; the fixed rule's 4 h are for 180 days likewise."""
    clv = [100.0, 400.0, 0.0, 25.0]
    assert default_scale() == default_scale(180) == DEFAULT_SCALE == 4.0
    np.testing.assert_allclose(effort_scale(clv, "auto"), effort_scale(clv, 4.0))
    np.testing.assert_allclose(effort_scale(clv, "auto", horizon_days=180), effort_scale(clv, 4.0))
    month = effort_scale(clv, "auto", horizon_days=30)
    np.testing.assert_allclose(month, effort_scale(clv, 4.0) / 6)
    np.testing.assert_allclose(effort_scale(clv, 6.0, horizon_days=30), effort_scale(clv, 6.0))  # as given
    with pytest.raises(ConfigError, match="horizon must be a finite number of days > 0"):
        default_scale(0)


def scores(**columns):
    base = {"clv": [100.0, 10.0, 0.0], "p_churn": [0.5, 0.1, 0.9], "referral_value": [0.0, 40.0, 20.0]}
    base.update(columns)
    return pd.DataFrame(base)


def test_stake_parts_follow_the_formula_with_default_weights():
    parts = stake_parts(scores())
    w = DEFAULT_WEIGHTS
    np.testing.assert_allclose(parts["stake_retention"], w["retention"] * np.array([50.0, 1.0, 0.0]))
    assert w["growth"] == "auto"  # without an effort_uplift column: the fallback weight
    np.testing.assert_allclose(parts["stake_growth"], FALLBACK_GROWTH * np.array([100.0, 10.0, 0.0]))
    np.testing.assert_allclose(parts["stake_referral"], w["referral"] * np.array([0.0, 40.0, 20.0]))
    np.testing.assert_allclose(
        parts["stake"], parts[["stake_retention", "stake_growth", "stake_referral"]].sum(axis=1)
    )
    assert list(parts.columns) == ["stake_retention", "stake_growth", "stake_referral", "stake"]


def test_stake_parts_keep_the_index_and_take_partial_weights():
    frame = scores().set_axis(["a", "b", "c"])
    parts = stake_parts(frame, {"growth": 0.0})
    assert list(parts.index) == ["a", "b", "c"]
    assert (parts["stake_growth"] == 0).all()
    assert parts.loc["b", "stake_referral"] == pytest.approx(DEFAULT_WEIGHTS["referral"] * 40.0)


def test_missing_or_nan_referral_value_counts_as_zero():
    without = stake_parts(scores().drop(columns="referral_value"))
    with_nan = stake_parts(scores(referral_value=[np.nan, np.nan, np.nan]))
    assert (without["stake_referral"] == 0).all()
    assert (with_nan["stake_referral"] == 0).all()
    pd.testing.assert_series_equal(without["stake"], with_nan["stake"])


def test_auto_growth_weight_is_the_fitted_uplift_where_the_scores_carry_one():
    frame = scores(effort_uplift=[0.45, np.nan, -0.2])  # a NaN or negative uplift is not usable
    parts = stake_parts(frame, check=False)  # checked, the negative uplift is refused as by allocate
    np.testing.assert_allclose(parts["stake_growth"], [0.45 * 100.0, FALLBACK_GROWTH * 10.0, 0.0])
    np.testing.assert_allclose(growth_weight(frame, "auto"), [0.45, FALLBACK_GROWTH, FALLBACK_GROWTH])
    with pytest.raises(SchemaError, match=r"scores\.effort_uplift: must be >= 0 \(1 row; e\.g\. -0\.2\)"):
        stake_parts(frame)
    fixed = stake_parts(frame, {"growth": 0.3}, check=False)  # a number in the config wins over the uplift
    np.testing.assert_allclose(fixed["stake_growth"], [30.0, 3.0, 0.0])
    np.testing.assert_allclose(parts["stake_retention"], fixed["stake_retention"])


def test_a_fitted_uplift_of_exactly_zero_is_used_not_replaced_by_the_fallback():
    frame = scores(clv=[100.0], p_churn=[0.5], referral_value=[0.0], effort_uplift=[0.0])
    assert stake_parts(frame)["stake_growth"].tolist() == [0.0]


@pytest.mark.parametrize(
    ("weights", "match"),
    [({"loyalty": 1.0}, "unknown stake weight 'loyalty'; valid: retention, growth, referral"),
     ({"growth": -1.0}, "'growth' must be a finite number >= 0"),
     ({"retention": float("nan")}, "'retention' must be a finite"),
     ({"retention": "auto"}, "only growth can be 'auto'"),
     ({"referral": "many"}, "'referral' must be a number >= 0, got 'many'"),
     ({"retention": True}, "'retention' must be a number >= 0, got True"),  # was a weight of 1
     ({"growth": np.False_}, "'growth' must be a number >= 0, got np.False_"),
     ({"referral": "1"}, r"'referral' must be a number >= 0, got '1' \(text\)"),  # float("1") read 1
     ({"growth": np.str_("0.5")}, r"'growth' must be a number >= 0, got '0.5' \(text\)"),
     ({"retention": b"1"}, r"'retention' must be a number >= 0, got b'1' \(text\)")],
)  # fmt: skip
def test_bad_weights_are_config_errors(weights, match):
    with pytest.raises(ConfigError, match=match):
        resolve_weights(weights)


@pytest.mark.parametrize(
    ("columns", "column", "rule"),
    [({"clv": [-1.0, 10.0, 0.0]}, "clv", "must be >= 0"),
     ({"p_churn": [0.5, 2.0, 0.9]}, "p_churn", "must be in [0, 1]"),
     ({"clv": [np.nan, 10.0, 0.0]}, "clv", "missing value"),
     ({"p_churn": pd.to_datetime(["2024-01-01"] * 3)}, "p_churn", "not a number (a datetime64[ns] column)"),
     ({"referral_value": [0.0, -4.0, 20.0]}, "referral_value", "must be >= 0"),
     ({"effort_uplift": [0.5, np.inf, 0.1]}, "effort_uplift", "must be finite"),
     ({"clv": [True, False, True]}, "clv", "not a number (yes/no values)")],
)  # fmt: skip
def test_stake_parts_called_directly_checks_the_scores_as_allocate_does(columns, column, rule):
    """Called on its own, it computed stakes of negative clv, p_churn 2, NaN or dates without a word."""
    with pytest.raises(SchemaError) as info:
        stake_parts(scores(**columns))
    [problem] = info.value.problems
    assert (problem.table, problem.column, problem.rule) == ("scores", column, rule)


def test_stake_parts_names_a_missing_needed_column():
    """A missing p_churn was a raw KeyError naming no table."""
    with pytest.raises(SchemaError) as info:
        stake_parts(scores().drop(columns="p_churn"))
    [problem] = info.value.problems
    assert (problem.table, problem.column) == ("scores", "p_churn")
    assert problem.rule == "missing column; the scores have: clv, referral_value"


def test_stake_parts_refuses_stakes_too_large_for_a_float_as_allocate_does():
    """A stake of inf (or stakes whose sum is) was returned for the caller to find."""
    with pytest.raises(SchemaError) as info:
        stake_parts(scores(clv=[1.5e308, 1.0, 0.0], p_churn=[1.0, 0.1, 0.1]))
    [problem] = info.value.problems
    assert (problem.column, problem.n_rows, problem.examples) == ("clv", 1, (1.5e308,))
    assert problem.rule.startswith("the stake, retention + growth + referral, overflows to infinity")
    big = scores(clv=[1e308, 1e308, 1e308], p_churn=[1.0, 1.0, 1.0])
    with pytest.raises(SchemaError, match=r"scores\.clv: the accounts' stakes .* add up past the largest"):
        stake_parts(big, {"growth": 0.0, "referral": 0.0})
    assert np.isinf(
        stake_parts(scores(clv=[1.5e308, 1.0, 0.0], p_churn=[1.0, 0.1, 0.1]), check=False)["stake"][0]
    )


def test_stake_parts_without_checks_keeps_a_missing_value_missing():
    """`check=False` is for scores checked already, or where NaN must stay NaN (`explain_priority`)."""
    parts = stake_parts(scores(clv=[np.nan, 10.0, 0.0]), check=False)
    assert np.isnan(parts["stake"].iloc[0])
    assert (
        parts["stake"].iloc[1:].tolist()
        == stake_parts(scores(clv=[1.0, 10.0, 0.0]))["stake"].iloc[1:].tolist()
    )


def test_typical_account_gets_the_configured_scale_and_bigger_ones_more():
    clv = np.array([50.0, 100.0, 200.0, 400.0, 100.0])
    k = effort_scale(clv, 3.0)
    assert k[1] == pytest.approx(3.0)  # the median positive clv
    assert k[3] == pytest.approx(3.0 * 2.0)  # 4x the value, 2x the hours (exponent 0.5)
    assert np.all(np.diff(k[:4]) > 0)


def test_effort_scale_is_clipped_and_handles_zero_and_nan():
    clv = np.array([0.0, np.nan, 1.0, 100.0, 1e9])
    k = effort_scale(clv, 2.0)
    assert k[0] == k[1] == pytest.approx(0.25 * 2.0)
    assert k[4] == pytest.approx(4.0 * 2.0)
    custom = effort_scale(clv, 2.0, clip=(0.5, 2.0))
    assert custom.min() == pytest.approx(1.0)
    assert custom.max() == pytest.approx(4.0)


def test_exponent_zero_gives_everyone_the_same_scale_and_no_value_too():
    np.testing.assert_allclose(effort_scale([1.0, 10.0, 1000.0], 5.0, exponent=0.0), 5.0)
    np.testing.assert_allclose(effort_scale([0.0, 0.0], 5.0), 5.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"scale": 0.0}, "effort scale must be"), ({"scale": 1.0, "exponent": -1.0}, "exponent"),
     ({"scale": 1.0, "clip": (2.0, 1.0)}, "clip"), ({"scale": 1.0, "clip": (0.0, 1.0)}, "clip")],
)  # fmt: skip
def test_bad_effort_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        effort_scale([1.0, 2.0], **kwargs)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1e7)),
    st.floats(0.1, 20),
    st.floats(0, 1.5),
)
def test_effort_scale_is_monotone_positive_and_within_the_clip(clv, scale, exponent):
    k = effort_scale(clv, scale, exponent=exponent)
    assert np.all(k >= 0.25 * scale * (1 - 1e-12))
    assert np.all(k <= 4.0 * scale * (1 + 1e-12))
    order = np.argsort(clv, kind="stable")
    assert np.all(np.diff(k[order]) >= -1e-12 * scale)
