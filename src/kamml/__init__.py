"""kamml: where should the sales team's hours go.

From account transaction histories kamml builds point-in-time features, trains models of future value,
churn risk and referral influence, and turns their predictions into a recommended allocation of sales
hours under the team's capacity. See docs/design.md for the map.
"""

from __future__ import annotations

import logging

from kamml.config import Config, load_config
from kamml.errors import ConfigError, DataError, KammlError, ModelError, SchemaError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "KammlError",
    "ModelError",
    "SchemaError",
    "__version__",
    "load_config",
]
