"""numpy's linear quantile rebuilt from the two neighbouring order statistics, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from kamml.spark.allocation import linear_quantile


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 11, 99, 1000, 12_345])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1 - 0.1, 0.999, 1.0])
def test_linear_quantile_is_numpy(n, q):
    rng = np.random.default_rng(n)
    values = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(3, 2, n))
    ordered = np.sort(values)
    i = min(int(np.floor((n - 1) * q)), n - 1)
    j = min(i + 1, n - 1)
    assert linear_quantile(n, q, ordered[i], ordered[j]) == np.quantile(values, q)
