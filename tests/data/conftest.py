from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
from typer.testing import CliRunner

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture(scope="module")
def backend() -> ibis.BaseBackend:
    """One DuckDB connection per test module (tables get unique names, so tests do not collide)."""
    return ibis.duckdb.connect(threads=1)


@pytest.fixture
def tx() -> pd.DataFrame:
    """A small valid transactions table: 3 accounts, one refund, one zero amount."""
    return pd.DataFrame(
        {
            "account_id": [1, 1, 2, 2, 3],
            "ts": pd.to_datetime(
                ["2024-01-05", "2024-02-01", "2024-01-10", "2024-03-01 15:30", "2024-03-31"], format="ISO8601"
            ),
            "amount": [100.0, -20.0, 50.0, 0.0, 5.5],
            "quantity": [2.0, -1.0, 1.0, 1.0, 1.0],
        }
    )


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write text as a file under tmp_path and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_cli() -> Iterator[Callable[..., Any]]:
    """Run the `kamml` command in-process; the logging setup it changes is restored afterwards."""
    from kamml.cli import app

    logger = logging.getLogger("kamml")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, [str(a) for a in args])

    yield run
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
