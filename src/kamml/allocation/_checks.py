"""The scores' column rules that the stake and the plan share: `kamml.allocation.stake` checks with them.

`check_stake_scores` and `check_stake_parts` are the checks of `kamml.allocation.stake.stake_parts`
called on its own; `kamml.allocation.allocate` applies the same rules to the whole scores table (and
re-exports the public names), and `kamml.spark.allocation` words its own checks with them. Kept apart
so that the stake imports its checks from here and `allocate` imports the stake: one way, no cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation.scores_file import (
    HORIZON_COLUMN,
    REQUIRED_COLUMNS,
    plain_values,
    refuse_repeated_names,
)
from kamml.config import MAX_DAYS
from kamml.errors import Problem, SchemaError

__all__ = [
    "PERCENT_HINT",
    "SCORE_BOUNDS",
    "STAKE_COLUMNS",
    "check_stake_parts",
    "check_stake_scores",
    "missing_score_columns",
    "need_frame",
    "number_problems",
    "percent_hint",
    "scores_problem",
    "stake_problems",
    "stake_sum_problem",
]


#: Range rules of the scores' numeric columns: column -> (low, high, NaN allowed).
SCORE_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "clv": (0.0, np.inf, False),
    "p_churn": (0.0, 1.0, False),
    "referral_value": (0.0, np.inf, True),
    "p_alive": (0.0, 1.0, True),
    "effort_scale": (0.0, np.inf, True),
    "effort_uplift": (0.0, np.inf, True),
    HORIZON_COLUMN: (1.0, float(MAX_DAYS), False),  # as time.horizon_days: 1 day to a century
}


def missing_score_columns(columns: list[str], *, need_owner: bool) -> list[Problem]:
    """One `Problem` per needed scores column absent from `columns` (shared with `kamml.spark`)."""
    problems = []
    needed = [*REQUIRED_COLUMNS, "owner"] if need_owner else list(REQUIRED_COLUMNS)
    for column in needed:
        if column not in columns:
            rule = "missing column"
            if column == "owner":
                rule += " (allocation.capacity limits reps' hours, so each account needs its owner)"
            rule += f"; the scores have: {', '.join(columns)}" if columns else "; the scores have no columns"
            problems.append(Problem("scores", column, rule))
    return problems


def need_frame(scores: Any) -> None:
    """SchemaError when the scores are no pandas DataFrame (a dict, an array, a Spark table)."""
    if not isinstance(scores, pd.DataFrame):
        raise SchemaError(
            [Problem("scores", None, f"a pandas DataFrame is needed, got {type(scores).__name__}")]
        )


def number_problems(scores: pd.DataFrame, columns: Iterable[str]) -> list[Problem]:
    """Problems of the numeric `columns` the scores hold, each by its rule of `SCORE_BOUNDS`."""
    problems = []
    for column in columns:
        if column in scores.columns:
            low, high, nan_ok = SCORE_BOUNDS[column]
            problems.extend(_check_number(scores[column], column, low, high, nan_ok))
    return problems


#: The scores' columns the stake reads (`kamml.allocation.stake.stake_parts`); the first two are needed.
STAKE_COLUMNS = ("clv", "p_churn", "referral_value", "effort_uplift")


def check_stake_scores(scores: pd.DataFrame) -> None:
    """`check_scores` for the columns the stake reads (`STAKE_COLUMNS`): `stake_parts` called on its own.

    Its rules in its words (table "scores", the column, the rule): no column name repeats, clv and
    p_churn exist, each column of `STAKE_COLUMNS` present is a number in its range (`SCORE_BOUNDS`).
    No account_id is needed, and the columns are read by the names given. SchemaError listing each.
    """
    need_frame(scores)
    refuse_repeated_names(list(scores.columns))
    names = list(map(str, scores.columns))
    problems = [p for p in missing_score_columns(names, need_owner=False) if p.column in STAKE_COLUMNS]
    problems.extend(number_problems(scores, STAKE_COLUMNS))
    if problems:
        raise SchemaError(problems)


#: What each part of the stake multiplies, for `stake_problems`: part -> (column named, formula).
_STAKE_FORMULAS = {
    "stake_retention": ("clv", "the retention part of the stake, retention weight x p_churn x clv,"),
    "stake_growth": ("clv", "the growth part of the stake, growth weight x clv,"),
    "stake_referral": ("referral_value", "the referral part of the stake, referral weight x referral_value,"),
    "stake": ("clv", "the stake, retention + growth + referral,"),
}


def stake_problems(counts: Mapping[str, int], examples: pd.DataFrame, *, uplift: bool) -> list[Problem]:
    """One Problem per stake part that is not finite: the scores' values are too large to allocate on.

    `counts` holds rows per part (``stake`` counts the rows whose parts are finite but sum is not),
    `examples` a few bad rows with the parts and the score columns; `uplift`: growth used effort_uplift.
    """
    problems = []
    for part, n_rows in counts.items():
        if not n_rows:
            continue
        column, formula = _STAKE_FORMULAS[part]
        if part == "stake_growth" and uplift:
            column, formula = "effort_uplift", "the growth part of the stake, effort_uplift x clv,"
        bad = ~np.isfinite(examples[part].to_numpy(dtype=float))
        shown = examples.loc[bad, column].head(5) if column in examples else pd.Series(dtype=float)
        rule = f"{formula} overflows to infinity: values too large to allocate hours on"
        problems.append(Problem("scores", column, rule, int(n_rows), tuple(shown.tolist())))
    return problems


def check_stake_parts(parts: pd.DataFrame, scores: pd.DataFrame, *, uplift: bool) -> None:
    """SchemaError when an account's stake, or the book's total stake, is not finite (huge scores).

    `parts` are `kamml.allocation.stake.stake_parts` of `scores` (row for row; one frame may hold both);
    `uplift`: the growth part used effort_uplift. The problems name the score column behind each part.
    """
    finite = {part: np.isfinite(parts[part].to_numpy(dtype=float)) for part in _STAKE_FORMULAS}
    parts_ok = finite["stake_retention"] & finite["stake_growth"] & finite["stake_referral"]
    counts = {part: int((~ok).sum()) for part, ok in finite.items() if part != "stake"}
    counts["stake"] = int((parts_ok & ~finite["stake"]).sum())
    if any(counts.values()):
        raise SchemaError(stake_problems(counts, _beside(parts, scores), uplift=uplift))
    stakes = parts["stake"].to_numpy(dtype=float)
    with np.errstate(over="ignore"):
        total = stakes.sum()
    if not np.isfinite(total):  # each finite, their sum not: the plan's totals read "inf"
        top = _beside(parts, scores).iloc[np.argsort(-stakes)[:3]]
        raise SchemaError([stake_sum_problem(len(parts), top["clv"].tolist())])


def _beside(parts: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The stake parts and the score columns behind them in one frame, row for row (for examples)."""
    if parts is scores:
        return parts
    shown = [c for c in STAKE_COLUMNS if c in scores.columns and c not in parts.columns]
    return pd.concat([parts.reset_index(drop=True), scores[shown].reset_index(drop=True)], axis="columns")


def stake_sum_problem(n_rows: int, largest_clv: Sequence[float]) -> Problem:
    """The Problem of stakes, each finite, whose sum is not; `largest_clv`: those of the largest stakes.

    Shared with `kamml.spark`, which checks the same sum over the whole table.
    """
    return Problem(
        "scores",
        "clv",
        "the accounts' stakes (from clv, p_churn and referral_value) add up past the largest "
        "float (1.8e308): values too large to allocate hours on (the largest clv shown)",
        n_rows,
        tuple(largest_clv),
    )


def scores_problem(column: str, rule: str, bad: pd.Series, values: pd.Series | None = None) -> Problem:
    """A Problem in the scores table with the count of `bad` rows and a few of their `values`."""
    examples = () if values is None else tuple(values[bad.to_numpy()].head(5).tolist())
    return Problem("scores", column, rule, int(bad.sum()), examples)


#: Said after "must be in [0, 1]" when every value off the range is a percentage (p_churn of 20 for 0.2).
PERCENT_HINT = "; they look like percentages: divide by 100"


def percent_hint(off_percent: int, above_one: int, finite: int) -> str:
    """`PERCENT_HINT` for a probability column that reads as percentages, else ''; both engines' rule.

    `off_percent`: its values off [0, 100]; `above_one`: those above 1; `finite`: its finite values. It
    reads as percentages when none is off [0, 100] and at least half are above 1. A churn export in
    percent (20, 70) was refused without a word of the likely cause; a model's stray 1.5 among
    probabilities is no percentage.
    """
    return PERCENT_HINT if not off_percent and 2 * above_one >= finite else ""


def _percent_hint(values: npt.NDArray[np.floating[Any]], outside: npt.NDArray[np.bool_], high: float) -> str:
    """`percent_hint` of a probability's `values` (the column as numbers; `outside`: off its range)."""
    if high != 1.0:
        return ""
    off = values[outside]
    finite = values[np.isfinite(values)]
    return percent_hint(int(((off < 0) | (off > 100)).sum()), int((finite > 1).sum()), finite.size)


def _check_number(series: pd.Series, column: str, low: float, high: float, nan_ok: bool) -> list[Problem]:
    """Problems of one numeric column: not a number, missing, not finite, outside [low, high]."""
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return [scores_problem(column, f"not a number (a {series.dtype} column)", series.notna(), series)]
    plain = plain_values(series)
    if pd.api.types.is_bool_dtype(series) or (
        not plain and series.map(lambda v: isinstance(v, bool | np.bool_)).any()
    ):  # pandas takes True for 1: a yes/no column read as 0 and 1 made a plan without a word
        return [scores_problem(column, "not a number (yes/no values)", series.notna(), series)]
    if pd.api.types.is_complex_dtype(series) or (
        not plain and series.map(lambda v: isinstance(v, complex | np.complexfloating)).any()
    ):  # a cast to float dropped the imaginary part with only a NumPy warning
        return [scores_problem(column, "not a number (complex values)", series.notna(), series)]
    problems = []
    number = pd.to_numeric(series, errors="coerce").astype(float)
    text = number.isna() & series.notna()
    if text.any():
        problems.append(scores_problem(column, "not a number", text, series))
    missing = series.isna()
    if missing.any() and not nan_ok:
        problems.append(scores_problem(column, "missing value", missing))
    values = number.to_numpy()
    infinite = pd.Series(np.isinf(values), index=series.index)
    if infinite.any():
        problems.append(scores_problem(column, "must be finite", infinite, series))
    outside = pd.Series(np.isfinite(values) & ((values < low) | (values > high)), index=series.index)
    if outside.any():
        rule = f"must be >= {low:g}" if high == np.inf else f"must be in [{low:g}, {high:g}]"
        problems.append(
            scores_problem(column, rule + _percent_hint(values, outside.to_numpy(), high), outside, series)
        )
    return problems
