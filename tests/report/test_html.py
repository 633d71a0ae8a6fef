import base64
import io
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kamml.allocation.allocate import allocate, budget_curve
from kamml.allocation.summary import amount, hours_text
from kamml.config import AllocationConfig, Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import DataError
from kamml.evaluation.backtest import backtest
from kamml.report.html import REPS_LISTED, render_report
from kamml.report.plots import backtest_frame

FAST = {"n_estimators": 40, "early_stopping_rounds": 10}
DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
VOID = {"meta", "img", "br", "hr", "link", "input", "wbr", "col", "area", "base", "source"}


class Page(HTMLParser):
    """Collects tags, <img> sources, text and attribute values; checks that elements nest properly."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.tags = []
        self.images = []
        self.attributes = []
        self.text = []
        self.errors = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(v or "" for _, v in attrs)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.errors == []
    assert page.stack == []
    page.all_text = "".join(page.text)
    page.raw = path.read_text(encoding="utf-8")
    return page


def png_of(src):
    match = DATA_URI.fullmatch(src)
    assert match, src[:60]
    data = base64.b64decode(match.group(1), validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.verify()
    return Image.open(io.BytesIO(data)).size


def assert_self_contained(path, page):
    for src in (img["src"] for img in page.images):
        width, height = png_of(src)
        assert width > 200
        assert height > 100
    raw = DATA_URI.sub("data:", path.read_text(encoding="utf-8"))
    assert not re.search(r"https?:", raw, flags=re.IGNORECASE)
    assert "//" not in raw.replace("<!DOCTYPE html>", "")
    assert not {"script", "link", "iframe", "a", "object", "embed"} & set(page.tags)
    assert all(not v or v.startswith("data:image/png;base64,") or "://" not in v for v in page.attributes)


def scores(n=120, seed=3, owners=3):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "account_id": [f"ACC-{i:04d}" for i in range(n)],
            "clv": rng.lognormal(7.0, 1.0, n),
            "p_churn": rng.uniform(0.0, 1.0, n),
            "referral_value": np.where(rng.random(n) < 0.1, rng.gamma(2.0, 500.0, n), 0.0),
        }
    )
    if owners:
        frame["owner"] = [f"rep {i % owners}" for i in range(n)]
    return frame


def test_a_plan_without_backtest(tmp_path):
    s = scores()
    table = allocate(s, hours=200.0, config=AllocationConfig(floor_hours=0.5))
    path = render_report(
        tmp_path / "out" / "report.html",
        allocation=table,
        backtest=None,
        budget_curve=budget_curve(s, 200.0, AllocationConfig(floor_hours=0.5)),
        quality="Data check passed: no errors, 0 data-quality notes.",
        title="Plan for Q3",
        summary={"cutoff": pd.Timestamp("2024-07-01"), "model_uri": "models:/kamml@champion", "team": "EMEA"},
        top=10,
    )
    assert path == tmp_path / "out" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    page = parse(path)
    assert_self_contained(path, page)
    text = page.all_text
    for account in table["account_id"].head(10):
        assert account in text
    assert table["account_id"].iloc[10] not in text.split("Top 10 accounts")[1].split("What more")[0]
    for tier in table["tier"].unique():
        assert tier in text
    for rep in ("rep 0", "rep 1", "rep 2"):
        assert rep in text
    assert "2024-07-01" in text
    assert "models:/kamml@champion" in text
    assert "EMEA" in text
    assert f"{table.attrs['allocation']['total_expected_gain']:,.0f}" in text
    assert "No backtest was given" in text
    assert "Data check passed" in text
    assert len(page.images) == 3  # budget curve, tier mix, hours per rep


def test_every_text_from_data_is_escaped(tmp_path):
    s = scores(owners=0)
    s.loc[0, "account_id"] = "<script>alert(1)</script>"
    s.loc[0, "clv"] = 1e6  # first in the plan
    table = allocate(s, hours=100.0)
    table["owner"] = table["owner"].astype(object)
    table.loc[0, "owner"] = 'Ann "<b>" & Co'
    path = render_report(
        tmp_path / "r.html",
        allocation=table,
        quality=pd.DataFrame({"table": ["<transactions>"], "rows": [3]}),
        title="<h1>plan</h1>",
        summary={"note": "<img src=x>"},
    )
    raw = path.read_text(encoding="utf-8")
    assert "<script" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "&lt;h1&gt;plan&lt;/h1&gt;" in raw
    assert "Ann &quot;&lt;b&gt;&quot; &amp; Co" in raw
    assert "&lt;img src=x&gt;" in raw
    assert "&lt;transactions&gt;" in raw
    page = parse(path)
    assert "<script>alert(1)</script>" in page.all_text
    assert_self_contained(path, page)


def test_sections_without_input_become_notes(tmp_path):
    table = allocate(scores(owners=0), hours=100.0)
    path = render_report(tmp_path / "r.html", allocation=table.drop(columns="owner"))
    page = parse(path)
    text = page.all_text
    assert "No budget curve was given" in text
    assert "The accounts have no owners" in text
    assert "The plan by tier" in text
    assert "by rep" not in text  # a CDNOW audit: the heading spoke of reps where there were none
    assert "No backtest was given" in text
    assert "No data-quality summary was given" in text
    assert "Owner" not in text
    assert len(page.images) == 1  # the tier mix only
    assert_self_contained(path, page)


def test_without_the_allocation_summary_the_totals_come_from_the_table(tmp_path):
    table = allocate(scores(), hours=150.0)
    plain = pd.DataFrame(table)  # a table read back from CSV has no attrs
    plain.attrs = {}
    text = parse(render_report(tmp_path / "r.html", allocation=plain)).all_text
    assert f"{table['expected_gain'].sum():,.0f}" in text
    assert "Value of the last hour" not in text


def test_a_chart_that_cannot_be_drawn_is_a_note(tmp_path):
    s = scores()
    cfg = AllocationConfig(floor_hours=1.0)
    curve = budget_curve(s, 150.0, cfg).assign(total_gain=np.nan)
    path = render_report(tmp_path / "r.html", allocation=allocate(s, 150.0, cfg), budget_curve=curve)
    assert "budget curve chart could not be drawn" in parse(path).all_text


def test_the_warnings_a_run_logged_are_listed_once_each_with_their_counts(tmp_path):
    """A scheduled job's reader opens only the report: a run that warned read as clean."""
    table = allocate(scores(), hours=100.0)
    said = ["BG/NBD did not converge", "<b>owner</b> & co lost", "BG/NBD did not converge", "x"]
    path = render_report(tmp_path / "r.html", allocation=table, warnings=said, top=5)
    page = parse(path)
    text = page.all_text
    head = text.index("Warnings this run logged")
    assert text.index("Expected gain") < head < text.index("Top 5 accounts")  # after the facts, first
    section = text[head : text.index("Top 5 accounts")]
    assert section.count("BG/NBD did not converge") == 1
    assert "BG/NBD did not converge (2 times)" in section
    assert "<b>owner</b> & co lost" in section  # as text: escaped in the page
    assert "&lt;b&gt;owner&lt;/b&gt; &amp; co lost" in page.raw
    assert "(1 time" not in section
    assert section.index("BG/NBD") < section.index("owner") < section.index("x")  # first-seen order
    assert "more" not in section


def test_many_warnings_are_cut_with_a_pointer_to_the_log(tmp_path):
    table = allocate(scores(), hours=100.0)
    said = [f"warning number {i}." for i in range(25)] + ["warning number 0."]
    text = parse(render_report(tmp_path / "r.html", allocation=table, warnings=said, top=5)).all_text
    section = text[text.index("Warnings this run logged") : text.index("Top 5 accounts")]
    assert "warning number 0. (2 times)" in section
    assert "warning number 19." in section
    assert "warning number 20." not in section
    assert "and 5 more: see the job's log" in section


def test_a_run_without_warnings_says_so_and_a_report_outside_a_run_shows_no_section(tmp_path):
    table = allocate(scores(), hours=100.0)
    text = parse(render_report(tmp_path / "r.html", allocation=table, warnings=[], top=5)).all_text
    assert "The run logged no warnings." in text
    assert "Warnings this run logged" in text
    alone = parse(render_report(tmp_path / "a.html", allocation=table, top=5)).all_text
    assert "Warnings" not in alone
    assert "logged no warnings" not in alone


def test_bad_inputs_are_data_errors_and_write_nothing(tmp_path):
    table = allocate(scores(), hours=100.0)
    with pytest.raises(DataError, match="lacks columns"):
        render_report(tmp_path / "r.html", allocation=table.drop(columns="tier"))
    with pytest.raises(DataError, match=r"\.html"):
        render_report(tmp_path / "r.pdf", allocation=table)
    with pytest.raises(DataError, match="top"):
        render_report(tmp_path / "r.html", allocation=table, top=0)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- with a real backtest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("world")
    synthetic.generate(600, seed=11, years=2.0).write(path)
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )
    data = load_data(path, cfg)
    result = backtest(data, cfg)
    frame = backtest_frame(result.predictions)
    owners = data.to_pandas("accounts").set_index("account_id")["owner"]
    table = pd.DataFrame(
        {
            "account_id": result.predictions.index,
            "clv": frame["clv"].to_numpy(),
            "p_churn": frame["p_churn"].to_numpy(),
            "referral_value": frame.get("predicted_referral_value", 0.0),
            "p_alive": result.predictions["p_alive"].to_numpy(),
            "drivers": result.predictions["drivers"].to_numpy(),
            "owner": owners.reindex(result.predictions.index).to_numpy(),
        }
    )
    return data, result, table


@pytest.mark.slow
def test_the_full_report(world, tmp_path):
    data, result, score_table = world
    table = allocate(score_table, hours=600.0)
    curve = budget_curve(score_table, hours=600.0)
    path = render_report(
        tmp_path / "report.html",
        allocation=table,
        backtest=result,
        budget_curve=curve,
        quality=data.quality,
        title="kamml plan",
        summary={"cutoff": result.protocol["cutoff"], "model_uri": "models:/kamml/3"},
    )
    page = parse(path)
    assert_self_contained(path, page)
    text = page.all_text
    top = text.split("Top 25 accounts")[1].split("What more")[0]
    for account in table["account_id"].head(25):
        assert str(account) in top
    for tier in table["tier"].unique():
        assert tier in text
    # budget curve, tier mix, hours per rep, and the backtest's gains, deciles, churn, importance
    expected = 3 + 4 + (1 if result.referral else 0)
    assert len(page.images) == expected
    for label in ("kamml", "BG/NBD × Gamma-Gamma", "last period", "BG/NBD P(no purchase)"):
        assert label in text
    assert f"{result.value['kamml']['gini']:.3f}" in text
    assert f"{result.churn['btyd']['roc_auc']:.3f}" in text
    assert f"Backtest at {result.protocol['cutoff']}" in text
    assert "Data check passed" in text
    assert "models:/kamml/3" in text
    assert "the small bottom deciles weigh as much as the top one" in text  # what decile MAPE means
    assert "and how well the predictions behind it did on past data" in text  # the plan's own backtest


def test_a_backtest_of_another_model_than_the_plans_says_so(world, tmp_path):
    _, result, score_table = world
    table = allocate(score_table, hours=600.0)
    note = "This backtest is of version 2, trained by this run and not promoted."
    page = parse(render_report(tmp_path / "r.html", allocation=table, backtest=result, backtest_note=note))
    text = page.all_text
    section = text.split("How well the predictions did on past data")[1]
    assert section.index(note) < section.index(f"Backtest at {result.protocol['cutoff']}")
    assert "not the model behind the plan" in text.split("How well the predictions did")[0]
    assert "and how well the predictions behind it did" not in text
    champion = json.loads(json.dumps(result.to_dict(), default=str))
    champion["value"]["kamml"]["gini"] = 0.4321
    champion["protocol"]["cutoff"] = "2024-01-01"
    page = parse(
        render_report(
            tmp_path / "c.html", allocation=table, backtest=result, backtest_note=note, plan_backtest=champion
        )
    )
    section = page.all_text.split("How well the predictions did on past data")[1]
    first, rest = section.split("The version this run trained (not promoted)")
    assert "The model behind the plan" in first
    assert "Backtest at 2024-01-01" in first
    assert "0.432" in first
    assert f"Backtest at {result.protocol['cutoff']}" in rest
    alone = parse(
        render_report(tmp_path / "d.html", allocation=table, backtest=result, plan_backtest=champion)
    )
    assert "The model behind the plan" not in alone.all_text  # only beside a note saying whose it is


def test_a_plan_grouped_by_tier_and_owner_reads_like_the_whole_table(tmp_path):
    """A Spark run hands the report its plan per tier and owner (with account counts) and the top rows."""
    table = allocate(scores(n=300), hours=400.0, config=AllocationConfig(floor_hours=0.25))
    grouped = (
        table.groupby(["tier", "owner"], as_index=False)
        .agg(
            accounts=("account_id", "size"),
            served=("recommended_hours", lambda h: int((h > 0).sum())),
            recommended_hours=("recommended_hours", "sum"),
            expected_gain=("expected_gain", "sum"),
            rank=("rank", "min"),
        )
        .assign(account_id=None)
    )
    grouped.attrs = dict(table.attrs)
    whole = parse(render_report(tmp_path / "whole.html", allocation=table, top=10))
    part = parse(
        render_report(
            tmp_path / "grouped.html",
            allocation=grouped,
            top=10,
            top_accounts=table.head(10),
            budget_note="Not drawn here.",
        )
    )
    # every number and name the page shows is the same (the footer's clock and the note aside)
    strip = lambda text: re.sub(r"Written by kamml.*", "", text.replace("Not drawn here.", ""))  # noqa: E731
    no_curve = "No budget curve was given, so this section is left out."
    assert strip(part.all_text) == strip(whole.all_text).replace(no_curve, "")
    assert "Not drawn here." in part.all_text
    assert len(part.images) == len(whole.images) == 2  # tier mix, hours per rep


def _tier_table(path):
    """The report's table per tier, as rows of cell texts (the header first)."""
    return _table(path, "Tier")


def _rep_table(path):
    """The report's table per rep, as rows of cell texts (the header first)."""
    return _table(path, "Rep")


def _table(path, first):
    """The report's table whose first column is headed `first`, as rows of cell texts (the header first)."""
    for table in re.findall(r"<table>(.*?)</table>", path.read_text(encoding="utf-8"), flags=re.S):
        rows = [
            [
                re.sub(r"<[^>]+>", "", cell)
                for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
            ]
            for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        ]
        if rows and rows[0][0] == first:
            return rows
    raise AssertionError(f"no table headed {first} in the report")


def test_the_tier_table_counts_the_accounts_with_hours(tmp_path):
    """A CDNOW audit: 71 of 1,179 strategic accounts got hours, and the table showed only the 1,179."""
    table = allocate(scores(n=300), hours=30.0, config=AllocationConfig(floor_hours=0.0))
    served = table[table["recommended_hours"] > 0].groupby("tier").size()
    assert 0 < served.sum() < len(table)
    tier_table = _tier_table(render_report(tmp_path / "r.html", allocation=table, top=10))
    shown = {row[0]: (int(row[1].replace(",", "")), int(row[2].replace(",", ""))) for row in tier_table[1:]}
    for tier, (accounts, with_hours) in shown.items():
        assert accounts == (table["tier"] == tier).sum()
        assert with_hours == served.get(tier, 0)
    grouped = table.groupby(["tier", "owner"], as_index=False).agg(
        accounts=("account_id", "size"), recommended_hours=("recommended_hours", "sum")
    )
    grouped = grouped.assign(expected_gain=0.0, rank=1, account_id=None)
    rows = _tier_table(render_report(tmp_path / "g.html", allocation=grouped, top_accounts=table.head(3)))
    assert {row[2] for row in rows[1:]} == {"–"}  # a group without its served count does not guess


def test_the_rep_table_counts_accounts_as_the_tier_table_does(tmp_path):
    """The rep table's "Accounts" counted every owned account while the tier table beside it split off
    those with hours: a reader compared 100 owned accounts with 71 served. Both now show both counts."""
    table = allocate(scores(n=300), hours=30.0, config=AllocationConfig(floor_hours=0.0))
    served = table[table["recommended_hours"] > 0].groupby("owner").size()
    assert 0 < served.sum() < len(table)
    path = render_report(tmp_path / "r.html", allocation=table, top=10)
    reps = _rep_table(path)
    assert reps[0][:3] == ["Rep", "Accounts", "With hours"]
    assert reps[0][1:3] == _tier_table(path)[0][1:3]
    shown = {row[0]: (int(row[1].replace(",", "")), int(row[2].replace(",", ""))) for row in reps[1:]}
    assert shown == {
        rep: ((table["owner"] == rep).sum(), served.get(rep, 0)) for rep in table["owner"].unique()
    }
    grouped = table.groupby(["tier", "owner"], as_index=False).agg(
        accounts=("account_id", "size"), recommended_hours=("recommended_hours", "sum")
    )
    grouped = grouped.assign(expected_gain=0.0, rank=1, account_id=None)
    rows = _rep_table(render_report(tmp_path / "g.html", allocation=grouped, top_accounts=table.head(3)))
    assert {row[2] for row in rows[1:]} == {"–"}  # a group without its served count does not guess


def test_reps_at_capacity_floors_and_an_infeasible_start_are_said(tmp_path):
    """Capacities summing to the team's hours made the headline read 'value of the last hour 0'; the
    floors' cost and the budgets below them were not mentioned."""
    s = scores()
    cfg = AllocationConfig(floor_hours=0.5, capacity={"rep 0": 70.0, "rep 1": 70.0, "rep 2": 60.0})
    table = allocate(s, hours=200.0, config=cfg)
    plan = table.attrs["allocation"]
    assert plan["team_price"] == 0
    assert min(plan["rep_price"].values()) > 0
    curve = budget_curve(s, 200.0, cfg)
    assert not curve["feasible"].all()
    path = render_report(tmp_path / "r.html", allocation=table, budget_curve=curve, quality="ok")
    text = parse(path).all_text
    assert "per hour of a rep at capacity" in text
    facts = dict(re.findall(r'<div class="k">([^<]*)</div><div class="v">([^<]*)</div>', parse(path).raw))
    # "Cost of the minimum touches: 11,988 of gain" read as money spent: it is expected gain given up
    assert "Cost of the minimum touches" not in text
    without = plan["total_expected_gain"] + plan["floor_cost"]
    assert facts["Expected gain lost to the minimum touches"] == (
        f"{amount(plan['floor_cost'])} (plan without them: {amount(without)})"
    )
    assert "cannot give every active account its minimum touch" in text


def test_small_hours_are_not_rounded_away(tmp_path):
    """The header read "1 of 10" for 1.25 of 10 hours and the 0.25 h touch showed as 0.2."""
    s = pd.DataFrame({"account_id": range(5), "clv": [0.0] * 5, "p_churn": 0.2})
    table = allocate(s, hours=10.0, config=AllocationConfig(floor_hours=0.25))
    page = parse(render_report(tmp_path / "r.html", allocation=table, top=5))
    assert "1.25 of 10" in page.all_text
    assert "0.25" in page.all_text.split("Top 5 accounts")[1]


def test_hours_and_shares_are_not_rounded_into_other_figures(tmp_path):
    """1,999.6 of 2,000 hours read "2,000 of 2,000"; a 0.2 % share of hours read 0 %."""
    table = allocate(scores(n=200), hours=2000.0)
    table.attrs["allocation"] = {**table.attrs["allocation"], "hours_used": 1999.6}
    text = parse(render_report(tmp_path / "r.html", allocation=table, top=5)).all_text
    assert "1,999.6 of 2,000" in text
    lopsided = pd.DataFrame(
        {
            "account_id": [1, 2],
            "rank": [1, 2],
            "tier": ["big", "small"],
            "recommended_hours": [998.0, 2.0],
            "expected_gain": [10.0, 1.0],
        }
    )
    cells = [t.strip() for t in parse(render_report(tmp_path / "s.html", allocation=lopsided, top=5)).text]
    assert ">99%" in cells
    assert "<1%" in cells
    assert "100%" not in cells
    assert "0%" not in cells


def test_a_grouped_plan_without_its_summary_counts_its_accounts(tmp_path):
    grouped = pd.DataFrame(
        {
            "account_id": None,
            "rank": [1, 2],
            "tier": ["a", "b"],
            "recommended_hours": [10.0, 5.0],
            "expected_gain": [100.0, 20.0],
            "accounts": [120, 180],
        }
    )
    rows = grouped.assign(account_id=[1000.0, 2000.0])
    text = parse(render_report(tmp_path / "g.html", allocation=grouped, top=5, top_accounts=rows)).all_text
    assert "Accounts300" in text.replace(" ", "")
    assert "1000" in text  # an id read as float is shown as the id
    assert "1,000.00" not in text


def test_top_accounts_without_a_needed_column_is_a_named_error(tmp_path):
    table = allocate(scores(n=50), hours=100.0)
    with pytest.raises(DataError, match=r"top_accounts table lacks columns \['rank'\]"):
        render_report(tmp_path / "r.html", allocation=table, top_accounts=table.drop(columns="rank"))
    assert not (tmp_path / "r.html").exists()


def test_the_best_figure_per_metric_is_bold_by_the_gates_directions():
    """The report's bold follows `kamml.config.larger_is_better`: the aggregate error nearest 0 (of
    either sign), the lower RMSE and Brier, the higher Gini and AUC; a lone figure is not bold."""
    from kamml.report.html import _metrics_table

    value = {
        "kamml": {"gini": 0.70, "aggregate_error": 0.04, "rmse": 90.0},
        "btyd": {"gini": 0.72, "aggregate_error": -0.03, "rmse": 95.0},
    }
    html = _metrics_table("value", value, ["gini", "aggregate_error", "rmse"])
    bold = re.findall(r"<strong>(.*?)</strong>", html)
    assert bold == ["90.0", "0.720", "-3.0%"]  # row by row, kamml first
    churn = {"kamml": {"roc_auc": 0.80, "brier": 0.15}, "btyd": {"roc_auc": 0.79}}
    bold = re.findall(r"<strong>(.*?)</strong>", _metrics_table("churn", churn, ["roc_auc", "brier"]))
    assert bold == ["0.800"]


def test_figures_that_read_the_same_are_bold_together():
    """Bold compares the figures as written: a 30-day demo bolded BG/NBD's 53.8% top-10% capture and not
    kamml's 53.8% beside it (0.5383 against 0.5376), which read as a loss where the table shows a tie."""
    from kamml.report.html import _metrics_table

    value = {
        "kamml": {"top10_capture": 0.5376, "aggregate_error": 0.0201, "rmse": 1423.2},
        "btyd": {"top10_capture": 0.5383, "aggregate_error": -0.0199, "rmse": 1422.9},
        "last_period": {"top10_capture": 0.50, "aggregate_error": 0.05, "rmse": 1959.0},
    }
    html = _metrics_table("value", value, ["top10_capture", "aggregate_error", "rmse"])
    bold = re.findall(r"<strong>(.*?)</strong>", html)
    assert bold == ["53.8%", "+2.0%", "1,423", "53.8%", "-2.0%", "1,423"]  # row by row, kamml first


def test_a_referral_value_not_evaluated_says_why(world, tmp_path):
    """The backtest's table and JSON said why there were no referral metrics; the report said nothing (a
    report audit: the word "referral" appeared nowhere in a transactions-only run's report)."""
    import dataclasses

    _, result, score_table = world
    table = allocate(score_table, hours=600.0)
    why = "no referrals table in the data: no referral value to evaluate"
    alone = dataclasses.replace(result, referral={}, referral_note=why)
    text = parse(render_report(tmp_path / "r.html", allocation=table, backtest=alone)).all_text
    assert f"Referral value not evaluated: {why}." in text
    champion = json.loads(json.dumps(alone.to_dict(), default=str))
    note = "This backtest is of version 2, trained by this run and not promoted."
    page = parse(
        render_report(
            tmp_path / "c.html", allocation=table, backtest=result, backtest_note=note, plan_backtest=champion
        )
    )
    first, rest = page.all_text.split("The version this run trained (not promoted)")
    assert f"Referral value not evaluated: {why}." in first
    assert "Referral value not evaluated" not in rest  # this run's backtest has its referral metrics


def test_one_backtest_chart_that_fails_loses_only_that_chart(world, tmp_path, monkeypatch, caplog):
    """A churn calibration that could not be drawn dropped every backtest chart (gains, deciles, drivers)."""
    import kamml.report.plots as plots

    _, result, score_table = world
    table = allocate(score_table, hours=600.0)

    def broken(*args, **kwargs):
        raise DataError("churn outcomes must be 0 or 1")

    monkeypatch.setattr(plots, "plot_churn_calibration", broken)
    with caplog.at_level("WARNING", logger="kamml.report"):
        page = parse(render_report(tmp_path / "r.html", allocation=table, backtest=result))
    alts = [img["alt"] for img in page.images]
    assert "cumulative gains and lift of the value forecast beside the baselines" in alts
    assert "predicted vs actual value by decile" in alts
    assert "gain importance of the value model's features" in alts
    assert "churn calibration beside BG/NBD" not in alts
    assert "The churn calibration chart could not be drawn: churn outcomes must be 0 or 1" in page.all_text
    assert any(r.levelname == "WARNING" and "churn_calibration" in r.getMessage() for r in caplog.records)


def test_training_logs_the_backtest_charts_that_can_be_drawn(world, monkeypatch):
    """`kamml train` logged the charts without `errors`: one that could not be drawn failed the run."""
    import kamml.report.plots as plots
    from kamml.jobs.train import _log_plots

    _, result, _ = world

    def broken(*args, **kwargs):
        raise DataError("churn outcomes must be 0 or 1")

    class Run:
        def __init__(self):
            self.logged: list[str] = []

        def log_artifacts(self, folder, path):
            self.logged.extend(sorted(p.name for p in Path(folder).rglob("*.png")))

    monkeypatch.setattr(plots, "plot_churn_calibration", broken)
    run = Run()
    _log_plots(run, result)
    assert "gains.png" in run.logged
    assert "decile_calibration.png" in run.logged
    assert "churn_calibration.png" not in run.logged


def test_small_hours_per_tier_and_rep_are_not_rounded_away(tmp_path):
    """The tier and rep tables showed hours to one decimal: four tiers of 0.25 h read 0.2 each (0.8 in
    all) under a header of 1 hour."""
    table = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4],
            "rank": [1, 2, 3, 4],
            "tier": ["a", "b", "c", "d"],
            "recommended_hours": [0.25, 0.25, 0.25, 0.25],
            "expected_gain": [4.0, 3.0, 2.0, 1.0],
            "owner": ["r1", "r2", "r3", "r4"],
        }
    )
    path = render_report(tmp_path / "r.html", allocation=table)
    rows = _tier_table(path)
    assert [row[3] for row in rows[1:]] == ["0.25"] * 4
    reps = _rep_table(path)
    column = reps[0].index("Hours")
    assert [row[column] for row in reps[1:]] == ["0.25"] * 4


def test_hours_in_one_column_read_in_one_format(tmp_path):
    """The tier and rep tables wrote each figure with only the decimals it needed: "1,053.75" stood above
    "375" and "64.4" in one column. A column now gives every figure the same decimals (those its most
    precise figure needs, at most two), with thousands separators."""
    table = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4],
            "rank": [1, 2, 3, 4],
            "tier": ["a", "b", "c", "d"],
            "recommended_hours": [1053.75, 375.0, 64.4, 0.0],
            "expected_gain": [40.0, 30.0, 20.0, 10.0],
            "owner": ["r1", "r2", "r3", "r4"],
        }
    )
    path = render_report(tmp_path / "r.html", allocation=table)
    expected = ["1,053.75", "375.00", "64.40", "0.00"]
    tiers = _tier_table(path)
    assert [row[tiers[0].index("Hours")] for row in tiers[1:]] == expected
    reps = _rep_table(path)
    assert [row[reps[0].index("Hours")] for row in reps[1:]] == expected
    whole = table.assign(recommended_hours=[1200.0, 375.0, 60.0, 0.0])
    reps = _rep_table(render_report(tmp_path / "w.html", allocation=whole))
    assert [row[reps[0].index("Hours")] for row in reps[1:]] == ["1,200", "375", "60", "0"]


def test_one_of_a_thing_is_singular(tmp_path):
    """ "Budgets up to 1 hours", "trained on 1 earlier snapshots", "1 test accounts"."""
    from kamml.report.html import _protocol

    table = allocate(scores(n=20), hours=10.0, config=AllocationConfig(floor_hours=0.0))
    curve = pd.DataFrame(
        {
            "fraction": [0.1, 0.2, 1.0],
            "hours": [1.0, 2.0, 10.0],
            "total_gain": [np.nan, 5.0, 9.0],
            "team_price": [np.nan, 2.0, 0.5],
            "feasible": [False, True, True],
        }
    )
    text = parse(render_report(tmp_path / "r.html", allocation=table, budget_curve=curve)).all_text
    assert "Budgets up to 1 hour cannot" in text
    one = _protocol({"cutoff": "2024-01-01", "training_snapshots": ["2023-07-01"], "test_accounts": 1})
    assert "trained on 1 earlier snapshot," in one
    assert "1 test account." in one
    two = _protocol({"cutoff": "2024-01-01", "training_snapshots": ["a", "b"], "test_accounts": 2})
    assert "trained on 2 earlier snapshots," in two
    assert "2 test accounts." in two


def test_a_plan_without_accounts_says_so(tmp_path):
    """An empty plan read "Top 0 accounts" above an empty table."""
    empty = pd.DataFrame(
        {c: [] for c in ("account_id", "rank", "tier", "recommended_hours", "expected_gain")}
    )
    page = parse(render_report(tmp_path / "r.html", allocation=empty))
    assert "Top 0 accounts" not in page.all_text
    assert "The plan has no accounts." in page.all_text


def _capacity_plan(n=120, hours=60.0, capacity=None):
    """A plan of three reps, every tenth account without an owner; rep 0 held back by its capacity."""
    s = scores(n=n, owners=3)
    s.loc[s.index[::10], "owner"] = None
    cfg = AllocationConfig(floor_hours=0.1, capacity=capacity or {"rep 0": 5.0, "rep 1": 1000.0})
    return allocate(s, hours=hours, config=cfg)


def test_the_rep_table_shows_each_reps_capacity_and_who_is_at_it(tmp_path):
    """The rep table gave each rep's hours and the value of its last hour, not the capacity they are
    measured against: "rep 0: 5 h" could not be read as "all rep 0 has". Reps without a capacity, and
    the accounts without an owner, have no limit of their own."""
    table = _capacity_plan()
    used = table.groupby("owner")["recommended_hours"].sum()
    assert used["rep 0"] == pytest.approx(5.0, rel=1e-9)
    assert used["rep 1"] < 1000.0
    path = render_report(tmp_path / "r.html", allocation=table)
    rows = _rep_table(path)
    heads = rows[0]
    assert heads[:5] == ["Rep", "Accounts", "With hours", "Hours", "Capacity (hours)"]
    shown = {row[0]: row[4] for row in rows[1:]}
    assert shown == {
        "rep 0": "5, at capacity",
        "rep 1": "1,000",
        "rep 2": "no limit",
        "(no owner)": "no limit",
    }
    text = parse(path).all_text.split("Hours per rep")[1]
    assert "At capacity (hours used equal allocation.capacity): rep 0." in text


def test_the_rep_table_has_no_capacity_column_without_capacities(tmp_path):
    """Without allocation.capacity no rep has a limit of its own: a column of "no limit" says nothing."""
    table = allocate(scores(n=60), hours=60.0, config=AllocationConfig(floor_hours=0.1))
    path = render_report(tmp_path / "r.html", allocation=table)
    assert "Capacity (hours)" not in _rep_table(path)[0]
    assert "At capacity" not in parse(path).all_text


def test_a_rep_named_like_the_ownerless_accounts_keeps_its_own_row(tmp_path):
    """A rep literally named "(no owner)" was merged with the accounts without an owner: one row of both
    their accounts and hours, given the rep's capacity and price."""
    s = scores(n=120, owners=3)
    s["owner"] = s["owner"].replace("rep 0", "(no owner)")
    s.loc[s.index[1::10], "owner"] = None
    cfg = AllocationConfig(floor_hours=0.1, capacity={"(no owner)": 4.0})
    table = allocate(s, hours=60.0, config=cfg)
    plan = table.attrs["allocation"]
    counts = table["owner"].value_counts(dropna=False)
    rows = {row[0]: row for row in _rep_table(render_report(tmp_path / "r.html", allocation=table))[1:]}
    assert set(rows) == {"(no owner)", "(accounts without an owner)", "rep 1", "rep 2"}
    assert rows["(no owner)"][1] == f"{counts['(no owner)']:,}"
    assert rows["(no owner)"][4] == "4, at capacity"
    assert rows["(no owner)"][-1] == amount(plan["rep_price"]["(no owner)"])
    ownerless = rows["(accounts without an owner)"]
    assert ownerless[1] == f"{int(table['owner'].isna().sum()):,}"
    assert ownerless[4] == "no limit"
    assert ownerless[-1] == amount(plan["team_price"])


def test_a_grouped_plan_shows_the_capacities_as_the_whole_table(tmp_path):
    """A Spark run's report reads the plan per tier and owner with the same summary: the same capacities."""
    table = _capacity_plan()
    grouped = (
        table.groupby(["tier", "owner"], as_index=False, dropna=False)
        .agg(
            accounts=("account_id", "size"),
            served=("recommended_hours", lambda h: int((h > 0).sum())),
            recommended_hours=("recommended_hours", "sum"),
            expected_gain=("expected_gain", "sum"),
            rank=("rank", "min"),
        )
        .assign(account_id=None)
    )
    grouped.attrs = dict(table.attrs)
    whole = _rep_table(render_report(tmp_path / "whole.html", allocation=table))
    part = _rep_table(render_report(tmp_path / "part.html", allocation=grouped, top_accounts=table.head(5)))
    assert part == whole
    assert "Capacity (hours)" in part[0]


def test_money_in_small_units_reads_as_the_plan_line_does(tmp_path):
    """Amounts kept in thousands: every expected gain read 4, 3, 2, 1, 1, ..., 0, 0 and the header 20 while
    the plan line said 20.3; a rep's last hour worth 0.11 read 0."""
    from kamml.allocation.summary import amount, plan_line

    s = scores(n=30).assign(clv=lambda f: f["clv"] / 1000, referral_value=0.0)
    cfg = AllocationConfig(floor_hours=0.5, capacity={"rep 0": 10.0})
    table = allocate(s, hours=100.0, config=cfg, horizon_days=180)
    plan = table.attrs["allocation"]
    path = render_report(tmp_path / "r.html", allocation=table, top=30)
    text = parse(path).all_text
    total = amount(plan["total_expected_gain"])
    assert total != f"{plan['total_expected_gain']:,.0f}"  # the case: a gain below 100
    assert total in plan_line(plan)
    assert f"Expected gain{total}" in text
    top = text.split("Top 30 accounts")[1].split("What more")[0]
    for gain in table["expected_gain"]:
        assert amount(gain) in top
    tiers = _tier_table(path)
    by_tier = table.groupby("tier")["expected_gain"].sum()
    assert {row[0]: row[5] for row in tiers[1:]} == {t: amount(g) for t, g in by_tier.items()}
    assert amount(plan["rep_price"]["rep 0"]) in text.split("Hours per rep")[1]


def test_long_names_may_break_so_the_tables_keep_their_columns_on_the_page(tmp_path):
    """A 5,000-character account id without a space stretched the table: a browser put the tier, hours,
    gain and owner beyond the right edge of the page. Names (ids, tiers, reps) may now break anywhere,
    and only they: a rule for every cell broke "Rank" and "strategic" letter by letter. Outside the
    tables a long name ran off the page too: in the title, a note (the reps at capacity), a warning, the
    protocol line, a fact's label and the data-quality table's text; these may break as well."""
    table = allocate(scores(n=5), hours=10.0, horizon_days=180)
    table["account_id"] = table["account_id"].astype(object)
    table.loc[0, "account_id"] = "y" * 5000
    table["owner"] = table["owner"].astype(object)
    table.loc[0, "owner"] = "x" * 300
    quality = pd.DataFrame({"rule": ["z" * 400], "rows": [3]})
    raw = render_report(tmp_path / "r.html", allocation=table, quality=quality).read_text(encoding="utf-8")
    style = re.search(r"<style>(.*?)</style>", raw, re.S)[1]
    wrapped = [
        selector.strip()
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", style)
        if "overflow-wrap: anywhere" in body
        for selector in selectors.split(",")
    ]
    assert sorted(wrapped) == sorted(["td.w", "h1", ".sub", ".note", "li", ".fact .k"])  # no td, th
    cells = re.findall(r'<td class="w">([^<]*)</td>', raw)
    assert "y" * 5000 in cells
    assert "x" * 300 in cells  # in the top accounts and in the rep table
    assert cells.count("x" * 300) == 2
    assert set(table["tier"]) <= set(cells)
    assert "z" * 400 in cells  # the data-quality table's text
    assert '<td class="n">3</td>' in raw


def test_a_btyd_without_value_forecast_reads_as_a_dash_with_the_reason_once(few_repeaters, tmp_path):
    """Without Gamma-Gamma BTYD's value row is empty: the report said nothing of why, in either table."""
    path, config = few_repeaters
    cfg = Config.from_dict(config)
    result = backtest(load_data(path, cfg), cfg)
    note = result.protocol["btyd_value_note"]
    table = allocate(scores(), hours=200.0)
    own = parse(render_report(tmp_path / "r.html", allocation=table, backtest=result)).all_text
    assert own.count(note) == 1
    assert not re.search(r"\bnan\b", own, flags=re.IGNORECASE)
    champion = json.loads(json.dumps(result.to_dict(), default=str))
    kwargs = {"allocation": table, "backtest": result, "backtest_note": "not", "plan_backtest": champion}
    both = parse(render_report(tmp_path / "c.html", **kwargs)).all_text
    assert both.count(note) == 2  # once per backtest: the plan's model's and this run's


def test_a_part_of_the_plan_is_not_headed_by_the_whole_plans_totals(tmp_path):
    table = allocate(scores(n=120, owners=3), hours=150.0)
    part = table[table["owner"] == "rep 1"]  # pandas carries the whole plan's summary along
    assert part.attrs["allocation"]["n_accounts"] == len(table)
    page = parse(render_report(tmp_path / "r.html", allocation=part))
    facts = dict(re.findall(r'<div class="k">([^<]*)</div><div class="v">([^<]*)</div>', page.raw))
    assert facts["Accounts"] == f"{len(part):,}"
    assert facts["Team hours"] == hours_text(float(part["recommended_hours"].sum()), exact=True)
    assert facts["Expected gain"] == amount(part["expected_gain"].sum())
    # the whole plan's figures are not in its header
    assert f"of {hours_text(150.0, exact=True)}" not in facts["Team hours"]


def test_the_rmse_reads_in_any_unit_of_the_amounts():
    """RMSE is in the amounts' unit: in millions the referral RMSEs 0.37 and 0.52 read "0" and "1"."""
    from kamml.report.html import _metrics_table

    referral = {"kamml": {"rmse": 0.37}, "btyd": {"rmse": 0.52}}
    html = _metrics_table("referral", referral, ["rmse"])
    assert "<strong>0.370</strong>" in html
    assert ">0.520<" in html
    large = _metrics_table("referral", {"kamml": {"rmse": 3.7e7}, "btyd": {"rmse": 5.2e7}}, ["rmse"])
    assert "<strong>37,000,000</strong>" in large


@pytest.mark.parametrize("days", [30, 365])
def test_the_hours_are_said_to_be_for_the_plans_horizon(tmp_path, days):
    """The page said "hours ... for the period" beside an effort line "per 3-month period": which period
    was left to guess. With the plan's horizon known, the header and the top accounts name it."""
    table = allocate(scores(n=40), hours=50.0, horizon_days=days)
    html = render_report(tmp_path / "r.html", allocation=table).read_text(encoding="utf-8")
    assert f"Recommended sales hours per account over the {days}-day horizon" in html
    assert f"Hours are for the whole {days}-day horizon" in html
    assert "the period" not in html


def test_without_a_known_horizon_the_hours_are_for_the_period(tmp_path):
    """A table that does not carry its horizon (no column, no summary) keeps the general words."""
    table = allocate(scores(n=40), hours=50.0, horizon_days=90).drop(columns="horizon_days")
    table.attrs = {}
    html = render_report(tmp_path / "r.html", allocation=table).read_text(encoding="utf-8")
    assert "Recommended sales hours per account for the period" in html
    assert "Hours are for the whole period" in html


def test_every_rep_shows_the_value_of_its_last_hour_when_some_reps_have_a_capacity(tmp_path):
    """With a capacity for one rep, the others and the accounts without an owner had an empty cell under
    "Value of the rep's last hour", while a listed rep with hours to spare read the team's price: an hour
    more for any rep the capacity does not hold back is worth the team's price."""
    s = scores(n=120, owners=3)
    s.loc[s.index[::10], "owner"] = None
    cfg = AllocationConfig(floor_hours=0.1, capacity={"rep 0": 5.0, "rep 1": 1000.0})
    table = allocate(s, hours=60.0, config=cfg)
    plan = table.attrs["allocation"]
    team = plan["team_price"]
    assert plan["rep_price"]["rep 0"] > team > 0
    assert plan["rep_price"]["rep 1"] == team  # listed, with hours to spare
    rows = _rep_table(render_report(tmp_path / "r.html", allocation=table))
    assert unescape(rows[0][-1]) == "Value of the rep's last hour"
    shown = {row[0]: row[-1] for row in rows[1:]}
    assert shown == {
        "rep 0": amount(plan["rep_price"]["rep 0"]),
        "rep 1": amount(team),
        "rep 2": amount(team),
        "(no owner)": amount(team),
    }


def test_names_with_lone_surrogates_are_drawn_and_written(tmp_path):
    """A rep, tier or account name holding a lone surrogate (text decoded with ``surrogateescape``, or
    JSON's ``"\\ud800"``) failed the report with matplotlib's raw TypeError from its font code, and the
    page could not be written as UTF-8: such a character now reads U+FFFD, in the charts and the page."""
    s = scores(n=30)
    s["owner"] = s["owner"].astype(object)
    s.loc[s.index[:10], "owner"] = "Ann \udcff"
    table = allocate(s, hours=20.0)
    table["account_id"] = table["account_id"].astype(object)
    table.loc[0, "account_id"] = "acc \ud800"
    table["tier"] = table["tier"].astype(object).replace({"strategic": "top \udc80"})
    path = render_report(
        tmp_path / "r.html", allocation=table, title="plan \ud800", warnings=["lost \udcff"], top=5
    )
    page = parse(path)
    assert_self_contained(path, page)
    assert len(page.images) == 2  # the tier mix and the hours per rep
    for text in ("acc \ufffd", "Ann \ufffd", "top \ufffd", "plan \ufffd", "lost \ufffd"):
        assert text in page.all_text


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_missing_hours_or_gains_read_as_unknown_not_as_zero(tmp_path, bad):
    """A plan whose hours or gains hold NaN (a table edited by hand and read back) read 0 hours, "0 with
    hours" and 0 gain for a tier or rep whose figures were all missing, and shares read "nan%" beside
    "0%": a figure missing from a tier or rep reads "–", its share of the hours "–" and, the total being
    unknown, every tier's share "–"."""
    table = allocate(scores(n=60), hours=50.0, config=AllocationConfig(floor_hours=0.1))
    table.attrs = {}
    strategic = table.index[table["tier"] == "strategic"]
    rep = table.loc[strategic[0], "owner"]
    hours, gain = table.copy(), table.copy()
    hours.loc[strategic, "recommended_hours"] = bad
    gain.loc[strategic, "expected_gain"] = bad
    tiers = {row[0]: row for row in _tier_table(render_report(tmp_path / "h.html", allocation=hours))[1:]}
    assert tiers["strategic"][2:5] == ["–", "–", "–"]  # with hours, hours, share
    assert {row[4] for row in tiers.values()} == {"–"}
    assert tiers["key"][3] != "–"
    reps = {row[0]: row for row in _rep_table(tmp_path / "h.html")[1:]}
    assert reps[rep][2:4] == ["–", "–"]
    tiers = {row[0]: row for row in _tier_table(render_report(tmp_path / "g.html", allocation=gain))[1:]}
    assert tiers["strategic"][5] == "–"
    assert tiers["key"][5] != "–"
    assert {row[0]: row for row in _rep_table(tmp_path / "g.html")[1:]}[rep][4] == "–"


def test_the_rep_table_lists_the_reps_with_the_most_hours_and_sums_the_others(tmp_path):
    """The rep table had a row per owner: a plan whose owner column held one name per account (1M
    accounts) wrote a 124 MB page in 88 s. The `REPS_LISTED` reps with the most hours are listed, the
    others summed in one last row, so the columns still add up to the plan's."""
    n = REPS_LISTED + 7
    s = scores(n=n, owners=0)
    s["owner"] = [f"owner {i:05d}" for i in range(n)]
    table = allocate(s, hours=n * 0.05, config=AllocationConfig(floor_hours=0.0))
    path = render_report(tmp_path / "r.html", allocation=table, top=3)
    rows = _rep_table(path)[1:]
    assert len(rows) == REPS_LISTED + 1
    hours = table.groupby("owner")["recommended_hours"].sum().sort_values(ascending=False, kind="stable")
    assert [row[0] for row in rows[:-1]] == list(hours.index[:REPS_LISTED])
    other = rows[-1]
    assert other[0] == "7 other reps"
    assert other[1] == "7"
    rest = table[table["owner"].isin(hours.index[REPS_LISTED:])]
    assert other[2] == f"{int((rest['recommended_hours'] > 0).sum()):,}"
    assert float(other[3].replace(",", "")) == pytest.approx(rest["recommended_hours"].sum(), abs=0.01)
    assert other[4] == amount(rest["expected_gain"].sum())
    text = parse(path).all_text.split("Hours per rep")[1]
    assert f"The {REPS_LISTED:,} reps with the most hours are listed; the other 7 are summed" in text
    assert path.stat().st_size < 2_000_000


@pytest.mark.parametrize(
    "protocol",
    [
        "2024-01-01",
        None,
        {"cutoff": "2024-01-01", "training_snapshots": 3, "training_rows": "many", "test_accounts": None},
        {"cutoff": "2024-01-01", "btyd_value_note": ["x"], "test_accounts": float("nan")},
    ],
)
def test_a_champions_backtest_json_of_another_shape_is_read_as_far_as_it_goes(world, tmp_path, protocol):
    """The champion's backtest.json is read from its run (any kamml version wrote it, or a hand): a model
    without metrics (null), a protocol that is no mapping or whose counts are no numbers failed the
    whole run at its last step with a raw TypeError or ValueError. What it holds is shown; the rest is
    left out."""
    _, result, score_table = world
    table = allocate(score_table, hours=600.0)
    champion = {
        "protocol": protocol,
        "value": {"kamml": None, "btyd": {"gini": 0.3, "rmse": "x"}, "last_period": [1]},
        "churn": ["x"],
    }
    path = render_report(
        tmp_path / "r.html",
        allocation=table,
        backtest=result,
        backtest_note="not promoted",
        plan_backtest=champion,
    )
    first = (
        parse(path).all_text.split("The model behind the plan")[1].split("The version this run trained")[0]
    )
    assert "Backtest at" in first
    assert "BG/NBD × Gamma-Gamma" in first
    assert "0.300" in first


BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _outside_isolates(html_text):
    """`html_text` without its <bdi> elements: what a bidi control there would reorder."""
    return re.sub(r"<bdi>.*?</bdi>", "", html_text, flags=re.S)


def test_names_and_warnings_with_bidi_controls_are_isolated_from_the_sentence_around_them(tmp_path):
    """A rep name, warning or backtest cutoff holding an unclosed right-to-left override (U+202E) was
    escaped but not isolated: in a browser it turned the rest of its line around ("(2 times)" after a
    warning, the next reps of the at-capacity line, the rest of the protocol line). Each such text is
    now a <bdi>, and table cells isolate their content."""
    from kamml.report.html import _protocol

    s = scores(n=120, owners=3)
    s["owner"] = s["owner"].replace({"rep 0": "Ann \u202eX", "rep 1": "Bob \u202e"})
    cfg = AllocationConfig(floor_hours=0.1, capacity={"Ann \u202eX": 5.0, "Bob \u202e": 5.0})
    table = allocate(s, hours=60.0, config=cfg)
    said = ["lost \u202e feature", "lost \u202e feature", "plain"]
    path = render_report(tmp_path / "r.html", allocation=table, warnings=said, title="plan \u202e x")
    raw = parse(path).raw
    note = re.search(r'<p class="note">At capacity[^\n]*?</p>', raw)[0]
    assert "<bdi>Ann \u202eX</bdi>" in note
    assert "<bdi>Bob \u202e</bdi>" in note
    assert not BIDI.search(_outside_isolates(note))
    assert "<li><bdi>lost \u202e feature</bdi> (2 times)</li>" in raw
    assert "<h1><bdi>plan \u202e x</bdi></h1>" in raw
    style = re.search(r"<style>(.*?)</style>", raw, re.S)[1]
    rules = {s.strip(): body for s, body in re.findall(r"([^{}]+)\{([^}]*)\}", style)}
    assert "unicode-bidi: isolate" in rules["th, td"]
    line = _protocol({"cutoff": "2024-01-01 \u202e", "training_snapshots": ["a"], "test_accounts": 3})
    assert "<bdi>2024-01-01 \u202e</bdi>" in line
    assert not BIDI.search(_outside_isolates(line))
    assert line.endswith("3 test accounts.")


def test_an_infinite_metric_reads_inf_and_an_undefined_one_a_dash():
    """An infinite metric (a decile MAPE over a decile whose actual total is 0) read "–" like an undefined
    (NaN) one, where the backtest's own table prints inf: they now read "inf" / "-inf" as there, and
    neither is bold."""
    from kamml.report.html import _metrics_table

    value = {
        "kamml": {"gini": 0.7, "decile_mape": np.inf, "aggregate_error": -np.inf},
        "btyd": {"gini": np.nan, "decile_mape": 0.3, "aggregate_error": 0.1},
    }
    table = _metrics_table("value", value, ["gini", "decile_mape", "aggregate_error"])
    rows = [
        [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]
    ]
    assert rows == [["kamml", "0.700", "inf", "-inf"], ["BG/NBD × Gamma-Gamma", "–", "30.0%", "+10.0%"]]
    assert re.findall(r"<strong>(.*?)</strong>", table) == []  # one finite figure per column: none bold


def test_the_plan_models_infinite_metrics_read_back_from_its_json_read_inf(world, tmp_path):
    """JSON has no infinity: a champion's backtest.json writes an infinite metric null and gives its sign
    under ``non_finite``; the report read it "–", as an undefined one."""
    _, result, score_table = world
    champion = {
        "protocol": {"cutoff": "2024-01-01"},
        "value": {"kamml": {"gini": None, "decile_mape": None, "aggregate_error": None}},
        "non_finite": {"value": {"kamml": {"decile_mape": "inf", "aggregate_error": "-inf"}}},
    }
    path = render_report(
        tmp_path / "r.html",
        allocation=allocate(score_table, hours=600.0),
        backtest=result,
        backtest_note="not promoted",
        plan_backtest=champion,
    )
    first = path.read_text(encoding="utf-8").split("The model behind the plan")[1].split("The version")[0]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", first)]
    assert cells == ["kamml", "–", "inf", "-inf"]
