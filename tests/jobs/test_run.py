from __future__ import annotations

import hashlib
import html
import importlib.util
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from kamml.config import Config
from kamml.errors import ConfigError, DataError, EngineError, InfeasibleError
from kamml.jobs.outputs import OutputSet, read_manifest
from kamml.jobs.run import run, skipped_parts
from kamml.jobs.score import SCORE_COLUMNS
from kamml.tracking import JOB_STATUS_TAG
from kamml.tracking.runs import JOB_OUTPUTS_TAG, PLAN_BY_RUN_TAG, PLAN_MODEL_TAG

#: MLflow's own API in these tests reads the session's store: kamml's calls leave MLflow as it was
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mlflow_at_session_store")]


@pytest.fixture(scope="module")
def job(tracked_config, world_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    cfg = tracked_config(experiment="kamml-run-test", model_name="kamml-run-test")
    cfg.output.dir = out
    cfg.allocation.hours = 300
    lines: list[str] = []
    return cfg, run(cfg, world_path, echo=lines.append), lines


def test_every_output_is_written_and_logged_on_the_run(job, tmp_path):
    cfg, result, _ = job
    names = {p.name for p in cfg.output.dir.iterdir() if p.name != ".kamml.lock"}
    assert names == {
        "manifest.json",
        "scores.parquet",
        "allocation.parquet",
        "allocation.csv",
        "budget_curve.csv",
        "budget_curve.png",
        "backtest.json",
        "report.html",
    }
    scores = pd.read_parquet(cfg.output.dir / "scores.parquet")
    assert list(scores.columns) == list(SCORE_COLUMNS)
    allocation = pd.read_csv(cfg.output.dir / "allocation.csv")
    assert allocation["recommended_hours"].sum() == pytest.approx(300, rel=1e-6)
    assert len(allocation) == len(scores)
    logged = {a.path for a in MlflowClient().list_artifacts(result.training.run_id, "outputs")}
    assert {f"outputs/{n}" for n in names} == logged
    metrics = MlflowClient().get_run(result.training.run_id).data.metrics
    assert metrics["allocation.hours_used"] == pytest.approx(300, rel=1e-6)
    manifest = read_manifest(cfg.output.dir)  # written last: the set it names is complete
    assert manifest is not None
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert manifest["run_id"] == result.training.run_id
    assert manifest["model_uri"] == str(scores["model_uri"].iat[0])
    assert manifest["cutoff"] == str(result.training.scoring_cutoff.date())
    report = (cfg.output.dir / "report.html").read_text()
    assert "Effort response (hours that move an account)" in report  # which k the plan rests on
    assert "at the median account" in report  # k = ... h (over the horizon) at the median account ...
    assert "<h2>Warnings this run logged</h2>" in report  # what the job's log warned of, or that it did not
    logged_manifest = mlflow.artifacts.download_artifacts(
        run_id=result.training.run_id, artifact_path="outputs/manifest.json", dst_path=str(tmp_path)
    )
    assert Path(logged_manifest).read_bytes() == (cfg.output.dir / "manifest.json").read_bytes()
    csv_bytes = (cfg.output.dir / "allocation.csv").read_bytes()
    assert manifest["files"]["allocation.csv"]["sha256"] == hashlib.sha256(csv_bytes).hexdigest()


def test_each_stage_announces_itself_and_ends_with_a_summary(job):
    _, result, lines = job
    text = "\n".join(lines)
    for i, stage in enumerate(("validate", "train", "score", "allocate", "report"), start=1):
        assert f"[{i}/5] {stage}" in text
    assert "value of the last hour (lambda)" in text
    assert " transactions in 4 tables, data end " in text
    assert "(s)" not in text  # counts in words: "1 data-quality note", "4 tables"
    assert set(result.seconds) == {"validate", "train", "score", "allocate", "report"}
    assert result.skipped == []


def test_the_training_run_says_the_whole_job_completed(job):
    _, result, _ = job
    run = MlflowClient().get_run(result.training.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[JOB_STATUS_TAG] == "complete"


def test_a_failure_after_training_marks_the_training_run_failed(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """The training run ended FINISHED before scoring: a job failing later read as a success in MLflow."""
    name = f"kamml-late-failure-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300

    def broken_report(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kamml.jobs.run.render_report", broken_report)
    with pytest.raises(OSError, match="No space left"):
        run(cfg, world_path, echo=lambda _: None)
    experiment = MlflowClient().get_experiment_by_name(name)
    (found,) = MlflowClient().search_runs([experiment.experiment_id])
    assert found.info.status == "FAILED"
    assert found.data.tags[JOB_STATUS_TAG] == "failed"
    assert found.data.tags["kamml.job.failed_stage"] == "report"
    assert "No space left on device" in found.data.tags["kamml.job.error"]
    assert read_manifest(cfg.output.dir) is None  # and no output set was published


def test_the_run_reads_complete_only_once_its_outputs_are_published(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """Tagged complete while logging, before publishing: a job killed outright (SIGKILL) as it published
    left a run saying ``complete`` whose outputs never appeared. Until the set is out it is ``running``
    (which a later job's tidy-up marks ``killed`` once the process has gone)."""
    name = f"kamml-complete-last-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    seen: list[str] = []
    real_publish = OutputSet.publish

    def publish_noting_the_status(self, *args, **kwargs):
        experiment = MlflowClient().get_experiment_by_name(name)
        (found,) = MlflowClient().search_runs([experiment.experiment_id])
        seen.append((found.data.tags[JOB_STATUS_TAG], found.data.tags.get(JOB_OUTPUTS_TAG)))
        return real_publish(self, *args, **kwargs)

    monkeypatch.setattr(OutputSet, "publish", publish_noting_the_status)
    result = run(cfg, world_path, echo=lambda _: None)
    # the folder is named before publishing: a job killed after it is told complete by the next job
    assert seen == [("running", str((tmp_path / "out").resolve()))]
    found = MlflowClient().get_run(result.training.run_id)
    assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("FINISHED", "complete")


def test_a_console_failing_after_the_outputs_are_published_leaves_the_run_complete(
    tracked_config, world_path, tmp_path
):
    """The set is the job's result once published: a console closed as the job said where its report is
    marked the run FAILED at ``publish`` while its whole set was in the folder for a CRM to read."""
    name = f"kamml-closed-console-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300

    def console(line: str) -> None:
        if line.strip().startswith("report "):
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run(cfg, world_path, echo=console)
    manifest = read_manifest(cfg.output.dir)
    assert manifest is not None  # published
    found = MlflowClient().get_run(manifest["run_id"])
    assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("FINISHED", "complete")
    assert "kamml.job.failed_stage" not in found.data.tags


def _last_set(folder) -> dict[str, bytes]:
    """An earlier job's published set in `folder`; every file of it (manifest included) by name."""
    with OutputSet(folder) as outputs:
        outputs.stage("allocation.csv").write_text("account_id,recommended_hours\n1,2.0\n")
        outputs.stage("report.html").write_text("<p>the last run's report</p>\n")
        outputs.publish({"run_id": "the-last-run"})
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_outputs_the_tracking_store_cannot_take_leave_the_last_published_set(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """The set was published before it was logged: a job whose MLflow logging failed (an artifact store
    full or unreachable) exited non-zero with its run FAILED, and left its whole set, manifest
    included, for a CRM to read as the run's result."""
    from urllib.parse import urlparse

    from kamml.jobs import run as run_module

    name = f"kamml-unlogged-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    last = _last_set(cfg.output.dir)
    real_write = run_module._write_outputs

    def written_then_the_artifact_store_fails(folder, scores, allocation, curve, training, *args, **kwargs):
        staged = real_write(folder, scores, allocation, curve, training, *args, **kwargs)
        artifacts = Path(urlparse(MlflowClient().get_run(training.run_id).info.artifact_uri).path)
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "outputs").write_text(
            "a file where the run's outputs folder goes\n"
        )  # cannot be written
        return staged

    monkeypatch.setattr(run_module, "_write_outputs", written_then_the_artifact_store_fails)
    with pytest.raises(OSError, match=r"artifacts/outputs"):  # the file in the way
        run(cfg, world_path, echo=lambda _: None)
    assert {p.name: p.read_bytes() for p in cfg.output.dir.iterdir() if p.is_file()} == last
    experiment = MlflowClient().get_experiment_by_name(name)
    (found,) = MlflowClient().search_runs([experiment.experiment_id])
    assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("FAILED", "failed")
    assert found.data.tags["kamml.job.failed_stage"] == "report"


def test_a_publish_failing_after_the_outputs_are_logged_marks_the_run_failed(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """Logged first, published last: a publish that then fails (the inputs changed) leaves the last set
    and a run FAILED at the publish stage, whose logged files (its manifest among them) are not the
    folder's."""
    from kamml.jobs import run as run_module

    world = tmp_path / "world"
    shutil.copytree(world_path, world)
    name = f"kamml-unpublished-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    last = _last_set(cfg.output.dir)
    real_log = run_module._log_outputs

    def logged_then_the_export_lands(*args, **kwargs):
        real_log(*args, **kwargs)
        tx = pd.read_parquet(world / "transactions.parquet")
        tx.iloc[::2].to_parquet(world / "transactions.parquet")

    monkeypatch.setattr(run_module, "_log_outputs", logged_then_the_export_lands)
    with pytest.raises(DataError, match="input files changed while the job ran"):
        run(cfg, world, echo=lambda _: None)
    assert {p.name: p.read_bytes() for p in cfg.output.dir.iterdir() if p.is_file()} == last
    experiment = MlflowClient().get_experiment_by_name(name)
    (found,) = MlflowClient().search_runs([experiment.experiment_id])
    assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("FAILED", "failed")
    assert found.data.tags["kamml.job.failed_stage"] == "publish"
    assert "input files changed" in found.data.tags["kamml.job.error"]
    logged = {a.path for a in MlflowClient().list_artifacts(found.info.run_id, "outputs")}
    assert "outputs/manifest.json" in logged


def test_a_console_closed_as_the_train_stage_reports_marks_the_training_run_failed(
    tracked_config, world_path, tmp_path
):
    """``kamml run | head -3``: the train stage's own lines failed after training, and its run was left
    FINISHED with job status "running" (the next job took it for a killed one)."""
    name = f"kamml-closed-console-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300

    def console(line: str) -> None:
        if line.lstrip().startswith("backtest at"):  # the reader has gone by the train stage's result
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run(cfg, world_path, echo=console)
    experiment = MlflowClient().get_experiment_by_name(name)
    (found,) = MlflowClient().search_runs([experiment.experiment_id])
    assert found.info.status == "FAILED"
    assert found.data.tags[JOB_STATUS_TAG] == "failed"
    assert found.data.tags["kamml.job.failed_stage"] == "train"
    assert read_manifest(cfg.output.dir) is None


def report_warnings(report: str) -> list[str]:
    """The items of the report's section of the warnings the run logged, as text (each message a <bdi>)."""
    section = re.search(r"<h2>Warnings this run logged</h2><ul>(.*?)</ul>", report, flags=re.S)
    assert section, "no list of warnings in the report"
    items = re.findall(r"<li><bdi>(.*?)</bdi>(.*?)</li>", section.group(1), flags=re.S)
    return [html.unescape(message + count) for message, count in items]


def test_rerun_replaces_outputs_and_registers_a_new_version(job, world_path, caplog, tmp_path, monkeypatch):
    cfg, first, _ = job
    before = pd.read_parquet(cfg.output.dir / "allocation.parquet")
    lines: list[str] = []
    cfg.tracking.log_outputs = False  # the plan's figures are logged, the files not copied
    # the same rows from a configured path beside the folder's own file: a warning the data folder triggers
    shutil.copy(world_path / "transactions.parquet", tmp_path / "transactions.parquet")
    monkeypatch.setattr(cfg.data, "transactions", str(tmp_path / "transactions.parquet"))
    with caplog.at_level(logging.WARNING, logger="kamml"):
        second = run(cfg, world_path, echo=lines.append)
    assert MlflowClient().list_artifacts(second.training.run_id, "outputs") == []
    assert "allocation.hours_used" in MlflowClient().get_run(second.training.run_id).data.metrics
    after = pd.read_parquet(cfg.output.dir / "allocation.parquet")
    assert len(after) == len(before)  # replaced, not appended
    assert [p.name for p in cfg.output.dir.iterdir() if p.name.startswith(".")] == [".kamml.lock"]
    assert int(second.training.promotion.version) == int(first.training.promotion.version) + 1
    # same data, same seed: the same backtest, so the gate keeps the first champion ...
    assert not second.training.promotion.promoted
    assert second.training.promotion.same_holdout  # ... measured on the same holdout, and said so
    assert MlflowClient().get_run(second.training.run_id).data.tags["registry.same_holdout"] == "true"
    # ... and the plan comes from that champion, not from the version it rejected
    champion = f"models:/{cfg.tracking.model_name}/{first.training.promotion.version}"
    assert set(pd.read_parquet(cfg.output.dir / "scores.parquet")["model_uri"]) == {champion}
    # the run names the model that scored the plan whose figures it holds (a data-science audit: a run
    # whose version was not promoted carried the champion's allocation.* metrics unmarked)
    tags = MlflowClient().get_run(second.training.run_id).data.tags
    assert (tags[PLAN_MODEL_TAG], tags[PLAN_BY_RUN_TAG]) == (champion, "false")
    tags = MlflowClient().get_run(first.training.run_id).data.tags
    assert (tags[PLAN_MODEL_TAG], tags[PLAN_BY_RUN_TAG]) == (champion, "true")
    said = [line for line in lines if "scoring with the champion" in line]
    assert len(said) == 1
    assert champion in said[0]
    # said once: on the console it was given, not also through the log (which printed it twice)
    assert not [r for r in caplog.records if "scoring with the champion" in r.getMessage()]
    report = (cfg.output.dir / "report.html").read_text()  # it paired the champion with the new run
    # a scheduled job's reader opens only the report: every warning the job logged, and the one it said on
    # the console, once each with its count (the report showed none of them)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("kamml.")]
    assert any("is read, not" in m and "in the data folder" in m for m in logged)
    counts = Counter([*logged, said[0].split("warning: ", 1)[1]])
    assert sorted(report_warnings(report)) == sorted(
        m + (f" ({n} times)" if n > 1 else "") for m, n in counts.items()
    )
    assert f"{champion} (the champion)" in report
    assert f"trained version {second.training.promotion.version}, not promoted" in report
    # the backtest section says whose it is, where the plan's model is not (a report audit: only the
    # MLflow card said so, and the subtitle called it the plan's)
    section = report[report.index("How well the predictions did on past data</h2>") :]
    assert section.index(f"Version {second.training.promotion.version}, trained by this run") < 400
    # ... and shows the champion's own backtest first: the plan's model's figures
    assert "its own backtest comes first below" in section
    plan_part = section[: section.index("The version this run trained (not promoted)")]
    assert "The model behind the plan" in plan_part
    gini = MlflowClient().get_run(first.training.run_id).data.metrics["value.kamml.gini"]
    assert f"{gini:.3f}" in plan_part
    assert "and how well the predictions behind it did" not in report
    assert "not the model behind the plan" in report
    pd.testing.assert_frame_equal(after, before)


def test_warnings_logged_while_the_charts_are_drawn_are_in_the_report(
    tracked_config, world_path, tmp_path, caplog
):
    """The report took the run's warnings before it drew its charts: reps named in a script the chart
    font lacks logged "the font lacks ..." while the plan's charts were drawn, and the report that holds
    those charts did not list it."""
    world = tmp_path / "world"
    shutil.copytree(world_path, world)
    accounts = pd.read_parquet(world / "accounts.parquet")
    accounts["owner"] = accounts["owner"].map({"rep_00": "営業一", "rep_01": "営業二"})
    accounts.to_parquet(world / "accounts.parquet")
    name = f"kamml-glyphs-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    with caplog.at_level(logging.WARNING, logger="kamml"):
        run(cfg, world, echo=lambda _: None)
    drawn = [r.getMessage() for r in caplog.records if r.name == "kamml.report.plots"]
    assert any("the font lacks" in m for m in drawn)  # the charts name the reps
    listed = report_warnings((cfg.output.dir / "report.html").read_text())
    assert set(drawn) <= {re.sub(r" \(\d+ times\)$", "", item) for item in listed}


def test_each_collection_of_a_jobs_warnings_holds_only_its_own() -> None:
    """Two jobs in one process (a notebook running two configs in threads, or a job run inside another's
    collection) each listed the other's warnings in its report: every collection's handler on the
    ``kamml`` logger took every record. A collection takes what its own thread (and context) logs, a
    nested one takes its block's alone, and none is left on the logger, however its block ends."""
    import threading

    from kamml.jobs.run import _JobWarnings

    kamml_log = logging.getLogger("kamml.jobs.run")
    handlers = list(logging.getLogger("kamml").handlers)
    both_logging = threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def job(name: str) -> None:
        with _JobWarnings.collecting() as collected:
            kamml_log.warning("%s first", name)
            both_logging.wait(timeout=10)  # each logs its second while the other collects
            kamml_log.warning("%s second", name)
            both_logging.wait(timeout=10)
        seen[name] = collected.messages

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": ["a first", "a second"], "b": ["b first", "b second"]}

    with _JobWarnings.collecting() as outer:
        kamml_log.warning("outer before")
        with _JobWarnings.collecting() as inner:
            kamml_log.warning("inner")
        kamml_log.warning("outer after")
    assert (outer.messages, inner.messages) == (["outer before", "outer after"], ["inner"])

    with pytest.raises(RuntimeError), _JobWarnings.collecting():
        raise RuntimeError("a job that failed")
    with _JobWarnings.collecting() as later:
        kamml_log.warning("a later job's")
    assert later.messages == ["a later job's"]
    assert logging.getLogger("kamml").handlers == handlers


def test_a_worker_threads_warning_goes_to_the_one_job_collecting() -> None:
    """A plain thread starts with an empty context, so a job's own worker (a thread pool kamml or a
    library starts) logged outside any collection and its warning was lost from the report. With one job
    collecting it is that job's; with two open, whose it is cannot be told, and neither takes it."""
    import threading

    from kamml.jobs.run import _JobWarnings

    kamml_log = logging.getLogger("kamml.models")

    def worker(text: str) -> None:
        thread = threading.Thread(target=kamml_log.warning, args=(text,))
        thread.start()
        thread.join()

    with _JobWarnings.collecting() as job:
        worker("from a worker")
    assert job.messages == ["from a worker"]
    with _JobWarnings.collecting() as outer, _JobWarnings.collecting() as inner:
        worker("whose?")
    assert (outer.messages, inner.messages) == ([], [])
    worker("outside any job")  # no collection open: nothing to take it, nothing raised


def test_skipped_parts_name_the_missing_tables(world_path, tmp_path):
    import shutil

    from kamml.data import load_data

    shutil.copy(world_path / "transactions.parquet", tmp_path / "transactions.parquet")
    notes = skipped_parts(load_data(tmp_path))
    assert any("referrals" in n for n in notes)
    assert any("activities" in n for n in notes)
    assert any("owners" in n for n in notes)


@pytest.mark.parametrize(
    ("allocation", "error", "says"),
    [
        (  # refused as soon as the config holds it (it was an InfeasibleError from `run`)
            {"floor_hours": 50.0, "cap_hours": 40.0},
            ConfigError,
            "floor_hours' 50 is above 'allocation.cap_hours' 40",
        ),
        ({"tiers": {"a": 1.5, "b": 1.0}}, ConfigError, "allocation.tiers.a"),
        ({"effort_scale": 4.0, "effort_clip": (4.0, 0.25)}, ConfigError, r"effort_clip' must be \(low, high"),
    ],
)
def test_an_allocation_bound_to_fail_fails_before_training(
    tracked_config, world_path, tmp_path, allocation, error, says
):
    name = f"kamml-doomed-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"

    def doomed() -> None:
        cfg.allocation = cfg.allocation.model_copy(update=allocation)  # unchecked, as a caller may build it
        run(cfg, world_path, echo=lambda _: None)

    with pytest.raises(error, match=says):
        doomed()
    assert MlflowClient().get_experiment_by_name(name) is None  # no run, no registered model
    assert not cfg.output.dir.exists()


@pytest.mark.slow
def test_inputs_replaced_while_the_job_runs_stop_it_before_it_registers(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """An export swapped transactions.parquet during the backtest: training and scoring read the new rows,
    validation, the fingerprint and the report the old ones, and the job exited 0 (an audit)."""
    import os
    import shutil

    from kamml.jobs import run as run_module

    world = tmp_path / "world"
    shutil.copytree(world_path, world)
    name = f"kamml-swapped-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    real_train = run_module.train

    def train_while_the_export_lands(data, config, **kwargs):
        tx = pd.read_parquet(world / "transactions.parquet")
        tx.iloc[::2].to_parquet(world / "new.parquet")  # half the rows, over the whole period
        os.replace(world / "new.parquet", world / "transactions.parquet")  # atomic, as an export
        return real_train(data, config, **kwargs)

    monkeypatch.setattr(run_module, "train", train_while_the_export_lands)
    with pytest.raises(DataError, match=r"input files changed while the job ran \(.*transactions\.parquet\)"):
        run(cfg, world, echo=lambda _: None)
    assert not MlflowClient().search_registered_models(filter_string=f"name = '{name}'")
    assert not (cfg.output.dir / "manifest.json").exists()


@pytest.mark.parametrize(
    ("active_p_purchase", "says"),
    [
        (0.0, r"the floors need .* allocation\.floor_hours \(0\.5\)"),
        # the default purchase rule: the churn model may take accounts out, but not those BG/NBD gives an
        # even chance of a purchase (the forty-second session's rule trained every such plan first)
        (0.1, r"the floors need .*Counted before training with only the accounts BG/NBD gives at least a 50"),
    ],
)
def test_floors_that_cannot_fit_fail_before_any_training(
    tracked_config, world_path, tmp_path, monkeypatch, active_p_purchase, says
):
    """Which accounts get a floor needs P(alive): this failed at the allocate stage, after registering,
    then after the backtest and the training (473 s on 50,000 accounts). Exact before training when
    P(alive) alone decides (active_p_purchase 0); with the purchase rule, when even the surely active
    accounts' floors do not fit."""
    name = f"kamml-floors-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 5.0
    cfg.allocation.floor_hours = 0.5
    cfg.allocation.active_p_purchase = active_p_purchase

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the floors")

    monkeypatch.setattr("kamml.jobs.run.train", no_training)  # found in seconds, not after training
    with pytest.raises(InfeasibleError, match=says):
        run(cfg, world_path, echo=lambda _: None)
    assert not MlflowClient().search_registered_models(filter_string=f"name = '{name}'")
    experiment = MlflowClient().get_experiment_by_name(name)
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])


@pytest.mark.slow
def test_floors_that_cannot_fit_warn_before_training_and_fail_before_registering(
    tracked_config, world_path, tmp_path, caplog, monkeypatch
):
    """With the purchase rule on (the default) the churn model, trained later, can take accounts out of
    the active ones: before training a shortfall the surely active accounts do not show is a warning,
    and the new model's own p_churn and P(alive) refuse the plan before the model is registered."""
    monkeypatch.setattr("kamml.jobs.run.SURE_PURCHASE", 1.01)  # no account surely active before training
    name = f"kamml-floors-late-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 5.0
    cfg.allocation.floor_hours = 0.5
    with (
        caplog.at_level(logging.WARNING, logger="kamml.jobs.run"),
        pytest.raises(InfeasibleError, match=r"the floors need .*active_p_purchase, 0\.1\)"),
    ):
        run(cfg, world_path, echo=lambda _: None)
    assert "Counted before training by P(alive) alone" in caplog.text
    assert not MlflowClient().search_registered_models(filter_string=f"name = '{name}'")
    assert not (cfg.output.dir / "manifest.json").exists()


def test_snapshots_reaching_before_the_data_fail_at_validation_with_no_run(
    tracked_config, world_path, tmp_path
):
    """The window's check ran in the train stage's backtest, after the run was opened: the config error
    left a FAILED run in the experiment (a user walkthrough). Now it ends the validate stage."""
    name = f"kamml-window-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.time.snapshots = 20
    lines: list[str] = []
    with pytest.raises(ConfigError, match=r"of 20 training snapshots hold no purchase history"):
        run(cfg, world_path, echo=lines.append)
    assert not any("train ..." in line for line in lines), lines
    assert MlflowClient().get_experiment_by_name(name) is None


def test_capacity_without_owners_in_the_data_fails_before_training(tracked_config, world_path, tmp_path):
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(world_path / "transactions.parquet", data / "transactions.parquet")
    name = f"kamml-ownerless-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.capacity = {"rep_01": 100.0}
    with pytest.raises(
        ConfigError,
        match=r"^'allocation\.capacity' limits each rep's hours, but the data has no accounts table",
    ):
        run(cfg, data, echo=lambda _: None)
    assert MlflowClient().get_experiment_by_name(name) is None


def test_a_capacity_rep_who_owns_no_account_fails_before_training(tracked_config, world_path, tmp_path):
    """A misspelt rep stopped the job only at the allocate stage, after the whole training."""
    name = f"kamml-typo-{tmp_path.name}"
    cfg = tracked_config(experiment=name, model_name=name)
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.capacity = {"rep_zz": 100.0}
    says = r"^'allocation\.capacity' names 1 rep that owns no account in the accounts table's owner column"
    with pytest.raises(ConfigError, match=says):
        run(cfg, world_path, echo=lambda _: None)
    assert MlflowClient().get_experiment_by_name(name) is None


def test_an_output_folder_that_is_a_file_fails_before_any_work(tracked_config, world_path, tmp_path):
    cfg = tracked_config()
    cfg.output.dir = tmp_path / "report.html"
    cfg.output.dir.write_text("keep")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"report\.html: it is a file, not a folder"):
        run(cfg, world_path, echo=lines.append)
    assert lines == []  # not even the validate stage started


def test_a_job_without_data_or_its_engine_leaves_no_output_folder(
    tracked_config, world_path, tmp_path, monkeypatch
):
    cfg = tracked_config()
    cfg.output.dir = tmp_path / "out"
    cfg.data.path = None
    with pytest.raises(ConfigError, match="no data: pass --data DIR"):
        run(cfg, echo=lambda line: None)
    assert not cfg.output.dir.exists()  # its lock file stayed behind in a new folder
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    cfg.engine.name = "spark"
    with pytest.raises(EngineError, match=r"needs pyspark: install it with pip install 'kamml\[spark\]'"):
        run(cfg, world_path, echo=lambda line: None)
    assert not cfg.output.dir.exists()


def test_an_output_folder_another_job_holds_fails_before_the_data_are_read(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """Two runs on one output.dir clash: the second does not load the data (minutes on a big book)."""
    import kamml.jobs.run as job

    def loaded(*args, **kwargs):
        raise AssertionError("the data were read before the output folder was locked")

    monkeypatch.setattr(job, "stamped_job_data", loaded)
    cfg = tracked_config()
    cfg.output.dir = tmp_path / "out"
    lines: list[str] = []
    with OutputSet(cfg.output.dir), pytest.raises(DataError, match=r"another kamml job \(pid \d+, since"):
        run(cfg, world_path, echo=lines.append)  # the held lock: an open file of its own, as another job's
    assert lines == []  # not even the validate stage started


def test_a_folder_where_an_output_file_goes_fails_before_any_work(tracked_config, world_path, tmp_path):
    cfg = tracked_config()
    cfg.output.dir = tmp_path / "out"
    (cfg.output.dir / "scores.parquet").mkdir(parents=True)  # as a Spark run leaves it
    lines: list[str] = []
    with pytest.raises(
        DataError, match=r"^'output\.dir' .*out holds a folder scores\.parquet where this run writes a file"
    ):
        run(cfg, world_path, echo=lines.append)
    assert lines == []


def test_an_output_folder_inside_an_input_folder_of_parts_fails_before_any_work(
    tracked_config, world_path, tmp_path
):
    """Outputs written into a table's folder of parts are read as part of that table by the next run."""
    import shutil

    data = tmp_path / "data"
    (data / "transactions").mkdir(parents=True)
    shutil.copy(world_path / "transactions.parquet", data / "transactions" / "part-0.parquet")
    cfg = tracked_config()
    cfg.output.dir = data / "transactions"
    lines: list[str] = []
    with pytest.raises(DataError, match=r"scores\.parquet: it is inside .*the transactions table is read"):
        run(cfg, data, echo=lines.append)
    assert lines == []
    assert [p.name for p in (data / "transactions").iterdir()] == ["part-0.parquet"]


def test_an_output_folder_named_as_a_table_of_the_data_folder_fails_before_any_work(
    tracked_config, world_path, tmp_path
):
    """``output.dir: DATA/referrals`` (no such table yet) made the run's outputs the next run's referrals."""
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(world_path / "transactions.parquet", data / "transactions.parquet")
    cfg = tracked_config()
    cfg.output.dir = data / "Referrals"
    lines: list[str] = []
    with pytest.raises(DataError, match=r"it would be read as the referrals table next time"):
        run(cfg, data, echo=lines.append)
    assert lines == []
    assert sorted(p.name for p in data.iterdir()) == ["transactions.parquet"]


def test_the_floor_check_logs_nothing_about_effort_rules(trained, caplog):
    """It gave the allocation zero stakes and no effort scales: 'using the fixed rule' and 'no account has
    a positive clv' then appeared in every run, right after the fitted effort response."""
    import logging

    from kamml.jobs.run import _floors_fit

    cfg, data, result = trained
    with caplog.at_level(logging.INFO, logger="kamml"):
        _floors_fit(cfg, data)(result.bundle, result.features)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "fixed rule" not in said
    assert "positive clv" not in said


def test_the_report_names_the_configs_fixed_rule_when_it_overrides_the_models_response():
    """A number in allocation.effort_scale makes the allocation ignore the scores' k: the header says so."""
    from kamml.config import Config
    from kamml.jobs.run import _plan_effort
    from kamml.models.effort import EffortResponse

    fitted = EffortResponse(scale=2.4, exponent=0.2, reference_value=500.0, uplift=0.4)
    assert _plan_effort(Config(), fitted) is fitted
    config = Config.from_dict({"allocation": {"effort_scale": 6, "effort_exponent": 0.5}})
    fixed = _plan_effort(config, fitted)
    assert fixed is not None
    assert fixed.describe().startswith("fixed rule (set in the config): k = 6 h")


def test_the_plan_states_the_horizon_of_the_model_that_scored(
    tracked_config, world_path, tmp_path, monkeypatch
):
    """A champion kept from another horizon: the console and manifest say its horizon, not the config's,
    and the fixed effort rule, where the champion has no effort response, follows its horizon too."""
    import copy
    import dataclasses

    import numpy as np

    from kamml.allocation.stake import effort_scale
    from kamml.jobs import run as run_module

    registered = run_module._registered

    def champion_of_120_days(config, training, echo):
        model, _ = registered(config, training, echo)
        kept = copy.copy(model)
        # a model without an effort response: the plan takes the fixed rule
        kept.bundle = dataclasses.replace(model.bundle, horizon_days=120, effort=None)
        return kept, False

    monkeypatch.setattr(run_module, "_registered", champion_of_120_days)
    cfg = tracked_config(experiment="kamml-run-horizon", model_name="kamml-run-horizon")
    cfg.output.dir = tmp_path / "out"
    lines: list[str] = []
    run(cfg, world_path, echo=lines.append)
    assert cfg.time.horizon_days == 90
    assert any("over 120 days" in line for line in lines), lines
    assert read_manifest(cfg.output.dir)["horizon_days"] == 120
    plan = pd.read_parquet(cfg.output.dir / "allocation.parquet")
    scores = pd.read_parquet(cfg.output.dir / "scores.parquet").set_index("account_id")
    clv = scores.loc[plan["account_id"], "clv"].to_numpy()
    expected = effort_scale(clv, 4.0 * 120 / 180, exponent=cfg.allocation.effort_exponent)  # not 90's 2 h
    np.testing.assert_allclose(plan["effort_scale"], expected, rtol=1e-12)


def test_a_job_where_btyd_has_no_value_forecast_says_n_a_and_logs_no_figure(
    tracked_config, few_repeaters, tmp_path
):
    """Without Gamma-Gamma the train stage's line read "(BTYD nan)"; MLflow gets no BTYD value metric
    (NaN is left out, as the gate reads a missing figure) and the reason as a backtest param."""
    path, config = few_repeaters
    name = f"kamml-no-gamma-gamma-{tmp_path.name}"
    tracking = tracked_config(experiment=name, model_name=name).tracking.model_dump(mode="json")
    cfg = Config.from_dict({**config, "tracking": tracking, "output": {"dir": str(tmp_path / "out")}})
    lines: list[str] = []
    result = run(cfg, path, echo=lines.append)
    line = next(x for x in lines if "backtest at" in x)
    assert "(BTYD n/a)" in line
    assert "nan" not in line.lower()
    logged = MlflowClient().get_run(result.training.run_id).data
    assert not [k for k in logged.metrics if k.startswith("value.btyd.")]
    assert "value.kamml.gini" in logged.metrics
    note = result.training.backtest.protocol["btyd_value_note"]
    assert logged.params["backtest.btyd_value_note"] == note
    assert (cfg.output.dir / "report.html").read_text(encoding="utf-8").count(note) == 1
