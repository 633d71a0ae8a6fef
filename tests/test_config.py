import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kamml.config import (
    FEATURE_GROUPS,
    AllocationConfig,
    Config,
    FeaturesConfig,
    ModelsConfig,
    lightgbm_parameters,
    load_config,
    packaged_config,
)
from kamml.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["default.yaml", "cdnow.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.time.horizon_days > 0


def test_the_packaged_allocation_rules_are_the_default_configs():
    """`kamml allocate` without --config on the demo's scores uses the demo's floor and cap.

    The package's floor was 0.5 h against the default config's 0.25 h, so allocating the demo's own
    scores at its 2,000 hours without --config stopped as infeasible (2,183 hours of floors).
    """
    shipped, package = load_config("default").allocation, Config().allocation
    assert (package.floor_hours, package.cap_hours) == (shipped.floor_hours, shipped.cap_hours)
    assert package.active_p_alive == shipped.active_p_alive
    assert package.hours == shipped.hours  # `kamml allocate` without --hours either: the demo's 2,000


@pytest.mark.parametrize("name", ["default", "cdnow", "spark"])
def test_a_shipped_config_loads_by_name_from_any_folder(name, tmp_path, monkeypatch):
    """An installed kamml has no configs/ folder beside it: `--config default` runs its demo anywhere."""
    monkeypatch.chdir(tmp_path)
    packaged = packaged_config(name)
    assert packaged.read_text() == (CONFIGS / f"{name}.yaml").read_text()  # the checkout's configs/ is it
    assert load_config(name) == load_config(packaged)
    (tmp_path / name).mkdir()  # a folder of that name (a job's spark/ outputs) does not hide it
    assert load_config(name) == load_config(packaged)
    (tmp_path / name).rmdir()
    (tmp_path / name).write_text("time: {horizon_days: 30}\n")  # a file of that name in the folder wins
    assert load_config(name).time.horizon_days == 30


def test_a_packaged_name_beside_a_yaml_of_that_name_says_which_it_loads(tmp_path, monkeypatch, caplog):
    """`--config default` beside an edited default.yaml loads the packaged one, and says so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.yaml").write_text("time: {horizon_days: 30}\n")
    with caplog.at_level("WARNING", logger="kamml.config"):
        config = load_config("default")
    assert config == load_config(packaged_config("default"))  # still the packaged one
    assert "loaded kamml's packaged config 'default', not ./default.yaml" in caplog.text
    assert "--config default.yaml" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kamml.config"):
        load_config("cdnow")  # no cdnow.yaml here: nothing to say
    assert caplog.text == ""


def test_a_missing_config_names_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"config file not found: configs/default\.yaml \(.*--config default"
    ):
        load_config("configs/default.yaml")
    with pytest.raises(
        ConfigError, match="no packaged config named 'demo': kamml ships default, cdnow, spark"
    ):
        packaged_config("demo")


def test_model_settings_given_as_numpy_numbers_are_plain_python():
    """The run logs the config as JSON: a grid's np.int64 failed there, after all the training."""
    import json

    import numpy as np

    cfg = Config.from_dict({"models": {"clv": {"n_estimators": np.int64(60), "lambda_l2": np.float32(0.5)}}})
    assert type(cfg.models.clv["n_estimators"]) is int
    assert cfg.models.clv["lambda_l2"] == 0.5
    json.dumps(cfg.model_dump(mode="json"))


def test_defaults_are_valid():
    cfg = Config()
    assert cfg.engine.name == "duckdb"
    assert cfg.tracking.uri.startswith("sqlite:///")


def test_unknown_top_level_key_lists_valid_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("modles: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "unknown key 'modles'" in msg
    for section in ("data", "time", "features", "models", "allocation", "tracking", "engine"):
        assert section in msg


def test_unknown_nested_key_names_path_and_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("time:\n  horizon: 90\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "'time.horizon'" in msg
    assert "horizon_days" in msg
    assert "step_days" in msg


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("time:\n  horizon_days: soon\n")
    with pytest.raises(ConfigError, match=r"time\.horizon_days.*'soon'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("time:\n  horizon_days: -3\n", "horizon_days"),
        ("engine:\n  name: postgres\n", "engine.name"),
        ("features:\n  windows: []\n", "windows"),
        ("- a\n- b\n", "mapping"),
        ("time: [unclosed\n", "not valid YAML"),
        ("allocation:\n  weights: {retention: 1, loyalty: 2}\n", "allocation.weights"),
        ("allocation:\n  weights: {retention: auto}\n", "only the growth weight can be 'auto'"),
        ("allocation:\n  weights: {growth: -0.1}\n", "weight of growth must be a finite number"),
    ],
)
def test_bad_configs_raise_config_error(tmp_path, text, pattern):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "data:\n  path: x\n   bad: 1\n",
            "not valid YAML: line 3, column 7: mapping values are not allowed here",
        ),
        ("a: 1\na: 2\n", "not valid YAML: line 2, column 1: duplicate key 'a'"),
    ],
)
def test_a_yaml_error_is_one_line_naming_line_and_column(tmp_path, text, says):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {says}")
    assert "\n" not in str(info.value)  # PyYAML's own text has file markers on extra lines


def test_a_folder_given_as_the_config_is_named_as_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="is a folder: give the YAML file inside it"):
        load_config(tmp_path)


def test_builtin_and_generate_together_are_refused():
    """Both fill data.path: builtin won and generate was ignored without a word."""
    with pytest.raises(ConfigError, match=r"'data\.builtin' and 'data\.generate' are both set"):
        Config.from_dict({"data": {"builtin": "cdnow", "generate": {"accounts": 100}}})


@pytest.mark.parametrize(
    ("tree", "says"),
    [
        ({"time": {"horizon_days": 1_000_000}}, r"'time\.horizon_days' must be .* to 36,525, got 1000000"),
        ({"time": {"step_days": 100_000_000}}, r"time\.step_days"),
        (
            {"time": {"snapshots": 5000}},
            r"'time\.snapshots' must be a whole number from 1 to 1,000, got 5000",
        ),
        ({"models": {"seed": -5}}, r"models\.seed"),
        ({"models": {"seed": 10**13}}, r"models\.seed"),
        ({"data": {"csv_delimiter": ";;"}}, r"data\.csv_delimiter.*at most 1 character"),
        ({"data": {"csv_delimiter": ""}}, r"data\.csv_delimiter.*at least 1 character"),
        ({"tracking": {"model_name": "rev@x"}}, r"tracking\.model_name.*holds '@'"),
        ({"tracking": {"model_name": "a/b:c"}}, r"holds '/' and ':'"),
        ({"tracking": {"model_name": " "}}, r"tracking\.model_name.*is empty"),
        (
            {"allocation": {"weights": {"referral": True}}},
            r"'allocation\.weights\.referral' must be a number, got true",
        ),
        (
            {"allocation": {"capacity": {"r1": True}}},
            r"'allocation\.capacity\.r1' must be a number, got true",
        ),
        ({"allocation": {"effort_clip": [True, 2]}}, r"'allocation\.effort_clip\[0\]' must be a number"),
        ({"features": {"windows": [True, 90]}}, r"'features\.windows\[0\]' must be a number"),
        ({"features": {"windows": [30, 10**9]}}, r"'features\.windows\[1\]' must .* 36,525, got 1000000000 "),
        ({"features": {"windows": [10**19]}}, r"'features\.windows\[0\]' must .* 36,525, got 10{19} "),
    ],
)
def test_values_that_failed_deep_in_a_job_are_refused_when_read(tree, says):
    """Each passed the config and failed later: a traceback (horizon, step, delimiter), an error naming
    another key (seed), a model that could not be read back (name), or true read as 1 (nested numbers)."""
    with pytest.raises(ConfigError, match=says):
        Config.from_dict(tree)


@pytest.mark.parametrize(
    ("tree", "says"),
    [
        ({"features": {"groups": {"calendar": 0}}}, r"'features\.groups\.calendar' must be true or false"),
        ({"features": {"groups": {"trend": "no"}}}, r"groups\.trend' must be true or false, got 'no'"),
        ({"tracking": {"log_outputs": 1}}, r"'tracking\.log_outputs' must be true or false, got 1"),
        ({"tracking": {"log_outputs": "false"}}, r"'tracking\.log_outputs' must be true or false"),
    ],
)
def test_switches_take_true_or_false_only(tree, says):
    """Pydantic's lax bool read 0 and a quoted 'no' or 'false' as false: a switch is true or false."""
    with pytest.raises(ConfigError, match=says):
        Config.from_dict(tree)


def test_true_and_false_stay_allowed_where_they_belong():
    cfg = Config.from_dict(
        {
            "features": {"groups": {"rfm": True}},
            "tracking": {"log_outputs": False},
            "models": {"clv": {"verbose": -1}},
        }
    )
    assert cfg.features.groups == {"rfm": True}


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/kamml.yaml")


def test_overrides_merge_deeply():
    cfg = load_config(CONFIGS / "default.yaml", overrides={"time": {"horizon_days": 30}})
    assert cfg.time.horizon_days == 30
    assert cfg.time.snapshots == 4


def test_config_error_is_value_error():
    with pytest.raises(ValueError, match="unknown key"):
        Config.from_dict({"nope": 1})


@pytest.mark.parametrize("hours", [".nan", "-1", "-.inf"])
def test_capacity_hours_must_be_a_number_at_least_zero(tmp_path, hours):
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  capacity: {{rep_01: 10, rep_02: {hours}}}\n")
    with pytest.raises(ConfigError, match=r"allocation\.capacity.*rep_02"):
        load_config(path)


@pytest.mark.parametrize("key", ["hours", "floor_hours", "cap_hours", "effort_exponent"])
@pytest.mark.parametrize("value", [".inf", "inf", "1e400"])
def test_allocation_numbers_must_be_finite(tmp_path, key, value):
    """.inf passed the bounds and failed at the allocation with a traceback (exit 1)."""
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"'allocation\.{key}' must be a finite number.*got inf"):
        load_config(path)
    with pytest.raises(ValueError, match="finite"):
        AllocationConfig(**{key: float("inf")})
    assert load_config(None, {"allocation": {"cap_hours": None}}).allocation.cap_hours is None


@pytest.mark.parametrize("years", ["0", "0.05", ".nan", "101"])
def test_generate_years_has_the_rule_and_words_of_generate_years_option(tmp_path, years):
    """``data.generate.years: 0.05`` passed, which `kamml generate --years` refuses (0.01 then failed at the
    job as "must cover at least one month"), and .nan read "should be less than or equal to 100"."""
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  path: d\n  generate:\n    years: {years}\n")
    got = "nan" if years == ".nan" else years
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"'data.generate.years' must be a number of years from 0.1 to 100, got {got}" in str(caught.value)
    assert load_config(None, {"data": {"path": "d", "generate": {"years": 0.1}}}).data.generate.years == 0.1


def test_a_floor_above_the_cap_is_refused_when_the_config_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("allocation:\n  floor_hours: 2\n  cap_hours: 1\n")
    with pytest.raises(ConfigError, match=r"'allocation\.floor_hours' 2 is above 'allocation\.cap_hours' 1"):
        load_config(path)
    path.write_text("allocation:\n  floor_hours: 2\n  cap_hours: null\n")  # no cap: any floor fits
    assert load_config(path).allocation.floor_hours == 2


@pytest.mark.parametrize("clip", ["[0, 4]", "[-1, 4]", "[4, 1]", "[1, .inf]", "[.nan, 2]"])
def test_effort_clip_is_checked_when_the_config_is_read(tmp_path, clip):
    """A bad clip range failed only after training, with a message that did not name the key."""
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  effort_clip: {clip}\n")
    with pytest.raises(ConfigError, match=r"'allocation\.effort_clip' must be \(low, high\) with 0 < low"):
        load_config(path)
    path.write_text("allocation:\n  effort_clip: [0.5, 0.5]\n")
    assert load_config(path).allocation.effort_clip == (0.5, 0.5)


def test_capacity_reps_are_named_as_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("allocation:\n  capacity: {101: 10, 102.0: .inf, ' ann ': 0}\n")
    assert load_config(path).allocation.capacity == {"101": 10.0, "102": float("inf"), "ann": 0.0}
    path.write_text("allocation:\n  capacity: {101: 10, '101': 5}\n")
    with pytest.raises(ConfigError, match="duplicate key '101'"):  # YAML keys are names as written
        load_config(path)
    path.write_text("allocation:\n  capacity: {101: 10, 101.0: 5}\n")
    with pytest.raises(ConfigError, match="'101' is listed more than once"):
        load_config(path)


@pytest.mark.parametrize(
    "metric",
    [
        "value.auc",
        "value.roc_auc",
        "churn.base_rate",
        "a.b.c.d",
        "gini",
        "value.kamml_typo.gini",
        "churn.last_period.roc_auc",
        "referral.btyd.gini",
    ],
)
def test_promote_metric_must_be_a_known_backtest_metric(metric):
    with pytest.raises(ConfigError, match=r"tracking\.promote_metric"):
        Config.from_dict({"tracking": {"promote_metric": metric}})


@pytest.mark.parametrize(
    "metric",
    [
        "value.gini",
        "churn.log_loss",
        "churn.btyd.roc_auc",
        "churn.recency.brier",
        "referral.spearman",
        "value.last_period.gini",
        "referral.past_rate.gini",
        "value.kamml.gini",
    ],
)
def test_promote_metric_accepts_every_task_metric(metric):
    assert Config.from_dict({"tracking": {"promote_metric": metric}}).tracking.promote_metric == metric


def test_a_key_given_twice_in_the_yaml_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("time:\n  horizon_days: 90\nmodels:\n  seed: 1\ntime:\n  snapshots: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'time'"):
        load_config(path)
    path.write_text("time:\n  horizon_days: 90\n  horizon_days: 30\n")
    with pytest.raises(ConfigError, match="duplicate key 'horizon_days'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "kind"), [("? [a, b]\n: 1\n", "sequence"), ("time:\n  ? {a: 1}\n  : 1\n", "mapping")]
)
def test_a_list_or_mapping_as_a_key_is_a_config_error_naming_where(tmp_path, text, kind):
    """A YAML complex key (``? [a, b]``) ended in a TypeError traceback from the duplicate-key check."""
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=rf"not valid YAML: line \d+, column \d+: a key must be a name, not a {kind}"
    ):
        load_config(path)


def test_rep_names_in_the_yaml_are_read_as_written(tmp_path):
    """An allocation audit: YAML 1.1 read rep 010 as the octal number 8, and rep 8 got its capacity."""
    path = tmp_path / "c.yaml"
    path.write_text("allocation:\n  capacity: {010: 25, 08: 6, 0x1F: 7, 1_000: 2, no: 1, 12: 3}\n")
    capacity = load_config(path).allocation.capacity
    assert capacity == {"010": 25.0, "08": 6.0, "0x1F": 7.0, "1_000": 2.0, "no": 1.0, "12": 3.0}
    path.write_text("allocation:\n  capacity: {'010': 25, 010: 5}\n")
    with pytest.raises(ConfigError, match="duplicate key '010'"):  # the same name, quoted or not
        load_config(path)


def test_numbers_with_a_leading_zero_are_decimal_and_base_60_is_not_a_number(tmp_path):
    """YAML 1.1 read ``horizon_days: 030`` as the octal number 24 and ``cap_hours: 1:30`` as 90 (base 60),
    without a word; YAML 1.2, and every reader of the file, take 030 as 30 and 1:30 as no number."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "time:\n  horizon_days: 030\n  step_days: -07\nallocation:\n  hours: 0x10\n"
        "  capacity: {rep_1: 010, rep_2: 0.50}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"'time\.step_days' must be a whole number from 1 to 36,525, got -7"
    ):
        load_config(path)
    path.write_text(path.read_text().replace("-07", "07"), encoding="utf-8")
    cfg = load_config(path)
    assert (cfg.time.horizon_days, cfg.time.step_days) == (30, 7)
    assert cfg.allocation.hours == 16  # hexadecimal is YAML 1.2 too
    assert cfg.allocation.capacity == {"rep_1": 10.0, "rep_2": 0.5}
    path.write_text("allocation:\n  cap_hours: 1:30\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'allocation\.cap_hours' must be a number, got '1:30'"):
        load_config(path)
    path.write_text("engine:\n  spark:\n    conf: {spark.x: 1:30, spark.y: 1:30.5}\n", encoding="utf-8")
    assert load_config(path).engine.spark.conf == {"spark.x": "1:30", "spark.y": "1:30.5"}


@pytest.mark.parametrize("written", ["1:30", "'1:30'", "1:30.5"])
def test_base_60_number_is_refused_with_advice_to_write_it_in_decimal(tmp_path, written):
    """An unquoted ``1:30`` was told to drop quotes it does not have: the advice names base 60 instead."""
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  cap_hours: {written}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "'allocation.cap_hours' must be a number" in message
    assert "without quotes" not in message
    assert "base 60" in message
    assert "decimal" in message


def test_quoted_number_is_still_told_to_drop_its_quotes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('time:\n  horizon_days: "10"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"got '10' \(text\): write the number without quotes"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "key"), [("time", "horizon_days"), ("models", "seed"), ("allocation", "hours")]
)
def test_true_or_false_where_a_number_goes_is_refused(section, key):
    with pytest.raises(ConfigError, match=f"'{section}.{key}' must be a number, got true"):
        Config.from_dict({section: {key: True}})  # pydantic alone reads it as 1: a 1-day horizon


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("output:\n  dir: \n", "output.dir"),  # `dir: ${OUT}` from envsubst with OUT unset
        ("time:\n  horizon_days:\n", "time.horizon_days"),
        ("tracking:\n  uri: null\n", "tracking.uri"),
    ],
)
def test_an_empty_value_for_a_key_without_none_says_to_leave_it_out(tmp_path, text, key):
    """`output.dir:` with no value read "Input is not a valid path for <class 'pathlib.Path'> (got None)"."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"'{key}'" in message
    assert "has no value (null): give one, or leave the key out for its default" in message
    assert "<class" not in message
    assert "None" not in message


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        ("time: {cutoff: 20240101}\n", "time.cutoff", "20240101"),
        ("time: {cutoff: 1704067200}\n", "time.cutoff", "1704067200"),
        ("time: {cutoff: 0}\n", "time.cutoff", "0"),
        ("data: {end: 20241231}\n", "data.end", "20241231"),
    ],
)
def test_a_number_is_no_date(tmp_path, text, key, shown):
    """pydantic read a number as Unix seconds: 1704067200 was 2024-01-01 and 0 was 1970-01-01 without a
    word, and 20240101 was "Datetimes provided to dates should have zero time"."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"'{key}' must be a date \(YYYY-MM-DD\), got {shown}\b"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("tracking: {experiment: no}\n", "tracking.experiment"),
        ("data: {columns: {accounts: {owner: yes}}}\n", "data.columns.accounts.owner"),
        ("features: {static_columns: [region, no]}\n", "features.static_columns[1]"),
        ("allocation: {effort_size_column: off}\n", "allocation.effort_size_column"),
        ("data: {path: no}\n", "data.path"),
    ],
)
def test_yes_or_no_where_text_goes_is_named_as_text(tmp_path, text, where):
    """YAML 1.1 reads an unquoted no (a country code, a column) as false; it was "must be a number"."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"'{where}' must be text, got " in message
    assert "quote it" in message
    assert "number" not in message


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("time: {cutoff: 2025-13-01}\n", "time.cutoff", "2025-13-01"),
        ("time: {cutoff: 2025-02-30}\n", "time.cutoff", "2025-02-30"),
        ("data: {end: 2025-02-30}\n", "data.end", "2025-02-30"),
        ("time: {cutoff: 2025-02-28 25:00:00}\n", "time.cutoff", "2025-02-28 25:00:00"),
    ],
)
def test_an_unquoted_date_that_is_no_day_names_its_key_and_value(tmp_path, text, key, value):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:  # PyYAML's date reader raised a bare ValueError
        load_config(path)
    assert str(err.value).startswith(f"{path}: '{key}' must be a date (YYYY-MM-DD), got '{value}' (")


def test_an_unquoted_real_date_still_reads_as_a_date(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("time: {cutoff: 2024-02-29}\ndata: {end: 2024-03-01}\n")
    cfg = load_config(path)
    assert (cfg.time.cutoff, cfg.data.end) == (dt.date(2024, 2, 29), dt.date(2024, 3, 1))


@pytest.mark.parametrize(
    "value",
    ["2025-07-01T00:00:00+02:00", "2025-07-01T02:00:00+02:00", "2025-06-30T22:00:00-02:00", "2025-07-01"],
)
@pytest.mark.parametrize(("section", "key"), [("time", "cutoff"), ("data", "end")])
def test_a_date_setting_with_an_offset_reads_as_the_cutoff_option_reads_it(tmp_path, value, section, key):
    """The config read 2025-07-01T00:00:00+02:00 (22:00 UTC the day before) as July 1st, and refused
    02:00+02:00 (midnight UTC), the other way round from ``--cutoff`` (`as_cutoff`)."""
    from kamml.features._context import as_cutoff

    path = tmp_path / "c.yaml"
    path.write_text(f"{section}: {{{key}: {value}}}\n")  # unquoted: YAML's own timestamp
    try:
        expected = as_cutoff(value).date()
    except ConfigError:
        with pytest.raises(ConfigError, match=rf"'{section}\.{key}' must be a date .* 22:00:00 UTC"):
            load_config(path)
        return
    assert getattr(getattr(load_config(path), section), key) == expected


def test_an_unknown_feature_group_is_an_unknown_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features: {groups: {rfm: true, foo: false}}\n")
    with pytest.raises(ConfigError) as err:  # passed here and stopped the job at its features
        load_config(path)
    assert str(err.value) == (
        f"{path}: unknown key 'features.groups.foo'; valid keys here: {', '.join(FEATURE_GROUPS)}"
    )
    with pytest.raises(ConfigError, match=r"unknown keys 'features\.groups\.foo', 'features\.groups\.RFM';"):
        Config.from_dict({"features": {"groups": {"foo": False, "RFM": False}}})


def test_feature_groups_can_be_switched_and_the_list_matches_the_features():
    from kamml.features import GROUPS

    assert (*GROUPS, "btyd") == FEATURE_GROUPS
    switchable = [group for group in FEATURE_GROUPS if group not in ("btyd", "rfm")]
    cfg = Config.from_dict(
        {"features": {"groups": {**dict.fromkeys(switchable, False), "btyd": True, "rfm": True}}}
    )
    assert set(cfg.features.groups) == set(FEATURE_GROUPS)


def test_the_btyd_group_cannot_be_switched_off():
    """btyd: false was accepted and ignored: the models are built on BTYD."""
    with pytest.raises(ConfigError, match=r"'features\.groups\.btyd' cannot be switched off"):
        Config.from_dict({"features": {"groups": {"btyd": False}}})


def test_the_rfm_group_cannot_be_switched_off():
    """rfm: false was accepted and crashed training: BG/NBD is fitted on the rfm columns."""
    with pytest.raises(ConfigError, match=r"'features\.groups\.rfm' cannot be switched off"):
        Config.from_dict({"features": {"groups": {"rfm": False}}})


def test_the_config_docs_list_every_feature_group():
    doc = (CONFIGS.parent / "docs" / "config.md").read_text(encoding="utf-8")
    (row,) = [line for line in doc.splitlines() if line.startswith("| `groups` |")]
    listed = re.findall(r"(\w+): true", row)
    assert listed == list(FEATURE_GROUPS)


@pytest.mark.parametrize(
    ("tiers", "says"),
    [
        ("{a: 0.5}", "'allocation.tiers': at least two tiers are needed"),
        ("{a: 0.1, b: 0.5}", "'allocation.tiers.b': the last tier's cumulative share must be 1"),
        (
            "{a: true, b: 1}",
            "'allocation.tiers.a' must be a number, got true",
        ),
        (
            "{a: 1.5, b: 1}",
            "'allocation.tiers.a': a cumulative share of accounts in (0, 1] is needed, got 1.5",
        ),
    ],
)
def test_tiers_that_cannot_be_meant_are_refused_when_the_config_is_read(tmp_path, tiers, says):
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  tiers: {tiers}\n")
    with pytest.raises(ConfigError) as err:  # {a: 0.5} passed and put every account in tier a
        load_config(path)
    assert str(err.value).startswith(f"{path}: {says}")


def test_user_named_tiers_are_kept():
    cfg = Config.from_dict({"allocation": {"tiers": {"gold": 0.1, "silver": 0.4, "bronze": 1}}})
    assert cfg.allocation.tiers == {"gold": 0.1, "silver": 0.4, "bronze": 1.0}


@pytest.mark.parametrize(
    ("models", "says"),
    [
        (
            "{clv: {nonsense_param: 3}}",
            "unknown key 'models.clv.nonsense_param': neither a LightGBM parameter (or alias) nor a setting "
            "of kamml's clv model (offset_feature, offset_weight, monotone)",
        ),
        ("{churn: {num_leavs: 7}}", "unknown key 'models.churn.num_leavs': neither a LightGBM parameter"),
        ("{churn: {num_leavs: 7}}", "did you mean num_leaves"),
        ("{influence: {offset_weight: 0.2}}", "offset_weight is a setting of models.clv"),
        ("{influence: {a: 1, b: 2}}", "keys 'models.influence.a', 'models.influence.b': neither a LightGBM"),
    ],
)
def test_a_model_parameter_lightgbm_does_not_know_is_an_unknown_key(tmp_path, models, says):
    path = tmp_path / "c.yaml"
    path.write_text(f"models: {models}\n")
    with pytest.raises(ConfigError) as err:  # LightGBM ignored it with a warning, at training
        load_config(path)
    assert f"{path}: " in str(err.value)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("models", "says"),
    [
        (
            "{clv: {ignore_column: [3]}}",
            "'models.clv.ignore_column' is never read by kamml's training: it is a setting of LightGBM's "
            "reading of data files; to leave features out, drop their columns (in a config: switch their "
            "group off in features.groups, or list the static columns to keep in features.static_columns)",
        ),
        (
            "{churn: {cat_feature: [0]}}",
            "'models.churn.cat_feature' (LightGBM's categorical_feature) is never read by kamml's training: "
            "it is LightGBM's list of categorical columns, which it ignores in the parameters; kamml's "
            "models take the text and category columns as categorical themselves",
        ),
        (
            "{influence: {weight: w}}",
            "'models.influence.weight' (LightGBM's weight_column) is never read by kamml's training: it is a "
            "setting of LightGBM's reading of data files; kamml builds each model's weights itself",
        ),
        (
            "{clv: {num_machines: 2}}",
            "'models.clv.num_machines' is never read by kamml's training: it is a setting of LightGBM's "
            "distributed training, which kamml does not run",
        ),
        ("{clv: {save_period: 10}}", "'models.clv.save_period' (LightGBM's snapshot_freq) is never read"),
    ],
)
def test_a_lightgbm_parameter_kamml_s_training_never_reads_is_refused(tmp_path, models, says):
    """``ignore_column: [3]`` was accepted and trained on every column: LightGBM reads it from data files
    only (and its command line's settings only there), so the setting did nothing, without a word."""
    path = tmp_path / "c.yaml"
    path.write_text(f"models: {models}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {says}")


def test_lightgbm_parameters_their_aliases_and_kamml_settings_are_accepted():
    assert lightgbm_parameters() is not None  # LightGBM still lists its parameters: the check is on
    models = {
        "clv": {"num_leaf": 7, "min_child_samples": 5, "n_estimators": 10, "offset_weight": 0.3},
        "churn": {"blend_feature": None, "subsample": 0.5, "early_stopping_rounds": 5, "n_jobs": 1},
        "influence": {"objective": "poisson", "reg_lambda": 2.0, "monotone": {"spend_90d": 1}},
    }
    cfg = Config.from_dict({"models": models})
    assert cfg.models.clv == models["clv"]
    assert cfg.models.churn == models["churn"]
    assert cfg.models.influence == models["influence"]


def test_without_lightgbm_s_list_the_names_are_left_to_lightgbm(monkeypatch):
    monkeypatch.setattr("kamml.config.lightgbm_parameters", lambda: None)
    assert Config.from_dict({"models": {"clv": {"nonsense_param": 3}}}).models.clv == {"nonsense_param": 3}


def test_reading_a_config_without_model_parameters_does_not_import_lightgbm():
    code = (
        f"import sys, kamml.config; kamml.config.load_config({str(CONFIGS / 'default.yaml')!r}); "
        "print('lightgbm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("assign", "message"),
    [
        (
            lambda cfg: setattr(cfg.allocation, "weights", {"retension": 1}),
            r"assignment: unknown key 'allocation\.weights\.retension'; valid keys here: retention, growth, "
            r"referral; did you mean retention\?$",
        ),
        (
            lambda cfg: setattr(cfg.time, "horizon_days", 0),
            r"'time\.horizon_days' must be a whole number from 1 to 36,525, got 0$",
        ),
        (
            lambda cfg: setattr(cfg.time, "horizon", 5),
            r"unknown key 'time\.horizon'; valid keys here: cutoff",
        ),
        (lambda cfg: setattr(cfg.models, "clv", {"num_leave": 3}), r"'models\.clv\.num_leave'.*did you mean"),
        (lambda cfg: setattr(cfg.data.columns, "nonsense", 1), r"unknown key 'data\.columns\.nonsense'"),
        # checks of two keys run after pydantic stored the value: it stayed, refused (a config audit)
        (
            lambda cfg: setattr(cfg.allocation, "floor_hours", 50),
            r"floor_hours' 50 is above 'allocation\.cap",
        ),
        (lambda cfg: setattr(cfg.allocation, "cap_hours", 0.1), r"floor_hours' 0\.25 is above 'alloc"),
        (
            lambda cfg: setattr(cfg.allocation, "effort_scale", "foo"),
            r"^assignment: 'allocation\.effort_scale': Input should be a valid number, unable to parse "
            r"string as a number, or input should be 'auto' \(got 'foo'\)$",
        ),
    ],
)
def test_a_bad_assignment_is_a_config_error_naming_the_dotted_key(assign, message) -> None:
    """It was pydantic's ValidationError, unlike from_dict and load_config; the value is not set."""
    cfg = Config()
    with pytest.raises(ConfigError, match=message):
        assign(cfg)
    assert cfg == Config()
    cfg.time.horizon_days = 30  # a good value is set as before
    assert cfg.time.horizon_days == 30


def test_a_refused_data_source_leaves_the_other_one_alone():
    """builtin and generate both set after a refused assignment: a job ran, and builtin won silently."""
    cfg = Config.from_dict({"data": {"path": "data/both", "builtin": "cdnow_sample"}})
    with pytest.raises(ConfigError, match=r"'data\.builtin' and 'data\.generate' are both set"):
        cfg.data.generate = {"accounts": 300}
    assert cfg.data.generate is None
    assert cfg.data.builtin == "cdnow_sample"


def test_spark_conf_values_written_unquoted_are_spark_text():
    """`spark.sql.adaptive.enabled: true` was refused as "must be a number", unquoted 8 as not text."""
    conf = {"spark.sql.adaptive.enabled": True, "spark.sql.shuffle.partitions": 8, "a": 0.5, "b": "x"}
    cfg = Config.from_dict({"engine": {"spark": {"conf": conf}}})
    assert cfg.engine.spark.conf == {
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.shuffle.partitions": "8",
        "a": "0.5",
        "b": "x",
    }
    cfg.engine.spark.conf = {"spark.sql.ansi.enabled": False}
    assert cfg.engine.spark.conf == {"spark.sql.ansi.enabled": "false"}
    with pytest.raises(ConfigError, match=r"'engine\.spark\.conf\.a': Input should be a valid string"):
        Config.from_dict({"engine": {"spark": {"conf": {"a": [1, 2]}}}})
    with pytest.raises(ConfigError, match=r"'engine\.spark\.master': Input should be a valid string"):
        Config.from_dict({"engine": {"spark": {"master": True}}})


def test_a_negative_memory_limit_is_refused():
    """DuckDB reads '-1GB' as its default: a typo silently lifted the limit (an audit)."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"engine": {"memory_limit": "-1GB"}})
    assert str(caught.value) == (
        "config: 'engine.memory_limit' must be a size such as '4GB', not negative, got '-1GB'"
    )
    assert Config.from_dict({"engine": {"memory_limit": "4GB"}}).engine.memory_limit == "4GB"


@pytest.mark.parametrize("key", ["uri", "experiment"])
def test_an_empty_tracking_store_or_experiment_is_refused_when_read(key):
    """Both were accepted and failed only when training started (a config audit)."""
    what = "the MLflow store's URI" if key == "uri" else "the experiment's name"
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"tracking": {key: " "}})
    assert str(caught.value) == f"config: 'tracking.{key}' is empty: give {what}"


def test_config_reads_yaml_merge_keys(tmp_path):
    """`<<: *anchor` (valid YAML, which yaml.safe_load reads) was refused as "not valid YAML" (an audit)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  clv: &lgb {num_leaves: 15, min_child_samples: 5}\n  churn:\n    <<: *lgb\n"
        "    num_leaves: 31\n"
    )
    assert load_config(path).models.churn == {"num_leaves": 31, "min_child_samples": 5}


def test_a_key_twice_is_still_refused_beside_a_merge(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  clv: &lgb {num_leaves: 15}\n  churn:\n    <<: *lgb\n    seed: 1\n    seed: 2\n"
    )
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(path)


@pytest.mark.parametrize("section", ["models", "engine"])
def test_a_thread_count_no_machine_has_is_refused(section):
    """engine.threads 100000 aborted DuckDB (exit 127, no message); models.threads 100000 crashed
    LightGBM (exit 139) (an audit)."""
    with pytest.raises(ConfigError, match=rf"{section}\.threads"):
        Config.from_dict({section: {"threads": 100_000}})


def test_a_section_left_empty_takes_its_defaults(tmp_path):
    """`time:` with its keys commented out is YAML null: it was refused, though every key has a default."""
    path = tmp_path / "c.yaml"
    path.write_text("time:\n  # horizon_days: 90\nallocation:\n")
    cfg = load_config(path)
    assert cfg.time.horizon_days == 180
    assert cfg.allocation.hours == 2000


def test_an_override_does_not_hide_a_section_that_is_not_a_mapping(tmp_path):
    """``time: [1, 2]`` is refused also when an override (``--horizon-days``) sets a key of that section."""
    path = tmp_path / "c.yaml"
    path.write_text("time: [1, 2]\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"'time' must be a section \(a mapping of its keys\), got \[1, 2\]"
    ):
        load_config(path, overrides={"time": {"horizon_days": 30}})
    path.write_text("time:\n", encoding="utf-8")  # an empty section takes the override
    assert load_config(path, overrides={"time": {"horizon_days": 30}}).time.horizon_days == 30


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="needs /dev/fd (Linux, macOS)")
def test_a_config_read_from_a_pipe_is_read_not_missing():
    """``--config <(envsubst < job.yaml)`` (a pipe, not a regular file) was "config file not found"."""
    import os

    read, write = os.pipe()
    try:
        os.write(write, b"time:\n  horizon_days: 90\n")
        os.close(write)
        assert load_config(f"/dev/fd/{read}").time.horizon_days == 90
    finally:
        os.close(read)


def test_a_sqlite_store_under_the_home_folder_is_that_file(tmp_path, monkeypatch):
    """``sqlite:///~/mlruns.db``: SQLAlchemy opened ``./~/mlruns.db``, while the store's lock and kamml's
    checks took ``~`` as the home folder, so the lock guarded another file than the one MLflow wrote."""
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text('tracking:\n  uri: "sqlite:///~/stores/mlruns.db"\n', encoding="utf-8")
    assert load_config(path).tracking.uri == f"sqlite:///{tmp_path}/stores/mlruns.db"
    path.write_text('tracking:\n  uri: "sqlite:///mlruns.db"\n', encoding="utf-8")  # relative: as written
    assert load_config(path).tracking.uri == "sqlite:///mlruns.db"


def test_a_config_under_the_home_folder_is_found_by_its_tilde(tmp_path, monkeypatch):
    """``load_config("~/job.yaml")``, or ``--config=~/job.yaml`` the shell left as written, was not found."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "job.yaml").write_text("time:\n  horizon_days: 90\n", encoding="utf-8")
    assert load_config("~/job.yaml").time.horizon_days == 90


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("data", "path"),
        ("data", "transactions"),
        ("data", "accounts"),
        ("data", "referrals"),
        ("output", "dir"),
        ("engine", "temp_directory"),  # DuckDB spilled into the working folder, which kamml avoids
    ],
)
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_path_is_refused_naming_its_key(tmp_path, section, key, value):
    """A path left empty (``dir: ${OUT}``, envsubst with OUT unset) is refused, not the current folder.

    ``output.dir: ""`` wrote the job's outputs into the folder the command ran in, ``data.path: ""`` read
    that folder as the data, and ``data.accounts: ""`` read every table of the data folder as accounts
    (an audit: "duplicate account ids"); a blank one looked for a file named by spaces.
    """
    path = tmp_path / "job.yaml"
    path.write_text(f'{section}:\n  {key}: "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: '{section}.{key}' is empty: give a path, or leave the key out"


def test_a_data_path_left_out_or_null_is_still_not_given():
    """null keeps meaning "not given" for the data's paths; a path with text is read as written."""
    cfg = Config.from_dict({"data": {"path": None, "accounts": None, "transactions": "tx.csv"}})
    assert (cfg.data.path, cfg.data.accounts, cfg.data.transactions) == (None, None, "tx.csv")
    assert Config.from_dict({"output": {"dir": "out"}}).output.dir == Path("out")


def test_config_md_lists_every_key_with_the_code_default():
    """docs/config.md's tables name every key of each section and no other, plain defaults as Config()'s."""
    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text("utf-8")
    cfg = Config()
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        name = section.split("\n", 1)[0].strip()
        model = getattr(cfg, name)
        fields = type(model).model_fields
        documented: set[str] = set()
        for cell, default in re.findall(r"^\| (`[^|]*`) \| ([^|]*) \|", section, flags=re.MULTILINE):
            keys = re.findall(r"`([a-z_]+)(?:\.[^`]*)?`", cell)
            documented.update(keys)
            plain = re.fullmatch(r"`([^`]+)`|([\d.]+)", default.strip())
            one = len(keys) == 1 and keys[0] in fields and "." not in cell
            if one and plain and plain.group(1) not in fields:  # not "same as horizon_days"
                value = getattr(model, keys[0])
                value = list(value) if isinstance(value, tuple) else value
                value = str(value) if isinstance(value, Path) else value
                assert yaml.safe_load(plain.group(1) or plain.group(2)) == value, f"{name}.{keys[0]}"
        assert documented == set(fields), name


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("data", "path"),
        ("data", "transactions"),
        ("data", "activities"),
        ("output", "dir"),
        ("engine", "temp_directory"),
    ],
)
@pytest.mark.parametrize("value", ["${DATA}/demo", "$HOME/demo", "runs/${RUN_ID}"])
def test_an_environment_variable_in_a_path_is_refused_naming_its_key(tmp_path, section, key, value):
    """kamml expands no variable in a config: ``data.path: ${DATA}/demo`` made a folder named ``${DATA}``.

    With ``data.generate`` the world was written into ``./${DATA}/demo`` and read from there, exit 0,
    and ``output.dir: $OUT/run`` put the outputs in a folder named ``$OUT``.
    """
    path = tmp_path / "job.yaml"
    path.write_text(f'{section}:\n  {key}: "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert f"'{section}.{key}'" in message
    assert "environment variable" in message
    assert "envsubst" in message


@pytest.mark.parametrize("value", ["data/$", "data/a$1", "~/demo", "data/cost $ 2", "data/$$"])
def test_a_dollar_sign_that_names_no_variable_is_a_path_as_written(value):
    """Only ``$NAME`` and ``${NAME}`` are taken for an unfilled variable; other dollar signs are text."""
    assert Config.from_dict({"data": {"transactions": value}}).data.transactions == value


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("time:\n  snapshots: 1" + "0" * 5000 + "\n", r"not valid YAML: .*5001 digits"),
        ("[" * 5000 + "]" * 5000, r"not valid YAML: nested too deeply"),
    ],
)
def test_yaml_python_cannot_hold_is_a_config_error_naming_the_file(tmp_path, text, says):
    """A 5,001-digit number (a ValueError) or 5,000 nested lists (a RecursionError) were tracebacks."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {says}"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("alocation: {}\n", "allocation"),
        ("time:\n  horizon: 90\n", "horizon_days"),
        ("allocation:\n  hour: 10\n", "hours"),
        ("data:\n  generate: {acounts: 50}\n", "accounts"),
    ],
)
def test_a_misspelt_key_names_the_valid_key_it_is_closest_to(tmp_path, text, close):
    """A typo listed every valid key of its section (eighteen for allocation) but not the one meant."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"valid keys here: .*; did you mean {close}\?$"):
        load_config(path)


def test_a_key_like_no_valid_one_lists_the_valid_keys_without_a_guess():
    with pytest.raises(ConfigError, match=r"valid keys here: [a-z_, ]+$"):
        Config.from_dict({"time": {"zzz": 1}})


def test_a_misspelt_key_in_an_assignment_names_the_closest_valid_key():
    cfg = Config()
    with pytest.raises(ConfigError, match=r"unknown key 'allocation.cap_hour'; .*did you mean cap_hours\?$"):
        cfg.allocation.cap_hour = 3


@pytest.mark.parametrize(
    ("section", "close"),
    [
        ({"features": {"groups": {"trnd": True}}}, "trend"),
        ({"allocation": {"weights": {"retension": 1}}}, "retention"),
    ],
)
def test_a_misspelt_feature_group_or_weight_names_the_closest_one(section, close):
    with pytest.raises(ConfigError, match=rf"valid keys here: .*; did you mean {close}\?$"):
        Config.from_dict(section)


@pytest.mark.parametrize("uri", ["hdfs:///crm/kamml", "s3a://bucket/data", "file:///tmp/world"])
def test_a_data_path_uri_is_kept_as_written(uri: str) -> None:
    """`Path` folded ``s3a://bucket/data`` to ``s3a:/bucket/data`` (no bucket) before a reader saw it."""
    from kamml.config import Config

    assert Config.from_dict({"data": {"path": uri}}).data.path == uri
    assert Config.from_dict({"data": {"path": "~/data"}}).data.path == Path.home() / "data"


@pytest.mark.parametrize(
    ("generate", "says"),
    [
        (
            {"accounts": 2_000_001},
            r"'data\.generate\.accounts' must be a whole number of accounts from 1 to 2,000,000, "
            r"got 2,000,001",
        ),
        (
            {"accounts": 10**15},
            r"'data\.generate\.accounts' must be a whole number of accounts from 1 to 2,000,000, "
            r"got 1,000,000,000,000,000",
        ),
        (
            {"accounts": 100_000, "years": 100},
            r"'data\.generate\.accounts' and 'data\.generate\.years': 100,000 accounts over 100 years are "
            r"10,000,000 account-years, above the 8,000,000 a synthetic world may have",
        ),
    ],
)
def test_a_synthetic_world_too_big_for_the_memory_is_a_config_error(tmp_path, generate, says):
    """``data.generate.accounts`` had no upper end: 10**15 ended in numpy's MemoryError, an engine failure
    (exit 4), after the config was taken; the world's memory grows with accounts x years."""
    path = tmp_path / "c.yaml"
    lines = "".join(f"    {key}: {value}\n" for key, value in generate.items())
    path.write_text(f"data:\n  path: d\n  generate:\n{lines}")
    with pytest.raises(ConfigError, match=says):
        load_config(path)
    cfg = load_config(None, {"data": {"path": "d", "generate": {"accounts": 2_000_000, "years": 4}}})
    assert cfg.data.generate is not None
    assert cfg.data.generate.accounts == 2_000_000
    with pytest.raises(ConfigError, match=r"'data\.generate\.accounts' must be a whole number of accounts"):
        cfg.data.generate.accounts = 2_000_001
    with pytest.raises(ConfigError, match=r"8,400,000 account-years, above the 8,000,000"):
        cfg.data.generate.years = 4.2
    assert (cfg.data.generate.accounts, cfg.data.generate.years) == (2_000_000, 4)


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        ("time:\n  horizon_days", '"10"', "time.horizon_days"),
        ("models:\n  threads", "'4'", "models.threads"),
        ("data:\n  path: d\n  generate:\n    accounts", '"500"', "data.generate.accounts"),
        ("allocation:\n  hours", '"1_000.5"', "allocation.hours"),
        ("allocation:\n  active_p_alive", '"0.5"', "allocation.active_p_alive"),
        ("allocation:\n  effort_scale", '"4"', "allocation.effort_scale"),
        ("allocation:\n  weights", '{referral: "0.5"}', "allocation.weights.referral"),
        ("allocation:\n  capacity", '{rep_01: "160"}', "allocation.capacity.rep_01"),
        ("features:\n  windows", '[30, "90"]', "features.windows[1]"),
        ("tracking:\n  promote_margin", '"0.01"', "tracking.promote_margin"),
    ],
)
def test_a_number_given_as_text_is_refused_naming_the_key(tmp_path, section, value, key):
    """pydantic's lax mode read ``horizon_days: "10"`` as 10, where true is refused and the Python API
    (`synthetic.generate(n_accounts="10")`) refuses text: a quoted number is a number only by chance."""
    path = tmp_path / "c.yaml"
    path.write_text(f"{section}: {value}\n")
    shown = re.escape(value.split('"')[1] if '"' in value else value.split("'")[1])
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}' must be a number, got '{shown}' \(text\)"):
        load_config(path)


def test_auto_and_number_settings_still_take_their_words():
    cfg = Config.from_dict({"allocation": {"effort_scale": "auto", "weights": {"growth": "auto"}}})
    assert cfg.allocation.effort_scale == "auto"
    assert cfg.allocation.weights["growth"] == "auto"
    with pytest.raises(ConfigError, match=r"^assignment: 'time\.horizon_days' must be a number, got '30'"):
        cfg.time.horizon_days = "30"  # type: ignore[assignment]
    assert cfg.time.horizon_days == 180


def test_text_yaml_reads_unquoted_is_still_read_as_its_number(tmp_path):
    """YAML 1.1 reads an unquoted 1e3 as text: it was, and stays, the number (quoted numbers are text)."""
    path = tmp_path / "c.yaml"
    path.write_text("allocation:\n  hours: 1e3\n  capacity: {rep_01: 1.5e2}\n")
    cfg = load_config(path)
    assert cfg.allocation.hours == 1000.0
    assert cfg.allocation.capacity == {"rep_01": 150.0}


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("allocation.hours", ".nan", "a finite number >= 0, got nan"),
        ("allocation.floor_hours", ".nan", "a finite number >= 0, got nan"),
        ("allocation.cap_hours", ".nan", "a finite number > 0, got nan"),
        ("allocation.effort_exponent", ".nan", "a finite number >= 0, got nan"),
        ("allocation.hours", "-.inf", "a finite number >= 0, got -inf"),
        ("allocation.active_p_alive", ".nan", "a finite number from 0 to 1, got nan"),
        ("allocation.high_churn_p", ".inf", "a finite number from 0 to 1, got inf"),
        ("tracking.promote_margin", ".nan", "a finite number >= 0, got nan"),
        ("time.horizon_days", ".nan", "a whole number from 1 to 36,525, got nan"),
        ("time.snapshots", ".inf", "a whole number from 1 to 1,000, got inf"),
        ("models.seed", ".nan", "a whole number from 0 to 2,147,483,647, got nan"),
        ("models.max_training_accounts", ".nan", "a whole number >= 1, got nan"),
        ("engine.threads", ".inf", "a whole number from 1 to 1,024, got inf"),
        ("allocation.reasons_max_chars", ".nan", "a whole number >= 21, got nan"),
        ("data.generate.seed", ".nan", "a whole number >= 0, got nan"),
    ],
)
def test_nan_or_inf_for_a_bounded_number_says_the_rule(tmp_path, key, value, says):
    """``hours: .nan`` read "should be greater than or equal to 0 (got nan)", as if nan were below 0."""
    *sections, name = key.split(".")
    text = "".join(f"{'  ' * depth}{section}:\n" for depth, section in enumerate(sections))
    path = tmp_path / "c.yaml"
    path.write_text(text + f"{'  ' * len(sections)}{name}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"'{key}' must be {says}" in str(caught.value)
    section: object = Config.from_dict({"data": {"path": "d", "generate": {}}})
    for part in sections:
        section = getattr(section, part)
    with pytest.raises(ConfigError, match=rf"^assignment: '{re.escape(key)}' must be {re.escape(says)}$"):
        setattr(section, name, float(value.replace(".", "")))


@pytest.mark.parametrize(
    ("windows", "says"),
    [
        ([30, -3], "'features.windows[1]' must be a whole number from 1 to 36,525, got -3"),
        ([0], "'features.windows[0]' must be a whole number from 1 to 36,525, got 0"),
        ([30, 90, -1, 0], "'features.windows[2]' must be a whole number from 1 to 36,525, got -1"),
        ([], "'features.windows' must hold at least one window (a whole number of days), got []"),
    ],
)
def test_a_window_of_no_days_or_fewer_is_named_with_its_item_and_range(windows, says):
    """``windows: [30, -3]`` read "windows must be a non-empty list of positive day counts", naming no
    item, where nan and the other keys' items are named with their range."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"features": {"windows": windows}})
    assert str(caught.value) == f"config: {says}"
    cfg = Config()
    with pytest.raises(ConfigError) as caught:
        cfg.features.windows = windows
    assert str(caught.value) == f"assignment: {says}"
    cfg.features.windows.clear()  # edited in place: said when the section is checked again
    cfg.features.windows.extend(windows)
    with pytest.raises(ConfigError) as caught:
        cfg.features.check_edits()
    assert str(caught.value) == f"config: {says}"


@pytest.mark.parametrize(
    ("windows", "says"),
    [
        ([30, 2.5], "'features.windows[1]' must be a whole number from 1 to 36,525, got 2.5"),
        ([-0.5], "'features.windows[0]' must be a whole number from 1 to 36,525, got -0.5"),
        ([30, "x"], "'features.windows[1]' must be a whole number from 1 to 36,525, got 'x'"),
        ([30, None], "'features.windows[1]' must be a whole number from 1 to 36,525, got null"),
        (
            [30, 40_000],
            "'features.windows[1]' must be a whole number from 1 to 36,525, got 40000 (a window longer than "
            "the history before the cutoff equals the lifetime features: spend_total, orders_total, "
            "quantity_total)",
        ),
        (
            [10**19, 90],
            "'features.windows[0]' must be a whole number from 1 to 36,525, got 10000000000000000000 (a "
            "window longer than the history before the cutoff equals the lifetime features: spend_total, "
            "orders_total, quantity_total)",
        ),
    ],
)
def test_a_window_that_is_no_whole_day_count_in_range_is_named_with_its_item_and_range(windows, says):
    """``windows: [30, 2.5]`` read pydantic's "Input should be a valid integer, got a number with a
    fractional part", and ``[30, 40000]`` "features.windows holds 40,000: ...", where ``[30, -3]`` reads
    "'features.windows[1]' must be a whole number from 1 to 36,525, got -3"."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"features": {"windows": windows}})
    assert str(caught.value) == f"config: {says}"
    cfg = Config()
    with pytest.raises(ConfigError) as caught:
        cfg.features.windows = windows
    assert str(caught.value) == f"assignment: {says}"
    assert cfg.features.windows == Config().features.windows


@pytest.mark.parametrize(
    ("windows", "got"), [(30, "30"), (30.5, "30.5"), ("abc", "'abc'"), ({"a": 30}, "{'a': 30}")]
)
def test_windows_given_as_no_list_say_the_rule(windows, got):
    """``windows: 30`` read pydantic's "'features.windows': Input should be a valid list (got 30)"."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"features": {"windows": windows}})
    assert str(caught.value) == (
        "config: 'features.windows' must be a list of day counts, each a whole number from 1 to 36,525, "
        f"got {got}"
    )


def test_whole_float_windows_are_still_read_as_their_day_counts():
    """``windows: [30.0, 90]`` reads as [30, 90], as before: only a fraction is refused."""
    assert Config.from_dict({"features": {"windows": [90, 30.0]}}).features.windows == [30, 90]
    numpy = pytest.importorskip("numpy")  # a grid's windows: numpy numbers, read as Python's
    for windows in ([numpy.int64(90), numpy.float32(30.0)], numpy.array([90, 30])):
        assert Config.from_dict({"features": {"windows": windows}}).features.windows == [30, 90]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("time.horizon_days", -3, "a whole number from 1 to 36,525, got -3"),
        ("time.horizon_days", 0, "a whole number from 1 to 36,525, got 0"),
        ("time.horizon_days", 2.5, "a whole number from 1 to 36,525, got 2.5"),
        ("time.horizon_days", "x", "a whole number from 1 to 36,525, got 'x'"),
        ("time.horizon_days", 1_000_000, "a whole number from 1 to 36,525, got 1000000"),
        ("time.train_horizon_days", -3, "a whole number from 1 to 36,525, got -3"),
        ("time.train_horizon_days", 7.5, "a whole number from 1 to 36,525, got 7.5"),
        ("time.step_days", 0.5, "a whole number from 1 to 36,525, got 0.5"),
        ("time.step_days", "soon", "a whole number from 1 to 36,525, got 'soon'"),
        ("time.snapshots", 0, "a whole number from 1 to 1,000, got 0"),
        ("time.snapshots", 5000, "a whole number from 1 to 1,000, got 5000"),
        ("time.snapshots", 1.5, "a whole number from 1 to 1,000, got 1.5"),
        ("models.seed", -5, "a whole number from 0 to 2,147,483,647, got -5"),
        ("models.threads", 1.5, "a whole number from 1 to 1,024, got 1.5"),
        ("models.max_training_accounts", 0, "a whole number >= 1, got 0"),
        ("data.generate.seed", -1, "a whole number >= 0, got -1"),
        ("allocation.hours", -3, "a finite number >= 0, got -3"),
        ("allocation.hours", "lots", "a finite number >= 0, got 'lots'"),
        ("allocation.active_p_alive", 2.5, "a finite number from 0 to 1, got 2.5"),
        ("allocation.reasons_max_chars", 5, "a whole number >= 21, got 5"),
        ("engine.threads", 0, "a whole number from 1 to 1,024, got 0"),
        ("tracking.promote_margin", -1, "a finite number >= 0, got -1"),
    ],
)
def test_a_number_setting_out_of_its_rule_says_the_key_rule_and_value(key, value, says):
    """``time.horizon_days: -3`` read pydantic's "'time.horizon_days': Input should be greater than 0
    (got -3)" and ``2.5`` "Input should be a valid integer, got a number with a fractional part", where
    nan reads "'time.horizon_days' must be a whole number from 1 to 36,525, got nan"."""
    *sections, name = key.split(".")
    tree: dict[str, Any] = {name: value}
    for section in reversed(sections):
        tree = {section: tree}
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(tree)
    assert str(caught.value) == f"config: '{key}' must be {says}"
    section: object = Config.from_dict({"data": {"path": "d", "generate": {}}})
    for part in sections:
        section = getattr(section, part)
    before = getattr(section, name)
    with pytest.raises(ConfigError) as caught:
        setattr(section, name, value)
    assert str(caught.value) == f"assignment: '{key}' must be {says}"
    assert getattr(section, name) == before


@pytest.mark.parametrize(
    ("windows", "says"),
    [
        ("[.nan]", "'features.windows[0]' must be a whole number from 1 to 36,525, got nan"),
        ("[30, .inf]", "'features.windows[1]' must be a whole number from 1 to 36,525, got inf"),
        ("[30, 90, -.inf]", "'features.windows[2]' must be a whole number from 1 to 36,525, got -inf"),
    ],
)
def test_nan_or_inf_for_a_window_says_its_range(tmp_path, windows, says):
    """``windows: [.nan]`` read "must be a finite number", without the range the time settings name."""
    path = tmp_path / "c.yaml"
    path.write_text(f"features:\n  windows: {windows}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {says}"
    cfg = Config()
    with pytest.raises(ConfigError) as caught:
        cfg.features.windows = [float(w) for w in windows.strip("[]").replace(".", "").split(", ")]
    assert str(caught.value) == f"assignment: {says}"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (
            "hours",
            "'allocation.hours' must be a finite number >= 0, got inf (allocation.capacity takes .inf for "
            "a rep without a limit)",
        ),
        ("floor_hours", "'allocation.floor_hours' must be a finite number >= 0, got inf"),
        (
            "cap_hours",
            "'allocation.cap_hours' must be a finite number > 0, got inf (null for no cap per account)",
        ),
        ("effort_exponent", "'allocation.effort_exponent' must be a finite number >= 0, got inf"),
    ],
)
def test_inf_for_an_hours_key_says_the_rule_as_nan_does(tmp_path, key, says):
    """``hours: .inf`` read "allocation.hours must be a finite number of hours, got inf", where ``.nan``
    reads "'allocation.hours' must be a finite number >= 0, got nan": one style, the key's range."""
    path = tmp_path / "c.yaml"
    path.write_text(f"allocation:\n  {key}: .inf\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {says}"
    with pytest.raises(ConfigError) as caught:
        setattr(Config().allocation, key, float("inf"))
    assert str(caught.value) == f"assignment: {says}"


def test_nan_accounts_of_a_synthetic_world_say_the_rule():
    """``accounts: .nan`` read pydantic's "Input should be a finite number", without the range."""
    with pytest.raises(
        ConfigError, match=r"'data\.generate\.accounts' must be a whole number of accounts from 1"
    ):
        Config.from_dict({"data": {"path": "d", "generate": {"accounts": float("nan")}}})


@pytest.mark.parametrize(
    ("accounts", "got"),
    [
        (2.5, "2.5"),
        (-0.5, "-0.5"),
        ("many", "'many'"),
        (3_000_000.0, "3,000,000.0"),
        (1e300, "1e+300"),
    ],
)
def test_accounts_that_are_no_whole_number_in_range_say_the_rule(accounts, got):
    """``accounts: 2.5`` read pydantic's "'data.generate.accounts' must be a whole number, got 2.5", with
    no range, where 0 and nan read `accounts_problem`'s "must be a whole number of accounts from 1 to
    2,000,000"; text too. null and true keep the words every number setting has for them."""
    says = f"'data.generate.accounts' must be a whole number of accounts from 1 to 2,000,000, got {got}"
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"data": {"path": "d", "generate": {"accounts": accounts}}})
    assert str(caught.value) == f"config: {says}"
    cfg = Config.from_dict({"data": {"path": "d", "generate": {}}})
    assert cfg.data.generate is not None
    with pytest.raises(ConfigError) as caught:
        cfg.data.generate.accounts = accounts
    assert str(caught.value) == f"assignment: {says}"
    assert cfg.data.generate.accounts == 5_000


def test_whole_float_accounts_are_read_as_their_count_and_null_and_true_keep_their_words():
    """``accounts: 5000.0`` reads as 5000, as ``time.horizon_days: 30.0`` reads as 30; null and true are
    said as for every number setting (``time.horizon_days``)."""
    generate = Config.from_dict({"data": {"path": "d", "generate": {"accounts": 5000.0}}}).data.generate
    assert generate is not None
    assert generate.accounts == 5000
    assert type(generate.accounts) is int
    numpy = pytest.importorskip("numpy")
    for accounts in (numpy.int64(700), numpy.float32(700.0)):
        generate = Config.from_dict({"data": {"path": "d", "generate": {"accounts": accounts}}}).data.generate
        assert generate is not None
        assert generate.accounts == 700
        assert type(generate.accounts) is int
    for value, says in [
        (None, "'{key}' has no value (null): give one, or leave the key out for its default"),
        (True, "'{key}' must be a number, got true"),
    ]:
        for key, tree in [
            ("data.generate.accounts", {"data": {"path": "d", "generate": {"accounts": value}}}),
            ("time.horizon_days", {"time": {"horizon_days": value}}),
        ]:
            with pytest.raises(ConfigError) as caught:
                Config.from_dict(tree)
            assert str(caught.value) == "config: " + says.format(key=key)


@pytest.mark.parametrize(
    ("models", "says"),
    [
        (
            "{clv: {offset_weight: '0.5'}}",
            "'models.clv.offset_weight' must be a finite number >= 0, got '0.5'",
        ),
        ("{clv: {offset_weight: -1}}", "'models.clv.offset_weight' must be a finite number >= 0, got -1"),
        (
            "{influence: {prior_weight: x}}",
            "'models.influence.prior_weight' must be a finite number >= 0, got 'x'",
        ),
        (
            "{influence: {prior_weight: .nan}}",
            "'models.influence.prior_weight' must be a finite number >= 0, got nan",
        ),
        ("{clv: {num_leaves: x}}", "'models.clv.num_leaves' must be a whole number, got 'x'"),
    ],
)
def test_model_settings_that_cannot_train_are_refused_when_the_config_is_read(tmp_path, models, says):
    """``offset_weight: "0.5"`` passed `kamml validate --config`: `check_model_settings` refused it only in
    run and train. Reading the config runs the same check."""
    path = tmp_path / "c.yaml"
    path.write_text(f"models: {models}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {says}"
    path.write_text("models: {clv: {offset_weight: 0.3}, influence: {prior_weight: 0}}\n")
    assert load_config(path).models.clv == {"offset_weight": 0.3}


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: Config(time={"horizon_days": "soon"}), "'time.horizon_days'"),
        (lambda: Config(nonsense=1), "unknown key 'nonsense'; valid keys here: data, time"),
        (
            lambda: Config(models={"clv": {"learning_rate": -1}}),
            "'models.clv.learning_rate' must be a finite number > 0, got -1",
        ),
        (
            lambda: ModelsConfig(clv={"learning_rate": -1}),
            "'models.clv.learning_rate' must be a finite number > 0, got -1",
        ),
        (
            lambda: FeaturesConfig(windows=[30, -3]),
            "'features.windows[1]' must be a whole number from 1 to 36,525, got -3",
        ),
        (lambda: AllocationConfig(floor_hours=True), "'allocation.floor_hours' must be a number, got true"),
    ],
)
def test_a_config_built_directly_raises_the_config_error_from_dict_raises(build, says):
    """``Config(...)`` and a section's class raised pydantic's ValidationError ("1 validation error for
    Config ... Input should be a valid integer, unable to parse string as an integer [type=int_parsing,
    ...]"), while `Config.from_dict`, `load_config` and an assignment raise a `ConfigError` naming the key."""
    with pytest.raises(ConfigError) as caught:
        build()
    assert str(caught.value).startswith(f"config: {says}")


@pytest.mark.parametrize(
    "build",
    [
        lambda models: Config.from_dict({"models": models}),
        lambda models: Config(models=models),
        lambda models: Config.model_validate({"models": models}),
        lambda models: ModelsConfig(**models),
    ],
    ids=["from_dict", "Config", "model_validate", "ModelsConfig"],
)
def test_model_settings_that_cannot_train_are_refused_when_a_config_is_built(build):
    """``Config.from_dict({"models": {"clv": {"learning_rate": -1}}})`` passed: only `load_config` and
    train ran the model check, so a notebook heard of it at train, after the features were built."""
    with pytest.raises(ValueError, match=r"models\.clv.*learning_rate"):  # ConfigError, or pydantic's
        build({"clv": {"learning_rate": -1}})
    assert build({"clv": {"learning_rate": 0.1}}) is not None


@pytest.mark.parametrize(
    ("models", "says"),
    [
        ({"clv": {"learning_rate": -1}}, "'models.clv.learning_rate' must be a finite number > 0, got -1"),
        (
            {"churn": {"learning_rate": True}},
            "'models.churn.learning_rate' must be a finite number > 0, got true",
        ),
        ({"clv": {"n_estimators": 0}}, "'models.clv.n_estimators' must be a whole number >= 1, got 0"),
        (
            {"churn": {"early_stopping_rounds": "x"}},
            "'models.churn.early_stopping_rounds' must be a whole number >= 1 or null, got 'x'",
        ),
        (
            {"influence": {"objective": "foo"}},
            "'models.influence.objective' must be poisson or tweedie, got 'foo'",
        ),
        ({"churn": {"blend_feature": 3}}, "'models.churn.blend_feature' must be text or null, got 3"),
        (
            {"clv": {"num_trees": True}},
            "'models.clv.num_trees' must be a whole number of boosting rounds >= 1, got true",
        ),
        (
            {"churn": {"num_iterations": 0}},
            "'models.churn.num_iterations' must be a whole number of boosting rounds >= 1, got 0",
        ),
        ({"clv": {"num_leaves": 2.5}}, "'models.clv.num_leaves' must be a whole number, got 2.5"),
        ({"churn": {"min_data_in_leaf": -3}}, "'models.churn.min_data_in_leaf' must be >= 0, got -3"),
        ({"clv": {"reg_alpha": -1}}, "'models.clv.reg_alpha' must be >= 0, got -1"),  # LightGBM: lambda_l1
        ({"influence": {"num_leaf": 1}}, "'models.influence.num_leaf' must be > 1, got 1"),
        ({"clv": {"bagging_fraction": 2}}, "'models.clv.bagging_fraction' must be <= 1, got 2"),
        # the estimators' own checks read "models.clv: ClvModel supports objective tweedie or poisson, ..."
        ({"clv": {"objective": "binary"}}, "'models.clv.objective' must be tweedie or poisson, got 'binary'"),
        ({"churn": {"application": "tweedie"}}, "'models.churn.application' must be binary, got 'tweedie'"),
        (
            {"influence": {"objective": "poisson", "app": "tweedie"}},
            "'models.influence.app' must be given as 'models.influence.objective', got 'tweedie'",
        ),
        (
            {"clv": {"early_stopping": 5}},
            "'models.clv.early_stopping' must be given as 'models.clv.early_stopping_rounds', got 5",
        ),
        (
            {"churn": {"monotone": {"spend_90d": 0, "monetary": -2}}},
            "'models.churn.monotone.monetary' must be 1, -1 or 0, got -2",
        ),
        (
            {"clv": {"monotone": {"spend_90d": True}}},
            "'models.clv.monotone.spend_90d' must be 1, -1 or 0, got true",
        ),
        (
            {"influence": {"monotone": {"spend_90d": 1}, "mc": [1]}},
            "'models.influence.mc' must be left out when 'models.influence.monotone' gives the constraints "
            "by feature name, got [1]",
        ),
        (
            {"clv": {"monotone": {"spend_90d": 1}, "linear_tree": True}},
            "'models.clv.linear_tree' must be false when 'models.clv.monotone' constrains a feature "
            "(LightGBM holds the constraints at the splits, not in the leaves' linear models), got true",
        ),
        (
            {"clv": {"mc_method": "bogus"}},
            "'models.clv.mc_method' must be basic, intermediate or advanced, got 'bogus'",
        ),
        # a float with a fraction where a whole number goes, by its name (2.0 is read as 2)
        (
            {"clv": {"num_leaves": 7, "num_leaf": 9}},
            "'models.clv.num_leaf' must be left out beside 'models.clv.num_leaves', got 9",
        ),
        ({"clv": {"n_estimators": 2.5}}, "'models.clv.n_estimators' must be a whole number >= 1, got 2.5"),
        (
            {"churn": {"early_stopping_rounds": 2.5}},
            "'models.churn.early_stopping_rounds' must be a whole number >= 1 or null, got 2.5",
        ),
    ],
)
def test_a_model_setting_error_names_its_key_the_rule_and_the_value(models, says):
    """scikit-learn's and LightGBM's words ("The 'learning_rate' parameter of ClvModel must be a float in
    the range (0.0, inf). Got -1 instead.", "Check failed: (lambda_l1) >= (0.0)") named neither the key of
    the config nor, for an alias, the name the config gave; said as the config's other errors say it."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"models": models})
    assert str(caught.value) == f"config: {says}"
    cfg = Config()
    ((name, settings),) = models.items()
    with pytest.raises(ConfigError) as caught:
        setattr(cfg.models, name, settings)
    assert str(caught.value) == f"assignment: {says}"


def test_whole_number_model_settings_take_a_float_without_a_fraction_as_the_other_keys_do():
    """``n_estimators: 2.0`` was "must be a whole number >= 1, got 2.0" while ``time.horizon_days: 2.0``,
    ``models.seed: 2.0`` and ``num_iterations: 2.0`` were read as 2."""
    tree = {"time": {"horizon_days": 2.0}, "models": {"seed": 2.0}}
    cfg = Config.from_dict(tree)
    assert type(cfg.time.horizon_days) is int
    assert type(cfg.models.seed) is int
    floats = {"n_estimators": 2.0, "early_stopping_rounds": 3.0}
    cfg = Config.from_dict({"models": {"clv": floats, "churn": floats, "influence": floats}})
    assert cfg.models.clv == floats  # as given, as the config logs it; the estimators get 2 and 3
    cfg.models.churn = {"n_estimators": 4.0, "early_stopping_rounds": None}


def test_model_settings_assigned_to_a_config_are_checked_and_a_refused_one_is_not_kept():
    cfg = Config()
    with pytest.raises(ConfigError, match=r"^assignment: .*models\.clv.*learning_rate"):
        cfg.models.clv = {"learning_rate": -1}
    assert cfg.models.clv == {}
    with pytest.raises(ConfigError, match=r"^assignment: .*models\.churn.*n_estimators"):
        cfg.models = {"churn": {"n_estimators": 0}}  # type: ignore[assignment]
    assert cfg.models.churn == {}


def test_building_a_config_without_model_settings_does_not_import_the_model_stack():
    """The model check loads LightGBM and scikit-learn (seconds): only for a models section with settings."""
    code = (
        "import sys; from kamml.config import Config; "
        "Config(); Config.from_dict({'models': {'seed': 3, 'threads': 1}, 'time': {'horizon_days': 30}}); "
        "print(sorted(m for m in ('lightgbm', 'sklearn', 'kamml.models') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("tree", "says"),
    [
        ({"data": {"path": 1}}, "'data.path' must be a path (text), got 1"),
        ({"data": {"path": {"a": 1}}}, "'data.path' must be a path (text), got {'a': 1}"),
        ({"output": {"dir": []}}, "'output.dir' must be a path (text), got []"),
        ({"time": 5}, "'time' must be a section (a mapping of its keys), got 5"),
        ({"engine": {"spark": "x"}}, "'engine.spark' must be a section (a mapping of its keys), got 'x'"),
        (
            {"allocation": {"effort_clip": [1]}},
            "'allocation.effort_clip' must be (low, high) with 0 < low <= high < inf, got [1]",
        ),
        (
            {"allocation": {"effort_clip": [1, 2, 3]}},
            "'allocation.effort_clip' must be (low, high) with 0 < low <= high < inf, got [1, 2, 3]",
        ),
        (
            {"allocation": {"effort_scale": -1}},
            "'allocation.effort_scale' must be 'auto' or a number of hours > 0, got -1",
        ),
        (
            {"allocation": {"weights": {"retention": -1}}},
            "'allocation.weights': weight of retention must be a finite number >= 0 or (growth only) 'auto'",
        ),
        (
            {"features": {"windows": [30, 1.5]}},
            "'features.windows[1]' must be a whole number from 1 to 36,525, got 1.5",
        ),
        (
            {"features": {"static_columns": [1]}},
            "'features.static_columns[0]': Input should be a valid string (got 1)",
        ),
        (
            {"data": {"end": "2025-02-30"}},
            "'data.end' must be a date (YYYY-MM-DD), got '2025-02-30' (day value is outside expected range)",
        ),
        (
            {"time": {"cutoff": "2025/01/01"}},
            "'time.cutoff' must be a date (YYYY-MM-DD), got '2025/01/01' (invalid date separator, "
            "expected `-`)",
        ),
    ],
)
def test_a_wrong_value_reads_in_kamml_s_words_not_pydantic_s_internals(tree, says):
    """``data.path: 1`` named "data.path.lax-or-strict[lax=union[json-or-python[...]]]", ``output.dir: []``
    "a valid path for <class 'pathlib.Path'>", ``time: 5`` "instance of TimeConfig", ``effort_clip: [1]``
    "'allocation.effort_clip.1': Field required", and a check's own words came after "Value error,"."""
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(tree)
    assert str(caught.value) == f"config: {says}"
