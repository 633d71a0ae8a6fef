"""Model and allocation quality on the synthetic world, where the truth is known.

1. Value: kamml's predicted value over the horizon vs what the world then realises (simulated from `end`
   with the world's own simulator), beside the oracle's expectation from the same history
   (`expected_value_given_history`): the bar is Gini(kamml) >= 95 % of Gini(oracle).
2. Influence: kamml's referral value vs the past-referral-rate baseline, on the realised referral value.
3. Allocation: kamml's recommended hours (from kamml's own predicted scores) scored by the world's true
   expected gain, as a share of the oracle allocation's gain, beside the simple rules. The effort scales
   are estimated from the activities before the cutoff (`kamml.models.effort`, ``--effort-scale auto``,
   the default), beside the world's true mechanism, and the bundle carries them into the scores with the
   fitted uplift (the growth weight), as `kamml train` deploys it; a number gives the fixed rule with that
   scale, for a model without a fitted response (growth weight 0.3).

   With ``--floor-hours`` every active account gets that minimum touch (as ``allocation.floor_hours``;
   the demo config has 0.25): the rules give the plan's floors (the accounts kamml's scores call
   active: p_alive and 1 − p_churn, `kamml.allocation.allocate.active_accounts`), the oracle the same
   touch to the accounts the same rule calls active on the truth (`true_floors`: true p_alive and true
   chance of an order in the horizon). An hours level where the truth's floors need more hours than the
   team has (the plan's fit) is skipped with a printed line, and the run goes on.

4. With ``--ceiling``: where the gap to the oracle is. The optimizer (same hours, floors and cap) is run
   on stakes and scales that mix kamml's with the world's: the world's k with kamml's stakes; a growth
   stake from the world's own expected value given the history (`expected_value_given_history`, which
   knows every account's true rates, so about the best any model of the data can do) times the world's
   mean purchase uplift (per-account uplifts are random draws the data do not show), with kamml's k and
   with the world's k; the world's stakes with kamml's k.

Lifts are printed over the best of the three naive rules of issue 6 (``vs_best_naive_rule``: equal,
by_revenue, top_n; the README's figure; with floors, equal and by_revenue in both readings of a floor,
their share on top of it and the floor as a minimum, ``*_at_least_floor``) and over the focused
``top_n_share`` (``vs_top_n_share``) apart.

Usage: python benchmarks/synthetic_quality.py [--accounts 20000] [--seed 7] [--hours-per-account 0.1 0.2 0.5]
       [--effort-scale auto 4] [--effort-exponent 0.5] [--floor-hours 0] [--active-p-purchase 0.1]
       [--ceiling] [--years 3.0] [--flat-season] [--json FILE]

``--json`` also writes the figures (the world, the value and referral Ginis, each allocation's share of
the oracle and lifts) as JSON, which `benchmarks/synthetic_grid.py` collects over many worlds.
``--years`` sets the world's length from 2023-01-01 (3.0 ends on 2026-01-01, after December's peak; 3.5
ends mid-year); ``--flat-season`` generates the world without its monthly seasonality (docs/models.md,
"Hours, sizes and horizons the issue does not name").
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from _flags import number, whole, years
from scipy.stats import spearmanr

import kamml
from kamml.allocation import allocate, floor_hours, optimize
from kamml.datasets import synthetic
from kamml.datasets.synthetic import WorldParams
from kamml.errors import InfeasibleError
from kamml.evaluation.allocation import (
    NAIVE_RULES,
    compare_allocations,
    evaluate_allocation,
    lift_over,
    simple_rule_hours,
    true_floors,
)
from kamml.evaluation.backtest import train_bundle
from kamml.evaluation.metrics import normalized_gini, value_metrics
from kamml.features.build import build_past_window
from kamml.models.effort import EffortResponse, fit_effort_response_from_data


def _effort_scale(value: str) -> str | float:
    """An --effort-scale value: "auto" or a number of hours > 0."""
    return value if value == "auto" else number(0.0, above=True)(value)


def main() -> None:
    """Generate a world, train at its end, score, allocate, and compare with the truth."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=whole(1), default=20_000)
    parser.add_argument("--seed", type=whole(0), default=7)
    parser.add_argument("--horizon", type=whole(1), default=180)
    parser.add_argument("--hours-per-account", type=number(), nargs="+", default=[0.2])
    parser.add_argument("--effort-scale", type=_effort_scale, nargs="+", default=["auto"])
    parser.add_argument("--effort-exponent", type=number(), nargs="+", default=[0.5])
    parser.add_argument("--floor-hours", type=number(), default=0.0)
    parser.add_argument(
        "--active-p-purchase",
        type=number(0.0, 1.0),
        default=0.1,
        help="allocation.active_p_purchase; 0: P(alive) alone",
    )
    parser.add_argument("--ceiling", action="store_true", help="where the gap to the oracle is (4. above)")
    parser.add_argument(
        "--years", type=years, default=3.0, help="the world's length from 2023-01-01, ending by today"
    )
    parser.add_argument("--flat-season", action="store_true", help="no monthly seasonality in the world")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    t0 = time.perf_counter()
    params = WorldParams(seasonality=(1.0,) * 12) if args.flat_season else None
    world = synthetic.generate(
        args.accounts, seed=args.seed, horizon_days=args.horizon, years=args.years, params=params
    )
    cfg = kamml.Config.from_dict(
        {"time": {"horizon_days": args.horizon, "snapshots": 4, "step_days": 90}, "models": {"threads": 2}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        world.write(tmp)
        data = kamml.load_data(tmp, cfg)
        end = world.end.normalize()
        bundle, _ = train_bundle(data, cfg, end)
        features = kamml.build_features(data, end, cfg)
        bundle = bundle.anchor(features)  # as `kamml train` deploys it: BTYD, level and shift at `end`
        t_fit = time.perf_counter()
        response = fit_effort_response_from_data(data, end, cfg) if "auto" in args.effort_scale else None
        t_fit = time.perf_counter() - t_fit
        bundle.effort = response  # as `kamml train` does: the scores carry its effort scale and uplift
        scores = bundle.predict(features, refit_btyd=False)
        past = build_past_window(data, end, args.horizon).reindex(features.index).fillna(0.0)
    truth = world.truth.set_index("account_id").reindex(features.index)
    realised = world.simulate_future(args.horizon, 0.0, n_runs=1, seed=args.seed + 1)
    realised = realised.set_index("account_id").reindex(features.index).fillna(0.0)

    y = realised["value"].to_numpy(float)
    g_model = normalized_gini(y, scores["clv"].to_numpy(float))
    g_oracle = normalized_gini(y, truth["expected_value_given_history"].to_numpy(float))
    season = ", no seasonality" if args.flat_season else ""
    print(
        f"world: {args.accounts:,} accounts, seed {args.seed}{season}, "
        f"{len(features):,} scored at {end.date()}"
    )
    print(
        f"value Gini vs realised: kamml {g_model:.4f}, oracle {g_oracle:.4f}, ratio {g_model / g_oracle:.3f}"
    )
    print("value metrics (kamml):", {k: round(v, 4) for k, v in value_metrics(y, scores["clv"]).items()})
    # the realised future above has no sales hours (the oracle's value is without service too), while
    # kamml learns the value under the history's service: its level is checked against both
    recent = world.activities[world.activities["ts"] >= world.end - pd.Timedelta(days=args.horizon)]
    as_before = recent.groupby("account_id")["hours"].sum().reindex(world.truth["account_id"]).fillna(0.0)
    served = world.simulate_future(args.horizon, as_before.to_numpy(), n_runs=1, seed=args.seed + 1)
    total = float(scores["clv"].sum())
    print(
        f"value level: kamml's total / realised total {total / y.sum():.3f} without sales hours, "
        f"{total / served['value'].sum():.3f} with each account's hours of the last {args.horizon} days "
        "(kamml learns the value under the history's service)"
    )
    yr = realised["referral_value"].to_numpy(float)
    ref_model = value_metrics(yr, scores["referral_value"].to_numpy(float))
    ref_past = value_metrics(yr, past["referral_value"].to_numpy(float))
    ref_oracle = normalized_gini(yr, truth["referral_value_given_history"].to_numpy(float))
    print(
        f"referral Gini: kamml {ref_model['gini']:.4f}, past rate {ref_past['gini']:.4f}, "
        f"oracle {ref_oracle:.4f}"
    )
    print(f"referral Spearman: kamml {ref_model['spearman']:.4f}, past rate {ref_past['spearman']:.4f}")
    figures: dict[str, Any] = {
        "world": {
            "accounts": args.accounts,
            "seed": args.seed,
            "horizon_days": args.horizon,
            "years": args.years,
            "flat_season": args.flat_season,
            "floor_hours": args.floor_hours,
        },
        "value_gini": {"kamml": g_model, "oracle": g_oracle, "ratio": g_model / g_oracle},
        "referral_gini": {"kamml": ref_model["gini"], "past_rate": ref_past["gini"], "oracle": ref_oracle},
        "allocations": [],
    }

    scored = scores.reset_index()
    owners = world.accounts.set_index("account_id")["owner"]
    scored["owner"] = scored["account_id"].map(owners)
    if response is not None:
        _print_response(world, response, scored)
        print(f"effort response fitted in {t_fit:.1f} s")
    settings: list[tuple[str, dict[str, object]]] = []
    for scale in args.effort_scale:
        if scale == "auto" and response is not None:
            # effort_scale "auto": the allocation takes k from the scores, as `kamml allocate` does
            settings.append((f"the effort response ({response.source})", {}))
            continue
        for exponent in args.effort_exponent:
            fixed = {"effort_scale": scale, "effort_exponent": exponent, "effort_clip": (0.25, 4.0)}
            settings.append((f"effort_scale {scale}, effort_exponent {exponent}", fixed))
    for (label, effort), per_account in itertools.product(settings, args.hours_per_account):
        hours = per_account * len(features)
        update = {
            "hours": hours,
            "floor_hours": args.floor_hours,
            "active_p_purchase": args.active_p_purchase,
            "capacity": None,
            **effort,
        }
        alloc_cfg = cfg.allocation.model_copy(update=update)
        fitted = label.startswith("the effort response")
        # a fixed rule stands for a model without a fitted response: no effort scale and no uplift
        rows = scored if fitted else scored.drop(columns=["effort_scale", "effort_uplift"])
        try:
            table = allocate(rows, hours, alloc_cfg, horizon_days=args.horizon)
        except InfeasibleError as exc:  # floors above the team's hours
            print(f"allocation of {per_account:g} hours per account with {label}: {exc}")
            continue
        if response is not None and fitted and response.source == "fitted":
            k = table["effort_scale"].to_numpy(float)
            expected = scored.set_index("account_id")["effort_scale"].reindex(table["account_id"])
            assert np.allclose(k, expected, rtol=1e-9), "the allocation must take k from the scores"
        floors = floor_hours(rows, alloc_cfg)  # the floors the plan gave, and the rules
        # the oracle touches the accounts the truth calls active: given the plan's floors it inherited
        # the model's mistakes (a churned account's touch), and the plan's share of it was flattering
        truth_floors = true_floors(
            world, alloc_cfg.floor_hours, alloc_cfg.active_p_alive, alloc_cfg.active_p_purchase, args.horizon
        )
        if alloc_cfg.floor_hours > 0:
            mine, true = floors > 0, (truth_floors > 0).reindex(floors.index, fill_value=False)
            print(
                f"floors: {int(mine.sum()):,} accounts active by kamml's scores, {int(true.sum()):,} by the "
                f"truth's ({int((mine & ~true).sum()):,} only by kamml's, {int((true & ~mine).sum()):,} only "
                f"by the truth's); {float(floors.sum()):,.6g} of {hours:,.6g} hours"
            )
        heading = f"allocation of {per_account:g} hours per account with {label}"
        cap = alloc_cfg.cap_hours or 40.0
        comparison = compare_at_level(world, table, args.horizon, hours, floors, cap, truth_floors, heading)
        if comparison is None:
            continue
        print(f"{heading}:")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(comparison.round(4).to_string(index=False))
        figures["allocations"].append(_allocation_figures(comparison, label, per_account, fitted))
        if args.ceiling and fitted:
            _print_ceiling(
                world, table, args.horizon, hours, floors, alloc_cfg.cap_hours or 40.0, truth_floors
            )
    print(
        f"vs_best_naive_rule: lift over the best of {', '.join(NAIVE_RULES)} (issue 6, the README's figure); "
        "vs_top_n_share: lift over top_n_share"
    )
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))


def compare_at_level(
    world: synthetic.World,
    table: pd.DataFrame,
    horizon: int,
    hours: float,
    floors: pd.Series,
    cap: float,
    truth_floors: pd.Series,
    heading: str,
) -> pd.DataFrame | None:
    """`evaluate_allocation` of the plan with the lifts, or None and a printed line when it cannot be made.

    The truth may call more accounts active than kamml's scores, and its floors then need more hours than
    the team has while the plan's fit: that hours level is skipped with a line saying so, not the run. Any
    other InfeasibleError (a plan that breaks its limits) is a fault of kamml's and still stops it.
    """
    try:
        comparison = evaluate_allocation(
            world, table, horizon, hours=hours, floor=floors, cap=cap, oracle_floor=truth_floors
        )
    except InfeasibleError as exc:
        if "oracle_floor" not in str(exc):  # compare_allocations names the oracle's floors
            raise
        print(f"{heading}: skipped, the truth's floors do not fit ({exc})")
        return None
    return _with_lifts(comparison)


def _allocation_figures(
    comparison: pd.DataFrame, label: str, per_account: float, fitted: bool
) -> dict[str, Any]:
    """One allocation's figures for ``--json``: kamml's share of the oracle and lifts, and every policy's."""
    rows = comparison.set_index("policy")
    return {
        "effort": label,
        "fitted_response": fitted,
        "hours_per_account": per_account,
        "share_of_oracle": float(rows.at["kamml", "share_of_oracle"]),
        "vs_best_naive_rule": float(rows.at["kamml", "vs_best_naive_rule"]),
        "vs_top_n_share": float(rows.at["kamml", "vs_top_n_share"]),
        "policies": {
            str(policy): {
                "share_of_oracle": float(row["share_of_oracle"]),
                "true_gain": float(row["true_gain"]),
            }
            for policy, row in rows.iterrows()
        },
    }


def _with_lifts(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison with the two lifts the README reports, named by their rules, for vs_best_rule.

    vs_best_rule is over all four rules, top_n_share included, which the README keeps apart.
    """
    out = table.drop(columns="vs_best_rule")
    at = out.columns.get_loc("share_of_oracle") + 1
    out.insert(at, "vs_best_naive_rule", lift_over(table, NAIVE_RULES))
    out.insert(at + 1, "vs_top_n_share", lift_over(table, ["top_n_share"]))
    return out


def _print_ceiling(
    world: synthetic.World,
    table: pd.DataFrame,
    horizon: int,
    hours: float,
    floors: pd.Series,
    cap: float,
    truth_floors: pd.Series,
) -> None:
    """kamml's plan beside the optimizer on stakes and scales mixed from kamml's and the world's (4.)."""
    ids = world.truth["account_id"].to_numpy()
    plan = table.set_index("account_id").reindex(ids)
    truth = world.stake_and_scale(horizon).set_index("account_id").reindex(ids)
    given = world.truth.set_index("account_id").reindex(ids)
    k_kamml, k_world = plan["effort_scale"].to_numpy(float), truth["effort_scale"].to_numpy(float)
    stake = plan["stake"].to_numpy(float)
    growth = float(given["uplift_purchase"].mean()) * given["expected_value_given_history"].to_numpy(float)
    best_growth = stake - plan["stake_growth"].to_numpy(float) + growth
    floor = floors.reindex(ids).fillna(0.0).to_numpy(float)
    mixes = {
        "kamml stakes, world's k": (stake, k_world),
        "value given history x mean uplift, kamml's k": (best_growth, k_kamml),
        "value given history x mean uplift, world's k": (best_growth, k_world),
        "world's stakes, kamml's k": (truth["stake"].to_numpy(float), k_kamml),
    }
    policies: dict[str, npt.ArrayLike] = {"kamml": plan["recommended_hours"].fillna(0.0).to_numpy(float)}
    policies.update(simple_rule_hours(world, hours, cap=cap, window_days=365, floor=floor))
    for name, (s, k) in mixes.items():
        policies[name] = optimize(s, k, hours, floor=floor, cap=cap)
    oracle_floor = truth_floors.reindex(ids).fillna(0.0).to_numpy(float)
    table = _with_lifts(
        compare_allocations(
            world, policies, horizon, hours=hours, floor=floor, cap=cap, oracle_floor=oracle_floor
        )
    )
    shown = table[~table["policy"].isin([*NAIVE_RULES, "top_n_share"])]
    print(f"  where the gap is (lift over the best of {', '.join(NAIVE_RULES)}; over top_n_share):")
    for row in shown.itertuples():
        print(
            f"    {row.policy:<46} {row.share_of_oracle:7.2%} of the oracle, {row.vs_best_naive_rule:+7.2%}; "
            f"{row.vs_top_n_share:+7.2%}"
        )


def _print_response(world: synthetic.World, response: EffortResponse, scored: pd.DataFrame) -> None:
    """The fitted effort response beside the world's true effort scales (median, rank agreement)."""
    k = world.horizon_effort_scale(int(response.horizon_days or 180))  # the true k over the horizon
    fitted_k = scored.set_index("account_id")["effort_scale"].reindex(world.truth["account_id"])
    rank = spearmanr(fitted_k.to_numpy(float), k, nan_policy="omit")[0]
    d = response.diagnostics
    print(
        f"effort response ({response.source}): scale {response.scale:.3f} h over the horizon "
        f"({d.get('scale_per_period', float('nan')):.3f} h per period) at value "
        f"{response.reference_value or float('nan'):.1f} per {response.horizon_days} days, exponent "
        f"{response.exponent:.3f}, uplift {response.uplift or float('nan'):.3f} "
        f"(se log scale {d.get('se_log_scale', float('nan')):.3f}, se exponent "
        f"{d.get('se_exponent', float('nan')):.3f}; naive fit without controls: scale "
        f"{d.get('naive_scale', float('nan')):.3f}, exponent {d.get('naive_exponent', float('nan')):.3f}); "
        f"world: median k over the horizon {np.median(k):.3f}"
    )
    print(
        f"size term: {d.get('size_term')}, size exponent {response.size_exponent:.3f} "
        f"(se {d.get('se_size_exponent', float('nan')):.3f}) at size {response.size_reference}; "
        f"Spearman of the scores' k with the true k: {rank:.3f}"
    )


if __name__ == "__main__":
    main()
