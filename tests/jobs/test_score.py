from __future__ import annotations

import logging
import os
import shutil
import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.allocation.stake import stake_parts
from kamml.config import Config
from kamml.data import load_data
from kamml.errors import ConfigError, DataError, FeatureMismatchError, ModelError, SchemaError
from kamml.features import build_features
from kamml.jobs.score import (
    COVERAGE_MIN_ROWS,
    SCORE_COLUMNS,
    score,
    score_to_file,
    warn_lost_features,
    warn_money_unit,
)
from kamml.models.bundle import PREDICTION_COLUMNS
from kamml.tracking import load_model, model_input
from kamml.tracking.pyfunc import score_frame


@pytest.mark.slow
def test_scores_table_has_the_contract_columns_and_matches_the_model(trained, tmp_path):
    cfg, data, result = trained
    uri = f"models:/{cfg.tracking.model_name}@champion"
    out = tmp_path / "scores.parquet"
    table = score_to_file(uri, data, result.scoring_cutoff, out, cfg, chunk_size=150)
    back = pd.read_parquet(out)
    assert list(back.columns) == list(SCORE_COLUMNS)
    assert set(PREDICTION_COLUMNS) <= set(SCORE_COLUMNS)  # every prediction reaches the table
    assert len(back) == len(result.features)
    assert back["account_id"].is_unique
    assert (back["cutoff"] == result.scoring_cutoff).all()
    assert (back["model_uri"] == f"models:/{cfg.tracking.model_name}/{result.promotion.version}").all()
    assert back["owner"].notna().all()
    # chunked scoring through the pyfunc equals one in-process call on the bundle
    direct = score_frame(result.bundle, model_input(result.features))
    pd.testing.assert_series_equal(table["clv"], direct["clv"], check_names=False)
    pd.testing.assert_series_equal(table["drivers"], direct["drivers"], check_names=False)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_scores_carry_the_horizon_of_the_model_that_made_them(trained, tmp_path, suffix):
    """`kamml allocate` without a config reads it from there: the fixed effort rule's hours follow it."""
    from kamml.allocation.scores_file import read_scores

    cfg, data, result = trained
    out = tmp_path / f"scores{suffix}"
    score_to_file(result.model_uri, data, result.scoring_cutoff, out, cfg, explain_top=0)
    back = read_scores(out)
    assert result.bundle.horizon_days == cfg.time.horizon_days == 90
    assert back["horizon_days"].dtype == np.int64
    assert (back["horizon_days"] == 90).all()


@pytest.mark.slow
def test_rerun_replaces_the_output_and_a_bad_extension_fails_before_work(trained, tmp_path):
    cfg, data, result = trained
    out = tmp_path / "scores.csv"
    out.write_text("old,partial\n")
    score_to_file(result.model_uri, data, result.scoring_cutoff, out, cfg)
    assert pd.read_csv(out).columns[0] == "account_id"
    assert not [p for p in tmp_path.iterdir() if p.name != "scores.csv"]
    with pytest.raises(DataError, match=r"\.parquet or \.csv"):
        score_to_file("no-such-model", data, result.scoring_cutoff, tmp_path / "scores.txt", cfg)


def test_writing_over_an_input_table_is_refused_before_any_work(tracked_config, world_path, tmp_path):
    """score_to_file replaced the transactions the data had been read from (a copy here)."""
    import shutil

    from kamml.data import load_data

    cfg = tracked_config()
    copy = tmp_path / "world"
    shutil.copytree(world_path, copy)
    data = load_data(copy, cfg)
    before = (copy / "accounts.parquet").read_bytes()
    with pytest.raises(DataError, match=r"it is the accounts table the job reads"):  # before the model
        score_to_file("no-such-model", data, data.end.normalize(), copy / "accounts.parquet", cfg)
    assert (copy / "accounts.parquet").read_bytes() == before


@pytest.mark.slow
def test_model_needing_tables_the_data_lacks_is_refused_with_the_columns(trained, world_path, tmp_path):
    cfg, _, result = trained
    for part in world_path.iterdir():
        if not part.name.startswith("referrals"):
            (shutil.copytree if part.is_dir() else shutil.copy)(part, tmp_path / part.name)
    data = load_data(tmp_path, cfg)
    with pytest.raises(FeatureMismatchError, match="referrals_made") as info:
        score(load_model(result.model_uri, cfg.tracking), data, result.scoring_cutoff, cfg)
    assert "referred_spend" in info.value.missing


@pytest.mark.slow
def test_attribute_headers_in_another_case_are_named_in_the_refusal(trained, world_path, tmp_path):
    """An export's upper-case headers (SIZE) make attr_SIZE: the refusal said only that attr_size lacked."""
    import pandas as pd

    cfg, _, result = trained
    for part in world_path.iterdir():
        (shutil.copytree if part.is_dir() else shutil.copy)(part, tmp_path / part.name)
    accounts = pd.read_parquet(tmp_path / "accounts.parquet")
    accounts.rename(columns=lambda c: c if c == "account_id" else c.upper()).to_parquet(
        tmp_path / "accounts.parquet"
    )
    data = load_data(tmp_path, cfg)
    with pytest.raises(
        FeatureMismatchError, match=r"present in another case of letters: .*attr_SIZE for attr_size"
    ):
        score(load_model(result.model_uri, cfg.tracking), data, result.scoring_cutoff, cfg)


@pytest.mark.slow
def test_text_in_an_attribute_the_model_read_as_numbers_names_the_accounts_column(
    trained, world_path, tmp_path
):
    """'n/a' in accounts.size stopped scoring with a model error naming only the feature attr_size."""
    cfg, _, result = trained
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    assert "attr_size" in result.bundle.feature_spec()["columns"]
    accounts["size"] = accounts["size"].astype(str)
    accounts.loc[accounts.index[:3], "size"] = "n/a"
    accounts.loc[accounts.index[3], "size"] = "nan"  # a missing number (a parity audit: refused here only)
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    data = load_data(tmp_path / "world", cfg)
    with pytest.raises(SchemaError) as info:
        score(load_model(result.model_uri, cfg.tracking), data, result.scoring_cutoff, cfg)
    (problem,) = info.value.problems
    assert (problem.table, problem.column, problem.n_rows, tuple(problem.examples)) == (
        "accounts",
        "size",
        3,
        ("n/a",),
    )
    assert problem.rule.startswith("not a number")
    assert info.value.exit_code == 3


@pytest.mark.slow
def test_an_empty_table_behind_some_features_is_warned_about(trained, world_path, tmp_path, caplog):
    """A header-only activities export scored every account as if no hours were logged, silently; a
    header-only accounts export left every attribute missing (an audit: total value -19 %), silently."""
    cfg, _, result = trained
    said = {
        "activities": "the activities table has no rows, so the model's effort features (hours_total",
        "accounts": "the accounts table has no rows, so the model's static features (",
    }
    for table, warning in said.items():
        folder = tmp_path / table
        folder.mkdir()
        for part in world_path.iterdir():
            if not part.name.startswith(table):
                (shutil.copytree if part.is_dir() else shutil.copy)(part, folder / part.name)
        pd.read_parquet(world_path / f"{table}.parquet").iloc[:0].to_parquet(folder / f"{table}.parquet")
        data = load_data(folder, cfg)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
            scores = score(load_model(result.model_uri, cfg.tracking), data, result.scoring_cutoff, cfg)
        scored, accounts = set(scores["account_id"]), set(result.features.index)
        assert scored == accounts or (table == "accounts" and scored < accounts)  # no row: no non-buyers
        assert warning in caplog.text
        assert "referrals table" not in caplog.text  # that one has rows
        assert caplog.text.count("has no rows") == 1
        assert "training snapshot" not in caplog.text  # its columns are told once, as the empty table's


@pytest.mark.slow
def test_an_all_null_untyped_accounts_column_scores_as_missing_values(trained, world_path, tmp_path):
    """pyarrow writes a column of only nulls with the null type: it was refused as a missing feature."""
    cfg, _, result = trained
    shutil.copytree(world_path, tmp_path / "untyped")
    shutil.copytree(world_path, tmp_path / "text")
    accounts = pq.read_table(world_path / "accounts.parquet")
    at = accounts.schema.get_field_index("region")
    untyped = accounts.set_column(at, pa.field("region", pa.null()), pa.nulls(len(accounts)))
    pq.write_table(untyped, tmp_path / "untyped" / "accounts.parquet")
    text = accounts.set_column(at, pa.field("region", pa.string()), pa.nulls(len(accounts), pa.string()))
    pq.write_table(text, tmp_path / "text" / "accounts.parquet")
    assert "attr_region" in result.bundle.features
    model = load_model(result.model_uri, cfg.tracking)
    got = score(model, load_data(tmp_path / "untyped", cfg), result.scoring_cutoff, cfg)
    expected = score(model, load_data(tmp_path / "text", cfg), result.scoring_cutoff, cfg)
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.slow
def test_an_attribute_emptied_since_training_is_warned_about(trained, world_path, tmp_path, caplog):
    """Every accounts.size null (an export that lost it) moved the scores without a word (an audit)."""
    cfg, _, result = trained
    coverage = result.bundle.meta["coverage"]
    assert coverage["attr_size"] > 0.9
    assert "btyd_value" not in coverage
    model = load_model(result.model_uri, cfg.tracking)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(model, load_data(world_path, cfg), result.scoring_cutoff, cfg)
    assert "training snapshot" not in caplog.text  # the same data: nothing lost
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    accounts["size"] = np.nan
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(model, load_data(tmp_path / "world", cfg), result.scoring_cutoff, cfg)
    assert "feature attr_size has a value on 0.0 % of the" in caplog.text
    assert "check accounts.size" in caplog.text
    assert caplog.text.count("training snapshot") == 1


@pytest.mark.slow
def test_category_levels_the_models_never_saw_are_noted_once_per_column(
    trained, world_path, tmp_path, caplog
):
    """A new accounts.segment level was scored as a missing segment without a word (an audit)."""
    cfg, _, result = trained
    assert "government" not in result.bundle.clv.categories_["attr_segment"]
    ids = result.features.index[result.features["attr_segment"].notna()][:9]
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    new = {account: "government" for account in ids[:6]} | {account: "public sector" for account in ids[6:]}
    accounts["segment"] = accounts["account_id"].map(new).fillna(accounts["segment"])
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    data = load_data(tmp_path / "world", cfg)
    before = list(data.quality.notes)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        scores = score(result.bundle, data, result.scoring_cutoff, cfg, chunk_size=150)
    added = data.quality.notes[len(before) :]
    assert [(n.table, n.column, n.n_rows, tuple(n.examples)) for n in added] == [
        ("accounts", "segment", 9, ("government", "public sector"))  # the most frequent first
    ]
    assert "never saw in training" in added[0].rule
    assert str(added[0]) in data.quality.to_text()  # where the report's data-quality summary reads
    assert caplog.text.count("never saw in training") == 1  # once, though scored in three chunks
    assert "accounts.segment: 9 of" in caplog.text
    # scored as a missing segment, as LightGBM routes a level outside its splits
    accounts["segment"] = accounts["segment"].where(~accounts["account_id"].isin(ids), None)
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    missing = score(result.bundle, load_data(tmp_path / "world", cfg), result.scoring_cutoff, cfg)
    pd.testing.assert_series_equal(scores["clv"], missing["clv"])
    # scoring the same data again adds no second note
    score(result.bundle, data, result.scoring_cutoff, cfg, explain_top=0)
    assert len(data.quality.notes) == len(before) + 1


@pytest.mark.slow
def test_a_model_of_another_churn_label_is_warned_about(trained, caplog):
    """The champion kept scoring with the churn definition of the config it was trained with, silently."""
    cfg, data, result = trained
    assert result.bundle.meta["churn_label"] == "no_purchase"
    other = cfg.model_copy(deep=True)
    other.models.churn_label = "no_purchase_or_nonrenewal"
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg)
    assert "churn_label" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, other)
    assert (
        "the model was trained with models.churn_label no_purchase, but the config says "
        "no_purchase_or_nonrenewal" in caplog.text
    )


@pytest.mark.slow
def test_a_config_of_another_horizon_is_warned_about(trained, caplog):
    """`kamml score --config` with time.horizon_days 30 scored a 90-day model at 90 without a word, while
    `kamml allocate` with that config refused the scores (a config audit)."""
    cfg, data, result = trained
    unset = Config.from_dict({"tracking": cfg.tracking.model_dump(), "models": cfg.models.model_dump()})
    assert unset.time.horizon_days != result.bundle.horizon_days  # the default, not set: no warning
    other = cfg.model_copy(deep=True)
    other.time.horizon_days = 30
    for config in (cfg, unset):
        with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
            score(result.bundle, data, result.scoring_cutoff, config)
        assert "horizon_days" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        scores = score(result.bundle, data, result.scoring_cutoff, other)
    assert "the model predicts over 90 days, but the config's time.horizon_days is 30" in caplog.text
    assert (scores["horizon_days"] == 90).all()


@pytest.mark.slow
def test_a_cutoff_before_the_outcomes_the_model_learned_from_is_warned_about(trained, caplog):
    """A weekly job rerun for an earlier week after a retrain (``--model models:/NAME@champion``) scored
    that week with a model whose training labels ran past it, silently: other scores than the week's own,
    from a model that knew what followed the cutoff (a batch-job audit)."""
    cfg, data, result = trained
    learned = pd.Timestamp(max(result.bundle.meta["snapshots"])) + pd.Timedelta(
        days=result.bundle.train_horizon_days
    )
    assert learned == result.scoring_cutoff == data.end
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg, explain_top=0)
    assert "learned from outcomes" not in caplog.text  # the model's own cutoff, or a later week's
    earlier = data.end - pd.Timedelta(days=7)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, earlier, cfg, explain_top=0)
    assert (
        f"the model learned from outcomes up to {learned.date()} (exclusive), after the cutoff "
        f"{earlier.date()}" in caplog.text
    )


def test_lost_features_are_told_from_the_training_shares():
    """None now where 5 % had one, or under a quarter of a share of 20 % or more; small batches pass."""
    bundle = types.SimpleNamespace(
        meta={"coverage": {"attr_a": 0.06, "attr_b": 0.9, "gap_std": 0.8, "attr_c": 0.04, "x": 0.5}}
    )
    n = 100
    rows = pd.DataFrame(
        {
            "attr_a": np.nan,  # 6 % -> none
            "attr_b": np.where(np.arange(n) < 20, 1.0, np.nan),  # 90 % -> 20 %: under a quarter
            "gap_std": np.where(np.arange(n) < 30, 1.0, np.nan),  # 80 % -> 30 %: kept
            "attr_c": np.nan,  # 4 % -> none: too rare to tell
        }
    )
    assert warn_lost_features(bundle, rows) == ["attr_a", "attr_b"]
    assert warn_lost_features(bundle, rows.head(COVERAGE_MIN_ROWS - 1)) == []
    assert warn_lost_features(types.SimpleNamespace(meta={}), rows) == []  # a bundle saved before


def test_amounts_in_another_unit_than_at_training_are_told(caplog):
    """A CRM export switched to cents: every amount x100 scored without a word (total value x16, one
    account x37; a batch-job audit). The typical order value against the training's tells it."""
    bundle = types.SimpleNamespace(meta={"order_value": 50.0})
    n = 100
    rows = pd.DataFrame({"monetary": np.where(np.arange(n) < 30, 0.0, 5_000.0)})  # one-time buyers: 0
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        assert warn_money_unit(bundle, rows) == pytest.approx(100.0)
    assert "transactions.amount" in caplog.text
    assert "100 times the 50 the model learned from" in caplog.text
    assert warn_money_unit(bundle, rows / 1e4) == pytest.approx(0.01)  # thousands for units
    assert warn_money_unit(bundle, rows * 0.06) is None  # 300: six times, a business may do that
    assert warn_money_unit(bundle, rows.head(COVERAGE_MIN_ROWS - 1)) is None  # too few to tell
    assert warn_money_unit(types.SimpleNamespace(meta={}), rows) is None  # a bundle saved before
    assert warn_money_unit(types.SimpleNamespace(meta={"order_value": float("nan")}), rows) is None


@pytest.mark.slow
def test_a_trained_bundle_keeps_its_typical_order_value(trained, caplog):
    cfg, data, result = trained
    kept = result.bundle.meta["order_value"]
    assert kept > 0
    features = build_features(data, result.scoring_cutoff, result.bundle.scoring_config(cfg))
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg, explain_top=0, features=features)
    assert "another unit" not in caplog.text
    cents = features.assign(monetary=features["monetary"] * 100)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg, explain_top=0, features=cents)
    assert "another unit" in caplog.text


@pytest.mark.slow
def test_a_trained_model_loads_from_its_configs_store_and_mlflow_stays_the_users(
    trained, tmp_path, mlflow_state
):
    """After `train`, MLflow points where the user left it: the model's URI is looked up in the config's
    store when the config's tracking is given, and a lookup without it names the store it searched."""
    import mlflow

    cfg, _, result = trained
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    mlflow.set_tracking_uri(mine)  # a notebook's own store
    model = load_model(result.model_uri, cfg.tracking)
    assert model.bundle.horizon_days == result.bundle.horizon_days
    assert mlflow.get_tracking_uri() == mine
    with pytest.raises(ModelError, match=r"load_model\(uri, config.tracking\)") as info:
        load_model(result.model_uri)
    assert mine in str(info.value)
    assert mlflow.get_tracking_uri() == mine


@pytest.mark.slow
def test_drivers_only_for_the_accounts_with_most_at_stake_when_asked(trained):
    """The explained accounts are those the plan puts first: by the allocation's stake, not by clv."""
    cfg, data, result = trained
    cfg = cfg.model_copy(deep=True)
    cfg.allocation.weights = {"retention": 1.0, "growth": 0.0, "referral": 0.0}  # at risk, not just large
    model = load_model(result.model_uri, cfg.tracking)
    full = score(model, data, result.scoring_cutoff, cfg, features=result.features)
    some = score(model, data, result.scoring_cutoff, cfg, features=result.features, explain_top=10)
    pd.testing.assert_series_equal(some["clv"], full["clv"])
    named = some["drivers"] != ""
    assert named.sum() == 10
    stake = stake_parts(full, cfg.allocation.weights)["stake"]
    top = stake.rank(ascending=False, method="first") <= 10
    assert (named == top).all()
    assert not (named == (full["clv"].rank(ascending=False, method="first") <= 10)).all()  # not by clv
    pd.testing.assert_series_equal(some.loc[named, "drivers"], full.loc[named, "drivers"])


@pytest.mark.slow
def test_a_cutoff_after_the_data_end_is_refused_and_the_end_is_scored(trained):
    cfg, data, result = trained
    model = load_model(result.model_uri, cfg.tracking)
    late = data.end + pd.Timedelta(days=150)
    with pytest.raises(ConfigError, match=rf"cutoff {late.date()} is after the data end {data.end.date()}"):
        score(model, data, late, cfg)
    at_end = score(model, data, data.end, cfg, explain_top=0)
    assert (at_end["cutoff"] == data.end).all()
    assert len(at_end) == len(result.features)
    first = pd.Timestamp(data.quality.tables["transactions"].first).normalize()
    with pytest.raises(ConfigError, match=r"is on or before the first transaction"):  # scored, exit 0
        score(model, data, first - pd.Timedelta(days=400), cfg)


@pytest.mark.slow
def test_a_fresh_session_finds_the_registered_model_through_the_config(
    trained, tmp_path, monkeypatch, mlflow_state
):
    """MLflow pointed elsewhere (a fresh Python session uses its default store): the config's store wins,
    and MLflow points where it did after scoring (the lookup left it on the config's store before)."""
    import mlflow

    cfg, data, result = trained
    uri = f"models:/{cfg.tracking.model_name}@champion"
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)  # no user's variable (restored as it was afterwards)
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)  # MLflow's setters write them; a fresh session has neither
    table = score(uri, data, result.scoring_cutoff, cfg, explain_top=0)
    assert len(table) == len(result.features)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (elsewhere, elsewhere)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    # a bundle in memory scores the same, without any store
    in_memory = score(result.bundle, data, result.scoring_cutoff, explain_top=0)
    pd.testing.assert_series_equal(in_memory["clv"], table["clv"])
    assert (in_memory["model_uri"] == "in-memory ModelBundle").all()
    with pytest.raises(TypeError, match="URI, a folder, a LoadedModel or a ModelBundle"):
        score(42, data, result.scoring_cutoff)  # type: ignore[arg-type]


@pytest.mark.slow
def test_without_an_accounts_table_the_owner_column_is_text_in_parquet(trained, world_path, tmp_path):
    """No owners (as on CDNOW): Parquet gets a string owner column, not one of Arrow's null type."""
    cfg, _, result = trained
    for part in world_path.iterdir():
        if not part.name.startswith("accounts"):
            (shutil.copytree if part.is_dir() else shutil.copy)(part, tmp_path / part.name)
    data = load_data(tmp_path, cfg)
    out = tmp_path / "out" / "scores.parquet"
    table = score_to_file(result.model_uri, data, result.scoring_cutoff, out, cfg, features=result.features)
    assert table["owner"].isna().all()
    assert pq.read_schema(out).field("owner").type == pa.string()
    assert pd.read_parquet(out)["owner"].isna().all()


def test_a_missing_stake_is_explained_last():
    """Spark sorts NaN above every number: a missing stake must not take an explained account's place."""
    from kamml.jobs.score import explain_priority

    scores = pd.DataFrame({"clv": [10.0, np.nan, 5.0], "p_churn": [0.5, 0.5, 0.5]})
    priority = explain_priority(scores)
    assert np.argsort(-priority, kind="stable").tolist() == [0, 2, 1]
    assert priority[1] == -np.inf


@pytest.mark.slow
def test_feature_rows_with_their_ids_in_a_column_are_scored_under_those_ids(trained):
    """As `write_features` writes them: the scores took the ids 0, 1, 2 ... and those accounts' owners."""
    cfg, data, result = trained
    bundle, cut = result.bundle, result.scoring_cutoff
    indexed = score(bundle, data, cut, cfg, features=result.features, explain_top=0)
    column = score(bundle, data, cut, cfg, features=result.features.reset_index(), explain_top=0)
    pd.testing.assert_frame_equal(column, indexed)
    assert column["account_id"].tolist() == result.features.index.tolist()
    with pytest.raises(SchemaError, match=r"features\.account_id: missing"):
        score(bundle, data, cut, cfg, features=result.features.reset_index(drop=True))


@pytest.mark.slow
def test_feature_rows_whose_ids_match_no_account_are_warned_about(trained, caplog):
    """Rows given with text ids ("450" for the accounts table's 450) were scored without owners, silently."""
    cfg, data, result = trained
    rows = result.features.set_axis(result.features.index.astype(str), axis=0)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        scores = score(result.bundle, data, result.scoring_cutoff, cfg, features=rows, explain_top=0)
    assert scores["owner"].isna().all()
    assert "features.account_id matches no accounts.account_id (features: object ids such as '" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        scores = score(
            result.bundle, data, result.scoring_cutoff, cfg, features=result.features, explain_top=0
        )
    assert scores["owner"].notna().any()
    assert "matches no accounts.account_id" not in caplog.text


@pytest.mark.parametrize("ids_in", ["index", "column"])
def test_feature_rows_with_duplicated_or_missing_ids_are_refused_before_the_model(world_path, ids_in):
    """Given rows of one account twice were scored twice, a scores table `kamml allocate` refuses later."""
    data = load_data(world_path)
    ids = pd.Index(["A-7", "A-8", "A-7", None, "A-9"], name="account_id")
    rows = pd.DataFrame({"frequency": [1.0, 2.0, 3.0, 4.0, 5.0]}, index=ids)
    given = rows if ids_in == "index" else rows.reset_index()
    with pytest.raises(SchemaError) as info:
        score("no-such-model", data, data.end.normalize(), features=given)
    text = str(info.value)
    assert "features.account_id: duplicated id (2 rows; e.g. 'A-7')" in text
    assert "features.account_id: null id (1 row)\n" in text


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("explain_top", -1),
        ("explain_top", 2.5),
        ("explain_top", True),
        ("chunk_size", 0),
        ("chunk_size", -5),
        ("top_drivers", -1),
    ],
)
def test_counts_that_are_no_whole_number_in_range_are_refused_before_the_model(world_path, option, value):
    """explain_top=-1 named drivers for every account but one; chunk_size=0 was a ZeroDivisionError."""
    data = load_data(world_path)
    with pytest.raises(ConfigError, match=rf"{option} must be a whole number, [01] or more \(got {value}\)"):
        score("no-such-model", data, data.end.normalize(), **{option: value})


@pytest.mark.parametrize(("option", "value"), [("explain_top", -1), ("top_drivers", -2)])
def test_spark_scoring_refuses_negative_counts_as_in_memory(option, value):
    """On Spark a negative explain_top was taken as 0 without a word (the CLI refuses it already)."""
    pytest.importorskip("pyspark")
    from kamml.spark.score import score_frame_spark

    with pytest.raises(ConfigError, match=rf"{option} must be a whole number, 0 or more \(got {value}\)"):
        score_frame_spark("no-such-model", None, None, **{option: value})


def test_unseen_level_note_groups_the_levels_seen_in_training():
    """'training saw 1234 levels' read without separators; one level is '1 level'."""
    from kamml.jobs.score import unseen_level_note

    many = unseen_level_note("region", [f"r{i}" for i in range(1234)], 3, ["new"])
    assert "training saw 1,234 levels: 'r0', 'r1'" in many.rule
    assert "training saw 1 level: 'r0'" in unseen_level_note("region", ["r0"], 3, ["new"]).rule


@pytest.mark.slow
def test_feature_rows_given_are_said_to_be_given_not_built_in_no_time(trained, caplog):
    """`kamml run` passes the training job's rows: the log said "features for 100,000 accounts in 0.0 s"."""
    cfg, data, result = trained
    with caplog.at_level(logging.INFO, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg, features=result.features, explain_top=0)
    n, cut = f"{len(result.features):,}", result.scoring_cutoff.date()
    assert f"features for {n} accounts at {cut} given, not built again" in caplog.text
    assert " in 0.0 s" not in caplog.text.split("scored ")[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kamml.jobs.score"):
        score(result.bundle, data, result.scoring_cutoff, cfg, explain_top=0)
    assert f"features for {n} accounts at {cut} in " in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("value", [pd.Timestamp("2024-01-01"), b"retail"])
def test_dates_or_bytes_in_a_category_feature_are_a_schema_error_as_on_spark(trained, value):
    """Fit refuses them; the batch scorer read each as an unseen level (a missing value) with a note, and
    the models' own refusal is a model error (exit 5) where Spark's schema check is this SchemaError."""
    cfg, data, result = trained
    bundle, cut = result.bundle, result.scoring_cutoff
    name = sorted(bundle.clv.categories_)[0]
    features = result.features.assign(**{name: [value] + [None] * (len(result.features) - 1)})
    with pytest.raises(SchemaError) as info:
        score(bundle, data, cut, cfg, features=features, explain_top=0)
    (problem,) = info.value.problems
    kind, reason = (
        ("Timestamp", "dates and durations") if isinstance(value, pd.Timestamp) else ("bytes", "bytes")
    )
    assert (problem.table, problem.column, problem.n_rows) == ("features", name, 1)
    assert problem.rule.startswith(
        f"must hold one category (text) per row as it was in fit, got {kind}: {reason}"
    )
    assert problem.rule.endswith("send the category as text")
    assert len(problem.examples) == 1  # the value, as the other problems show theirs
    assert info.value.exit_code == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [(["SMB", "retail"], "list", "['SMB', 'retail']"), ({"a": "SMB"}, "dict", "{'a': 'SMB'}")],
)
def test_a_list_or_a_dict_in_a_category_feature_is_a_schema_error_as_on_spark(trained, value, kind, shown):
    """The models' own refusal was a model error (exit 5), where Spark's schema check says SchemaError
    (exit 3) with the same rule ("..., got array<string>"); now the batch scorer says it first."""
    from kamml.models._lgbm import CATEGORY_RULE

    cfg, data, result = trained
    bundle, cut = result.bundle, result.scoring_cutoff
    name = sorted(bundle.clv.categories_)[0]
    column = pd.Series([None] * len(result.features), index=result.features.index, dtype=object)
    column.iloc[[3, 5]] = [value, value]
    with pytest.raises(SchemaError) as info:
        score(bundle, data, cut, cfg, features=result.features.assign(**{name: column}), explain_top=0)
    assert [(p.table, p.column, p.rule, p.n_rows, p.examples) for p in info.value.problems] == [
        ("features", name, CATEGORY_RULE.format(type=kind), 2, (shown,))
    ]
    assert info.value.exit_code == 3


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[ns]"])
def test_a_date_column_without_a_date_in_a_category_feature_is_refused_by_its_type_as_on_spark(
    trained, dtype
):
    """Every value NaT: scored as missing in memory, while Spark's schema refuses a timestamp column in a
    category feature whatever its values. A date column is no category column: refused here too."""
    from kamml.models._lgbm import CATEGORY_RULE, DATED_CATEGORY_REASON

    cfg, data, result = trained
    bundle, cut = result.bundle, result.scoring_cutoff
    name = sorted(bundle.clv.categories_)[0]
    empty = pd.Series(pd.NaT, index=result.features.index, dtype=dtype)
    with pytest.raises(SchemaError) as info:
        score(bundle, data, cut, cfg, features=result.features.assign(**{name: empty}), explain_top=0)
    rule = CATEGORY_RULE.format(type=dtype) + DATED_CATEGORY_REASON
    assert [(p.table, p.column, p.rule, p.n_rows) for p in info.value.problems] == [
        ("features", name, rule, 0)
    ]
