"""Effort allocation: hours per account that maximise the expected gain under the team's capacity."""

from __future__ import annotations

from kamml.allocation.allocate import (
    allocate,
    allocate_file,
    budget_curve,
    check_scores,
    floor_hours,
    plan_and_curve,
)
from kamml.allocation.optimizer import AllocationResult, gain, optimize, optimize_budgets, optimize_detailed
from kamml.allocation.scores_file import read_scores
from kamml.allocation.stake import effort_scale, stake_parts

__all__ = [
    "AllocationResult",
    "allocate",
    "allocate_file",
    "budget_curve",
    "check_scores",
    "effort_scale",
    "floor_hours",
    "gain",
    "optimize",
    "optimize_budgets",
    "optimize_detailed",
    "plan_and_curve",
    "read_scores",
    "stake_parts",
]
