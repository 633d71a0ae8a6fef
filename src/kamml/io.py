"""Atomic writing of output tables: a killed job leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from kamml.errors import DataError

__all__ = ["atomic_path", "check_output_path", "write_parquet", "write_table"]

FORMATS = {".parquet": "parquet", ".csv": "csv"}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes files private (0600); outputs get the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet with microsecond timestamps: Spark cannot read Parquet's nanosecond timestamps."""
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)


def check_output_path(path: str | Path) -> str:
    """The table format of an output path (``parquet`` or ``csv``), checked before any long work."""
    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise DataError(f"cannot write {target}: use a .parquet or .csv file name")
    return kind


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` to Parquet or CSV (by the file extension) atomically; return the path."""
    target = Path(path)
    kind = check_output_path(target)
    with atomic_path(target) as tmp:
        if kind == "parquet":
            write_parquet(frame, tmp)
        else:
            frame.to_csv(tmp, index=False)
    return target
