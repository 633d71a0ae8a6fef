"""Effort allocation: hours per account that maximise the expected gain under the team's capacity."""

from __future__ import annotations

from kamml.allocation.optimizer import AllocationResult, gain, optimize, optimize_detailed

__all__ = ["AllocationResult", "gain", "optimize", "optimize_detailed"]
