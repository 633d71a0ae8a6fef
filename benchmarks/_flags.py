"""argparse types shared by the benchmark scripts: a bad flag is refused at once, naming the flag.

Without them a flag such as ``--repeats 0`` or ``--hours-per-account -1`` failed with a traceback, some
only after minutes of generating a world and training models. Not a benchmark: `make bench` skips
files whose name starts with an underscore.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `low`, written 20000 or 2e4."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value >= low and value == int(value)):
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low:,}, got {text!r}")
        return int(value)

    return parse


def number(low: float = 0.0, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [`low`, `high`] (above `low` strictly when `above`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if above else value >= low) and value <= high
        if not ok:
            within = f"> {low:g}" if above else f">= {low:g}"
            if math.isfinite(high):
                within += f" and <= {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {within}, got {text!r}")
        return value

    return parse


def years(text: str) -> float:
    """An argparse type: years of synthetic history from 2023-01-01, > 0 and ending by today.

    As `kamml generate --years`: a longer history ran into generate's ConfigError as a traceback whose
    way out (allow_future=True) no flag gives, and kamml's jobs refuse rows dated after today anyway.
    """
    value = number(0.0, above=True)(text)
    from kamml.datasets.synthetic import check_ends_by_today
    from kamml.errors import ConfigError

    try:
        check_ends_by_today(value, "--years")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--years: ")) from None
    return value
