"""A stop asked for by a signal (a scheduler's SIGTERM), kept so that the jobs honour it at safe points.

The console script's handler records the signal and raises `SystemExit` wherever Python is. Raised in
a garbage collector's callback (a weakref's clean-up, SQLAlchemy's state clean-up while MLflow logs),
Python prints "Exception ignored in ..." and drops it: an audit's job then trained, registered,
published and exited 0. So the jobs call `check` between stages and before they register a model or
publish outputs, and `kamml.cli` ends a command that returned after a signal with its exit.
"""

from __future__ import annotations

__all__ = ["check", "request", "requested"]

#: Signal numbers received, first first (a list: appended to from the signal handler, no lock needed).
_SIGNALS: list[int] = []


def request(signum: int) -> None:
    """Record that the process was told to stop by `signum`."""
    _SIGNALS.append(int(signum))


def requested() -> int | None:
    """The first signal that asked for a stop, or None."""
    return _SIGNALS[0] if _SIGNALS else None


def check() -> None:
    """Exit as the signal's handler would (``SystemExit(128 + signum)``) when a stop was asked for."""
    signum = requested()
    if signum is not None:
        raise SystemExit(128 + signum)
