"""Judging kamml beside its baselines, never on rows it trained on.

`kamml.evaluation.metrics` (value and churn metrics), `kamml.evaluation.backtest` (the temporal
backtest), `kamml.evaluation.benchmark` (CDNOW) and `kamml.evaluation.allocation` (plans against the
synthetic world's oracle and simple rules).
"""
