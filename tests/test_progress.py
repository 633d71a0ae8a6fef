import logging

import pytest

from kamml.progress import track


def test_batch_progress_lines_group_counts_from_1000_on(caplog: pytest.LogCaptureFixture, monkeypatch):
    """'scoring 5,000,000 accounts: 1234/5000' read without separators, unlike its own description."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)  # the plain log lines of a batch job
    with caplog.at_level(logging.INFO, logger="kamml"):
        assert sum(1 for _ in track(range(5000), 5000, "scoring")) == 5000
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "scoring: 1,250/5,000",
        "scoring: 2,500/5,000",
        "scoring: 3,750/5,000",
        "scoring: 5,000/5,000",
    ]


def test_batch_progress_of_a_few_items_logs_each_step(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    with caplog.at_level(logging.INFO, logger="kamml"):
        list(track(range(3), 3, "chunks"))
    assert [r.getMessage() for r in caplog.records] == ["chunks: 1/3", "chunks: 2/3", "chunks: 3/3"]


def test_batch_progress_of_one_item_logs_nothing(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """'scoring 23,570 accounts: 1/1' came after the work, just before the caller's own "scored" line."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    with caplog.at_level(logging.INFO, logger="kamml"):
        assert list(track(range(1), 1, "scoring")) == [0]
        assert list(track(range(0), 0, "scoring")) == []
    assert caplog.records == []
