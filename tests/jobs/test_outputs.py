"""The output folder as one set: a lock, staged files moved together, the manifest written last."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys

import pytest

from kamml.errors import DataError
from kamml.jobs.outputs import LOCK_NAME, MANIFEST, OutputSet, read_manifest


def _write_set(folder, text: str) -> dict:
    with OutputSet(folder) as outputs:
        outputs.stage("allocation.csv").write_text(f"plan {text}\n")
        outputs.stage("report.html").write_text(f"report {text}\n")
        parts = outputs.stage("scores.parquet")
        parts.mkdir()
        (parts / "part-0.parquet").write_text(f"scores {text}")
        (parts / ".part-0.parquet.crc").write_text("crc")  # as Hadoop writes beside each part
        (parts / "_SUCCESS").write_text("")
        return outputs.publish({"run_id": text, "hours": 10.0})


@contextlib.contextmanager
def _held(folder):
    """Another job holding the folder's lock (a process inside `OutputSet`) for the block; its Popen."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from kamml.jobs.outputs import OutputSet\n"
            f"with OutputSet({str(folder)!r}):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_publish_moves_every_file_and_writes_the_manifest_last(tmp_path):
    published = _write_set(tmp_path, "one")
    assert set(published) == {"allocation.csv", "report.html", "scores.parquet"}
    assert (tmp_path / "allocation.csv").read_text() == "plan one\n"
    manifest = read_manifest(tmp_path)
    assert manifest["run_id"] == "one"
    assert manifest["hours"] == 10.0
    digest = hashlib.sha256(b"plan one\n").hexdigest()
    assert manifest["files"]["allocation.csv"] == {"bytes": 9, "sha256": digest}
    assert manifest["files"]["scores.parquet"] == {"bytes": len("scores one") + 3, "files": 1}  # parts only
    # a second set replaces the first whole, folders included, and leaves no staging behind
    _write_set(tmp_path, "two")
    assert (tmp_path / "scores.parquet" / "part-0.parquet").read_text() == "scores two"
    assert read_manifest(tmp_path)["run_id"] == "two"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_job_that_fails_before_publishing_leaves_the_last_set_untouched(tmp_path):
    _write_set(tmp_path, "one")

    def half_written() -> None:
        with OutputSet(tmp_path) as outputs:
            outputs.stage("allocation.csv").write_text("half a plan")
            raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        half_written()
    assert (tmp_path / "allocation.csv").read_text() == "plan one\n"
    assert read_manifest(tmp_path)["run_id"] == "one"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_job_that_fails_before_publishing_removes_the_folders_it_created(tmp_path):
    """`kamml run --data /nowhere` (refused, exit 3) left outputs/demo/.kamml.lock behind."""
    folder = tmp_path / "outputs" / "demo"
    with pytest.raises(RuntimeError), OutputSet(folder):
        raise RuntimeError("the data were refused")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "notes.txt").write_text("the user's own")
    with pytest.raises(RuntimeError), OutputSet(folder):
        raise RuntimeError("the data were refused")
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["notes.txt"]  # only what it created goes
    _write_set(folder, "one")  # a published set keeps its folder and lock file, as before
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_second_job_on_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    with (
        _held(tmp_path) as holder,
        pytest.raises(DataError, match=rf"another kamml job \(pid {holder.pid}, since"),
    ):
        OutputSet(tmp_path).__enter__()
    with OutputSet(tmp_path):  # free again once the first job is gone, even killed
        pass


def test_leftovers_of_a_killed_job_are_removed_by_the_next(tmp_path):
    staging = tmp_path / ".kamml-staging-abc123"
    staging.mkdir()
    (staging / "allocation.csv").write_text("half")
    (tmp_path / ".budget_curve.png.ywvhkckb.tmp").write_text("half")
    (tmp_path / "notes.txt").write_text("the user's own file")
    _write_set(tmp_path, "one")
    assert not staging.exists()
    assert not (tmp_path / ".budget_curve.png.ywvhkckb.tmp").exists()
    assert (tmp_path / "notes.txt").read_text() == "the user's own file"


def test_no_manifest_while_publishing(tmp_path, monkeypatch):
    """A reader that finds no manifest knows the set is being replaced."""
    _write_set(tmp_path, "one")
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((tmp_path / MANIFEST).exists())
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    _write_set(tmp_path, "two")
    assert seen[0] is False  # removed before the first file moved
    assert json.loads((tmp_path / MANIFEST).read_text())["run_id"] == "two"


def test_sigterm_ends_the_job_with_its_staging_removed(tmp_path):
    """A scheduler's SIGTERM is an exit (code 143) under the console script: clean-up code runs."""
    import signal

    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "from kamml.cli import _terminated\n"
            "from kamml.jobs.outputs import OutputSet\n"
            "signal.signal(signal.SIGTERM, _terminated)\n"
            f"with OutputSet({str(tmp_path)!r}) as outputs:\n"
            "    outputs.stage('allocation.csv').write_text('half a plan')\n"
            "    print('writing', flush=True)\n"
            "    time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert job.stdout.readline().strip() == "writing"
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=20) == 143
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]


def test_a_sigterm_whose_exit_python_dropped_stops_the_job_before_it_publishes(tmp_path):
    """The handler's SystemExit raised in a garbage collector's callback is dropped ("Exception ignored
    in ..."): an audit's job then trained, registered, published and exited 0."""
    job = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, time\n"
            "from kamml.cli import _terminated\n"
            "from kamml.jobs.outputs import OutputSet\n"
            "signal.signal(signal.SIGTERM, _terminated)\n"
            "class Collected:\n"
            "    def __del__(self):  # the signal arrives while a finalizer runs\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        time.sleep(1)\n"
            f"with OutputSet({str(tmp_path)!r}) as outputs:\n"
            "    outputs.stage('allocation.csv').write_text('a whole plan')\n"
            "    Collected()\n"
            "    print('went on', flush=True)\n"
            "    outputs.publish({'run_id': 'late'})\n"
            "    print('published', flush=True)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Exception ignored" in job.stderr  # Python dropped the handler's exit ...
    assert job.stdout.splitlines() == ["went on"]  # ... and the job went on, to its next safe point
    assert job.returncode == 143
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]  # nothing published


def test_other_temporary_files_in_the_folder_are_not_touched(tmp_path):
    """Only kamml run's own leftovers go: a running `kamml score --out` there, or a user's file, stay."""
    (tmp_path / ".adhoc.parquet.k3j2.tmp").write_text("another command's temporary file")
    (tmp_path / ".editor-notes.tmp").write_text("the user's")
    (tmp_path / ".report.html.ab12cd.tmp").write_text("left by a killed run")
    _write_set(tmp_path, "one")
    assert (tmp_path / ".adhoc.parquet.k3j2.tmp").exists()
    assert (tmp_path / ".editor-notes.tmp").exists()
    assert not (tmp_path / ".report.html.ab12cd.tmp").exists()


def test_a_file_system_without_locks_goes_on_without_one_and_cleans_nothing(tmp_path, monkeypatch, caplog):
    """NFS without a lock daemon: every run was refused, telling the user to wait for a finished job."""
    import errno
    import fcntl
    import logging

    staging = tmp_path / ".kamml-staging-other"
    staging.mkdir()  # may be a running job's, since nothing is locked

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.outputs"):
        _write_set(tmp_path, "one")
    assert "going on without one" in caplog.text
    assert staging.exists()
    assert read_manifest(tmp_path)["run_id"] == "one"


def test_the_lock_file_names_no_holder_once_released(tmp_path):
    _write_set(tmp_path, "one")
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_a_command_writing_a_file_of_a_runs_set_withdraws_its_manifest(tmp_path, caplog):
    """`kamml allocate --out` into a run's folder left the old manifest vouching for a new plan."""
    from kamml.jobs.outputs import claim_outputs

    _write_set(tmp_path, "one")
    other = tmp_path / "elsewhere"
    other.mkdir()
    with claim_outputs([tmp_path / "notes.csv", other / "x.csv", None]):  # not one of the set's files
        (tmp_path / "notes.csv").write_text("mine\n")
    assert read_manifest(tmp_path)["run_id"] == "one"
    assert not (other / LOCK_NAME).exists()  # a folder of no set is left as it is
    with claim_outputs([tmp_path / "allocation.csv"]):
        assert read_manifest(tmp_path) is None  # withdrawn before the file is replaced
        (tmp_path / "allocation.csv").write_text("plan 250 h\n")
    assert "allocation.csv replaces a file of the output set" in caplog.text


def test_a_command_does_not_write_into_a_folder_a_job_holds(tmp_path):
    from kamml.jobs.outputs import claim_outputs

    _write_set(tmp_path, "one")
    refused = r"is writing to .*: wait for it to end, or write to another folder"
    with (
        _held(tmp_path),
        pytest.raises(DataError, match=refused),
        claim_outputs([tmp_path / "allocation.csv"]),
    ):
        pass
    assert read_manifest(tmp_path)["run_id"] == "one"


def test_one_folder_spelled_two_ways_is_claimed_once_and_a_failed_write_keeps_the_manifest(
    tmp_path, monkeypatch, caplog
):
    """`--out outputs/a.csv --curve $PWD/outputs/b.csv` locked the folder twice and refused itself."""
    from kamml.jobs.outputs import claim_outputs

    _write_set(tmp_path / "out", "one")
    monkeypatch.chdir(tmp_path)
    seen: list[object] = []

    def command(paths: list, replace: bool) -> None:
        with claim_outputs(paths):
            seen.append(read_manifest(tmp_path / "out"))
            if replace:
                (tmp_path / "out" / "allocation.csv").write_text("plan 250 h\n")
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError, match="the command failed"):
        command(["out/allocation.csv", tmp_path / "out" / "report.html"], replace=False)
    assert seen == [None]  # withdrawn while the command ran
    assert read_manifest(tmp_path / "out")["run_id"] == "one"  # nothing replaced: vouched for again
    assert "withdrawn" not in caplog.text  # the log said it was withdrawn while the folder still had it
    with pytest.raises(RuntimeError, match="the command failed"):
        command(["out/allocation.csv"], replace=True)
    assert read_manifest(tmp_path / "out") is None  # a file of the set was replaced
    assert "allocation.csv replaces a file of the output set" in caplog.text


def test_a_folder_of_parts_reaches_the_disk_before_the_manifest(tmp_path, monkeypatch):
    """Spark's parts are written by Java: after a machine crash one could come back empty."""
    from kamml.jobs import outputs

    synced: list[str] = []
    real = outputs.fsync_path

    def record(path):
        synced.append(path.relative_to(tmp_path).as_posix().split("/", 1)[-1])
        real(path)

    monkeypatch.setattr(outputs, "fsync_path", record)
    _write_set(tmp_path, "one")
    parts = synced.index("scores.parquet/part-0.parquet")
    assert synced.index("scores.parquet") > parts  # the parts, then their folder
    assert synced.index(".") > synced.index("scores.parquet")  # then the moves, before the manifest


@pytest.mark.parametrize(("staged", "remove"), [("allocation.csv", ()), ("report.html", ("allocation.csv",))])
def test_a_failing_check_publishes_nothing(tmp_path, staged, remove):
    """`OutputSet.checks` run before anything moves or is removed (a job's inputs changed while it ran). A
    Spark run removed an earlier run's allocation.csv (it writes none) before them: a job they stopped
    left the last set without that file and without its manifest."""
    _write_set(tmp_path, "one")

    def changed() -> None:
        raise DataError("inputs changed")

    with OutputSet(tmp_path) as outputs:
        outputs.stage(staged).write_text("two\n")
        outputs.checks.append(changed)
        with pytest.raises(DataError, match="inputs changed"):
            outputs.publish({"run_id": "two"}, remove=remove)
    assert (tmp_path / "allocation.csv").read_text() == "plan one\n"
    assert json.loads((tmp_path / MANIFEST).read_text())["run_id"] == "one"


def test_a_run_in_memory_replaces_a_spark_runs_folders_with_files_and_back(tmp_path):
    """Switching engine.name on one output.dir: the in-memory run's scores.parquet file could not replace
    the Spark run's folder of parts (IsADirectoryError), once allocation.csv had been moved in."""
    _write_set(tmp_path, "spark")  # scores.parquet: a folder of parts
    with OutputSet(tmp_path) as outputs:
        outputs.stage("allocation.csv").write_text("plan memory\n")
        outputs.stage("scores.parquet").write_text("scores memory")
        outputs.publish({"run_id": "memory"})
    assert (tmp_path / "scores.parquet").read_text() == "scores memory"
    assert read_manifest(tmp_path)["run_id"] == "memory"
    _write_set(tmp_path, "spark again")  # and a folder replaces the file
    assert (tmp_path / "scores.parquet" / "part-0.parquet").read_text() == "scores spark again"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_command_writing_through_a_link_into_a_runs_set_withdraws_that_sets_manifest(tmp_path):
    """An output link is written through (`kamml.io.real_output`), so the set it lands in is claimed."""
    import pandas as pd

    from kamml.io import write_table
    from kamml.jobs.outputs import claim_outputs

    run = tmp_path / "run"
    run.mkdir()
    _write_set(run, "one")
    (tmp_path / "latest.csv").symlink_to(run / "allocation.csv")
    with claim_outputs([tmp_path / "latest.csv"]):
        assert read_manifest(run) is None  # withdrawn: the file it names is one of the set
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "latest.csv")
    assert (tmp_path / "latest.csv").is_symlink()
    assert (run / "allocation.csv").read_text() == "a\n1\n"


def test_an_output_of_the_set_that_is_a_symbolic_link_is_written_through_it(tmp_path):
    """``output.dir/allocation.csv`` linked to a CRM's drop folder was replaced by a plain file at publish,
    leaving the file it pointed to stale, where `kamml score --out` writes through such a link."""
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "allocation.csv").write_text("plan old\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "allocation.csv").symlink_to(tmp_path / "crm" / "allocation.csv")
    for text in ("one", "two"):
        _write_set(tmp_path / "run", text)
        assert (tmp_path / "run" / "allocation.csv").is_symlink()
        assert (tmp_path / "crm" / "allocation.csv").read_text() == f"plan {text}\n"
        manifest = read_manifest(tmp_path / "run")
        digest = hashlib.sha256(f"plan {text}\n".encode()).hexdigest()
        assert manifest["files"]["allocation.csv"]["sha256"] == digest
    assert sorted(p.name for p in (tmp_path / "crm").iterdir()) == ["allocation.csv"]


def test_outputs_named_to_remove_go_as_the_set_publishes(tmp_path):
    """An earlier run's output this set has no file for (a Spark run's missing allocation.csv)."""
    _write_set(tmp_path, "one")
    with OutputSet(tmp_path) as outputs:
        outputs.stage("report.html").write_text("report two\n")
        published = outputs.publish({"run_id": "two"}, remove=["allocation.csv"])
    assert not (tmp_path / "allocation.csv").exists()
    assert sorted(read_manifest(tmp_path)["files"]) == sorted(published) == ["report.html"]


def test_a_move_that_fails_while_publishing_puts_the_last_set_back(tmp_path):
    """A file of the set that cannot be replaced (``report.html`` made immutable: root ignores read-only
    modes) failed the publish after allocation.csv had moved in: a new plan beside the old report, and no
    manifest. The files moved are put back and the last set's manifest with them."""
    _write_set(tmp_path, "one")
    report = tmp_path / "report.html"
    if subprocess.run(["chattr", "+i", str(report)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +i is not available here (not root, or a file system without the flag)")
    try:
        with OutputSet(tmp_path) as outputs:
            outputs.stage("allocation.csv").write_text("plan two\n")
            outputs.stage("report.html").write_text("report two\n")
            with pytest.raises(DataError, match=r"report\.html.*the last set \(run one\) is put back"):
                outputs.publish({"run_id": "two"})
    finally:
        subprocess.run(["chattr", "-i", str(report)], check=True)
    assert (tmp_path / "allocation.csv").read_text() == "plan one\n"
    assert report.read_text() == "report one\n"
    assert read_manifest(tmp_path)["run_id"] == "one"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_set_that_cannot_be_put_back_whole_keeps_no_manifest(tmp_path):
    """``report.html`` linked into a folder that is gone when the set publishes: the files moved before it
    are put back (no new plan beside the old files), but the last set is no longer whole, so no manifest
    vouches for it, as the error says."""
    (tmp_path / "crm").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").symlink_to(tmp_path / "crm" / "report.html")
    _write_set(tmp_path / "run", "one")
    (tmp_path / "crm" / "report.html").unlink()
    (tmp_path / "crm").rmdir()
    with OutputSet(tmp_path / "run") as outputs:
        outputs.stage("allocation.csv").write_text("plan two\n")
        outputs.stage("report.html").write_text("report two\n")
        with pytest.raises(DataError, match=r"broken symbolic link.*no longer whole.*no manifest"):
            outputs.publish({"run_id": "two"})
    assert (tmp_path / "run" / "allocation.csv").read_text() == "plan one\n"
    assert (tmp_path / "run" / "report.html").is_symlink()
    assert read_manifest(tmp_path / "run") is None
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        LOCK_NAME,
        "allocation.csv",
        "report.html",
        "scores.parquet",
    ]


def test_a_failed_publish_puts_back_a_folder_a_file_had_replaced(tmp_path):
    """The last set whole again (a Spark run's folder of parts included), so its manifest is put back:
    the failing output (a link into a folder that is gone) was no file of that set."""
    _write_set(tmp_path, "spark")
    (tmp_path / "z.html").symlink_to(tmp_path / "gone" / "z.html")
    with OutputSet(tmp_path) as outputs:
        outputs.stage("allocation.csv").write_text("plan memory\n")
        outputs.stage("scores.parquet").write_text("scores memory")
        outputs.stage("z.html").write_text("chart\n")
        with pytest.raises(DataError, match=r"z\.html.*the last set \(run spark\) is put back"):
            outputs.publish({"run_id": "memory"})
    assert (tmp_path / "scores.parquet" / "part-0.parquet").read_text() == "scores spark"
    assert (tmp_path / "allocation.csv").read_text() == "plan spark\n"
    assert read_manifest(tmp_path)["run_id"] == "spark"


def test_a_sealed_manifest_is_the_one_published_and_changes_nothing_until_then(tmp_path):
    """The job logs its set (manifest included) on MLflow before publishing it: a job whose logging
    failed had already published a whole set, which a CRM read as that run's result."""
    _write_set(tmp_path, "one")
    last = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def sealed_then_logging_fails() -> None:
        with OutputSet(tmp_path) as outputs:
            outputs.stage("allocation.csv").write_text("plan two\n")
            sealed = outputs.seal({"run_id": "two"})
            assert sealed.parent == outputs.staging
            assert json.loads(sealed.read_text())["files"] == {
                "allocation.csv": {"bytes": 9, "sha256": hashlib.sha256(b"plan two\n").hexdigest()}
            }
            raise RuntimeError("the tracking store cannot be written")

    with pytest.raises(RuntimeError, match="tracking store"):
        sealed_then_logging_fails()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == last
    with OutputSet(tmp_path) as outputs:
        outputs.stage("allocation.csv").write_text("plan two\n")
        text = outputs.seal({"run_id": "two"}).read_text()
        published = outputs.publish(remove=["report.html"])
    assert set(published) == {"allocation.csv"}
    assert (tmp_path / MANIFEST).read_text() == text  # what was logged is what vouches for the set
    assert not (tmp_path / "report.html").exists()


def test_publishing_unsealed_or_after_the_staged_files_changed_is_refused(tmp_path):
    with OutputSet(tmp_path) as outputs:
        outputs.stage("allocation.csv").write_text("plan\n")
        with pytest.raises(RuntimeError, match="seal"):
            outputs.publish()
        outputs.seal({"run_id": "one"})
        outputs.stage("report.html").write_text("report\n")
        with pytest.raises(RuntimeError, match=r"report\.html"):
            outputs.publish()
    assert not (tmp_path / "allocation.csv").exists()


@pytest.mark.parametrize("third_job", [False, True])
def test_a_job_locking_a_lock_file_another_job_removed_locks_the_new_one(tmp_path, monkeypatch, third_job):
    """A job that published nothing removes the lock file (and the folder) it created. A second job that
    had opened that file just before locked it once it was removed: it went on (or failed to make its
    staging folder) while a third job, creating a new lock file, held the folder too."""
    import fcntl

    folder = tmp_path / "out"
    first, second, third = OutputSet(folder), OutputSet(folder), OutputSet(folder)
    first.__enter__()
    real_flock = fcntl.flock
    steps: list[str] = []

    def first_leaves_before_the_second_locks(fd, op):
        if not steps:  # the second job has opened the first's lock file and is about to lock it
            steps.append("first leaves")
            first.__exit__(None, None, None)  # published nothing: its lock file and folder are removed
            if third_job:
                third.__enter__()  # creates a new lock file and locks it
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", first_leaves_before_the_second_locks)
    if third_job:
        with pytest.raises(DataError, match="another kamml job"):
            second.__enter__()
        third.__exit__(None, None, None)
        return
    with second:  # the folder made again, and its new lock file locked
        assert steps == ["first leaves"]
        assert (folder / LOCK_NAME).is_file()
        with pytest.raises(DataError, match="another kamml job"):
            OutputSet(folder).__enter__()
    assert not folder.exists()
