"""Progress of long loops: a rich progress bar on a terminal, a few plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["track"]

T = TypeVar("T")
log = logging.getLogger("kamml")


def track(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Yield `items`, showing progress: a bar on a terminal, a log line per ~25 % in batch jobs.

    The bar shows no counts; the log lines group thousands ("1,250/5,000") as kamml's other counts do.
    A single item has no progress to show: its "1/1" line only came after the work was done.
    """
    if total <= 1:
        yield from items
        return
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)
        return
    step = max(1, total // 4)
    for i, item in enumerate(items, start=1):
        yield item
        if i == total or i % step == 0:
            log.info("%s: %s/%s", description, f"{i:,}", f"{total:,}")
