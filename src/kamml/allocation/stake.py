"""Value at stake and effort scale per account: what sales effort can move, and how many hours it takes.

The scores of an account (DESIGN §10: clv, p_churn, referral_value) become the two numbers of its gain
curve ``gain(h) = stake * (1 - exp(-h / k))`` (DESIGN §6):

- the **stake**, a weighted sum of three parts, kept apart so reasons can say which one dominates::

      retention = w_retention * p_churn * clv      (value kept by preventing churn)
      growth    = w_growth * clv                   (value grown in an account that stays)
      referral  = w_referral * referral_value      (value of the accounts it brings in)

  ``referral_value`` missing (no referrals table) or NaN counts as 0;
- the **effort scale** k (hours that move 63 % of the stake), growing with the account's value: bigger
  accounts need more hours for the same share of their stake::

      k = effort_scale * (clv / reference) ** exponent,  clipped to [0.25, 4] * effort_scale

  with exponent 0.5 by default (a 4x bigger account needs 2x the hours) and the median positive clv as
  the reference, unless a fitted response (`kamml.models.effort.EffortResponse`) gives its own scale,
  exponent and reference value. An account with no positive value gets the smallest scale; when no
  account has positive value (and no reference is given) every scale is ``effort_scale``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.errors import ConfigError
from kamml.models.effort_rule import DEFAULT_CLIP, DEFAULT_EXPONENT, DEFAULT_SCALE, effort_scale

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_EXPONENT",
    "DEFAULT_SCALE",
    "DEFAULT_WEIGHTS",
    "STAKE_PARTS",
    "effort_scale",
    "resolve_weights",
    "stake_parts",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

STAKE_PARTS = ("retention", "growth", "referral")
"""The three parts of the stake, in the order of the ``stake_<part>`` columns."""

DEFAULT_WEIGHTS: Mapping[str, float] = {"retention": 1.0, "growth": 0.3, "referral": 0.5}
"""Weights of the parts when none are given (those of `kamml.config.AllocationConfig`)."""


def stake_parts(scores: pd.DataFrame, weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Value at stake per account and its three weighted parts, from the scores table.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per account with ``clv`` (value in the horizon, >= 0) and ``p_churn`` (in [0, 1]); an
        optional ``referral_value`` (absent or NaN means 0). Checked by the caller (`allocate`).
    weights : mapping, optional
        Weight of ``retention``, ``growth`` and ``referral`` (each >= 0); parts left out keep their
        default of `DEFAULT_WEIGHTS`.

    Returns
    -------
    pandas.DataFrame
        Same index as `scores`, columns ``stake_retention``, ``stake_growth``, ``stake_referral`` and
        ``stake`` (their sum), all float.

    Raises
    ------
    kamml.errors.ConfigError
        On an unknown part or a negative or non-finite weight.

    Examples
    --------
    >>> scores = pd.DataFrame({"clv": [100.0, 10.0], "p_churn": [0.5, 0.1], "referral_value": [0.0, 40.0]})
    >>> stake_parts(scores)["stake"].tolist()
    [80.0, 24.0]
    """
    w = resolve_weights(weights)
    clv = scores["clv"].to_numpy(dtype=float)
    p_churn = scores["p_churn"].to_numpy(dtype=float)
    if "referral_value" in scores:
        referral = np.nan_to_num(scores["referral_value"].to_numpy(dtype=float), nan=0.0)
    else:
        referral = np.zeros(len(scores))
    parts = {
        "stake_retention": w["retention"] * p_churn * clv,
        "stake_growth": w["growth"] * clv,
        "stake_referral": w["referral"] * referral,
    }
    frame = pd.DataFrame(parts, index=scores.index)
    frame["stake"] = frame["stake_retention"] + frame["stake_growth"] + frame["stake_referral"]
    return frame


def resolve_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The three stake weights: `DEFAULT_WEIGHTS` overridden by `weights`; bad ones are a ConfigError."""
    out = dict(DEFAULT_WEIGHTS)
    for key, value in (weights or {}).items():
        if key not in out:
            raise ConfigError(f"unknown stake weight '{key}'; valid: {', '.join(STAKE_PARTS)}")
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"stake weight '{key}' must be a finite number >= 0, got {value}")
        out[key] = value
    return out
