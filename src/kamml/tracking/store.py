"""Where MLflow records runs: the tracking store and experiment from the config or the environment.

kamml's default (the CLI's, and any call given a config) is a SQLite store and a local artifact folder
in the working directory (``sqlite:///mlruns.db``, ``./mlartifacts``); a Python call without a config
uses MLflow's current tracking URI. ``MLFLOW_TRACKING_URI`` exported in the environment wins over the
config, so a scheduler can point the same config at a shared server; the same variable written by
``mlflow.set_tracking_uri`` in this process (MLflow 3's setter does) does not (`tracking_uri`). kamml's
calls switch MLflow to the store only while they run (`tracking_scope`).

Messages about a store name its URI and where it came from (`describe_store`). A store MLflow cannot
open (locked by another process, a file that is not an MLflow store) is a `TrackingStoreError` with what
to do (`store_error`), and a read-only use (scoring) refuses a SQLite store file that does not exist
rather than letting MLflow create an empty one (`check_store_exists`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.exceptions import MlflowException

from kamml.config import TrackingConfig, sqlite_home
from kamml.errors import ConfigError, KammlError, TrackingStoreError, exception_chain
from kamml.io import hold_lock

__all__ = [
    "check_current_store_exists",
    "check_store_exists",
    "describe_store",
    "experiment_id",
    "restore_variables",
    "server_unreachable",
    "sqlite_file",
    "store_error",
    "store_errors",
    "store_in_force",
    "store_lock",
    "tracking_scope",
    "tracking_source",
    "tracking_uri",
    "use_tracking",
]

log = logging.getLogger(__name__)


def _mlflow_state() -> tuple[str | None, str | None]:
    """MLflow's own tracking and registry URIs as set in this process (None: never set, MLflow's default).

    Read from the module variables MLflow's setters write (its own ``_use_tracking_uri`` reads the first):
    ``mlflow.get_tracking_uri()`` answers MLflow's default when unset, which cannot be set back as "unset".
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


#: The URI `use_tracking` last set and where it came from, so `store_in_force` can say it.
_last_set: tuple[str, str] | None = None
#: MLflow's tracking URI, and `_last_set`, before kamml's outermost `tracking_scope` switched them.
_outer: list[tuple[str | None, tuple[str, str] | None]] = []
#: A value of MLFLOW_TRACKING_URI seen written by ``mlflow.set_tracking_uri`` in this process (not exported).
_setter_written: str | None = None


def environment_is_users(value: str) -> bool:
    """Whether an MLFLOW_TRACKING_URI of `value` is the user's (exported, inherited) or MLflow's setter's.

    MLflow 3's ``mlflow.set_tracking_uri`` also writes the variable (for subprocesses), so in a notebook
    that called it the variable is not an override the user gave: it equals MLflow's own URI set in this
    process. One exported (a scheduler's, a shell's) differs from it, or MLflow's URI was never set.
    MLflow's URI is read as the user left it: the one before kamml's `tracking_scope`; when kamml's
    public `use_tracking` moved it since, the value last seen written by the setter decides.
    """
    global _setter_written
    current, last = _outer[0] if _outer else (_mlflow_state()[0], _last_set)
    if last is not None and current is not None and last[0] == current:  # kamml's use_tracking set it
        return value != _setter_written
    _setter_written = value if current == value else None
    return current != value


def _environment() -> tuple[str | None, bool]:
    """MLFLOW_TRACKING_URI (None if unset or empty) and whether it is the user's (`environment_is_users`).

    A ``sqlite:///~/x.db`` value is the home folder's file, as in ``tracking.uri`` (`sqlite_home`): MLflow
    created ``./~/x.db`` while kamml's lock guarded the home folder's. Whose it is is read as written.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI") or None
    if env is None:
        return None, False
    return sqlite_home(env), environment_is_users(env)


def _configured(config: TrackingConfig | None) -> bool:
    """Whether the config gives tracking.uri itself (not kamml's default)."""
    return config is not None and "uri" in config.model_fields_set


def tracking_uri(config: TrackingConfig | None = None) -> str:
    """The tracking URI in force (first that applies).

    1. ``MLFLOW_TRACKING_URI`` exported by the user (a scheduler pointing a config at a shared server);
    2. the config's ``tracking.uri``;
    3. MLflow's URI set in this process by ``mlflow.set_tracking_uri`` (which writes the variable), for a
       config without ``tracking.uri`` or no config;
    4. kamml's default, ``sqlite:///mlruns.db``.
    """
    env, users = _environment()
    if env is not None and (users or not _configured(config)):
        return env
    return (config or TrackingConfig()).uri


def tracking_source(config: TrackingConfig | None = None) -> str:
    """Where `tracking_uri` takes the URI from, in words: the variable, MLflow's setter or the config.

    Said in every message about the store: with ``MLFLOW_TRACKING_URI`` set, the config's store is not
    the one searched, and nothing else on the console shows it.
    """
    env, users = _environment()
    configured = (config or TrackingConfig()).uri
    if env is not None and users:
        shown = without_password(configured)  # a tag on the run and every store message: no password
        # no config (or one without the key): kamml's default is what is replaced, not "the config's"
        whose = "the config's" if _configured(config) else "kamml's default"
        replaced = f", which replaces {whose} tracking.uri {shown}" if configured != env else ""
        return f"the MLFLOW_TRACKING_URI environment variable{replaced}"
    if env is not None and not _configured(config):
        return "MLflow's tracking URI set in this process (mlflow.set_tracking_uri), the config giving none"
    if not _configured(config):  # no config, or one without the key
        return "kamml's default tracking.uri, relative to the working directory"
    return "the config's tracking.uri"


#: (environment value, config value) pairs already warned about, so a notebook's loop warns once.
_warned: set[tuple[str, str]] = set()


def warn_overridden(config: TrackingConfig | None) -> None:
    """Log a WARNING when MLFLOW_TRACKING_URI and a config's explicit tracking.uri differ: which wins, why.

    Once per pair of URIs in a process.
    """
    env, users = _environment()
    if env is None or not _configured(config) or config is None or config.uri == env:
        return
    if (env, config.uri) in _warned:
        return
    _warned.add((env, config.uri))
    if users:
        log.warning(
            "MLflow store: the MLFLOW_TRACKING_URI environment variable %s wins over the config's "
            "tracking.uri %s (an exported variable overrides the config); unset it to use the config's store",
            without_password(env),
            without_password(config.uri),
        )
    else:
        log.warning(
            "MLflow store: the config's tracking.uri %s wins over MLflow's tracking URI %s set in this "
            "process by mlflow.set_tracking_uri (which also wrote MLFLOW_TRACKING_URI; only an exported "
            "variable overrides the config); kamml puts MLflow's URI back after each call",
            without_password(config.uri),
            without_password(env),
        )


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI as SQLAlchemy opens it (relative or absolute), or None.

    None for other stores and for an in-memory database (``sqlite://``, ``sqlite:///:memory:``). The path
    is percent-decoded, as SQLAlchemy decodes it: ``my%20store`` is the folder ``my store``, where kamml's
    checks and lock took it as written (scoring refused the store as missing).
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


#: How long a job waits for another kamml process to finish with a SQLite store's lock (`store_lock`).
STORE_LOCK_SECONDS = 900.0


def store_lock_file(uri: str) -> Path | None:
    """The lock file beside a SQLite store (``mlruns.db.kamml-lock``), or None for other stores."""
    file = sqlite_file(uri)
    if file is None:
        return None
    file = file.expanduser().resolve()  # one lock whatever the spelling (a symlink, ../)
    return file.with_name(f"{file.name}.kamml-lock")


@contextlib.contextmanager
def store_lock(
    config: TrackingConfig | None, doing: str, timeout: float = STORE_LOCK_SECONDS
) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store while `doing`; another kamml process waits its turn.

    Two jobs starting on a new store both had MLflow create its tables (one crashed: "table ... already
    exists"), and two jobs registering at once could both pass the champion gate, the last one's alias
    winning even when its model was the worse. Only kamml's own processes take the lock (not the MLflow
    UI or a user's script); a server store decides on its side, and a file system without locks (or a
    platform without ``fcntl``) goes on without one. Waiting longer than `timeout` seconds is a
    `TrackingStoreError`.
    """
    path = store_lock_file(tracking_uri(config))
    if path is None or not path.parent.is_dir():
        yield
        return

    def timed_out() -> TrackingStoreError:
        return TrackingStoreError(
            f"another kamml job held the lock {path} of the MLflow tracking store for over "
            f"{timeout:.0f} s while this job waited to start {doing}: retry when it ends"
        )

    waiting = f"waiting for another kamml job on the MLflow store before {doing}"
    with hold_lock(path, waiting, timeout, timed_out):  # the file stays, as SQLite's own journal does
        yield


def without_password(uri: str) -> str:
    """`uri` with the password of its user part as ``***`` (``postgresql://kamml:***@db/mlflow``).

    A URI is written into messages, the run's params and its config.yaml, where a database password
    does not belong.
    """
    try:
        parsed = urlparse(uri)
        password = parsed.password
    except ValueError:  # not a URI urllib can read (a bad port): shown as given
        return uri
    if not password:
        return uri
    user, _, host = parsed.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return parsed._replace(netloc=f"{name}:***@{host}").geturl()


def describe_store(uri: str, source: str) -> str:
    """A store for messages: its URI, where the URI came from, and for a relative SQLite path the file.

    A relative ``sqlite:///mlruns.db`` is relative to the working directory, so the absolute file is
    shown: run from another folder, it is another (often new, empty) store. A password is not shown.
    """
    text = f"{without_password(uri)} (from {source}"
    file = sqlite_file(uri)
    if file is not None and not file.is_absolute():
        text += f"; the file {file.absolute()}"
    return text + ")"


def store_in_force() -> str:
    """The store MLflow searches now (`describe_store`), for messages raised without a config at hand."""
    uri = mlflow.get_tracking_uri()
    if _last_set is not None and _last_set[0] == uri:
        source = _last_set[1]
    elif os.environ.get("MLFLOW_TRACKING_URI") == uri:
        source = "the MLFLOW_TRACKING_URI environment variable"
    else:
        source = "MLflow's current tracking URI (mlflow.set_tracking_uri, or MLflow's default)"
    return describe_store(uri, source)


def check_store_exists(config: TrackingConfig | None = None) -> None:
    """Refuse, for a read-only use, a SQLite store whose file does not exist (`TrackingStoreError`).

    MLflow creates a missing SQLite file (and its folder) on first contact, so a lookup in the wrong
    place left an empty 1 MB store behind and failed with "Registered Model ... not found", as if the
    model were missing rather than the store. Training (`use_tracking` with ``create=True``) still
    creates the store on first use. Other stores (a server, a folder) are left to MLflow.
    """
    uri = tracking_uri(config)
    file = sqlite_file(uri)
    if file is None:
        return
    if file.expanduser().is_file():
        check_sqlite_is_a_store(config, read_only=True)
        return
    hint = ""
    if not file.is_absolute():
        hint = (
            f"; a relative sqlite path is relative to the working directory ({Path.cwd()}): run from the "
            "folder that holds the store or give an absolute path (sqlite:////abs/path/mlruns.db)"
        )
    raise TrackingStoreError(
        f"no MLflow tracking store at {file.expanduser().absolute()}: {uri} (from {tracking_source(config)}) "
        f"names a SQLite file that does not exist{hint}; kamml train creates the store"
    )


def check_current_store_exists(registry: bool) -> None:
    """Refuse a lookup without a config in a SQLite store the user named whose file does not exist.

    MLflow created the file (and its folder) on first contact, so a CRM's ``MLFLOW_TRACKING_URI`` with a
    typo in its path left an empty store there and the lookup said "Registered Model ... not found", as
    if the store were the right one (`check_store_exists` refuses a config's missing store). MLflow's
    default store, never named, is left to MLflow. `registry`: a ``models:/`` lookup, which searches
    MLflow's registry URI.
    """
    tracking_set, registry_set = _mlflow_state()
    named = tracking_set is not None or bool(os.environ.get("MLFLOW_TRACKING_URI"))
    if registry:
        named = named or registry_set is not None or bool(os.environ.get("MLFLOW_REGISTRY_URI"))
    if not named:  # MLflow's own default, mlflow.db in the working folder, which MLflow creates (README)
        return
    uri = mlflow.get_registry_uri() if registry else mlflow.get_tracking_uri()
    file = sqlite_file(uri)
    if file is None or file.expanduser().is_file():
        return
    if uri == mlflow.get_tracking_uri():
        searched = store_in_force()
    else:
        searched = describe_store(
            uri, "MLflow's registry URI (mlflow.set_registry_uri or MLFLOW_REGISTRY_URI)"
        )
    raise TrackingStoreError(
        f"no MLflow tracking store at {file.expanduser().absolute()}: the lookup's store {searched} names a "
        "SQLite file that does not exist, and MLflow would create an empty one there; check the URI (a "
        "model kamml trained is in its config's store: pass the config, as load_model(uri, config.tracking) "
        "or score(uri, data, cutoff, config))"
    )


def check_sqlite_is_a_store(config: TrackingConfig | None = None, *, read_only: bool) -> None:
    """Refuse a SQLite file that is not an MLflow store before MLflow writes its schema into it.

    MLflow turns any SQLite database it opens into a store (66 tables added beside the file's own): a
    mistyped tracking.uri naming a CRM's database changed that database, even from `kamml score`. A
    database with tables and no MLflow ones is refused; an empty file is refused for a read-only use
    (there is nothing to score with) and left to become a store when training.
    """
    uri = tracking_uri(config)
    file = sqlite_file(uri)
    if file is None or not file.expanduser().is_file():
        return
    path = file.expanduser().absolute()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return  # not a database at all: MLflow's own error says so (`store_error`)
    where = f"{path}: {uri} (from {tracking_source(config)})"
    if tables and not {"experiments", "alembic_version"} <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise TrackingStoreError(
            f"{where} is a SQLite database of other tables ({shown}), not an MLflow store: MLflow would add "
            "its own tables to it; point tracking.uri (or MLFLOW_TRACKING_URI) at the store's file"
        )
    if not tables and read_only:
        raise TrackingStoreError(
            f"{where} is an empty SQLite file, not an MLflow store (no model in it); kamml train creates "
            "the store"
        )


def check_store_folder(config: TrackingConfig | None = None) -> None:
    """Create the folder of a SQLite store, or say which store cannot have one (`TrackingStoreError`).

    MLflow creates it on first contact, and a path under a file (or a folder it may not write) failed
    with the bare "Not a directory: ..." of the operating system, naming neither the store nor the setting.
    """
    uri = tracking_uri(config)
    file = sqlite_file(uri)
    if file is None:
        return
    folder = file.expanduser().absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingStoreError(
            f"cannot create the folder {folder} of the MLflow tracking store {uri} (from "
            f"{tracking_source(config)}): {exc.strerror or exc}; point tracking.uri (or MLFLOW_TRACKING_URI) "
            "at a file in a folder this job can write"
        ) from None


#: What SQLite says, by cause: another process holds the database, or the file is not a database.
_LOCKED = ("database is locked", "database table is locked")
_NOT_A_STORE = ("file is not a database", "database disk image is malformed", "file is encrypted")
_WRITE_FAILED = ("disk i/o error", "database or disk is full", "attempt to write a readonly database")
#: What requests (inside MLflow's "API request ... failed") says when a tracking server stopped answering.
_UNREACHABLE = (
    "max retries exceeded",
    "failed to establish a new connection",
    "connection refused",
    "timed out",
)


def server_unreachable(exc: BaseException) -> BaseException | None:
    """The error in `exc`'s chain saying a tracking server stopped answering (via MLflow), else None."""
    for error in exception_chain(exc):
        module = type(error).__module__.split(".")[0]
        if module in ("mlflow", "requests") and any(k in str(error).lower() for k in _UNREACHABLE):
            return error
    return None


def store_error(
    exc: BaseException, uri: str | None = None, source: str | None = None
) -> TrackingStoreError | None:
    """A `TrackingStoreError` saying what to do when `exc` is a store MLflow cannot open, else None.

    Recognised anywhere in the exception's chain: SQLAlchemy's and sqlite3's errors, and MLflow's own
    exception wrapping them (MLflow raises the first on opening a store, the second inside a session);
    and a tracking server that stopped answering mid-job (requests' connection errors, which MLflow
    wraps once its retries run out), which was a bare traceback (exit 1).
    `uri` and `source` name the store (default: the one MLflow uses now, `store_in_force`).
    """
    gone = server_unreachable(exc)
    if gone is not None:
        where = describe_store(uri, source or tracking_source()) if uri is not None else store_in_force()
        return TrackingStoreError(
            f"the MLflow tracking server {where} stopped answering while the job used it "
            f"({str(gone).splitlines()[0][:300]}): start it, or check the address and the network, "
            "then retry"
        )
    for error in exception_chain(exc):
        module = type(error).__module__.split(".")[0]
        if module not in ("sqlalchemy", "sqlite3", "mlflow"):
            continue
        text = str(error).lower()
        if any(k in text for k in _LOCKED):
            what = (
                "is locked by another process (a training job, or an MLflow UI or script writing to it): "
                "retry when it ends"
            )
        elif "unable to open database file" in text:
            what = (
                "cannot be opened or created (its folder is missing, read-only or not a folder): point "
                "tracking.uri (or MLFLOW_TRACKING_URI) at a file this job can write"
            )
        elif found := next((k for k in _WRITE_FAILED if k in text), None):
            what = (
                f"could not be written ({found}: a full disk, a read-only file or a failing device): "
                "free space or point tracking.uri (or MLFLOW_TRACKING_URI) at a store this job can write, "
                "then retry; SQLite rolled the write back"
            )
        elif any(k in text for k in _NOT_A_STORE):
            what = (
                "is not an MLflow store (SQLite cannot read it as a database): point tracking.uri (or "
                "MLFLOW_TRACKING_URI) at an MLflow store, or move the file away to start a new one"
            )
        else:
            continue
        where = describe_store(uri, source or tracking_source()) if uri is not None else store_in_force()
        return TrackingStoreError(f"the MLflow tracking store {where} {what}")
    return None


def config_store_error(exc: BaseException, config: TrackingConfig | None = None) -> TrackingStoreError | None:
    """`store_error` naming the configured store; None for kamml's own errors and for interruptions."""
    if isinstance(exc, KammlError) or not isinstance(exc, Exception):
        return None
    return store_error(exc, tracking_uri(config), tracking_source(config))


@contextlib.contextmanager
def store_errors(config: TrackingConfig | None = None) -> Iterator[None]:
    """Turn a store MLflow cannot open, inside the block, into a `TrackingStoreError` naming the store."""
    try:
        yield
    except Exception as exc:
        error = config_store_error(exc, config)
        if error is None:
            raise
        raise error from exc


#: A URI's scheme (two characters or more) and the ``/`` of its path.
_SCHEME_AND_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def _artifact_root(location: str) -> str:
    """A local artifact folder as an absolute ``file:`` URI (MLflow needs one); other URIs unchanged.

    A URI is a scheme and a path, with or without ``//`` (a server's ``mlflow-artifacts:/1``, which a run
    logs as its root, was made a folder of that name); a one-letter scheme is a Windows drive (``C:/arts``)
    and a colon without a ``/`` after it (``arts:v2``) part of a folder's name.
    """
    if "://" in location or location.startswith("file:") or _SCHEME_AND_PATH.match(location):
        return location
    return Path(location).expanduser().resolve().as_uri()


#: Environment variables MLflow's setters write; `use_tracking` puts them back, so they stay the user's.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


#: How long kamml's probe of a tracking server waits for its answer, unless MLFLOW_HTTP_REQUEST_TIMEOUT says.
PROBE_TIMEOUT_SECONDS = 10
#: What a reverse proxy or load balancer answers when the MLflow server behind it is not there.
_GATEWAY_DOWN = (502, 503, 504)
#: MLflow's settings of its HTTP requests that kamml's probe leaves to the user when set.
_USERS_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_USERS_TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"


def check_reachable(uri: str, source: str | None = None, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """A tracking server (an http or https URI) that does not answer is a `TrackingStoreError` at once.

    MLflow retries a request it cannot send for about four minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``),
    so a training job learned that its server was down only then, and as a config error (exit 2). One
    request to ``/health`` is sent first, by MLflow's own client (its TLS, proxy and credential settings:
    a plain request refused a server MLflow reaches with ``MLFLOW_TRACKING_INSECURE_TLS`` or
    ``MLFLOW_TRACKING_SERVER_CERT_PATH``), without retries and with a `timeout` of seconds unless the
    user set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` or ``MLFLOW_HTTP_REQUEST_TIMEOUT``. Any answer (even 401
    or 404) means the server is there, except 502, 503 or 504: a proxy's answer for a server behind it
    that is down, which MLflow retried for four minutes too. Other URIs (files, SQLite, databricks) are
    not probed.
    """
    if not uri.lower().startswith(("http://", "https://")):
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    where = describe_store(uri, source or tracking_source())
    try:
        response = http_request(
            get_default_host_creds(uri),
            "/health",
            "GET",
            # set at all (even empty) is the user's: MLflow reads it so, and its error is named below
            max_retries=None if _USERS_RETRIES in os.environ else 0,
            timeout=None if _USERS_TIMEOUT in os.environ else timeout,
            raise_on_status=False,
        )
    except MlflowException as exc:
        missing = _missing_certificate(exc)
        if missing is not None:
            raise missing from None
        waited = f"{os.environ.get(_USERS_TIMEOUT, '').strip() or f'{timeout:g}'} s"
        retries = os.environ.get(_USERS_RETRIES, "").strip()
        if _as_int(retries) > 0:  # the user's retries: each try waited that long
            waited += f" per try ({_as_int(retries) + 1} tries: {_USERS_RETRIES}={retries})"
        raise TrackingStoreError(
            f"the MLflow tracking server {where} {_probe_failure(exc, waited)}"
        ) from None
    except ValueError as exc:  # MLflow cannot read one of its settings (a number, a boolean)
        error = _bad_setting(exc)
        if error is None:
            raise
        raise error from None
    if response.status_code in _GATEWAY_DOWN:
        raise TrackingStoreError(
            f"the MLflow tracking server {where} answered {response.status_code} {response.reason} to "
            f"{without_password(response.url)}: a proxy or load balancer is there, but the MLflow server "
            "behind it is down or not yet started; start it, or check the proxy's target, then retry"
        )


def _as_int(text: str) -> int:
    """`text` as MLflow reads an integer setting (``int()``: ``+1`` and `` 1 `` too), or 0 if it cannot."""
    try:
        return int(text)
    except ValueError:
        return 0


#: The variables naming a certificate file the probe's request reads (MLflow's, then requests' own).
_CERTIFICATE_VARIABLES = (
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def _missing_certificate(exc: BaseException) -> ConfigError | None:
    """A `ConfigError` naming the variable whose certificate file requests found missing, else None.

    requests refuses such a path before sending ("invalid path: ..."), which read as the server's fault
    ("MLflow refused to send the request", exit 5) though the setting is the user's to correct.
    """
    for error in exception_chain(exc):
        if not isinstance(error, OSError):
            continue
        found = re.search(r"invalid path: (.+)$", str(error))
        if found is None:
            continue
        path = found.group(1).strip()
        for name in _CERTIFICATE_VARIABLES:
            if os.environ.get(name) == path:
                return ConfigError(
                    f"the environment variable {name}={path!r} names no such file ({error}): give the "
                    "path of an existing certificate file, or unset it"
                )
    return None


def _probe_failure(exc: BaseException, waited: str) -> str:
    """What `check_reachable`'s request met, from requests' error under MLflow's, and what to check."""
    import requests

    cause = next((e for e in exception_chain(exc) if isinstance(e, requests.RequestException)), None)
    if isinstance(cause, requests.exceptions.SSLError):
        return _tls_failure(cause)
    if isinstance(cause, requests.Timeout) or "timed out" in str(cause).lower():  # urllib3's, under requests'
        return (
            f"did not answer within {waited} (MLFLOW_HTTP_REQUEST_TIMEOUT sets the wait): start it, or "
            "check the address and the network, then retry"
        )
    if cause is None:  # MLflow refused before sending (a setting beyond its limits): its own words
        return f"was not asked: MLflow refused to send the request ({getattr(exc, 'message', exc)})"
    name = type(cause).__name__
    return f"cannot be reached ({name}): start it, or check the address and the network, then retry"


def _bad_setting(exc: ValueError) -> ConfigError | None:
    """A `ConfigError` naming the MLflow variable (and its value) its client could not read, else None.

    MLflow's own `ValueError` reached the CLI as a traceback instead of a config error (exit 2). The
    variable is the one MLflow's words name whole (mlflow/environment_variables.py: ``Failed to convert
    '<value>' for NAME: ...`` or ``NAME value must be ...``): a fixed list matched by substring blamed
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` for ``_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT``.
    """
    text = str(exc)
    for name, value in os.environ.items():
        if text.startswith((f"Failed to convert {value!r} for {name}: ", f"{name} value must be ")):
            return ConfigError(
                f"the environment variable {name}={value!r} is not a value MLflow accepts "
                f"({text}): correct it or unset it"
            )
    return None


#: OpenSSL's reasons for a TLS answer that is not TLS at all: the server speaks plain http.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


def _tls_failure(cause: BaseException) -> str:
    """What a TLS handshake met (OpenSSL's reason, from the `ssl.SSLError` under requests'), and what helps.

    Only a certificate that cannot be verified is helped by a CA file or by skipping the check; a server
    answering in plain http (``https://`` given to an ``http`` server) is helped by ``http://``.
    """
    import ssl

    inner = [e for e in exception_chain(cause) if isinstance(e, ssl.SSLError)]
    reason = str(inner[-1]) if inner else str(cause)
    reason = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", reason)
    codes = {getattr(e, "reason", None) for e in inner}
    if codes & set(_NOT_TLS) or "record layer" in reason.lower():
        return (
            f"could not open a TLS connection ({reason}): the server may speak plain http, not https; give "
            "the URI with http:// instead of https://, or check the port"
        )
    return (
        f"could not open a TLS connection ({reason}): for a certificate no trusted authority signed, give "
        "its CA certificate in MLFLOW_TRACKING_SERVER_CERT_PATH, or set MLFLOW_TRACKING_INSECURE_TLS=true to "
        "skip the check; for a client certificate it asks for, give it in MLFLOW_TRACKING_CLIENT_CERT_PATH; "
        "a certificate for another host name or expired is the server's to fix"
    )


def use_tracking(config: TrackingConfig | None = None, *, create: bool = True) -> str:
    """Point MLflow at the configured store for the rest of the session; return its URI.

    Also sets the registry URI. kamml's own calls do not use this but `tracking_scope`, which puts
    MLflow's URIs back when they return; this is for a user who wants MLflow's fluent API on kamml's
    store afterwards. With ``create=False`` (a read-only use: scoring), a SQLite store file that does not
    exist is refused first (`check_store_exists`) instead of MLflow creating an empty one on first contact.

    MLflow's setters also write ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` into the environment;
    left there, the first store kamml used would pass for the user's variable and win over every later
    config in the process (a notebook training with one config and scoring with another). They are
    restored to what they were, and MLflow keeps the URI in its own state.
    """
    global _last_set
    if create:
        check_store_folder(config)
        check_sqlite_is_a_store(config, read_only=False)
    else:
        check_store_exists(config)
    uri = tracking_uri(config)
    source = tracking_source(config)
    warn_overridden(config)
    check_reachable(uri, source)
    before = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    restore_variables(before)
    _last_set = (uri, source)
    return uri


def restore_variables(values: dict[str, str | None]) -> None:
    """Put environment variables back to `values` (None: unset), as saved before setting them."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def tracking_scope(config: TrackingConfig | None = None, *, create: bool = True) -> Iterator[str]:
    """MLflow pointed at the configured store inside the block (`use_tracking`), as it was after it.

    kamml's calls (training, scoring a ``models:/`` URI, experiment lookups) left MLflow's tracking and
    registry URIs on the config's store for the rest of the session, so a notebook's later
    ``mlflow.start_run()`` and ``log_*`` landed in kamml's store. On leaving, normally or by an
    exception, MLflow's URIs (unset included), the URI variables and what `store_in_force` names are put
    back. Scopes nest: an inner one restores the outer one's store. A store failure leaving the block
    (locked, full, not a store: `store_error`) becomes a `TrackingStoreError` naming this store, which
    the CLI could no longer name once MLflow's URIs are put back (it named MLflow's default store).
    """
    global _last_set
    saved = _mlflow_state()
    variables = {name: os.environ.get(name) for name in _URI_VARIABLES}
    last = _last_set
    _outer.append((saved[0], last))
    try:
        uri = use_tracking(config, create=create)
        with store_errors(config):
            yield uri
    finally:
        _outer.pop()
        mlflow.set_tracking_uri(saved[0])  # type: ignore[arg-type]  # None unsets, as MLflow's own scope does
        mlflow.set_registry_uri(saved[1])  # type: ignore[arg-type]
        restore_variables(variables)
        _last_set = last


def experiment_id(config: TrackingConfig | None = None) -> str:
    """The id of the configured experiment, created (with the configured artifact root) if missing.

    A deleted experiment (in MLflow's trash) is refused with how to restore it or use another name:
    MLflow would refuse the run only when it starts, and its name stays taken until the trash is emptied.
    """
    cfg = config or TrackingConfig()
    check_store_folder(cfg)  # the lock file's folder
    # the first contact of a training job with the store, where MLflow creates its tables: the store's
    # checks too, since a store another job is creating has its first tables but not yet MLflow's version
    with store_lock(cfg, "creating or opening the experiment"), tracking_scope(cfg):
        return _experiment_id(cfg)


def _experiment_id(cfg: TrackingConfig) -> str:
    """`experiment_id` once the store is in use (and locked)."""
    try:
        with store_errors(cfg):
            found = mlflow.get_experiment_by_name(cfg.experiment)
            if found is not None and found.lifecycle_stage == "deleted":
                # MLflow's command needs the store: alone it restores in its own default store
                uri = tracking_uri(cfg)
                raise ConfigError(
                    f"the MLflow experiment '{cfg.experiment}' (id {found.experiment_id}) at "
                    f"{describe_store(uri, tracking_source(cfg))} is deleted: restore it "
                    f"(MLFLOW_TRACKING_URI={shlex.quote(without_password(uri))} mlflow experiments restore "
                    "--experiment-id "
                    f"{found.experiment_id}) or set tracking.experiment to another name"
                )
            if found is not None:
                _warn_other_artifact_root(found.artifact_location, cfg)
                check_artifact_root(found.artifact_location, cfg)
                return str(found.experiment_id)
            root = new_artifact_root(cfg, warn=True)
            created = mlflow.create_experiment(cfg.experiment, artifact_location=root)
            experiment = mlflow.get_experiment(created)
    except MlflowException as exc:
        where = describe_store(tracking_uri(cfg), tracking_source(cfg))
        raise ConfigError(
            f"cannot use the MLflow experiment '{cfg.experiment}' at {where}: {exc.message}"
        ) from exc
    log.info("created MLflow experiment '%s' at %s", cfg.experiment, without_password(tracking_uri(cfg)))
    check_artifact_root(experiment.artifact_location, cfg)
    return str(created)


def new_artifact_root(cfg: TrackingConfig, *, warn: bool = False) -> str | None:
    """The artifact root kamml gives a new experiment: the config's folder, or None for the store's own.

    A tracking server (http, https, databricks) keeps a run's artifacts itself. Given the default
    ``./mlartifacts`` (or any relative folder), the experiment's root was a folder on the training
    machine, so the model a CRM or another machine loads through the server was not there. A local
    folder is kept with a server only when it is absolute (a shared mount); with `warn`, a relative one
    the config names is said to be set aside.
    """
    location = cfg.artifact_location
    if not location:
        return None
    root = _artifact_root(location)
    scheme = tracking_uri(cfg).split("://", 1)[0].lower()
    server = scheme in ("http", "https") or scheme.startswith("databricks")
    if not server or not root.startswith("file:"):
        return root
    if location.startswith("file:") or Path(location).expanduser().is_absolute():
        return root
    if warn and "artifact_location" in cfg.model_fields_set:
        log.warning(
            "tracking.artifact_location %s is a folder relative to this machine, and the MLflow store is a "
            "server: the new experiment '%s' keeps its artifacts in the server's own artifact store "
            "(give an absolute folder that every machine sees to keep them there)",
            location,
            cfg.experiment,
        )
    return None


def _warn_other_artifact_root(location: str | None, cfg: TrackingConfig) -> None:
    """Warn when the config names another artifact folder than the existing experiment's.

    MLflow keeps the location an experiment was created with, so tracking.artifact_location changed
    later (or the relative default read from another folder) was ignored without a word, while the run's
    logged config.yaml showed it (a tracking audit).
    """
    if not location or not cfg.artifact_location:
        return
    wanted = new_artifact_root(cfg)
    if wanted is None:  # a server's own store: the config asks for no folder, but a local one is a trap
        if location.startswith("file:"):
            log.warning(
                "the experiment '%s' keeps its artifacts at %s, a folder of the machine that created it, "
                "while the MLflow store is a server: other machines loading its models through the server "
                "do not find them; name a new experiment (tracking.experiment) to use the server's "
                "artifact store",
                cfg.experiment,
                location,
            )
        return
    if wanted.rstrip("/") != location.rstrip("/"):
        log.warning(
            "tracking.artifact_location is %s, but the experiment '%s' keeps its artifacts at %s (set when "
            "it was created; MLflow uses that): name a new experiment (tracking.experiment) to use %s",
            cfg.artifact_location,
            cfg.experiment,
            location,
            wanted,
        )


def check_artifact_root(location: str | None, config: TrackingConfig) -> None:
    """A local artifact folder the job cannot write is a `ConfigError` before any training.

    The first artifact is written once the models are fitted, so a root under a file or without write
    permission failed a training job only then (exit 3, naming no setting). Remote roots (s3, gs,
    mlflow-artifacts, ...) are left to MLflow.
    """
    if not location:
        return
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return
    folder = Path(unquote(parsed.path) if parsed.scheme == "file" else location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        setting = (
            "tracking.artifact_location"
            if config.artifact_location
            else f"the artifact location of the experiment '{config.experiment}' (set when it was created)"
        )
        raise ConfigError(
            f"cannot write the MLflow artifacts to {folder} ({exc.strerror or exc}): {setting} must be a "
            "folder this job can write"
        ) from None
