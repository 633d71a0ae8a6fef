"""Counts in words, worded alike in every message, log line and report ("1 account", "5,000 accounts").

A base module (no imports): the data checks, the errors and the reports all use it.
"""

from __future__ import annotations

__all__ = ["counted", "in_hours"]


def counted(n: int, noun: str) -> str:
    """`n` with thousands separators and `noun`, plural (an "s") unless `n` is 1.

    Examples
    --------
    >>> counted(1, "account"), counted(0, "account"), counted(5000, "test account")
    ('1 account', '0 accounts', '5,000 test accounts')
    """
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def in_hours(x: float) -> str:
    """`x` hours as messages write them (six significant digits), "hour" when that reads 1.

    Examples
    --------
    >>> in_hours(1.0), in_hours(0.5), in_hours(1234.5)
    ('1 hour', '0.5 hours', '1,234.5 hours')
    """
    shown = f"{x:,.6g}"
    return f"{shown} hour{'' if shown == '1' else 's'}"
