"""Models: BG/NBD and Gamma-Gamma, the LightGBM value, churn and influence models, and their bundle.

Names are imported on first use (PEP 562): the allocation needs only `kamml.models.effort`, not
LightGBM and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kamml._lazy import lazy_names

if TYPE_CHECKING:
    from kamml.models.btyd import BetaGeo, GammaGamma
    from kamml.models.bundle import ModelBundle
    from kamml.models.churn import ChurnModel
    from kamml.models.clv import ClvModel
    from kamml.models.influence import InfluenceModel

__all__ = ["BetaGeo", "ChurnModel", "ClvModel", "GammaGamma", "InfluenceModel", "ModelBundle"]

_LAZY = {
    "BetaGeo": "kamml.models.btyd",
    "GammaGamma": "kamml.models.btyd",
    "ModelBundle": "kamml.models.bundle",
    "ChurnModel": "kamml.models.churn",
    "ClvModel": "kamml.models.clv",
    "InfluenceModel": "kamml.models.influence",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
