"""Issue #6's end-to-end bars (and #4's synthetic ones) over a grid of worlds, in one table.

Runs `benchmarks/synthetic_quality.py` once per world (each in its own process, ``--json``) and prints,
per world and hours level, kamml's share of the oracle's gain and its lift over the best naive rule, then
how many cells meet each bar: share >= 85 %, lift >= +20 % (#6), value Gini >= 95 % of the oracle's and
referral Gini above the past rate (#4, on the synthetic world). One world's figures move with its seed, so
the bars are judged over many: the default grid is the ten worlds docs/models.md reports (2,000 accounts,
seeds 1-8; 5,000 accounts, seeds 3 and 9), about 1.5 minutes on a quiet 2-core machine.

Usage: python benchmarks/synthetic_grid.py [--worlds 2000:5 5000:3 ...] [--hours-per-account 0.05 0.1
       0.2 0.5] [--floor-hours 0] [--horizon 180] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _flags import number, whole

HERE = Path(__file__).resolve().parent
#: The ten worlds of docs/models.md's "Small books re-measured" (accounts, seed).
WORLDS = (*((2000, seed) for seed in range(1, 9)), (5000, 3), (5000, 9))
SHARE_BAR, LIFT_BAR, GINI_RATIO_BAR = 0.85, 0.20, 0.95


def world_spec(text: str) -> tuple[int, int]:
    """An argparse type: ``ACCOUNTS:SEED``, e.g. 2000:5 or 2e4:7."""
    accounts, sep, seed = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be ACCOUNTS:SEED (e.g. 2000:5), got {text!r}")
    return whole(1)(accounts), whole(0)(seed)


def run_world(accounts: int, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """synthetic_quality.py on one world; its JSON figures (a failed run stops the grid, with its output)."""
    command = [
        sys.executable,
        str(HERE / "synthetic_quality.py"),
        "--accounts",
        str(accounts),
        "--seed",
        str(seed),
        "--horizon",
        str(args.horizon),
        "--floor-hours",
        str(args.floor_hours),
        "--hours-per-account",
        *(str(h) for h in args.hours_per_account),
        "--json",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(
            f"{accounts:,} accounts, seed {seed}: synthetic_quality.py failed\n{done.stdout}{done.stderr}"
        )
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def cells(worlds: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per world and hours level (fitted effort response): share, lift and whether each bar holds."""
    rows = []
    for figures in worlds:
        world = figures["world"]
        for alloc in figures["allocations"]:
            if not alloc["fitted_response"]:
                continue
            rows.append(
                {
                    "accounts": world["accounts"],
                    "seed": world["seed"],
                    "hours_per_account": alloc["hours_per_account"],
                    "share_of_oracle": alloc["share_of_oracle"],
                    "vs_best_naive_rule": alloc["vs_best_naive_rule"],
                    "share_bar": alloc["share_of_oracle"] >= SHARE_BAR,
                    "lift_bar": alloc["vs_best_naive_rule"] >= LIFT_BAR,
                }
            )
    return pd.DataFrame(rows)


def model_bars(worlds: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per world: #4's synthetic bars (value Gini ratio, referral Gini against the past rate)."""
    return pd.DataFrame(
        [
            {
                "accounts": f["world"]["accounts"],
                "seed": f["world"]["seed"],
                "value_gini_ratio": f["value_gini"]["ratio"],
                "referral_gini": f["referral_gini"]["kamml"],
                "referral_gini_past_rate": f["referral_gini"]["past_rate"],
                "value_bar": f["value_gini"]["ratio"] >= GINI_RATIO_BAR,
                "referral_bar": f["referral_gini"]["kamml"] > f["referral_gini"]["past_rate"],
            }
            for f in worlds
        ]
    )


def summary(grid: pd.DataFrame, models: pd.DataFrame) -> list[str]:
    """The lines that count the cells meeting each bar, and the mean share per hours level."""
    n = len(grid)
    lines = [
        f"#6 share >= {SHARE_BAR:.0%}: {int(grid['share_bar'].sum())} of {n} cells; "
        f"lift >= +{LIFT_BAR:.0%}: {int(grid['lift_bar'].sum())} of {n}; "
        f"both: {int((grid['share_bar'] & grid['lift_bar']).sum())} of {n}",
        f"#4 value Gini >= {GINI_RATIO_BAR:.0%} of the oracle's: {int(models['value_bar'].sum())} of "
        f"{len(models)} worlds; referral Gini above the past rate: {int(models['referral_bar'].sum())} of "
        f"{len(models)}",
    ]
    means = grid.groupby("hours_per_account")[["share_of_oracle", "vs_best_naive_rule"]].mean()
    lines.append(
        "mean over the worlds, share / lift: "
        + "; ".join(
            f"{h:g} h {row.share_of_oracle:.1%} / {row.vs_best_naive_rule:+.1%}"
            for h, row in means.iterrows()
        )
    )
    return lines


def main() -> None:
    """Run every world, print the cells and the bar counts, optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=world_spec, nargs="+", default=list(WORLDS), metavar="ACCOUNTS:SEED")
    parser.add_argument(
        "--hours-per-account", type=number(0.0, above=True), nargs="+", default=[0.05, 0.1, 0.2, 0.5]
    )
    parser.add_argument("--floor-hours", type=number(), default=0.0)
    parser.add_argument("--horizon", type=whole(1), default=180)
    parser.add_argument("--json", type=Path, help="write every world's figures and the cells here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    worlds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (accounts, seed) in enumerate(args.worlds, 1):
            t = time.perf_counter()
            worlds.append(run_world(accounts, seed, args, Path(tmp) / f"{i}.json"))
            took = time.perf_counter() - t
            print(f"[{i}/{len(args.worlds)}] {accounts:,} accounts, seed {seed}: {took:.0f} s", flush=True)
    grid, models = cells(worlds), model_bars(worlds)
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(grid.round(4).to_string(index=False))
        print(models.round(4).to_string(index=False))
    for line in summary(grid, models):
        print(line)
    if args.json is not None:
        args.json.write_text(
            json.dumps({"worlds": worlds, "cells": grid.to_dict(orient="records")}, indent=1)
        )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
