from __future__ import annotations

import datetime
import decimal
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from kamml.errors import ModelError
from kamml.tracking import load_model, model_input
from kamml.tracking.pyfunc import OUTPUT_COLUMNS, json_ready, score_frame

#: MLflow's own API in these tests reads the session's store: kamml's calls leave MLflow as it was
pytestmark = pytest.mark.usefixtures("mlflow_at_session_store")


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    """The registered model's artifacts downloaded to a local folder (from the session's store)."""
    import mlflow

    from kamml.tracking import tracking_scope

    cfg, _, result = trained
    with tracking_scope(cfg.tracking):
        return mlflow.artifacts.download_artifacts(
            result.model_uri, dst_path=str(tmp_path_factory.mktemp("m"))
        )


@pytest.mark.slow
def test_no_pickle_among_the_artifacts_and_the_bundle_is_text(model_dir):
    from pathlib import Path

    files = [p for p in Path(model_dir).rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert not [p for p in files if p.suffix in {".pkl", ".pickle", ".cloudpickle"}]
    assert {"bundle.json", "clv.txt", "churn.txt", "influence.txt", "_model_code.py"} <= names
    assert "python_model.pkl" not in names
    mlmodel = (Path(model_dir) / "MLmodel").read_text()
    assert "signature:" in mlmodel
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel
    assert (Path(model_dir) / "input_example.json").is_file()
    reqs = (Path(model_dir) / "requirements.txt").read_text()
    assert "lightgbm==" in reqs
    # kamml is not on PyPI: the model carries its wheel, which pip installs from the model folder
    (wheel,) = [line for line in reqs.splitlines() if "kamml" in line]
    assert wheel.startswith("artifacts/kamml-")
    assert wheel.endswith(".whl")
    assert (Path(model_dir) / wheel).is_file()


@pytest.mark.slow
def test_loading_the_pyfunc_builds_the_treeshap_tables_before_any_request(model_dir):
    """The first request asking for drivers waited ~0.5 s (1.5 s more uncompiled) for the tables."""
    import mlflow

    from kamml.models import _treeshap

    bundle = mlflow.pyfunc.load_model(model_dir).unwrap_python_model().bundle
    for model in (bundle.clv, bundle.churn, bundle.influence):
        if model is not None:
            assert model.booster_ in _treeshap._CACHE


@pytest.mark.slow
def test_the_model_installs_kamml_from_its_own_folder(model_dir, tmp_path):
    """What MLflow's serving environments do: pip install -r requirements.txt in the model folder."""
    import json
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    reqs = (Path(model_dir) / "requirements.txt").read_text().splitlines()
    (wheel,) = [line for line in reqs if "kamml" in line]
    with zipfile.ZipFile(Path(model_dir) / wheel) as archive:
        names = archive.namelist()
    assert "kamml/tracking/pyfunc.py" in names
    assert "kamml/tracking/_model_code.py" in names
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), wheel],
        cwd=model_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (target / "kamml" / "tracking" / "pyfunc.py").is_file()
    # a Python whose only kamml is the model's own wheel loads the model and answers its example
    code = (
        "import json, sys, kamml, mlflow, pandas as pd\n"
        f"assert kamml.__file__.startswith({str(target)!r}), kamml.__file__\n"
        f"model = mlflow.pyfunc.load_model({str(model_dir)!r})\n"
        f"rows = pd.read_json({str(Path(model_dir) / 'input_example.json')!r}, orient='split')\n"
        "print(json.dumps(model.predict(rows)['clv'].round(6).tolist()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_model_folder_given_as_a_path_loads_like_its_text(model_dir):
    """`resolve_model(Path(folder))` and `load_model(Path(folder))` were TypeErrors (a tracking audit)."""
    from pathlib import Path

    from kamml.tracking import resolve_model

    folder = Path(model_dir)
    assert resolve_model(folder).resolved == load_model(str(folder)).resolved == str(folder.resolve())
    bundle = folder / "artifacts" / "bundle"
    assert load_model(bundle).resolved == str(bundle.resolve())


@pytest.mark.slow
def test_a_model_folder_under_the_home_folder_loads_from_its_tilde_path(model_dir, monkeypatch):
    """``kamml score --model=~/models/m`` (a shell leaves ``~`` after ``=``) was "no model at ~/models/m",
    where ``--data``, ``data.path`` and ``sqlite:///~/`` read the home folder."""
    from pathlib import Path

    folder = Path(model_dir).resolve()
    monkeypatch.setenv("HOME", str(folder.parent))
    for given in (f"~/{folder.name}", f"~/{folder.name}/artifacts/bundle"):
        loaded = load_model(given)
        assert loaded.resolved == str(Path(given).expanduser())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["alias", "latest", "version", "runs", "local", "bundle_folder"])
def test_every_uri_form_loads_with_pickle_disallowed(kind, trained, model_dir, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    cfg, _, result = trained
    name = cfg.tracking.model_name
    uri = {
        "alias": f"models:/{name}@champion",
        "latest": f"models:/{name}/latest",
        "version": f"models:/{name}/{result.promotion.version}",
        "runs": f"runs:/{result.run_id}/model",
        "local": model_dir,
        "bundle_folder": str(Path(model_dir) / "artifacts" / "bundle"),
    }[kind]
    loaded = load_model(uri)
    rows = model_input(result.features.head(50))
    out = loaded.predict(rows)
    expected = score_frame(result.bundle, rows)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected, check_dtype=False)
    assert list(out.columns) == ["account_id", *OUTPUT_COLUMNS]
    if kind in ("alias", "latest"):  # the version that scored is recorded, not the moving pointer
        assert loaded.resolved == f"models:/{name}/{result.promotion.version}"
    if kind in ("local", "bundle_folder"):  # a folder by its absolute path, which a CRM can open later
        monkeypatch.chdir(Path(uri).parent)
        relative = load_model(f".//{Path(uri).name}")
        assert relative.resolved == str(Path(uri).resolve())


@pytest.mark.slow
def test_signature_types_the_answer_and_the_param_and_metadata_the_inputs(trained):
    import mlflow

    _, _, result = trained
    info = mlflow.models.get_model_info(result.model_uri)
    assert info.signature.inputs is None  # no per-request enforcement by MLflow: the model checks its input
    assert "clv" in info.signature.outputs.input_names()
    required = {c.name: c.required for c in info.signature.outputs.inputs}
    # absent without an id in the request, null without a purchase history or an effort response
    optional = {"account_id", "p_alive", "expected_purchases", "effort_scale", "effort_uplift"}
    assert {name for name, needed in required.items() if not needed} == optional
    answer_types = {c.name: c.type for c in info.signature.outputs.inputs}
    assert answer_types["horizon_days"] == mlflow.types.DataType.long  # the CRM reads the horizon too
    assert [p.name for p in info.signature.params.params] == ["top_drivers"]
    types = info.metadata["feature_types"]
    assert set(types) == {"account_id", *result.bundle.features} - {
        c for c in result.bundle.features if c.startswith("btyd_")
    }
    assert types["spend_90d"] == "double"
    assert types["attr_industry"] == "string"
    assert info.metadata["optional_columns"] == ["account_id"]


@pytest.mark.slow
def test_a_category_missing_in_every_example_row_is_still_typed_string(trained, tmp_path, mlflow_state):
    """The input types come from the example's five rows: a category the first five accounts lack (an
    industry not yet filled in) was typed ``Any`` in the MLmodel's ``feature_types`` (a tracking audit)."""
    import mlflow

    from kamml.tracking import log_bundle

    _, _, result = trained
    features = result.features.copy()
    features["attr_industry"] = features["attr_industry"].astype(object)
    features.iloc[:5, features.columns.get_loc("attr_industry")] = None
    # a store and artifact folder of the test's own: the default experiment's artifacts go to ./mlruns
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'types.db'}")
    experiment = mlflow.create_experiment("types", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_bundle(result.bundle, features)
    assert info.metadata["feature_types"]["attr_industry"] == "string"


@pytest.mark.slow
def test_predictions_are_row_independent_and_accept_rows_without_ids(trained):
    _, _, result = trained
    rows = model_input(result.features.head(20))
    whole = score_frame(result.bundle, rows)
    one = score_frame(result.bundle, rows.iloc[[7]].drop(columns="account_id"))
    pd.testing.assert_frame_equal(one, whole.iloc[[7]].drop(columns="account_id"))


@pytest.mark.slow
def test_the_pyfunc_takes_account_id_from_the_index_build_features_gives(trained):
    """build_features puts account_id in the index: the pyfunc answers with it as a column."""
    import mlflow

    _, _, result = trained
    features = result.features.head(20)
    assert features.index.name == "account_id"
    assert "account_id" not in features.columns
    out = mlflow.pyfunc.load_model(result.model_uri).predict(features)
    assert list(out.columns) == ["account_id", *OUTPUT_COLUMNS]
    assert out["account_id"].tolist() == features.index.tolist()
    assert (out["horizon_days"] == result.bundle.horizon_days).all()
    expected = score_frame(result.bundle, model_input(features))
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected, check_dtype=False)
    renamed = features.rename_axis("id")
    assert "account_id" not in score_frame(result.bundle, renamed).columns  # another index is not an id
    # one level of a MultiIndex (the answer had no ids, and the CRM matches answers by id)
    levels = features.set_index(pd.Index(range(20), name="x"), append=True)
    out = mlflow.pyfunc.load_model(result.model_uri).predict(levels)
    assert out["account_id"].tolist() == features.index.tolist()


@pytest.mark.slow
def test_no_rows_indexed_by_account_id_answer_with_the_account_id_column_as_one_row_does(trained):
    """A filter that left no account of build_features' frame got an answer without account_id, so the
    notebook's merge on it failed only on the empty segment."""
    import mlflow

    _, _, result = trained
    model = mlflow.pyfunc.load_model(result.model_uri)
    features = result.features
    assert features.index.name == "account_id"
    one = model.predict(features.head(1))
    for rows in (features.head(0), features.head(0).set_index(pd.Index([], name="x"), append=True)):
        empty = model.predict(rows)
        assert list(empty.columns) == list(one.columns) == ["account_id", *OUTPUT_COLUMNS]
        assert len(empty) == 0
    assert "account_id" not in model.predict(features.head(0).rename_axis("id")).columns


@pytest.mark.slow
def test_no_rows_answer_with_the_types_and_index_of_an_answer_with_rows(trained):
    """An empty answer was all object columns on a fresh index: a batch's empty chunk concatenated with
    the others made ``horizon_days`` and the ids object (pandas warns clv will follow), unlike the
    signature's double and long."""
    import mlflow

    _, _, result = trained
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model_input(result.features.head(3))
    rows.index = rows.index + 100
    full = model.predict(rows)
    for ids in ("int32", "string"):
        chunk = rows.astype({"account_id": ids})
        empty = model.predict(chunk.iloc[:0])
        assert empty.dtypes.to_dict() == model.predict(chunk).dtypes.to_dict()
        assert empty.index.dtype == rows.index.dtype
    indexed = model.predict(result.features.head(0))  # ids from the index, as build_features gives
    assert indexed.dtypes.to_dict() == model.predict(result.features.head(1)).dtypes.to_dict()
    joined = pd.concat([model.predict(rows.iloc[:0]), full])
    assert joined.dtypes.to_dict() == full.dtypes.to_dict()


@pytest.mark.slow
def test_whole_float_ids_come_back_as_the_integers_the_signature_states(trained):
    """The signature types the answer's account_id long, and the input tables and `kamml allocate` read a
    float id 7.0 as account 7 (and -0.0 as 0); the server echoed floats: JSON's ids 1 and 3 beside a 2.0
    (pandas reads the three as floats) came back 1.0, 2.0, 3.0, and -0.0 as -0.0."""
    import mlflow
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

    _, _, result = trained
    info = mlflow.models.get_model_info(result.model_uri)
    declared = {c.name: c.type for c in info.signature.outputs.inputs}["account_id"]
    assert declared == mlflow.types.DataType.long
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model_input(result.features.head(4))
    records = json.loads(rows.to_json(orient="records"))
    for record, sent in zip(records, [1, 2.0, -0.0, 2**53 - 1], strict=True):
        record["account_id"] = sent
    served = dataframe_from_parsed_json(records, "records")  # as MLflow's server reads the request
    assert served["account_id"].dtype == np.float64
    out = model.predict(served)
    assert out["account_id"].dtype == np.int64
    assert out["account_id"].tolist() == [1, 2, 0, 2**53 - 1]
    assert json.loads(out.to_json(orient="records"))[2]["account_id"] == 0  # not -0.0
    # beside text ids (an object column) a whole float is the integer too; text comes back as sent
    mixed = rows.assign(account_id=pd.Series(["A7", 3.0, "-0.0", "NA"], index=rows.index, dtype=object))
    ids = model.predict(mixed)["account_id"].tolist()
    assert ids == ["A7", 3, "-0.0", "NA"]
    assert type(ids[1]) is int
    empty = model.predict(served.iloc[:0])  # an empty chunk as typed as a chunk with rows
    assert empty["account_id"].dtype == np.int64


@pytest.mark.slow
def test_the_answer_keeps_the_rows_index_so_a_column_assigned_back_lands_on_its_account(trained):
    """A fresh 0..n-1 index put every account's clv on the next account of a frame indexed by
    account_id, and on other rows or NaN of a filtered frame (a CRM audit)."""
    import mlflow

    _, _, result = trained
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    features = result.features.head(300).copy()  # above SMALL_FRAME_ROWS, and a third of it below
    expected = result.bundle.predict(features, refit_btyd=False)["clv"]
    features["clv"] = pyfunc.predict(features)["clv"]
    pd.testing.assert_series_equal(features["clv"], expected)
    answer = pyfunc.predict(features)
    assert answer.index.name is None  # account_id is a column: a named level too made groupby ambiguous
    assert answer.groupby("account_id")["clv"].sum().index.tolist() == features.index.tolist()
    crm = model_input(features)
    chosen = crm[crm["account_id"] % 3 == 0]  # a CRM's filtered frame, indexed by its row numbers
    answer = pyfunc.predict(chosen)
    assert answer.index.tolist() == chosen.index.tolist()
    for one in (score_frame(result.bundle, chosen.iloc[:2]), answer):  # small and large answers alike
        rows = chosen.loc[one.index, "account_id"]
        assert one["clv"].to_dict() == {i: expected[a] for i, a in rows.items()}


@pytest.mark.slow
def test_the_pyfunc_takes_a_dict_or_a_series_as_one_row(trained):
    """pandas refused a dict of single values and read a Series as one column (55 missing columns)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, _, result = trained
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model_input(result.features.head(3))
    expected = json_ready(score_frame(result.bundle, rows.iloc[[1]])).reset_index(drop=True)
    for one in (rows.iloc[1], rows.iloc[1].to_dict()):
        pd.testing.assert_frame_equal(model.predict(one), expected, check_dtype=False)
    as_columns = rows.to_dict(orient="list")  # a dict of lists is columns, as pandas reads it
    pd.testing.assert_frame_equal(model.predict(as_columns), json_ready(score_frame(result.bundle, rows)))
    with pytest.raises(MlflowException, match="feature rows must be a pandas DataFrame") as info:
        model.predict("frequency=2")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.slow
def test_requests_in_every_shape_score_alike_or_are_named_errors(trained):
    """Found over REST: {"inputs": [records]} (0-d arrays) failed on text, a column sent twice was read
    by which copy depended on the batch's size, no rows failed as 55 missing columns, and a missing
    monetary or count was scored (2.5 times the value)."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.utils.proto_json_utils import parse_tf_serving_input

    _, _, result = trained
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model_input(result.features.head(3))
    expected = model.predict(rows)
    records = json.loads(rows.to_json(orient="records"))
    served = parse_tf_serving_input({"inputs": records})  # as MLflow's server hands it over
    pd.testing.assert_frame_equal(model.predict(served), expected, check_dtype=False)
    doubled = pd.concat([rows, rows[["recency"]]], axis=1)
    for n in (3, 100):
        with pytest.raises(MlflowException, match=r"column\(s\) 'recency' more than once"):
            model.predict(pd.concat([doubled] * (n // 3 + 1)).head(n))
    for empty in ([], rows.head(0)):
        out = model.predict(empty)
        assert len(out) == 0
        assert set(OUTPUT_COLUMNS) <= set(out.columns)
    history = rows[rows["T"].notna()].head(1)
    with pytest.raises(MlflowException, match=r"features\.monetary: missing while T is given"):
        model.predict(history.assign(monetary=None))
    with pytest.raises(MlflowException, match=r"features\.spend_total: missing in row"):
        model.predict(history.assign(spend_total=None))
    gaps = pd.DataFrame([{k: v for k, v in records[0].items() if k != "orders_total"}, records[1]])
    with pytest.raises(MlflowException, match=r"features\.orders_total: missing in row\(s\) 0"):
        model.predict(gaps)


def test_not_a_model_is_a_named_error(tmp_path):
    with pytest.raises(ModelError, match="no model at"):
        load_model(str(tmp_path))
    with pytest.raises(ModelError, match="cannot load"):
        load_model("models:/no-such-model/1")


def test_a_lookup_without_a_config_names_the_fix_for_scoring_too():
    """`score(uri, data, cutoff)` without a config said to call load_model(uri, config.tracking), which
    it had not called (a notebook audit): the hint names passing the config to either."""
    with pytest.raises(ModelError) as info:
        load_model("models:/no-such-model/1")
    assert (
        "a model kamml trained is in its config's store: pass the config, as load_model(uri, "
        "config.tracking) or score(uri, data, cutoff, config)" in str(info.value)
    )


def test_a_failed_lookup_names_the_store_it_searched_and_where_it_came_from(tracked_config, monkeypatch):
    """'Registered Model ... not found' alone read as a missing model when the store was the wrong one."""
    from kamml.tracking import experiment_id, resolve_model

    cfg = tracked_config()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment_id(cfg.tracking)  # the store exists (scoring refuses a missing one before any lookup)
    with pytest.raises(ModelError) as info:
        resolve_model("models:/no-such-model@champion", cfg.tracking)
    message = str(info.value)
    assert "Registered Model with name=no-such-model not found" in message
    assert f"(searched the MLflow store {cfg.tracking.uri} (from the config's tracking.uri))" in message
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.uri)
    other = cfg.tracking.model_copy(update={"uri": "sqlite:///elsewhere.db"})
    with pytest.raises(ModelError) as info:
        resolve_model("models:/no-such-model@champion", other)
    assert (
        f"searched the MLflow store {cfg.tracking.uri} (from the MLFLOW_TRACKING_URI environment variable, "
        "which replaces the config's tracking.uri sqlite:///elsewhere.db)" in str(info.value)
    )


@pytest.mark.parametrize("uri", ["models:/kamml@champion", "models:/kamml/1", "runs:/0123abcd/model"])
def test_a_lookup_without_a_config_in_a_sqlite_file_that_does_not_exist_is_refused_not_created(
    uri, tmp_path, monkeypatch
):
    """A CRM's MLFLOW_TRACKING_URI with a typo in the path: MLflow made an empty store there and the lookup
    said the model was not found, as if the store were the right one; a config's missing store is refused."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from kamml.errors import TrackingStoreError

    missing = tmp_path / "typo" / "mlruns.db"
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)  # MLflow's own scope puts it back
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with pytest.raises(TrackingStoreError) as info:
        load_model(uri)
    message = str(info.value)
    assert f"no MLflow tracking store at {missing}" in message
    assert "from the MLFLOW_TRACKING_URI environment variable" in message
    assert not missing.exists()
    assert not missing.parent.exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # MLflow's default, named by no one: MLflow's, as before
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        load_model(uri)
    assert not isinstance(info.value, TrackingStoreError)


def test_a_failed_lookup_says_what_the_store_holds(tracked_config, tmp_path, monkeypatch):
    """A user who set tracking.model_name and then typed the README's models:/kamml@champion read only
    'Registered Model with name=kamml not found': the names, aliases and versions there are named."""
    from kamml.tracking import experiment_id, resolve_model

    cfg = tracked_config()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment_id(cfg.tracking)
    client = MlflowClient(cfg.tracking.uri, cfg.tracking.uri)
    client.create_registered_model("lookup-hint")
    for _ in range(2):
        version = client.create_model_version("lookup-hint", source=str(tmp_path))
    client.set_registered_model_alias("lookup-hint", "champion", version.version)
    with pytest.raises(ModelError) as info:
        resolve_model("models:/lookup-hnit@champion", cfg.tracking)
    assert "registered models there: " in str(info.value)
    assert "'lookup-hint'" in str(info.value)
    with pytest.raises(ModelError) as info:
        resolve_model("models:/lookup-hint@champoin", cfg.tracking)
    assert "'lookup-hint' has aliases champion (version 2) and versions 1, 2" in str(info.value)
    with pytest.raises(ModelError) as info:
        resolve_model("models:/lookup-hint/7", cfg.tracking)
    assert "'lookup-hint' has aliases champion (version 2) and versions 1, 2" in str(info.value)


@pytest.mark.slow
def test_an_alias_is_read_in_the_configs_store_not_in_mlflows_current_one(trained, tmp_path, monkeypatch):
    """The alias was read after the config's store was let go: the notebook's own store's champion
    was recorded as the version that scored, and a stray ./mlflow.db appeared (a CRM audit)."""
    import mlflow

    cfg, _, result = trained
    name = cfg.tracking.model_name
    other = f"sqlite:///{tmp_path / 'notebook.db'}"
    client = MlflowClient(other, other)
    client.create_registered_model(name)
    for _ in range(int(result.promotion.version) + 1):
        version = client.create_model_version(name, source=str(tmp_path))
    client.set_registered_model_alias(name, "champion", version.version)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # put back as it was after the test
    mlflow.set_tracking_uri(other)  # MLflow's current store, as a notebook's; it sets the variable too,
    mlflow.set_registry_uri(other)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # which would replace the config's store
    loaded = load_model(f"models:/{name}@champion", cfg.tracking)
    assert loaded.resolved == f"models:/{name}/{result.promotion.version}"
    assert mlflow.get_tracking_uri() == other  # the caller's store again after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebook.db"]


@pytest.mark.slow
def test_registered_version_points_at_the_logged_model(trained):
    cfg, _, result = trained
    version = MlflowClient().get_model_version(cfg.tracking.model_name, result.promotion.version)
    assert version.run_id == result.run_id


@pytest.mark.slow
def test_the_pyfunc_answers_missing_numbers_as_none(trained):
    """MLflow's server writes a float NaN as a bare NaN (not JSON): the pyfunc gives None instead."""
    import mlflow

    _, _, result = trained
    rows = model_input(result.features.head(3))
    rows.loc[rows.index[1], ["frequency", "recency", "monetary"]] = 0.0
    rows.loc[rows.index[1], "T"] = np.nan  # no purchase history: no P(alive)
    out = mlflow.pyfunc.load_model(result.model_uri).predict(rows)
    assert out["p_alive"].iloc[1] is None
    assert out["p_alive"].dtype == object
    assert out["clv"].dtype == float  # columns without a missing value keep their dtype
    expected = score_frame(result.bundle, rows)
    assert np.isnan(expected["p_alive"].iloc[1])
    np.testing.assert_allclose(out["p_alive"].to_numpy(float), expected["p_alive"].to_numpy(float))


def _not_json(name: str) -> None:
    raise AssertionError(f"the file holds {name}, which is not JSON (a CRM's parser rejects it)")


@pytest.mark.slow
def test_the_input_examples_are_strict_json_and_score_like_the_features_they_came_from(trained, model_dir):
    """MLflow wrote each float NaN of the examples as a bare NaN; they hold null, and still score the same."""
    import json
    from pathlib import Path

    import mlflow

    _, _, result = trained
    rows = model_input(result.features.head(5))
    assert rows.select_dtypes("number").isna().to_numpy().any()  # missing numbers to write
    texts = {
        name: (Path(model_dir) / name).read_text()
        for name in ("input_example.json", "serving_input_example.json")
    }
    parsed = {name: json.loads(text, parse_constant=_not_json) for name, text in texts.items()}
    request = parsed["serving_input_example.json"]["dataframe_split"]
    assert request["columns"] == rows.columns.tolist()
    assert any(value is None for row in request["data"] for value in row)
    # as MLflow reads the example back, and as its log-time check and the server parse the request
    example = mlflow.models.Model.load(model_dir).load_input_example(model_dir)
    served = pd.DataFrame(request["data"], columns=request["columns"])
    model = mlflow.pyfunc.load_model(model_dir)
    expected = json_ready(score_frame(result.bundle, rows))
    for frame in (example, served):
        pd.testing.assert_frame_equal(model.predict(frame), expected, check_dtype=False)


@pytest.mark.slow
def test_the_docs_layout_of_the_model_names_every_file_it_holds(model_dir):
    """docs/tracking.md's layout of the logged model left out conda.yaml and the kamml wheel it carries."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tracking.md").read_text(encoding="utf-8")
    layout = doc.split("and the model loads with")[1].split("```text")[1].split("```")[0]
    files = {p.name for p in Path(model_dir).rglob("*") if p.is_file()}
    wheel = re.sub(r"kamml-[^-]+-py3", "kamml-<version>-py3", " ".join(sorted(files)))
    named = re.sub(r"kamml-[^-]+-py3", "kamml-<version>-py3", layout)
    assert [name for name in wheel.split() if name not in named] == []


def test_old_cached_wheels_are_pruned_and_recent_ones_kept(tmp_path):
    """A wheel folder per state of kamml's code: those untouched for a week go, the rest stay."""
    import os
    import time

    from kamml.tracking.model import prune_wheels

    old, recent, keep = (tmp_path / name for name in ("old", "recent", "keep"))
    for folder in (old, recent, keep):
        folder.mkdir()
        (folder / "kamml-0-py3-none-any.whl").write_bytes(b"x")
    week_ago = time.time() - 8 * 86_400
    for folder in (old, keep):
        os.utime(folder, (week_ago, week_ago))
    assert prune_wheels(tmp_path, keep=keep) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "recent"]
    assert prune_wheels(tmp_path / "missing", keep=keep) == 0


def test_a_cached_wheel_is_touched_and_rewritten_when_pruned_meanwhile(tmp_path, monkeypatch):
    """A cache hit marks its folder as in use; a folder pruned between check and use is written again."""
    import os
    import shutil
    import tempfile

    from kamml.tracking.model import kamml_wheel

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    wheel = kamml_wheel()
    assert wheel is not None
    os.utime(wheel.parent, (1.0, 1.0))
    assert kamml_wheel() == wheel
    assert wheel.parent.stat().st_mtime > 1.0
    real_is_file = type(wheel).is_file
    calls = []

    def pruned_after_the_check(self):
        found = real_is_file(self)
        if self == wheel and not calls:
            calls.append(1)
            shutil.rmtree(wheel.parent)  # another job's prune, between the check and the use
        return found

    monkeypatch.setattr(type(wheel), "is_file", pruned_after_the_check)
    assert kamml_wheel() == wheel
    assert real_is_file(wheel)


def test_a_source_checkouts_egg_info_still_gives_the_wheel(tmp_path, monkeypatch):
    """With src/ on PYTHONPATH the egg-info (PKG-INFO, no METADATA) is found first: the model carried no
    wheel and named kamml==<version>, which no index has."""
    import tempfile
    import zipfile
    from importlib import metadata

    from kamml.tracking import model

    installed = metadata.distribution("kamml")
    egg = tmp_path / "src" / "kamml.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text(installed.read_text("METADATA"), encoding="utf-8")
    monkeypatch.setattr(model.metadata, "distribution", lambda name: metadata.PathDistribution(egg))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    wheel = model.kamml_wheel()
    assert wheel is not None
    with zipfile.ZipFile(wheel) as zipped:
        assert f"kamml-{installed.version}.dist-info/METADATA" in zipped.namelist()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "params", "named"),
    [
        ("none", {"top_drivers": None}, "params top_drivers must be a whole number of drivers, 0 or more"),
        ("none", {"top_drivers": -1}, "params top_drivers must be a whole number of drivers, 0 or more"),
        ("inf", None, "monetary"),
        ("no_T", None, "features.frequency: must be 0 or missing when T is missing"),
        ("list", None, "column 'attr_industry' must hold one category \\(text\\) per row"),
        ("null_id", None, r"features\.account_id: missing in row\(s\) 1; give every row its account's id"),
        (
            "list_id",
            None,
            r"features\.account_id: must be one id \(a number or text\) per row; row\(s\) 1, 2",
        ),
        ("blank_id", None, r"features\.account_id: missing in row\(s\) 1; give every row its account's id"),
        (
            "spaces_id",
            None,
            r"features\.account_id: missing in row\(s\) 1, 2; give every row its account's id",
        ),
        (
            "marker_id",
            None,
            r"features\.account_id: a null marker where an id goes \(the id is missing, as the input tables "
            r"read it\); row\(s\) 0, 1, 2 \(3 rows; e\.g\. 'NULL', ' nan ', 'n/a'\)",
        ),
        ("part_id", None, r"features\.account_id: not a whole number \(an id is a whole number or a text"),
        (
            "part_object_id",
            None,
            r"features\.account_id: not a whole number .* row\(s\) 1 \(1 row; e\.g\. 3\.5\)",
        ),
        (
            "big_float_id",
            None,
            r"features\.account_id: a number beyond 2\*\*53 read as a float .* row\(s\) 0, 2",
        ),
    ],
)
def test_bad_params_and_values_are_kammls_named_error_for_the_server(trained, change, params, named):
    """MLflow's server answers 400 with kamml's message only for an INVALID_PARAMETER_VALUE error."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, _, result = trained
    rows = model_input(result.features.head(3))
    if change == "inf":
        rows.loc[rows.index[0], "monetary"] = np.inf
    if change == "no_T":  # repeat purchases without a first one: contradictory, not a new account
        rows.loc[rows.index[0], ["frequency", "recency", "T", "monetary"]] = [2.0, 30.0, np.nan, 50.0]
    if change == "list":  # JSON's list where a CRM sent one value
        rows["attr_industry"] = rows["attr_industry"].astype(object)
        rows.at[rows.index[1], "attr_industry"] = ["finance", "retail"]
    if change == "null_id":  # pandas turned the other ids into floats: large ones lost digits
        rows["account_id"] = [2**60 + 1, None, 2**60 + 3]
    if change == "list_id":  # JSON's list or object where a CRM sent an id: was scored and echoed back
        rows["account_id"] = pd.Series([7, [8], {"id": 9}], index=rows.index, dtype=object)
    # the input tables and kamml allocate refuse these ids (or read them as none); the server echoed them
    if change == "blank_id":  # a CRM export's missing id: the tables' "null or empty id"
        rows["account_id"] = pd.Series(["A7", "", "A9"], index=rows.index, dtype=object)
    if change == "spaces_id":  # blank text: the tables trim ids, and " " is their "null or empty id"
        rows["account_id"] = pd.Series(["A7", " ", "\t\n"], index=rows.index, dtype=object)
    if change == "marker_id":  # a spreadsheet's or database's word for no id: the tables refuse it
        rows["account_id"] = pd.Series(["NULL", " nan ", "n/a"], index=rows.index, dtype=object)
    if change == "part_id":  # JSON's 3.5: an id the tables and the scores refuse as no whole number
        rows["account_id"] = [7, 3.5, 9]
    if change == "part_object_id":  # beside text ids (an object column), as the server reads mixed JSON
        rows["account_id"] = pd.Series(["A7", 3.5, "A9"], index=rows.index, dtype=object)
    if change == "big_float_id":  # 2**60 + 1 beside 3.0: pandas read both as floats, and 2**60 came back
        rows["account_id"] = [2**60 + 1, 3.0, 2**60 + 3]
    model = mlflow.pyfunc.load_model(result.model_uri)
    with pytest.raises(MlflowException, match=named) as info:
        model.predict(rows, params=params)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.slow
@pytest.mark.parametrize(
    "rows", [3, 100]
)  # a request's few rows (`column_arrays` makes them objects), a batch's
@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[ns]"])
def test_the_pyfunc_refuses_a_date_column_without_a_date_in_a_category_feature_as_batch_does(
    trained, rows, dtype
):
    """Every value NaT: the pyfunc scored them as missing values, while batch scoring refuses the column
    by its type (`category_type_problem`), as fit and Spark's schema check do."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from kamml.jobs.score import category_type_problem

    _, _, result = trained
    name = sorted(result.bundle.clv.categories_)[0]
    frame = model_input(result.features.head(rows))
    frame[name] = pd.Series(pd.NaT, index=frame.index, dtype=dtype)
    problem = category_type_problem(name, frame[name])
    assert problem is not None  # batch's refusal, whose rule the pyfunc says too
    said = f"column {name!r} {problem.rule}"
    model = mlflow.pyfunc.load_model(result.model_uri)
    with pytest.raises(MlflowException) as info:
        model.predict(frame)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert said in str(info.value)
    with pytest.raises(ModelError) as direct:  # in Python too: the bundle's own refusal
        score_frame(result.bundle, frame)
    assert said in str(direct.value)


def test_the_wheel_cache_is_the_users_private_folder_or_none(tmp_path, monkeypatch, caplog):
    """A shared /tmp/kamml-wheels let another user plant the wheel the next model logged and served."""
    import os
    import tempfile

    from kamml.tracking.model import kamml_wheel, wheel_cache

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = wheel_cache()
    assert root == tmp_path / f"kamml-wheels-{os.getuid()}"
    assert root.stat().st_mode & 0o777 == 0o700
    assert kamml_wheel().parent.parent == root
    root.chmod(0o777)  # as anyone could have made it
    other = wheel_cache()
    assert other != root
    assert other.parent == tmp_path
    assert other.stat().st_mode & 0o077 == 0
    assert "is not this user's private folder" in caplog.text
    assert kamml_wheel().parent.parent != root  # the planted cache is not read


def test_the_requirements_pin_every_library_the_served_model_computes_with():
    """numba compiles the drivers' TreeSHAP kernels at load time and in every answer, and was not pinned:
    a serving environment built later resolved whatever numba was newest."""
    from importlib import metadata

    from kamml.tracking import pip_requirements

    pins = pip_requirements()
    for name in ("lightgbm", "numba", "numpy", "pandas", "scipy"):
        assert f"{name}=={metadata.version(name)}" in pins, name


def test_the_requirements_pin_every_runtime_dependency_of_kamml():
    """Loading the model imports kamml, which imports Ibis, pyarrow, sqlglot, PyYAML and rich; none was
    pinned, so a serving environment built from the model's requirements (kamml's wheel naming only
    ranges) took whatever release was newest then, not what the model was trained and tested with."""
    from importlib import metadata

    from packaging.requirements import Requirement

    from kamml.tracking import pip_requirements

    pins = pip_requirements("artifacts/kamml-0.1.0-py3-none-any.whl")
    runtime = [Requirement(line) for line in metadata.requires("kamml") or []]
    names = {r.name for r in runtime if r.marker is None}
    assert {"pyarrow", "ibis-framework", "sqlglot", "pyyaml"} <= names
    for name in names:
        assert f"{name}=={metadata.version(name)}" in pins, name
    assert pins[0] == "artifacts/kamml-0.1.0-py3-none-any.whl"
    assert len(pins) == len(set(pins))


def test_one_row_as_mlflows_inputs_dict_of_zero_d_arrays_reads_as_plain_values():
    """MLflow's server hands ``{"inputs": {"col": value, ...}}`` (one row) over as 0-d arrays: a category
    arrived as an array, and the request was refused ("must hold one category (text) per row")."""
    from kamml.tracking.pyfunc import as_frame

    frame = as_frame(
        {"account_id": np.asarray(7), "spend_90d": np.asarray(1.5), "attr_industry": np.asarray("retail")}
    )
    assert len(frame) == 1
    assert frame["attr_industry"].iloc[0] == "retail"
    assert isinstance(frame["attr_industry"].iloc[0], str)
    assert frame["spend_90d"].dtype == float
    assert frame["account_id"].dtype == np.int64


def test_a_rest_request_body_given_to_predict_in_python_is_a_named_error():
    """``predict(json.load(serving_input_example.json))`` was read as one row with a column
    "dataframe_split", refused as 55 missing columns."""
    from kamml.tracking.pyfunc import as_frame

    rows = {"account_id": [1], "recency": [2.0]}
    bodies = (
        {"dataframe_split": {"columns": list(rows), "data": [[1, 2.0]]}},
        {"dataframe_records": [{"account_id": 1, "recency": 2.0}], "params": {"top_drivers": 1}},
        {"inputs": rows},
        {"instances": [{"account_id": 1}]},
    )
    for body in bodies:
        key = next(iter(body))
        with pytest.raises(ModelError, match=f"a REST request's body \\({key}\\)"):
            as_frame(body)
    pd.testing.assert_frame_equal(
        as_frame({"inputs": 1.0, "recency": 2.0}), pd.DataFrame([{"inputs": 1.0, "recency": 2.0}])
    )


def test_rows_without_column_names_are_a_named_error():
    """``predict(features.to_numpy())``, or a REST ``{"inputs": [[...]]}`` (which MLflow hands over as an
    array), was refused as 55 missing columns "frequency, recency, ..." with no word that the rows had
    no names at all (a CRM audit). No rows stay an empty answer."""
    from kamml.tracking.pyfunc import as_frame

    for rows in (np.ones((2, 56)), [[1.0, 2.0], [3.0, 4.0]], np.ones(56), [1.0, 2.0]):
        with pytest.raises(ModelError, match=r"feature rows without column names \(.*\).*pass a DataFrame"):
            as_frame(rows)
    assert as_frame(np.empty((0, 56))).empty
    assert as_frame([]).empty
    records = as_frame([{"account_id": 1, "recency": 2.0}])
    assert list(records.columns) == ["account_id", "recency"]


def test_the_rest_section_says_why_the_answer_lacks_the_scores_files_columns():
    """The REST answer lacks the scores file's cutoff, model_uri and owner, and docs/tracking.md's REST
    section did not say so, nor where a CRM gets them (an audit): the pyfunc knows neither the date its
    rows were built at nor the registry version it was served as."""
    import re
    from pathlib import Path

    from kamml.jobs.score import SCORE_COLUMNS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tracking.md").read_text(encoding="utf-8")
    rest = doc.split("## REST for the CRM")[1].split("\n## ")[0]
    lacking = [c for c in SCORE_COLUMNS if c not in ("account_id", *OUTPUT_COLUMNS)]
    assert lacking == ["cutoff", "model_uri", "owner"]
    said = re.search(r"The answer has no `cutoff`, `model_uri` or `owner`[^\n]*(\n[^\n]+)*", rest)
    assert said is not None
    for words in ("build_features", "get_model_version_by_alias", "kamml allocate"):
        assert words in said.group(0)


class _EchoBundle:
    """A stand-in bundle whose answer is one clv column: the ids' checks come before any model."""

    features: tuple[str, ...] = ()  # no feature column to look for among the rows

    def score_columns(self, frame: pd.DataFrame, **_: object) -> dict[str, np.ndarray]:
        return {"clv": np.zeros(len(frame))}


@pytest.mark.parametrize(
    ("ids", "named"),
    [
        (["A7", " ", "A9"], r"features\.account_id: missing in row\(s\) 1;"),
        (["A7", "\r\n"], r"features\.account_id: missing in row\(s\) 1;"),
        ([7, "  ", None], r"features\.account_id: missing in row\(s\) 1, 2;"),
        (["A7", "NULL"], r"features\.account_id: a null marker where an id goes .*row\(s\) 1 .*'NULL'"),
        (["nil", "A8"], r"features\.account_id: a null marker .*row\(s\) 0 \(1 row; e\.g\. 'nil'\)"),
        ([7, " #n/a", "None"], r"features\.account_id: a null marker .*row\(s\) 1, 2 \(2 rows"),
        (["NaN", "A8"], r"features\.account_id: a null marker .*row\(s\) 0"),
        (["A7", " NULL\r"], r"features\.account_id: a null marker .*row\(s\) 1"),
    ],
)
def test_blank_and_null_marker_ids_are_refused_as_the_input_tables_refuse_them(ids, named):
    """`kamml score` refuses " " ("null or empty id") and "NULL", "nan" ("a null marker where an id
    goes") in its tables; the pyfunc scored them and echoed them back as accounts."""
    rows = pd.DataFrame({"account_id": pd.Series(ids, dtype=object)})
    with pytest.raises(ModelError, match=named):
        score_frame(_EchoBundle(), rows)


def test_ids_the_input_tables_accept_as_codes_come_back_as_sent():
    """ "NA" (North America), "-nan", "-0.0" (the tables' code "-0") and "N/A2" are ids to the tables."""
    codes = ["NA", "-nan", "-0.0", "N/A2", "NULLS", " 7", "NULL\r"]  # "NULL\r": the tables trim no "\r" alone
    out = score_frame(_EchoBundle(), pd.DataFrame({"account_id": codes}))
    assert out["account_id"].tolist() == codes


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series([True, False]),
        pd.Series([7, True], dtype=object),
        pd.Series(["A7", np.bool_(False)], dtype=object),
    ],
)
def test_yes_no_ids_are_refused_as_the_input_tables_refuse_them(ids):
    """JSON's true as an id was scored and echoed back; the tables refuse a boolean account_id column."""
    with pytest.raises(
        ModelError, match=r"features\.account_id: a yes/no value where an id goes.*row\(s\) (0, )?1 "
    ):
        score_frame(_EchoBundle(), pd.DataFrame({"account_id": ids}))


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series(pd.date_range("2024-01-01", periods=2)),
        pd.Series(pd.date_range("2024-01-01", periods=2, tz="UTC")),
        pd.Series(pd.to_timedelta([1, 2], unit="D")),
        pd.Series(pd.period_range("2024-01", periods=2, freq="M")),
        pd.Series([datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)]),
        pd.Series(pd.date_range("2024-01-01", periods=2)).astype("timestamp[us][pyarrow]"),
        pd.Series([7, pd.Timestamp("2024-01-02")], dtype=object),
        pd.Series(["A7", np.timedelta64(3, "D")], dtype=object),
        pd.Series([b"A7", b"A8"]),
        pd.Series([1 + 0j, 2 + 0j]),
    ],
)
def test_ids_of_dates_durations_bytes_or_complex_numbers_are_refused_as_the_tables_refuse_them(ids):
    """The tables refuse an account_id of timestamps ("wrong type: expected whole numbers or text"); the
    pyfunc scored such rows and echoed the dates, durations, bytes or complex numbers back as accounts."""
    with pytest.raises(
        ModelError, match=r"features\.account_id: not an id .*whole number or a text.*row\(s\) (0, )?1 "
    ):
        score_frame(_EchoBundle(), pd.DataFrame({"account_id": ids}))


def test_decimal_ids_are_read_as_the_tables_read_them():
    """The tables read whole Decimal ids as whole numbers and refuse one with a fraction ("not a whole
    number"); the pyfunc scored Decimal("1.5") and echoed Decimal ids back, not the signature's long."""
    whole = pd.DataFrame({"account_id": [decimal.Decimal(7), decimal.Decimal("8.0")]})
    out = score_frame(_EchoBundle(), whole)
    assert out["account_id"].tolist() == [7, 8]
    assert all(type(i) is int for i in out["account_id"])
    for ids in ([decimal.Decimal("1.5"), decimal.Decimal(2)], [7, decimal.Decimal("1.5")]):
        with pytest.raises(ModelError, match=r"features\.account_id: not a whole number.*row\(s\) [01] "):
            score_frame(_EchoBundle(), pd.DataFrame({"account_id": pd.Series(ids, dtype=object)}))
    exact = score_frame(_EchoBundle(), pd.DataFrame({"account_id": [decimal.Decimal(2**60 + 1)]}))
    assert exact["account_id"].tolist() == [2**60 + 1]  # a Decimal holds every digit: no float between


@pytest.mark.slow
def test_the_loaded_pyfunc_refuses_a_date_as_an_id_in_mlflows_own_error(trained):
    """As a CRM calls it: mlflow.pyfunc.load_model, then predict on rows whose account_id holds dates."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, _, result = trained
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model_input(result.features.head(2))
    with pytest.raises(MlflowException, match=r"features\.account_id: not an id"):
        model.predict(rows.assign(account_id=pd.date_range("2024-01-01", periods=2)))


def test_the_store_note_is_only_for_a_model_not_found(tracked_config, tmp_path, monkeypatch):
    """An alias present whose artifacts are missing got "'kamml' has aliases champion (version 1)", which
    reads as the alias being wrong; and the store, entered again for the note (for runs:/ URIs too, which
    have none), replaced the lookup's own error when entering it failed."""
    import kamml.tracking.model as model_module
    from kamml.errors import TrackingStoreError
    from kamml.tracking import experiment_id, resolve_model

    cfg = tracked_config()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment_id(cfg.tracking)
    client = MlflowClient(cfg.tracking.uri, cfg.tracking.uri)
    client.create_registered_model("no-files")
    version = client.create_model_version("no-files", source=str(tmp_path / "gone"))
    client.set_registered_model_alias("no-files", "champion", version.version)
    with pytest.raises(ModelError) as info:
        resolve_model("models:/no-files@champion", cfg.tracking)
    assert "has aliases" not in str(info.value)
    # MLflow's reserved alias @latest (any case), never in the model's aliases, and a stage a version is in
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3, still read by models:/name/Stage
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("no-files", version.version, "Production")
    for present in ("/1", "/latest", "@latest", "@LATEST", "/Production", "/production"):
        with pytest.raises(ModelError) as info:
            resolve_model(f"models:/no-files{present}", cfg.tracking)
        assert "has aliases" not in str(info.value), present
    with pytest.raises(ModelError) as info:  # a stage no version is in: the note says what there is
        resolve_model("models:/no-files/Staging", cfg.tracking)
    assert "'no-files' has aliases champion (version 1) and versions 1" in str(info.value)

    entered = []
    real_scope = model_module.tracking_scope

    def fails_again(*args, **kwargs):  # the store could be entered once, not twice (a server gone)
        entered.append(1)
        if len(entered) > 1:
            raise TrackingStoreError("entered again")
        return real_scope(*args, **kwargs)

    monkeypatch.setattr(model_module, "tracking_scope", fails_again)
    with pytest.raises(ModelError, match="cannot load the model models:/no-such@champion") as info:
        resolve_model("models:/no-such@champion", cfg.tracking)
    assert not isinstance(info.value, TrackingStoreError)
    entered.clear()
    with pytest.raises(ModelError, match="cannot load the model runs:/0123456789abcdef/model"):
        resolve_model("runs:/0123456789abcdef/model", cfg.tracking)
    assert entered == [1]  # no note for a run: the store is not entered again


def test_a_registry_uri_resolves_as_mlflow_parses_it(tmp_path, mlflow_state):
    """MLflow takes the last '@' of models:/<name>@<alias> as the alias's; and it reads models:/a@b/1 as
    the alias b of 'a' with the path '1' inside (`split_models_uri`). A name holding '@' (MLflow allows
    it) was resolved to models:/team@kamml/1, which MLflow then loaded as another model's alias: such a
    name keeps the pointer, the URI that loads."""
    import mlflow
    from mlflow import MlflowClient

    from kamml.tracking import locate_model
    from kamml.tracking.model import _resolve_alias

    store = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)  # the session store's registry otherwise (`mlflow_at_session_store`)
    client = MlflowClient()
    client.create_registered_model("team@kamml")
    client.create_model_version("team@kamml", source=str(tmp_path / "model"))
    client.create_model_version("team@kamml", source=str(tmp_path / "model"))
    client.set_registered_model_alias("team@kamml", "champion", "1")
    with pytest.raises(ModelError, match="Registered Model with name=team not found"):
        locate_model("models:/team@kamml/1")  # MLflow's reading: the alias 'kamml' of 'team'
    assert _resolve_alias("models:/team@kamml@champion") == "models:/team@kamml@champion"
    assert _resolve_alias("models:/team@kamml/latest") == "models:/team@kamml/latest"
    client.create_registered_model("team")
    client.create_model_version("team", source=str(tmp_path / "model"))
    client.set_registered_model_alias("team", "kamml", "1")  # models:/team@kamml/<path> is this alias
    assert _resolve_alias("models:/team@kamml/latest") == "models:/team/1/latest"
    assert _resolve_alias("models:/team@kamml@champion") == "models:/team@kamml@champion"
    assert _resolve_alias("models:/team/1") == "models:/team/1"  # a version stays as given


@pytest.mark.slow
def test_raw_table_rows_are_refused_as_not_feature_rows(trained):
    """A CRM's transactions rows were refused as 55 missing columns and advice that the accounts table had
    dropped its columns: the model takes feature rows, which kamml.build_features makes."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, data, result = trained
    transactions = data.transactions.to_pandas().head(5)
    rule = r"none of the model's 55 feature columns .*account_id, ts, amount.*kamml\.build_features"
    with pytest.raises(ModelError, match=rule):
        score_frame(result.bundle, transactions)
    with pytest.raises(MlflowException, match=rule) as info:
        mlflow.pyfunc.load_model(result.model_uri).predict(transactions)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "dropped or renamed" not in str(info.value)
    # rows with some feature columns keep naming the missing ones
    rows = model_input(result.features.head(2)).drop(columns=["recency"])
    with pytest.raises(ModelError, match="lack 1 column the model was trained on: recency"):
        score_frame(result.bundle, rows)


@pytest.mark.slow
def test_columns_in_another_order_and_columns_the_model_does_not_read_score_alike(trained):
    """docs/tracking.md: feature rows in any order, other columns (a CRM's owner) not read."""
    _, _, result = trained
    rows = model_input(result.features.head(5))
    model = load_model(result.model_uri)
    whole = model.predict(rows)
    shuffled = rows[rows.columns[::-1]].assign(owner="ann", cutoff="2025-01-01")
    pd.testing.assert_frame_equal(model.predict(shuffled), whole)


def _store_with_files_gone(tmp_path) -> MlflowClient:
    """MLflow's current store in `tmp_path`: model 'located', version 1 in Production, its files gone."""
    import mlflow

    store = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)  # the session store's registry otherwise (`mlflow_at_session_store`)
    client = MlflowClient()
    client.create_registered_model("located")
    client.create_model_version("located", source=str(tmp_path / "gone"))
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3, still read by models:/name/Stage
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("located", "1", "Production")
    return client


#: URIs naming no model in `_store_with_files_gone`'s store, and the words locate_model refuses each with.
NOT_THERE = [
    ("models:/m-0123456789abcdef", "Logged model with ID 'm-0123456789abcdef' not found"),
    ("models:/located/Staging", "No versions of model with name 'located' and stage 'Staging' found"),
    ("models:/located/archived", "No versions of model with name 'located' and stage 'archived' found"),
    ("models:/located/prod", "Invalid Model Version stage: prod"),
    ("models:/nobody/latest", "Registered Model with name=nobody not found"),
    ("models:located/1", "Not a proper models:/ URI"),
    ("runs://0123456789abcdef/model", "Run with id=model not found"),  # MLflow reads the run id 'model'
    ("models:/located/Production", "holds no MLmodel"),  # in the store, its files gone
    ("models:/located/latest", "holds no MLmodel"),
    ("models:/located/1", "holds no MLmodel"),
    ("file://{tmp}/nothing", "holds no MLmodel"),
    ("file:{tmp}/nothing", "holds no MLmodel"),
]


def test_locate_refuses_what_loading_refuses_in_every_uri_form(tmp_path, mlflow_state):
    """A logged model id, a stage, /latest and a file:// URI were found only when loaded: `kamml score`
    told a mistyped one after the whole data load. Each is looked up as MLflow's loading looks it up."""
    import re

    from kamml.tracking import locate_model

    _store_with_files_gone(tmp_path)
    for given, words in NOT_THERE:
        uri = given.format(tmp=tmp_path)
        with pytest.raises(ModelError, match=re.escape(words)) as located:
            locate_model(uri)
        assert uri in str(located.value)
        with pytest.raises(ModelError):
            load_model(uri)


def test_a_logged_model_id_that_is_a_registered_name_says_how_to_name_a_version(tmp_path, mlflow_state):
    """``models:/located`` reads as a logged model's id (MLflow 3): 'Logged model ... not found' alone did
    not say that the registered model of that name is named with a version, stage or alias."""
    from kamml.tracking import locate_model

    _store_with_files_gone(tmp_path)
    with pytest.raises(ModelError) as located:
        locate_model("models:/located")
    assert "'located' is a registered model: name one of its versions, as models:/located/latest" in str(
        located.value
    )


@pytest.mark.parametrize(
    "uri", ["s3://bucket/model", "gs://bucket/model", "hdfs:///models/m", "https://example.com/m", "dbfs:/m"]
)
def test_a_remote_model_is_left_to_load_time(uri, tmp_path, mlflow_state):
    """locate_model reaches no remote store: a URI it cannot check without the network passes, and is
    found (or not) when loaded."""
    from kamml.tracking import locate_model

    _store_with_files_gone(tmp_path)
    assert locate_model(uri) is None


@pytest.mark.parametrize("registered", [False, True], ids=["hdfs-uri", "version-on-hdfs"])
def test_a_model_on_hdfs_without_a_hadoop_client_is_a_model_error_naming_the_uri(
    registered, tmp_path, mlflow_state
):
    """A model on HDFS (its URI, or a registered version's files) failed with pyarrow's bare OSError
    ("Unable to load libjvm") where no Hadoop client is installed: a ModelError naming the URI and what
    MLflow needs to read HDFS, pyarrow's reason kept in the message and as the cause."""
    import mlflow

    files = "hdfs://namenode:8020/models/m"
    uri = files
    if registered:
        store = f"sqlite:///{tmp_path / 'm.db'}"
        mlflow.set_tracking_uri(store)
        mlflow.set_registry_uri(store)
        MlflowClient().create_registered_model("on-hdfs")
        MlflowClient().create_model_version("on-hdfs", source=files)
        uri = "models:/on-hdfs/1"
    with pytest.raises(ModelError) as caught:
        load_model(uri)
    said = str(caught.value)
    assert said.startswith(f"cannot load the model {uri}: MLflow could not read HDFS"), said
    assert "needs a Hadoop client on this machine (Java with JAVA_HOME set" in said, said
    assert (f"at {files} (where its files are)" in said) is registered, said
    assert isinstance(caught.value.__cause__, OSError)
    assert str(caught.value.__cause__).splitlines()[0] in said  # pyarrow's reason, not hidden


def test_a_single_slash_uri_is_loaded_as_a_uri_not_refused_as_a_folder(tmp_path, mlflow_state):
    """``dbfs:/...`` and ``mlflow-artifacts:/...`` (the URIs MLflow gives on Databricks and behind a
    tracking server) were read as folders and refused as "no model at ...: expected an MLflow model
    folder"; MLflow loads them."""
    _store_with_files_gone(tmp_path)
    for uri, words in (
        ("mlflow-artifacts:/1/models/m-1/artifacts", "the tracking URI must be a valid http or https URI"),
    ):
        with pytest.raises(ModelError, match=words):
            load_model(uri)


@pytest.mark.slow
def test_locate_passes_what_loads_in_every_uri_form(trained, model_dir):
    """A logged model id, a stage, /latest and a file:// URI are checked in the store without loading, and
    what locate_model passes loads as a kamml model."""
    import mlflow

    from kamml.tracking import locate_model, tracking_scope

    cfg, _, result = trained
    assert result.model_uri.startswith("models:/m-")
    with tracking_scope(cfg.tracking):
        version = mlflow.register_model(result.model_uri, "locate-stages").version
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            MlflowClient().transition_model_version_stage("locate-stages", version, "Staging")
    for uri in (
        result.model_uri,
        "models:/locate-stages/Staging",
        "models:/locate-stages/staging",
        "models:/locate-stages/latest",
        f"file://{model_dir}",
        f"file://{model_dir}/",
    ):
        assert locate_model(uri, cfg.tracking) is None, uri
        assert load_model(uri, cfg.tracking).bundle is not None, uri
    with pytest.raises(ModelError, match="and stage 'Production' found"):
        locate_model("models:/locate-stages/Production", cfg.tracking)
    with pytest.raises(ModelError, match="and stage 'Production' found"):
        load_model("models:/locate-stages/Production", cfg.tracking)


@pytest.fixture(scope="module")
def artifact_server(tmp_path_factory, start_mlflow):
    """A real ``mlflow server`` (SQLite backend, artifacts served from a folder), free port: (url, folder)."""
    root = tmp_path_factory.mktemp("server")
    served = root / "artifacts"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    args = ["server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}"]
    args += ["--artifacts-destination", str(served)]
    with start_mlflow(args, env, root, "/health") as url:
        yield url, served


@pytest.mark.slow
def test_a_served_artifacts_uri_loads_from_the_configs_server_not_mlflows_current_store(
    artifact_server, model_dir
):
    """``mlflow-artifacts:/path`` is resolved by MLflow against its current tracking URI: with a config
    naming a server, the load went to whatever MLflow pointed at (here the session's SQLite store, where
    MLflow refuses such a URI) instead of the config's server, as ``models:/`` and ``runs:/`` do."""
    import shutil

    import mlflow

    from kamml.config import TrackingConfig

    url, served = artifact_server
    shutil.copytree(model_dir, served / "copied" / "model")
    before = mlflow.get_tracking_uri()
    assert before.startswith("sqlite:")  # MLflow's current store is not a server (`mlflow_at_session_store`)
    config = TrackingConfig(uri=url)
    loaded = load_model("mlflow-artifacts:/copied/model", config)
    assert loaded.bundle is not None
    assert mlflow.get_tracking_uri() == before  # the caller's store again after
    with pytest.raises(ModelError, match="cannot load the model mlflow-artifacts:/copied/nothing"):
        load_model("mlflow-artifacts:/copied/nothing", config)


def test_a_runs_uri_path_is_checked_where_mlflow_loads_it_from(tmp_path, mlflow_state):
    """Only the run of ``runs:/ID/path`` was looked up: a mistyped path passed `kamml score`'s check and
    failed at load, after the data. The run's own artifacts hold the model here (no logged model)."""
    import mlflow

    from kamml.tracking import locate_model

    store = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    experiment = mlflow.create_experiment("runs-paths", artifact_location=(tmp_path / "art").as_uri())
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifact(str(tmp_path / "MLmodel"), "plain")
    run_id = run.info.run_id
    for good in ("plain", "plain/"):
        assert locate_model(f"runs:/{run_id}/{good}") is None, good
    for wrong, words in (
        ("plian", "hold no plian, and the run logged no model named 'plian'"),
        ("plain/MLmodel", "holds no MLmodel"),  # a file, not a model's folder
        ("", "names no path in the run"),
    ):
        uri = f"runs:/{run_id}/{wrong}"
        with pytest.raises(ModelError, match=f"cannot load the model {uri}") as located:
            locate_model(uri)
        assert words in str(located.value), wrong
        with pytest.raises(ModelError):  # what the check refuses, loading refuses
            load_model(uri)


@pytest.mark.slow
def test_a_runs_uri_is_checked_through_the_model_the_run_logged(trained):
    """MLflow 3 keeps a logged model's files under the model, not the run: ``runs:/ID/model`` loads through
    the model named 'model' the run logged, so the path is checked there; a wrong one is refused before
    the data are read."""
    from kamml.tracking import locate_model

    cfg, _, result = trained
    good = f"runs:/{result.run_id}/model"
    assert locate_model(good, cfg.tracking) is None
    assert load_model(good, cfg.tracking).bundle is not None
    for wrong in ("modle", "model/artifacts/bundle"):
        uri = f"runs:/{result.run_id}/{wrong}"
        with pytest.raises(ModelError, match=f"cannot load the model {uri}"):
            locate_model(uri, cfg.tracking)
        with pytest.raises(ModelError):
            load_model(uri, cfg.tracking)


def test_a_models_uri_with_a_path_inside_is_read_as_mlflow_reads_it(tmp_path, mlflow_state):
    """``models:/a/1/sub`` is version 1 of 'a' and the path 'sub' to MLflow; kamml's own parser read the
    name 'a/1': the note listed the registered models as if 'a' were mistyped, and an alias or /latest
    followed by a path was recorded as the pointer, not the version that scored."""
    from kamml.tracking import locate_model
    from kamml.tracking.model import _resolve_alias

    client = _store_with_files_gone(tmp_path)
    client.set_registered_model_alias("located", "champion", "1")
    with pytest.raises(ModelError) as located:
        locate_model("models:/located/7/sub")
    message = str(located.value)
    assert "'located' has aliases champion (version 1) and versions 1" in message
    assert "registered models there" not in message
    with pytest.raises(ModelError) as located:  # the version is there: the path inside is what fails
        locate_model("models:/located/1/sub")
    assert "has aliases" not in str(located.value)
    assert "registered models there" not in str(located.value)
    assert _resolve_alias("models:/located@champion/sub") == "models:/located/1/sub"
    assert _resolve_alias("models:/located/latest/sub") == "models:/located/1/sub"
    assert _resolve_alias("models:/located/Production/sub") == "models:/located/Production/sub"
