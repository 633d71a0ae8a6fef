from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamml.config import TrackingConfig
from kamml.tracking import tracking_uri


def test_environment_overrides_the_configured_store(monkeypatch):
    cfg = TrackingConfig(uri="sqlite:///here.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(cfg) == "sqlite:///here.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri(cfg) == "http://mlflow.example:5000"


def test_embedded_default_is_sqlite_in_the_working_folder(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == "sqlite:///mlruns.db"


def test_a_later_config_wins_and_the_environment_stays_the_users(monkeypatch, tmp_path, mlflow_state):
    """MLflow's setters write MLFLOW_TRACKING_URI; left there, the first store used won for good."""
    import mlflow

    from kamml.tracking import use_tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    assert use_tracking(TrackingConfig(uri=first)) == first
    assert use_tracking(TrackingConfig(uri=second)) == second
    assert mlflow.get_tracking_uri() == second
    assert mlflow.get_registry_uri() == second
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", first)  # the user's variable still wins
    assert use_tracking(TrackingConfig(uri=second)) == first
    assert os.environ["MLFLOW_TRACKING_URI"] == first


# --- a store that cannot be used: missing, locked, not a store -------------------------------------------


def _no_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


def test_scoring_refuses_a_sqlite_store_that_does_not_exist_and_creates_nothing(monkeypatch, tmp_path):
    """MLflow created an empty store (and its folder) wherever the URI pointed, then said 'not found'."""
    from kamml.errors import ModelError, TrackingStoreError
    from kamml.tracking import resolve_model

    _no_env(monkeypatch)
    missing = tmp_path / "no" / "such" / "x.db"
    with pytest.raises(TrackingStoreError) as info:
        resolve_model("models:/kamml@champion", TrackingConfig(uri=f"sqlite:///{missing}"))
    assert isinstance(info.value, ModelError)
    assert info.value.exit_code == 5
    assert f"no MLflow tracking store at {missing}" in str(info.value)
    assert "the config's tracking.uri" in str(info.value)
    assert not (tmp_path / "no").exists()


def test_a_relative_sqlite_store_names_the_working_directory(monkeypatch, tmp_path):
    from kamml.errors import TrackingStoreError
    from kamml.tracking import resolve_model

    _no_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrackingStoreError) as info:
        resolve_model("runs:/abc/model", TrackingConfig(uri="sqlite:///mlruns.db"))
    message = str(info.value)
    assert str(tmp_path / "mlruns.db") in message
    assert f"a relative sqlite path is relative to the working directory ({tmp_path})" in message
    assert list(tmp_path.iterdir()) == []


def test_the_environment_store_is_named_as_replacing_the_config(monkeypatch, tmp_path):
    from kamml.errors import TrackingStoreError
    from kamml.tracking import resolve_model

    _no_env(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    with pytest.raises(TrackingStoreError) as info:
        resolve_model("models:/kamml@champion", TrackingConfig(uri="sqlite:///configured.db"))
    assert (
        "from the MLFLOW_TRACKING_URI environment variable, which replaces the config's tracking.uri "
        "sqlite:///configured.db" in str(info.value)
    )


def test_the_variable_replacing_kammls_default_store_is_not_said_to_replace_a_config(monkeypatch, tmp_path):
    """With MLFLOW_TRACKING_URI exported and no config (or one without tracking.uri), the store was said to
    replace "the config's tracking.uri sqlite:///mlruns.db", a config no one gave (a tracking audit)."""
    from kamml.tracking.store import tracking_source

    _no_env(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    said = "the MLFLOW_TRACKING_URI environment variable, which replaces kamml's default tracking.uri "
    assert tracking_source(None) == said + "sqlite:///mlruns.db"
    assert tracking_source(TrackingConfig(experiment="e")) == said + "sqlite:///mlruns.db"
    assert tracking_source(TrackingConfig(uri="sqlite:///mlruns.db")) == (
        "the MLFLOW_TRACKING_URI environment variable, which replaces the config's tracking.uri "
        "sqlite:///mlruns.db"
    )


def test_a_store_that_is_not_a_database_is_a_named_error(monkeypatch, tmp_path, mlflow_state):
    """sqlalchemy's DatabaseError ('file is not a database') came out as a traceback."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking import experiment_id, resolve_model

    _no_env(monkeypatch)
    store = tmp_path / "corrupt.db"
    store.write_text("garbage\n")
    cfg = TrackingConfig(uri=f"sqlite:///{store}")
    for attempt in (lambda: resolve_model("models:/kamml@champion", cfg), lambda: experiment_id(cfg)):
        with pytest.raises(TrackingStoreError) as info:
            attempt()
        assert f"the MLflow tracking store sqlite:///{store} (from the config's tracking.uri)" in str(
            info.value
        )
        assert "is not an MLflow store" in str(info.value)
    assert store.read_text() == "garbage\n"


def test_a_locked_store_says_retry_when_the_other_process_ends(monkeypatch, tmp_path, mlflow_state):
    """Another process holding BEGIN EXCLUSIVE (a training job, the MLflow UI): OperationalError before."""
    import sqlite3

    from kamml.errors import TrackingStoreError
    from kamml.tracking import resolve_model

    _no_env(monkeypatch)
    store = tmp_path / "busy.db"
    holder = sqlite3.connect(store, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        uri = f"sqlite:///{store}?timeout=0.1"  # SQLite's busy wait, shortened for the test
        with pytest.raises(TrackingStoreError) as info:
            resolve_model("models:/kamml@champion", TrackingConfig(uri=uri))
    finally:
        holder.close()
    assert f"the MLflow tracking store {uri} (from the config's tracking.uri)" in str(info.value)
    assert "is locked by another process" in str(info.value)
    assert "retry when it ends" in str(info.value)


def test_store_error_sees_a_lock_inside_mlflows_own_exception():
    """Inside a session MLflow wraps SQLAlchemy's error in an MlflowException (a training run logging)."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    from kamml.tracking.store import store_error

    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise MlflowException("(sqlite3.OperationalError) database is locked") from inner
    except MlflowException as exc:
        error = store_error(exc, "sqlite:///x.db", "the config's tracking.uri")
    assert error is not None
    assert "sqlite:///x.db (from the config's tracking.uri" in str(error)
    assert store_error(ValueError("database is locked")) is None  # not from the store: not ours
    assert store_error(MlflowException("Registered Model with name=kamml not found")) is None


@pytest.mark.parametrize(
    "message", ["disk I/O error", "database or disk is full", "attempt to write a readonly database"]
)
def test_a_store_that_cannot_be_written_is_named_with_what_to_do(message):
    """A full disk gave a raw SQLAlchemy traceback and exit 1 (an audit, with a file-size limit)."""
    import sqlite3

    import sqlalchemy.exc

    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import store_error

    try:
        try:
            raise sqlite3.OperationalError(message)
        except sqlite3.OperationalError as inner:
            raise sqlalchemy.exc.OperationalError("INSERT INTO experiments", {}, inner) from inner
    except sqlalchemy.exc.OperationalError as exc:
        error = store_error(exc, "sqlite:///x.db", "the config's tracking.uri")
    assert isinstance(error, TrackingStoreError)
    assert f"could not be written ({message.lower()}" in str(error)
    assert "sqlite:///x.db (from the config's tracking.uri" in str(error)


def test_sqlite_file_of_a_uri():
    from pathlib import Path

    from kamml.tracking.store import sqlite_file

    assert sqlite_file("sqlite:///mlruns.db") == Path("mlruns.db")
    assert sqlite_file("sqlite:////abs/x.db?timeout=3") == Path("/abs/x.db")
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("http://mlflow:5000") is None


def test_registering_into_a_locked_store_is_a_store_error_not_a_config_error(monkeypatch):
    """registry.register turned every MLflow error into a ConfigError (exit 2) with SQLAlchemy's text."""
    import sqlite3

    import mlflow
    from mlflow.exceptions import MlflowException

    from kamml.errors import TrackingStoreError
    from kamml.tracking import registry

    def locked(*args, **kwargs):
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise MlflowException("(sqlite3.OperationalError) database is locked") from inner

    monkeypatch.setattr(mlflow, "register_model", locked)
    with pytest.raises(TrackingStoreError, match="is locked by another process"):
        registry.register("runs:/abc/model", "kamml")


def test_the_source_of_a_default_uri_is_kammls_default(monkeypatch):
    from kamml.tracking.store import tracking_source

    _no_env(monkeypatch)
    assert tracking_source(TrackingConfig()).startswith("kamml's default tracking.uri")
    assert tracking_source(None).startswith("kamml's default tracking.uri")
    assert tracking_source(TrackingConfig(uri="sqlite:///x.db")) == "the config's tracking.uri"


def test_a_tracking_server_that_does_not_answer_is_named_at_once(monkeypatch):
    """MLflow retried for about four minutes, then kamml train called it a config error (exit 2)."""
    for name in _HTTP_SETTINGS:  # kamml's own one try, not the user's settings
        monkeypatch.delenv(name, raising=False)
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TrackingStoreError, match=rf"http://127.0.0.1:{port} .*cannot be reached"):
        check_reachable(f"http://127.0.0.1:{port}", "the config's tracking.uri")

    # a server that hangs up without answering: named after one try, not retried as MLflow would
    tries = []
    with socket.socket() as hangs_up:
        hangs_up.bind(("127.0.0.1", 0))
        hangs_up.listen()

        def accept() -> None:
            while True:
                try:
                    conn, _ = hangs_up.accept()
                except OSError:  # closed: the test is over
                    return
                tries.append(1)
                conn.close()

        threading.Thread(target=accept, daemon=True).start()
        with pytest.raises(TrackingStoreError, match="cannot be reached"):
            check_reachable(f"http://127.0.0.1:{hangs_up.getsockname()[1]}")
    assert len(tries) == 1

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # any answer means the server is there
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_reachable(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
    check_reachable("sqlite:///nowhere/at/all.db")  # not a server: not probed


_HTTP_SETTINGS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT",
    "_MLFLOW_HTTP_REQUEST_MAX_BACKOFF_FACTOR_LIMIT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@contextlib.contextmanager
def _answering(status: int, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP(S) server answering every GET with `status`: its base URI and the paths asked."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    asked: list[str] = []

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (no CA knows it), and the key: (cert, key) files."""
    pytest.importorskip("cryptography")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxy_whose_tracking_server_is_down_is_named_at_once(monkeypatch, status):
    """A reverse proxy answered 502/503/504 for the server behind it: the probe took that for a server,
    and MLflow then retried each request for about four minutes before failing."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with (
        _answering(status) as (uri, asked),
        pytest.raises(TrackingStoreError, match=rf"{uri} .*answered {status}.*the MLflow server behind it"),
    ):
        check_reachable(uri, "the config's tracking.uri")
    assert asked == ["/health"]  # one request, not MLflow's retries


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # asked for
def test_the_probe_uses_mlflows_tls_settings(monkeypatch, tmp_path):
    """A server with its own certificate, which MLflow reaches through MLFLOW_TRACKING_INSECURE_TLS or
    MLFLOW_TRACKING_SERVER_CERT_PATH, was refused by the probe as 'cannot be reached (SSLError)'."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    cert, key = _self_signed(tmp_path)
    with _answering(200, (cert, key)) as (uri, asked):
        with pytest.raises(TrackingStoreError, match=r"TLS.*MLFLOW_TRACKING_SERVER_CERT_PATH"):
            check_reachable(uri)  # a certificate no CA signed, and nothing said to trust it
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        check_reachable(uri)
        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
        check_reachable(uri)
    assert asked == ["/health", "/health"]


def test_the_probe_keeps_the_retries_the_user_set(monkeypatch):
    """kamml's probe tries once, unless MLFLOW_HTTP_REQUEST_MAX_RETRIES says more: a user's setting stands."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    with _answering(503) as (uri, asked), pytest.raises(TrackingStoreError, match="answered 503"):
        check_reachable(uri)
    assert asked == ["/health"] * 3


def test_an_artifact_folder_that_cannot_be_written_is_named_before_training(tmp_path):
    """It failed once the models were fitted, with exit 3 and no setting named."""
    from kamml.errors import ConfigError
    from kamml.tracking.store import experiment_id

    (tmp_path / "a_file").write_text("x")
    cfg = TrackingConfig(
        uri=f"sqlite:///{tmp_path / 'mlruns.db'}",
        experiment="e",
        artifact_location=str(tmp_path / "a_file" / "arts"),
    )
    with pytest.raises(ConfigError, match=r"a_file/arts .*tracking\.artifact_location must be a folder"):
        experiment_id(cfg)
    fine = cfg.model_copy(update={"experiment": "f", "artifact_location": str(tmp_path / "arts")})
    assert experiment_id(fine)
    assert (tmp_path / "arts").is_dir()


def test_a_sqlite_store_that_cannot_be_opened_is_named():
    """ "unable to open database file" (a read-only folder) went out as a raw OperationalError, exit 1."""
    import sqlite3

    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import store_error

    error = store_error(
        sqlite3.OperationalError("unable to open database file"), "sqlite:////ro/m.db", "config"
    )
    assert isinstance(error, TrackingStoreError)
    assert "sqlite:////ro/m.db" in str(error)
    assert "cannot be opened or created" in str(error)


def test_a_sqlite_store_under_a_file_is_named_before_mlflow_touches_it(tmp_path, monkeypatch):
    """MLflow's own mkdir failed with the bare "Not a directory: ..." (exit 3), naming no store or key."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking import experiment_id

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "afile").write_text("x")
    uri = f"sqlite:///{tmp_path}/afile/sub/mlflow.db"
    with pytest.raises(
        TrackingStoreError, match=r"cannot create the folder .*afile/sub of the MLflow"
    ) as info:
        experiment_id(TrackingConfig(uri=uri))
    assert uri in str(info.value)
    assert "the config's tracking.uri" in str(info.value)


def test_a_sqlite_database_that_is_not_a_store_is_left_untouched(tmp_path, monkeypatch):
    """MLflow added its 66 tables to any SQLite file it opened, even for kamml score (a CRM's database)."""
    import sqlite3

    from kamml.errors import TrackingStoreError
    from kamml.tracking import experiment_id, use_tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # the default artifact_location ./mlartifacts is made here, not in the repo
    foreign = tmp_path / "crm.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE accounts (id INTEGER)")
    before = foreign.read_bytes()
    config = TrackingConfig(uri=f"sqlite:///{foreign}")
    for attempt in (lambda: use_tracking(config, create=False), lambda: experiment_id(config)):
        with pytest.raises(TrackingStoreError, match=r"a SQLite database of other tables \(accounts\)"):
            attempt()
    assert foreign.read_bytes() == before
    empty = tmp_path / "zero.db"
    empty.touch()
    with pytest.raises(TrackingStoreError, match="is an empty SQLite file, not an MLflow store"):
        use_tracking(TrackingConfig(uri=f"sqlite:///{empty}"), create=False)
    assert empty.stat().st_size == 0
    assert experiment_id(TrackingConfig(uri=f"sqlite:///{empty}"))  # training makes it a store


def test_the_store_lock_makes_a_second_job_wait_and_names_the_lock_when_it_waits_too_long(
    tmp_path, monkeypatch
):
    import fcntl

    from kamml.config import TrackingConfig
    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import store_lock, store_lock_file

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    path = store_lock_file(cfg.uri)
    assert path == tmp_path / "mlruns.db.kamml-lock"
    with path.open("a+") as other:  # another job holds it
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        held = r"held the lock .*mlruns\.db\.kamml-lock .* start registering"
        with pytest.raises(TrackingStoreError, match=held), store_lock(cfg, "registering", timeout=0.5):
            pass
    # released: taken at once, and held against others
    with (
        store_lock(cfg, "registering", timeout=0.5),
        path.open("a+") as probe,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert store_lock_file("http://mlflow:5000") is None


@pytest.mark.slow
def test_two_jobs_creating_a_new_store_at_once_both_get_the_experiment(tmp_path):
    """Both had MLflow create the tables; one crashed ("table ... already exists", "duplicate column")."""
    import subprocess
    import sys
    import time

    start = time.time() + 8  # both processes imported and waiting, then they go together
    script = (
        "import sys, time\n"
        "from kamml.config import TrackingConfig\n"
        "from kamml.tracking.store import experiment_id\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(experiment_id(TrackingConfig(uri=sys.argv[1], experiment='race')))\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", script, uri, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    results = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-2000:] for _, err in results]
    assert len({out.split()[-1] for out, _ in results}) == 1  # one experiment


def test_a_store_another_job_is_creating_is_checked_only_once_it_is_done(tmp_path, monkeypatch):
    """A job starting while another created the tables saw `experiments` without MLflow's version table
    and called the file "a SQLite database of other tables"."""
    import fcntl
    import sqlite3
    import threading
    import time

    from kamml.config import TrackingConfig
    from kamml.tracking.store import experiment_id, store_lock_file

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlruns.db"
    cfg = TrackingConfig(uri=f"sqlite:///{db}", experiment="late", artifact_location=str(tmp_path / "art"))
    outcome: list[object] = []

    def second_job() -> None:
        try:
            outcome.append(experiment_id(cfg))
        except Exception as exc:
            outcome.append(exc)

    with store_lock_file(cfg.uri).open("a+") as first:  # the first job, half way through its tables
        fcntl.flock(first.fileno(), fcntl.LOCK_EX)
        with sqlite3.connect(db) as half:
            half.execute("create table experiments (experiment_id integer)")
        job = threading.Thread(target=second_job)
        job.start()
        time.sleep(0.6)
        assert outcome == []  # waiting, not judging the half-made store
        db.unlink()  # (the first job's work, done over: a store MLflow makes whole)
    job.join(timeout=120)
    assert len(outcome) == 1
    assert isinstance(outcome[0], str), outcome


def test_an_artifact_location_the_existing_experiment_does_not_use_is_warned(tmp_path, caplog):
    """MLflow keeps an experiment's first artifact location: a changed tracking.artifact_location was
    ignored without a word, while the run's config.yaml showed it (a tracking audit)."""
    from kamml.tracking.store import experiment_id

    cfg = TrackingConfig(
        uri=f"sqlite:///{tmp_path / 'mlruns.db'}", experiment="e", artifact_location=str(tmp_path / "first")
    )
    with caplog.at_level("WARNING", logger="kamml.tracking.store"):
        experiment_id(cfg)
        experiment_id(cfg)  # the same location: nothing to say
        assert "keeps its artifacts" not in caplog.text
        experiment_id(cfg.model_copy(update={"artifact_location": str(tmp_path / "second")}))
    assert f"tracking.artifact_location is {tmp_path / 'second'}, but the experiment 'e' keeps its " in (
        caplog.text
    )
    assert (tmp_path / "first").as_uri() in caplog.text


def test_an_artifact_uri_without_slashes_after_its_scheme_is_a_uri_not_a_folder(monkeypatch, tmp_path):
    """A run's logged tracking.artifact_location is a server's ``mlflow-artifacts:/1``: given back in a
    config it was taken for a relative folder (``./mlflow-artifacts:/1`` of the working directory)."""
    from kamml.tracking.store import new_artifact_root

    _no_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    for uri in ("http://mlflow.example:5000", f"sqlite:///{tmp_path / 'mlruns.db'}"):
        config = TrackingConfig(uri=uri, artifact_location="mlflow-artifacts:/1")
        assert new_artifact_root(config) == "mlflow-artifacts:/1"
    for folder in ("C:/arts", "arts:v2"):  # a Windows drive, a colon in a folder's name
        assert new_artifact_root(TrackingConfig(artifact_location=folder)) == (tmp_path / folder).as_uri()


def test_an_exported_sqlite_uri_under_the_home_folder_is_the_home_folders_store(monkeypatch, tmp_path):
    """``MLFLOW_TRACKING_URI=sqlite:///~/x.db`` (quoted, so the shell left ``~``) made MLflow create
    ``./~/x.db`` in the working folder, while kamml's lock and checks guarded the home folder's file."""
    from kamml.tracking import experiment_id

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///~/x.db")
    assert tracking_uri(TrackingConfig()) == f"sqlite:///{home / 'x.db'}"
    experiment_id(TrackingConfig(artifact_location=str(tmp_path / "art")))
    assert (home / "x.db").is_file()
    assert not (work / "~").exists()


def test_a_tracking_server_keeps_the_artifacts_unless_the_config_names_an_absolute_folder(
    monkeypatch, tmp_path, caplog
):
    """With a server, kamml created the experiment with ``./mlartifacts`` of the training machine as its
    artifact root: the model a CRM loaded through the server from another machine was not there
    (checked by hand against ``mlflow server``: "No such artifact"). The server's own store is used."""
    import logging

    from kamml.tracking.store import new_artifact_root

    _no_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    server = "http://mlflow.example:5000"
    assert new_artifact_root(TrackingConfig(uri=server)) is None  # kamml's default ./mlartifacts
    with caplog.at_level(logging.WARNING, logger="kamml"):
        assert new_artifact_root(TrackingConfig(uri=server, artifact_location="art"), warn=True) is None
    assert "tracking.artifact_location art is a folder relative to this machine" in caplog.text
    shared = tmp_path / "shared"
    assert new_artifact_root(TrackingConfig(uri=server, artifact_location=str(shared))) == shared.as_uri()
    assert new_artifact_root(TrackingConfig(uri="databricks")) is None
    assert new_artifact_root(TrackingConfig(uri=server, artifact_location="s3://b/x")) == "s3://b/x"
    # a local store keeps kamml's default folder; a config whose store the variable turns into a server not
    assert new_artifact_root(TrackingConfig()) == (tmp_path / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    assert new_artifact_root(TrackingConfig(uri="sqlite:///mlruns.db")) is None


def test_a_percent_encoded_sqlite_path_is_the_file_sqlalchemy_opens(monkeypatch, tmp_path, mlflow_state):
    """``sqlite:////data/my%20store/mlruns.db`` is ``/data/my store/mlruns.db`` to SQLAlchemy, which
    decodes the path; kamml's checks and lock took it as written: `kamml score` refused the store as
    missing, and training made a ``my%20store`` folder for its lock while MLflow opened the other one."""
    from urllib.parse import quote

    from kamml.tracking import experiment_id, use_tracking
    from kamml.tracking.store import check_store_exists, sqlite_file, store_lock_file

    _no_env(monkeypatch)
    folder = tmp_path / "my store #1"
    encoded = f"sqlite:///{quote(str(folder / 'mlruns.db'))}"
    assert "%20" in encoded
    assert sqlite_file(encoded) == folder / "mlruns.db"
    config = TrackingConfig(uri=encoded, artifact_location=str(tmp_path / "art"))
    assert experiment_id(config)
    assert (folder / "mlruns.db").is_file()
    assert store_lock_file(encoded) == folder / "mlruns.db.kamml-lock"
    # MLflow itself makes the folder as written (empty), but kamml's lock is beside the store
    assert not list(tmp_path.glob("my%20*/*"))
    check_store_exists(config)  # the store is there: scoring finds it
    assert use_tracking(config, create=False) == encoded


def test_a_tracking_server_that_stops_answering_mid_run_is_a_store_error():
    """A server going down while a job logs: MLflow's "API request ... failed" is a store error naming it.

    It was a raw traceback (exit 1) once MLflow's retries ran out, naming neither the setting nor what to do.
    """
    import requests
    from mlflow.exceptions import MlflowException

    from kamml.tracking.store import store_error

    uri = "http://127.0.0.1:5999"
    refused = (
        "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: "
        "/api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError(...: [Errno 111] Connection refused))"
    )
    try:
        try:
            raise requests.exceptions.ConnectionError(refused)
        except requests.exceptions.ConnectionError as inner:  # MLflow raises during the handling
            raise MlflowException(  # noqa: B904  (as MLflow raises it: during the handling)
                f"API request to {uri}/api/2.0/mlflow/runs/log-batch failed with exception {inner}"
            )
    except MlflowException as exc:
        error = store_error(exc, uri, "the config's tracking.uri")
    assert error is not None
    assert f"the MLflow tracking server {uri} (from the config's tracking.uri)" in str(error)
    assert "stopped answering" in str(error)
    # a server's answer (a 404, a refused parameter) is not the server being gone
    assert store_error(MlflowException("RESOURCE_DOES_NOT_EXIST: Run 'x' not found"), uri, "x") is None


def test_https_to_a_plain_http_server_says_to_use_http(monkeypatch, tmp_path):
    """Every TLS failure got the advice for a certificate no CA signed (trust its CA, or skip the check),
    which cannot help a server that speaks plain http; the TLS reason itself was not shown."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with _answering(200) as (uri, _):
        https = uri.replace("http://", "https://")
        # OpenSSL's reason varies (WRONG_VERSION_NUMBER, RECORD_LAYER_FAILURE, PACKET_LENGTH_TOO_LONG)
        with pytest.raises(
            TrackingStoreError, match=r"could not open a TLS connection .*plain http.*http://"
        ) as caught:
            check_reachable(https)
        assert "MLFLOW_TRACKING_INSECURE_TLS" not in str(caught.value)
    cert, key = _self_signed(tmp_path)
    with (
        _answering(200, (cert, key)) as (uri, _),
        pytest.raises(TrackingStoreError, match=r"verify failed.*MLFLOW_TRACKING_SERVER_CERT_PATH"),
    ):
        check_reachable(uri)


def test_mlflows_own_refusal_of_its_settings_is_shown(monkeypatch):
    """MLflow refusing MLFLOW_HTTP_REQUEST_MAX_RETRIES above its maximum read 'cannot be reached
    (MlflowException): start it', and a setting MLflow cannot read at all was a ValueError's traceback."""
    from kamml.errors import ConfigError, TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with _answering(200) as (uri, asked):
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "50")
        with pytest.raises(TrackingStoreError, match=r"max_retries value \(50\).*maximum") as caught:
            check_reachable(uri)
        assert "start it" not in str(caught.value)
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        for name, value in (
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "abc"),
            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "x"),
            ("MLFLOW_TRACKING_INSECURE_TLS", "yes"),
            # set but empty: MLflow reads it (and fails on its next request), so the probe must too
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", ""),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", ""),
        ):
            monkeypatch.setenv(name, value)
            with pytest.raises(ConfigError, match=rf"{name}='{value}'"):
                check_reachable(uri)
            monkeypatch.delenv(name)
    assert asked == []


def test_a_bad_setting_is_named_by_mlflows_words_not_a_substring(monkeypatch):
    """_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT contains MLFLOW_HTTP_REQUEST_MAX_RETRIES: the error blamed the
    latter when both were set, and was a ValueError's traceback when only the limit was."""
    from kamml.errors import ConfigError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT", "abc")
    with _answering(200) as (uri, asked):
        with pytest.raises(ConfigError, match=r"variable _MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT='abc'"):
            check_reachable(uri)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        with pytest.raises(ConfigError, match=r"variable _MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT='abc'"):
            check_reachable(uri)
    assert asked == []


def test_a_missing_certificate_file_is_a_config_error(monkeypatch, tmp_path):
    """A MLFLOW_TRACKING_SERVER_CERT_PATH naming no file read 'was not asked: MLflow refused to send the
    request (... invalid path: ...)', exit 5, as if the server were at fault."""
    from kamml.errors import ConfigError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    gone = tmp_path / "gone.pem"
    with _answering(200) as (uri, asked):
        for name in (
            "MLFLOW_TRACKING_SERVER_CERT_PATH",
            "MLFLOW_TRACKING_CLIENT_CERT_PATH",
            "REQUESTS_CA_BUNDLE",
        ):
            monkeypatch.setenv(name, str(gone))
            with pytest.raises(ConfigError, match=rf"{name}='{re.escape(str(gone))}'.*no such file"):
                check_reachable(uri.replace("http://", "https://"))
            monkeypatch.delenv(name)
    assert asked == []


def test_a_timeout_with_the_users_retries_names_the_tries(monkeypatch):
    """'did not answer within 1 s' understated the wait of MLFLOW_HTTP_REQUEST_MAX_RETRIES' tries."""
    import socket

    from kamml.errors import TrackingStoreError
    from kamml.tracking.store import check_reachable

    for name in _HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    # both as MLflow reads them: int(" 1 ") is 1, int("+1") is 1
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", " 1 ")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "+1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    with socket.socket() as silent:  # accepts (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(TrackingStoreError, match=r"within 1 s per try \(2 tries"):
            check_reachable(uri)
