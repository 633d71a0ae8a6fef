"""kamml beside BG/NBD x Gamma-Gamma on CDNOW at several calibration ends (issue #4: "beat BTYD on other
calibration ends too").

Each split runs `kamml.evaluation.benchmark.benchmark_cdnow` (the honest protocol of `kamml benchmark
cdnow`: models see only data before the calibration end, labels included) with the holdout to 1998-06-30,
and prints one row per split: kamml / BTYD for value Gini, Spearman, decile MAPE and aggregate spend
error, churn ROC AUC and Brier, and the metrics on which kamml does not beat BTYD. The classic split
(1997-09-30) is the one the issue's absolute bars refer to.

Run: ``.venv/bin/python benchmarks/cdnow_splits.py [--ends 1997-06-30 1997-09-30 ...] [--sample]
[--threads 1]``. Figures are printed, not enforced; about 10-25 s per split on 2 cores.
"""

from __future__ import annotations

import argparse
import time

from _flags import whole

from kamml.config import Config
from kamml.evaluation.benchmark import benchmark_cdnow

ENDS = (
    "1997-06-30",
    "1997-07-31",
    "1997-08-31",
    "1997-09-30",
    "1997-10-31",
    "1997-11-30",
    "1997-12-31",
    "1998-02-28",
)
#: (task, metric, True when higher is better)
METRICS = (
    ("value", "gini", True),
    ("value", "spearman", True),
    ("value", "decile_mape", False),
    ("value", "aggregate_error", None),  # closer to 0 is better
    ("churn", "roc_auc", True),
    ("churn", "brier", False),
)


def _beats(kamml: float, btyd: float, higher: bool | None) -> bool:
    if higher is None:
        return abs(kamml) <= abs(btyd)
    return kamml > btyd if higher else kamml < btyd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ends", nargs="+", default=list(ENDS), help="calibration ends (inclusive days)")
    parser.add_argument("--holdout-end", default="1998-06-30")
    parser.add_argument("--sample", action="store_true", help="the 2,357-customer sample")
    parser.add_argument("--threads", type=whole(1), default=1, help="LightGBM threads (results depend on it)")
    args = parser.parse_args()
    config = Config.from_dict(
        {"time": {"snapshots": 3, "step_days": 28}, "models": {"threads": args.threads}}
    )
    header = "| calibration end | " + " | ".join(m for _, m, _ in METRICS) + " | kamml not better on |"
    print(header)
    print("|" + "---|" * (len(METRICS) + 2))
    losses = 0
    for end in args.ends:
        t0 = time.perf_counter()
        result = benchmark_cdnow(end, args.holdout_end, sample=args.sample, config=config)
        cells, lost = [], []
        for task, metric, higher in METRICS:
            block = getattr(result, task)
            k, b = block["kamml"][metric], block["btyd"][metric]
            fmt = "{:+.1%}" if metric == "aggregate_error" else "{:.3f}"
            cells.append(f"{fmt.format(k)} / {fmt.format(b)}")
            if not _beats(k, b, higher):
                lost.append(metric)
        losses += len(lost)
        print(f"| {end} | " + " | ".join(cells) + f" | {', '.join(lost) or '-'} |", flush=True)
        print(f"<!-- {end}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    print(f"\nkamml / BTYD in each cell; {losses} metric-splits where kamml does not beat BTYD")


if __name__ == "__main__":
    main()
