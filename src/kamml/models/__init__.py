"""Models: BG/NBD and Gamma-Gamma, the LightGBM value, churn and influence models, and their bundle."""

from __future__ import annotations

from kamml.models.btyd import BetaGeo, GammaGamma
from kamml.models.bundle import ModelBundle
from kamml.models.churn import ChurnModel
from kamml.models.clv import ClvModel
from kamml.models.influence import InfluenceModel

__all__ = ["BetaGeo", "ChurnModel", "ClvModel", "GammaGamma", "InfluenceModel", "ModelBundle"]
