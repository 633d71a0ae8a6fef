"""What the three LightGBM models share (`kamml.models._lgbm`), as a scikit-learn user meets it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from kamml.models._lgbm import ModelInputError
from kamml.models.churn import ChurnModel
from kamml.models.clv import ClvModel
from kamml.models.influence import InfluenceModel

MODELS = (ClvModel, ChurnModel, InfluenceModel)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, a non-negative value target and a binary target of 300 rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    return X, rng.poisson(np.exp(X[:, 0])) * 10.0, (X[:, 0] > 0).astype(int)


def _target(model: Any) -> np.ndarray:
    """The target of `_data` that `model` learns."""
    _, value, churned = _data()
    return churned if isinstance(model, ChurnModel) else value


@pytest.mark.parametrize("cls", MODELS)
def test_set_params_sets_one_key_of_params_and_monotone(cls: type) -> None:
    """``params__num_leaves`` is how GridSearchCV tunes a LightGBM setting without its own argument:
    sklearn's set_params failed on it with "'dict' object has no attribute 'set_params'"."""
    given = {"num_leaves": 7, "lambda_l2": 2.0}
    model = cls(params=given)
    assert model.set_params(params__num_leaves=3, monotone__x0=1) is model
    assert model.params == {"num_leaves": 3, "lambda_l2": 2.0}
    assert model.monotone == {"x0": 1}
    assert given == {"num_leaves": 7, "lambda_l2": 2.0}  # the caller's dict is not changed
    assert cls().set_params(params__num_leaves=5).params == {"num_leaves": 5}  # from params=None
    # a whole dict given in the same call is the base the keys go into, as for nested estimators
    assert cls().set_params(params={"max_bin": 63}, params__num_leaves=5).params == {
        "max_bin": 63,
        "num_leaves": 5,
    }
    restored = cls().set_params(**model.get_params())
    assert restored.get_params() == model.get_params()


@pytest.mark.parametrize("cls", MODELS)
def test_set_params_refuses_a_params_key_lightgbm_does_not_know_by_name(cls: type) -> None:
    """A misspelt key is named at once, as a misspelt argument is, and the model is left as it was."""
    model = cls(params={"num_leaves": 7})
    with pytest.raises(InvalidParameterError, match=r"'params__num_leave'.*did you mean num_leaves"):
        model.set_params(learning_rate=0.1, params__num_leave=3)
    assert model.params == {"num_leaves": 7}
    assert model.learning_rate == 0.05
    with pytest.raises(ValueError, match="Invalid parameter 'param'"):
        model.set_params(param__num_leaves=3)


@pytest.mark.parametrize("cls", MODELS)
def test_whole_floats_of_lightgbm_int_params_fit_as_their_ints(cls: type) -> None:
    """``params={"num_leaves": 7.0}`` was refused by LightGBM at fit ("Parameter num_leaves should be of
    type int, got "7.0"") where ``models.clv.params.num_leaves: 7.0`` in a config trains as 7: the model
    now applies the config's rule (`lightgbm_whole`) at fit, leaving its ``params`` as given."""
    X, *_ = _data()
    given = {"num_leaves": 7.0, "min_data_in_leaf": 5.0, "lambda_l2": 2.0}
    model = cls(num_threads=1, n_estimators=10, params=given)
    floats = model.fit(X, _target(model))
    ints = clone(model).set_params(params={"num_leaves": 7, "min_data_in_leaf": 5, "lambda_l2": 2.0})
    ints.fit(X, _target(model))
    np.testing.assert_array_equal(floats.predict(X), ints.predict(X))
    assert floats.get_params()["params"] == given
    assert [type(v) for v in floats.get_params()["params"].values()] == [float, float, float]
    assert given == {"num_leaves": 7.0, "min_data_in_leaf": 5.0, "lambda_l2": 2.0}  # the caller's dict
    trained = floats.lgb_params()
    assert (type(trained["num_leaves"]), type(trained["min_data_in_leaf"])) == (int, int)
    assert type(trained["lambda_l2"]) is float  # a double parameter stays as given


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"num_leaves": 7.5}, "params key 'num_leaves' must be a whole number, got 7.5"),
        (
            {"num_leaf": 31.5},
            "params key 'num_leaf' (LightGBM's num_leaves) must be a whole number, got 31.5",
        ),
        (
            {"max_leaves": "x"},
            "params key 'max_leaves' (LightGBM's num_leaves) must be a whole number, got 'x'",
        ),
        (
            {"min_child_samples": -3},
            "params key 'min_child_samples' (LightGBM's min_data_in_leaf) must be >= 0, got -3",
        ),
        ({"num_leaves": 1}, "params key 'num_leaves' must be > 1, got 1"),
        (
            {"linear_trees": "yes"},
            "params key 'linear_trees' (LightGBM's linear_tree) must be true or false, got 'yes'",
        ),
    ],
)
def test_a_value_lightgbm_refuses_is_a_parameter_error_naming_the_key_as_given(
    cls: type, params: dict[str, Any], says: str
) -> None:
    """7.5 leaves are no whole number: refused, not 7 leaves trained. LightGBM's own error named its main
    name (``Parameter num_leaves should be of type int, got "31.5"`` for ``num_leaf``) and was no
    ValueError; it is scikit-learn's InvalidParameterError at fit, in the config's words (`kamml.models.
    bundle`), naming the key as given, and the model stays unfitted."""
    X, *_ = _data()
    model = cls(num_threads=1, n_estimators=10, params=params)
    with pytest.raises(InvalidParameterError) as caught:
        model.fit(X, _target(model))
    assert str(caught.value) == f"{cls.__name__}: {says}"
    assert not hasattr(model, "booster_")


def test_a_pipeline_and_a_grid_search_tune_a_key_of_params() -> None:
    X, y, _ = _data()
    pipe = make_pipeline(StandardScaler(), ClvModel(num_threads=1, n_estimators=10))
    pipe.set_params(clvmodel__params__num_leaves=4)
    assert pipe[-1].params == {"num_leaves": 4}
    search = GridSearchCV(
        ClvModel(num_threads=1, n_estimators=10), {"params__num_leaves": [4, 8]}, cv=2, error_score="raise"
    ).fit(X, y)
    assert search.best_params_["params__num_leaves"] in (4, 8)
    assert search.best_estimator_.params == {"num_leaves": search.best_params_["params__num_leaves"]}
    alone = ClvModel(num_threads=1, n_estimators=10, params={"num_leaves": 4}).fit(X, y)
    tuned = clone(alone).set_params(params=None, params__num_leaves=4).fit(X, y)
    np.testing.assert_array_equal(tuned.predict(X), alone.predict(X))


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({3: -1.0}, r"sample_weight: must be >= 0 \(1 row; e\.g\. -1\.0\)"),
        ({3: "heavy"}, r"sample_weight: must be one number per row of X: could not convert .*'heavy'"),
    ],
)
def test_bad_weights_are_refused_naming_sample_weight(
    cls: type, weights: dict[int, Any], message: str
) -> None:
    """A text among the weights gave numpy's bare "could not convert string to float", naming no argument."""
    from kamml.errors import SchemaError

    X, _, _ = _data()
    model = cls(num_threads=1, n_estimators=5)
    given = np.ones(len(X), dtype=object)
    for row, value in weights.items():
        given[row] = value
    with pytest.raises(SchemaError, match=message):
        model.fit(X, _target(model), sample_weight=given)


_PARSE_CHECK = """
import sys
import numpy as np
from sklearn.utils._param_validation import InvalidParameterError
from kamml.models import ClvModel

X = np.random.default_rng(0).random((50, 3))
for params in ({"num_leaves": 1}, {"num_leaf": 31.5}, {"min_child_samples": -3}):
    try:
        ClvModel(num_threads=1, n_estimators=5, params=params).fit(X, X[:, 0])
    except InvalidParameterError as exc:
        print(exc)
sys.stderr.write("done\\n")
"""


def test_a_value_lightgbm_s_parser_refuses_leaves_its_fatal_line_off_stderr_at_fit() -> None:
    """A direct fit printed "[LightGBM] [Fatal] Check failed: (num_leaves) > (1) at ...config_auto.cpp"
    above the estimator's own error. In a process of its own: earlier tests leave threads in this one,
    and the line is kept off stderr only while no other thread runs (`quiet_fatal`)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _PARSE_CHECK], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "ClvModel: params key 'num_leaves' must be > 1, got 1",
        "ClvModel: params key 'num_leaf' (LightGBM's num_leaves) must be a whole number, got 31.5",
        "ClvModel: params key 'min_child_samples' (LightGBM's min_data_in_leaf) must be >= 0, got -3",
    ]
    assert done.stderr == "done\n"


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"max_bin_by_feature": [15, 15]}, "params key 'max_bin_by_feature' has 2 values for 3 features"),
        ({"fc": [1.0]}, "params key 'fc' (LightGBM's feature_contri) has 1 value for 3 features"),
        ({"cegb_penalty_feature_lazy": "1,2,3,4"}, "params key 'cegb_penalty_feature_lazy' has 4 values"),
    ],
)
def test_a_per_column_parameter_of_another_length_than_the_columns_is_named(
    cls: type, params: dict[str, Any], says: str
) -> None:
    """LightGBM said only "Check failed: (static_cast<size_t>(num_col)) == (config_.max_bin_by_feature
    .size())", or "cegb_penalty_feature_lazy should be the same size as feature number"."""
    X, *_ = _data()
    model = cls(num_threads=1, n_estimators=5, params=params)
    with pytest.raises(ModelInputError, match=rf"^{cls.__name__}: {re.escape(says)}"):
        model.fit(X, _target(model))
    assert not hasattr(model, "booster_")


def test_per_column_parameters_of_the_columns_length_train_and_their_values_are_judged() -> None:
    X, y, _ = _data()
    model = ClvModel(
        num_threads=1, n_estimators=5, params={"max_bin_by_feature": [7, 15, 31], "fc": "1,1,0.5"}
    )
    assert model.fit(X, y).booster_.params["max_bin_by_feature"] == [7, 15, 31]
    unset = ClvModel(num_threads=1, n_estimators=5, params={"max_bin_by_feature": [], "fc": ""})
    assert unset.fit(X, y).booster_.params["max_bin_by_feature"] == []  # LightGBM's default: none given
    with pytest.raises(
        InvalidParameterError,
        match=re.escape(
            "ClvModel: params key 'max_bin_by_feature' must be > 1 in every value, got [-3, 4, 5]"
        ),
    ):
        ClvModel(num_threads=1, n_estimators=5, params={"max_bin_by_feature": [-3, 4, 5]}).fit(X, y)


@pytest.mark.parametrize("cls", MODELS)
def test_a_lightgbm_parameter_training_never_reads_is_refused_at_fit(cls: type) -> None:
    """``params={"blacklist": [1]}`` (LightGBM's ignore_column, read from data files only) trained on
    every column without a word; so did ``categorical_feature``, which LightGBM ignores in the params."""
    X, *_ = _data()
    model = cls(num_threads=1, n_estimators=5, params={"blacklist": [1]})
    with pytest.raises(
        InvalidParameterError,
        match=rf"^{cls.__name__}: params key 'blacklist' \(LightGBM's ignore_column\) is never read by "
        r"kamml's training: it is a setting of LightGBM's reading of data files; to leave features out, "
        r"drop their columns",
    ):
        model.fit(X, _target(model))
    with pytest.raises(InvalidParameterError, match=r"'params__categorical_feature' is never read"):
        model.set_params(params__categorical_feature=[0])
