"""The fixed effort-scale rule: hours that move an account, growing with its value (numpy only).

Split from `kamml.models.effort` (which fits the rule's scale from activities with scipy and Ibis) so
that the allocation imports only this: `kamml allocate` starts without scipy, Ibis or LightGBM.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import numpy.typing as npt

from kamml.errors import ConfigError

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_EXPONENT",
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_SCALE",
    "check_clip",
    "default_scale",
    "effort_scale",
]

logger = logging.getLogger("kamml.models.effort")

FloatArray = npt.NDArray[np.float64]

DEFAULT_SCALE = 4.0
"""Effort scale (hours at the median account) of the fixed rule over `DEFAULT_HORIZON_DAYS`, used when
none is fitted or set; `default_scale` gives it for another horizon."""
DEFAULT_HORIZON_DAYS = 180
"""The horizon `DEFAULT_SCALE` is for (``time.horizon_days``' default)."""
DEFAULT_EXPONENT = 0.5
DEFAULT_CLIP = (0.25, 4.0)


def default_scale(horizon_days: float | None = None) -> float:
    """The fixed rule's effort scale for hours over `horizon_days`: 4 h at 180 days, in proportion.

    A fitted scale is the horizon's too (a period's k times horizon / period,
    `kamml.models.effort`): the same hours spread over a longer horizon move an account less. Held at
    4 h, a 30-day plan saw accounts saturate six times too slowly. None means `DEFAULT_HORIZON_DAYS`.

    >>> default_scale(), default_scale(30), default_scale(365)
    (4.0, 0.6666666666666666, 8.11111111111111)
    """
    if horizon_days is None:
        return DEFAULT_SCALE
    days = float(horizon_days)
    if not np.isfinite(days) or days <= 0:
        raise ConfigError(f"horizon must be a finite number of days > 0, got {horizon_days}")
    return DEFAULT_SCALE * days / DEFAULT_HORIZON_DAYS


def effort_scale(
    clv: npt.ArrayLike,
    scale: float | Literal["auto"] = DEFAULT_SCALE,
    *,
    exponent: float = DEFAULT_EXPONENT,
    clip: tuple[float, float] = DEFAULT_CLIP,
    reference: float | None = None,
    factor: npt.ArrayLike | None = None,
    horizon_days: float | None = None,
) -> FloatArray:
    """Effort scale k per account in hours, growing with its value: bigger accounts need more hours.

    ``k = scale * (clv / reference) ** exponent``, clipped to ``[clip[0], clip[1]] * scale``, with the
    median positive clv as the reference unless one is given. The typical account (reference value)
    gets ``scale`` hours; one with no positive value the smallest k (with exponent 0, ``scale`` clipped,
    as every account: 0 ** 0 is 1).

    Parameters
    ----------
    clv : array-like of shape (n,)
        Value per account (>= 0; NaN counts as 0).
    scale : float or "auto", default 4.0
        Effort scale of the typical account in hours (`AllocationConfig.effort_scale`), > 0. ``"auto"``
        asks for a fitted response (`kamml.models.effort.EffortResponse.effort_scale`); here, without
        one, it falls back to the fixed rule's scale for `horizon_days` (`default_scale`) with a log line.
    exponent : float, default 0.5
        How fast k grows with value: 0 gives every account the same k, 1 makes k proportional to value.
    clip : tuple of float, default (0.25, 4.0)
        Smallest and largest k as multiples of `scale`, 0 < low <= high.
    reference : float, optional
        The value at which k = `scale` (> 0), e.g. the median account of a fitted response; default the
        median positive clv of the accounts given.
    factor : array-like of shape (n,), optional
        A further multiplier per account applied before the clip (a fitted response's size term,
        `kamml.models.effort.EffortResponse.effort_scale`); finite and > 0.
    horizon_days : float, optional
        The horizon of `clv` and of the hours (``time.horizon_days``), read only for ``"auto"``; default
        `DEFAULT_HORIZON_DAYS`. A number of hours in `scale` is used as given.

    Returns
    -------
    numpy.ndarray of shape (n,)
        k per account, > 0.

    Raises
    ------
    kamml.errors.ConfigError
        On a scale that is not positive, a negative or non-finite exponent, a bad clip range, or a scale
        so large or small that the clipped k overflows to inf or underflows to 0.

    Examples
    --------
    The median positive value is 100, so the 4x bigger account needs 2x the hours:

    >>> effort_scale([100.0, 400.0, 0.0, 25.0], scale=2.0).tolist()
    [2.0, 4.0, 0.5, 1.0]

    With a fixed reference value, k no longer depends on which other accounts are scored:

    >>> effort_scale([100.0, 400.0], scale=2.0, reference=400.0).tolist()
    [1.0, 2.0]
    """
    if isinstance(scale, str):
        if scale != "auto":
            raise ConfigError(f"effort scale must be a number of hours or 'auto', got {scale!r}")
        scale = default_scale(horizon_days)
        logger.info(
            "effort scale 'auto' without a fitted effort response: using the fixed rule, "
            "%.3g hours over the %g-day horizon at the median account",
            scale,
            DEFAULT_HORIZON_DAYS if horizon_days is None else horizon_days,
        )
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"effort scale must be a finite number of hours > 0, got {scale}")
    if not np.isfinite(exponent) or exponent < 0:
        raise ConfigError(f"effort scale exponent must be a finite number >= 0, got {exponent}")
    low, high = check_clip(clip)
    if not (low * scale > 0 and high * scale < np.inf):  # 1e308 h made k inf, 5e-324 h made it 0
        raise ConfigError(
            f"effort scale {scale:g} h with the clip ({low:g}, {high:g}) gives a k of "
            f"{low * scale:g} to {high * scale:g} h: k must be a finite number of hours > 0"
        )
    value = np.nan_to_num(np.asarray(clv, dtype=float), nan=0.0)
    if reference is not None:
        ref = float(reference)
        if not np.isfinite(ref) or ref <= 0:
            raise ConfigError(f"effort scale reference value must be a finite number > 0, got {reference}")
    else:
        positive = value[value > 0]
        if positive.size == 0:
            logger.warning("no account has a positive clv: every account gets the same effort scale")
            value, ref = np.ones_like(value), 1.0
        else:
            ref = float(np.median(positive))
    with np.errstate(divide="ignore", over="ignore"):  # inf and 0 are clipped below
        relative = np.maximum(value, 0.0) / ref
        k = scale * np.power(relative, exponent)
        if factor is not None:
            k = k * np.asarray(factor, dtype=float)
    return np.asarray(np.clip(k, low * scale, high * scale), dtype=np.float64)


def check_clip(clip: tuple[float, float], name: str = "clip") -> tuple[float, float]:
    """The clip range (low, high) of `effort_scale` as floats; a ConfigError unless 0 < low <= high < inf.

    `name` is what the message calls the range: `effort_scale`'s own argument by default, the
    response's field or the config's key (quoted) from the callers that check one.
    """
    low, high = float(clip[0]), float(clip[1])
    if not (0 < low <= high < np.inf):
        raise ConfigError(f"{name} must satisfy 0 < low <= high < inf, got ({low}, {high})")
    return low, high
