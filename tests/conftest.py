"""Session fixtures of the MLflow and job tests: one SQLite store, one trained and registered model.

A fresh SQLite tracking store costs ~4 s of migrations, so the session shares one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic

FAST = {"n_estimators": 40, "early_stopping_rounds": 10}


@pytest.fixture(autouse=True)
def _kamml_logger_restored() -> Iterator[None]:
    """Undo what a CLI run does to the ``kamml`` logger (its level, and a handler on the runner's stream).

    Without this a test that counts log records saw INFO lines of other kamml modules, and handlers
    writing to a closed stream, whenever it ran after a CLI test.
    """
    logger = logging.getLogger("kamml")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


#: The environment variables MLflow's URI setters write (and kamml's `tracking_uri` reads first).
_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_uri_variables_kept() -> Iterator[None]:
    """Fail a test that leaves MLFLOW_TRACKING_URI or MLFLOW_REGISTRY_URI changed, and put them back.

    ``mlflow.set_tracking_uri`` and ``mlflow.set_registry_uri`` also write these variables. Left set, the
    variable wins over every later test's config: a test that put MLflow's URI back with
    ``mlflow.set_tracking_uri(before)`` left MLflow's default ``sqlite:///mlflow.db`` there, and a later
    test opened that store in the working folder. A test changing them uses ``monkeypatch`` (undone
    before this check) or removes what MLflow's setters wrote.
    """
    before = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    yield
    after = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    changed = [
        f"{name}: {before[name]!r} -> {after[name]!r}" for name in before if after[name] != before[name]
    ]
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if changed:
        pytest.fail("the test left MLflow's URI variables changed (put back): " + "; ".join(changed))


@pytest.fixture
def mlflow_state() -> Iterator[None]:
    """MLflow's tracking and registry URIs put back after the test as they were, unset included.

    Not with ``mlflow.set_tracking_uri(mlflow.get_tracking_uri())``: unset, the getter answers MLflow's
    default (``sqlite:///<working folder>/mlflow.db``), and the setter also writes it to
    MLFLOW_TRACKING_URI, which then won over every later test's config: the next test that opened a
    store without removing the variable created mlflow.db in the working folder. MLflow keeps the URIs
    it was given in two module variables (read here as its own ``_use_tracking_uri`` does); None means
    unset, and the setters unset the tracking variable for it.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uris = tracking_utils._tracking_uri, registry_utils._registry_uri
    variables = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    mlflow.set_tracking_uri(uris[0])
    mlflow.set_registry_uri(uris[1])
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


#: What MLflow and kamml create in the working folder when a test uses their default store by mistake.
_DEFAULT_STORE_FILES = (
    "mlflow.db",
    "mlflow.db.kamml-lock",
    "mlruns",
    "mlruns.db",
    "mlruns.db.kamml-lock",
    "mlartifacts",
)
_files_at_start: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note which default store files the working folder already has (a `make demo` leaves some)."""
    _files_at_start.update(name for name in _DEFAULT_STORE_FILES if (Path.cwd() / name).exists())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when tests left a default MLflow store (or its artifacts) in the working folder."""
    new = [
        name for name in _DEFAULT_STORE_FILES if (Path.cwd() / name).exists() and name not in _files_at_start
    ]
    if new:
        session.config.get_terminal_writer().line(
            f"\nkamml tests: the run left {', '.join(new)} in {Path.cwd()}: a test used a default MLflow "
            "store instead of its own (see _mlflow_uri_variables_kept in tests/conftest.py)",
            red=True,
        )
        if exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _tracked_config(root: Path, **tracking: str) -> Config:
    """A small, fast job config whose MLflow store lives under `root`."""
    return Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
            "tracking": {
                "uri": f"sqlite:///{root / 'mlruns.db'}",
                "artifact_location": str(root / "mlartifacts"),
                "experiment": "kamml-test",
                "model_name": "kamml-test",
                **tracking,
            },
        }
    )


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder for the session's tracking store, with MLFLOW_TRACKING_URI out of the way."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def tracked_config(store_root: Path):
    """Factory of small, fast job configs using the session's tracking store."""

    def make(**tracking: str) -> Config:
        return _tracked_config(store_root, **tracking)

    return make


@pytest.fixture
def mlflow_at_session_store(store_root: Path) -> Iterator[None]:
    """MLflow's own API (``MlflowClient()``, ``mlflow.start_run``) on the session's store for the test.

    kamml's calls point MLflow at a config's store only while they run (`tracking_scope`), so a test
    reading the session's runs, models and aliases through MLflow's API names that store here; MLflow's
    URIs are put back after the test.
    """
    from kamml.tracking import tracking_scope

    with tracking_scope(_tracked_config(store_root).tracking):
        yield


@pytest.fixture(scope="session")
def world_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world on disk (transactions, accounts, referrals, activities)."""
    path = tmp_path_factory.mktemp("world")
    synthetic.generate(400, seed=5, years=2.0).write(path)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that needs `trained` (directly or through a fixture) without the slow mark.

    The training job takes about half a minute of the session: `make test-fast` runs it for any test
    that needs it, so such a test is marked slow (Spark tests are left out of test-fast by their own mark).
    """
    unmarked = [
        item.nodeid
        for item in items
        if "trained" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("slow") is None
        and item.get_closest_marker("spark") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that need the trained fixture (a whole training job) must be marked slow: "
            + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def trained(store_root: Path, world_path: Path):
    """The training job run once: (config, data, TrainResult). Every test that needs it is marked slow."""
    from kamml.jobs.train import train

    cfg = _tracked_config(store_root)
    data = load_data(world_path, cfg)
    return cfg, data, train(data, cfg)


@pytest.fixture(scope="session")
def few_repeaters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A transactions folder where 5 accounts buy twice before the test cutoff, and a config for it.

    Gamma-Gamma needs 10 repeat buyers: at the cutoff (the data end minus the 90-day horizon) it is not
    fitted and the BTYD value baseline has no forecast (its metrics NaN); the value model needs no
    Gamma-Gamma offset (``models.clv.offset_feature: null``).
    """
    import pandas as pd

    world = synthetic.generate(400, seed=3, years=2.0)
    end = world.end.normalize()
    cut = end - pd.Timedelta(days=90)
    tx = world.transactions.sort_values("ts", kind="stable")
    before, after = tx[tx["ts"] < cut], tx[tx["ts"] >= cut]
    repeaters = before["account_id"].unique()[:5]
    firsts = before.groupby("account_id").head(1)
    once = firsts[~firsts["account_id"].isin(repeaters)]
    kept = [once, before[before["account_id"].isin(repeaters)], after]
    path = tmp_path_factory.mktemp("few_repeaters")
    pd.concat(kept).to_csv(path / "transactions.csv", index=False)
    config = {
        "data": {"end": str(end.date())},
        "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60, "cutoff": str(cut.date())},
        "models": {"threads": 1, "clv": {**FAST, "offset_feature": None}, "churn": FAST, "influence": FAST},
    }
    return path, config
