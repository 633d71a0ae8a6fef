"""kamml's own BTYD fits (`fit_btyd`): what a job's log says when a fit does not converge."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from kamml.models.btyd_features import fit_btyd


def _flat_rows(n: int, seed: int) -> pd.DataFrame:
    """Feature rows of one purchase window each: BG/NBD's dropout likelihood is flat (a and b)."""
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(1.5, n) + 1.0
    T = rng.uniform(20.0, 52.0, n)
    return pd.DataFrame(
        {
            "frequency": frequency,
            "recency": T * rng.uniform(0.2, 1.0, n),
            "T": T,
            "monetary": rng.gamma(14.0 * frequency, 1 / (0.6 * frequency)),
        }
    )


def test_a_fit_that_does_not_converge_is_one_log_line_without_a_setting_the_job_lacks(caplog) -> None:
    """A job printed Python's raw ConvergenceWarning (file, source line) once per fit, advising "a small
    penalizer" that no config key sets; now one log warning per fit says what happened and that the
    parameters where the fit stopped are used."""
    frame = _flat_rows(2000, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with caplog.at_level("WARNING", logger="kamml.models.btyd_features"):
            fit = fit_btyd(frame)
    assert fit.gamma_gamma is not None
    lines = [r.getMessage() for r in caplog.records if "without converging" in r.getMessage()]
    assert len(lines) == 1  # BG/NBD's fit: everyone drops out at about one rate on these rows
    assert re.match(
        r"BG/NBD on 2,000 accounts stopped after \d+ iterations without converging: it could not improve "
        r"its fit any further; ",
        lines[0],
    )
    assert "a and b move together" in lines[0]
    assert "penalizer" not in lines[0]
    assert "ABNORMAL" not in lines[0]  # scipy's raw message reads as an error code in a report
    assert "Its parameters are used where it stopped. This is common with few accounts" in lines[0]
    assert "no setting changes it" in lines[0]
    assert lines[0].endswith("the backtest's BG/NBD rows show how well it still predicts")


def test_a_missing_history_value_is_named_once_as_missing() -> None:
    """A null frequency (or recency) beside T was also called "not a whole number" ("must be 0 when
    frequency is 0") with the example nan: one missing value read as two broken rules."""
    import pytest

    from kamml.errors import ModelError
    from kamml.models.btyd_features import check_history

    frequency, recency = np.array([np.nan, 0.0, 2.0]), np.array([10.0, np.nan, 5.0])
    T, monetary = np.array([20.0, 20.0, 20.0]), np.array([0.0, 0.0, 3.0])
    with pytest.raises(ModelError) as info:
        check_history(frequency, recency, T, monetary, unit_days=1)
    message = str(info.value)
    assert "features.frequency: missing while T is given; row(s) 0" in message
    assert "features.recency: missing while T is given; row(s) 1" in message
    assert "whole number" not in message
    assert "must be 0 when frequency is 0" not in message
    assert message.count("features.") == 2
    # an infinite value is named as not finite, not also as past a bound
    infinite = np.array([np.inf, 1.0, 2.0]), np.array([10.0, -np.inf, 5.0]), np.array([20.0, 20.0, np.inf])
    with pytest.raises(ModelError) as info:
        check_history(*infinite, monetary, unit_days=1)
    message = str(info.value)
    assert "features.frequency: must be finite; row(s) 0" in message
    assert "features.recency: must be finite; row(s) 1" in message
    assert "features.T: must be finite; row(s) 2" in message
    assert message.count("features.") == 3
