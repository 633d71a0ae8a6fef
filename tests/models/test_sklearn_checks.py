"""scikit-learn's shared estimator checks on every LightGBM model of kamml.

Every check applies and passes; nothing is marked as an expected failure. Notes on how:

- ClvModel and InfluenceModel declare ``target_tags.positive_only`` (tweedie and poisson need y >= 0), so
  the checks shift their regression targets to positive values.
- ChurnModel declares ``classifier_tags.multi_class = False`` and raises "Only binary classification is
  supported" on a multiclass target, as sklearn expects of binary-only classifiers.
- ``num_threads=1``: the checks fit hundreds of tiny models, and on a small shared machine OpenMP
  threads spin against other processes; the default of 2 threads behaves the same, only slower here.
- ``check_sample_weight_equivalence_on_dense_data`` passes because its data are smaller than
  ``min_data_in_leaf``; in general integer weights are not repeated rows for LightGBM (leaf sizes and
  bagging count rows, not weights).
- ``check_array_api_input`` is skipped by sklearn itself unless ``SCIPY_ARRAY_API=1``; LightGBM takes
  numpy input only, so kamml's models do not claim array API support.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from kamml.models.churn import ChurnModel
from kamml.models.clv import ClvModel
from kamml.models.influence import InfluenceModel


@parametrize_with_checks(
    [
        ClvModel(num_threads=1),
        ChurnModel(num_threads=1),
        InfluenceModel(num_threads=1),
        InfluenceModel(objective="poisson", num_threads=1),
    ]
)
def test_sklearn_compatible(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)


def test_zero_rows_predict_as_empty_for_arrays_and_frames_alike() -> None:
    """A 0-row DataFrame gave an empty prediction and a 0-row array sklearn's "Found array with 0
    sample(s)": sklearn's checks ask for that error in fit only, so predict gives an empty result for both."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    for model, y in (
        (ClvModel(num_threads=1, n_estimators=5), np.abs(X[:, 0]) * 10 + 1),
        (ChurnModel(num_threads=1, n_estimators=5), (X[:, 0] > 0).astype(int)),
        (InfluenceModel(num_threads=1, n_estimators=5), (X[:, 0] > 0) * 2.0),
    ):
        for data in (X, pd.DataFrame(X, columns=["a", "b", "c"])):
            model.fit(data, y)
            assert model.predict(data[:0]).shape == (0,)
            if isinstance(model, ChurnModel):
                assert model.predict_proba(data[:0]).shape == (0, 2)
        with pytest.raises(ValueError, match="0 sample"):  # sklearn: check_estimators_empty_data_messages
            type(model)(num_threads=1).fit(X[:0], y[:0])
