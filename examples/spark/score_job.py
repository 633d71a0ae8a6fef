"""Score every account and allocate the team's hours on a Spark cluster: the job of docs/spark.md.

For ``spark-submit`` (YARN, Kubernetes, standalone) or a Databricks ``spark_python_task``::

    spark-submit --master yarn ... examples/spark/score_job.py --config kamml.yaml
        --model models:/kamml@champion --data hdfs:///crm/kamml --out hdfs:///crm/out --hours 20000

The SparkSession is the one spark-submit or the cluster provides (created here before kamml asks for one,
so the config's ``engine.spark`` settings, meant for local runs, are not used). Scores and the allocation
are written as Parquet folders under ``--out`` (``scores``, ``allocation``); the plan's summary is printed
as JSON. Only the driver reads the model (set ``MLFLOW_TRACKING_URI`` there);
executors need kamml installed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse the arguments, score and allocate on the active Spark session, print and return the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="kamml config (allocation, features, data settings)")
    parser.add_argument("--model", default="models:/kamml@champion", help="model URI or bundle folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="folder of input tables (default: data.path of the config)")
    source.add_argument("--features", help="features Parquet file or folder instead of the raw tables")
    parser.add_argument("--cutoff", help="scoring date (default: time.cutoff, else the data end)")
    parser.add_argument("--out", required=True, help="output folder (any Hadoop path)")
    parser.add_argument("--hours", type=float, help="team hours (default: allocation.hours)")
    parser.add_argument("--explain-top", type=int, default=20_000, help="accounts whose drivers are named")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("kamml-score").getOrCreate()

    import pandas as pd

    from kamml.config import load_config
    from kamml.data import load_data
    from kamml.spark import allocate_spark, score_spark

    config = load_config(args.config)
    config.engine.name = "spark"
    if args.features:
        if not (args.cutoff or config.time.cutoff):
            parser.error("--features needs --cutoff (or time.cutoff in the config)")
        data = args.features
        cutoff = pd.Timestamp(args.cutoff or config.time.cutoff)
    else:
        data = load_data(args.data or config.data.path, config)
        cutoff = pd.Timestamp(args.cutoff or config.time.cutoff or data.end)
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
