"""Typed configuration for kamml jobs (DESIGN §12), loaded from YAML and validated by pydantic.

An unknown key or a wrong type fails with a `ConfigError` that names the key (as a dotted path) and, for
unknown keys, lists the valid ones, whether it comes from a file, `Config.from_dict` or an assignment
(``cfg.time.horizon_days = 0``). Relative paths in a config file are resolved against the folder the
command runs in, so a config works the same from the CLI, a notebook or a scheduler.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import itertools
import logging
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from kamml.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURE_GROUPS",
    "MODEL_SETTINGS",
    "NA_TEXTS",
    "NO_TIER",
    "URI_SCHEME",
    "AllocationConfig",
    "Config",
    "DataConfig",
    "EngineConfig",
    "FeaturesConfig",
    "GenerateConfig",
    "ModelsConfig",
    "SparkConfig",
    "TimeConfig",
    "TrackingConfig",
    "is_uri",
    "lightgbm_parameters",
    "load_config",
    "tier_shares",
    "unknown_lightgbm_parameters",
]

TABLES = ("transactions", "accounts", "referrals", "activities")


def to_plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays (in nested mappings and lists too) as Python values.

    Settings handed out by numpy (``np.arange`` in a grid search, ``np.float32``) pass every range
    check but not ``json.dumps``, which the saved models and the logged config go through.
    """
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, without importing numpy here
    if callable(tolist) and type(value).__module__ == "numpy":
        return to_plain(tolist())
    return value


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    # no protected "model_" prefix: `tracking.model_name` is a setting (pydantic < 2.10 warned of it)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def __init__(self, /, **data: Any) -> None:
        """Build and validate; a bad value or unknown key is a `ConfigError` naming the dotted key.

        ``Config(time={"horizon_days": "soon"})`` and a section's class raised pydantic's ValidationError,
        unlike `Config.from_dict`, `load_config` and an assignment (`__setattr__`). Only a direct call:
        sections inside a config, and `model_validate`, are validated without it (pydantic's own API).
        """
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, "config", _section_path(type(self)))) from None

    # pydantic's mark of an __init__ that only wraps its own (as its RootModel's): without it pydantic
    # calls this one for each section inside a config and in model_validate too, so one section's error
    # hid the others and `load_config` said "config: 'time': config: 'time.horizon_days' ..."
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def check_edits(self) -> None:
        """Validate the section again: a `ConfigError` naming the key, as loading it would raise.

        Edits inside a list or dict (``cfg.features.windows.append(-30)``, ``cfg.features.groups["rfm"]
        = False``) skip validation on assignment: a negative window built ``spend_-30d``, and rfm off
        ended a backtest in a KeyError. Called where a job reads the section.
        """
        try:
            type(self).model_validate(self.model_dump())
        except ValidationError as exc:
            raise ConfigError(_describe(exc, "config", _section_path(type(self)))) from None

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign with validation; a bad value or unknown key is a `ConfigError` naming the dotted key.

        pydantic raised its own ValidationError (``cfg.allocation.weights = {"retension": 1}``), unlike
        `Config.from_dict` and `load_config`; the message is theirs (`_describe`), the key's path found
        from the section's class (`_section_path`). Private attributes are set as pydantic sets them.
        A refused value leaves the key as it was, also where a check of two keys refuses it.
        """
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        prefix = _section_path(type(self))
        if name not in type(self).model_fields:
            key = ".".join([*prefix, name])
            raise ConfigError(
                f"assignment: unknown key '{key}'; {_valid_keys(name, type(self).model_fields)}"
            )
        before = self.__dict__.get(name)
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            # a check of two keys (floor against cap) runs after pydantic has stored the new value
            self.__dict__[name] = before
            raise ConfigError(_describe(exc, "assignment", prefix)) from None

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section left empty (`time:` with its keys commented out, YAML null) takes its defaults."""
        if isinstance(data, dict):
            for name, value in list(data.items()):
                field = cls.model_fields.get(name)
                kind = field.annotation if field is not None else None
                if value is None and isinstance(kind, type) and issubclass(kind, BaseModel):
                    data = {**data, name: {}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _no_yes_no_for_numbers(cls, data: Any) -> Any:
        """Refuse true/false where a number goes: pydantic reads them as 1 and 0 (a 1-day horizon).

        Where text goes (a name, a column, a path), an unquoted yes/no/on/off is YAML 1.1's true/false:
        said as text to quote (`tracking.experiment: no` was "must be a number").
        """
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is None or _takes_bool(field.annotation):
                    continue
                what = _scalar_kind(field.annotation)
                if what is None:  # a date or a choice: pydantic's own message names what it takes
                    continue
                where = (name, value) if isinstance(value, bool) else None
                if isinstance(value, dict | list | tuple) and not _holds_bool_or_section(field.annotation):
                    where = _bool_inside(value, name)  # weights: {referral: true} read as 1
                if where is not None:  # named with its section by `_describe`
                    raise PydanticCustomError(
                        "kamml_bool",
                        "{key} must be {what}",
                        {"key": where[0], "got": str(where[1]).lower(), "what": what},
                    )
                words = _words(field.annotation) if what == "a number" else None
                text = _text_inside(value, name, words) if words is not None else None
                if text is not None:  # named with its section by `_describe`
                    raise PydanticCustomError(
                        "kamml_text", "{key} must be a number", {"key": text[0], "got": text[1]}
                    )
        return data


def _holds_bool_or_section(annotation: Any) -> bool:
    """Whether a type admits a bool, Any or a config section anywhere inside it (dict values, items)."""
    if annotation is bool or annotation is Any:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_bool_or_section(arg) for arg in get_args(annotation) if arg is not type(None))


def _inside(value: Any, path: str, found: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """The first leaf of nested mappings and lists that `found` picks, with its dotted path; else None."""
    if found(value):
        return path, value
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    for key, item in items:
        hit = _inside(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]", found)
        if hit is not None:
            return hit
    return None


def _bool_inside(value: Any, path: str) -> tuple[str, bool] | None:
    """The first true/false inside nested mappings and lists, with its dotted path; None if there is none."""
    return _inside(value, path, lambda v: isinstance(v, bool))


def _words(annotation: Any) -> frozenset[str] | None:
    """The texts a field's values may be (its Literal words: 'auto'); None where any text goes (str, Any).

    A dict's keys are names, so only its values count.
    """
    if annotation in (str, Path) or annotation is Any:
        return None
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return frozenset(str(arg) for arg in args)
    if get_origin(annotation) is dict:
        args = args[1:]
    words: set[str] = set()
    for arg in args:
        inner = _words(arg)
        if inner is None:
            return None
        words |= inner
    return frozenset(words)


def _text_inside(value: Any, path: str, words: frozenset[str]) -> tuple[str, str] | None:
    """The first text other than `words` in a value, inside mappings and lists too, with its dotted path.

    pydantic's lax mode read a quoted number (``horizon_days: "10"``, ``windows: [30, "90"]``) as the
    number, though true is refused there and the Python API refuses text: a number only by chance. Only
    text YAML reads as a number when unquoted counts (`_quoted_number`): YAML 1.1 reads an unquoted
    ``1e3`` or ``inf`` as text, which pydantic still reads as the number (and the bounds then check).
    """
    return _inside(value, path, lambda v: isinstance(v, str) and v not in words and _quoted_number(v))


def _quoted_number(text: str) -> bool:
    """Whether YAML would read `text` written without quotes as a number: text only when quoted."""
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))  # the safe loader's
    return tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _text_number_hint(got: Any) -> str:
    """What to do about text where a number goes: drop the quotes, or write base 60 (``1:30``) in decimal."""
    if ":" in str(got):  # unquoted too: YAML 1.2 reads no base 60, so quotes are not what made it text
        return (
            "a number written with colons (YAML 1.1's base 60: 1:30 was 90) is no number; write it in decimal"
        )
    return "write the number without quotes"


def _scalar_kind(annotation: Any) -> str | None:
    """What a field's values are, inside lists and dicts too: "a number", "text" or None (dates, choices)."""
    if annotation in (int, float):
        return "a number"
    kinds = {_scalar_kind(arg) for arg in get_args(annotation)}  # a Literal's values are None
    if "a number" in kinds:
        return "a number"
    if annotation in (str, Path) or "text" in kinds:
        return "text"
    return None


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (bool itself, Any, or a union with one of them)."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(arg) for arg in get_args(annotation) if arg is not type(None))


#: The length of a synthetic world's history, in years: ``data.generate.years`` and `kamml generate --years`.
GENERATE_YEARS = (0.1, 100.0)


def years_problem(years: float) -> str | None:
    """What is wrong with a synthetic history's length, or None: one rule and wording for the config and CLI.

    ``data.generate.years`` took anything above 0 (0.01 failed at the job: "must cover at least one
    month") and read ``.nan`` as "should be less than or equal to 100", where ``--years`` took 0.1 to 100.
    """
    low, high = GENERATE_YEARS
    if low <= years <= high:  # not nan
        return None
    return f"must be a number of years from {low:g} to {high:g}, got {years:g}"


#: The most accounts a synthetic world may have (``data.generate.accounts``, `kamml generate --accounts`,
#: `kamml.datasets.synthetic.generate`). Generating 2,000,000 accounts over 3 years peaked at 10.1 GB on the
#: project's 24 GB machine (1,000,000: 5.2 GB, `benchmarks/score.py`'s world, the largest a real use asks
#: for); 10**15 ended in numpy's MemoryError, reported as an engine failure.
GENERATE_MAX_ACCOUNTS = 2_000_000
#: The most accounts x years a synthetic world may have: its memory grows with both, at most about 1.7 GB
#: per million account-years measured (2,000,000 over 3 years: 10.1 GB; 10,000 over 100 years: 1.4 GB),
#: so 2 million accounts over 4 years, or 80,000 over 100, stay within about 14 GB of the 24.
GENERATE_MAX_ACCOUNT_YEARS = 8_000_000


def accounts_problem(accounts: object) -> str | None:
    """What is wrong with a synthetic world's number of accounts, or None: one rule for the config and API.

    A whole float (5000.0) is a count, as the config's other whole-number settings read it; 2.5, text,
    a bool or nan is not, and is said with the range as 0 is (pydantic said 2.5 "must be a whole number").
    """
    number = isinstance(accounts, int | float) and not isinstance(accounts, bool)
    whole = isinstance(accounts, int) or (isinstance(accounts, float) and accounts.is_integer())
    if number and whole and 1 <= accounts <= GENERATE_MAX_ACCOUNTS:  # type: ignore[operator]  # a number
        return None
    got = f"{accounts:,}" if number else repr(accounts)
    return f"must be a whole number of accounts from 1 to {GENERATE_MAX_ACCOUNTS:,}, got {got}"


def world_size_problem(accounts: int, years: float) -> str | None:
    """What is wrong with a synthetic world's accounts x years (its memory), or None."""
    if accounts * years <= GENERATE_MAX_ACCOUNT_YEARS:
        return None
    return (
        f"{accounts:,} accounts over {years:g} years are {accounts * years:,.0f} account-years, above the "
        f"{GENERATE_MAX_ACCOUNT_YEARS:,} a synthetic world may have (its memory grows with both: 2 million "
        "accounts over 3 years take 10 GB to generate); give fewer accounts or fewer years"
    )


class GenerateConfig(_Section):
    """Generate a synthetic world into `data.path` when it holds no transactions yet."""

    accounts: int = 5_000
    seed: int = Field(42, ge=0)
    years: float = 3.0

    @field_validator("accounts", mode="before")
    @classmethod
    def _whole_accounts(cls, value: Any) -> Any:
        """Refuse accounts that are no whole number (nan, 2.5, "many", 1e300) with `accounts_problem`'s rule.

        pydantic said nan "should be a finite number" and 2.5 or text "must be a whole number", with no
        range. A whole float in range (5000.0) is read as its count, as the other whole-number settings
        read it; null and true keep the words every number setting has for them (`_describe`).
        """
        value = to_plain(value)  # a grid's np.int64 or np.float32, read as Python's
        if value is None or isinstance(value, bool | int):  # an int's range: `_accounts_in_range`
            return value
        problem = accounts_problem(value)
        if problem is not None:
            raise _key_error(f"'data.generate.accounts' {problem}")
        return int(value)

    @field_validator("accounts")
    @classmethod
    def _accounts_in_range(cls, value: int) -> int:
        """`accounts_problem`'s rule, as `kamml.datasets.synthetic.generate` has it."""
        problem = accounts_problem(value)
        if problem is not None:
            raise _key_error(f"'data.generate.accounts' {problem}")
        return value

    @model_validator(mode="after")
    def _size_in_memory(self) -> GenerateConfig:
        """Accounts x years within `GENERATE_MAX_ACCOUNT_YEARS`: the world's memory grows with both."""
        problem = world_size_problem(self.accounts, self.years)
        if problem is not None:
            raise _key_error(f"'data.generate.accounts' and 'data.generate.years': {problem}")
        return self

    @field_validator("years")
    @classmethod
    def _years_in_range(cls, value: float) -> float:
        """`years_problem`'s rule, as `kamml generate --years` has it."""
        problem = years_problem(value)
        if problem is not None:
            raise _key_error(f"'data.generate.years' {problem}")
        return value


class ColumnsConfig(_Section):
    """Column names in the user's tables, per table: kamml name -> user's name."""

    transactions: dict[str, str] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(default_factory=dict)
    referrals: dict[str, str] = Field(default_factory=dict)
    activities: dict[str, str] = Field(default_factory=dict)


def _midnight_utc(value: Any, key: str) -> Any:
    """A date setting's time of day, if any, read in UTC as ``--cutoff`` reads it (`as_cutoff`): midnight.

    pydantic took "2025-07-01T00:00:00+02:00" (22:00 UTC the day before) as July 1st, which
    ``--cutoff`` refuses, and refused "2025-07-01T02:00:00+02:00" (midnight UTC), which it takes.
    A number is refused: pydantic read it as Unix seconds (``cutoff: 1704067200`` was 2024-01-01, ``0``
    1970-01-01, and ``20240101`` "should have zero time"). Anything else is left to pydantic's date parsing.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _key_error(f"'{key}' must be a date (YYYY-MM-DD), got {value}")
    stamp = value
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}[T ]", value.strip()):
        try:
            stamp = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return value  # pydantic names what it cannot read
    if not isinstance(stamp, dt.datetime):
        return value
    aware = stamp.tzinfo is not None
    if aware:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    if stamp.time() != dt.time(0):
        raise _key_error(
            f"'{key}' must be a date (YYYY-MM-DD), got {value!s}, which has the time of day "
            f"{stamp.time()}{' UTC' if aware else ''}: it is a whole day (midnight, UTC)"
        )
    return stamp.date()


def _expand_home(path: Path | str | None) -> Path | str | None:
    """A folder setting with a leading ``~`` as the home folder, as the table readers take it (a URI as is).

    ``data.path: ~/demo`` with ``data.generate`` wrote the world into a folder named ``~`` in the working
    folder and then read the home folder's (not found), and ``output.dir: ~/out`` wrote there too.
    """
    return path.expanduser() if isinstance(path, Path) else path


#: A URI's scheme (``s3a://``, ``hdfs:///``, ``dbfs:/``): two characters at least, so ``C:`` is a drive.
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def is_uri(value: object) -> bool:
    """Whether a data setting or source is written as a URI (``hdfs:///crm``), not a local file so named."""
    if not isinstance(value, str | Path) or not URI_SCHEME.match(str(value)):
        return False
    return not Path(value).expanduser().exists()


def _uri_as_written(value: Any) -> Any:
    """``data.path`` as text when it is a URI: `Path` folded ``s3a://bucket/x`` to ``s3a:/bucket/x``."""
    if isinstance(value, str) and is_uri(value):
        return value
    return Path(value) if isinstance(value, str) else value


def _not_blank(value: Any, info: ValidationInfo) -> Any:
    """Refuse a path setting given as empty or blank text, or holding an environment variable.

    ``output.dir: ${OUT}`` filled by envsubst with OUT unset wrote the job's outputs into the folder the
    command ran in, ``data.accounts: ""`` read every table of the data folder as the accounts, and
    ``engine.temp_directory: ""`` had DuckDB spill into the working folder. No variable is expanded:
    ``data.path: ${DATA}/demo`` with ``data.generate`` wrote the world into a folder named ``${DATA}``.
    """
    section = {"dir": "output", "temp_directory": "engine"}.get(str(info.field_name), "data")
    if isinstance(value, str) and not value.strip():
        raise _key_error(f"'{section}.{info.field_name}' is empty: give a path, or leave the key out")
    variable = _ENV_VARIABLE.search(value) if isinstance(value, str) else None
    if variable is not None:
        raise _key_error(
            f"'{section}.{info.field_name}' holds {variable.group(0)}, an environment variable, which kamml "
            f"does not expand in a config (it was read as part of the name): fill it in before "
            "(--config <(envsubst < job.yaml)) or write the path"
        )
    return value


#: ``$NAME`` or ``${NAME}`` in a path setting: a variable left unfilled (envsubst's and the shell's form).
_ENV_VARIABLE = re.compile(r"\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)")


def sqlite_home(uri: str) -> str:
    """``sqlite:///~/mlruns.db`` as the home folder's file: SQLAlchemy opened a folder named ``~``.

    The store's lock and kamml's checks took ``~`` as the home folder, so they guarded another file.
    For ``tracking.uri`` and an exported ``MLFLOW_TRACKING_URI`` alike; other URIs are unchanged.
    """
    prefix = "sqlite:///"
    if uri.startswith(f"{prefix}~"):
        return prefix + str(Path(uri[len(prefix) :]).expanduser())
    return uri


class DataConfig(_Section):
    """Where the input tables are and how their columns are named."""

    #: A local folder, or a URI as written (``hdfs:///crm/kamml``), which the jobs read through Spark.
    path: Path | str | None = None
    transactions: str | None = None
    accounts: str | None = None
    referrals: str | None = None
    activities: str | None = None
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    end: dt.date | None = None
    generate: GenerateConfig | None = None
    builtin: Literal["cdnow", "cdnow_sample"] | None = None
    csv_delimiter: str | None = Field(None, min_length=1, max_length=1)

    _whole_day = field_validator("end", mode="before")(lambda value: _midnight_utc(value, "data.end"))
    _uri = field_validator("path", mode="before")(_uri_as_written)  # before validators run last first
    _blank = field_validator("path", *TABLES, mode="before")(_not_blank)
    _home = field_validator("path")(_expand_home)

    @model_validator(mode="after")
    def _one_source_to_fill(self) -> DataConfig:
        """`generate` and `builtin` both fill `path`: with both set, builtin won and generate was ignored."""
        if self.generate is not None and self.builtin is not None:
            raise _key_error(
                "'data.builtin' and 'data.generate' are both set: each fills data.path with its own data "
                "(the packaged log or the synthetic world); keep one"
            )
        return self


#: The longest span in days a time setting may take: a century.
MAX_DAYS = 36_525
#: The most training snapshots a config may stack.
MAX_SNAPSHOTS = 1000
#: The shortest `allocation.reasons_max_chars`: the longest lead of the reasons ("little value at stake",
#: `kamml.allocation.tiers.PHRASES`), which always stays.
REASONS_MIN_CHARS = 21


class TimeConfig(_Section):
    """Cutoff, horizon and snapshot stacking (DESIGN §3)."""

    cutoff: dt.date | None = None
    # bounded so that dates stay dates: a million days overflowed pandas' time range (a traceback)
    horizon_days: int = Field(180, gt=0, le=MAX_DAYS)
    train_horizon_days: int | None = Field(None, gt=0, le=MAX_DAYS)
    snapshots: int = Field(4, ge=1, le=MAX_SNAPSHOTS)
    step_days: int = Field(90, gt=0, le=MAX_DAYS)
    unit: Literal["days", "weeks"] = "days"

    _whole_day = field_validator("cutoff", mode="before")(lambda value: _midnight_utc(value, "time.cutoff"))

    @property
    def training_horizon_days(self) -> int:
        """The models' label window, as the features': train_horizon_days when set, else horizon_days."""
        return self.train_horizon_days or self.horizon_days

    @property
    def unit_days(self) -> int:
        """Days in one rfm time unit (`unit`): 7 for weeks, else 1."""
        return 7 if self.unit == "weeks" else 1


def _key_error(message: str) -> PydanticCustomError:
    """A validation error whose message names its key itself, shown as it is (`_describe`)."""
    return PydanticCustomError("kamml_key", "{message}", {"message": message})


#: The feature groups `features.groups` switches: `kamml.features.groups.GROUPS` in their order, and
#: `btyd` (added by kamml.models). Named here so that reading a config does not import Ibis.
FEATURE_GROUPS = (
    "rfm",
    "windows",
    "calendar",
    "trend",
    "regularity",
    "breadth",
    "products",
    "referral",
    "effort",
    "static",
    "btyd",
)


def _window_rule() -> str:
    """The rule of each of `features.windows`, in the words of the time settings (``time.horizon_days``)."""
    return _bounds_rule(True, {"ge": 1, "le": MAX_DAYS})


class FeaturesConfig(_Section):
    """Feature windows and feature groups switched on or off (DESIGN §4)."""

    windows: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    #: true or false only: pydantic's lax bool read 0, 'no' and 'off' as false (`StrictBool`)
    groups: dict[str, StrictBool] = Field(default_factory=dict)
    #: accounts columns the static group uses (attr_<name>); None: every numeric, boolean or text one
    static_columns: list[str] | None = None

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, value: dict[str, bool]) -> dict[str, bool]:
        """Only groups that exist: a misspelt one would pass here and stop the job at its features."""
        unknown = [f"'features.groups.{name}'" for name in value if name not in FEATURE_GROUPS]
        if unknown:
            keys = f"key {unknown[0]}" if len(unknown) == 1 else f"keys {', '.join(unknown)}"
            name = next(name for name in value if name not in FEATURE_GROUPS)
            raise _key_error(f"unknown {keys}; {_valid_keys(name, FEATURE_GROUPS)}")
        if value.get("btyd") is False:  # accepted before, and silently ignored
            raise _key_error(
                "'features.groups.btyd' cannot be switched off: the models are built on BG/NBD and "
                "Gamma-Gamma (the value model's offset, the churn blend, the horizon stretch and the "
                "levels); to keep their columns away from LightGBM, set models.clv.offset_feature and "
                "models.churn.blend_feature to null instead"
            )
        if value.get("rfm") is False:  # BG/NBD and Gamma-Gamma are fitted on its columns
            raise _key_error(
                "'features.groups.rfm' cannot be switched off: BG/NBD and Gamma-Gamma (the btyd group, "
                "the value model's offset and the churn blend) are fitted on its frequency, recency, T "
                "and monetary columns"
            )
        return value

    @field_validator("windows", mode="before")
    @classmethod
    def _whole_windows(cls, value: Any) -> Any:
        """Refuse a window that is no whole number (nan, inf, 2.5, text, null) with its item and range.

        A single number or text in place of the list (``windows: 30``) is said with the rule too.
        pydantic said "must be a finite number" (no range) for nan, and "Input should be a valid integer,
        got a number with a fractional part" for 2.5, where ``[30, -3]`` names the item and its range.
        A whole float (30.0) is read as its day count, as before; true and quoted numbers are refused
        before (`_no_yes_no_for_numbers`).
        """
        value = to_plain(value)  # a grid's np.int64 or np.float32 windows, read as before
        if isinstance(value, int | float | str | Mapping):  # not a list: "Input should be a valid list"
            raise _key_error(
                f"'features.windows' must be a list of day counts, each {_window_rule()}, got {_given(value)}"
            )
        if isinstance(value, list | tuple):
            for at, window in enumerate(value):
                whole = isinstance(window, int) or (isinstance(window, float) and window.is_integer())
                if not whole:
                    raise _key_error(
                        f"'features.windows[{at}]' must be {_window_rule()}, got {_given(window)}"
                    )
        return value

    @field_validator("windows")
    @classmethod
    def _positive_windows(cls, value: list[int]) -> list[int]:
        """Day counts from 1 to `MAX_DAYS`, sorted, each once; the first out of range named by its item.

        No upper end let 10**9 days through (spend_1000000000d: the lifetime spend under another name)
        and 10**19, past an int64, ended in Ibis' TypeError; bounded as the time settings are.
        """
        if not value:
            raise _key_error(
                "'features.windows' must hold at least one window (a whole number of days), got []"
            )
        at = next((at for at, window in enumerate(value) if not 1 <= window <= MAX_DAYS), None)
        if at is not None:
            hint = (
                " (a window longer than the history before the cutoff equals the lifetime features: "
                "spend_total, orders_total, quantity_total)"
                if value[at] > MAX_DAYS
                else ""
            )
            raise _key_error(f"'features.windows[{at}]' must be {_window_rule()}, got {value[at]}{hint}")
        return sorted(set(value))


ChurnLabel = Literal["no_purchase", "no_purchase_or_nonrenewal"]

#: kamml's own settings in a model's section, beside LightGBM's parameters (`kamml.models.bundle`).
MODEL_SETTINGS: dict[str, tuple[str, ...]] = {
    "clv": ("offset_feature", "offset_weight", "monotone"),
    "churn": ("blend_feature", "monotone"),
    "influence": ("prior_weight", "monotone"),
}


_ALL_SETTINGS = sorted({name for names in MODEL_SETTINGS.values() for name in names})


def _sections_with(setting: str) -> str:
    """The models sections that have `setting` of kamml's own ("models.clv and models.churn")."""
    return " and ".join(f"models.{model}" for model, names in MODEL_SETTINGS.items() if setting in names)


@functools.cache
def lightgbm_parameters() -> frozenset[str] | None:
    """Every LightGBM parameter name and alias, as the installed LightGBM lists them; None if it cannot.

    Asked only when a models section names a parameter, so reading other configs never imports LightGBM.
    The list is LightGBM's own (``lightgbm.basic._ConfigAliases``, from its C library); when a LightGBM
    release no longer offers it, the names are left to LightGBM, which warns about unknown ones.
    """
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
        return frozenset(name for names in aliases.values() for name in names)
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return None


class ModelsConfig(_Section):
    """LightGBM parameters per model, the seed, the number of threads and the churn label's rule.

    ``churn_label``: ``"no_purchase"`` (default) marks an account churned when it makes no purchase in
    the horizon; ``"no_purchase_or_nonrenewal"`` also when its contract (the accounts table's
    ``contract_end``) ends in the horizon, for businesses where a lapsed contract is the loss.
    """

    churn_label: ChurnLabel = "no_purchase"
    seed: int = Field(42, ge=0, le=2**31 - 1)  # LightGBM's and scikit-learn's range
    threads: int = Field(2, ge=1, le=1024)
    #: train on at most this many accounts (the same ones in every snapshot; `kamml.models.bundle.
    #: sample_accounts`); None: every account. Scoring always covers every account.
    max_training_accounts: int | None = Field(None, ge=1)
    clv: dict[str, Any] = Field(default_factory=dict)
    churn: dict[str, Any] = Field(default_factory=dict)
    influence: dict[str, Any] = Field(default_factory=dict)

    @field_validator("clv", "churn", "influence", mode="after")
    @classmethod
    def _plain_numbers(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Settings with numpy numbers as Python's (a grid's np.int64): the run logs the config as JSON."""
        plain: dict[str, Any] = to_plain(value)
        return plain

    @field_validator("clv", "churn", "influence")
    @classmethod
    def _known_parameters(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Only LightGBM's parameters (or aliases) and the model's own settings: LightGBM ignores others.

        A misspelt parameter (``num_leaf``s, ``nonsense_param``) trained with a warning deep in the log
        and the default in its place.
        """
        model = str(info.field_name)
        own = MODEL_SETTINGS.get(model, ())
        message = unknown_lightgbm_parameters(
            value,
            own=own,
            own_label=f"a setting of kamml's {model} model",
            key=lambda name: f"'models.{model}.{name}'",
            elsewhere={name: f"a setting of {_sections_with(name)}" for name in _ALL_SETTINGS},
        )
        if message is None:
            named = [name for name in value if name not in own]
            message = inert_lightgbm_parameter(named, key=lambda name: f"'models.{model}.{name}'")
        if message is not None:
            raise _key_error(message)
        return value

    @model_validator(mode="after")
    def _settings_train(self) -> ModelsConfig:
        """The models' settings checked as training checks them, whenever the section is validated.

        ``Config.from_dict({"models": {"clv": {"learning_rate": -1}}})`` passed (only `load_config` and
        train ran the check): a notebook heard of it at train, after the features. Only a section holding
        settings is checked: the check needs LightGBM and scikit-learn (seconds to import), which a config
        without any, read by `kamml allocate`, never loads.
        """
        if not (self.clv or self.churn or self.influence):
            return self
        # here, not at the top: kamml.config imports no model stack. The rules are the estimators' own
        # (their parameter constraints, objectives, rounds) and LightGBM's, found by training one round:
        # config keeps only the parameter names (`lightgbm_parameters`)
        from kamml.models.bundle import check_models_section

        try:
            check_models_section(self)
        except ConfigError as exc:  # its message names its key (models.clv...)
            raise _key_error(str(exc)) from None
        return self


#: What LightGBM's data-file settings are, in `_INERT_LIGHTGBM`'s messages.
_FILES = "a setting of LightGBM's reading of data files"
#: LightGBM parameters (main names) that training from kamml's frames never reads, each with what to do:
#: LightGBM's command line, its reading of data files and its distributed training. LightGBM accepted
#: ``ignore_column: [...]`` and trained on every column without a word.
_INERT_LIGHTGBM: dict[str, str] = {
    **dict.fromkeys(
        (
            "task",
            "config",
            "input_model",
            "output_model",
            "snapshot_freq",
            "convert_model",
            "convert_model_language",
            "output_result",
            "saved_feature_importance_type",
        ),
        "a setting of LightGBM's command line",
    ),
    **dict.fromkeys(
        ("two_round", "header", "save_binary", "precise_float_parser", "parser_config_file"),
        _FILES,
    ),
    "label_column": f"{_FILES}; kamml builds each model's label itself",
    "weight_column": f"{_FILES}; kamml builds each model's weights itself",
    "group_column": f"{_FILES} (ranking groups, which kamml's models have not)",
    "ignore_column": (
        f"{_FILES}; to leave features out, drop their columns (in a "
        "config: switch their group off in features.groups, or list the static columns to keep in "
        "features.static_columns)"
    ),
    "categorical_feature": (
        "LightGBM's list of categorical columns, which it ignores in the parameters; kamml's models take "
        "the text and category columns as categorical themselves"
    ),
    **dict.fromkeys(
        (
            "num_machines",
            "machines",
            "local_listen_port",
            "time_out",
            "machine_list_filename",
            "pre_partition",
        ),
        "a setting of LightGBM's distributed training, which kamml does not run",
    ),
}


def inert_lightgbm_parameter(names: Iterable[Any], key: Callable[[str], str] = repr) -> str | None:
    """The message for the first of `names` that LightGBM knows but never reads in kamml's training.

    `key` shows the name (``'models.clv.ignore_column'``); an alias names LightGBM's main name too. None
    when there is none, or when the installed LightGBM cannot list its aliases.
    """
    for name in names:
        main = (_inert_names() or {}).get(str(name))
        if main is not None:
            also = "" if name == main else f" (LightGBM's {main})"
            return f"{key(str(name))}{also} is never read by kamml's training: it is {_INERT_LIGHTGBM[main]}"
    return None


@functools.cache
def _inert_names() -> dict[str, str] | None:
    """Each name and alias of `_INERT_LIGHTGBM`'s parameters, to its main name (None: none listed)."""
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return None
    return {alias: main for main in _INERT_LIGHTGBM for alias in aliases.get(main, (main,))}


def unknown_lightgbm_parameters(
    names: Iterable[Any],
    *,
    own: Sequence[str] = (),
    own_label: str = "",
    key: Callable[[str], str] = repr,
    noun: str = "key",
    elsewhere: Mapping[str, str] | None = None,
) -> str | None:
    """The message for names that are no LightGBM parameter (or alias) nor one of `own`; None if all are.

    The one check of parameter names, used by a config's models sections and by the estimators' ``params``
    (`kamml.models._lgbm`): LightGBM only warns about a name it does not know (``num_leave``) and trains
    with the default in its place, a warning its ``verbosity=-1`` hides. `key` shows a name in the
    message (``'models.clv.num_leave'``); `own_label` says what the `own` names are; `elsewhere` maps a
    name that belongs somewhere else to where (a hint instead of the close LightGBM names). None too when
    the installed LightGBM cannot list its parameters (`lightgbm_parameters`).
    """
    asked = [str(name) for name in names if name not in own]
    known = lightgbm_parameters() if asked else None
    if known is None:
        return None
    unknown = [name for name in asked if name not in known]
    if not unknown:
        return None
    keys = ", ".join(key(name) for name in unknown)
    what = "not a LightGBM parameter (or alias)"
    if own:
        what = f"neither a LightGBM parameter (or alias) nor {own_label} ({', '.join(own)})"
    first = unknown[0]
    if elsewhere and first in elsewhere:
        hint = f"; {first} is {elsewhere[first]}"
    else:
        close = difflib.get_close_matches(first, sorted(known | set(own)), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {noun}{'s' if len(unknown) > 1 else ''} {keys}: {what}{hint}"


StakePart = Literal["retention", "growth", "referral"]


#: Texts pandas' CSV reader takes for a missing value (its default ``na_values``): a tier so named is
#: written into the allocation CSV and read back from it as no tier.
NA_TEXTS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"}
    | {"N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)

#: How the report names the tier of an account without one (a table edited or read back with gaps).
NO_TIER = "(none)"


def tier_shares(tiers: Mapping[str, Any]) -> list[tuple[str, float]]:
    """`allocation.tiers` as (name, cumulative share) pairs, best first; a ValueError names tier and rule.

    Tiers cut the accounts ranked best first, each reaching up to its cumulative share of them. So there
    are at least two (one tier would hold every account), each named, each share a number in (0, 1]
    (not true/false), no two alike, and the last one 1: a smaller last share would be ignored, its tier
    taking every account beyond it (``{a: 0.5}`` put every account in tier a). A name must read as
    itself: not one a CSV reader takes for missing (`NA_TEXTS`: a tier "NA" read back as none) nor the
    report's `NO_TIER`, where it merged with the accounts without a tier, and no two names alike but for
    surrounding spaces (``key`` and `` key`` are two tiers that read as one).
    """
    if len(tiers) < 2:
        raise ValueError(
            f"'allocation.tiers': at least two tiers are needed, got {dict(tiers)} (one tier would hold "
            "every account); shares are cumulative, e.g. "
            "{strategic: 0.05, key: 0.2, maintain: 0.5, nurture: 1.0}"
        )
    pairs = []
    seen: dict[str, str] = {}
    for name, share in tiers.items():
        if not str(name).strip():
            raise ValueError(f"'allocation.tiers': a tier needs a name, got {name!r}")
        if str(name).strip() in NA_TEXTS | {NO_TIER}:
            raise ValueError(
                f"'allocation.tiers.{name}': the name reads as no tier (a CSV reader takes it for a missing "
                f"value, and the report names accounts without a tier {NO_TIER}); give the tier another name"
            )
        other = seen.setdefault(str(name).strip(), str(name))
        if other != str(name):
            raise ValueError(
                f"'allocation.tiers': the names {other!r} and {str(name)!r} differ only by spaces, and read "
                "as one tier; give each tier its own name"
            )
        try:
            value = float("nan") if isinstance(share, bool) else float(share)
        except (TypeError, ValueError):
            value = float("nan")
        if not (0 < value <= 1):
            shown = str(share).lower() if isinstance(share, bool) else share
            raise ValueError(
                f"'allocation.tiers.{name}': a cumulative share of accounts in (0, 1] is needed, got {shown}"
            )
        pairs.append((str(name), value))
    pairs.sort(key=lambda pair: pair[1])
    shares = [share for _, share in pairs]
    for (first, low), (second, high) in itertools.pairwise(pairs):
        if low == high:
            raise ValueError(
                f"'allocation.tiers': the tiers {first!r} and {second!r} have the same cumulative share, "
                f"{low:g} (the second would hold no account); give each tier its own share or drop one"
            )
    last, top = pairs[-1]
    if top != 1:
        hint = " (shares are cumulative, not per tier)" if abs(sum(shares) - 1) < 1e-9 else ""
        raise ValueError(
            f"'allocation.tiers.{last}': the last tier's cumulative share must be 1 so that every account "
            f"has a tier, got {top:g}{hint}"
        )
    return pairs


#: The rule of `allocation.effort_clip`, in the words of its messages.
_CLIP_RULE = "must be (low, high) with 0 < low <= high < inf"


def _default_weights() -> dict[StakePart, float | Literal["auto"]]:
    """Retention counts fully, word of mouth half, growth by the fitted effort uplift (DESIGN §6)."""
    return {"retention": 1.0, "growth": "auto", "referral": 0.5}


class AllocationConfig(_Section):
    """The team's hours and the rules that turn scores into an allocation (DESIGN §6).

    ``effort_scale`` is the effort scale k (hours) of the median account: ``"auto"`` (the default)
    estimates it, and its growth with value, from the activities table before the cutoff
    (`kamml.models.effort`), falling back with a log line to the fixed rule (4 hours, exponent
    ``effort_exponent``) when there are no activities; a number fixes it, with ``effort_exponent``.
    ``effort_size_column`` names a numeric column of the accounts table (default ``size``) from which
    the fitted k also grows with account size; it is skipped, with a log line, when the accounts table
    lacks it, and ``null`` turns the size term off.
    ``weights`` value the three parts of the stake (`kamml.allocation.stake`); growth ``"auto"`` (the
    default) takes the fitted effort uplift the scores carry, 0.3 where they carry none.
    An account is active (gets ``floor_hours``) when its p_alive is at least ``active_p_alive`` (or
    unknown) and its chance of a purchase in the horizon, 1 − p_churn, at least ``active_p_purchase``.
    """

    hours: float = Field(2_000.0, ge=0)
    capacity: dict[str, float] | None = None
    floor_hours: float = Field(0.25, ge=0)
    cap_hours: float | None = Field(40.0, gt=0)
    weights: dict[StakePart, float | Literal["auto"]] = Field(default_factory=_default_weights)
    effort_scale: float | Literal["auto"] = "auto"
    effort_exponent: float = Field(0.5, ge=0)
    effort_clip: tuple[float, float] = (0.25, 4.0)
    effort_size_column: str | None = "size"
    active_p_alive: float = Field(0.1, ge=0, le=1)
    active_p_purchase: float = Field(0.1, ge=0, le=1)
    high_churn_p: float = Field(0.5, ge=0, le=1)
    tier_by: Literal["expected_gain", "stake", "clv", "marginal_gain_per_hour"] = "expected_gain"
    reasons_max_chars: int | None = Field(None, ge=REASONS_MIN_CHARS)
    tiers: dict[str, float] = Field(
        default_factory=lambda: {"strategic": 0.05, "key": 0.20, "maintain": 0.50, "nurture": 1.0}
    )

    @field_validator("hours", "floor_hours", "cap_hours", "effort_exponent")
    @classmethod
    def _finite(cls, value: float | None, info: ValidationInfo) -> float | None:
        """Refuse .inf (and "inf"): it passed the bounds and failed later with a traceback (exit 1).

        Said as nan's error says it (`_number_rule`): "allocation.hours must be a finite number of hours"
        was an older style, without the range.
        """
        if value is not None and not math.isfinite(value):
            name = str(info.field_name)
            rule = _field_rule(cls.model_fields[name])  # the words of nan's error (`_number_rule`)
            hint = {
                "cap_hours": " (null for no cap per account)",
                "hours": " (allocation.capacity takes .inf for a rep without a limit)",
            }.get(name, "")
            raise _key_error(f"'allocation.{name}' must be {rule}, got {value}{hint}")
        return value

    @field_validator("effort_clip", mode="before")
    @classmethod
    def _clip_pair(cls, value: Any) -> Any:
        """Two numbers: ``[1]`` read "'allocation.effort_clip.1': Field required", ``[1, 2, 3]`` "Tuple"."""
        if isinstance(value, list | tuple) and len(value) != 2:
            raise _key_error(f"'allocation.effort_clip' {_CLIP_RULE}, got {list(value)}")
        return value

    @field_validator("effort_clip")
    @classmethod
    def _valid_clip(cls, value: tuple[float, float]) -> tuple[float, float]:
        """Check the clip range when the config is read: a bad one failed only after training."""
        low, high = value
        if not (0 < low <= high < math.inf):
            raise _key_error(f"'allocation.effort_clip' {_CLIP_RULE}, got ({low}, {high})")
        return value

    @model_validator(mode="after")
    def _floor_below_cap(self) -> AllocationConfig:
        """A floor above the cap is a contradiction of the settings: refused when the config is read."""
        if self.cap_hours is not None and self.floor_hours > self.cap_hours:
            raise _key_error(
                f"'allocation.floor_hours' {self.floor_hours:g} is above 'allocation.cap_hours' "
                f"{self.cap_hours:g}: no active account can get its minimum touch"
            )
        return self

    @field_validator("weights")
    @classmethod
    def _valid_weights(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        for part, weight in value.items():
            if weight == "auto" and part != "growth":
                raise ValueError(f"only the growth weight can be 'auto', not {part}")
            if weight != "auto" and not (isinstance(weight, int | float) and 0 <= weight < float("inf")):
                raise ValueError(f"weight of {part} must be a finite number >= 0 or (growth only) 'auto'")
        return value

    @field_validator("tiers", mode="before")
    @classmethod
    def _no_yes_no_shares(cls, value: Any) -> Any:
        """Refuse true/false as a tier's share: pydantic reads true as 1, a tier of every account."""
        if isinstance(value, dict):
            for name, share in value.items():
                if isinstance(share, bool):
                    raise _key_error(
                        f"'allocation.tiers.{name}': a cumulative share of accounts in (0, 1] is needed, "
                        f"got {str(share).lower()}"
                    )
        return value

    @field_validator("tiers")
    @classmethod
    def _valid_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        """Tiers that cut the ranked accounts as meant (`tier_shares`), checked when the config is read."""
        try:
            tier_shares(value)
        except ValueError as exc:
            raise _key_error(str(exc)) from None
        return value

    @field_validator("capacity", mode="before")
    @classmethod
    def _rep_names(cls, value: Any) -> Any:
        """Rep names as text, so a YAML key 101 or 101.0 is rep "101" (the owners match the same way)."""
        from kamml.names import rep_name  # here: reading a config imports neither numpy nor pandas

        if not isinstance(value, dict):
            return value
        names: dict[str, Any] = {}
        for rep, hours in value.items():
            name = rep_name(rep) if isinstance(rep, str | int | float) else rep
            if name is None:
                raise ValueError(f"a rep needs a name, got {rep!r}")
            if name in names:
                raise ValueError(f"rep {name!r} is listed more than once")
            names[name] = hours
        return names

    @field_validator("capacity")
    @classmethod
    def _valid_capacity(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        """Each rep's hours are a number >= 0 (.inf: no limit); NaN or negative hours cannot be allocated."""
        bad = {rep: hours for rep, hours in (value or {}).items() if not hours >= 0}
        if bad:
            shown = ", ".join(f"{rep}: {hours}" for rep, hours in list(bad.items())[:5])
            raise ValueError(f"hours per rep must be numbers >= 0 (.inf for no limit), got {shown}")
        return value

    @field_validator("effort_scale")
    @classmethod
    def _positive_effort_scale(cls, value: float | str) -> float | str:
        """'auto' or a finite number of hours above 0, said with the key and the value given."""
        if value != "auto" and not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise _key_error(
                f"'allocation.effort_scale' must be 'auto' or a number of hours > 0, got {value:g}"
            )
        return value


#: Backtest metrics where the smaller value (in size, for aggregate_error) is the better one.
LOWER_IS_BETTER = frozenset(
    {"decile_mape", "decile_wape", "rmse", "mae", "brier", "log_loss", "aggregate_error"}
)


def larger_is_better(metric: str, value: float) -> float:
    """A backtest figure turned so that the larger is the better: minus its size for `LOWER_IS_BETTER`."""
    return -abs(value) if metric in LOWER_IS_BETTER else value


#: The value metrics of a backtest (`kamml.evaluation.metrics.value_metrics`), in the report's order.
VALUE_METRICS = (
    "gini",
    "spearman",
    "top10_capture",
    "top20_capture",
    "decile_mape",
    "decile_wape",
    "aggregate_error",
    "rmse",
    "mae",
)
#: The metrics the gate can read per backtest task (``value.gini``, ``churn.roc_auc``, ...).
PROMOTION_METRICS = {
    "value": VALUE_METRICS,
    "churn": ("roc_auc", "pr_auc", "brier", "log_loss"),
    "referral": VALUE_METRICS,
}
#: The models the backtest scores per task (``value.btyd.gini``): kamml's and its baselines.
PROMOTION_MODELS = {
    "value": ("kamml", "btyd", "last_period"),
    "churn": ("kamml", "btyd", "recency"),
    "referral": ("kamml", "past_rate"),
}


class TrackingConfig(_Section):
    """MLflow tracking store, experiment and registered model (DESIGN §9)."""

    uri: str = "sqlite:///mlruns.db"
    artifact_location: str = "./mlartifacts"
    experiment: str = "kamml"
    model_name: str = "kamml"
    promote_metric: str = "value.gini"
    #: How much better than the champion's figure a new version's must be to take the alias (in the
    #: metric's units). 0 promotes any real gain; a gain within 1e-9 of the figure is rounding, never one.
    promote_margin: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    #: Copy `kamml run`'s outputs (scores, allocation, report: about 290 MB at a million accounts) into
    #: the run's artifacts; a nightly job whose output folder is kept elsewhere can turn it off.
    log_outputs: StrictBool = True

    @field_validator("uri", "experiment")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        """A store and an experiment are named: an empty one was refused only when training started."""
        if not value.strip():
            what = "the MLflow store's URI" if info.field_name == "uri" else "the experiment's name"
            raise _key_error(f"'tracking.{info.field_name}' is empty: give {what}")
        return value

    @field_validator("uri")
    @classmethod
    def _home_in_sqlite_path(cls, value: str) -> str:
        """``sqlite:///~/mlruns.db`` as the home folder's file (`sqlite_home`)."""
        return sqlite_home(value)

    @field_validator("model_name")
    @classmethod
    def _usable_model_name(cls, value: str) -> str:
        """A name MLflow registers and a ``models:/NAME@champion`` URI reads back as that name.

        MLflow refuses '/' and ':' only when registering, after the training; an '@' registered, but
        ``models:/a@b/1`` then looked for the model 'a'.
        """
        bad = sorted({c for c in value if c in "/:@"})
        if not value.strip() or bad or value != value.strip():
            why = "is empty" if not value.strip() else "has spaces at an end"
            if bad:
                why = "holds " + " and ".join(repr(c) for c in bad)
            raise ValueError(
                f"{value!r} {why}: a registered model's name is not empty, has no spaces at its ends and "
                "holds no '/', ':' or '@' (models:/NAME@alias)"
            )
        return value

    @field_validator("promote_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        """``task.metric`` (or ``task.model.metric``) naming a backtest metric with a known direction.

        Checked when the config is read: a typo would otherwise surface only after training, or never
        (a metric the runs do not have leaves every later version unpromoted).
        """
        parts = value.split(".")
        task = parts[0]
        if len(parts) in (2, 3) and parts[-1] in PROMOTION_METRICS.get(task, ()):
            if len(parts) == 2 or parts[1] in PROMOTION_MODELS[task]:
                return value
            models = ", ".join(PROMOTION_MODELS[task])
            raise ValueError(
                f"'{value}': the backtest scores no model '{parts[1]}' for {task} (only {models})"
            )
        known = "; ".join(f"{task}: {', '.join(names)}" for task, names in PROMOTION_METRICS.items())
        raise ValueError(f"'{value}' must be task.metric, one of {known} (e.g. value.gini, churn.roc_auc)")


class SparkConfig(_Section):
    """Options for the Spark engine: a master URL and any Spark conf."""

    master: str = "local[2]"
    driver_memory: str = "2g"
    conf: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_yes_no_for_numbers(cls, data: Any) -> Any:
        """No check: it replaces `_Section`'s of the same name (a conf value true was "must be a number").

        This section holds no number: `_conf_as_text` takes true as Spark's "true", and a bool for master
        or driver_memory is pydantic's string error.
        """
        return data

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_as_text(cls, value: Any) -> Any:
        """Spark takes every conf value as text: YAML's unquoted 8 or true are Spark's "8" and "true"."""
        return {k: _spark_text(v) for k, v in value.items()} if isinstance(value, dict) else value


def _spark_text(value: Any) -> Any:
    """A YAML scalar as Spark writes it (true, not True; 8, not 8.0); other values as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


class EngineConfig(_Section):
    """Which Ibis backend computes features: DuckDB (embedded default) or Spark."""

    name: Literal["duckdb", "spark"] = "duckdb"
    threads: int | None = Field(None, ge=1, le=1024)
    memory_limit: str | None = None
    temp_directory: str | None = None
    spark: SparkConfig = Field(default_factory=SparkConfig)

    _blank = field_validator("temp_directory", mode="before")(_not_blank)

    @field_validator("memory_limit")
    @classmethod
    def _no_negative_memory(cls, value: str | None) -> str | None:
        """DuckDB takes a negative limit ("-1GB") for its default, so a typo would silently lift the limit."""
        if value is not None and value.strip().startswith("-"):
            raise _key_error(
                f"'engine.memory_limit' must be a size such as '4GB', not negative, got {value!r}"
            )
        return value


class OutputConfig(_Section):
    """Where the main job writes its tables and report."""

    dir: Path = Path("outputs")

    _blank = field_validator("dir", mode="before")(_not_blank)
    _home = field_validator("dir")(_expand_home)


class Config(_Section):
    """A whole kamml job configuration; every section has defaults, so `Config()` is valid."""

    data: DataConfig = Field(default_factory=DataConfig)
    time: TimeConfig = Field(default_factory=TimeConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "config") -> Config:
        """Validate a plain dict (as read from YAML); raise `ConfigError` naming each bad key."""
        try:
            return cls.model_validate(raw or {})
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (a path of field names), if it is a model."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _is_setting(loc: tuple[str, ...]) -> bool:
    """Whether `loc` is a key of a config section (``output.dir``), not an entry of a list or dict in one."""
    owner = _model_at(loc) if loc else None
    return owner is not None and loc[-1] in owner.model_fields


@functools.cache
def _section_path(section: type[BaseModel]) -> tuple[str, ...]:
    """Where a section class sits in `Config` (("data", "columns") for `ColumnsConfig`); () for Config.

    Found breadth first through the fields' model types, the first place it appears.
    """
    queue: list[tuple[type[BaseModel], tuple[str, ...]]] = [(Config, ())]
    while queue:
        model, path = queue.pop(0)
        if model is section:
            return path
        for name, field in model.model_fields.items():
            annotation = field.annotation
            for candidate in (annotation, *getattr(annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    queue.append((candidate, (*path, name)))
    return ()


def _describe(exc: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    """One line per problem: the dotted key, what is wrong and, for unknown keys, the valid ones.

    `prefix` is the path of the section the errors are about (an assignment to one), before their keys.
    A value that fits no member of a union (``effort_scale: foo``, a number or 'auto') is one problem of
    its key: pydantic names one per member, under its tag (``effort_scale.float``).
    """
    lines: list[str] = []
    union: dict[str, int] = {}  # key -> index in lines of the union's problem
    worded: set[str] = set()  # keys of a union whose problem is said in kamml's words: one line
    for err in exc.errors():
        raw = [p for p in err["loc"] if p != "[key]"]  # pydantic's mark of a dict key's error
        dict_key = "[key]" in err["loc"]
        member = bool(raw) and _UNION_TAG.match(str(raw[-1])) is not None
        if member:
            raw = raw[:-1]
        parts = [str(p) for p in raw]
        loc = (*prefix, *parts)
        key = _dotted((*prefix, *raw), dict_key)
        if err["type"] == "kamml_key":
            lines.append(str(err.get("ctx", {}).get("message", err["msg"])))
        elif err["type"] == "kamml_bool":
            ctx = err.get("ctx", {})
            where = ".".join([*loc, str(ctx.get("key"))]).replace(".[", "[")
            if ctx.get("what") == "text":
                lines.append(
                    f"'{where}' must be text, got {ctx.get('got')} (YAML reads an unquoted yes, no, on, off, "
                    "true or false as true or false): quote it"
                )
            else:
                lines.append(f"'{where}' must be a number, got {ctx.get('got')}")
        elif err["type"] == "kamml_text":
            ctx = err.get("ctx", {})
            where = ".".join([*loc, str(ctx.get("key"))]).replace(".[", "[")
            got = ctx.get("got")
            lines.append(f"'{where}' must be a number, got {got!r} (text): {_text_number_hint(got)}")
        elif (rule := _number_rule(err, loc, member)) is not None:  # "Input should be greater than 0"
            lines.append(f"'{key}' must be {rule}, got {_given(err.get('input'))}")
        elif err["type"] == "bool_type":  # a strict switch: 0, 'no' and 'false' are not read as false
            lines.append(f"'{key}' must be true or false, got {err.get('input')!r}")
        elif dict_key and err["type"] == "literal_error":  # weights: {retension: 1}
            valid = str(err.get("ctx", {}).get("expected", "?")).replace("'", "").replace(" or ", ", ")
            lines.append(f"unknown key '{key}'; {_valid_keys(parts[-1], valid.split(', '))}")
        elif err["type"] == "extra_forbidden":
            owner = _model_at((*prefix, *err["loc"]))
            lines.append(
                f"unknown key '{key}'; {_valid_keys(parts[-1], owner.model_fields if owner else ['?'])}"
            )
        elif err.get("input", ...) is None and err["type"] != "value_error" and _is_setting(loc):
            # `dir:` with nothing after it (`dir: ${OUT}` from envsubst with OUT unset)
            if not (member and key in union):
                union[key] = len(lines)
                lines.append(f"'{key}' has no value (null): give one, or leave the key out for its default")
        elif member and key in worded:  # `data.path: 1`, a path or text: said once, as a path
            continue
        elif (plain := _plain_words(err, key)) is not None:
            if member and key in union:
                lines[union[key]] = plain
            else:
                lines.append(plain)
            if member:
                union.setdefault(key, len(lines) - 1)
                worded.add(key)
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            message = err["msg"].removeprefix("Value error, ")  # a check's own words, not pydantic's
            if member and key in union:  # another member of the same union: one problem, its options
                at = union[key]
                lines[at] = lines[at].removesuffix(shown) + f", or {message[:1].lower()}{message[1:]}{shown}"
                continue
            if member:
                union[key] = len(lines)
            lines.append(f"'{key}': {message}{shown}")
    return f"{source}: " + "; ".join(lines)


def _dotted(loc: Sequence[Any], dict_key: bool = False) -> str:
    """A key's path as the config's messages write it: ``features.windows[1]``, a list's item by its index.

    pydantic's ``features.windows.1`` read as a key named 1; the key of a mapping (`dict_key`) stays dotted.
    """
    text = ".".join(f"[{p}]" if isinstance(p, int) and not dict_key else str(p) for p in loc)
    return text.replace(".[", "[") or "(top level)"


#: pydantic's error types of a value that is no date, and of one that is no real day (`_plain_words`).
_DATE_ERRORS = frozenset({"date_type", "date_parsing", "date_from_datetime_parsing"})


def _plain_words(err: Any, key: str) -> str | None:
    """A wrong kind of value said in kamml's words where pydantic's named its internals; None for others.

    ``output.dir: []`` read "not a valid path for <class 'pathlib.Path'>", ``time: 5`` "a valid dictionary
    or instance of TimeConfig", and ``data.end: 2025-02-30`` "a valid date or datetime".
    """
    got = err.get("input")
    if err["type"] == "path_type":
        return f"'{key}' must be a path (text), got {got!r}"
    if err["type"] == "model_type":
        return f"'{key}' must be a section (a mapping of its keys), got {got!r}"
    if err["type"] in _DATE_ERRORS:
        detail = err.get("ctx", {}).get("error")
        return f"'{key}' must be a date (YYYY-MM-DD), got {got!r}" + (f" ({detail})" if detail else "")
    return None


#: pydantic's error types of a number's bounds and of its finiteness (`_number_rule`).
_BOUND_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)
#: pydantic's error types of a value that is no number of the key's kind (2.5 or "x" for a whole number).
_KIND_ERRORS = frozenset(
    {"int_from_float", "int_parsing", "int_parsing_size", "int_type", "float_parsing", "float_type"}
)


def _as_float(value: Any) -> float | None:
    """`value` as a float (text such as "nan" too, as pydantic reads it); None if it is none."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _given(value: Any) -> str:
    """A value as the config's errors show it after "got": text quoted, null as YAML writes it, nan as nan."""
    if isinstance(value, str):
        number = _as_float(value)
        return str(number) if number is not None and not math.isfinite(number) else repr(value)
    return "null" if value is None else str(value)


def _number_rule(err: Any, loc: tuple[str, ...], member: bool = False) -> str | None:
    """What the number at `loc` must be when its value broke the key's rule; None for other errors.

    pydantic said "should be greater than or equal to 0 (got nan)" (as if nan were below 0), "should be
    a finite number" without the range, "Input should be greater than 0 (got -3)" and "Input should be a
    valid integer, got a number with a fractional part", naming no rule; the rule here is the key's own
    bounds (its `Field`), in words. A number key of a section only, not one member of a union (its
    options are said together), an item of a mapping (a rep's hours: "a finite number" for nan) or null.
    """
    value = _as_float(err.get("input"))
    if err["type"] in _BOUND_ERRORS and value is not None and not math.isfinite(value):
        owner = _model_at(loc) if loc else None
        field = owner.model_fields.get(loc[-1]) if owner is not None else None
        return "a finite number" if field is None else _field_rule(field)
    if member or err.get("input") is None or err["type"] not in _BOUND_ERRORS | _KIND_ERRORS:
        return None  # null: said as "has no value" by `_describe`
    if not _is_setting(loc):
        return None
    field = _model_at(loc).model_fields[loc[-1]]  # type: ignore[union-attr]  # a setting: it has one
    return _field_rule(field) if _scalar_kind(field.annotation) == "a number" else None


def _field_rule(field: FieldInfo) -> str:
    """What a number key must be, from its `Field` bounds and type: "a finite number >= 0"."""
    whole = int in (field.annotation, *get_args(field.annotation))
    bounds = {
        kind: getattr(item, kind)
        for item in field.metadata
        for kind in ("ge", "gt", "le", "lt")
        if getattr(item, kind, None) is not None
    }
    return _bounds_rule(whole, bounds)


def _bounds_rule(whole: bool, bounds: Mapping[str, float]) -> str:
    """A number's rule in words from its bounds (ge, gt, le, lt): "a whole number from 1 to 9"."""
    bounds = dict(bounds)
    if whole and "gt" in bounds:  # > 0 for whole numbers: from 1
        bounds["ge"] = bounds.pop("gt") + 1
    shown = {kind: f"{bound:,}" if whole else f"{bound:g}" for kind, bound in bounds.items()}
    what = "a whole number" if whole else "a finite number"
    if "ge" in shown and "le" in shown:
        return f"{what} from {shown['ge']} to {shown['le']}"
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    limits = " and ".join(f"{signs[kind]} {text}" for kind, text in shown.items())
    return f"{what} {limits}".rstrip()


def _valid_keys(name: str, valid: Iterable[str]) -> str:
    """The valid keys of a section, and the one `name` is closest to when it looks like a typo of one."""
    keys = list(valid)
    close = difflib.get_close_matches(name, keys, n=1)
    return f"valid keys here: {', '.join(keys)}" + (f"; did you mean {close[0]}?" if close else "")


#: How pydantic tags the member of a union in an error's location (``float``, ``literal['auto']``, a
#: `Path`'s ``lax-or-strict[...]``).
_UNION_TAG = re.compile(
    r"^(float|int|str|bool|none|(literal|function-\w+|tuple|list|dict|constrained-\w+|lax-or-strict)\[.*\])$"
)


#: YAML 1.1 tags whose plain (unquoted) mapping keys are kept as the text written (`_UniqueKeyLoader`).
_TEXT_KEY_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"})


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key twice in one mapping (YAML keeps the last one silently).

    Mapping keys are names as written: YAML 1.1 read a rep named ``010`` as the octal number 8, ``0x1F``
    as 31, ``1_000`` as 1000 and ``no`` as False, so ``capacity: {010: 25}`` gave rep ``8`` the 25 hours.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: flattened by SafeConstructor
                continue
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.style is None
                and key_node.tag in _TEXT_KEY_TAGS
            ):
                key_node.tag = "tag:yaml.org,2002:str"
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # a list or mapping as a key (`? [a, b]`): a TypeError
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, not a {key_node.id}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: the first one would be ignored", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or time as YAML reads it; one that is no real day (2025-02-30) stays the text written.

        PyYAML raises a bare ValueError for it (a traceback from the CLI); as text, the config's check
        names the key and the value it cannot read as a date.
        """
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """An integer as YAML 1.2 reads it: ``030`` is 30, not the octal 24; ``1:30`` is text, not 90.

        YAML 1.1 (PyYAML) read a leading zero as octal and colons as base 60, so ``horizon_days: 030``
        was a 24-day horizon and ``cap_hours: 1:30`` 90 hours, without a word. As text, base 60 is
        refused by the key's check, naming the key (or kept as written, a Spark conf value).
        """
        text = str(self.construct_scalar(node))
        if ":" in text:
            return text
        if _LEADING_ZERO.match(text):
            return int(text.replace("_", ""), 10)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        """A float as YAML 1.2 reads it: ``1:30.5`` (YAML 1.1's base 60, 90.5) is text."""
        text = str(self.construct_scalar(node))
        return text if ":" in text else super().construct_yaml_float(node)


#: A YAML 1.1 octal integer (``030``, ``-07``), which YAML 1.2 and `_UniqueKeyLoader` read as decimal.
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")

_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _UniqueKeyLoader.construct_yaml_timestamp)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)


#: The configs kamml ships (`src/kamml/configs/`, also `configs/` in a checkout), by the name that loads one.
PACKAGED_CONFIGS = ("default", "cdnow", "spark")


def packaged_config(name: str) -> Path:
    """The file of a config kamml ships ("default": the demo job; "cdnow"; "spark"), found when installed.

    Its paths (data, MLflow store, outputs) are relative, so a job run with it writes under the current
    folder, as from a checkout.
    """
    if name not in PACKAGED_CONFIGS:
        raise ConfigError(f"no packaged config named {name!r}: kamml ships {', '.join(PACKAGED_CONFIGS)}")
    return Path(str(resources.files("kamml").joinpath("configs", f"{name}.yaml")))


def _note_local_copy(name: str) -> None:
    """Warn that a bare packaged name loads the packaged config even beside ``<name>.yaml`` (a copy)."""
    local = Path(f"{name}.yaml")
    if local.is_file():
        logger.warning(
            "loaded kamml's packaged config '%s', not ./%s (a bare name loads the packaged one): "
            "give --config %s to use the file here",
            name,
            local,
            local,
        )


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config file (or none: all defaults) and apply nested `overrides` on top.

    A bare name of a config kamml ships ("default", "cdnow", "spark") with no such file in the current
    folder (a folder of that name does not count) loads the packaged one, so an installed kamml runs
    its demo anywhere.
    """
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path).expanduser()  # "~/job.yaml" from Python, or `--config=~/job.yaml` unexpanded
        if str(path) in PACKAGED_CONFIGS and not path.is_file():  # a folder "spark" does not hide it
            _note_local_copy(str(path))
            path = packaged_config(str(path))
        source = str(path)
        if path.is_dir():
            raise ConfigError(f"config {path} is a folder: give the YAML file inside it")
        if not path.exists():  # not is_file(): a pipe (``--config <(envsubst < job.yaml)``) is read too
            raise ConfigError(
                f"config file not found: {path} (kamml's own configs load by name: "
                f"--config {' | '.join(PACKAGED_CONFIGS)})"
            )
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: a config must be UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except RecursionError:  # thousands of nested lists or mappings: a traceback
            raise ConfigError(f"{path}: not valid YAML: nested too deeply to be a config") from None
        except ValueError as exc:  # a number of more than 4,300 digits, which Python refuses to read
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(loaded).__name__}")
        raw = loaded or {}
    if overrides:
        raw = _merge(raw, overrides)
    return Config.from_dict(raw, source)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where (line, column) and what, without its multi-line file markers."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: {problem}" + (f" ({context})" if context else "")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base` (dicts merge, everything else replaces).

    A section the file gives as something other than a mapping (``time: [1, 2]``) is kept for the
    validation to name: an override (``--horizon-days``) replaced it, and the bad section passed.
    """
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict) and out.get(key) is not None:
            continue
        else:
            out[key] = value
    return out
