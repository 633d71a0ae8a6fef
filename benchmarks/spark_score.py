"""Speed and driver memory of scoring + allocation on Spark (issue #8).

1. A small model bundle is fitted on a synthetic world (`--train-accounts`, no MLflow needed) and saved
   as a plain bundle folder.
2. A features Parquet folder for `--accounts` accounts (default 10,000,000) is synthesised in a child
   process: rows of the small world's real feature frame drawn with replacement, numbers jittered by
   lognormal noise, fresh account ids and an owner among `--reps` reps (cached under --cache).
3. In this process: a Spark session (local[2] by default), `kamml.spark.score_spark` from the features
   folder, then `kamml.spark.allocate_spark` with a capacity per rep, then again with the budget curve
   (20 budgets, as `kamml run` asks for). Wall time of each step; the peak RSS of the driver (this Python
   process: its rusage peak) and, sampled every 0.2 s, of the Spark JVM (in local mode the executors live
   inside it) and of the Python workers together.

Bar: the driver stays under 2 GB. Run: ``.venv/bin/python benchmarks/spark_score.py --accounts 1000000``.
Figures are printed (and written with --json), not enforced.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _flags import whole

CHUNK = 500_000


def fit_bundle(cache: Path, accounts: int) -> tuple[Path, pd.Timestamp]:
    """A bundle fitted on a small synthetic world, saved once under `cache`; and its scoring cutoff."""
    from kamml.config import Config
    from kamml.data import load_data
    from kamml.datasets import synthetic
    from kamml.features import build_training_frame, training_cutoffs
    from kamml.models.bundle import ModelBundle

    folder = cache / f"bundle_{accounts}"
    world = cache / f"world_{accounts}"
    if not (world / "transactions.parquet").exists():
        synthetic.generate(accounts, seed=7, years=3.0).write(world)
    cfg = Config.from_dict(
        {"time": {"horizon_days": 180, "snapshots": 3, "step_days": 90}, "models": {"threads": 2}}
    )
    data = load_data(world, cfg)
    cutoff = pd.Timestamp(data.end).normalize()
    if not (folder / "bundle.json").exists():
        cutoffs = training_cutoffs(data.end, cfg.time.horizon_days, cfg.time.snapshots, cfg.time.step_days)
        ModelBundle.fit(build_training_frame(data, cutoffs, cfg), cfg).save(folder)
    return folder, cutoff


def features_folder(cache: Path, accounts: int, reps: int, train_accounts: int) -> Path:
    """The cached features folder of these settings: rows drawn from the `train_accounts` world's features,
    owners among `reps` reps (named by all three: keyed by `accounts` alone, a run with other reps reused
    the owners of an earlier one, and the capacities of the reps it asked for did not bind as stated)."""
    return cache / f"features_{accounts}_reps{reps}_train{train_accounts}"


def synthesise(bundle_dir: Path, cutoff: str, world: Path, out: Path, accounts: int, reps: int) -> None:
    """Write `accounts` feature rows as Parquet parts (run in a child process: its memory is not ours)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.config import Config
    from kamml.data import load_data
    from kamml.features import build_features
    from kamml.models.bundle import ModelBundle

    bundle = ModelBundle.load(bundle_dir)
    base = build_features(load_data(world), pd.Timestamp(cutoff), bundle.scoring_config(Config()))
    columns = bundle.feature_spec()["columns"]
    base = base[columns].reset_index(drop=True)
    rng = np.random.default_rng(11)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    names = np.array([f"rep_{i:03d}" for i in range(reps)], dtype=object)
    # counts and the BTYD inputs (frequency, recency, T: whole numbers, recency <= T) are drawn as they are
    keep = {"frequency", "recency", "T", "age", "monetary"}
    jitter = [
        c
        for c in base.columns
        if pd.api.types.is_float_dtype(base[c])
        and c not in keep
        and not np.all(np.mod(base[c].dropna(), 1) == 0)
    ]
    for part, start in enumerate(range(0, accounts, CHUNK)):
        n = min(CHUNK, accounts - start)
        rows = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        for col in rows.columns:
            if col in jitter:
                # kept inside the base rows' range: a share pushed above 1 is refused by the bundle
                rows[col] = (rows[col] * rng.lognormal(0.0, 0.1, n)).clip(base[col].min(), base[col].max())
            elif not pd.api.types.is_float_dtype(rows[col]):
                rows[col] = rows[col].astype(object)
        rows.insert(0, "account_id", np.arange(start, start + n, dtype=np.int64))
        rows["owner"] = names[rng.integers(0, reps, n)]
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp / f"part-{part:05d}.parquet")
    tmp.rename(out)


class Sampler(threading.Thread):
    """Peak RSS (bytes) of the Spark JVM and of the Python workers, sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.jvm = 0
        self.workers = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            jvm = workers = 0
            for child in me.children(recursive=True):
                try:
                    name = child.name()
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if name == "java":
                    jvm += rss
                elif "python" in name:
                    workers += rss
            self.jvm = max(self.jvm, jvm)
            self.workers = max(self.workers, workers)
            time.sleep(0.2)


def peak_self_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=whole(1), default=10_000_000)
    parser.add_argument("--train-accounts", type=whole(1), default=3_000)
    parser.add_argument("--reps", type=whole(1), default=50)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kamml-bench-spark")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--_synthesise", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._synthesise:
        bundle_dir, cutoff, world, out = args._synthesise
        synthesise(Path(bundle_dir), cutoff, Path(world), Path(out), args.accounts, args.reps)
        return

    logging.basicConfig(level=logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    bundle_dir, cutoff = fit_bundle(args.cache, args.train_accounts)
    features = features_folder(args.cache, args.accounts, args.reps, args.train_accounts)
    if not features.exists():
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--accounts",
                str(args.accounts),
                "--reps",
                str(args.reps),
                "--_synthesise",
                str(bundle_dir),
                str(cutoff.date()),
                str(args.cache / f"world_{args.train_accounts}"),
                str(features),
            ],
            check=True,
        )
        print(f"synthesised {args.accounts:,} feature rows in {time.perf_counter() - t0:.0f} s -> {features}")
    size = sum(f.stat().st_size for f in features.glob("*.parquet")) / 1024**2
    before = peak_self_gb()

    from kamml.allocation.allocate import DEFAULT_FRACTIONS
    from kamml.config import AllocationConfig, Config
    from kamml.spark import allocate_spark, score_spark, spark_session

    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    spark = spark_session(
        Config.from_dict(
            {
                "engine": {
                    "name": "spark",
                    "spark": {
                        "master": args.master,
                        "driver_memory": args.driver_memory,
                        "conf": {
                            "spark.sql.shuffle.partitions": "8",
                            "spark.ui.showConsoleProgress": "false",
                        },
                    },
                }
            }
        )
    )
    spark.sparkContext.setLogLevel("ERROR")
    t_start = time.perf_counter() - t0
    out = args.cache / "out"
    t1 = time.perf_counter()
    scores = score_spark(str(bundle_dir), features, cutoff, out / "scores")
    t_score = time.perf_counter() - t1
    hours = 0.8 * args.accounts
    capacity = {f"rep_{i:03d}": hours / args.reps * (0.5 if i % 5 == 0 else 1.2) for i in range(args.reps)}
    cfg = AllocationConfig(hours=hours, floor_hours=0.25, cap_hours=40.0, capacity=capacity)
    t2 = time.perf_counter()
    result = allocate_spark(scores, None, cfg, out / "allocation", session=spark)
    t_alloc = time.perf_counter() - t2
    t3 = time.perf_counter()  # again with the budget curve (20 budgets), as `kamml run` allocates
    curve = DEFAULT_FRACTIONS
    with_curve = allocate_spark(scores, None, cfg, out / "allocation_curve", session=spark, curve=curve)
    t_curve = time.perf_counter() - t3
    assert with_curve.curve is not None
    same = with_curve.summary["total_expected_gain"] / result.summary["total_expected_gain"]
    assert abs(same - 1) < 1e-9, same  # the same plan (sums over partitions in another order)
    gains = with_curve.curve.set_index("fraction")["total_gain"]
    sampler.stop.set()
    sampler.join()
    report = {
        "accounts": args.accounts,
        "master": args.master,
        "driver_memory": args.driver_memory,
        "features_mb_on_disk": round(size, 1),
        "spark_start_s": round(t_start, 1),
        "score_s": round(t_score, 1),
        "allocate_s": round(t_alloc, 1),
        "allocate_with_budget_curve_s": round(t_curve, 1),
        "budget_curve_gain_at_half_and_double": [float(gains[0.5]), float(gains[2.0])],
        "score_plus_allocate_s": round(t_score + t_alloc, 1),
        "driver_python_peak_rss_gb": round(peak_self_gb(), 3),
        "driver_python_peak_rss_before_spark_gb": round(before, 3),
        "spark_jvm_peak_rss_gb": round(sampler.jvm / 1024**3, 3),
        "python_workers_peak_rss_gb": round(sampler.workers / 1024**3, 3),
        "hours_used": result.summary["hours_used"],
        "n_accounts": result.summary["n_accounts"],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
