"""Value at stake and effort scale per account: what sales effort can move, and how many hours it takes.

The scores of an account (DESIGN §10: clv, p_churn, referral_value) become the two numbers of its gain
curve ``gain(h) = stake * (1 - exp(-h / k))`` (DESIGN §6):

- the **stake**, a weighted sum of three parts, kept apart so reasons can say which one dominates::

      retention = w_retention * p_churn * clv      (value kept by preventing churn)
      growth    = w_growth * clv                   (value grown in an account that stays)
      referral  = w_referral * referral_value      (value of the accounts it brings in)

  ``referral_value`` missing (no referrals table) or NaN counts as 0. The growth weight ``"auto"`` (the
  default) is measured rather than assumed: it is the account's ``effort_uplift`` from the scores, the
  fitted rise of the purchase rate of a fully served account (`kamml.models.effort`), so a full-service
  account grows by uplift x clv; where the scores have no uplift (no fitted response) it is
  `FALLBACK_GROWTH` (0.3);
- the **effort scale** k (hours that move 63 % of the stake), growing with the account's value: bigger
  accounts need more hours for the same share of their stake::

      k = effort_scale * (clv / reference) ** exponent,  clipped to [0.25, 4] * effort_scale

  with exponent 0.5 by default (a 4x bigger account needs 2x the hours) and the median positive clv as
  the reference, unless a fitted response (`kamml.models.effort.EffortResponse`) gives its own scale,
  exponent and reference value. An account with no positive value gets the smallest scale (with exponent
  0 the one scale of every account, clipped: 0 ** 0 is 1); when no
  account has positive value (and no reference is given) every scale is ``effort_scale``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation._checks import check_stake_parts, check_stake_scores
from kamml.errors import ConfigError
from kamml.models.effort_rule import DEFAULT_CLIP, DEFAULT_EXPONENT, DEFAULT_SCALE, effort_scale

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_EXPONENT",
    "DEFAULT_SCALE",
    "DEFAULT_WEIGHTS",
    "FALLBACK_GROWTH",
    "STAKE_PARTS",
    "Weight",
    "effort_scale",
    "growth_weight",
    "resolve_weights",
    "stake_parts",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

STAKE_PARTS = ("retention", "growth", "referral")
"""The three parts of the stake, in the order of the ``stake_<part>`` columns."""

Weight = float | Literal["auto"]
"""A stake weight: a number >= 0, or ``"auto"`` (growth only: the fitted effort uplift per account)."""

DEFAULT_WEIGHTS: Mapping[str, Weight] = {"retention": 1.0, "growth": "auto", "referral": 0.5}
"""Weights of the parts when none are given (those of `kamml.config.AllocationConfig`)."""

FALLBACK_GROWTH = 0.3
"""Growth weight of ``"auto"`` for accounts whose scores carry no fitted effort uplift."""


def stake_parts(
    scores: pd.DataFrame, weights: Mapping[str, Weight] | None = None, *, check: bool = True
) -> pd.DataFrame:
    """Value at stake per account and its three weighted parts, from the scores table.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per account with ``clv`` (value in the horizon, a finite number >= 0) and ``p_churn`` (in
        [0, 1]); an optional ``referral_value`` (>= 0; absent or NaN means 0) and ``effort_uplift`` (>= 0,
        the growth weight of ``"auto"``; absent or NaN means `FALLBACK_GROWTH`), checked as `allocate`
        checks them (`kamml.allocation.allocate.check_stake_scores`).
    weights : mapping, optional
        Weight of ``retention``, ``growth`` and ``referral`` (each >= 0; growth may be ``"auto"``);
        parts left out keep their default of `DEFAULT_WEIGHTS`.
    check : bool, default True
        False for scores checked already (`allocate`, the Spark plan) or whose missing values must give
        a missing stake (`kamml.jobs.score.explain_priority`): the numbers are then taken as they are,
        and a stake too large for a float is inf.

    Returns
    -------
    pandas.DataFrame
        Same index as `scores`, columns ``stake_retention``, ``stake_growth``, ``stake_referral`` and
        ``stake`` (their sum), all float.

    Raises
    ------
    kamml.errors.ConfigError
        On an unknown part or a negative, non-finite or text weight.
    kamml.errors.SchemaError
        With `check`: when a column is missing or breaks its rule, or a stake overflows to infinity (one
        `Problem` per broken rule, in table "scores").

    Examples
    --------
    >>> scores = pd.DataFrame({"clv": [100.0, 10.0], "p_churn": [0.5, 0.1], "referral_value": [0.0, 40.0]})
    >>> stake_parts(scores)["stake"].tolist()
    [80.0, 24.0]
    >>> scores["effort_uplift"] = [0.5, float("nan")]  # fitted for the first account only
    >>> stake_parts(scores)["stake_growth"].tolist()
    [50.0, 3.0]
    """
    w = resolve_weights(weights)
    if check:
        check_stake_scores(scores)
    clv = scores["clv"].to_numpy(dtype=float)
    p_churn = scores["p_churn"].to_numpy(dtype=float)
    if "referral_value" in scores:
        referral = np.nan_to_num(scores["referral_value"].to_numpy(dtype=float), nan=0.0)
    else:
        referral = np.zeros(len(scores))
    with np.errstate(over="ignore"):  # a stake too large for a float is inf: refused below, or by the caller
        parts = {
            "stake_retention": float(w["retention"]) * p_churn * clv,
            "stake_growth": growth_weight(scores, w["growth"]) * clv,
            "stake_referral": float(w["referral"]) * referral,
        }
        frame = pd.DataFrame(parts, index=scores.index)
        frame["stake"] = frame["stake_retention"] + frame["stake_growth"] + frame["stake_referral"]
    if check:
        check_stake_parts(frame, scores, uplift=w["growth"] == "auto" and "effort_uplift" in scores)
    return frame


def growth_weight(scores: pd.DataFrame, weight: Weight) -> float | FloatArray:
    """The growth weight per account: `weight` itself, or the scores' fitted uplift for ``"auto"``.

    For ``"auto"``, each row's ``effort_uplift`` where it is a finite number >= 0, else `FALLBACK_GROWTH`.
    """
    if weight != "auto":
        return float(weight)
    if "effort_uplift" not in scores:
        return FALLBACK_GROWTH
    uplift = pd.to_numeric(scores["effort_uplift"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(uplift) & (uplift >= 0), uplift, FALLBACK_GROWTH)


def resolve_weights(weights: Mapping[Any, Weight] | None) -> dict[str, Weight]:
    """The three stake weights: `DEFAULT_WEIGHTS` overridden by `weights`; bad ones are a ConfigError.

    A weight is a number >= 0 (growth may be ``"auto"``); text ("1"), true/false and NaN are refused.
    """
    out = dict(DEFAULT_WEIGHTS)
    for key, raw in (weights or {}).items():
        if key not in out:
            raise ConfigError(f"unknown stake weight '{key}'; valid: {', '.join(STAKE_PARTS)}")
        if raw == "auto":
            if key != "growth":
                raise ConfigError(f"stake weight '{key}' must be a number >= 0; only growth can be 'auto'")
            out[key] = "auto"
            continue
        if isinstance(raw, str | bytes):  # float("1") read the text "1" as 1, as the config refuses it
            shown = raw.item() if isinstance(raw, np.generic) else raw  # '1', not np.str_('1')
            raise ConfigError(f"stake weight '{key}' must be a number >= 0, got {shown!r} (text)")
        try:
            if isinstance(raw, bool | np.bool_):  # float(True) is 1, as the config refuses it
                raise TypeError
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"stake weight '{key}' must be a number >= 0, got {raw!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"stake weight '{key}' must be a finite number >= 0, got {value}")
        out[key] = value
    return out
