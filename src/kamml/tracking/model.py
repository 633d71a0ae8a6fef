"""Log kamml's bundle as an MLflow pyfunc (models from code, no pickle) and load any model URI back.

A logged model holds: ``python_model`` (the `_model_code.py` source MLflow runs at load time), the
``bundle`` artifact folder (bundle.json with the feature specification, BTYD parameters, calibration
arrays and horizons; clv.txt, churn.txt, influence.txt as LightGBM model text), a signature of the
answer and the ``top_drivers`` param, the input columns and their types as metadata, an input example,
explicit pip requirements, and a wheel of kamml itself (``artifacts/kamml-<version>-py3-none-any.whl``,
named in those requirements: kamml is not on PyPI, and MLflow installs requirements from the model folder).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import stat
import tempfile
import time
import urllib.parse
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.store.artifact.hdfs_artifact_repo import HdfsArtifactRepository
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
from mlflow.store.artifact.utils.models import ParsedModelUri, _parse_model_uri, get_model_name_and_version
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.utils.file_utils import local_file_uri_to_path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kamml.config import TrackingConfig
from kamml.errors import ModelError
from kamml.models.bundle import ModelBundle
from kamml.tracking.pyfunc import BUNDLE_ARTIFACT, KammlPyfunc, json_ready, score_frame
from kamml.tracking.store import (
    check_current_store_exists,
    config_store_error,
    describe_store,
    store_error,
    store_in_force,
    tracking_scope,
    tracking_source,
    tracking_uri,
)

__all__ = [
    "LoadedModel",
    "load_model",
    "locate_model",
    "log_bundle",
    "model_input",
    "pip_requirements",
    "resolve_model",
]

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("_model_code.py")
#: Packages the pyfunc needs at load time, pinned to the versions it was logged with (numba compiles the
#: drivers' TreeSHAP kernels when the model loads: unpinned, a serving environment took the newest).
#: kamml's other runtime dependencies are pinned too (`requirement_names`).
REQUIREMENTS = (
    "kamml",
    "lightgbm",
    "numba",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "mlflow",
    "pydantic",
)


#: Where the model's copy of kamml's wheel sits in the logged model (pip installs it from the model folder).
WHEEL_ARTIFACT = "kamml_wheel"


def pip_requirements(wheel: str | None = None) -> list[str]:
    """The pyfunc's pip requirements, pinned to the installed versions (given explicitly: fast, exact).

    `REQUIREMENTS` and every other runtime dependency of kamml (`requirement_names`). With `wheel` (a
    path inside the model folder), kamml is installed from it instead of ``kamml==<v>``: kamml is not on
    PyPI, so that line could not be resolved where MLflow builds a serving environment.
    """
    names = requirement_names()
    pins = [f"{name}=={metadata.version(name)}" for name in names]
    return [wheel if name == "kamml" and wheel else pin for name, pin in zip(names, pins, strict=True)]


def requirement_names() -> list[str]:
    """`REQUIREMENTS`, then kamml's other installed runtime dependencies (no extras), by name.

    Loading the model imports kamml, and with it Ibis, pyarrow, sqlglot, PyYAML and rich, which kamml's
    wheel names only as ranges: a serving environment built later took whatever release was newest.
    """
    names = list(REQUIREMENTS)
    try:
        lines = metadata.requires("kamml") or []
    except metadata.PackageNotFoundError:
        return names
    seen = {canonicalize_name(name) for name in names}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's (spark, dev), or another platform's
        key = canonicalize_name(requirement.name)
        if key in seen:
            continue
        try:
            metadata.version(requirement.name)
        except metadata.PackageNotFoundError:  # not installed here: pip resolves it from kamml's wheel
            continue
        seen.add(key)
        names.append(requirement.name)
    return names


def kamml_wheel() -> Path | None:
    """A wheel of the running kamml's own files, written once per state of them (cached), or None.

    kamml is pure Python, so the wheel is written directly: the package's files, its installed metadata
    (METADATA with the dependencies, entry points) and a RECORD of hashes. No build step, no network
    (a pip build with isolation fetches setuptools first, which can stall for minutes offline). The
    model then carries exactly the code that trained it. None, with a warning, when the installed
    metadata cannot be read.
    """
    package = Path(__file__).resolve().parents[1]
    try:
        dist = metadata.distribution("kamml")
        # a source checkout on the path (PYTHONPATH=src) finds its egg-info first, which has PKG-INFO
        meta = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    except (metadata.PackageNotFoundError, OSError) as exc:
        log.warning("no wheel of kamml for the model (%s): it names kamml==<version>", exc)
        return None
    if not meta:
        log.warning("no wheel of kamml for the model (no installed METADATA): it names kamml==<version>")
        return None
    files = sorted(
        p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    digest = hashlib.sha256(meta.encode())
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    folder = wheel_cache() / digest.hexdigest()[:20]
    wheel = folder / f"kamml-{dist.version}-py3-none-any.whl"
    if wheel.is_file():
        with contextlib.suppress(OSError):
            os.utime(folder)  # in use: `prune_wheels` of another state of the code leaves it for a week
        if wheel.is_file():  # not pruned meanwhile
            return wheel
    folder.mkdir(parents=True, exist_ok=True)
    info = f"kamml-{dist.version}.dist-info"
    tags = "Wheel-Version: 1.0\nGenerator: kamml\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    contents = [(f"kamml/{path.relative_to(package).as_posix()}", path.read_bytes()) for path in files]
    contents += [(f"{info}/METADATA", meta.encode()), (f"{info}/WHEEL", tags.encode())]
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        contents.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = [f"{name},sha256={_urlsafe_digest(data)},{len(data)}" for name, data in contents]
    record.append(f"{info}/RECORD,,")
    partial = folder / f".{wheel.name}.{uuid.uuid4().hex}"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents:
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    partial.replace(wheel)  # whole or not at all: two jobs writing at once both end with one good file
    prune_wheels(folder.parent, keep=folder)
    return wheel


def wheel_cache() -> Path:
    """The folder of this user's cached wheels: private (0700, owned by the user), else a fresh one.

    The cache was one folder in the shared temporary directory, at a path anyone could compute: another
    user on the machine could plant a wheel there that the next model logged, and that the serving
    environment then installed. A folder that is not this user's alone is not trusted: the wheel is
    built in a new private folder instead (no cache).
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # Windows: the temporary directory is the user's own
        return Path(tempfile.gettempdir()) / "kamml-wheels"
    root = Path(tempfile.gettempdir()) / f"kamml-wheels-{getuid()}"
    with contextlib.suppress(OSError):
        root.mkdir(mode=0o700, exist_ok=True)
    try:
        info = root.lstat()
        private = stat.S_ISDIR(info.st_mode) and info.st_uid == getuid() and not info.st_mode & 0o077
    except OSError:
        private = False
    if private:
        return root
    log.warning("%s is not this user's private folder: kamml's wheel is built without the cache", root)
    folder = Path(tempfile.mkdtemp(prefix="kamml-wheel-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # one per model otherwise, never removed
    return folder


#: Wheels of other states of kamml's code untouched for this long are removed when a new one is written.
WHEEL_MAX_AGE_DAYS = 7.0


def prune_wheels(root: Path, keep: Path, max_age_days: float = WHEEL_MAX_AGE_DAYS) -> int:
    """Remove the cached wheel folders under `root` (but `keep`) not modified for `max_age_days`.

    Each state of kamml's files writes its own folder (about 0.7 MB): a developer's edits or upgrades
    would fill the temporary directory without end. A folder in use by a running job is minutes old,
    so an age limit leaves it alone. Returns how many folders were removed; errors are ignored.
    """
    cutoff = time.time() - max_age_days * 86_400
    removed = 0
    for child in root.iterdir() if root.is_dir() else ():
        try:
            if child != keep and child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child)
                removed += 1
        except OSError:
            continue
    return removed


def _urlsafe_digest(data: bytes) -> str:
    """A file's hash as a wheel's RECORD writes it (urlsafe base64 of sha256, no padding)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """Feature rows as the pyfunc takes them: ``account_id`` as a column, categories as plain strings."""
    frame = features.reset_index() if features.index.name == "account_id" else features.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), other=None)  # type: ignore[call-overload]
    return frame


#: Answer columns that may be absent (``account_id``, when the request has none) or null (no purchase
#: history: ``p_alive``, ``expected_purchases``; no fitted effort response: ``effort_*``).
OPTIONAL_OUTPUTS = frozenset({"account_id", "p_alive", "expected_purchases", "effort_scale", "effort_uplift"})


def _inferred(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """MLflow's signature of an example request and answer, with the ``top_drivers`` param."""
    with warnings.catch_warnings():
        # account_id is an integer id that is never missing: MLflow's hint about missing integers is noise
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        return infer_signature(example, output, params={"top_drivers": 3})


def _signature(inferred: ModelSignature) -> ModelSignature:
    """The served signature: the answer's columns and the ``top_drivers`` param, no input schema.

    With an input schema, MLflow enforces it on every request by rebuilding the frame column by column
    (about 10 ms of a one-row request with 56 columns, typed or ``any``): most of a REST call's time, for
    checks the model makes anyway. The bundle names a missing column (HTTP 400) and a non-numeric value
    in a numeric column itself, and the input columns with their types are in the MLmodel metadata
    (``feature_types``, ``optional_columns``) and the input example. The answer's columns that may be
    absent or null (`OPTIONAL_OUTPUTS`) are not required, whatever the example's answer held: a client
    typed from the signature refused a valid answer without an id or with a null ``p_alive``.
    """
    optional: list[ColSpec | TensorSpec] = [
        ColSpec(c.type, c.name, required=c.required and c.name not in OPTIONAL_OUTPUTS)
        for c in inferred.outputs.inputs
    ]
    return ModelSignature(inputs=None, outputs=Schema(optional), params=inferred.params)


def _feature_types(inferred: ModelSignature, bundle: ModelBundle) -> dict[str, str]:
    """Input column name -> the MLflow type inferred from the example (double, string, long ...).

    A category column missing in every example row was inferred as ``Any``: ``string`` when every level
    the bundle's models learned for it is text, as the CRM sends it.
    """
    types = {str(c.name): getattr(c.type, "name", str(c.type)) for c in inferred.inputs.inputs}
    levels: dict[str, list[Any]] = {}
    for model in (bundle.clv, bundle.churn, bundle.influence):
        for name, seen in (getattr(model, "categories_", None) or {}).items():
            levels.setdefault(name, []).extend(seen)
    for name, seen in levels.items():
        if types.get(name) == "Any" and all(isinstance(level, str) for level in seen):
            types[name] = "string"
    return types


def log_bundle(bundle: ModelBundle, features: pd.DataFrame, *, name: str = "model") -> ModelInfo:
    """Log `bundle` as a pyfunc on the active run; `features` (a few rows) give the example and signature."""
    example = model_input(features.head(5))
    inferred = _inferred(example, score_frame(bundle, example))
    wheel = kamml_wheel()
    with tempfile.TemporaryDirectory(prefix="kamml-bundle-") as tmp:
        folder = Path(tmp) / BUNDLE_ARTIFACT
        bundle.save(folder)
        artifacts = {BUNDLE_ARTIFACT: str(folder)}
        if wheel is not None:  # the model carries kamml itself: it installs where kamml is not on PyPI
            artifacts[WHEEL_ARTIFACT] = str(wheel)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=_signature(inferred),
            # missing numbers as None: MLflow writes a float NaN in both example files as a bare NaN
            input_example=json_ready(example),
            pip_requirements=pip_requirements(f"artifacts/{wheel.name}" if wheel is not None else None),
            metadata={"feature_types": _feature_types(inferred, bundle), "optional_columns": ["account_id"]},
        )
    log.info("logged the model bundle: %s", info.model_uri)
    return info


@dataclass
class LoadedModel:
    """A model loaded from a URI: the bundle, and the pyfunc when it came through MLflow."""

    uri: str
    bundle: ModelBundle
    pyfunc: Any = None
    resolved: str = ""

    def __post_init__(self) -> None:
        self.resolved = self.resolved or self.uri

    def predict(self, rows: pd.DataFrame, top_drivers: int = 3) -> pd.DataFrame:
        """Scores of feature rows (with an optional account_id column): the function the pyfunc serves.

        Called on the bundle directly, not through ``pyfunc.predict``: models logged by earlier kamml
        versions carry an input schema, whose enforcement rebuilds every column value by value (on a
        batch of 200,000 rows it took longer than the prediction). The bundle checks names and types.
        """
        return score_frame(self.bundle, rows, top_drivers=top_drivers)


def load_model(uri: str | os.PathLike[str], tracking: TrackingConfig | None = None) -> LoadedModel:
    """Load a kamml model from a URI or a folder, with pickle never needed.

    Accepts ``models:/name@alias``, ``models:/name/3``, ``runs:/id/model``, ``models:/m-<id>``, an MLflow
    model folder (holding MLmodel) or a plain bundle folder (bundle.json) written by `ModelBundle.save`.
    A ``models:/`` or ``runs:/`` URI is looked up in the store of `tracking` (a config's ``tracking``
    section, as ``load_model(result.model_uri, config.tracking)`` after `kamml.jobs.train.train`) when
    given, else in MLflow's current store: kamml's calls leave MLflow's tracking URI as they found it.
    A folder may be given as a `pathlib.Path`, and under the home folder as ``~/...`` (``--model=~/m``,
    which a shell leaves as written).
    """
    uri = os.fspath(uri)  # a Path was a TypeError ("argument of type 'PosixPath' is not iterable")
    local = Path(uri).expanduser()
    if _is_folder(uri):
        _check_folder(uri, local)
        if (local / "bundle.json").is_file() or local.name == "bundle.json":
            return LoadedModel(str(local), ModelBundle.load(local), resolved=str(local.resolve()))
    if uri.startswith("file:"):  # MLflow's words were "No such artifact: 'model'"
        _check_local_files(uri, uri)
    with _store_lookup(uri, tracking):
        # the alias is read first, in the same store, and that version loaded: the version recorded
        # is the one that scores even when the alias moves meanwhile (it was read after the scope,
        # in MLflow's current store: another store's version, and a stray ./mlflow.db)
        recorded = _resolve_alias(uri) if not _is_folder(uri) else str(local.resolve())
        if uri.startswith("runs:"):  # a wrong path named as `locate_model` names it, not "Failed to download"
            _check_run_files(uri, MlflowClient())
        try:
            pyfunc = mlflow.pyfunc.load_model(recorded)  # a folder by its absolute path, ~ read
        except OSError as exc:
            hdfs = _hdfs_files(exc)
            if hdfs is None:
                raise
            raise _hdfs_error(uri, hdfs, exc) from exc
    inner = pyfunc.unwrap_python_model()
    if not isinstance(inner, KammlPyfunc) or inner.bundle is None:
        raise ModelError(f"{uri} is not a kamml model (its python model is {type(inner).__name__})")
    # a folder is recorded by its absolute path: a relative one names nothing once read elsewhere (a CRM)
    return LoadedModel(uri, inner.bundle, pyfunc, recorded)


def _hdfs_files(exc: OSError) -> str | None:
    """The HDFS folder ("" if not known) MLflow read when it raised `exc` in its HDFS repository, else None.

    MLflow reads hdfs:// and viewfs:// through pyarrow's HadoopFileSystem, whose failures (no Java or
    libhdfs here, the cluster not answering) are bare OSErrors ("Unable to load libjvm").
    """
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_globals.get("__name__") == HdfsArtifactRepository.__module__:
            repository = frame.f_locals.get("self")
            return str(getattr(repository, "artifact_uri", ""))
        traceback = traceback.tb_next
    return None


def _hdfs_error(uri: str, files: str, exc: OSError) -> ModelError:
    """A `ModelError` naming the model `uri`, its HDFS `files`, what reading HDFS needs, pyarrow's reason."""
    looked_up = files and uri.startswith(("models:", "runs:"))  # else `uri` is itself on HDFS
    where = f" at {files} (where its files are)" if looked_up else ""
    reason = (str(exc) or type(exc).__name__).splitlines()[0]
    return ModelError(
        f"cannot load the model {uri}: MLflow could not read HDFS{where} ({reason}): "
        "it reads hdfs:// and viewfs:// through pyarrow's HadoopFileSystem, which needs a Hadoop client "
        "on this machine (Java with JAVA_HOME set, libhdfs under HADOOP_HOME or ARROW_LIBHDFS_DIR, and "
        "CLASSPATH from `hadoop classpath --glob`) and the cluster answering; or copy the model to a "
        "folder here and pass that"
    )


def locate_model(uri: str | os.PathLike[str], tracking: TrackingConfig | None = None) -> None:
    """Check that `uri` names a model, without loading it: the error `load_model` would raise, sooner.

    `kamml score` loaded the model beside the data, so a mistyped version or run id was told only after
    the whole data load (and not at all when the data could not be read). A folder must hold MLmodel or
    bundle.json, and a ``file:`` URI MLmodel. A ``models:/`` URI is parsed and looked up in the store as
    MLflow's loading does: a logged model id (``models:/m-<id>``), a version, a stage's latest version
    (``models:/name/Production``), the latest of all (``/latest``) or an alias; the files it points at
    must hold MLmodel when they are on this machine. A ``runs:/ID/path`` run must be in the store and
    its path hold MLmodel, in the run's files or in the model the run logged (`_check_run_files`). A
    remote URI (``s3://``, ``gs://``, ``hdfs://``, ``dbfs:/``, ``http(s)://``, ``mlflow-artifacts:/``),
    and a model's files held there, are not reached here: they are found when loaded.
    """
    uri = os.fspath(uri)
    if _is_folder(uri):
        _check_folder(uri, Path(uri).expanduser())
    elif uri.startswith(("models:", "runs:")):
        with _store_lookup(uri, tracking):
            _look_up(uri)
    elif uri.startswith("file:"):
        _check_local_files(uri, uri)


#: A URI's scheme (two characters or more, so not a Windows drive) and the ``:/`` after it.
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def _is_folder(uri: str) -> bool:
    """Whether `uri` is a folder (or a bundle.json), not a ``models:/``, ``runs:/`` or other URI.

    ``dbfs:/...`` and ``mlflow-artifacts:/...`` are URIs (MLflow loads them): they were refused as folders.
    """
    return _URI_SCHEME.match(uri) is None and not uri.startswith(("models:", "runs:"))


def _served_artifacts(uri: str) -> bool:
    """Whether `uri` is ``mlflow-artifacts:/path`` with no host: its server is the tracking URI."""
    return uri.startswith("mlflow-artifacts:") and not urllib.parse.urlparse(uri).netloc


def _check_folder(uri: str, local: Path) -> None:
    """A `ModelError` when folder `local` holds neither a bundle (bundle.json) nor an MLflow model."""
    if (local / "bundle.json").is_file() or local.name == "bundle.json" or (local / "MLmodel").is_file():
        return
    raise ModelError(
        f"no model at {uri}: expected an MLflow model folder (MLmodel) or a bundle folder "
        "(bundle.json), or a models:/ or runs:/ URI"
    )


def _look_up(uri: str) -> None:
    """Ask the store for what `uri` names, read as MLflow's loading reads it (MLflow's error if absent).

    MLflow's own parsing (`get_model_name_and_version`, after splitting off a path inside the model as
    its `ModelsArtifactRepository` does), so a URI passed here is the one MLflow then resolves.
    """
    client = MlflowClient()
    if uri.startswith("runs:"):
        _check_run_files(uri, client)
        return
    model, inside = ModelsArtifactRepository.split_models_uri(uri)
    found = get_model_name_and_version(client, model)  # (id,) or (name, version)
    if len(found) == 1:
        files = client.get_logged_model(found[0]).artifact_location
    else:
        files = client.get_model_version_download_uri(*found)
    _check_local_files(uri, posixpath.join(files, inside) if inside else files)


def _check_run_files(uri: str, client: MlflowClient) -> None:
    """A `ModelError` when ``runs:/ID/path`` names no model where MLflow's loading looks for one.

    MLflow (`RunsArtifactRepository`) reads ``path`` in the run's artifacts when it is there, else in the
    model the run logged under the path's first part (MLflow 3 keeps a logged model's files under the
    model, not the run). A run whose artifacts, or whose model's files, are remote passes: they are
    found when loaded.
    """
    run_id, path = RunsArtifactRepository.parse_runs_uri(uri)
    run = client.get_run(run_id)
    inside = (path or "").strip("/")
    if not inside:  # MLflow reads runs:/ID as the run 'ID' of no run, and fails
        raise ModelError(
            f"cannot load the model {uri}: it names no path in the run; a model kamml logged is "
            f"runs:/{run_id}/model"
        )
    root = run.info.artifact_uri
    if _URI_SCHEME.match(root) and not root.startswith("file:"):
        return  # s3://, mlflow-artifacts:/ ...: reached only when loaded
    artifacts = Path(local_file_uri_to_path(root))
    in_run = artifacts / inside
    if in_run.exists():  # MLflow takes the run's own files first, when they are there
        _check_local_files(uri, str(in_run))
        return
    name, _, rest = inside.partition("/")
    files = _run_model_files(client, run_id, run.info.experiment_id, name)
    if files is None:
        raise ModelError(
            f"cannot load the model {uri}: the run's artifacts ({artifacts}) hold no {inside}, "
            f"and the run logged no model named '{name}'"
        )
    _check_local_files(uri, posixpath.join(files, rest) if rest else files)


def _run_model_files(client: MlflowClient, run_id: str, experiment_id: str, name: str) -> str | None:
    """Where the model named `name` that the run logged keeps its files, searched as MLflow searches it."""
    token: str | None = None
    while True:
        page = client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"name = '{name}'", page_token=token
        )
        found = next((m for m in page if m.source_run_id == run_id), None)
        if found is not None:
            return str(found.artifact_location)
        if not page.token:
            return None
        token = page.token


def _check_local_files(uri: str, files: str) -> None:
    """A `ModelError` when `files` (a path or ``file:`` URI) holds no MLmodel; a remote location passes.

    MLflow loads a model's files from there: gone or moved, the load failed after the data were read.
    """
    if not files.startswith("file:") and _URI_SCHEME.match(files):
        return  # s3://, mlflow-artifacts:/ ...: reached only when loaded
    folder = Path(local_file_uri_to_path(files))
    if not (folder / "MLmodel").is_file():
        where = "" if files == uri else " (where the store says its files are)"
        raise ModelError(f"cannot load the model {uri}: {folder}{where} holds no MLmodel")


@contextlib.contextmanager
def _store_lookup(uri: str, tracking: TrackingConfig | None) -> Iterator[None]:
    """MLflow pointed at the store `uri` is looked up in; its failures named as `load_model` names them.

    A ``mlflow-artifacts:/path`` URI without a host is resolved by MLflow against its current tracking
    URI: it is loaded within the config's store too, so the config's server serves it (a notebook's own
    store answered otherwise, or MLflow refused the URI as needing a server).
    """
    from_store = uri.startswith(("models:", "runs:"))
    if from_store and tracking is None:  # a config's store: `tracking_scope` refuses a missing one
        check_current_store_exists(registry=uri.startswith("models:"))
    scoped = (from_store or _served_artifacts(uri)) and tracking is not None
    scope = tracking_scope(tracking, create=False) if scoped else None
    try:
        with scope or contextlib.nullcontext():
            yield
    except Exception as exc:  # SQLAlchemy's errors opening a store are not MlflowExceptions
        # named as the store searched: MLflow is the caller's again here
        locked_or_broken = None
        if from_store or scoped:
            locked_or_broken = store_error(exc) if tracking is None else config_store_error(exc, tracking)
        if locked_or_broken is not None:
            raise locked_or_broken from exc
        if not isinstance(exc, MlflowException):
            raise
        # a registry lookup names the store it searched: a relative sqlite path or MLFLOW_TRACKING_URI
        # points at another store than the one meant, and "not found" alone reads as a missing model
        searched = (
            store_in_force()
            if tracking is None
            else describe_store(tracking_uri(tracking), tracking_source(tracking))
        )
        where = f" (searched the MLflow store {searched})" if from_store else ""
        if scoped and not from_store:
            where = f" (resolved against the MLflow tracking URI {searched})"
        if from_store:
            where += _store_holds(uri, tracking)
        if from_store and tracking is None:
            where += (
                "; a model kamml trained is in its config's store: pass the config, as "
                "load_model(uri, config.tracking) or score(uri, data, cutoff, config)"
            )
        raise ModelError(f"cannot load the model {uri}: {exc.message}{where}") from exc


def resolve_model(
    model: str | os.PathLike[str] | LoadedModel | ModelBundle, tracking: TrackingConfig | None = None
) -> LoadedModel:
    """A model as scoring takes it: a URI or folder (text or Path), a `LoadedModel`, or a `ModelBundle`.

    A ``models:/`` or ``runs:/`` URI is looked up in the `tracking` store when one is given (the config's
    ``tracking.uri``, unless ``MLFLOW_TRACKING_URI`` is set), so a fresh Python session finds the model
    the CLI registered instead of MLflow's default store. Scoring only reads the store: a SQLite store
    file that does not exist is refused (`TrackingStoreError`) instead of MLflow creating an empty one,
    and a store that is locked or not an MLflow store is a `TrackingStoreError` naming it. MLflow points
    at that store only for the lookup (`tracking_scope`); without `tracking` it is MLflow's current store.
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, ModelBundle):
        return LoadedModel("in-memory ModelBundle", model)
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        raise TypeError(
            f"model must be a URI, a folder, a LoadedModel or a ModelBundle, got {type(model).__name__}"
        )
    return load_model(model, tracking)  # MLflow's URIs are the caller's again after


def _scope_again(tracking: TrackingConfig | None) -> contextlib.AbstractContextManager[Any]:
    """The store a failed lookup searched, entered again to say what it holds (MLflow's current one)."""
    return tracking_scope(tracking, create=False) if tracking is not None else contextlib.nullcontext()


def _store_holds(uri: str, tracking: TrackingConfig | None) -> str:
    """What the store searched holds under a ``models:/name@alias``, ``/N`` or ``/Stage`` not found there.

    "Registered Model with name=kamml not found" alone left a user who had set another
    ``tracking.model_name`` guessing; the names there, or the model's aliases and versions, say what to
    type; for ``models:/name`` (a logged model's id to MLflow 3) naming a registered model, how to name
    its versions (`_registered_not_logged`). '' for other URIs, when the name, alias (``@latest`` too),
    version or stage asked for is there (the failure is another: missing artifacts, a wrong path inside
    the model), or when the store cannot be entered or read: the lookup's own error stands.
    """
    parts = _registry_parts(uri)
    if parts is None:
        return _registered_not_logged(uri, tracking)
    asked, _ = parts
    name = str(asked.name)
    try:
        with _scope_again(tracking):
            client = MlflowClient()
            try:
                model = client.get_registered_model(name)
            except MlflowException:
                names = [m.name for m in client.search_registered_models(max_results=21)]
                if not names:
                    return "; the store holds no registered model"
                more = ", ..." if len(names) > 20 else ""
                return f"; registered models there: {', '.join(map(repr, names[:20]))}{more}"
            found = client.search_model_versions(f"name = '{name}'")
    except Exception:  # advice only: the lookup's own error is raised whatever happens here
        return ""
    versions = sorted(int(v.version) for v in found)
    if _is_there(asked, model.aliases, versions, [str(v.current_stage) for v in found]):
        return ""
    aliases = ", ".join(f"{a} (version {v})" for a, v in sorted(model.aliases.items())) or "none"
    shown = ", ".join(map(str, versions[-10:])) or "none"
    return f"; '{name}' has aliases {aliases} and versions {'..., ' if len(versions) > 10 else ''}{shown}"


def _is_there(asked: ParsedModelUri, aliases: dict[str, Any], versions: list[int], stages: list[str]) -> bool:
    """Whether the alias, version, stage or latest version `asked` names is among a model's."""
    if asked.alias is not None:  # MLflow's reserved alias @latest (any case) is never in the aliases
        return asked.alias in aliases or (asked.alias.lower() == "latest" and bool(versions))
    if asked.version is not None:
        return int(asked.version) in versions
    if asked.stage is not None:
        return any(asked.stage.lower() == stage.lower() for stage in stages)
    return bool(versions)  # /latest


def _registered_not_logged(uri: str, tracking: TrackingConfig | None) -> str:
    """How to name a version, for ``models:/name`` (a logged model id to MLflow 3) naming a registered model.

    '' otherwise, or when the store cannot be entered or read (advice only: the lookup's error stands).
    """
    path = uri[len("models:/") :].rstrip("/") if uri.startswith("models:/") else ""
    if not path or "/" in path or "@" in path:
        return ""
    try:
        with _scope_again(tracking):
            MlflowClient().get_registered_model(path)
    except Exception:  # not a registered name either, or the store unreadable: the lookup's error stands
        return ""
    return (
        f"; '{path}' is a registered model: name one of its versions, as models:/{path}/latest, "
        f"models:/{path}/<version> or models:/{path}@<alias> (models:/<id> alone names a logged model)"
    )


def _resolve_alias(uri: str) -> str:
    """``models:/name@alias`` or ``models:/name/latest`` as the version it is now: ``models:/name/3``.

    Outputs then record which model scored them, not a pointer that moves. Parsed as MLflow parses it
    (`_registry_parts`), a path inside the model kept (``models:/name@alias/sub`` is
    ``models:/name/3/sub``). A name MLflow would not read back from ``models:/name/3`` (one holding
    '@', which MLflow takes for an alias before a path) keeps the pointer: that URI loads.
    """
    parts = _registry_parts(uri)
    if parts is None:
        return uri
    asked, inside = parts
    name = str(asked.name)
    try:
        if asked.alias is not None:
            version = str(MlflowClient().get_model_version_by_alias(name, asked.alias).version)
        elif asked.version is None and asked.stage is None:  # /latest
            versions = MlflowClient().search_model_versions(f"name = '{name}'")
            version = str(max(int(v.version) for v in versions))
        else:
            return uri
    except (MlflowException, ValueError):  # ValueError: no version at all
        return uri
    resolved = f"models:/{name}/{version}" + (f"/{inside}" if inside else "")
    if _registry_parts(resolved) != (ParsedModelUri(name=name, version=version), inside):
        return uri
    return resolved


def _registry_parts(uri: str) -> tuple[ParsedModelUri, str] | None:
    """A ``models:/`` URI naming a registered model as MLflow reads it: (what it asks for, the path inside).

    MLflow's own parsing (`ModelsArtifactRepository.split_models_uri`, then `_parse_model_uri`):
    ``models:/a/1/sub`` is version 1 of 'a' and the path 'sub' (kamml's parser read the name 'a/1'). None
    for another URI, a logged model's id (``models:/m-<id>``) or a URI MLflow refuses.
    """
    if not uri.startswith("models:"):
        return None
    model, inside = ModelsArtifactRepository.split_models_uri(uri)
    try:
        asked = _parse_model_uri(model)
    except MlflowException:
        return None
    if asked.name is None:
        return None
    return asked, inside
