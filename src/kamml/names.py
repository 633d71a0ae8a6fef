"""Names of reps and owners as text, alike wherever they are read (config keys, data, scores).

A base module (numpy and pandas only): the config matches `allocation.capacity`'s keys with it, and
the allocation matches the data's owners, so neither has to import the other.
"""

from __future__ import annotations

import numbers
import re
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["rep_name", "rep_names"]


def rep_names(values: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """`rep_name` of every value (one call per distinct value), as an object array."""
    array = values if isinstance(values, pd.Series | pd.Index | np.ndarray) else np.asarray(values, object)
    codes, uniques = pd.factorize(array)
    names = np.array([*(rep_name(v) for v in uniques), None], dtype=object)
    return np.asarray(names[codes], dtype=object)  # code -1 (missing) takes the trailing None


def rep_name(value: Any) -> str | None:
    """A rep or owner as text, so ids read as numbers match the rep names of a config.

    Integers and whole floats lose any decimal part (1 and 101.0 are "1" and "101"), and so does the
    text of a whole float as a float column is written or cast to text ("101.0", "-3.00": an owner column
    of float ids, which ids with gaps become, cast to text by the data contract or read from a CSV as
    text), because such text is only ever the float 101.0 spelt out. Other values are their text without
    surrounding spaces, unchanged: "007", "007.0", "+1.0", "A-1", "1e3" and "101.5" are names of their
    own, not numbers (no float is written "007.0" or "1e3"). None, NaN and blank text are None (no owner).

    Examples
    --------
    >>> rep_name(101.0), rep_name("101.0"), rep_name(7), rep_name(" ann "), rep_name(float("nan"))
    ('101', '101', '7', 'ann', None)
    >>> rep_name("007"), rep_name("1e3"), rep_name("A-1")
    ('007', '1e3', 'A-1')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, numbers.Real | Decimal):
        number = float(value)
        if np.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if _WHOLE_FLOAT_TEXT.fullmatch(text):
        return str(int(text.partition(".")[0]))  # "-0.0" is "0", as rep_name(-0.0)
    return text or None


_WHOLE_FLOAT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)\.0+")
"""Text of a whole float as Python, numpy, pandas or a CSV writer spell it: no leading zero, no plus."""
