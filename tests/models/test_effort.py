from __future__ import annotations

import dataclasses
import doctest
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from kamml.allocation.stake import DEFAULT_SCALE, effort_scale
from kamml.config import AllocationConfig, Config
from kamml.data import load_data
from kamml.data.sampling import sample_ids
from kamml.datasets import synthetic
from kamml.errors import ConfigError, DataError
from kamml.models import effort as effort_module
from kamml.models.effort import EffortResponse, fit_effort_response, fit_effort_response_from_data
from kamml.models.effort_panel import effort_panel

from .conftest import CUTOFF, TINY_CUTOFF, make_book, tiny, tiny_panel

# ------------------------------------------------------------------------------------- the response


def test_doctests():
    result = doctest.testmod(effort_module)
    assert result.attempted >= 1
    assert result.failed == 0


def fitted_response() -> EffortResponse:
    return EffortResponse(
        scale=2.5,
        exponent=0.3,
        reference_value=800.0,
        horizon_days=180,
        period_months=3,
        uplift=0.45,
        clip=(0.25, 4.0),
        diagnostics={"rows": np.int64(1200), "se_log_scale": np.float64(0.1), "converged": True},
    )


def test_response_round_trips_through_json():
    response = fitted_response()
    raw = json.loads(json.dumps(response.to_dict()))
    back = EffortResponse.from_dict(raw)
    assert back == response
    assert back.diagnostics["rows"] == 1200
    clv = np.array([0.0, 10.0, 800.0, 5e4])
    np.testing.assert_array_equal(back.effort_scale(clv), response.effort_scale(clv))


def test_effort_scale_is_anchored_at_the_reference_value_not_the_scored_accounts():
    response = fitted_response()
    clv = np.array([800.0, 3200.0, 0.0, np.nan, 1e9])
    k = response.effort_scale(clv)
    expected = np.clip(2.5 * (np.nan_to_num(clv) / 800.0) ** 0.3, 0.25 * 2.5, 4.0 * 2.5)
    np.testing.assert_allclose(k, expected)
    # the same account gets the same k whichever other accounts are scored with it
    assert response.effort_scale([800.0, 1.0])[0] == response.effort_scale([800.0, 1e6])[0] == 2.5


def sized_response() -> EffortResponse:
    return dataclasses.replace(
        fitted_response(), size_column="employees", size_exponent=0.5, size_reference=100.0
    )


def test_effort_scale_grows_with_size_when_the_response_has_a_size_term():
    response = sized_response()
    clv = np.array([800.0, 800.0, 800.0, 800.0, 800.0, 3200.0])
    size = np.array([100.0, 400.0, np.nan, 0.0, 1e9, 25.0])
    k = response.effort_scale(clv, size)
    # missing and non-positive sizes count as the reference size; the clip bounds the product
    expected = [2.5, 5.0, 2.5, 2.5, 10.0, 2.5 * 4**0.3 * 0.5]
    np.testing.assert_allclose(k, expected)
    assert response.uses_size
    assert response.size_feature == "attr_employees"
    assert response.effort_scale(clv, pd.Series(size, dtype=object))[1] == pytest.approx(5.0)
    with pytest.raises(DataError, match=r"'employees'.*feature 'attr_employees'.*needed"):
        response.effort_scale(clv)
    with pytest.raises(DataError, match="2 sizes given for 6 accounts"):
        response.effort_scale(clv, [1.0, 2.0])
    with pytest.raises(ConfigError, match="cannot express"):
        response.allocation_settings(clv)
    assert EffortResponse.from_dict(json.loads(json.dumps(response.to_dict()))) == response
    no_size = fitted_response()
    assert not no_size.uses_size
    assert no_size.size_feature is None
    np.testing.assert_array_equal(no_size.effort_scale(clv, size), no_size.effort_scale(clv))


def test_a_size_exponent_needs_a_column_and_a_reference():
    with pytest.raises(ConfigError, match="needs a size column and a size reference"):
        dataclasses.replace(fitted_response(), size_exponent=0.4)
    with pytest.raises(ConfigError, match="size exponent must be finite"):
        dataclasses.replace(fitted_response(), size_exponent=float("inf"))


def test_allocation_settings_reproduce_the_response_through_the_median_rule():
    response = fitted_response()
    clv = np.random.default_rng(0).lognormal(6.0, 1.5, 500)
    clv[:20] = 0.0
    settings = response.allocation_settings(clv)
    config = AllocationConfig(**settings)
    k = effort_scale(
        clv, config.effort_scale, exponent=config.effort_exponent, clip=tuple(config.effort_clip)
    )
    np.testing.assert_allclose(k, response.effort_scale(clv), rtol=1e-12)
    zeros = np.zeros(3)
    settings = response.allocation_settings(zeros)
    np.testing.assert_allclose(
        effort_scale(zeros, settings["effort_scale"], exponent=0.3, clip=settings["effort_clip"]),
        response.effort_scale(zeros),
    )
    flat = dataclasses.replace(response, exponent=0.0)  # 0 ** 0 is 1: k is the scale, not its floor
    for values in (zeros, clv):
        settings = flat.allocation_settings(values)
        k = effort_scale(values, settings["effort_scale"], exponent=0.0, clip=settings["effort_clip"])
        np.testing.assert_allclose(k, flat.effort_scale(values))


@pytest.mark.parametrize("clip", [(2.0, 4.0), (0.1, 0.5)])
def test_allocation_settings_reproduce_a_clip_that_leaves_out_the_scale_when_no_clv_is_positive(clip):
    """With no positive clv every k is the smallest: the settings gave high / low times too much or too few.

    The median rule gives every account the scale when no clv is positive, clipped by the settings' clip:
    a clip of (2, 4) doubled it again (8 h against the response's 4 h), one of (0.1, 0.5) cut it to 0.1 h.
    """
    response = dataclasses.replace(fitted_response(), clip=clip)
    for values in (np.zeros(3), np.random.default_rng(1).lognormal(6.0, 1.5, 50)):
        settings = response.allocation_settings(values)
        config = AllocationConfig(**settings)
        k = effort_scale(
            values, config.effort_scale, exponent=config.effort_exponent, clip=tuple(config.effort_clip)
        )
        np.testing.assert_allclose(k, response.effort_scale(values), rtol=1e-12)


def test_fixed_response_is_the_median_rule():
    fixed = EffortResponse.fixed(reason="no activities")
    clv = np.array([10.0, 40.0, 90.0, 0.0])
    np.testing.assert_allclose(fixed.effort_scale(clv), effort_scale(clv))
    assert (fixed.source, fixed.scale, fixed.reference_value) == ("fixed", DEFAULT_SCALE, None)
    assert fixed.allocation_settings(clv)["effort_scale"] == DEFAULT_SCALE


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"scale": 0.0}, "scale must be"), ({"scale": float("nan")}, "scale must be"),
     ({"exponent": -0.1}, "exponent must be"), ({"reference_value": 0.0}, "reference value must be"),
     ({"source": "guessed"}, "source must be")],
)  # fmt: skip
def test_invalid_responses_are_config_errors(changes, match):
    raw = fitted_response().to_dict() | changes
    with pytest.raises(ConfigError, match=match):
        EffortResponse.from_dict(raw)


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"clip": [1.0, 2.0, 3.0]}, "must be numbers"), ({"scale": "abc"}, "must be numbers"),
     ({"uplift": True}, "must be numbers"), ({"clip": [4.0, 0.25]}, "clip must satisfy"),
     ({"horizon_days": 0}, "horizon_days must be a whole number"),
     ({"horizon_days": "180"}, "horizon_days must be a whole number"),
     ({"horizon_days": 90.5}, "horizon_days must be a whole number"),
     ({"period_months": -3}, "period_months must be a whole number"),
     ({"uplift": -0.5}, "uplift must be a finite number >= 0"), ({"uplift": "NaN"}, "must be numbers"),
     ({"uplift": float("nan")}, "uplift must be a finite number >= 0"),
     ({"size_column": 7}, "size column must be a column name"),
     ({"diagnostics": "rows"}, "diagnostics must be a mapping")],
)  # fmt: skip
def test_bad_values_in_a_stored_response_are_config_errors(changes, match):
    """They were a ValueError, a TypeError, or (a reversed clip) no error until effort_scale (an audit).

    A horizon of 0 loaded and failed at scoring (ZeroDivisionError in `at_horizon`), a negative or NaN
    uplift passed into the scores' effort_uplift, diagnostics as text were a ValueError.
    """
    with pytest.raises(ConfigError, match=match):
        EffortResponse.from_dict(fitted_response().to_dict() | changes)


def test_a_stored_horizon_written_as_a_whole_float_is_read():
    response = EffortResponse.from_dict(fitted_response().to_dict() | {"horizon_days": 180.0})
    assert response.horizon_days == 180
    assert isinstance(response.horizon_days, int)
    assert response.at_horizon(90).scale == pytest.approx(fitted_response().scale / 2)


def test_a_response_with_a_reversed_clip_is_refused_when_built():
    with pytest.raises(
        ConfigError, match=r"^effort response clip must satisfy 0 < low <= high < inf, got \(4\.0, 0\.25\)$"
    ):
        EffortResponse(scale=2.0, exponent=0.5, clip=(4.0, 0.25))


def test_a_reversed_clip_given_to_effort_scale_is_refused_naming_the_argument():
    """The public numpy rule names its own argument, not the config key that never reaches it."""
    with pytest.raises(ConfigError, match=r"^clip must satisfy 0 < low <= high < inf, got \(4\.0, 0\.25\)$"):
        effort_scale([100.0, 400.0], 2.0, clip=(4.0, 0.25))


def test_a_response_carried_to_another_horizon_scales_k_and_the_reference_value():
    response = fitted_response()
    assert response.horizon_days == 180
    at_90 = response.at_horizon(90)
    assert (at_90.scale, at_90.reference_value, at_90.horizon_days) == pytest.approx(
        (response.scale / 2, response.reference_value / 2, 90)
    )
    clv = np.array([10.0, 100.0, 1000.0])
    np.testing.assert_allclose(at_90.effort_scale(clv / 2), response.effort_scale(clv) / 2)
    assert response.at_horizon(180) is response
    assert EffortResponse.fixed().at_horizon(90).scale == DEFAULT_SCALE  # no horizon: as it is


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match="unknown effort response keys: colour"):
        EffortResponse.from_dict(fitted_response().to_dict() | {"colour": "red"})
    with pytest.raises(ConfigError, match="needs at least 'scale' and 'exponent'"):
        EffortResponse.from_dict({"scale": 2.0})


def test_stake_effort_scale_auto_falls_back_to_the_fixed_rule_with_a_log_line(caplog):
    clv = [10.0, 40.0, 90.0]
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        k = effort_scale(clv, "auto")
    np.testing.assert_allclose(k, effort_scale(clv, DEFAULT_SCALE))
    assert "without a fitted effort response" in caplog.text
    with pytest.raises(ConfigError, match="a number of hours or 'auto'"):
        effort_scale(clv, "fitted")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reference value must be"):
        effort_scale(clv, 2.0, reference=-1.0)


def test_allocation_config_takes_auto_or_a_positive_number():
    assert AllocationConfig().effort_scale == "auto"
    assert AllocationConfig(effort_scale=2.5).effort_scale == 2.5
    for bad in (0, -1.0, float("inf"), "guess"):
        with pytest.raises(ConfigError, match="effort_scale"):
            Config.from_dict({"allocation": {"effort_scale": bad}})


# ------------------------------------------------------------------------------ inputs and fallbacks


def test_missing_or_empty_inputs_are_clear_errors():
    tx, act = tiny()
    with pytest.raises(DataError, match="no activities before the cutoff 2024-07-01"):
        tiny_panel(tx, act.iloc[:0])
    with pytest.raises(DataError, match="no activities before the cutoff"):
        tiny_panel(tx, act[act["ts"] >= TINY_CUTOFF])
    with pytest.raises(DataError, match="no activities table given"):
        fit_effort_response(tx, None, TINY_CUTOFF)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no transactions before the cutoff"):
        tiny_panel(tx[tx["ts"] >= TINY_CUTOFF], act)
    with pytest.raises(DataError, match="activities table lacks column"):
        tiny_panel(tx, act.drop(columns="hours"))
    with pytest.raises(ConfigError, match="period_months must be a whole number"):
        effort_panel(tx, act, TINY_CUTOFF, period_months=0)
    with pytest.raises(DataError, match=r"account-periods \(\d+ with hours\)"):
        fit_effort_response(tx, act, TINY_CUTOFF)  # three account-periods cannot give a fit


def test_too_few_rows_for_a_fit_are_counted_with_thousands_separators():
    """The refusal read '2393 account-periods (1673 with hours) ...; at least 100000' (an audit)."""
    tx, act, _ = make_book(300, seed=2)
    pattern = (
        r"effort response: \d,\d{3} account-periods \(\d,\d{3} with hours\) before 2026-01-01; "
        r"at least 100,000 \(50,000 with hours\) are needed"
    )
    with pytest.raises(DataError, match=pattern):
        fit_effort_response(tx, act, CUTOFF, min_rows=100_000)


@pytest.mark.slow
def test_the_fit_line_counts_account_periods_with_thousands_separators(caplog):
    tx, act, _ = make_book(800, seed=5)
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        fit_effort_response(tx, act, CUTOFF)
    assert re.search(r"effort response from \d,\d{3} account-periods: scale", caplog.text)


def test_from_data_falls_back_to_the_fixed_rule_without_activities(caplog):
    tx, act = tiny()
    no_activities = load_data({"transactions": tx})
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response_from_data(no_activities)
    assert (response.source, response.scale, response.reference_value) == ("fixed", DEFAULT_SCALE, None)
    assert "no activities table" in response.reason
    assert "no activities table" in caplog.text
    # the report's reader learns what the rule means for the plan and what to do
    assert (
        "instead of learning from your data how much sales hours raise orders, the plan assumes that 4 "
        "hours over the 180-day horizon bring the median account about 63% of what effort can gain there"
    ) in caplog.text
    assert "Treat the hours the plan gives each account as a rough guide" in caplog.text
    assert "give an activities table" in caplog.text
    assert "or set allocation.effort_scale to the hours you know move the median account" in caplog.text
    caplog.clear()
    data = load_data({"transactions": tx, "activities": act})
    set_by_hand = Config.from_dict({"allocation": {"effort_scale": 3.0, "effort_exponent": 0.2}})
    response = fit_effort_response_from_data(data, config=set_by_hand)
    assert (response.source, response.scale, response.exponent) == ("fixed", 3.0, 0.2)
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        too_little = fit_effort_response_from_data(data)  # auto, but three account-periods
    assert too_little.source == "fixed"
    assert "account-periods" in too_little.reason
    assert "account-periods" in caplog.text
    assert "give an activities table" not in caplog.text
    assert "Treat the hours the plan gives each account as a rough guide" in caplog.text
    with pytest.raises(ConfigError, match="after the end of the data"):
        fit_effort_response_from_data(data, data.end + pd.Timedelta(days=1))


def test_from_data_refuses_a_cutoff_with_a_time_of_day_as_the_features_do():
    """A cutoff of 12:00 was read as given here while `build_features` refused it (an audit)."""
    from kamml.features import build_features

    tx, act = tiny()
    data = load_data({"transactions": tx, "activities": act})
    cutoff = "2024-06-30 12:00"
    with pytest.raises(ConfigError) as features_error:
        build_features(data, cutoff)
    with pytest.raises(ConfigError) as effort_error:
        fit_effort_response_from_data(data, cutoff)
    assert str(effort_error.value) == str(features_error.value)
    assert "time of day 12:00:00" in str(effort_error.value)


def test_the_panel_and_the_fit_refuse_a_cutoff_with_a_time_of_day_as_the_features_do():
    """effort_panel and fit_effort_response took 12:00: that morning's rows passed the filter but fell
    outside period 1, whose end was the day (an audit)."""
    from kamml.features import build_features

    tx, act = tiny()
    cutoff = "2024-06-30 12:00"
    with pytest.raises(ConfigError) as features_error:
        build_features(load_data({"transactions": tx}), cutoff)
    for fit in (effort_panel, fit_effort_response):
        with pytest.raises(ConfigError) as effort_error:
            fit(tx, act, cutoff)
        assert str(effort_error.value) == str(features_error.value)


def test_the_fallback_rule_follows_the_horizon(caplog):
    """4 h over 180 days, 4 x H / 180 over H days, as a fitted scale follows the horizon; a set one not."""
    tx, _ = tiny()
    no_activities = load_data({"transactions": tx})
    month = Config.from_dict({"time": {"horizon_days": 30}})
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response_from_data(no_activities, config=month)
    assert (response.source, response.horizon_days) == ("fixed", 30)
    assert response.scale == pytest.approx(DEFAULT_SCALE * 30 / 180)
    assert "0.667 hours over the 30-day horizon" in caplog.text
    assert "k = 0.667 h over the 30-day horizon at the median account scored" in response.describe()
    quarter = fit_effort_response_from_data(no_activities, config=AllocationConfig(), horizon_days=90)
    assert quarter.scale == pytest.approx(2.0)
    assert fit_effort_response_from_data(no_activities, config=AllocationConfig()).scale == DEFAULT_SCALE
    set_by_hand = Config.from_dict({"time": {"horizon_days": 30}, "allocation": {"effort_scale": 6.0}})
    assert fit_effort_response_from_data(no_activities, config=set_by_hand).scale == 6.0


# ------------------------------------------------------------------------------------------------ fit


@pytest.mark.slow
@pytest.mark.parametrize("exponent", [0.0, 0.5])
def test_recovers_a_known_response_when_hours_are_random(exponent):
    tx, act, _ = make_book(2500, seed=3, scale=2.0, exponent=exponent, uplift=0.5)
    response = fit_effort_response(tx, act, CUTOFF)
    d = response.diagnostics
    assert response.source == "fitted"
    assert d["converged"]
    assert d["periods"] == 8
    # the value measure is size x a noisy order rate, so k in value units is flatter than in size units;
    # the median account's k is still the scale: tolerances are about three standard errors
    assert abs(np.log(d["scale_per_period"] / 2.0)) < 3 * d["se_log_scale"] + 0.05
    assert response.exponent == pytest.approx(exponent * 0.8, abs=max(3 * d["se_exponent"], 0.1))
    assert response.uplift == pytest.approx(0.5, abs=0.1)
    assert d["lr_pvalue"] < 1e-6


@pytest.mark.slow
def test_recovers_the_size_exponent_when_account_sizes_are_given():
    """k grows with size, and the value only measures size with noise: with the sizes the fit finds
    the size exponent and leaves the value exponent near 0 (tolerance about three standard errors)."""
    tx, act, accounts = make_book(2500, seed=3, scale=2.0, exponent=0.5, uplift=0.5)
    accounts.loc[accounts.index[:100], "size"] = np.nan  # a few accounts without a size
    response = fit_effort_response(tx, act, CUTOFF, accounts=accounts, size_column="size")
    d = response.diagnostics
    assert d["size_term"] == "fitted"
    assert response.size_column == "size"
    assert response.size_exponent == pytest.approx(0.5, abs=max(3 * d["se_size_exponent"], 0.1))
    assert response.exponent < 0.15
    assert abs(np.log(d["scale_per_period"] / 2.0)) < 3 * d["se_log_scale"] + 0.1
    assert response.size_reference == pytest.approx(np.nanmedian(accounts["size"]), rel=0.2)
    same = accounts.assign(size=1.0)  # one size for all: nothing to learn, no size term
    flat = fit_effort_response(tx, act, CUTOFF, accounts=same, size_column="size")
    assert (flat.size_exponent, flat.size_column, flat.diagnostics["size_term"]) == (
        0.0,
        None,
        "every account has the same size",
    )


def test_the_config_size_column_is_used_only_when_the_accounts_table_has_it_as_a_number(caplog):
    tx, act = tiny()
    accounts = pd.DataFrame({"account_id": [1, 2], "size": [40, 7], "tier": ["gold", "silver"]})
    data = load_data({"transactions": tx, "activities": act, "accounts": accounts})
    usable = effort_module._usable_size_column
    assert usable(data, AllocationConfig()) == "size"
    assert usable(data, AllocationConfig(effort_size_column=None)) is None
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        assert usable(data, AllocationConfig(effort_size_column="tier")) is None
        assert usable(data, AllocationConfig(effort_size_column="seats")) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("accounts.tier is string, not a number" in w for w in warnings)
    assert any("no column accounts.seats" in w for w in warnings)
    caplog.clear()
    no_accounts = load_data({"transactions": tx, "activities": act})
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        assert usable(no_accounts, AllocationConfig()) is None  # the default's column: an info line
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    caplog.clear()  # an export's upper-case header: the default's column is missed, and that is warned of
    upper = load_data(
        {"transactions": tx, "activities": act, "accounts": accounts.rename(columns={"size": "SIZE"})}
    )
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        assert usable(upper, AllocationConfig()) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "no column accounts.size but accounts.SIZE" in caplog.text
    caplog.clear()
    # without the static feature group the scores carry no attr_size, so no size term is fitted
    with caplog.at_level(logging.INFO, logger="kamml.models.effort"):
        assert usable(data, AllocationConfig(), static_features=False) is None
    assert "the static group is off" in caplog.records[-1].getMessage()
    # the run's report lists these: each says what it means for the plan in plain words
    plain = (
        "the hours the plan reckons an account needs (its effort scale k) follow its value only, not its size"
    )
    assert plain in caplog.records[-1].getMessage()
    assert "turn on features.groups.static (with size in features.static_columns, when set)" in caplog.text
    assert all(plain in w for w in warnings)


@pytest.mark.slow
def test_refuses_to_fit_when_hours_have_no_effect():
    tx, act, _ = make_book(1500, seed=4, uplift=0.0)
    with pytest.raises(DataError, match="no significant effect of hours"):
        fit_effort_response(tx, act, CUTOFF)


@pytest.mark.slow
def test_fit_ignores_data_after_the_cutoff():
    tx, act, _ = make_book(800, seed=5)
    cut = pd.Timestamp("2025-07-01")
    response = fit_effort_response(tx, act, cut)
    truncated = fit_effort_response(tx[tx["ts"] < cut], act[act["ts"] < cut], cut)
    # the engine's parallel sums may round differently on inputs of other sizes, so the fits agree to
    # the optimizer's precision rather than bit for bit (a loose fit once differed by 0.3 % here)
    assert_same_numbers(response.to_dict(), truncated.to_dict(), rel=1e-5)
    assert response.diagnostics["cutoff"] == str(cut)


def assert_same_numbers(a: object, b: object, rel: float, path: str = "") -> None:
    """Nested dicts and lists equal, floats to a relative tolerance, everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_numbers(a[key], b[key], rel, f"{path}.{key}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_numbers(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=rel, abs=1e-9), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_recovers_the_synthetic_worlds_response_despite_its_confounded_sales_policy():
    """The world gives more hours to bigger and recently active accounts (confounding).

    The truth in the fit's terms: the least-squares line of the true log k on the log value measure of
    the panel rows (k depends on size, which the value measures with noise). Tolerances: 30 % on the
    scale and 0.1 on the exponent (about three standard errors at 10k accounts plus the small bias left
    by controlling for past effort only through past hours), 0.08 on the uplift.
    """
    world = synthetic.generate(10_000, seed=5)
    data = load_data({"transactions": world.transactions, "activities": world.activities})
    response = fit_effort_response_from_data(data, world.end, Config())
    assert response.source == "fitted"
    panel = effort_panel(world.transactions, world.activities, world.end)
    truth = world.truth.set_index("account_id")
    log_k = np.log(panel["account_id"].map(truth["effort_scale"]).to_numpy())
    log_value = np.log(panel["value"].to_numpy() / response.reference_value)
    slope, intercept = np.polyfit(log_value, log_k, 1)
    assert response.diagnostics["scale_per_period"] == pytest.approx(np.exp(intercept), rel=0.3)
    # the plan's hours are over the 180-day horizon: the scale is the quarter's times 180 / 91.3
    assert response.scale == pytest.approx(response.diagnostics["scale_per_period"] * 180 / (365.25 / 4))
    assert response.exponent == pytest.approx(slope, abs=0.1)
    uplift = panel["account_id"].map(truth["uplift_purchase"]).mean()
    assert response.uplift == pytest.approx(uplift, abs=0.08)
    # without the controls, the confounded fit is far off: it credits hours with the size effect
    assert response.diagnostics["naive_scale"] > 2 * np.exp(intercept)


@pytest.mark.slow
def test_with_the_accounts_size_the_fit_finds_the_worlds_size_elasticity():
    """In the world k = 2.9 h x (employees / 50) ^ 0.35 x lognormal noise: with accounts.size the fit
    puts the growth of k on size (0.35 within about three standard errors), not on value, and ranks
    the accounts' k closer to the truth than the value-only fit."""
    world = synthetic.generate(10_000, seed=5)
    tables = {"transactions": world.transactions, "activities": world.activities}
    data = load_data({**tables, "accounts": world.accounts})
    response = fit_effort_response_from_data(data, world.end, Config())
    value_only = fit_effort_response_from_data(load_data(tables), world.end, Config())
    d = response.diagnostics
    assert (d["size_term"], response.size_column) == ("fitted", "size")
    assert response.size_exponent == pytest.approx(0.35, abs=max(3 * d["se_size_exponent"], 0.1))
    assert response.exponent < value_only.exponent
    truth = world.truth.set_index("account_id")
    accounts = world.accounts.set_index("account_id").reindex(truth.index)
    clv = truth["expected_value_given_history"].to_numpy()
    k_true = truth["effort_scale"].to_numpy()
    with_size = response.effort_scale(clv, accounts["size"])
    rank = pd.Series(with_size).corr(pd.Series(k_true), method="spearman")
    rank_value_only = pd.Series(value_only.effort_scale(clv)).corr(pd.Series(k_true), method="spearman")
    assert rank > rank_value_only + 0.2


@pytest.mark.slow
def test_hours_on_too_few_accounts_are_refused_not_fitted():
    """40 heavily served accounts give hundreds of account-periods but no precision: refused."""
    tx, act, _ = make_book(1500, seed=6)
    few = act[act["account_id"] <= 40]
    with pytest.raises(DataError, match=r"hours are logged on 40 accounts .* at least 100 are needed"):
        fit_effort_response(tx, few, CUTOFF)


@pytest.mark.slow
def test_an_uplift_at_its_bound_is_refused_and_the_fixed_rule_used(caplog):
    """Hours far below k (100 h a quarter) measure only uplift / k: the fit ran the uplift to its bound of
    20 with k near 500 h. That uplift would be every account's growth weight (20 times its clv)."""
    tx, act, _ = make_book(600, seed=1, scale=100.0, uplift=5.0)
    with pytest.raises(DataError, match=r"uplift at the top of its range \(20\): uplift 20 \(standard error"):
        fit_effort_response(tx, act, CUTOFF)
    data = load_data({"transactions": tx, "activities": act})
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response_from_data(data, config=Config())
    assert (response.source, response.scale, response.uplift) == ("fixed", DEFAULT_SCALE, None)
    assert "top of its range" in response.reason
    assert "top of its range" in caplog.text
    assert "(the fixed rule)" in caplog.text


@pytest.mark.slow
def test_a_scale_at_the_edge_of_its_range_is_refused_and_the_fixed_rule_used(caplog):
    """Hours logged a thousand times too small (thousandths of hours) put k at its lower bound, 0.01 h per
    period: the fit was used with a warning, so the plan took every account as saturated by a minute."""
    tx, act, _ = make_book(600, seed=1)
    tiny_hours = act.assign(hours=act["hours"] / 1000)
    with pytest.raises(DataError, match=r"scale at the edge of its range \(0\.01 to 1,000 h per period\)"):
        fit_effort_response(tx, tiny_hours, CUTOFF)
    data = load_data({"transactions": tx, "activities": tiny_hours})
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response_from_data(data, config=Config())
    assert (response.source, response.scale) == ("fixed", DEFAULT_SCALE)
    assert "edge of its range" in response.reason
    assert "(the fixed rule)" in caplog.text


def test_an_uplift_the_data_do_not_measure_is_unusable():
    unusable = effort_module._unusable_uplift
    assert unusable(0.46, 0.048, 3.0) == ""  # a 2,000-account world's fit
    assert unusable(0.7, 0.43, 5.2) == ""  # imprecise, but told apart from 0
    assert "top of its range (20)" in unusable(20.0, 419.0, 529.0)
    assert "top of its range" in unusable(19.99, 0.5, 529.0)  # numerically at the bound
    assert "not told apart from 0" in unusable(0.3, 0.45, 3.0)
    assert "not told apart from 0" in unusable(0.3, float("nan"), 3.0)
    assert "not told apart from 0" in unusable(0.3, float("inf"), 3.0)


def test_negative_hours_are_refused_by_the_fit():
    tx, act = tiny()
    act = act.assign(hours=-act["hours"].abs() - 1.0)
    with pytest.raises(DataError, match="negative hours"):
        fit_effort_response(tx, act, CUTOFF)


@pytest.mark.parametrize("bad", [np.nan, np.inf, None])
def test_missing_or_infinite_hours_are_refused_by_the_fit(bad):
    """NaN hours were dropped silently and inf ones gave another k with numpy warnings (an audit);
    `load_data` refuses them, a caller of the fit with its own frames had no such check."""
    tx, act = tiny()
    act = act.astype({"hours": object if bad is None else float})
    act.loc[act.index[0], "hours"] = bad
    with pytest.raises(DataError, match=r"1 activities rows before .* missing or infinite hours"):
        fit_effort_response(tx, act.astype({"hours": float}), TINY_CUTOFF)


def test_too_short_a_history_says_why():
    """It said '0 account-periods (0 with hours)', the cause only in an INFO line (an audit)."""
    tx, act = tiny()
    late = pd.Timestamp("2024-05-01")
    with pytest.raises(DataError, match=r"no 3-month planning period .* 90 days of history") as info:
        fit_effort_response(tx[tx["ts"] >= late], act[act["ts"] >= late], TINY_CUTOFF)
    assert "transactions from 2024-05-05, activities from 2024-05-01" in str(info.value)


@pytest.mark.slow
def test_one_period_and_an_imprecise_fit_are_warned(caplog, monkeypatch):
    monkeypatch.setattr("kamml.models.effort.IMPRECISE_LOG_SCALE", 0.0)  # any standard error is too large
    tx, act, _ = make_book(2500, seed=3)
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response(tx, act, CUTOFF, max_periods=1, min_rows=100)
    said = " | ".join(r.getMessage() for r in caplog.records)
    assert response.diagnostics["periods"] == 1
    assert "fitted from one planning period" in said
    assert "imprecise fit" in said


def test_a_response_describes_itself_for_the_report():
    fixed = EffortResponse.fixed(4.0, 0.5, reason="no activities table")
    assert fixed.describe().startswith("fixed rule (no activities table): k = 4 h at the median account")
    fitted = EffortResponse(
        scale=3.1,
        exponent=0.16,
        reference_value=1000.0,
        uplift=0.44,
        diagnostics={"rows": 12345, "accounts": 2000, "periods": 8, "lr_pvalue": 1e-9},
    )
    text = fitted.describe()
    assert text.startswith("fitted from 12,345 account-periods of 2,000 accounts over 8 periods")
    assert "k = 3.1 h at the median account" in text
    assert "uplift 0.44" in text
    assert "not aimed at accounts for reasons the data do not show" in text
    bare = EffortResponse(scale=3.1, exponent=0.0, reference_value=1000.0, uplift=0.44123)
    assert bare.describe().startswith("fitted: k = 3.1 h at the median account of the fit, the same at any")
    assert "; uplift 0.44. It assumes" in bare.describe()
    one = dataclasses.replace(fitted, diagnostics={**fitted.diagnostics, "periods": 1, "se_log_scale": 1.8})
    assert "over 1 period (" in one.describe()
    many = dataclasses.replace(fitted, diagnostics={**fitted.diagnostics, "periods": 1234})
    assert "2,000 accounts over 1,234 periods (" in many.describe()  # read '1234 periods' (an audit)
    # the plan's growth weight (an audit: the CDNOW report said "0.3 under auto" where the config set 0.5)
    assert fixed.describe(0.5).endswith("; growth weight 0.5 (allocation.weights.growth)")
    assert fixed.describe("auto").endswith("; growth weight 0.3 (auto, without a fitted uplift)")
    assert "uplift 0.44 (growth weight 0.5 from allocation.weights.growth instead)" in fitted.describe(0.5)
    assert fitted.describe("auto") == text
    assert "imprecise: k uncertain by a factor of 6.0" in one.describe()


def test_a_scale_the_data_cannot_pin_down_has_no_small_standard_error():
    """With hours far beyond k, exp(-h/k) underflows: the pseudo-inverse gave k a standard error of 1e-13."""
    from kamml.models.effort import _sandwich_se

    rng = np.random.default_rng(0)
    jac = rng.normal(size=(500, 3))
    jac[:, 2] *= 1e-13  # a parameter the data barely move: its error must be huge, not 0
    bread = jac.T @ jac
    meat = jac.T @ jac
    se = _sandwich_se(bread, meat)
    assert se[2] > 1e10
    np.testing.assert_allclose(se[:2], np.sqrt(np.diag(np.linalg.inv(bread[:2, :2])))[:2], rtol=1e-2)
    jac[:, 2] = 0.0  # not moved at all: unidentified
    assert np.isinf(_sandwich_se(jac.T @ jac, jac.T @ jac)[2])
    jac[:, 2] = jac[:, 0] + jac[:, 1]  # collinear: a direction without curvature
    se = _sandwich_se(jac.T @ jac, jac.T @ jac)
    assert np.isinf(se).all()


def test_an_unidentified_scale_is_described_as_such():
    fitted = EffortResponse(
        scale=0.46,
        exponent=0.0,
        reference_value=1000.0,
        uplift=0.6,
        diagnostics={"rows": 800, "accounts": 200, "periods": 4, "lr_pvalue": 1e-9, "se_log_scale": None},
    )  # None: an infinite standard error after a JSON round trip
    assert "imprecise: k is not pinned down by the data" in fitted.describe()
    big = dataclasses.replace(fitted, diagnostics={**fitted.diagnostics, "se_log_scale": 3.4e10})
    assert "imprecise: k is not pinned down by the data" in big.describe()


def test_a_fit_outside_the_bending_regime_says_so_in_its_description():
    """The fit warned when hours barely bend the curve (or saturate it), but the report's line, which
    outlives the log, read like any precise fit (forty-second session's note)."""
    base = {"rows": 800, "accounts": 200, "periods": 4, "lr_pvalue": 1e-9, "se_log_scale": 0.1}
    fitted = EffortResponse(scale=8.5, exponent=0.0, reference_value=1000.0, uplift=0.4, diagnostics=base)
    assert "rough" not in fitted.describe()
    linear = dataclasses.replace(fitted, diagnostics={**base, "hours_over_k": 0.08})
    assert "; rough: hours were 0.08 times k at the median account-period, so only uplift / k is " in (
        linear.describe()
    )
    saturated = dataclasses.replace(fitted, diagnostics={**base, "hours_over_k": 9.0})
    assert "; rough: hours were 9 times k at the median account-period, so k is only bounded above" in (
        saturated.describe()
    )
    inside = dataclasses.replace(fitted, diagnostics={**base, "hours_over_k": 0.6})
    assert "rough" not in inside.describe()


def test_max_training_accounts_fits_the_response_on_the_models_sample(caplog):
    """The effort fit's time grows with its panel: on a large book it takes the models' account sample."""
    world = synthetic.generate(3_000, seed=5)
    data = load_data({"transactions": world.transactions, "activities": world.activities})
    every = fit_effort_response_from_data(data, world.end, Config())
    sampled_cfg = Config.from_dict({"models": {"max_training_accounts": 1_500}})
    with caplog.at_level("INFO", logger="kamml.models.effort"):
        sampled = fit_effort_response_from_data(data, world.end, sampled_cfg)
    panel = effort_panel(world.transactions, world.activities, world.end)
    chosen = set(sample_ids(panel["account_id"], 1_500))
    assert sampled.diagnostics["accounts"] == len(chosen) == 1_500
    assert sampled.diagnostics["accounts_in_panel"] == every.diagnostics["accounts"] > 1_500
    assert sampled.diagnostics["rows"] == int(panel["account_id"].isin(chosen).sum())
    assert "fitting on 1,500 of" in caplog.text
    assert "of a sample of 1,500 of" in sampled.describe()
    assert sampled.scale == pytest.approx(every.scale, rel=0.5)  # the same world, half the accounts
    assert sampled.scale != every.scale


# ------------------------------------------------------------------------------------------ optimizer


def test_fisher_scoring_finds_the_box_constrained_minimum_of_a_quadratic():
    # f = (t - c)' A (t - c) / 2 with c outside the box: the minimum holds the first two coordinates
    # at their bounds (the gradient pushes them out: the KKT conditions) and the third solves
    # A[2] (t - c) = 0 given them: t2 = 0.5 + (0.3 * 1 - 0.2 * 1) / 3 = 1.6 / 3
    a = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, 0.2], [0.3, 0.2, 3.0]])
    c = np.array([2.0, -1.0, 0.5])
    lower, upper = np.array([-1.0, 0.0, -1.0]), np.array([1.0, 1.0, 1.0])

    def value(t):
        return 0.5 * float((t - c) @ a @ (t - c))

    def parts(t):
        return value(t), a @ (t - c), a

    theta, f, converged = effort_module._fisher_scoring(parts, value, np.zeros(3), lower, upper)
    assert converged
    assert theta[0] == 1.0
    assert theta[1] == 0.0
    assert theta[2] == pytest.approx(1.6 / 3, abs=1e-9)
    grad = a @ (theta - c)
    assert grad[0] < 0
    assert grad[1] > 0
    assert f == pytest.approx(value(np.array([1.0, 0.0, 1.6 / 3])), abs=1e-14)


def test_the_effort_fit_reaches_the_likelihood_maximum_of_a_general_optimizer():
    # the scoring fit against scipy's L-BFGS-B run to rounding on the same panel: same optimum, in a
    # fraction of the steps (L-BFGS-B takes hundreds of evaluations: 820 here against 7 scoring steps)
    from scipy import optimize

    tx, act, accounts = make_book(600, seed=5, scale=2.0, exponent=0.3, uplift=0.5)
    panel = effort_panel(tx, act, CUTOFF, accounts=accounts, size_column="size")
    orders = panel["orders"].to_numpy(dtype=float)
    hours = panel["hours"].to_numpy(dtype=float)
    value = panel["value"].to_numpy(dtype=float)
    size = effort_module._size_term(panel)[0]
    assert size is not None
    x = np.hstack([effort_module._controls(panel), size[2]])
    z = np.column_stack([np.log(value / np.median(value)), size[0]])
    with threadpool_limits(limits=1, user_api="blas"):  # as the fit runs: threads only contend here
        fit = effort_module._maximise(x, orders, hours, z, effort=True)
    assert fit["converged"]

    p = x.shape[1]

    def objective(params):
        f, g, _ = effort_module._poisson_parts(x, orders, hours, z, params, True)
        return f, g

    bounds = [(None, None)] * p + [
        effort_module.UPLIFT_BOUNDS,
        effort_module.LOG_SCALE_BOUNDS,
        effort_module.EXPONENT_BOUNDS,
        effort_module.SIZE_EXPONENT_BOUNDS,
    ]
    with threadpool_limits(limits=1, user_api="blas"):
        reference = optimize.minimize(
            objective,
            fit["params"] * 0.9 + 0.01,  # a nearby start, so both find the same optimum
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
        )
    assert reference.success
    n = len(orders)
    assert -fit["loglik"] / n <= reference.fun + 1e-12
    assert fit["params"][p:] == pytest.approx(reference.x[p:], rel=1e-4, abs=1e-5)


def central_difference(func, params, step=1e-6):
    """Derivatives of `func` (a number or an array) by each parameter, by central differences."""
    return np.array(
        [(func(params + step * e) - func(params - step * e)) / (2 * step) for e in np.eye(len(params))]
    )


def test_poisson_parts_gradient_and_fisher_information_are_the_derivatives():
    rng = np.random.default_rng(0)
    n, p = 400, 3
    x = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    z = rng.normal(size=(n, 2))
    hours = rng.gamma(2.0, 1.0, n)
    params = np.array([0.2, 0.3, -0.1, 0.6, 0.4, 0.3, -0.2])
    mu = effort_module._mean(x, hours, z, params, True)[0]
    orders = rng.poisson(mu).astype(float)
    _f, g, fisher = effort_module._poisson_parts(x, orders, hours, z, params, True)
    numeric = central_difference(
        lambda t: effort_module._poisson_parts(x, orders, hours, z, t, True)[0], params
    )
    assert g == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    # the Fisher information is the Hessian's expectation: with the orders at their mean, the Hessian
    _, _, at_mean = effort_module._poisson_parts(x, mu, hours, z, params, True)
    hessian = central_difference(lambda t: effort_module._poisson_parts(x, mu, hours, z, t, True)[1], params)
    assert at_mean == pytest.approx(hessian, rel=1e-4, abs=1e-7)
    assert np.all(np.linalg.eigvalsh(fisher) >= -1e-12)


def test_a_size_column_the_fit_leaves_out_is_a_warning(caplog):
    """The reason only went to the diagnostics, also for an explicitly configured column (an audit)."""
    world = synthetic.generate(2_000, seed=42)
    accounts = world.accounts.copy()
    accounts.loc[accounts.sample(frac=0.6, random_state=0).index, "size"] = np.nan
    tables = {"transactions": world.transactions, "accounts": accounts, "activities": world.activities}
    data = load_data(tables)
    config = Config.from_dict({"allocation": {"effort_size_column": "size"}})
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response_from_data(data, data.end, config)
    assert response.source == "fitted"
    assert response.size_column is None
    said = " | ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "accounts.size left out of the fit (positive sizes on 40% of the rows, fewer than 50%)" in said
    assert "the hours the plan reckons an account needs (its effort scale k) follow its value only" in said


@pytest.mark.slow
@pytest.mark.parametrize(("k", "regime"), [(30.0, "nearly linear"), (0.05, "saturated")])
def test_a_fit_where_the_hours_barely_bend_the_curve_is_warned(k, regime, caplog):
    """The world's own confounded policy with its true k set to 30 h (or 0.05 h) a quarter: the fit
    read 8.5 h (0.24 h) with a standard error of log k of 0.56 (0.20) and no warning (an audit)."""
    world = synthetic.generate(5_000, seed=42, params=synthetic.WorldParams(effort_scale=k))
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        response = fit_effort_response(world.transactions, world.activities, world.end)
    low, high = effort_module.HOURS_OVER_K_RANGE
    assert not low <= response.diagnostics["hours_over_k"] <= high
    assert regime in caplog.text
    default = synthetic.generate(5_000, seed=42)  # the default world: the bend is seen, no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        fit_effort_response(default.transactions, default.activities, default.end)
    assert "times its fitted k" not in caplog.text


@pytest.mark.parametrize(
    ("scale", "clip"),
    [(1e308, (0.25, 4.0)), (5e-324, (0.25, 4.0)), (10.0, (1.0, 1e308)), (1e-10, (1e-320, 1.0))],
)
def test_a_scale_whose_clipped_k_overflows_or_underflows_is_a_config_error(scale, clip):
    """k came out inf or 0, and the optimizer raised a ValueError that named no setting (an audit)."""
    with pytest.raises(ConfigError, match=r"k must be a finite number of hours > 0"):
        effort_scale([1.0, 10.0], scale=scale, clip=clip)
    assert np.isfinite(effort_scale([1.0, 1e300], scale=1e300, clip=(0.25, 4.0))).all()


def test_hours_of_one_amount_per_activity_are_refused_saying_what_is_missing():
    """Every activity logged as 2 hours gave account-periods of 0 or 2 hours, refused as hours that
    'do not vary' while they did, between served and unserved (an audit): two levels cannot show where
    the curve bends, and the message says so with the values found."""
    tx, act, _ = make_book(300, seed=2)
    with pytest.raises(DataError) as refused:
        fit_effort_response(tx, act.assign(hours=2.0), CUTOFF)
    message = str(refused.value)
    assert "do not vary" not in message
    assert "activities.hours" in message
    assert "take only 2 values per account and period (0 and 2)" in message
    assert "at least 3 are needed" in message


def test_a_bad_clip_is_refused_before_the_fit_naming_the_setting_and_the_rule():
    """A reversed clip failed only when the response was built, after the fit (minutes on a large book):
    here the tiny book's too few account-periods would be found first if the clip waited."""
    tx, act = tiny()
    rule = r"clip \(allocation\.effort_clip\) must be \(low, high\) with 0 < low <= high < inf"
    for clip in [(4.0, 0.25), (0.0, 4.0), (0.25, float("inf")), (0.25, 4.0, 9.0), ("a", "b")]:
        with pytest.raises(ConfigError, match=rule):
            fit_effort_response(tx, act, TINY_CUTOFF, clip=clip)  # type: ignore[arg-type]


def test_the_fit_warns_of_activities_of_no_account(caplog):
    """A share of the activities keyed by ids no account has: the fit said nothing (an audit)."""
    tx, act, accounts = make_book(300, seed=2)
    stray = act.iloc[::10].assign(account_id=act["account_id"].iloc[::10] + 100_000)
    both = pd.concat([act, stray], ignore_index=True)
    rule = (
        r"[\d,]+ of the [\d,]+ activities rows before 2026-01-01 \([\d.]+%\) have an activities\.account_id"
    )
    with (
        caplog.at_level(logging.WARNING, logger="kamml.models.effort"),
        pytest.raises(DataError, match="at least 100,000"),
    ):
        fit_effort_response(tx, both, CUTOFF, min_rows=100_000, accounts=accounts)
    assert re.search(rule, caplog.text)
