import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from kamml.datasets import _synthetic_sim, synthetic
from kamml.datasets._synthetic_params import WorldParams, draw_accounts
from kamml.datasets._synthetic_sim import Calendar
from kamml.datasets._synthetic_truth import new_account_curve, own_value, p_order
from kamml.errors import ConfigError, DataError, InfeasibleError, SchemaError

N = 3_000


@pytest.fixture(scope="module")
def world():
    return synthetic.generate(N, seed=11)


@pytest.fixture(scope="module")
def small():
    return synthetic.generate(300, seed=5, years=1.0)


def _frames(w):
    return [w.transactions, w.accounts, w.referrals, w.activities, w.truth, w.effort]


# ---- determinism, schema, integrity ----------------------------------------------------------------------


def test_same_seed_same_world_and_other_seed_other_world(small):
    again = synthetic.generate(300, seed=5, years=1.0)
    for a, b in zip(_frames(small), _frames(again), strict=True):
        pd.testing.assert_frame_equal(a, b)
    other = synthetic.generate(300, seed=6, years=1.0)
    assert not small.transactions["amount"].equals(other.transactions["amount"])


def test_schemas_and_dtypes(world):
    tx = world.transactions
    assert list(tx.columns) == ["transaction_id", "account_id", "ts", "amount", "quantity", "product"]
    assert tx.dtypes.astype(str).tolist() == [
        "int64",
        "int64",
        "datetime64[ns]",
        "float64",
        "float64",
        "object",
    ]
    assert tx["transaction_id"].is_unique
    assert tx["ts"].is_monotonic_increasing
    assert set(tx["product"]) == set(world.params.products)
    acc = world.accounts
    assert list(acc.columns) == ["account_id", "created_at", "owner", "segment", "industry", "region", "size"]
    assert acc.dtypes.astype(str).tolist() == [
        "int64",
        "datetime64[ns]",
        "object",
        "object",
        "object",
        "object",
        "int64",
    ]
    assert acc["account_id"].tolist() == list(range(1, N + 1))
    assert set(acc["segment"]) == {"SMB", "mid-market", "enterprise"}
    assert acc["owner"].str.fullmatch(r"rep_\d{2}").all()
    assert acc["owner"].nunique() == 6  # n_accounts / 500
    ref = world.referrals
    assert ref.dtypes.astype(str).tolist() == ["int64", "int64", "datetime64[ns]"]
    act = world.activities
    assert act.dtypes.astype(str).tolist() == ["int64", "datetime64[ns]", "float64", "object"]
    assert set(act["kind"]) == {"call", "meeting", "demo", "email"}
    assert (act["hours"] > 0).all()
    assert (act["hours"] * 4 == np.round(act["hours"] * 4)).all()
    truth = world.truth
    assert truth["account_id"].tolist() == list(range(1, N + 1))
    assert truth["alive"].dtype == bool
    assert truth.drop(columns=["churned_at"]).notna().all().all()
    assert truth["churned_at"].isna().eq(truth["alive"]).all()
    assert world.end == pd.Timestamp("2026-01-01")
    assert world.start == pd.Timestamp("2023-01-01")


def test_no_row_at_or_after_end_and_none_before_start(world):
    for frame in (world.transactions, world.referrals, world.activities):
        assert (frame["ts"] < world.end).all()
        assert (frame["ts"] >= world.start).all()
    assert (world.accounts["created_at"] < world.end).all()
    assert (world.truth["churned_at"].dropna() < world.end).all()


def test_referential_integrity(world):
    ids = set(world.accounts["account_id"])
    assert set(world.transactions["account_id"]) <= ids
    assert set(world.activities["account_id"]) <= ids
    ref = world.referrals
    assert set(ref["referrer_id"]) | set(ref["referred_id"]) <= ids
    assert ref["referred_id"].is_unique
    created = world.accounts.set_index("account_id")["created_at"]
    # a referred account is created at the referral, by an account created before it
    assert (created.loc[ref["referred_id"]].to_numpy() == ref["ts"].to_numpy()).all()
    assert (created.loc[ref["referrer_id"]].to_numpy() < ref["ts"].to_numpy()).all()
    # every account created during the history orders at creation, and never before it
    first = world.transactions.groupby("account_id")["ts"].min()
    new = created[created >= world.start]
    assert (first.reindex(new.index) == new).all()
    assert (first >= created.reindex(first.index).clip(lower=world.start)).all()
    # effort is only planned for accounts that existed at the start of the period
    eff = world.effort.merge(world.accounts[["account_id", "created_at"]], on="account_id")
    assert (eff["created_at"] < eff["period_start"]).all()


def test_exactly_n_accounts_for_several_sizes():
    for n in (1, 7, 120):
        w = synthetic.generate(n, seed=n, years=0.5)
        assert len(w.accounts) == n == len(w.truth)
        assert w.accounts["owner"].nunique() <= 2


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_a_tiny_book_is_generated_for_every_seed(n):
    """`generate --accounts 1 --seed 1` raised IndexError when no account-period had hours."""
    for seed in range(10):
        w = synthetic.generate(n, seed=seed)
        assert len(w.accounts) == n == len(w.truth)  # exactly n: a lone family that referred gave 0
        assert set(w.referrals["referrer_id"]) | set(w.referrals["referred_id"]) <= set(
            w.accounts["account_id"]
        )
        assert w.activities["hours"].sum() == pytest.approx(w.effort["hours"].sum(), abs=0.25 * len(w.effort))


def test_realistic_volume_and_shapes(world):
    tx = world.transactions
    per_account = len(tx) / len(world.accounts)
    assert 10 <= per_account <= 40
    assert (tx["amount"] < 0).mean() > 0.005  # refunds
    assert (tx["amount"] == 0).mean() > 0.005  # zero lines
    assert tx.assign(day=tx["ts"].dt.floor("D")).duplicated(["account_id", "day"]).any()  # same-day repeats
    assert (tx.loc[tx["amount"] < 0, "quantity"] == 0).all()
    # heavy tail: the top 10 % of accounts bring most of the revenue
    revenue = tx.groupby("account_id")["amount"].sum().sort_values(ascending=False)
    assert revenue.iloc[: len(revenue) // 10].sum() > 0.4 * revenue.sum()
    # seasonality: more orders per day in December than in August
    months = tx.loc[tx["amount"] > 0, "ts"].dt.month.value_counts()
    assert months[12] / 31 > 1.4 * months[8] / 31
    # licence expansion: seats grow in expanding accounts, not in the others
    paid = tx[tx["quantity"] > 0].merge(world.truth[["account_id", "growth"]], on="account_id")
    ends = paid.groupby("account_id").agg(
        first=("quantity", "first"), last=("quantity", "last"), g=("growth", "first")
    )
    assert (ends["last"] >= ends["first"]).all()
    assert (ends.loc[ends["g"] == 0, "last"] == ends.loc[ends["g"] == 0, "first"]).all()
    assert (ends.loc[ends["g"] > 0, "last"] > ends.loc[ends["g"] > 0, "first"]).mean() > 0.5
    # a share of the new accounts are referred
    new = (world.accounts["created_at"] >= world.start).sum()
    assert 0.15 < len(world.referrals) / new < 0.5


def test_invalid_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        synthetic.generate(0)
    with pytest.raises(ConfigError):
        synthetic.generate(10, years=0.01)
    with pytest.raises(ConfigError):
        synthetic.generate(10, n_reps=0)
    with pytest.raises(ConfigError):
        WorldParams(seasonality=(1.0,) * 11)


_ACCOUNTS = (
    r"^n_accounts \(data\.generate\.accounts\) must be a whole number of accounts from 1 to 2,000,000, "
)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"n_accounts": 10.5}, _ACCOUNTS + r"got 10\.5$"),
        ({"n_accounts": "10"}, _ACCOUNTS + r"got '10'$"),
        ({"n_accounts": True}, _ACCOUNTS + r"got True$"),
        ({"n_accounts": float("nan")}, _ACCOUNTS + r"got nan$"),
        ({"n_accounts": 10, "n_reps": 2.5}, r"n_reps must be a whole number >= 1, got 2\.5"),
    ],
)
def test_counts_that_are_not_whole_numbers_are_config_errors(kwargs, says):
    """10.5 accounts or 2.5 reps were numpy's TypeError ("expected a sequence of integers"), and True
    made a world of one account. Accounts are said as ``data.generate.accounts`` says them (with the
    range: "n_accounts must be a whole number >= 1" named none); a whole float is a count, as there."""
    with pytest.raises(ConfigError, match=says):
        synthetic.generate(**kwargs, seed=1, years=0.5)
    synthetic.generate(np.int64(3), seed=1, years=0.5, n_reps=np.int64(1))  # numpy's whole numbers pass
    world = synthetic.generate(3.0, seed=1, years=0.5)  # as `accounts: 3.0` in a config
    assert world.accounts.equals(synthetic.generate(3, seed=1, years=0.5).accounts)


def test_a_numpy_seed_makes_a_world_that_writes_and_a_bool_seed_is_refused(tmp_path):
    """np.int64(3) passed as a seed, but `World.write` then failed on json ("int64 is not JSON
    serializable") after writing every table but the transactions; True was taken as seed 1."""
    world = synthetic.generate(20, seed=np.int64(3), years=0.5)
    assert type(world.seed) is int
    world.write(tmp_path / "w")
    assert synthetic.read_world(tmp_path / "w").seed == 3
    with pytest.raises(
        ConfigError, match=r"seed \(data.generate.seed\) must be a whole number >= 0, got True"
    ):
        synthetic.generate(20, seed=True, years=0.5)


@pytest.mark.parametrize("years", [True, "1", None, float("inf")])
def test_years_that_are_no_number_are_config_errors_showing_the_value(years):
    """True was taken as one year (seed and n_accounts refuse it), and "1" was said to be "got 1"."""
    with pytest.raises(
        ConfigError, match=rf"must be a number of years up to 100, got {re.escape(repr(years))}"
    ):
        synthetic.generate(5, seed=1, years=years)


def test_numpy_years_make_the_world_of_the_same_python_number():
    """np.int64(1) (a grid over np.arange) was refused as "must be a number of years up to 100, got 1"."""
    expected = synthetic.generate(5, seed=1, years=1)
    for years in (np.int64(1), np.float64(1.0)):
        world = synthetic.generate(5, seed=1, years=years)
        pd.testing.assert_frame_equal(world.transactions, expected.transactions)
        assert world.end == expected.end


@pytest.mark.parametrize(
    ("start", "says"),
    [
        (None, r"start must be a date \(YYYY-MM-DD\), got None"),
        ("notadate", r"start must be a date \(YYYY-MM-DD\), got 'notadate'"),
        ("2023-01-01T00:00+02:00", r"start must be timezone-naive, got '2023-01-01T00:00\+02:00'"),
    ],
)
def test_a_start_that_is_no_date_is_a_config_error_saying_so(start, says):
    """None was an AttributeError ('NaTType' object has no attribute 'normalize'); a string that is no
    date or has a time zone was said to leave "the dates pandas can hold"."""
    with pytest.raises(ConfigError, match=says):
        synthetic.generate(5, start=start)


def test_a_horizon_that_is_no_number_is_a_config_error(small):
    """None was int()'s TypeError, NaN its ValueError, True a horizon of 1 day; "30" was refused with a
    message showing 30, as if the number were bad."""
    for days in (None, "30", [30], float("nan"), float("inf"), True):
        with pytest.raises(
            ConfigError, match=r"horizon_days must be a whole number of days from 1 to 36,525, got"
        ):
            synthetic.generate(5, horizon_days=days)
        with pytest.raises(ConfigError, match="horizon_days must be"):
            small.expected_value(days)


def test_dates_or_horizons_beyond_pandas_range_are_config_errors(small):
    """They were pandas' OutOfBoundsDatetime or OutOfBoundsTimedelta; a horizon of 0 or less gave
    `served_probability` a k of 0 or negative chances."""
    with pytest.raises(ConfigError, match=r"start 2200-01-01 with 100 years .* leaves the dates"):
        synthetic.generate(5, start="2200-01-01", years=100)
    with pytest.raises(ConfigError, match=r"start 1600-01-01 .* leaves the dates"):
        synthetic.generate(5, start="1600-01-01")
    with pytest.raises(ConfigError, match=r"horizon_days must be a whole number of days from 1 to 36,525"):
        synthetic.generate(5, horizon_days=40_000)
    for method in (small.expected_value, small.p_purchase, small.simulate_future):
        with pytest.raises(ConfigError, match="horizon_days must be"):
            method(10**6)
    for days in (0, -30):
        with pytest.raises(ConfigError, match="horizon_days must be"):
            small.served_probability(1.0, days)
    assert small.served_probability(1.0, 36_525).shape == (small.n_accounts,)


# ---- behaviour in the history ------------------------------------------------------------------------------


def test_logged_activities_add_up_to_the_effort(world):
    act = world.activities.copy()
    bounds = np.sort(world.effort["period_start"].unique())
    act["period"] = np.searchsorted(bounds, act["ts"].to_numpy(), side="right") - 1
    logged = act.groupby(["account_id", "period"])["hours"].sum()
    planned = world.effort.set_index(["account_id", "period"])["hours"]
    planned = planned[planned > 0]
    pd.testing.assert_series_equal(logged.sort_index(), planned.sort_index(), check_names=False)
    u = -np.expm1(
        -world.effort["hours"]
        / world.effort["account_id"].map(world.truth.set_index("account_id")["effort_scale"])
    )
    np.testing.assert_allclose(world.effort["u"], u)


def _period_table(world):
    eff = world.effort.copy()
    starts = np.sort(eff["period_start"].unique())
    ends = np.r_[starts[1:], np.datetime64(world.end)]
    eff["period_end"] = eff["period"].map(dict(enumerate(ends)))
    return eff.merge(world.truth, on="account_id")


def test_effort_moves_purchases_and_dropout(world):
    eff = _period_table(world)
    days = (eff["period_end"] - eff["period_start"]).dt.days
    # purchases: alive accounts (alive throughout), rows per unit of latent rate, served vs not
    orders = world.transactions[world.transactions["quantity"] > 0]
    bounds = np.sort(eff["period_start"].unique())
    period = np.searchsorted(bounds, orders["ts"].to_numpy(), side="right") - 1
    counts = orders.groupby([orders["account_id"].to_numpy(), period]).size()
    eff["orders"] = (
        counts.reindex(pd.MultiIndex.from_arrays([eff["account_id"], eff["period"]])).fillna(0).to_numpy()
    )
    live = eff[eff["alive"]]
    exposure = live["purchase_rate"] * days[eff["alive"]]
    served = live["served"].to_numpy()
    rate_served = live["orders"][served].sum() / exposure[served].sum()
    rate_not = live["orders"][~served].sum() / exposure[~served].sum()
    assert rate_served / rate_not > 1.25  # uplift_purchase averages 0.45
    # dropout: churn hazard per unit of latent hazard, served vs not
    alive_at_start = eff["churned_at"].isna() | (eff["churned_at"] >= eff["period_start"])
    eff = eff[alive_at_start]
    stop = eff["churned_at"].fillna(world.end).clip(upper=eff["period_end"])
    exposure = eff["dropout_rate"] * (stop - eff["period_start"]).dt.total_seconds() / 86_400
    died = (eff["churned_at"] < eff["period_end"]).to_numpy()
    served = eff["served"].to_numpy()
    hazard_served = died[served].sum() / exposure[served].sum()
    hazard_not = died[~served].sum() / exposure[~served].sum()
    assert hazard_served / hazard_not < 0.8  # uplift_dropout averages 0.45


def test_policy_gives_more_hours_to_bigger_accounts(world):
    hours = world.effort.groupby("account_id")["hours"].mean()
    size = world.accounts.set_index("account_id")["size"].reindex(hours.index)
    assert stats.spearmanr(hours, size).statistic > 0.3
    assert (world.effort["hours"] == 0).mean() > 0.2  # random zero periods


def test_referral_counts_follow_influence(world):
    acc = world.accounts.set_index("account_id")
    truth = world.truth.set_index("account_id")
    start = acc["created_at"].clip(lower=world.start)
    stop = truth["churned_at"].fillna(world.end)
    years = (stop - start).dt.total_seconds() / (365.25 * 86_400)
    made = world.referrals["referrer_id"].value_counts().reindex(acc.index, fill_value=0)
    ok = years > 0.5
    rate = made[ok] / years[ok]
    quintile = pd.qcut(truth.loc[ok, "influence"], 5, labels=False)
    by_q = rate.groupby(quintile).mean()
    assert by_q.is_monotonic_increasing
    assert by_q.iloc[-1] > 4 * by_q.iloc[0]
    # ... and influence is only weakly tied to value
    assert (
        abs(stats.spearmanr(truth["influence"], truth["purchase_rate"] * truth["order_value"]).statistic)
        < 0.3
    )


def test_p_alive_is_calibrated_and_sharp(world):
    truth = world.truth
    alive = truth["alive"].to_numpy()
    p = truth["p_alive"].to_numpy()
    assert abs(p.mean() - alive.mean()) < 0.03
    bins = pd.cut(p, [0, 0.2, 0.5, 0.8, 0.95, 1.0], include_lowest=True)
    calib = pd.DataFrame({"p": p, "alive": alive}).groupby(bins, observed=True).mean()
    assert (calib["p"] - calib["alive"]).abs().max() < 0.1
    assert np.mean((p - alive) ** 2) < 0.5 * alive.mean() * (1 - alive.mean())  # Brier beats the base rate


# ---- exact truth -------------------------------------------------------------------------------------------


def test_truth_columns_match_methods(world):
    truth = world.truth
    ev0 = world.expected_value(180)
    ev1 = world.expected_value(180, 1e6)
    np.testing.assert_allclose(ev0["value"], truth["expected_value"])
    np.testing.assert_allclose(ev0["referral_value"], truth["referral_value"])
    np.testing.assert_allclose(ev1["total"], truth["total_value_served"])
    dead = ~truth["alive"]
    assert (truth.loc[dead, ["expected_value", "expected_value_served", "referral_value"]] == 0).all().all()
    assert (truth["expected_value_served"] >= truth["expected_value"]).all()
    assert (truth["referral_value_served"] >= truth["referral_value"]).all()


def test_p_purchase_matches_the_simulated_future(world):
    """The chance of an order in the horizon: exact for the alive accounts against the world's own
    simulator, and given the history calibrated over the book (the oracle's 1 - p_churn)."""
    runs, horizon = 60, 90
    sim = world.simulate_future(horizon, 0.0, n_runs=runs, seed=3)
    ordered = sim["value"].ne(0).groupby(sim["account_id"]).mean().reindex(world.truth["account_id"])
    alive = world.truth["alive"].to_numpy()
    cal = Calendar.build(world.end, float(horizon), world.params.season)
    exact = p_order(cal, world.truth["purchase_rate"].to_numpy(), world.truth["dropout_rate"].to_numpy())
    se = np.sqrt(np.sum(exact[alive] * (1 - exact[alive])) / runs)
    assert abs(ordered.to_numpy()[alive].sum() - exact[alive].sum()) < 4 * se
    given = world.p_purchase(horizon)
    np.testing.assert_allclose(given, world.truth["p_alive"].to_numpy() * exact)
    assert abs(given.mean() - ordered.mean()) < 0.03
    assert world.p_purchase(30).mean() < given.mean() < world.p_purchase(365).mean()


def test_expected_value_is_linear_in_u(world):
    rng = np.random.default_rng(0)
    hours = rng.gamma(1.0, 5.0, world.n_accounts)
    ev = world.expected_value(180, hours)
    k = world.horizon_effort_scale(180)
    np.testing.assert_allclose(k, world.truth["effort_scale"].to_numpy() * 180 / (365.25 / 4))
    u = -np.expm1(-hours / k)
    t = world.truth
    np.testing.assert_allclose(
        ev["value"], t["expected_value"] + u * (t["expected_value_served"] - t["expected_value"])
    )
    expected_total = t["total_value"] + u * (t["total_value_served"] - t["total_value"])
    np.testing.assert_allclose(ev["total"], expected_total)
    # a Series by account_id: missing accounts get no hours
    some = pd.Series(hours[:10], index=t["account_id"][:10])
    ev_some = world.expected_value(180, some)
    np.testing.assert_allclose(ev_some["total"][:10], ev["total"][:10])
    np.testing.assert_allclose(ev_some["total"][10:], t["total_value"][10:])


def test_true_gain_zero_monotone_concave_and_consistent(world):
    assert world.true_gain(0.0, 180) == 0.0
    grid = np.linspace(0, 20, 21)
    gains = np.array([world.true_gain(h, 180) for h in grid])
    assert np.all(np.diff(gains) > 0)
    assert np.all(np.diff(gains, 2) < 0)
    hours = np.random.default_rng(1).gamma(1.0, 3.0, world.n_accounts)
    direct = world.expected_value(180, hours)["total"].sum() - world.expected_value(180)["total"].sum()
    assert world.true_gain(hours, 180) == pytest.approx(direct, rel=1e-10)
    # the oracle's view: stake x (1 - exp(-h / k))
    sk = world.stake_and_scale(180)
    np.testing.assert_allclose(sk[["retention", "growth", "referral"]].sum(axis=1), sk["stake"])
    np.testing.assert_allclose(sk["stake"], world.truth["total_value_served"] - world.truth["total_value"])
    assert (sk[["retention", "growth", "referral"]] >= 0).all().all()
    weighted = world.stake_and_scale(180, {"growth": 0.3, "referral": 0.5})
    np.testing.assert_allclose(weighted["stake"], sk["retention"] + 0.3 * sk["growth"] + 0.5 * sk["referral"])
    auto = world.stake_and_scale(180, {"growth": "auto"})  # kamml's default: the true growth as it is
    np.testing.assert_allclose(auto["stake"], sk["stake"])
    # longer horizons are worth more
    assert world.true_gain(5.0, 365) > world.true_gain(5.0, 180)


def test_hours_and_weights_are_validated(world):
    with pytest.raises(InfeasibleError):
        world.true_gain(-1.0, 180)
    with pytest.raises(InfeasibleError):
        world.expected_value(180, np.full(world.n_accounts, np.nan))
    with pytest.raises(SchemaError):
        world.expected_value(180, np.ones(3))
    with pytest.raises(SchemaError, match="not in the world"):
        world.true_gain(pd.Series([1.0], index=[10**9]), 180)
    with pytest.raises(ConfigError, match="valid: retention, growth, referral"):
        world.stake_and_scale(180, {"churn": 1.0})
    with pytest.raises(ConfigError):
        world.expected_value(0)


def test_own_value_matches_numerical_integration(world):
    t = world.truth[world.truth["alive"]].head(5)
    p = world.params
    cal = Calendar.build(world.end, 180.0, p.season)
    exact = own_value(
        cal,
        t["purchase_rate"].to_numpy(),
        t["dropout_rate"].to_numpy(),
        t["price_per_seat"].to_numpy(),
        t["seats"].to_numpy(dtype=float),
        t["growth"].to_numpy(),
        p.order_multiplier,
    )
    for i, row in enumerate(t.itertuples()):

        def density(x, row=row):
            season = cal.season[np.searchsorted(cal.breaks, x, side="right") - 1]
            return season * np.exp(-row.dropout_rate * x) * (row.seats + row.growth * x)

        numeric = sum(
            integrate.quad(density, a, b)[0] for a, b in zip(cal.breaks[:-1], cal.breaks[1:], strict=True)
        )
        numeric *= p.order_multiplier * row.price_per_seat * row.purchase_rate
        assert exact[i] == pytest.approx(numeric, rel=1e-9)


def test_new_account_curve_has_converged():
    p = WorldParams()
    cal = Calendar.build(pd.Timestamp("2026-01-01"), 365.0, p.season)
    _, w1, c1 = new_account_curve(p, cal, q=10, n_x=48)
    _, w2, c2 = new_account_curve(p, cal, q=20, n_x=96)
    # the integral of the curve over the horizon, per industry
    np.testing.assert_allclose(c1 @ w1, c2 @ w2, rtol=1e-8)


@pytest.mark.slow
def test_new_account_curve_matches_the_population():
    """The quadrature over the population equals the mean of exact per-account values of drawn accounts."""
    p = WorldParams()
    end = pd.Timestamp("2026-01-01")
    cal = Calendar.build(end, 180.0, p.season)
    t_nodes, _, curve = new_account_curve(p, cal)
    rng = np.random.default_rng(0)
    probs = np.asarray(p.industry_probs) / np.sum(p.industry_probs)
    same = p.referral_same_industry
    for industry, node in [(0, 3), (5, 45)]:
        n = 400_000
        new = draw_accounts(rng, n, p, like_industry=np.full(n, industry), like_region=np.zeros(n, dtype=int))
        rest = Calendar.build(end + pd.Timedelta(days=t_nodes[node]), 180.0 - t_nodes[node], p.season)
        v = p.order_multiplier * new.price_per_seat * new.seats0
        v = v + own_value(
            rest,
            new.lam,
            new.mu,
            new.price_per_seat,
            new.seats0.astype(float),
            new.growth,
            p.order_multiplier,
        )
        expected = same * curve[industry, node] + (1 - same) * probs @ curve[:, node]
        assert abs(v.mean() - expected) < 4 * v.std() / np.sqrt(n)


@pytest.mark.slow
def test_monte_carlo_future_matches_expected_value():
    """Simulating the future with the world's own simulator converges to the exact expectations."""
    world = synthetic.generate(300, seed=3, years=2.0)
    rng = np.random.default_rng(1)
    for hours in (0.0, rng.gamma(1.0, 4.0, world.n_accounts)):
        runs = 1_500
        sim = world.simulate_future(180, hours, n_runs=runs, seed=7)
        exact = world.expected_value(180, hours)
        totals = sim.groupby("run")[["value", "referral_value"]].sum()
        for col in ("value", "referral_value"):
            se = totals[col].std() / np.sqrt(runs)
            assert abs(totals[col].mean() - exact[col].sum()) < 4.5 * se, col
        per = sim.groupby("account_id")["value"].agg(["mean", "std"])
        alive = world.truth["alive"].to_numpy()
        z = (per["mean"] - exact["value"].to_numpy()) / (per["std"] / np.sqrt(runs))
        assert abs(z[alive].mean()) < 4 / np.sqrt(alive.sum())
        assert 0.8 < z[alive].std() < 1.25
        assert (sim.loc[~np.tile(alive, runs), "total"] == 0).all()


# ---- persistence -------------------------------------------------------------------------------------------


def test_write_and_read_round_trip(small, tmp_path):
    paths = small.write(tmp_path / "world")
    assert set(paths) == {*synthetic.TABLES, "world"}
    assert sorted(p.name for p in (tmp_path / "world").iterdir()) == sorted(p.name for p in paths.values())
    back = synthetic.World.read(tmp_path / "world")
    for a, b in zip(_frames(small), _frames(back), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert (back.start, back.end, back.seed, back.params) == (
        small.start,
        small.end,
        small.seed,
        small.params,
    )
    hours = np.linspace(0, 10, small.n_accounts)
    assert back.true_gain(hours, 90) == pytest.approx(small.true_gain(hours, 90), rel=1e-12)
    # overwriting in place works and leaves no temporary files
    small.write(tmp_path / "world")
    assert not [p for p in (tmp_path / "world").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "world.json").write_text("{not json"), r"world.json is damaged: not JSON"),
        (lambda d: (d / "world.json").write_text("[1]"), r"world.json is damaged: not a JSON object"),
        (lambda d: (d / "world.json").write_text('{"start": "2023"}'), r"lacks end, horizon_days, params"),
        (lambda d: _edit_meta(d, horizon_days="x"), r"world.json is damaged: horizon_days must be.* got 'x'"),
        (lambda d: _edit_meta(d, horizon_days=0), r"world.json is damaged: horizon_days must be"),
        (lambda d: _edit_meta(d, end="soon"), r"world.json is damaged"),
        (lambda d: (d / "truth.parquet").write_bytes(b"PAR1xx"), r"truth.parquet cannot be read"),
    ],
)
def test_a_damaged_world_folder_is_a_data_error_naming_the_file(small, tmp_path, damage, match):
    """It was a JSONDecodeError, a TypeError, a KeyError, a ValueError or pyarrow's ArrowInvalid."""
    small.write(tmp_path / "world")
    damage(tmp_path / "world")
    with pytest.raises(DataError, match=match):
        synthetic.read_world(tmp_path / "world")


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "world.json").read_text())
    (folder / "world.json").write_text(json.dumps(meta | changes))


def test_the_synthetic_docs_page_holds_the_module_documentation():
    """docs/synthetic.md says it is the module's own text; it had lost the `World.p_purchase` item."""
    from pathlib import Path

    def words(text: str) -> str:
        kept = [line for line in text.splitlines() if not set(line.strip()) <= {"-"} or not line.strip()]
        return " ".join(" ".join(kept).replace("## ", " ").split())

    doc = (Path(__file__).resolve().parents[2] / "docs" / "synthetic.md").read_text(encoding="utf-8")
    module = (synthetic.__doc__ or "").split("\nExamples\n")[0]
    assert words(module) in words(doc)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"p_zero": 1.5}, r"p_zero = 1\.5: a probability in \[0, 1\]"),
        ({"p_refund": -0.1}, r"p_refund = -0\.1: a probability in \[0, 1\]"),
        ({"referral_same_owner": 2.0}, r"referral_same_owner = 2\.0: a probability"),
        ({"refund_low": 0.9, "refund_high": 0.2}, r"refund_low = 0\.9.* at most refund_high"),
        ({"uplift_dropout": (0.6, 0.8)}, r"uplift_dropout = \(0\.6, 0\.8\): .*low \+ width <= 1"),
        ({"uplift_purchase": (-2.0, 0.5)}, r"uplift_purchase = \(-2\.0, 0\.5\)"),
        ({"purchase_rate": -0.01}, r"purchase_rate = -0\.01: a finite number >= 0"),
        ({"purchase_shape": 0.0}, r"purchase_shape = 0\.0: a finite number > 0"),
        ({"effort_scale": 0.0}, r"effort_scale = 0\.0: a finite number > 0"),
        ({"size_sigma": float("nan")}, r"size_sigma = nan: a finite number >= 0"),
        ({"period_months": 1.5}, r"period_months = 1\.5: a whole number of months"),
        ({"industry_probs": (-0.2, 0.56, 0.14, 0.12, 0.12, 0.09, 0.09, 0.08)}, r"industry_probs = .*>= 0"),
        ({"industry_probs": (0.0,) * 8}, r"industry_probs = .*not all 0"),
        ({"products": (), "product_price": (), "product_mix": ()}, r"products = \(\): at least one"),
        ({"regions": ("NA", "NA", "APAC", "LATAM")}, r"regions = .*no name twice"),
        ({"smb_max": 5000}, r"smb_max = 5000: .* at most mid_max"),
    ],
)
def test_world_parameters_outside_their_range_are_refused_naming_them(change, says):
    """They were accepted: some crashed deep in numpy (``lam < 0 or lam contains NaNs``, a division by
    zero, "Non-integer years and months"), others made a world without a word that contradicts its own
    documentation (p_zero 1.5 gave negative expected values, a served hazard below 0)."""
    with pytest.raises(ConfigError, match=r"invalid synthetic world parameters: .*" + says):
        WorldParams(**change)


def test_world_parameters_at_the_edges_of_their_ranges_make_a_world():
    """The bounds are inclusive where the world is still well defined: nobody churns, nothing is zero."""
    params = WorldParams(dropout_rate=0.0, p_zero=0.0, policy_zero=1.0, uplift_dropout=(0.5, 0.5))
    world = synthetic.generate(20, seed=3, years=0.5, params=params)
    assert world.truth["alive"].all()
    assert (world.stake_and_scale(180)["stake"] >= 0).all()


def test_referrals_that_outgrow_the_book_are_a_config_error_not_a_hang(monkeypatch):
    """An influence far above the dropout (each account referring more than one that lives on) made the
    referral families grow without bound: 400 accounts over 2 years ran for minutes and gigabytes."""
    monkeypatch.setattr(_synthetic_sim, "MAX_SIMULATED", 20_000)  # the test's own, quicker limit
    params = WorldParams(influence_rate=0.05)
    with pytest.raises(ConfigError, match=r"referrals outgrow the book: .* lower influence_rate"):
        synthetic.generate(50, seed=1, years=2.0, params=params)


def test_a_nan_hour_in_a_series_is_refused_like_one_in_an_array(small):
    """A Series of hours holding NaN was filled with 0 (as an account it does not name), silently; the
    same NaN in an array is refused."""
    first = int(small.truth["account_id"].iloc[0])
    with pytest.raises(InfeasibleError, match="hours must be finite and >= 0"):
        small.true_gain(pd.Series({first: np.nan}), 90)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"n_runs": 2.5}, r"n_runs must be a whole number >= 1, got 2\.5"),
        ({"n_runs": "2"}, r"n_runs must be a whole number >= 1, got '2'"),
        ({"seed": -1}, r"seed must be a whole number >= 0, got -1"),
        ({"seed": 1.5}, r"seed must be a whole number >= 0, got 1\.5"),
    ],
)
def test_simulate_future_counts_and_seeds_are_config_errors(small, kwargs, says):
    """They were numpy's or Python's TypeError / ValueError ("expected non-negative integer")."""
    with pytest.raises(ConfigError, match=says):
        small.simulate_future(30, **kwargs)


def test_generate_refuses_a_history_that_runs_past_today_unless_allowed(tmp_path):
    """`kamml generate --years` refused a world ending after today, but the Python API generated and wrote
    one (an audit), which `kamml validate` and every job then refused as rows "in the future". It is a
    ConfigError naming start, years and today, unless `allow_future=True` asks for a dated experiment."""
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    with pytest.raises(ConfigError, match=r"years: 10 years from 2023-01-01 end on 2033-01-01, after today"):
        synthetic.generate(5, years=10)
    start = (today - pd.DateOffset(months=6)).date()
    with pytest.raises(ConfigError, match=rf"1 years from {start} end on .*after today \({today.date()}\)"):
        synthetic.generate(5, start=start, years=1.0)
    with pytest.raises(ConfigError, match=rf"start {today.date() + pd.Timedelta(days=40)} is after today"):
        synthetic.generate(5, start=today + pd.Timedelta(days=40), years=1.0)
    world = synthetic.generate(5, start=start, years=1.0, allow_future=True)
    assert world.end > today
    with pytest.raises(ConfigError, match="after today"):
        world.write(tmp_path / "w")
    assert not (tmp_path / "w").exists()  # nothing half written
    world.write(tmp_path / "w", allow_future=True)
    assert synthetic.read_world(tmp_path / "w").end == world.end


def test_the_generation_line_counts_with_thousands_separators(caplog):
    """'synthetic world: 1200 accounts, 9795 transactions, ...' read without separators (an audit)."""
    with caplog.at_level("INFO", logger="kamml.datasets.synthetic"):
        world = synthetic.generate(1200, seed=1, years=1.0)
    said = f"synthetic world: 1,200 accounts, {len(world.transactions):,} transactions, "
    assert len(world.transactions) >= 1000
    assert said in caplog.text


def test_hours_length_error_groups_the_account_count(world):
    """'hours: expected 3000 values aligned with truth.account_id' read without separators."""
    with pytest.raises(
        SchemaError, match=rf"hours: expected {N:,} values aligned with truth\.account_id, got {N - 1:,}"
    ):
        world.served_probability(np.ones(N - 1), 180)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        (
            {"n_accounts": 10**15},
            r"n_accounts \(data\.generate\.accounts\) must be a whole number of accounts from 1 to "
            r"2,000,000, got 1,000,000,000,000,000",
        ),
        (
            {"n_accounts": 100_000, "years": 100.0},
            r"n_accounts and years \(data\.generate\.accounts and data\.generate\.years\): 100,000 "
            r"accounts over 100 years are 10,000,000 account-years, above the 8,000,000",
        ),
        (
            {"n_accounts": 10, "n_reps": 10**15},
            r"n_reps must be a whole number from 1 to 2,000,000, got 1,000,000,000,000,000",
        ),
    ],
)
def test_a_world_too_big_for_the_memory_is_a_config_error_before_any_work(kwargs, says):
    """10**15 accounts (or reps) ended in numpy's MemoryError; the config's bound holds here too."""
    with pytest.raises(ConfigError, match=says):
        synthetic.generate(**{"years": 1.0, **kwargs}, seed=1, allow_future=True)
