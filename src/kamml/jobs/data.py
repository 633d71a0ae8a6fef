"""Resolving a job's input data from its config: the folder, and the seeded demo world when asked for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kamml.config import Config
from kamml.data import Dataset, load_data
from kamml.errors import ConfigError

__all__ = ["ensure_generated", "job_data"]

log = logging.getLogger(__name__)


def _has_transactions(folder: Path) -> bool:
    """Whether the folder holds a transactions table (file or folder of parts)."""
    return any(folder.glob("transactions*"))


def ensure_generated(config: Config) -> None:
    """Fill `data.path` when it holds no transactions, so the shipped configs work on a fresh clone.

    The synthetic world when `data.generate` is set, or a packaged dataset when `data.builtin` is.
    """
    gen, path = config.data.generate, config.data.path
    if path is None or _has_transactions(Path(path)):
        return
    if config.data.builtin is not None:
        from kamml.datasets import load_cdnow
        from kamml.io import write_table

        tx = load_cdnow(sample=config.data.builtin == "cdnow_sample").drop(
            columns="master_id", errors="ignore"
        )
        log.info("no transactions in %s: writing the packaged %s log", path, config.data.builtin)
        write_table(tx, Path(path) / "transactions.parquet")
        return
    if gen is None:
        return
    from kamml.datasets import synthetic

    log.info(
        "no transactions in %s: generating the synthetic world (%d accounts, seed %d)",
        path,
        gen.accounts,
        gen.seed,
    )
    synthetic.generate(gen.accounts, gen.seed, years=gen.years).write(path)


def job_data(config: Config, source: Any = None) -> Dataset:
    """The validated dataset of a job: `source` when given, else `data.path` (generated if configured)."""
    if source is None:
        if config.data.path is None:
            raise ConfigError("no data: pass --data DIR or set data.path in the config")
        ensure_generated(config)
        source = config.data.path
    return load_data(source, config)
