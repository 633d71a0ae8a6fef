"""kamml: where should the sales team's hours go.

From account transaction histories kamml builds point-in-time features, trains models of future value,
churn risk and referral influence, and turns their predictions into a recommended allocation of sales
hours under the team's capacity. See docs/design.md for the map.
"""

from __future__ import annotations

import logging

from kamml.allocation import allocate, optimize
from kamml.config import Config, load_config
from kamml.data import Dataset, load_data, validate
from kamml.errors import ConfigError, DataError, KammlError, ModelError, SchemaError
from kamml.features import build_features, build_labels, build_training_frame
from kamml.models import BetaGeo, ChurnModel, ClvModel, GammaGamma, InfluenceModel, ModelBundle

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BetaGeo",
    "ChurnModel",
    "ClvModel",
    "Config",
    "ConfigError",
    "DataError",
    "Dataset",
    "GammaGamma",
    "InfluenceModel",
    "KammlError",
    "ModelBundle",
    "ModelError",
    "SchemaError",
    "__version__",
    "allocate",
    "build_features",
    "build_labels",
    "build_training_frame",
    "load_config",
    "load_data",
    "optimize",
    "validate",
]
