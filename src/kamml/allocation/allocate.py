"""From scores to a recommended allocation of sales hours: the allocation table of DESIGN §10.

`allocate` checks the scores table, turns each account's scores into a gain curve (value at stake and
effort scale, `kamml.allocation.stake`), splits the team's hours exactly with
`kamml.allocation.optimizer.optimize_detailed` under the team's hours, each rep's capacity, a minimum
touch for every active account and a cap per account, then ranks, tiers and explains every account
(`kamml.allocation.tiers`). `budget_curve` shows what more or fewer hours would be worth, and
`allocate_file` is the same flow from a scores file (read by `kamml.allocation.scores_file`) to an
allocation file (written atomically).

The allocation table, one row per account, best first:

=======================  ==================================================================================
account_id               as in the scores (whole-number float ids as integers: 450.0 is 450)
rank                     1 = highest expected gain; ties by stake, then account_id
tier                     strategic / key / maintain / nurture (configurable)
stake                    value effort can move: retention + growth + referral, weighted
recommended_hours        hours in the period
expected_gain            stake * (1 - exp(-recommended_hours / effort_scale))
marginal_gain_per_hour   value of one more hour on this account at the optimum
reasons                  short phrases joined by "; "
owner                    the account's rep (null when the scores have no owner)
stake_retention, stake_growth, stake_referral, effort_scale    the parts of the gain curve
horizon_days             the days the hours and gains are over (the scores' horizon; null when not known)
cutoff                   the date the account was scored as of (the scores' cutoff; null when they have none)
model_uri                the model that scored it (the scores' model_uri; null when they have none)
=======================  ==================================================================================

The summary of the plan (team hours, hours used, total expected gain, the team's price of an hour, each
rep's price, the capacity of each rep with a finite one, what the minimum touch costs, the horizon and,
when the scores hold one of each, their cutoff as ISO text and model_uri, else null: `scoring_summary`)
rides along in ``table.attrs["allocation"]``, a JSON-ready dict that pandas also stores in the Parquet
file's metadata. The cutoff and model_uri on every row let a CRM loading the weekly allocation.csv alone
tell this week's plan from last week's.

The horizon: the scores' clv, p_churn and referral_value, and so the team's hours, are over one horizon,
the scoring model's. Only the fixed effort rule needs it (4 h at 180 days, in proportion at another;
`kamml.models.effort_rule.default_scale`), and it is read from the scores' own ``horizon_days`` column
(`HORIZON_COLUMN`, which `kamml.jobs.score`, `kamml.spark.score_spark`, `ModelBundle.predict` and the
REST answer carry), so a scores file
allocated without a config still plans over its real horizon. A horizon stated besides (the ``horizon_days``
argument, ``--horizon-days``, or ``time.horizon_days`` set in a config) must agree with that column: a
contradiction is a ConfigError naming both (`resolve_horizon`). Scores without the column (an older
kamml's, another tool's) take the stated horizon, else 180 days with a warning
(`warn_assumed_horizon`) where the fixed rule is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation._checks import (
    PERCENT_HINT,
    SCORE_BOUNDS,
    STAKE_COLUMNS,
    check_stake_parts,
    check_stake_scores,
    missing_score_columns,
    need_frame,
    number_problems,
    percent_hint,
    scores_problem,
    stake_problems,
    stake_sum_problem,
)
from kamml.allocation.optimizer import (
    AllocationResult,
    optimize_budgets,
    optimize_detailed,
    rep_name,
    rep_names,
)
from kamml.allocation.scores_file import (
    HORIZON_COLUMN,
    OPTIONAL_COLUMNS,
    OUTSIDE_INT64_RULE,
    REQUIRED_COLUMNS,
    SCORING_COLUMNS,
    integer_ids,
    outside_int64,
    plain_values,
    read_scores,
    refuse_repeated_names,
    scores_renames,
    text_ids,
    text_owners,
    whole_float_ids,
)
from kamml.allocation.stake import effort_scale, resolve_weights, stake_parts
from kamml.allocation.summary import (
    accounts_text,
    amount,
    hours_text,
    last_hour,
    rep_capacity,
    rep_price_span,
    short_budgets,
)
from kamml.allocation.tiers import assign_tiers, check_tiers, rank_accounts, reason_codes, tie_ranks
from kamml.config import AllocationConfig, Config
from kamml.errors import ConfigError, DataError, InfeasibleError, Problem, SchemaError
from kamml.io import (
    TEMPORAL_TYPES,
    UTF8_FIX,
    check_output_path,
    utf8_text,
    write_together,
)
from kamml.models.effort_rule import DEFAULT_HORIZON_DAYS, DEFAULT_SCALE, check_clip
from kamml.text import counted

__all__ = [
    "ALLOCATION_COLUMNS",
    "BINARY_ID_RULE",
    "BINARY_OWNER_RULE",
    "CURVE_HOURS_DIGITS",
    "DEFAULT_FRACTIONS",
    "PERCENT_HINT",
    "SCORE_BOUNDS",
    "STAKE_COLUMNS",
    "TEXT_NOT_UTF8_RULE",
    "WHOLE_DAYS_RULE",
    "WRONG_ID_TYPE_RULE",
    "active_accounts",
    "allocate",
    "allocate_file",
    "allocation_config",
    "budget_curve",
    "check_capacity_reps",
    "check_distinct_paths",
    "check_floors_fit",
    "check_not_empty",
    "check_scores",
    "check_settings",
    "check_stake_parts",
    "check_stake_scores",
    "curve_budgets",
    "curve_hours_used",
    "cutoff_column",
    "effort_clip_pair",
    "floor_hint",
    "horizon_problems",
    "missing_score_columns",
    "owner_column",
    "owner_counts",
    "percent_hint",
    "plan_and_curve",
    "plan_hours",
    "resolve_horizon",
    "scores_horizon",
    "scoring_summary",
    "stake_problems",
    "stake_sum_problem",
    "stated_horizon",
    "text_column",
    "warn_assumed_horizon",
    "warn_missing_effort",
    "warn_mixed_scorings",
    "warn_uncovered_owners",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

ALLOCATION_COLUMNS = (
    "account_id",
    "rank",
    "tier",
    "stake",
    "recommended_hours",
    "expected_gain",
    "marginal_gain_per_hour",
    "reasons",
    "owner",
    "stake_retention",
    "stake_growth",
    "stake_referral",
    "effort_scale",
    "horizon_days",
    "cutoff",
    "model_uri",
)
"""Columns of the allocation table, in order; the first nine are the stable interface of DESIGN §10."""

DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 21))
"""Budgets of `budget_curve` as fractions of the given hours: 10 %, 20 %, ..., 200 %."""

TIER_VALUES = ("expected_gain", "stake", "clv", "marginal_gain_per_hour")


def allocate(
    scores: pd.DataFrame,
    hours: float | None = None,
    config: AllocationConfig | Config | None = None,
    *,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Recommended sales hours per account that maximise the total expected gain, with ranks and reasons.

    Parameters
    ----------
    scores : pandas.DataFrame
        The scores table (DESIGN §10), one row per account: ``account_id`` (a column, or the index or
        one level of it when named so, as `ModelBundle.predict` returns it), ``clv`` (>= 0) and
        ``p_churn`` (in [0, 1]) are needed; ``referral_value`` (absent or NaN = 0), ``p_alive`` (absent:
        every account is active), ``owner`` (the rep, for per-rep capacity), ``drivers`` (top model
        drivers in words, ``"; "``-separated), ``effort_scale`` and ``effort_uplift`` (the model's fitted
        effort response) are used when present; other columns are ignored.
    hours : float, optional
        The team's hours for the period; `config.hours` when omitted.
    config : AllocationConfig or Config, optional
        Weights of the stake, effort scale, per-rep capacity, floor (minimum touch of active accounts)
        and cap hours, and tiers; the defaults of `AllocationConfig` when omitted.
    horizon_days : int, optional
        The horizon of the scores' clv and of the hours, for scores without a ``horizon_days`` column
        (`HORIZON_COLUMN`; kamml's scores, `ModelBundle.predict`'s frame and the REST answer carry it);
        default ``time.horizon_days`` when a whole
        `Config` sets it, else 180 with a warning. Where the scores carry their horizon, a horizon given
        here or set in the config must equal it. Read only where the fixed effort rule stands in for a
        fitted response (``effort_scale: auto`` and no ``effort_scale`` in the scores): its 4 h are for
        180 days and follow the horizon (`kamml.models.effort_rule.default_scale`).

    Returns
    -------
    pandas.DataFrame
        The allocation table (columns `ALLOCATION_COLUMNS`, see the module docstring), sorted by rank,
        with the plan's summary in ``attrs["allocation"]``: hours, hours_used, unused_hours,
        total_expected_gain, team_price, rep_price (rep -> price), rep_capacity (rep -> its configured
        hours, for the reps with a finite capacity), floor_cost, n_accounts, n_active, tiers (their
        names, best first).

    Raises
    ------
    kamml.errors.SchemaError
        When the scores lack a needed column or break a rule (one `Problem` per broken rule).
    kamml.errors.DataError
        When the scores hold no account (`check_not_empty`): an empty plan is refused, not returned.
    kamml.errors.InfeasibleError
        When the floors need more hours than the team or a rep has, or a floor exceeds the cap.
    kamml.errors.ConfigError
        On impossible settings (negative hours, unknown stake weight, bad tiers), a rep of
        ``allocation.capacity`` that owns no account (owners and reps match by
        `kamml.names.rep_name`), or a stated horizon other than the scores'
        ``horizon_days`` (`resolve_horizon`).

    See Also
    --------
    budget_curve : the total expected gain at other team sizes.
    kamml.allocation.optimizer.optimize_detailed : the optimizer behind it.

    Examples
    --------
    >>> scores = pd.DataFrame({"account_id": [1, 2, 3], "clv": [1000.0, 200.0, 50.0],
    ...                        "p_churn": [0.2, 0.7, 0.1], "referral_value": [0.0, 0.0, 400.0]})
    >>> table = allocate(scores, hours=10.0, config=AllocationConfig(floor_hours=0.5, cap_hours=8.0))
    >>> table[["account_id", "rank", "recommended_hours"]].round(2).to_dict("list")
    {'account_id': [1, 3, 2], 'rank': [1, 2, 3], 'recommended_hours': [5.44, 2.57, 1.99]}
    >>> round(table.attrs["allocation"]["hours_used"], 6)
    10.0
    """
    cfg = allocation_config(config)
    team_hours = plan_hours(hours, cfg)
    frame = _prepared(scores, cfg, stated_horizon(config, horizon_days), warn=True)
    return _plan(frame, cfg, team_hours)


def _plan(frame: pd.DataFrame, cfg: AllocationConfig, team_hours: float) -> pd.DataFrame:
    """The allocation table of prepared scores (`_prepared`) with its summary: `allocate` after the checks."""
    check_not_empty(len(frame))
    try:
        result = _solve(frame, cfg, team_hours)
    except InfeasibleError as exc:
        raise floor_hint(exc, int(frame["active"].sum()), cfg) from None
    if cfg.capacity is not None:
        owners = pd.Series(rep_names(frame["owner"]))
        hours_by_owner = pd.Series(result.hours).groupby(owners).sum()
        warn_uncovered_owners(owners.value_counts(), cfg.capacity, hours_by_owner)  # already named
    table = _table(frame, result, cfg)
    table.attrs["allocation"] = _summary(frame, result, team_hours, cfg.capacity)
    summary = table.attrs["allocation"]
    summary["tiers"] = [name for name, _ in check_tiers(cfg.tiers)]  # best first, for the report's order
    price = last_hour(summary)  # the reps' prices where their capacities bind: the team's is then 0
    logger.info(
        "allocated %s of %s hours to %s (%s active): expected gain %s, value of the last hour %s",
        hours_text(summary["hours_used"], exact=True),
        hours_text(team_hours, exact=True),
        accounts_text(summary["n_accounts"]),
        f"{summary['n_active']:,}",
        amount(summary["total_expected_gain"]),
        price if rep_price_span(summary) else f"{price} per hour",
    )
    return table


def budget_curve(
    scores: pd.DataFrame,
    hours: float | None = None,
    config: AllocationConfig | Config | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Total expected gain of the optimal plan at other team budgets: what an hour more or less is worth.

    Parameters
    ----------
    scores, hours, config
        As in `allocate`.
    fractions : sequence of float, default 0.1, 0.2, ..., 2.0
        Budgets as fractions of `hours` (>= 0).
    horizon_days : int, optional
        As in `allocate`: for scores without a ``horizon_days`` column, and equal to it otherwise.

    Returns
    -------
    pandas.DataFrame
        One row per budget, in the order of `fractions`: fraction, hours (the budget), total_gain,
        team_price (value of one more team hour at that budget), hours_used (to 8 significant digits,
        the optimizer's tolerance: `curve_hours_used`), floor_cost and feasible.
        Budgets too small for the floors of the active accounts are kept with ``feasible=False`` and NaN
        values; a rep whose accounts' floors exceed its capacity, which no team budget helps, raises.

    Raises
    ------
    kamml.errors.SchemaError, kamml.errors.ConfigError, kamml.errors.DataError
        As `allocate`; also on a negative or non-finite fraction.
    kamml.errors.InfeasibleError
        As `allocate`, when a rep's floors exceed its capacity (a budget too small for the team's floors
        is a row with ``feasible=False`` instead).

    Examples
    --------
    >>> scores = pd.DataFrame({"account_id": [1, 2], "clv": [1000.0, 200.0], "p_churn": [0.2, 0.7]})
    >>> curve = budget_curve(scores, 4.0, AllocationConfig(floor_hours=1.0), fractions=[0.25, 1.0, 2.0])
    >>> curve[["hours", "feasible"]].to_dict("list")
    {'hours': [1.0, 4.0, 8.0], 'feasible': [False, True, True]}
    """
    cfg = allocation_config(config)
    budgets = curve_budgets(plan_hours(hours, cfg), fractions)
    frame = _prepared(scores, cfg, stated_horizon(config, horizon_days), warn=True)
    return _curve(frame, cfg, budgets, fractions)


def plan_and_curve(
    scores: pd.DataFrame,
    hours: float | None = None,
    config: AllocationConfig | Config | None = None,
    *,
    horizon_days: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`allocate` and `budget_curve` of the same scores, checked and prepared once: each warning once.

    `kamml run` called the two in turn, so a warning about the scores (no horizon, no fitted effort
    response for some accounts) and the fixed effort rule's note were logged twice. Arguments, results
    and errors as theirs; the budgets are checked before the plan is solved.
    """
    cfg = allocation_config(config)
    team_hours = plan_hours(hours, cfg)
    budgets = curve_budgets(team_hours, fractions)
    frame = _prepared(scores, cfg, stated_horizon(config, horizon_days), warn=True)
    return _plan(frame, cfg, team_hours), _curve(frame, cfg, budgets, fractions)


def _curve(
    frame: pd.DataFrame, cfg: AllocationConfig, budgets: Sequence[float], fractions: Sequence[float]
) -> pd.DataFrame:
    """The budget curve of prepared scores (`_prepared`) at `budgets`: `budget_curve` after the checks."""
    share = np.asarray(fractions, dtype=float)
    check_not_empty(len(frame))
    floor = _floors(frame, cfg)
    try:
        results = optimize_budgets(
            frame["stake"].to_numpy(dtype=float),
            frame["effort_scale"].to_numpy(dtype=float),
            budgets,
            floor=floor,
            cap=cfg.cap_hours,
            owner=_owners(frame, cfg),
            capacity=cfg.capacity,
        )
    except InfeasibleError as exc:  # a rep's floors above its capacity: no budget helps, so as `allocate`
        raise floor_hint(exc, int(frame["active"].sum()), cfg) from None
    note = short_budgets([b for b, res in zip(budgets, results, strict=True) if res is None], floor.sum())
    if note is not None:
        logger.info(note)
    rows = []
    for fraction, budget, res in zip(share, budgets, results, strict=True):
        if res is None:
            rows.append((float(fraction), budget, np.nan, np.nan, np.nan, np.nan, False))
            continue
        used = curve_hours_used(float(res.hours.sum()), budget)
        rows.append((float(fraction), budget, res.total_gain, res.team_price, used, res.floor_cost, True))
    return pd.DataFrame(
        rows,
        columns=["fraction", "hours", "total_gain", "team_price", "hours_used", "floor_cost", "feasible"],
    )


def curve_budgets(hours: float, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[float]:
    """The budgets of `budget_curve`: `fractions` of `hours`, to 12 digits, the fraction 1 exactly.

    Rounded, 880 is not 880.0000000000001; the fraction 1 is `hours` itself (rounded, it could fall
    below floors that fit).

    ConfigError when `hours` is not a finite number >= 0, a fraction is negative or not finite, or a
    budget overflows a float (``--hours 1e308``: the curve's 200 % point is beyond the largest float);
    the message names the hours given and the most the curve can take.
    """
    team_hours = float(hours)
    if not np.isfinite(team_hours) or team_hours < 0:
        raise ConfigError(f"hours must be a finite number >= 0, got {team_hours}")
    share = _fractions(fractions)
    with np.errstate(over="ignore"):
        budgets = [team_hours if f == 1 else float(f"{float(f) * team_hours:.12g}") for f in share]
    if not np.all(np.isfinite(budgets)):
        top = float(share.max())
        most = float(f"{np.finfo(float).max / top * 0.999:.3g}")  # rounded down, not up to inf
        raise ConfigError(
            f"hours {team_hours:g} is too large for the budget curve: its {top:.0%} point, {top:g} x "
            f"{team_hours:g} hours, is beyond the largest number a float holds (1.8e+308); give at "
            f"most {most:g} hours"
        )
    return budgets


#: Significant digits of the budget curve's hours_used (`curve_hours_used`): the optimizer meets a binding
#: limit to a relative 1e-9 (`kamml.allocation.optimizer.RTOL`), so a ninth digit is its tolerance.
CURVE_HOURS_DIGITS = 8


def curve_hours_used(used: float, budget: float) -> float:
    """A budget curve's hours used to `CURVE_HOURS_DIGITS` significant digits, never above the budget.

    The sum of the optimizer's hours read 99.99999995 for a budget of 100 hours it met to its tolerance;
    rounded, it reads 100 (a budget with more digits stays itself). The plan's hours and gains are unchanged.
    """
    if not math.isfinite(used):
        return used
    return min(float(f"{used:.{CURVE_HOURS_DIGITS}g}"), float(budget))


def _fractions(fractions: Any) -> FloatArray:
    """The budget curve's fractions as a float array; a ConfigError for anything but a list of numbers >= 0.

    A single number was a raw TypeError, text a raw ValueError, and true a 100 % point (float(True) is 1);
    durations and dates were their nanoseconds (1 h a fraction of 3.6e12), a masked entry its hidden number.
    """
    problem = isinstance(fractions, str | bytes | Mapping) or np.ndim(fractions) != 1
    if not problem:
        problem = bool(np.ma.is_masked(fractions)) or np.asarray(fractions).dtype.kind in "mM"
    if not problem:
        problem = any(isinstance(f, bool | np.bool_ | str | bytes) or f is None for f in fractions)
    if not problem:
        try:
            share = np.asarray(fractions, dtype=float)
        except (TypeError, ValueError):
            problem = True
    if problem or not np.all(np.isfinite(share)) or (share < 0).any():
        shown = list(fractions) if isinstance(fractions, Sequence | np.ndarray) else fractions
        raise ConfigError(f"budget fractions must be a list of finite numbers >= 0, got {shown!r}")
    return share


#: The rule of a horizon_days value with a fractional part (a model's horizon is whole days).
WHOLE_DAYS_RULE = "not a whole number of days (a model's horizon is whole days, as time.horizon_days)"


def _scores_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` as the allocation reads its columns: ids from an index (level) named so, names matched.

    ``ModelBundle.predict`` returns the ids as the index; ' clv', 'P_Churn' and a BOM before account_id
    are matched as the input tables match their names (`scores_renames`); text ids are read as a scores
    file's (`text_ids`: " a" is "a", "" no id), so a frame and the file written from it plan alike. Not a
    DataFrame: SchemaError.
    """
    need_frame(scores)
    if "account_id" not in scores.columns and "account_id" in scores.index.names:
        scores = _ids_from_index(scores)
    refuse_repeated_names(list(scores.columns))  # scores[name] would be a frame; 'CLV' beside 'clv' ignored
    renames = scores_renames(list(scores.columns))
    scores = scores.rename(columns=renames) if renames else scores
    if (
        "account_id" in scores.columns
        and pd.api.types.infer_dtype(scores["account_id"], skipna=True) == "string"
    ):
        scores = scores.assign(account_id=text_ids(scores["account_id"]))  # as a file's: " a" is "a"
    return scores


def _ids_from_index(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` with the account_id of its index as a column: the index, or its one level of that name.

    `ModelBundle.predict` returns the ids as the index; a groupby or a join may leave them as one level of
    a MultiIndex, which read as "missing column". Two levels of that name are a SchemaError saying so.
    """
    levels = scores.index.names.count("account_id")
    if levels > 1:
        rule = (
            f"{levels} levels of the scores' index are named account_id: give one of them another name "
            "or move the ids to a column (scores.reset_index())"
        )
        raise SchemaError([Problem("scores", "account_id", rule)])
    if scores.index.nlevels == 1:
        return scores.reset_index()  # as `ModelBundle.predict` returns them, indexed like the features
    return scores.reset_index(level="account_id")  # the other levels stay the index, unread


def check_scores(scores: pd.DataFrame, *, need_owner: bool = False) -> None:
    """Check the scores table for the allocation; raise one SchemaError listing every broken rule.

    The columns are read as `allocate` reads them (`_scores_frame`): the ids from an index (or a level
    of one) named account_id, names matched ignoring case, outer spaces and invisible marks; so what
    passes here is what `allocate` accepts, and a problem is named by the column it is read as.

    Rules: no column name repeats, as written or but for case
    (`kamml.allocation.scores_file.repeated_name_problems`); the columns of `REQUIRED_COLUMNS` exist (and
    ``owner`` when `need_owner`); account_id holds whole numbers or text (no dates, periods, durations,
    ranges, complex numbers or yes/no; a uint64 or Decimal id whole and within int64), no nulls and no
    duplicates; clv is a finite number >= 0; p_churn a number in [0, 1]; referral_value, effort_scale and
    effort_uplift, when present, a finite number >= 0 or NaN; p_alive, when present, in [0, 1] or NaN;
    horizon_days, when present, a number of days in [1, 36525] on every row, one horizon for the whole table
    (`horizon_problems`). Dates and durations are not numbers. (An effort_scale of 0 or NaN falls back
    to the config's rule; an effort_uplift of NaN to the fixed growth weight.)

    Raises
    ------
    kamml.errors.SchemaError
        With one `Problem` (table "scores", the column, the rule, rows and examples) per broken rule.
    """
    _check_frame(_scores_frame(scores), need_owner=need_owner)


def _check_frame(scores: pd.DataFrame, *, need_owner: bool) -> None:
    """`check_scores` on a frame whose columns are already read as the allocation reads them."""
    names = list(map(str, scores.columns))
    problems = missing_score_columns(names, need_owner=need_owner)
    for column in ("account_id", "owner"):
        if column in scores.columns and not plain_values(scores[column]):
            nested = scores[column].map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray))
            if nested.any():  # a list of reps or ids: unhashable, a raw TypeError later
                problems.append(scores_problem(column, "not one value (a list or a mapping)", nested))
            problems.extend(_binary_problems(scores[column], column))
    if "account_id" in scores.columns:
        problems.extend(_id_type_problems(scores["account_id"]))
    if "account_id" in scores.columns and not any(p.column == "account_id" for p in problems):
        ids = scores["account_id"]
        null = ids.isna()
        if null.any():
            problems.append(scores_problem("account_id", "null id", null))
        part = pd.Series(False, index=ids.index)
        if pd.api.types.is_float_dtype(ids):
            with np.errstate(invalid="ignore"):  # inf has no remainder (NaN): not whole, refused below
                part = pd.Series(np.mod(ids.to_numpy(dtype=float), 1.0) != 0, index=ids.index) & ~null
        elif ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=True) not in ("string", "integer"):
            ids, part = whole_float_ids(ids)
        if part.any():
            problems.append(
                scores_problem(
                    "account_id", "not a whole number (an id is a whole number or a text)", part, ids
                )
            )
        outside = outside_int64(scores["account_id"])  # uint64 or Decimal ids beyond int64: as the tables
        if outside.any():
            problems.append(scores_problem("account_id", OUTSIDE_INT64_RULE, outside, ids))
        # as written (a CSV has no types): 1, 1.0 and "1" in one object column are one id
        written = ids.astype(str) if ids.dtype == object else ids
        dup = written.duplicated(keep=False) & ~null
        if dup.any():
            problems.append(scores_problem("account_id", "duplicated id", dup, ids))
    problems.extend(number_problems(scores, SCORE_BOUNDS))
    if HORIZON_COLUMN in scores.columns and not any(p.column == HORIZON_COLUMN for p in problems):
        days = pd.to_numeric(scores[HORIZON_COLUMN]).astype(float)
        part = days % 1.0 != 0  # the plan is written over whole days: 180.5 became 180 without a word
        if part.any():
            problems.append(scores_problem(HORIZON_COLUMN, WHOLE_DAYS_RULE, part, scores[HORIZON_COLUMN]))
        else:
            values, rows = np.unique(days.to_numpy(), return_counts=True)
            problems.extend(horizon_problems(dict(zip(values.tolist(), rows.tolist(), strict=True))))
    if problems:
        raise SchemaError(problems)


#: The rule of a binary account_id, as the accounts and transactions tables word it (`kamml.data.validation`).
BINARY_ID_RULE = "wrong type: expected whole numbers or text, got binary (bytes); write the ids as text"
#: The rule of a binary owner whose bytes are not UTF-8 (the others are read as their text).
BINARY_OWNER_RULE = "binary that is not UTF-8 text (an owner is a rep's name); write the owners as UTF-8 text"
#: The rule of a text (Parquet UTF8) account_id or owner whose bytes are not UTF-8, on Spark (pandas
#: cannot read the file: `read_scores` names the column in a DataError).
TEXT_NOT_UTF8_RULE = f"text that is not UTF-8; {UTF8_FIX}"


#: The rule of an account_id of dates, durations or yes/no values, as the input tables word a wrong
#: type (`kamml.data.validation`); `{got}` is what the column holds.
WRONG_ID_TYPE_RULE = (
    "wrong type: expected whole numbers or text, got {got}; an id is the account's code in the CRM: "
    "read the ids as text (pandas: read_csv(..., dtype={{'account_id': str}}))"
)


def _id_type_problems(ids: pd.Series) -> list[Problem]:
    """An account_id of dates, periods, durations, ranges, complex or yes/no values: a wrong type.

    The input tables refuse such a column; the allocation planned on it and wrote dates, months
    (2024-01), or True and False, that a CRM import matches to no account (the CRM pyfunc refuses them as
    ids too). A CSV's ids are text, so an id written 2024-01-03 or TRUE there is a code.
    """
    if (
        pd.api.types.is_datetime64_any_dtype(ids)
        or pd.api.types.is_timedelta64_dtype(ids)
        or isinstance(ids.dtype, pd.PeriodDtype | pd.IntervalDtype)  # as a Parquet of pandas' reads back
        or pd.api.types.is_complex_dtype(ids)
        or pd.api.types.is_bool_dtype(ids)
    ):
        return [scores_problem("account_id", WRONG_ID_TYPE_RULE.format(got=ids.dtype), ids.notna(), ids)]
    if plain_values(ids):
        return []
    wrong = ids.map(lambda v: isinstance(v, _WRONG_ID_TYPES))
    if not wrong.any():
        return []
    kinds = sorted({_id_kind(v) for v in ids[wrong.to_numpy()]})
    return [scores_problem("account_id", WRONG_ID_TYPE_RULE.format(got=" and ".join(kinds)), wrong, ids)]


#: Values of an object id column that are no id: dates, times, periods, durations (`TEMPORAL_TYPES`; a
#: Parquet date32 is read as dates), ranges, complex numbers and yes/no values, as the CRM pyfunc's
#: (`kamml.tracking.pyfunc.NOT_AN_ID_RULE`) with yes/no besides.
_WRONG_ID_TYPES = (*TEMPORAL_TYPES, pd.Interval, complex, np.complexfloating, bool, np.bool_)


def _id_kind(value: Any) -> str:
    """What a wrong id value is, in words: yes/no values, or its type's name (date, Timestamp, ...)."""
    if isinstance(value, bool | np.bool_):
        return "yes/no values"
    return (
        "complex values"
        if isinstance(value, complex | np.complexfloating)
        else f"{type(value).__name__} values"
    )


def _binary_problems(values: pd.Series, column: str) -> list[Problem]:
    """Binary values of account_id or owner (a Parquet binary column): written b'1' in the allocation.

    As the input tables read them: a binary account_id is a wrong type; a binary owner is its UTF-8
    text (`text_owners`), refused only where its bytes are not UTF-8.
    """
    binary = values.map(lambda v: isinstance(v, bytes | bytearray))
    if not binary.any():
        return []
    if column == "account_id":
        return [scores_problem(column, BINARY_ID_RULE, binary, values)]
    bad = values.map(lambda v: isinstance(v, bytes | bytearray) and utf8_text(v) is None)
    return [scores_problem(column, BINARY_OWNER_RULE, bad, values)] if bad.any() else []


def horizon_problems(counts: Mapping[float, int]) -> list[Problem]:
    """The rule "one horizon per table" of the scores' horizon_days, from rows per value (shared with Spark).

    Scores of models with other horizons in one table cannot share one plan: the fixed effort rule and
    the team's hours are over one period. The rows counted are those off the most common horizon.
    """
    if len(counts) <= 1:
        return []
    ordered = sorted(counts, key=lambda days: (-counts[days], days))
    off = sum(counts[days] for days in ordered[1:])
    shown = tuple(int(d) if float(d).is_integer() else float(d) for d in sorted(counts)[:5])
    rule = (
        f"one horizon per table: the rows are over {len(counts)} horizons, {ordered[0]:g} days on most; "
        "the plan's hours and the fixed effort rule are over one, so allocate the scores of one model at "
        "a time"
    )
    return [Problem("scores", HORIZON_COLUMN, rule, off, shown)]


def scores_horizon(scores: pd.DataFrame) -> float | None:
    """The horizon in days of checked scores (`check_scores`); None without the column or without rows."""
    if HORIZON_COLUMN not in scores.columns or not len(scores):
        return None
    return float(pd.to_numeric(scores[HORIZON_COLUMN]).iloc[0])


def stated_horizon(
    config: AllocationConfig | Config | None, horizon_days: float | None = None
) -> tuple[float, str] | None:
    """The horizon the caller states, and by which setting: the argument, else ``time.horizon_days`` set.

    A whole `Config` states its horizon only when its YAML (or code) sets ``time.horizon_days``: the
    default of 180 days says nothing about a scores file, so it neither contradicts one nor silences the
    warning for scores that do not say their horizon. ConfigError on a horizon that is no whole number
    of days > 0, and on text ("90") or true, as `plan_hours` refuses such hours.
    """
    if horizon_days is not None:
        # true is no horizon: float(True) is 1, a 1-day plan; text neither: float("90") read "90" as 90
        # days (as hours of true or of "3" are refused, `plan_hours`)
        days = math.nan
        if not isinstance(horizon_days, bool | np.bool_ | str | bytes):
            with contextlib.suppress(TypeError, ValueError):
                days = float(horizon_days)
        if not np.isfinite(days) or days <= 0 or not days.is_integer():
            given = horizon_days.item() if isinstance(horizon_days, np.generic) else horizon_days
            raise ConfigError(f"horizon_days must be a whole number of days > 0, got {given!r}")
        return days, "horizon_days (--horizon-days)"
    if isinstance(config, Config) and "horizon_days" in config.time.model_fields_set:
        return float(config.time.horizon_days), "time.horizon_days of the config"
    return None


def resolve_horizon(found: float | None, stated: tuple[float, str] | None) -> float | None:
    """The horizon of the plan: the scores' own (`found`), else the `stated` one, else None (not known).

    A stated horizon other than the scores' is a ConfigError naming both rather than a precedence: the
    scores' horizon is a fact of the model that made them, and one stated otherwise means the team's
    hours (and ``--hours``) were meant for another period than the predictions are over.
    """
    if found is None:
        return None if stated is None else stated[0]
    if stated is not None and stated[0] != found:
        days, setting = stated
        raise ConfigError(
            f"{setting} is {days:g} days but the scores are over {found:g} days (scores.{HORIZON_COLUMN}, "
            "the horizon of the model that scored them): their clv, p_churn and referral_value, and so "
            f"the plan's hours, are for {found:g} days; state {found:g} days or no horizon, or score with "
            f"a model of {days:g} days"
        )
    return found


def warn_missing_effort(rows: int, n_accounts: int) -> None:
    """Warn that some accounts of the scores have no fitted effort_scale and get the fixed rule's.

    A model's scores give every row its k, so a gap is an edited or joined table; the plan then mixes
    two kinds of scale without a word otherwise.
    """
    logger.warning(
        "scores.effort_scale: %s of %s accounts have none (0 or missing): the fixed rule "
        "(allocation.effort_scale) gives theirs, the model's fitted scale the others'",
        f"{rows:,}",
        f"{n_accounts:,}",
    )


def warn_mixed_scorings(column: str, counts: Mapping[Any, int]) -> None:
    """Warn that the scores' `column` (cutoff or model_uri) holds several values: several scorings joined.

    Mixed horizons are refused (`horizon_problems`); scores of two cutoffs or two models share a horizon
    and can be ranked together, but values as of other dates, or from other models, are not comparable
    in one plan, so the plan goes on with a warning. `counts` is rows per value.
    """
    if len(counts) <= 1:
        return
    ordered = sorted(counts, key=lambda value: (-counts[value], str(value)))
    off = sum(counts[value] for value in ordered[1:])
    others = ", ".join(str(value) for value in ordered[1:4]) + (", ..." if len(ordered) > 4 else "")
    logger.warning(
        "scores.%s: the rows hold %d values, %s on most; %s %s another (%s): scores of several "
        "scorings joined into one table are compared as if of one; allocate one scoring at a time",
        column,
        len(counts),
        ordered[0],
        counted(off, "row"),
        "has" if off == 1 else "have",
        others,
    )


def warn_assumed_horizon(rows: int, n_accounts: int) -> None:
    """Warn that the fixed effort rule assumes 180 days for scores without a horizon, and how to give one.

    Scores without the column are those of an older kamml (whose `ModelBundle.predict` and REST answer
    had none either) or of another tool; the message says how to state the horizon.
    """
    which = "every account" if rows == n_accounts else f"{rows:,} of {n_accounts:,} accounts"
    logger.warning(
        "the scores have no %s column (scores of an older kamml or of another tool), so the horizon "
        "they predict over is not known: the fixed effort "
        "rule (allocation.effort_scale 'auto', for %s without a fitted effort_scale) assumes %d days, "
        "%g h at the median account; scores over another horizon get effort scales off in proportion "
        "(six times too large at 30 days). To avoid it, state the horizon: in Python "
        "allocate(scores, hours, cfg, horizon_days=N), --horizon-days N or time.horizon_days in the "
        "--config; or re-score with this kamml (its scores carry %s)",
        HORIZON_COLUMN,
        which,
        DEFAULT_HORIZON_DAYS,
        DEFAULT_SCALE,
        HORIZON_COLUMN,
    )


def check_not_empty(n_accounts: int, source: str = "the scores") -> None:
    """DataError when the scores hold no account (shared with `kamml.spark`).

    An empty plan is no plan: written out it would be an allocation table without rows, and a CRM that
    replaces its plan on import would take every account's hours away. An empty scores table is a
    broken upstream step (a scoring run that matched no account, a filter that kept none), so it stops
    here with exit 3 instead of reporting "0 accounts" as a success.
    """
    if n_accounts == 0:
        raise DataError(
            f"no accounts in {source}: 0 rows to allocate hours to; an empty allocation table would "
            "replace the plan of every account with nothing, so none is written (check the scoring run "
            "or the filter that made the scores)"
        )


def owner_counts(owners: pd.Series) -> pd.Series:
    """Accounts per owner, by `rep_name` (the owners may be raw or already named); no owner is left out."""
    return pd.Series(rep_names(owners)).value_counts()


def check_capacity_reps(
    counts: pd.Series, capacity: Mapping[str, float], where: str = "the scores' owner column"
) -> None:
    """ConfigError naming the reps of allocation.capacity that own no account (`counts`: accounts per owner).

    A misspelt rep would otherwise leave its real accounts without a limit, silently. `where` names the
    owners' column in the message.
    """
    unknown = [str(rep) for rep in capacity if rep_name(rep) not in counts.index]
    if not unknown:
        return
    # the most accounts first, then by name: the rows' (or Spark's collect()) order told ties apart
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    known = ", ".join(repr(o) for o, _ in ordered[:5]) if len(counts) else "none (no account has an owner)"
    more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
    raise ConfigError(
        f"'allocation.capacity' names {counted(len(unknown), 'rep')} that "
        f"{'owns' if len(unknown) == 1 else 'own'} no account in {where}: "
        f"{', '.join(repr(r) for r in unknown[:10])}; owners there: {known}{more}"
    )


def warn_uncovered_owners(
    counts: pd.Series, capacity: Mapping[str, float], hours: pd.Series | None = None
) -> None:
    """Log a warning for owners without a capacity: their accounts face only the team's hours."""
    reps = {rep_name(rep) for rep in capacity}
    uncovered = counts[[owner not in reps for owner in counts.index]]
    if uncovered.empty:
        return
    spent = ""
    if hours is not None:
        spent = f", and the plan gives them {float(hours.reindex(uncovered.index).sum()):,.6g} hours"
    logger.warning(
        "%s %s to %s without an allocation.capacity (e.g. %s)%s: only the team's hours (allocation.hours) "
        "limit these owners, so one may get more hours than they have; give each its hours in "
        "allocation.capacity where they have a limit",
        counted(int(uncovered.sum()), "account"),
        "belongs" if int(uncovered.sum()) == 1 else "belong",
        counted(len(uncovered), "owner"),
        ", ".join(repr(o) for o in uncovered.index[:5]),
        spent,
    )


def _check_stake(frame: pd.DataFrame, cfg: AllocationConfig) -> None:
    """SchemaError when an account's stake, or the book's total stake, is not finite (huge scores)."""
    uplift = cfg.weights.get("growth", "auto") == "auto" and "effort_uplift" in frame
    check_stake_parts(frame, frame, uplift=uplift)


def allocate_file(
    scores_path: str | Path,
    hours: float | None,
    out_path: str | Path,
    config: AllocationConfig | Config | None = None,
    *,
    curve_path: str | Path | None = None,
    horizon_days: int | None = None,
    before_write: Callable[[pd.DataFrame, pd.DataFrame | None], object] | None = None,
) -> pd.DataFrame:
    """Read a scores file, allocate the team's hours and write the allocation table atomically.

    Parameters
    ----------
    scores_path : str or Path
        The scores table, ``.parquet`` or ``.csv``.
    hours : float or None
        The team's hours; `config.hours` when None.
    out_path : str or Path
        Where to write the allocation table, ``.parquet`` or ``.csv`` (by extension). Written to a
        temporary file and renamed, so readers see the old table or the new one, never half of one.
    config : AllocationConfig or Config, optional
        As in `allocate`.
    curve_path : str or Path, optional
        Also write the budget curve (`budget_curve`) there, ``.parquet`` or ``.csv``.
    horizon_days : int, optional
        As in `allocate` (``--horizon-days``): for a scores file without a ``horizon_days`` column,
        and equal to it otherwise.
    before_write : callable, optional
        Called with the allocation table and the budget curve (None without `curve_path`) once both
        are computed and before anything is written: an error it raises leaves every output as it was
        (`kamml allocate` draws the curve's chart there, which failed after both tables were written).
        A mapping of path to bytes it returns (the chart's PNG) is written with the tables, as one set.
        The allocation, the curve and those files are renamed into place together once all are written
        (`kamml.io.write_together`): a failure writing any of them leaves every one as it was.

    Returns
    -------
    pandas.DataFrame
        The allocation table, as `allocate` returns it.

    Raises
    ------
    kamml.errors.DataError
        When the scores file is missing or unreadable, or an output path has another extension, is a
        folder or cannot be written (checked before any work, `kamml.io.check_output_path`), or two of
        the three paths are the same file (`check_distinct_paths`), or the scores hold no account.
    kamml.errors.SchemaError, kamml.errors.InfeasibleError, kamml.errors.ConfigError
        As `allocate`.
    """
    check_distinct_paths(
        {"scores_path": scores_path, "out_path": out_path, "curve_path": curve_path}, outputs=2
    )
    for target in (out_path, curve_path):
        if target is not None:
            check_output_path(target)
    cfg = allocation_config(config)
    team_hours = plan_hours(hours, cfg)
    budgets = None if curve_path is None else curve_budgets(team_hours)  # too large: before any work
    stated = stated_horizon(config, horizon_days)
    scores = read_scores(scores_path)
    frame = _prepared(scores, cfg, stated, warn=True)  # once for the plan and its curve: one warning
    table = _plan(frame, cfg, team_hours)
    curve = None if budgets is None else _curve(frame, cfg, budgets, DEFAULT_FRACTIONS)
    extra = before_write(table, curve) if before_write is not None else None
    tables = {Path(out_path): table}
    if curve is not None and curve_path is not None:
        tables[Path(curve_path)] = curve
    # one set: a curve or chart that cannot be written leaves the old allocation, not a new one beside it
    write_together(tables, extra if isinstance(extra, Mapping) else None)
    logger.info("wrote the allocation of %s to %s", counted(len(table), "account"), out_path)
    if curve is not None and curve_path is not None:
        logger.info("wrote the budget curve to %s", curve_path)
    return table


def check_distinct_paths(paths: Mapping[str, str | Path | None], outputs: int) -> None:
    """DataError when two of `paths` (option name -> path; the last `outputs` are written) are one file.

    ``--out`` equal to ``--curve`` wrote the budget curve over the allocation, and an output equal to
    ``--scores`` replaced the input, both with exit 0; an output inside a ``--scores`` folder of parts
    became part of the scores at their next read. Paths are compared resolved (``./a.csv`` is
    ``a.csv``, a symbolic link is its target) and, when both exist, by `os.path.samefile`. Checked
    before any work, so nothing is read or written.
    """
    given = [(name, Path(path)) for name, path in paths.items() if path is not None]
    written = set(list(paths)[-outputs:])
    for i, (first, a) in enumerate(given):
        for second, b in given[i + 1 :]:
            if first not in written and second in written and _inside(b, a):
                raise DataError(
                    f"{second} {b} is inside {first}'s folder of parts {a}: the next read of {first} "
                    "would take it for more of its rows; give it a path outside that folder"
                )
            if not _same_file(a, b):
                continue
            if first in written:
                what = f"{second} would be written over {first}"
            else:
                what = f"writing {second} would replace the input it is computed from"
            raise DataError(f"{first} and {second} name the same file ({b}): {what}; give each its own path")


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies inside `folder`, an existing folder (a Parquet folder of parts)."""
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: equal once resolved, or the same existing file."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:  # an unreadable path: compared by its text only
        return str(a) == str(b)


# -------------------------------------------------------------------------------------------- helpers


def allocation_config(config: AllocationConfig | Config | None) -> AllocationConfig:
    """The allocation section of a whole config, or the defaults (shared with `kamml.spark`)."""
    if config is None:
        return AllocationConfig()
    if isinstance(config, Config | AllocationConfig):
        section = config.allocation if isinstance(config, Config) else config
        section.check_edits()  # tiers, weights or capacity edited in place: checked as on loading
        return section
    raise ConfigError(f"config must be an AllocationConfig or a Config, got {type(config).__name__}")


def check_settings(config: AllocationConfig | Config | None, hours: float | None = None) -> AllocationConfig:
    """The allocation settings, checked before any scores exist, so a job fails before it trains.

    Checked: the team's hours, the stake weights, the tiers, the fixed rule's clip range (with a number
    as effort_scale), a floor above the cap (`InfeasibleError`) and each rep's capacity (a number of
    hours >= 0). What needs the scores (the floors of the active accounts against the team's and each
    rep's hours, the owners) is checked by `allocate`.
    """
    cfg = allocation_config(config)
    team_hours = plan_hours(hours, cfg)
    if not np.isfinite(team_hours) or team_hours < 0:
        raise ConfigError(f"hours must be a finite number >= 0, got {team_hours}")
    resolve_weights(cfg.weights)
    check_tiers(cfg.tiers)
    if cfg.effort_scale != "auto":
        check_clip(effort_clip_pair(cfg.effort_clip), "'allocation.effort_clip'")
    for rep, value in (cfg.capacity or {}).items():
        if np.isnan(value):
            raise ConfigError(f"'allocation.capacity.{rep}' must be a number of hours >= 0, got {value}")
        if value < 0:  # as the optimizer says it: no plan can give a rep negative hours
            raise InfeasibleError(f"'allocation.capacity.{rep}' has negative hours ({value:g})")
    return cfg


def plan_hours(hours: Any, cfg: AllocationConfig) -> float:
    """The team's hours, `hours` or else the config's, as a float; a ConfigError for what is no number.

    true / false are refused as the config refuses ``allocation.hours: true``: Python reads True as
    1, a 1-hour plan; text ("3") as `optimize` refuses it. Whether the hours are finite and >= 0 is
    checked where they are used.
    """
    value = cfg.hours if hours is None else hours
    if not isinstance(value, bool | np.bool_ | str | bytes):  # float("3") read text as 3 hours
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    if isinstance(value, np.generic):
        value = value.item()  # '3', not np.str_('3')
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    raise ConfigError(f"hours must be a number (the team's hours), got {shown}")


def _prepared(
    scores: pd.DataFrame,
    cfg: AllocationConfig,
    stated: tuple[float, str] | None = None,
    *,
    warn: bool = False,
) -> pd.DataFrame:
    """Checked scores with the stake parts, effort scale and activity flag of every account.

    The horizon of the fixed rule's scale, where ``effort_scale`` is "auto" and the scores give no
    effort scale, is the scores' ``horizon_days``, else the `stated` one (`stated_horizon`), else 180
    days; `warn` logs that assumption when the rule is used (`allocate`, not the floors' checks).
    """
    scores = _scores_frame(scores)
    _check_frame(scores, need_owner=cfg.capacity is not None)
    if "owner" in scores.columns:  # binary owners given in memory, as read from a file
        scores = scores.assign(owner=text_owners(scores["owner"]))
    if warn:  # a plan: no rows is the error, before the effort rule warns of no positive clv
        check_not_empty(len(scores))
        for column in SCORING_COLUMNS:  # one value each (hashed: no text made of a million dates)
            if column in scores and scores[column].nunique(dropna=True) > 1:
                counts = scores[column].dropna().astype(str).value_counts()
                warn_mixed_scorings(column, dict(zip(counts.index, counts.tolist(), strict=True)))
    horizon = resolve_horizon(scores_horizon(scores), stated)
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *SCORING_COLUMNS) if c in scores]
    frame = scores[keep].reset_index(drop=True).copy()
    frame["account_id"] = integer_ids(frame["account_id"])  # as read from a file: 450.0 is id 450
    for column in ("clv", "p_churn", "referral_value", "p_alive"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    weights = {str(part): w for part, w in cfg.weights.items()}
    frame = pd.concat([frame, stake_parts(frame, weights, check=False)], axis="columns")  # checked above
    _check_stake(frame, cfg)
    if cfg.capacity is not None and len(frame):
        check_capacity_reps(owner_counts(frame["owner"]), cfg.capacity)
    given = (
        pd.to_numeric(frame.pop("effort_scale"), errors="coerce").to_numpy(dtype=float)
        if "effort_scale" in frame
        else None
    )
    usable = (
        np.isfinite(given) & (given > 0)
        if given is not None and cfg.effort_scale == "auto"
        else np.zeros(len(frame), dtype=bool)
    )
    if usable.all() and len(frame):  # the model's fitted effort response, for every account
        frame["effort_scale"] = given
    else:
        frame["effort_scale"] = effort_scale(
            frame["clv"].to_numpy(),
            cfg.effort_scale,
            exponent=float(cfg.effort_exponent),
            clip=effort_clip_pair(cfg.effort_clip),
            horizon_days=horizon,
        )
        if usable.any():  # fitted where the model gave one, the fixed rule elsewhere
            frame.loc[usable, "effort_scale"] = given[usable]  # type: ignore[index]
            if warn:
                warn_missing_effort(int((~usable).sum()), len(frame))
        if warn and horizon is None and cfg.effort_scale == "auto" and len(frame):
            warn_assumed_horizon(int((~usable).sum()), len(frame))
    frame["active"] = active_accounts(frame, cfg.active_p_alive, cfg.active_p_purchase)
    frame.attrs[HORIZON_COLUMN] = None if horizon is None else int(horizon)  # for the table and summary
    return frame


def active_accounts(frame: pd.DataFrame, p_alive: float, p_purchase: float) -> npt.NDArray[np.bool_]:
    """Which scored accounts are active (get the floor): p_alive >= `p_alive`, 1 − p_churn >= `p_purchase`.

    A p_alive that is missing (no column, or NaN: no purchase history) passes. BG/NBD's P(alive) alone
    called every one-time buyer active, however long ago it bought (the model lets an account drop out
    only after a repeat purchase): on the demo's world 4,366 accounts against the truth's 4,032. The
    churn model's chance of a purchase in the horizon sees what BG/NBD does not (docs/design.md, Decisions).
    Shared by the in-memory and the Spark allocation.
    """
    active = frame["p_churn"].to_numpy(dtype=float) <= 1.0 - float(p_purchase)  # 1 - 0.9 < 0.1 in floats
    if "p_alive" in frame:
        active &= ~(frame["p_alive"].to_numpy(dtype=float) < float(p_alive))  # NaN p_alive: active
    return active


def check_floors_fit(
    scores: pd.DataFrame, hours: float | None = None, config: AllocationConfig | Config | None = None
) -> None:
    """An `InfeasibleError` (saying what to change) when the floors of the active accounts cannot fit.

    The team's hours and each rep's capacity against ``floor_hours`` times their active accounts, as
    `allocate` would find it; the stakes play no part. `kamml run` calls it on the new model's P(alive)
    before it registers the model, so a plan bound to fail does not leave a new champion behind.
    """
    cfg = allocation_config(config)
    frame = _prepared(scores, cfg, stated_horizon(config))
    try:
        _solve(frame, cfg, plan_hours(hours, cfg))
    except InfeasibleError as exc:
        raise floor_hint(exc, int(frame["active"].sum()), cfg) from None


def floor_hours(scores: pd.DataFrame, config: AllocationConfig | Config | None = None) -> pd.Series:
    """The minimum hours `allocate` gives each account: ``floor_hours`` when active, else 0.

    An account is active when its ``p_alive`` is at least ``active_p_alive`` (or unknown) and its
    1 − ``p_churn`` at least ``active_p_purchase`` (`active_accounts`). For comparing
    a plan with other policies under the same minimum touch
    (`kamml.evaluation.allocation.evaluate_allocation`'s ``floor``). `scores` and `config` as in
    `allocate`; returns a float Series indexed by account_id, named ``floor_hours``.

    Examples
    --------
    >>> scores = pd.DataFrame({"account_id": [1, 2], "clv": [10.0, 5.0], "p_churn": [0.1, 0.9],
    ...                        "p_alive": [0.9, 0.05]})
    >>> floor_hours(scores, AllocationConfig(floor_hours=0.5)).to_dict()
    {1: 0.5, 2: 0.0}
    """
    cfg = allocation_config(config)
    frame = _prepared(scores, cfg, stated_horizon(config))
    return pd.Series(_floors(frame, cfg), index=frame["account_id"].to_numpy(), name="floor_hours")


def _floors(frame: pd.DataFrame, cfg: AllocationConfig) -> FloatArray:
    """Each prepared account's floor: ``floor_hours`` when active, else 0."""
    return np.where(frame["active"].to_numpy(dtype=bool), float(cfg.floor_hours), 0.0)


def effort_clip_pair(value: Any) -> tuple[float, float]:
    """``allocation.effort_clip`` as a (low, high) pair of floats; ConfigError otherwise."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"'allocation.effort_clip' must be two numbers (low, high), got {value!r}"
        ) from None
    return low, high


def _solve(frame: pd.DataFrame, cfg: AllocationConfig, hours: float) -> AllocationResult:
    """Run the optimizer on the prepared scores with the config's floor, cap and capacity."""
    if not np.isfinite(hours) or hours < 0:
        raise ConfigError(f"hours must be a finite number >= 0, got {hours}")
    return optimize_detailed(
        frame["stake"].to_numpy(dtype=float),
        frame["effort_scale"].to_numpy(dtype=float),
        hours,
        floor=_floors(frame, cfg),
        cap=cfg.cap_hours,
        owner=_owners(frame, cfg),
        capacity=cfg.capacity,
    )


def _owners(frame: pd.DataFrame, cfg: AllocationConfig) -> npt.NDArray[np.object_] | None:
    """Each account's rep for the optimizer, when the config gives capacities and the scores an owner."""
    if cfg.capacity is None or "owner" not in frame:
        return None
    return frame["owner"].to_numpy(dtype=object)


def floor_hint(exc: InfeasibleError, active: int, cfg: AllocationConfig) -> InfeasibleError:
    """`exc` with what to change when the floors do not fit: the hours, the floor or who is active.

    `active` is the number of accounts given a floor, quoted only when the team's hours are short (a rep's
    problem counts that rep's own). Shared by the in-memory and the Spark allocation.
    """
    if "the floors" not in str(exc):
        return exc
    team = "the floors need" in str(exc)
    which = f"each of the {active:,} active accounts" if team else "each active account"
    more = [
        *(["give the team more hours (--hours or allocation.hours)"] if team else []),
        *(["raise the capacity of the reps short (allocation.capacity)"] if "rep " in str(exc) else []),
    ]
    return InfeasibleError(
        f"{exc}. The floors are allocation.floor_hours ({cfg.floor_hours:g}) for {which} "
        f"(p_alive >= allocation.active_p_alive, {cfg.active_p_alive:g}, and 1 - p_churn >= "
        f"allocation.active_p_purchase, {cfg.active_p_purchase:g}): {', or '.join(more)}, "
        "or lower floor_hours, or raise active_p_alive or active_p_purchase"
    )


def _table(frame: pd.DataFrame, res: AllocationResult, cfg: AllocationConfig) -> pd.DataFrame:
    """The allocation table from the prepared scores and the optimum, sorted by rank."""
    account_id = frame["account_id"].to_numpy()
    stake = frame["stake"].to_numpy(dtype=float)
    rank = rank_accounts(res.gain, stake, account_id)
    tier_by = str(cfg.tier_by)
    values = {
        "expected_gain": res.gain,
        "stake": stake,
        "clv": frame["clv"].to_numpy(dtype=float),
        "marginal_gain_per_hour": res.marginal,
    }
    if tier_by not in values:
        raise ConfigError(f"allocation.tier_by must be one of {', '.join(TIER_VALUES)}, got '{tier_by}'")
    tier_rank = rank if tier_by == "expected_gain" else rank_accounts(values[tier_by], stake, account_id)
    tier_rank = tie_ranks(tier_rank, values[tier_by], stake)  # a tie is never split across tiers
    active = frame["active"].to_numpy(dtype=bool)
    owner = owner_column(frame["owner"] if "owner" in frame else np.full(len(frame), None, dtype=object))
    table = pd.DataFrame(
        {
            "account_id": account_id,
            "rank": rank,
            "tier": assign_tiers(tier_rank, cfg.tiers, stake, values[tier_by]),
            "stake": stake,
            "recommended_hours": res.hours,
            "expected_gain": res.gain,
            "marginal_gain_per_hour": res.marginal,
            "reasons": reason_codes(
                frame,
                active=active,
                high_churn=cfg.high_churn_p,
                weights=cfg.weights,
                max_chars=cfg.reasons_max_chars,
            ).to_numpy(dtype=object),
            "owner": owner,
            "stake_retention": frame["stake_retention"].to_numpy(dtype=float),
            "stake_growth": frame["stake_growth"].to_numpy(dtype=float),
            "stake_referral": frame["stake_referral"].to_numpy(dtype=float),
            "effort_scale": frame["effort_scale"].to_numpy(dtype=float),
            "horizon_days": horizon_column(frame.attrs.get(HORIZON_COLUMN), len(frame)),
            "cutoff": cutoff_column(frame.get("cutoff"), len(frame)),
            "model_uri": text_column(frame.get("model_uri"), len(frame)),
        },
        columns=list(ALLOCATION_COLUMNS),
    )
    return table.iloc[np.argsort(rank)].reset_index(drop=True)


def horizon_column(days: float | None, n: int) -> pd.api.extensions.ExtensionArray:
    """The plan's horizon on every row (a CSV carries no summary): whole days, null when not known."""
    return pd.array(np.full(n, None if days is None else int(days), dtype=object), dtype="Int64")


def cutoff_column(values: pd.Series | None, n: int) -> pd.Series | npt.NDArray[Any]:
    """The scores' cutoff on every row; null timestamps when they have none (scores of another tool).

    Timestamps in microseconds, as Spark and Parquet keep them, whatever unit the scores were read in (a
    CSV's dates are read in nanoseconds, a Parquet file's in its own unit: the same plan either way). A
    column of only nulls is written as timestamps: Arrow's ``null`` type reads as no column at all.
    """
    if values is None or values.isna().all():
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[us]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.as_unit("us").reset_index(drop=True)
    return values.to_numpy()  # another tool's cutoff that is no time: as it gives it


def text_column(
    values: pd.Series | None, n: int
) -> npt.NDArray[np.object_] | pd.api.extensions.ExtensionArray:
    """A text column of the scores (model_uri) on every row; pandas text of nulls when they have none."""
    if values is None or values.isna().all():  # Arrow's null type otherwise, no column to a Parquet reader
        return pd.array(np.full(n, None, dtype=object), dtype="string")
    return values.to_numpy(dtype=object)


def scoring_summary(values: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's cutoff (ISO text: a date at midnight) and model_uri: the scores' one value each, else None.

    `values` holds, per column of `SCORING_COLUMNS`, the single value every row of the scores holds, or
    None (no column, several values, or a row without one). Shared by the in-memory and Spark allocation.
    """
    out: dict[str, Any] = {}
    for column in SCORING_COLUMNS:
        value = values.get(column)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out[column] = None
        elif column == "cutoff" and isinstance(value, pd.Timestamp | np.datetime64 | dt.datetime | dt.date):
            when = pd.Timestamp(value)
            out[column] = when.date().isoformat() if when == when.normalize() else when.isoformat()
        else:
            out[column] = str(value)
    return out


def _one_value(column: pd.Series) -> Any:
    """The value every row of `column` holds, or None (several values, or a row without one)."""
    if not len(column) or column.isna().any() or column.nunique() != 1:
        return None
    return column.iloc[0]


def owner_column(values: npt.ArrayLike) -> npt.NDArray[np.object_] | pd.api.extensions.ExtensionArray:
    """Owners as an object array, or as pandas text when no owner is known (no accounts table).

    Whole numbers are written as integers (202.0, an id of a float column as pandas reads ids with
    gaps from Parquet, is 202), other numbers as they are; text owners are written as their rep name
    (`rep_name`: "202.0", an id of a float column cast to text, is rep "202", the name that met
    ``allocation.capacity``; spaces around a name are dropped, as the Spark allocation writes them).
    Owners of numbers and text mixed are all written as their rep names: 101 beside "101" is one rep.
    An object column of only None and NaN is written by Arrow with its ``null`` type, which Parquet
    readers (Spark, BI tools, a CRM import) take for no column at all; pandas text is written ``string``.
    """
    array = np.array(values, dtype=object)  # a copy: the caller's owners stay as they are
    if pd.isna(array).all():
        return pd.array(np.full(len(array), None, dtype=object), dtype="string")
    codes, uniques = pd.factorize(array)  # one rep_name per distinct owner; missing ones stay as they are
    texts = [isinstance(v, str) for v in uniques]
    if any(texts) and not all(texts):  # 101 beside "101": one rep, written once, as its name
        named = np.array([rep_name(v) for v in uniques], dtype=object)
    else:
        named = np.array([_owner_value(v) for v in uniques], dtype=object)
    present = codes >= 0
    array[present] = named[codes[present]]
    return array


def _owner_value(value: Any) -> Any:
    """One distinct owner as the allocation table writes it: text by its rep name, 101.0 as 101."""
    if isinstance(value, str):
        return rep_name(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _summary(
    frame: pd.DataFrame, res: AllocationResult, hours: float, capacity: Mapping[str, float] | None
) -> dict[str, Any]:
    """The plan's totals, prices and reps' capacities as a JSON-ready dict (rep names as strings)."""
    return {
        "hours": hours,
        "hours_used": float(res.hours.sum()),
        "unused_hours": float(res.unused_hours),
        "total_expected_gain": float(res.total_gain),
        "team_price": float(res.team_price),
        "rep_price": {str(rep): float(price) for rep, price in res.rep_price.items()},
        "rep_capacity": rep_capacity(capacity),  # what the report measures each rep's hours against
        "floor_cost": float(res.floor_cost),
        "n_accounts": len(frame),
        "n_active": int(frame["active"].sum()),
        HORIZON_COLUMN: frame.attrs.get(HORIZON_COLUMN),
        **scoring_summary({c: _one_value(frame[c]) for c in SCORING_COLUMNS if c in frame}),
    }
