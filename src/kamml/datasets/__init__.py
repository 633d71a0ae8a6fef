"""Datasets that ship with kamml: the real CDNOW log and a synthetic B2B world with ground truth."""

from __future__ import annotations

from kamml.datasets import synthetic
from kamml.datasets.cdnow import load_cdnow, provenance

__all__ = ["load_cdnow", "provenance", "synthetic"]
