"""Fixtures of the tracking tests: a real MLflow command (``mlflow server``, ``mlflow models serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    """A port nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _mlflow_listening(args: list[str], env: dict[str, str], folder: Path, ready: str) -> Iterator[str]:
    """Run ``mlflow *args`` on 127.0.0.1, a free port and one worker until the block ends: its URL.

    Waits (two minutes at most) until ``ready`` (``/health``, ``/ping``) answers 200, and fails with the
    end of its log (``folder/mlflow.log``) when it exits or does not answer. It runs in a session of its
    own, stopped as a whole: the uvicorn worker it starts goes with it.
    """
    port = _free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), *args]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    log = folder / "mlflow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow {args[0]} exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}{ready}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow {args[0]} did not answer {ready}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def start_mlflow() -> Callable[[list[str], dict[str, str], Path, str], AbstractContextManager[str]]:
    """Start a real MLflow command for a fixture: ``with start_mlflow(args, env, folder, ready) as url``."""
    return _mlflow_listening
