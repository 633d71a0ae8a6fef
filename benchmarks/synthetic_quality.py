"""Model and allocation quality on the synthetic world, where the truth is known.

1. Value: kamml's predicted value over the horizon vs what the world then realises (simulated from `end`
   with the world's own simulator), beside the oracle's expectation from the same history
   (`expected_value_given_history`): the bar is Gini(kamml) >= 95 % of Gini(oracle).
2. Influence: kamml's referral value vs the past-referral-rate baseline, on the realised referral value.
3. Allocation: kamml's recommended hours (from kamml's own predicted scores) scored by the world's true
   expected gain, as a share of the oracle allocation's gain, beside the simple rules.

Usage: python benchmarks/synthetic_quality.py [--accounts 20000] [--seed 7] [--hours-per-account 0.2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd

import kamml
from kamml.allocation import allocate
from kamml.datasets import synthetic
from kamml.evaluation.allocation import evaluate_allocation
from kamml.evaluation.backtest import train_bundle
from kamml.evaluation.metrics import normalized_gini, value_metrics
from kamml.features.build import build_past_window


def main() -> None:
    """Generate a world, train at its end, score, allocate, and compare with the truth."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=180)
    parser.add_argument("--hours-per-account", type=float, default=0.2)
    parser.add_argument("--effort-scale", type=float, nargs="+", default=[4.0])
    parser.add_argument("--effort-exponent", type=float, nargs="+", default=[0.5])
    args = parser.parse_args()
    t0 = time.perf_counter()
    world = synthetic.generate(args.accounts, seed=args.seed, horizon_days=args.horizon)
    cfg = kamml.Config.from_dict(
        {"time": {"horizon_days": args.horizon, "snapshots": 4, "step_days": 90}, "models": {"threads": 2}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        world.write(tmp)
        data = kamml.load_data(tmp, cfg)
        end = world.end.normalize()
        bundle, _ = train_bundle(data, cfg, end)
        features = kamml.build_features(data, end, cfg)
        scores = bundle.predict(features)
        past = build_past_window(data, end, args.horizon).reindex(features.index).fillna(0.0)
    truth = world.truth.set_index("account_id").reindex(features.index)
    realised = world.simulate_future(args.horizon, 0.0, n_runs=1, seed=args.seed + 1)
    realised = realised.set_index("account_id").reindex(features.index).fillna(0.0)

    y = realised["value"].to_numpy(float)
    g_model = normalized_gini(y, scores["clv"].to_numpy(float))
    g_oracle = normalized_gini(y, truth["expected_value_given_history"].to_numpy(float))
    print(f"world: {args.accounts:,} accounts, seed {args.seed}, {len(features):,} scored at {end.date()}")
    print(
        f"value Gini vs realised: kamml {g_model:.4f}, oracle {g_oracle:.4f}, ratio {g_model / g_oracle:.3f}"
    )
    print("value metrics (kamml):", {k: round(v, 4) for k, v in value_metrics(y, scores["clv"]).items()})
    yr = realised["referral_value"].to_numpy(float)
    ref_model = value_metrics(yr, scores["referral_value"].to_numpy(float))
    ref_past = value_metrics(yr, past["referral_value"].to_numpy(float))
    ref_oracle = normalized_gini(yr, truth["referral_value_given_history"].to_numpy(float))
    print(
        f"referral Gini: kamml {ref_model['gini']:.4f}, past rate {ref_past['gini']:.4f}, "
        f"oracle {ref_oracle:.4f}"
    )
    print(f"referral Spearman: kamml {ref_model['spearman']:.4f}, past rate {ref_past['spearman']:.4f}")

    hours = args.hours_per_account * len(features)
    scored = scores.reset_index()
    owners = world.accounts.set_index("account_id")["owner"]
    scored["owner"] = scored["account_id"].map(owners)
    for scale in args.effort_scale:
        for exponent in args.effort_exponent:
            alloc_cfg = cfg.allocation.model_copy(
                update={
                    "hours": hours,
                    "floor_hours": 0.0,
                    "capacity": None,
                    "effort_scale": scale,
                    "effort_exponent": exponent,
                }
            )
            table = allocate(scored, hours, alloc_cfg)
            comparison = evaluate_allocation(
                world, table, args.horizon, hours=hours, floor=0.0, cap=alloc_cfg.cap_hours or 40.0
            )
            print(f"allocation with effort_scale {scale}, effort_exponent {exponent}:")
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                print(comparison.round(4).to_string(index=False))
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
