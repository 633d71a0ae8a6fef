"""kamml beside BG/NBD x Gamma-Gamma on CDNOW at several calibration ends (issue #4: "beat BTYD on other
calibration ends too").

Each split runs `kamml.evaluation.benchmark.benchmark_cdnow` (the honest protocol of `kamml benchmark
cdnow`: models see only data before the calibration end, labels included) with the holdout to 1998-06-30,
and prints one row per split: kamml / BTYD for value Gini, Spearman, decile MAPE and aggregate spend
error, churn ROC AUC and Brier, the metrics on which BTYD is better and those tied (equal but for
float noise: kamml's value total is BTYD's level at some ends, a tie, not a win). The classic split
(1997-09-30) is the one the issue's absolute bars refer to.

Run: ``.venv/bin/python benchmarks/cdnow_splits.py [--ends 1997-06-30 1997-09-30 ...] [--sample]
[--threads 1]``. Figures are printed, not enforced; about 10-25 s per split on 2 cores.
"""

from __future__ import annotations

import argparse
import math
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


def _compare(kamml: float, btyd: float, higher: bool | None) -> int:
    """1 when kamml beats BTYD, -1 when BTYD is better, 0 for a tie (equal but for float noise).

    kamml's value total is BTYD's level at some ends, so the two aggregate errors are the same figure
    up to 1e-16: which side of it the noise fell on decided a "win" or a "loss" before.
    """
    if higher is None:
        kamml, btyd, higher = -abs(kamml), -abs(btyd), True
    if math.isclose(kamml, btyd, rel_tol=1e-9, abs_tol=1e-12):
        return 0
    return 1 if (kamml > btyd) == higher else -1


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
    header = "| calibration end | " + " | ".join(m for _, m, _ in METRICS) + " | BTYD better on | tied on |"
    print(header)
    print("|" + "---|" * (len(METRICS) + 3))
    losses = ties = 0
    for end in args.ends:
        t0 = time.perf_counter()
        result = benchmark_cdnow(end, args.holdout_end, sample=args.sample, config=config)
        cells, lost, tied = [], [], []
        for task, metric, higher in METRICS:
            block = getattr(result, task)
            k, b = block["kamml"][metric], block["btyd"][metric]
            fmt = "{:+.1%}" if metric == "aggregate_error" else "{:.3f}"
            cells.append(f"{fmt.format(k)} / {fmt.format(b)}")
            outcome = _compare(k, b, higher)
            if outcome < 0:
                lost.append(metric)
            elif outcome == 0:
                tied.append(metric)
        losses, ties = losses + len(lost), ties + len(tied)
        row = f"| {end} | " + " | ".join(cells) + f" | {', '.join(lost) or '-'} | {', '.join(tied) or '-'} |"
        print(row, flush=True)
        print(f"<!-- {end}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    print(
        f"\nkamml / BTYD in each cell; {losses} metric-splits where BTYD is better, {ties} tied (equal but "
        f"for float noise), so kamml does not beat BTYD on {losses + ties}"
    )


if __name__ == "__main__":
    main()
