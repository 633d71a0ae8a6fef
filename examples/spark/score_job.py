"""Score every account and allocate the team's hours on a Spark cluster: the job of docs/spark.md.

For ``spark-submit`` (YARN, Kubernetes, standalone) or a Databricks ``spark_python_task``::

    spark-submit --master yarn ... examples/spark/score_job.py --config kamml.yaml
        --model models:/kamml@champion --data hdfs:///crm/kamml --out hdfs:///crm/out --hours 20000

The SparkSession is the one spark-submit or the cluster provides (created here before kamml asks for one,
so the config's ``engine.spark`` settings, meant for local runs, are not used). Scores and the allocation
are written as Parquet folders under ``--out`` (``scores``, ``allocation``); the plan's summary is printed
as JSON. Only the driver reads the model (set ``MLFLOW_TRACKING_URI`` there);
executors need kamml installed.

Flags kamml would refuse (a cutoff not written YYYY-MM-DD, hours below 0) stop the job before Spark starts,
with exit 2; an error kamml names ends the job with one line and kamml's exit code for it (2 config, 3 data,
4 engine, 5 model, as the ``kamml`` commands); kamml's own log goes to stderr as timestamped lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def hours_flag(text: str) -> float:
    """``--hours`` as a finite number >= 0; refused at once (a negative one failed after the scoring)."""
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours >= 0):
        raise argparse.ArgumentTypeError(f"a finite number of hours >= 0 is needed, got {text}")
    return hours


def count_flag(text: str) -> int:
    """``--explain-top`` as a whole number >= 0; refused at once (it failed after the data were read)."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"a whole number >= 0 is needed, got {text}")
    return count


def parser() -> argparse.ArgumentParser:
    """The job's flags (docs/spark.md)."""
    flags = argparse.ArgumentParser(prog=Path(__file__).name, description=(__doc__ or "").splitlines()[0])
    flags.add_argument("--config", required=True, help="kamml config (allocation, features, data settings)")
    flags.add_argument("--model", default="models:/kamml@champion", help="model URI or bundle folder")
    source = flags.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        help="folder of input tables, local or a URI Spark reads (hdfs://, s3a://, dbfs:/; its tables "
        "in Parquet: <table>.parquet or a folder <table>/) (default: data.path of the config)",
    )
    source.add_argument("--features", help="features Parquet file or folder instead of the raw tables")
    flags.add_argument("--cutoff", help="scoring date, YYYY-MM-DD (default: time.cutoff, else the data end)")
    flags.add_argument("--out", required=True, help="output folder (any Hadoop path)")
    flags.add_argument("--hours", type=hours_flag, help="team hours (default: allocation.hours)")
    flags.add_argument(
        "--explain-top", type=count_flag, default=20_000, help="accounts whose drivers are named"
    )
    return flags


@contextmanager
def kamml_log_to_stderr() -> Iterator[None]:
    """Send kamml's log to stderr as timestamped lines while the job runs, as ``kamml`` does in batch.

    kamml's logger has only a NullHandler until an application gives it one: a submitted job said none of
    its warnings (a model trained after the cutoff, amounts in another unit, the fixed effort rule).
    """
    logger = logging.getLogger("kamml")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def tables(source: Any, config: Any) -> Any:
    """The data for `load_data`: a folder URI (``hdfs://``, ``dbfs:/``) read by Spark, a local one as is."""
    from kamml.config import is_uri
    from kamml.spark import remote_tables

    return remote_tables(str(source), config) if is_uri(source) else source


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, score and allocate on the active Spark session, print and return the summary.

    An error kamml names ends the job with one line on stderr and its exit code, not a traceback.
    """
    flags = parser()
    args = flags.parse_args(argv)

    from kamml.errors import KammlError

    with kamml_log_to_stderr():
        try:
            return run(flags, args)
        except KammlError as exc:
            flags.exit(exc.exit_code, f"{flags.prog}: error: {exc}\n")


def run(flags: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The job: the flags and the config checked first, then Spark's session, scoring and allocation."""
    import pandas as pd

    from kamml.config import load_config
    from kamml.features._context import as_cutoff  # the rule of `kamml score --cutoff`

    # before any work: pandas read --cutoff 01/07/2025 as January 7th, and 2025-13-01 failed after the data
    given = None if args.cutoff is None else as_cutoff(args.cutoff, "--cutoff")
    config = load_config(args.config)
    config.engine.name = "spark"
    stated = given if given is not None else config.time.cutoff
    if args.features and stated is None:
        flags.error("--features needs --cutoff (or time.cutoff in the config)")

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("kamml-score").getOrCreate()

    from kamml.data import load_data
    from kamml.spark import allocate_spark, score_spark

    data: Any = args.features or load_data(tables(args.data or config.data.path, config), config)
    cutoff = pd.Timestamp(stated if stated is not None else data.end)  # with --features, stated
    out = args.out.rstrip("/")
    scores = score_spark(args.model, data, cutoff, f"{out}/scores", config, explain_top=args.explain_top)
    plan = allocate_spark(scores, args.hours, config, f"{out}/allocation")
    summary = {
        **plan.summary,  # its cutoff is the scores' one: this job's
        "master": spark.sparkContext.master,
        "scores": scores,
        "allocation": plan.path,
        "cutoff": str(cutoff.date()),
    }
    print(json.dumps(summary, indent=1, default=str))
    return summary


if __name__ == "__main__":
    main()
