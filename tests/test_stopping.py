"""A stop asked for by a signal is kept and raised at the next safe point."""

from __future__ import annotations

import signal

import pytest

from kamml import stopping


def test_check_raises_the_signals_exit_once_a_stop_is_requested(monkeypatch):
    monkeypatch.setattr(stopping, "_SIGNALS", [])
    stopping.check()  # nothing asked: nothing happens
    assert stopping.requested() is None
    stopping.request(signal.SIGTERM)
    stopping.request(signal.SIGINT)  # the first signal is the one that counts
    assert stopping.requested() == signal.SIGTERM
    with pytest.raises(SystemExit) as stopped:
        stopping.check()
    assert stopped.value.code == 143
    with pytest.raises(SystemExit):  # and at every later safe point
        stopping.check()
