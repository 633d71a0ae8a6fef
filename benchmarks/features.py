"""Feature build speed: kamml's full feature set (Ibis on DuckDB, out of core) against a plain pandas
groupby computing only frequency/recency/T/monetary, on the same Parquet transaction log.

Usage: python benchmarks/features.py [--sizes 1e6 1e7 1e8] [--dir /tmp/kamml-bench] [--memory-limit 3GB]

kamml validates the log and writes the full feature set to Parquet with `kamml.features.write_features`
(DuckDB streams the result, so nothing scales with memory); pandas reads the log and computes RFM in
memory. Each measurement runs in its own subprocess so wall time and peak RSS (ru_maxrss of that
child) are the build's own. Logs are generated once per size (10 rows per account on average, 3 years,
20 products) and reused. Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _flags import number, whole

CUTOFF = "2026-01-01"


def generate(path: Path, n_rows: int, seed: int = 0, chunk: int = 5_000_000) -> None:
    """Write a synthetic transaction log of n_rows to a folder of Parquet parts, chunk by chunk.

    The parts go to a scratch folder renamed to `path` at the end: an interrupted run leaves no log that
    a later run would measure as the full one.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    final, path = path, path.with_name(path.name + ".tmp")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_accounts = max(1, n_rows // 10)
    start = pd.Timestamp("2023-01-01").value // 10**9
    span = 3 * 365 * 86_400
    for i, lo in enumerate(range(0, n_rows, chunk)):
        n = min(chunk, n_rows - lo)
        ts = (start + rng.integers(0, span, n)) * 10**9
        table = pa.table(
            {
                "account_id": rng.integers(1, n_accounts + 1, n, dtype="int64"),
                "ts": pa.array(ts.astype("datetime64[ns]")),
                "amount": np.round(rng.lognormal(3.5, 1.0, n) * np.where(rng.random(n) < 0.01, -1, 1), 2),
                "quantity": rng.poisson(2.0, n).astype("float64") + 1.0,
                "product": pa.array(rng.integers(0, 20, n).astype("U3")),
            }
        )
        pq.write_table(table, path / f"part-{i:04d}.parquet", row_group_size=1_000_000)
    path.rename(final)


def log_rows(path: Path) -> int | None:
    """Rows of the log cached at `path` (None when there is none or it cannot be read)."""
    import pyarrow.parquet as pq

    parts = sorted(path.glob("*.parquet")) if path.is_dir() else []
    try:
        return sum(pq.ParquetFile(part).metadata.num_rows for part in parts) if parts else None
    except OSError:
        return None


def run_kamml(path: str, memory_limit: str, threads: int) -> dict:
    """Validate and build the full feature set at the cutoff; return timings and the frame's shape."""
    import kamml

    cfg = kamml.Config.from_dict(
        {"engine": {"memory_limit": memory_limit, "threads": threads}, "data": {"end": "2026-06-30"}}
    )
    import pyarrow.parquet as pq

    from kamml.features import write_features

    out = Path(path).parent / (Path(path).name + "_features.parquet")
    t0 = time.perf_counter()
    data = kamml.load_data({"transactions": path}, cfg)
    t1 = time.perf_counter()
    write_features(data, CUTOFF, out, cfg)  # out of core: DuckDB streams the result to Parquet
    t2 = time.perf_counter()
    meta = pq.ParquetFile(out).metadata
    return {
        "validate_s": t1 - t0,
        "features_s": t2 - t1,
        "rows_out": meta.num_rows,
        "cols_out": meta.num_columns - 1,
    }


def run_pandas(path: str) -> dict:
    """Plain pandas: read the Parquet log and compute frequency/recency/T/monetary only."""
    import pandas as pd

    t0 = time.perf_counter()
    tx = pd.read_parquet(path, columns=["account_id", "ts", "amount"])
    tx = tx[tx["ts"] < pd.Timestamp(CUTOFF)]
    tx["day"] = tx["ts"].dt.normalize()
    per_day = tx.groupby(["account_id", "day"], sort=False)["amount"].sum().reset_index()
    g = per_day.groupby("account_id")["day"]
    first, last, n = g.transform("min"), g.max(), g.size()
    end = pd.Timestamp(CUTOFF) - pd.Timedelta(days=1)
    repeat = per_day[per_day["day"] > first].groupby("account_id")["amount"].mean()
    out = pd.DataFrame(
        {"frequency": n - 1, "recency": (last - g.min()).dt.days, "T": (end - g.min()).dt.days}
    ).join(repeat.rename("monetary"))
    return {"features_s": time.perf_counter() - t0, "rows_out": len(out), "cols_out": out.shape[1]}


def measure(kind: str, path: Path, args: argparse.Namespace) -> dict:
    """Run one measurement in a fresh subprocess; add its wall time and its own peak RSS."""
    extra = f", {args.memory_limit!r}, {args.threads}" if kind == "kamml" else ""
    code = (
        "import json, resource, sys; sys.path.insert(0, 'benchmarks'); import features as b; "
        f"r = b.run_{kind}({str(path)!r}{extra}); "
        "r['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2; "
        "print(json.dumps(r))"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed", "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main() -> int:
    """Generate the logs, measure both ways at each size, print a Markdown table; 1 when a run failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=whole(1), default=[10**6, 10**7])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/kamml-bench"))
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--threads", type=whole(1), default=2)
    parser.add_argument("--skip-pandas-above", type=number(), default=5e7)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        path = args.dir / f"tx_{size}"
        if log_rows(path) != size:  # none yet, or one an older version left unfinished
            if path.exists():
                print(f"{path} is not a log of {size:,} rows: generated again", file=sys.stderr)
                shutil.rmtree(path)
            t0 = time.perf_counter()
            generate(path, size)
            print(f"generated {size:,} rows in {time.perf_counter() - t0:.1f} s -> {path}", file=sys.stderr)
        k = measure("kamml", path, args)
        p = measure("pandas", path, args) if size <= args.skip_pandas_above else {"error": "skipped"}
        rows.append((size, k, p))
        print(json.dumps({"rows": size, "kamml": k, "pandas": p}), file=sys.stderr)
    print(
        "| rows | accounts | kamml full features: wall s (validate + build) | peak RSS GB | "
        "pandas RFM only: wall s | peak RSS GB |"
    )
    print("|---|---|---|---|---|---|")
    for size, k, p in rows:
        ks = (
            f"{k['wall_s']:.1f} ({k['validate_s']:.1f} + {k['features_s']:.1f})"
            if "error" not in k
            else k["error"]
        )
        ps = f"{p['wall_s']:.1f}" if "error" not in p else p["error"]
        print(
            f"| {size:,} | {size // 10:,} | {ks} | {k.get('peak_rss_gb', float('nan')):.2f} | {ps} | "
            f"{p.get('peak_rss_gb', float('nan')):.2f} |"
        )
    # a failed run is in the table, and in the exit code: `make bench` stops on it
    failed = [size for size, k, p in rows if "error" in k or p.get("error", "skipped") != "skipped"]
    if failed:
        print(f"\nfailed at {', '.join(f'{n:,}' for n in failed)} rows (the table's errors)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
