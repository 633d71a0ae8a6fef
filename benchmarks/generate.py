"""Speed of the synthetic world: `kamml.datasets.synthetic.generate` at several sizes, and writing it.

Usage: python benchmarks/generate.py [--sizes 10000 100000] [--years 3] [--seed 42] [--out DIR]

Each size runs in its own subprocess, so the wall time and peak RSS (ru_maxrss of that child) are the
generator's own, imports excluded. Prints a Markdown table for the README; with --out the world of the
last size is also written as Parquet (timed separately).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _flags import whole, years

CHILD = """
import json, resource, sys, time
from kamml.datasets import synthetic
n, years, seed, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
world = synthetic.generate(n, seed=seed, years=years)
gen = time.perf_counter() - t0
t1 = time.perf_counter()
if out:
    world.write(out)
write = time.perf_counter() - t1 if out else None
print(json.dumps({
    "accounts": len(world.accounts),
    "transactions": len(world.transactions),
    "referrals": len(world.referrals),
    "activities": len(world.activities),
    "effort_rows": len(world.effort),
    "alive_share": float(world.truth["alive"].mean()),
    "seconds": gen,
    "write_seconds": write,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def measure(n: int, years: float, seed: int, out: str) -> dict:
    """Generate one world of `n` accounts in a fresh interpreter and return its figures."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(years), str(seed), out],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:  # the child's own error, not CalledProcessError with the child's code
        raise SystemExit(f"generating {n:,} accounts failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=whole(1), nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--years", type=years, default=3.0, help="years of history from 2023-01-01, ending by today"
    )
    parser.add_argument("--seed", type=whole(0), default=42)
    parser.add_argument("--out", default="", help="write the last world here as Parquet")
    args = parser.parse_args()
    rows = []
    for i, n in enumerate(args.sizes):
        out = args.out if i == len(args.sizes) - 1 else ""
        rows.append(measure(n, args.years, args.seed, out))
    print(
        "| accounts | years | transactions | per account | referrals | activities | seconds | peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['accounts']:,} | {args.years:g} | {r['transactions']:,} | "
            f"{r['transactions'] / r['accounts']:.1f} | {r['referrals']:,} | {r['activities']:,} | "
            f"{r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    if args.out:
        print(f"\nwrote {args.out} in {rows[-1]['write_seconds']:.1f} s")


if __name__ == "__main__":
    main()
