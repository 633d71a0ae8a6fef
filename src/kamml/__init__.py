"""kamml: where should the sales team's hours go.

From account transaction histories kamml builds point-in-time features, trains models of future value,
churn risk and referral influence, and turns their predictions into a recommended allocation of sales
hours under the team's capacity. See docs/design.md for the map.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kamml._lazy import lazy_names
from kamml.config import Config, load_config
from kamml.errors import ConfigError, DataError, KammlError, ModelError, SchemaError

if TYPE_CHECKING:
    from kamml.allocation import allocate, optimize
    from kamml.data import Dataset, load_data, validate
    from kamml.features import build_features, build_labels, build_training_frame
    from kamml.models import BetaGeo, ChurnModel, ClvModel, GammaGamma, InfluenceModel, ModelBundle

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Public names imported on first use (PEP 562), so a job imports only the stack it runs: `kamml
#: allocate` needs neither LightGBM nor scikit-learn nor Ibis, and started 2 s sooner without them.
_LAZY = {
    "allocate": "kamml.allocation",
    "optimize": "kamml.allocation",
    "Dataset": "kamml.data",
    "load_data": "kamml.data",
    "validate": "kamml.data",
    "build_features": "kamml.features",
    "build_labels": "kamml.features",
    "build_training_frame": "kamml.features",
    "BetaGeo": "kamml.models",
    "ChurnModel": "kamml.models",
    "ClvModel": "kamml.models",
    "GammaGamma": "kamml.models",
    "InfluenceModel": "kamml.models",
    "ModelBundle": "kamml.models",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


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
