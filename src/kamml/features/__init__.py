"""Point-in-time features and labels, written once in Ibis (DuckDB by default, Spark, any backend)."""

from __future__ import annotations

from kamml.features.build import (
    build_features,
    build_labels,
    build_training_frame,
    training_cutoffs,
    write_features,
)
from kamml.features.groups import GROUPS

__all__ = [
    "GROUPS",
    "build_features",
    "build_labels",
    "build_training_frame",
    "training_cutoffs",
    "write_features",
]
