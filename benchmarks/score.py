"""Speed of batch scoring and REST serving (issue #5).

1. `kamml score` then `kamml allocate` on a synthetic world of N accounts (default 1,000,000), each run
   as its own process: wall time and peak RSS (bar: score + allocate <= 60 s together). The model is
   trained and registered first on a smaller world (`--train-accounts`) in a temporary MLflow store.
2. REST: `mlflow models serve` on that model, 1,000 sequential 1-row `dataframe_records` requests, each on
   a new connection and then on one kept-alive connection: p50 and p99 latency (bar: p99 <= 20 ms).

Run: ``.venv/bin/python benchmarks/score.py [--accounts 1000000] [--train-accounts 20000] [--requests 1000]
[--repeat 3]``.
Worlds are cached under --cache (default /tmp/kamml-bench). Figures are printed, not enforced.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _flags import whole

BIN = Path(sys.executable).parent


def world(accounts: int, cache: Path, seed: int) -> Path:
    """A synthetic world on disk, generated once."""
    path = cache / f"world_{accounts}_{seed}"
    if not (path / "transactions.parquet").exists() and not (path / "transactions").exists():
        t0 = time.perf_counter()
        subprocess.run(
            [BIN / "kamml", "generate", "-n", str(accounts), "--seed", str(seed), "-o", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"generated {accounts:,} accounts in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of a command (its rusage); prints its last line of output.

    The output goes to files, not pipes: waiting on a child that fills a pipe nobody reads (64 KB of
    log lines) hung the benchmark.
    """
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        stdout.seek(0)
        stderr.seek(0)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{err[-3000:]}")
    print("   ", out.strip().splitlines()[-1] if out.strip() else "")
    return wall, usage.ru_maxrss / 1024**2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rest_latency(uri: str, env: dict[str, str], rows: list[dict], n: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 milliseconds of `n` sequential 1-row requests: a new connection each (urllib), and
    on one kept-alive connection (what a CRM's HTTP client pool does)."""
    port = free_port()
    cmd = [
        BIN / "mlflow",
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    proc = subprocess.Popen(
        [str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    out: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:  # it will not come up: say so now, not after two minutes
                    raise SystemExit(
                        f"mlflow models serve -m {uri} exited with code {proc.returncode} before serving"
                    ) from None
                time.sleep(0.5)
        else:
            raise SystemExit(f"mlflow models serve -m {uri} did not answer /ping within 2 minutes")
        for mode in ("new connection", "keep-alive"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            times = []
            for i in range(n + 20):
                row = rows[i % len(rows)]
                body = json.dumps({"dataframe_records": [row]}).encode()
                headers = {"Content-Type": "application/json"}
                t0 = time.perf_counter()
                if mode == "keep-alive":
                    conn.request("POST", "/invocations", body, headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"REST request failed with HTTP {response.status}")
                else:
                    req = urllib.request.Request(f"{url}/invocations", body, headers)
                    with urllib.request.urlopen(req, timeout=10) as r:
                        r.read()
                if i >= 20:  # warm-up excluded
                    times.append((time.perf_counter() - t0) * 1000)
            conn.close()
            out[mode] = (float(np.percentile(times, 50)), float(np.percentile(times, 99)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=whole(1), default=1_000_000)
    parser.add_argument("--train-accounts", type=whole(1), default=20_000)
    parser.add_argument("--requests", type=whole(1), default=1000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/kamml-bench"))
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--skip-score", action="store_true", help="only the REST latency")
    parser.add_argument("--explain-top", type=whole(0), default=20_000, help="kamml score --explain-top")
    parser.add_argument(
        "--repeat", type=whole(1), default=1, help="score + allocate this many times (timings on a VM vary)"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    train_world = world(args.train_accounts, args.cache, seed=1)
    big_world = None if args.skip_score else world(args.accounts, args.cache, seed=2)
    with tempfile.TemporaryDirectory(prefix="kamml-score-bench-") as tmp:
        work = Path(tmp)
        config = work / "config.yaml"
        config.write_text(
            "time: {horizon_days: 180, snapshots: 4, step_days: 90}\n"
            "models: {threads: 2}\n"
            f"allocation: {{hours: {0.2 * args.accounts:.0f}, floor_hours: 0.05}}\n"
            f"tracking: {{uri: 'sqlite:///{work}/mlruns.db', artifact_location: '{work}/mlartifacts',"
            " experiment: bench, model_name: bench}\n"
        )
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("MLFLOW_TRACKING_URI", None)
        t0 = time.perf_counter()
        subprocess.run(
            [BIN / "kamml", "train", "-c", config, "-d", train_world],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"trained on {args.train_accounts:,} accounts in {time.perf_counter() - t0:.0f} s")
        if big_world is not None:
            scores = work / "scores.parquet"
            score_cmd = [
                BIN / "kamml",
                "score",
                "-m",
                "models:/bench@champion",
                "-d",
                big_world,
                "-c",
                config,
            ]
            score_cmd += ["-o", scores, "--explain-top", str(args.explain_top)]
            alloc_cmd = [BIN / "kamml", "allocate", "-s", scores, "-c", config]
            totals = []
            for run in range(1, args.repeat + 1):
                s_wall, s_rss = timed(score_cmd, env)
                a_wall, a_rss = timed([*alloc_cmd, "-o", work / "allocation.parquet"], env)
                totals.append(s_wall + a_wall)
                print(f"run {run}:")
                print(f"  score    {args.accounts:,} accounts: {s_wall:6.1f} s wall, peak RSS {s_rss:.2f} GB")
                print(f"  allocate {args.accounts:,} accounts: {a_wall:6.1f} s wall, peak RSS {a_rss:.2f} GB")
                print(f"  score + allocate: {s_wall + a_wall:.1f} s (bar <= 60 s)")
            if len(totals) > 1:
                print(
                    f"score + allocate over {len(totals)} runs: median {np.median(totals):.1f} s, "
                    f"min {min(totals):.1f} s, max {max(totals):.1f} s"
                )
        if not args.skip_rest:
            from kamml import build_features, load_data
            from kamml.tracking import load_model, model_input

            os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlruns.db"
            bundle = load_model("models:/bench@champion").bundle
            cfg = bundle.scoring_config()
            data = load_data(train_world, cfg)
            rows_frame = model_input(build_features(data, data.end, cfg).head(200))
            rows = json.loads(
                rows_frame[["account_id", *bundle.feature_spec()["columns"]]].to_json(orient="records")
            )
            for mode, (p50, p99) in rest_latency("models:/bench@champion", env, rows, args.requests).items():
                print(
                    f"REST 1-row requests x {args.requests} ({mode}): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
                    " (bar p99 <= 20 ms)"
                )


if __name__ == "__main__":
    main()
