"""kamml on Spark: features as Spark DataFrames, distributed batch scoring and the exact allocation.

Needs the ``spark`` extra (pyspark 4.0) and Java 17; see docs/spark.md. Nothing here collects the
transactions, features or scores to the driver.
"""

from kamml.spark.allocation import SparkAllocation, allocate_spark, exact_quantile, read_summary
from kamml.spark.remote import remote_table, remote_tables
from kamml.spark.score import score_frame_spark, score_spark, worker_error
from kamml.spark.session import features_frame, spark_session, to_spark, write_atomic
from kamml.spark.summary import plan_by_tier_and_owner, top_rows

__all__ = [
    "SparkAllocation",
    "allocate_spark",
    "exact_quantile",
    "features_frame",
    "plan_by_tier_and_owner",
    "read_summary",
    "remote_table",
    "remote_tables",
    "score_frame_spark",
    "score_spark",
    "spark_session",
    "to_spark",
    "top_rows",
    "worker_error",
    "write_atomic",
]
