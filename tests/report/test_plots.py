import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from kamml.errors import DataError
from kamml.report.plots import plot_budget_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def curve(feasible_from=0):
    fraction = np.round(np.arange(1, 21) * 0.1, 1)
    hours = fraction * 500.0
    gain = 1e5 * (1 - np.exp(-hours / 300.0))
    price = 1e5 / 300.0 * np.exp(-hours / 300.0)
    gain[:feasible_from] = np.nan
    price[:feasible_from] = np.nan
    return pd.DataFrame({"fraction": fraction, "hours": hours, "total_gain": gain, "team_price": price})


def test_writes_a_png_without_touching_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    path = plot_budget_curve(curve(feasible_from=2), tmp_path / "plots" / "budget.png")
    assert path == tmp_path / "plots" / "budget.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.ndim == 3
    assert image.shape[0] > 200
    assert image.shape[1] > 300
    assert image.std() > 0.05  # not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == ["budget.png"]  # no temp file left
    assert matplotlib.get_backend() == backend


def test_the_curve_without_fraction_and_with_a_title(tmp_path):
    path = plot_budget_curve(curve().drop(columns="fraction"), tmp_path / "b.png", title="Team of 12")
    assert path.stat().st_size > 1000


def test_bad_inputs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="lacks columns"):
        plot_budget_curve(curve().drop(columns="team_price"), tmp_path / "b.png")
    with pytest.raises(DataError, match="no feasible budget"):
        plot_budget_curve(curve(feasible_from=20), tmp_path / "b.png")
    with pytest.raises(DataError, match=r"\.png"):
        plot_budget_curve(curve(), tmp_path / "b.pdf")
    assert list(tmp_path.iterdir()) == []
