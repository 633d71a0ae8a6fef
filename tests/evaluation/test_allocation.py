import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kamml.allocation.allocate import allocate, floor_hours
from kamml.allocation.optimizer import gain
from kamml.config import AllocationConfig
from kamml.datasets import synthetic
from kamml.errors import ConfigError, InfeasibleError, SchemaError
from kamml.evaluation import allocation as evaluation_module
from kamml.evaluation.allocation import (
    SIMPLE_RULES,
    compare_allocations,
    equal_hours,
    evaluate_allocation,
    hours_by_revenue,
    oracle_hours,
    past_revenue,
    simple_rule_hours,
    top_n_by_revenue,
)

HORIZON = 180


@pytest.fixture(scope="module")
def world():
    return synthetic.generate(600, seed=1, years=1.0)


def truth_scores(world):
    """Scores an oracle that knows the parameters but not the latent state would give."""
    t = world.truth
    p_churn = 1 - t["p_alive"].to_numpy() * np.exp(-t["dropout_rate"].to_numpy() * HORIZON)
    return pd.DataFrame(
        {
            "account_id": t["account_id"],
            "clv": t["expected_value_given_history"],
            "p_churn": p_churn,
            "referral_value": t["referral_value_given_history"],
            "p_alive": t["p_alive"],
        }
    )


def test_doctests():
    result = doctest.testmod(evaluation_module)
    assert result.attempted >= 3
    assert result.failed == 0


# --------------------------------------------------------------------------------------- simple rules


def test_equal_hours():
    np.testing.assert_allclose(equal_hours(4, 10.0), 2.5)
    np.testing.assert_allclose(equal_hours(4, 10.0, cap=2.0), 2.0)
    assert equal_hours(3, 6.0, eligible=[False, False, False]).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="one flag per account"):
        equal_hours(3, 6.0, eligible=[True])
    with pytest.raises(InfeasibleError):
        equal_hours(3, -1.0)


def test_hours_by_revenue_without_cap_is_proportional():
    h = hours_by_revenue([1.0, 3.0, 0.0, -5.0], 8.0)
    assert h.tolist() == [2.0, 6.0, 0.0, 0.0]
    np.testing.assert_allclose(hours_by_revenue([0.0, 0.0], 8.0), 4.0)


def test_hours_by_revenue_when_every_buyer_hits_the_cap():
    h = hours_by_revenue([10.0, 5.0, 0.0], 100.0, cap=3.0)
    assert h.tolist() == [3.0, 3.0, 0.0]


def test_hours_by_revenue_is_scale_free():
    expected = hours_by_revenue([2.0, 1.0, 1.0], 3.0, cap=1.4)
    for factor in (5e-324, 1e-300, 1e300):
        np.testing.assert_allclose(
            hours_by_revenue(np.array([2.0, 1.0, 1.0]) * factor, 3.0, cap=1.4), expected
        )
    assert expected.tolist() == pytest.approx([1.4, 0.8, 0.8])


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 40), elements=st.one_of(st.just(0.0), st.floats(1e-3, 1e6))),
    st.floats(0.1, 500),
    st.floats(0.5, 50),
)
def test_hours_by_revenue_water_fills_the_cap(revenue, hours, cap):
    h = hours_by_revenue(revenue, hours, cap=cap)
    assert np.all(h >= 0)
    assert np.all(h <= cap * (1 + 1e-9))
    positive = revenue > 0
    if not positive.any():
        return
    assert np.all(h[~positive] == 0)
    room = cap * positive.sum()
    assert h.sum() == pytest.approx(min(hours, room), rel=1e-9, abs=1e-9)
    # below the cap hours are proportional to revenue, with one common factor
    free = positive & (h < cap * (1 - 1e-9))
    if free.any():
        factor = h[free] / revenue[free]
        np.testing.assert_allclose(factor, factor[0], rtol=1e-7)
        assert np.all(revenue[~free & positive] * factor[0] >= cap * (1 - 1e-7))


def test_top_n_by_revenue():
    h = top_n_by_revenue([5.0, 9.0, 1.0, 7.0], 4.0, cap=2.0)
    assert h.tolist() == [0.0, 2.0, 0.0, 2.0]
    assert top_n_by_revenue([1.0, 2.0], 10.0, cap=2.0).tolist() == [2.0, 2.0]
    with pytest.raises(ConfigError, match="cap"):
        top_n_by_revenue([1.0], 1.0, cap=0.0)


def test_past_revenue_counts_the_window_only():
    tx = pd.DataFrame(
        {
            "account_id": [1, 1, 2, 2, 3],
            "ts": pd.to_datetime(["2023-12-31", "2024-06-01", "2024-12-31", "2025-01-01", "2024-03-01"]),
            "amount": [100.0, 10.0, 5.0, 1000.0, -2.0],
        }
    )
    revenue = past_revenue(tx, [1, 2, 3, 4], "2025-01-01", window_days=365)
    assert revenue.to_dict() == {1: 10.0, 2: 5.0, 3: -2.0, 4: 0.0}
    with pytest.raises(ConfigError):
        past_revenue(tx, [1], "2025-01-01", window_days=0)


def test_simple_rule_hours_on_a_world(world):
    rules = simple_rule_hours(world, 200.0, cap=5.0)
    assert set(rules) == set(SIMPLE_RULES)
    revenue = past_revenue(world.transactions, world.truth["account_id"], world.end).to_numpy()
    for name, h in rules.items():
        assert h.shape == (world.n_accounts,)
        assert h.sum() == pytest.approx(200.0), name
        assert h.max() <= 5.0 + 1e-9, name
    assert np.all(rules["equal"][revenue <= 0] == 0)
    assert (rules["top_n"] == 5.0).sum() == 40


def test_simple_rules_with_floors_give_the_floors_first(world):
    ids = world.truth["account_id"].to_numpy()
    floor = pd.Series(0.5, index=ids[::2])  # every other account, by id
    rules = simple_rule_hours(world, 300.0, cap=5.0, floor=floor)
    floors = floor.reindex(ids).fillna(0.0).to_numpy()
    for name, h in rules.items():
        assert h.sum() == pytest.approx(300.0), name
        assert (h >= floors - 1e-12).all(), name
        assert h.max() <= 5.0 + 1e-9, name
    # the rest is shared the rule's way: in proportion to revenue below the cap, equally, or top first
    revenue = past_revenue(world.transactions, ids, world.end).to_numpy()
    extra = rules["by_revenue"] - floors
    free = (rules["by_revenue"] < 5.0 - 1e-9) & (revenue > 0)
    np.testing.assert_allclose(extra[free] / revenue[free], (extra[free] / revenue[free])[0], rtol=1e-9)
    bought = revenue > 0
    np.testing.assert_allclose((rules["equal"] - floors)[bought], (rules["equal"] - floors)[bought][0])
    order = np.argsort(-revenue, kind="stable")
    full = (rules["top_n"] - floors)[order] >= (5.0 - floors[order]) - 1e-9  # filled to the cap
    first_gap = int(np.argmin(full))
    assert first_gap > 0
    assert not full[first_gap:].any()  # the top accounts by revenue are filled first, in order
    assert ((rules["top_n"] - floors)[order][first_gap + 1 :] == 0).all()
    with pytest.raises(InfeasibleError, match="short"):
        simple_rule_hours(world, 10.0, floor=1.0)
    with pytest.raises(InfeasibleError, match="above the cap"):
        simple_rule_hours(world, 1e6, cap=1.0, floor=2.0)


@given(
    revenue=arrays(float, st.integers(1, 30), elements=st.floats(0, 1e6)),
    share=st.floats(0, 3),
    cap=st.floats(0.5, 10),
    floor=st.floats(0, 0.5),
)
@settings(max_examples=200, deadline=None)
def test_floored_rules_keep_floor_cap_and_total(revenue, share, cap, floor):
    n = revenue.size
    floors = np.where(np.arange(n) % 2 == 0, floor, 0.0)
    hours = floors.sum() + share * n
    for h in (
        hours_by_revenue(revenue, hours, cap=cap, floor=floors),
        top_n_by_revenue(revenue, hours, cap=cap, floor=floors),
        equal_hours(n, hours, cap=cap, floor=floors),
    ):
        assert (h >= floors - 1e-12).all()
        assert (h <= cap * (1 + 1e-9)).all()
        assert h.sum() == pytest.approx(min(hours, n * cap), rel=1e-9, abs=1e-9) or (
            revenue.sum() > 0 and h.sum() <= hours * (1 + 1e-9)  # revenue-led rules: zero-revenue rows wait
        )


# ----------------------------------------------------------------------------------------- comparison


def test_oracle_is_the_best_and_scores_itself_one(world):
    hours = 150.0
    rules = simple_rule_hours(world, hours, cap=10.0)
    oracle = oracle_hours(world, hours, HORIZON, cap=10.0)
    table = compare_allocations(world, {**rules, "same_as_oracle": oracle}, HORIZON, cap=10.0)
    assert table["policy"].tolist() == [*SIMPLE_RULES, "same_as_oracle", "oracle"]
    by = table.set_index("policy")
    assert by.loc["oracle", "share_of_oracle"] == 1.0
    assert by.loc["same_as_oracle", "share_of_oracle"] == pytest.approx(1.0)
    assert (by["share_of_oracle"] <= 1 + 1e-9).all()
    assert by.loc[list(SIMPLE_RULES), "vs_best_rule"].max() == pytest.approx(0.0)
    assert by.loc["oracle", "hours"] == pytest.approx(hours)
    # the true gain is the world's own, and revenue is the world's expected value with those hours
    stake = world.stake_and_scale(HORIZON)
    expected = gain(stake["stake"], stake["effort_scale"], rules["by_revenue"]).sum()
    assert by.loc["by_revenue", "true_gain"] == pytest.approx(expected)
    revenue = world.expected_value(HORIZON, rules["equal"])["total"].sum()
    assert by.loc["equal", "revenue"] == pytest.approx(revenue)
    assert by.loc["equal", "revenue_per_hour"] == pytest.approx(revenue / hours)
    assert by.loc["equal", "gain_per_hour"] == pytest.approx(by.loc["equal", "true_gain"] / hours)


def test_series_hours_by_account_id_and_zero_hours(world):
    ids = world.truth["account_id"]
    some = pd.Series(2.0, index=ids.iloc[:10].to_numpy())
    table = compare_allocations(world, {"some": some, "none": np.zeros(len(ids))}, HORIZON, hours=20.0)
    by = table.set_index("policy")
    assert by.loc["some", "hours"] == pytest.approx(20.0)
    assert by.loc["none", "true_gain"] == 0.0
    assert np.isnan(by.loc["none", "revenue_per_hour"])
    assert table["vs_best_rule"].isna().all()  # no simple rule among the policies


def test_comparison_errors(world):
    ids = world.truth["account_id"].to_numpy()
    with pytest.raises(SchemaError) as info:
        compare_allocations(world, {"x": pd.Series([1.0], index=[ids.max() + 1])}, HORIZON)
    assert info.value.problems[0].column == "account_id"
    with pytest.raises(SchemaError, match="more than once"):
        compare_allocations(world, {"x": pd.Series([1.0, 1.0], index=[ids[0], ids[0]])}, HORIZON)
    with pytest.raises(SchemaError, match="aligned"):
        compare_allocations(world, {"x": np.ones(3)}, HORIZON)
    with pytest.raises(InfeasibleError, match="finite and >= 0"):
        compare_allocations(world, {"x": -np.ones(ids.size)}, HORIZON)
    with pytest.raises(ConfigError, match="oracle"):
        compare_allocations(world, {"oracle": np.ones(ids.size)}, HORIZON)


def test_oracle_with_rep_capacity_respects_it(world):
    owners = world.accounts.set_index("account_id")["owner"].reindex(world.truth["account_id"])
    rep = owners.iloc[0]
    h = oracle_hours(world, 100.0, HORIZON, capacity={rep: 5.0})
    assert h[(owners == rep).to_numpy()].sum() <= 5.0 * (1 + 1e-9)
    assert h.sum() == pytest.approx(100.0)


def test_kamml_on_true_scores_gets_most_of_the_oracle_and_beats_the_rules(world):
    """With scores an oracle of the parameters would give, kamml's stake and effort rules capture most
    of the achievable gain when hours are scarce (0.2 per account)."""
    hours = 0.2 * world.n_accounts
    cfg = AllocationConfig(hours=hours, floor_hours=0.0, cap_hours=40.0)
    table = allocate(truth_scores(world), hours, cfg)
    result = evaluate_allocation(world, table, HORIZON, cap=cfg.cap_hours)
    assert result["policy"].tolist() == ["kamml", *SIMPLE_RULES, "oracle"]
    by = result.set_index("policy")
    np.testing.assert_allclose(by["hours"], hours, rtol=1e-8)
    assert by.loc["kamml", "share_of_oracle"] >= 0.8
    assert by.loc["kamml", "vs_best_rule"] > 0.1
    assert by.loc["kamml", "revenue_per_hour"] > by.loc[list(SIMPLE_RULES), "revenue_per_hour"].max()


def test_evaluate_allocation_holds_rules_and_oracle_to_the_plan_floors(world):
    """A plan with a minimum touch is compared with rules and an oracle that give the same touch."""
    hours = 0.5 * world.n_accounts
    cfg = AllocationConfig(hours=hours, floor_hours=0.25, cap_hours=40.0)
    scores = truth_scores(world)
    table = allocate(scores, hours, cfg)
    floors = floor_hours(scores, cfg)
    assert 0 < floors.sum() < hours
    result = evaluate_allocation(world, table, HORIZON, cap=cfg.cap_hours, floor=floors).set_index("policy")
    ids = world.truth["account_id"].to_numpy()
    rules = simple_rule_hours(world, hours, cap=40.0, floor=floors)
    stake = world.stake_and_scale(HORIZON)
    for name in SIMPLE_RULES:
        expected = gain(stake["stake"], stake["effort_scale"], rules[name]).sum()
        assert result.loc[name, "true_gain"] == pytest.approx(expected), name
    oracle = oracle_hours(world, hours, HORIZON, floor=floors.reindex(ids).to_numpy(), cap=40.0)
    assert result.loc["oracle", "true_gain"] == pytest.approx(world.true_gain(oracle, HORIZON))
    # the same plan against unfloored rules: they are free to skip the touch, so they look better
    unfloored = evaluate_allocation(world, table, HORIZON, cap=cfg.cap_hours).set_index("policy")
    best = result.loc[list(SIMPLE_RULES), "true_gain"].max()
    assert unfloored.loc[list(SIMPLE_RULES), "true_gain"].max() > best


def test_evaluate_allocation_needs_the_columns(world):
    with pytest.raises(SchemaError) as info:
        evaluate_allocation(world, pd.DataFrame({"account_id": [1]}), HORIZON)
    assert [p.column for p in info.value.problems] == ["recommended_hours"]
