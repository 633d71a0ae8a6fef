"""MLflow at the edge: tracked training runs, the pickle-free pyfunc bundle, the registry gate.

The only package of kamml that imports mlflow (DESIGN §9). Jobs use `TrainingRun` to record a training
run and `load_model` to turn any model URI back into a scorer.
"""

from kamml.tracking.model import (
    LoadedModel,
    load_model,
    locate_model,
    log_bundle,
    model_input,
    pip_requirements,
    resolve_model,
)
from kamml.tracking.registry import CHAMPION, Promotion, metric_key, promote, register
from kamml.tracking.runs import (
    JOB_STATUS_TAG,
    TrainingRun,
    backtest_metrics,
    flatten,
    record_job_complete,
    record_job_failure,
)
from kamml.tracking.store import experiment_id, tracking_scope, tracking_uri, use_tracking

__all__ = [
    "CHAMPION",
    "JOB_STATUS_TAG",
    "LoadedModel",
    "Promotion",
    "TrainingRun",
    "backtest_metrics",
    "experiment_id",
    "flatten",
    "load_model",
    "locate_model",
    "log_bundle",
    "metric_key",
    "model_input",
    "pip_requirements",
    "promote",
    "record_job_complete",
    "record_job_failure",
    "register",
    "resolve_model",
    "tracking_scope",
    "tracking_uri",
    "use_tracking",
]
