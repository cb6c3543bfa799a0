"""The anomaly report: the shipped district towns, the page built from hand-built frames, the same page rendered by
headless Chromium with no network, and the report read from a hand-built database and published."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from ads_assets.defs.report.assets import report_link
from ads_assets.lib.db import connect
from ads_assets.lib.detection.selection import LEADERBOARD_TABLE, ensure_selection_tables
from ads_assets.lib.quality.store import CheckRecord, ensure_quality_schema, write_check_results
from ads_assets.lib.report.data import (
    ALERT_COLUMNS,
    LEADERBOARD_COLUMNS,
    QUALITY_COLUMNS,
    ReportData,
)
from ads_assets.lib.report.districts import CZECH_BOUNDS, district_towns
from ads_assets.lib.report.page import CHARTS, build_page
from ads_assets.lib.report.publish import REPORT_PAGE, PublishedReport, publish_report
from ads_assets.lib.storage import OutputStore
from ads_assets.lib.tables import ensure_anomaly_schema

HOSTILE = '</script><script>alert("pwned")</script><img src=https://evil.example/x.png onerror=alert(1)>'
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
LINK_ATTRIBUTES = frozenset({"src", "href", "xlink:href", "action", "data", "poster", "srcset"})
CHROMIUM_NAMES = ("chromium", "chromium-browser")
BACKGROUND_INITIATOR = "not an origin"
"""The initiator Chromium's net log gives the browser's own requests (updates, accounts), never a page's."""


def hand_built_data() -> ReportData:
    """Three days, six scored points in three colour groups, four districts (one hostile, one idle), checks."""
    return ReportData(
        run_id="run-4f2a",
        generated_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        daily=pd.DataFrame(
            {
                "trans_date": [date(1996, 1, 1), date(1996, 1, 2), date(1996, 1, 3)],
                "transactions": [120, 80, 95],
                "flagged": [2, 0, 5],
            }
        ),
        points=pd.DataFrame(
            {
                "trans_id": [1, 2, 3, 4, 5, 6],
                "amount": [100.0, 2500.0, 90000.0, 12.5, 40.0, 700.0],
                "score": [0.99, 0.97, 0.95, 0.1, 0.2, 0.3],
                "flagged": [True, True, True, False, False, False],
                "detector": ["rules", "iforest", "rules", None, None, None],
            }
        ),
        districts=pd.DataFrame(
            {
                "district_id": [1, 54, 74, 23],
                "name": ["Hl.m. Praha", HOSTILE, "Ostrava - mesto", "Cheb"],
                "transactions": [200, 60, 35, 0],
                "flagged": [4, 3, 0, 0],
            }
        ),
        alerts=pd.DataFrame(
            [("1996-01", 1, 10, date(1996, 1, 1), 100.0, HOSTILE, 0.99, "rules", "new", HOSTILE)],
            columns=list(ALERT_COLUMNS),
        ),
        leaderboard=pd.DataFrame(
            [("1996-07", "tails", 1, 0.8, 0.9, True, True), ("1996-07", HOSTILE, 2, 0.7, 0.8, True, False)],
            columns=list(LEADERBOARD_COLUMNS),
        ),
        quality=pd.DataFrame([(HOSTILE, 10, 9, 0, 1, "volume_daily")], columns=list(QUALITY_COLUMNS)),
    )


class PageParser(HTMLParser):
    """The tags of a page, every link attribute, each script's text by id, and per chart `<div>` what plotly drew."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []
        self.scripts: dict[str, str] = {}
        self.charts: dict[str, dict[str, int]] = {}
        self._script: str | None = None
        self._chart: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        self.links += [(tag, name, value) for name, value in attrs if name in LINK_ATTRIBUTES and value]
        if tag == "script":
            self._script = attributes.get("id") or f"script-{len(self.scripts)}"
            self.scripts[self._script] = ""
        if self._chart is None and tag == "div" and attributes.get("id") in CHARTS:
            self._chart, self._depth = attributes["id"], 0
            self.charts[self._chart] = {"main-svg": 0, "traces": 0, "points": 0}
        if self._chart is not None:
            classes = (attributes.get("class") or "").split()
            drawn = self.charts[self._chart]
            drawn["main-svg"] += "main-svg" in classes
            drawn["traces"] += tag == "g" and "trace" in classes
            drawn["points"] += "point" in classes
            self._depth += tag not in VOID_ELEMENTS

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None
        if self._chart is not None and tag not in VOID_ELEMENTS:
            self._depth -= 1
            if self._depth == 0:
                self._chart = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts[self._script] += data


def parsed(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def figures_of(parser: PageParser) -> dict[str, dict[str, Any]]:
    return {chart: json.loads(parser.scripts[f"figure-{chart}"]) for chart in CHARTS}


@pytest.fixture(scope="module")
def page() -> str:
    return build_page(hand_built_data())


def test_every_district_of_the_real_relation_has_its_town_inside_the_czech_republic(real_berka: Path) -> None:
    real = pd.read_csv(real_berka / "pkdd99" / "district.asc", sep=";", usecols=["A1", "A2"])
    towns = district_towns().set_index("district_id")
    assert sorted(towns.index) == sorted(real["A1"]) == list(range(1, 78))
    assert dict(zip(real["A1"], real["A2"], strict=True)) == towns["name"].to_dict()
    (south, north), (west, east) = CZECH_BOUNDS
    assert towns["latitude"].between(south, north).all() and towns["longitude"].between(west, east).all()
    prague, brno, ostrava = (towns.loc[district, ["latitude", "longitude"]].tolist() for district in (1, 54, 74))
    assert prague == pytest.approx([50.08, 14.43], abs=0.02)
    assert brno == pytest.approx([49.19, 16.61], abs=0.02)
    assert ostrava == pytest.approx([49.83, 18.28], abs=0.02)


def test_the_charts_hold_the_data_they_were_given(page: str) -> None:
    data = hand_built_data()
    parser = parsed(page)
    figures = figures_of(parser)

    bars, flagged = figures["daily"]["data"]
    assert bars["x"] == flagged["x"] == ["1996-01-01", "1996-01-02", "1996-01-03"]
    assert bars["y"] == [120, 80, 95] and flagged["y"] == [2, 0, 5]

    groups = {trace["name"]: (trace["x"], trace["y"]) for trace in figures["scores"]["data"]}
    assert groups == {
        "not flagged (sample)": ([12.5, 40.0, 700.0], [0.1, 0.2, 0.3]),
        "flagged: iforest": ([2500.0], [0.97]),
        "flagged: rules": ([100.0, 90000.0], [0.99, 0.95]),
    }
    assert figures["scores"]["layout"]["xaxis"]["type"] == "log"

    active, idle = figures["districts"]["data"]
    towns = district_towns().set_index("district_id")
    assert active["x"] == towns.loc[[1, 54, 74], "longitude"].tolist()
    assert active["y"] == towns.loc[[1, 54, 74], "latitude"].tolist()
    assert active["marker"]["size"] == [200, 60, 35]
    assert active["marker"]["color"] == [2.0, 5.0, 0.0]
    assert idle["x"] == [towns.loc[23, "longitude"]] and idle["text"] == ["Cheb<br>no transactions"]
    assert active["text"][1].startswith(html.escape(HOSTILE) + "<br>60 transactions, 3 flagged")
    ratio = figures["districts"]["layout"]["yaxis"]["scaleratio"]
    assert figures["districts"]["layout"]["yaxis"]["scaleanchor"] == "x" and ratio == pytest.approx(1.55, abs=0.01)

    assert data.run_id in page and "295 transactions scored from 1996-01-01 to 1996-01-03, 7 flagged" in page


def test_hostile_text_stays_text_and_nothing_is_loaded(page: str) -> None:
    parser = parsed(page)
    assert HOSTILE not in page
    assert page.count(html.escape(HOSTILE)) == 4, "the alert's kind and reason, a leaderboard candidate, an asset"
    assert "img" not in parser.tags and parser.links == []
    assert sorted(parser.scripts) == sorted(["script-0", *(f"figure-{chart}" for chart in CHARTS), "script-4"])
    assert "default-src 'none'" in page


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.skip("chromium not installed: Debian's chromium package renders the report; .ci/run installs it")


def page_requests(net_log: Path) -> list[str]:
    """The URLs a page asked the network for, from Chromium's net log (its own background requests left out)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    started = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted(
        {
            params["url"]
            for event in log["events"]
            if event["type"] == started
            and "url" in (params := event.get("params", {}))
            and params.get("initiator") != BACKGROUND_INITIATOR
            and not params["url"].startswith(("file:", "data:"))
        }
    )


def test_headless_chromium_draws_every_chart_without_the_network(page: str, tmp_path: Path) -> None:
    browser = chromium()
    path = tmp_path / "index.html"
    path.write_text(page, encoding="utf-8")
    net_log = tmp_path / "net-log.json"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--log-net-log={net_log}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        path.as_uri(),
    ]
    rendered = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    dom = parsed(rendered)
    data = hand_built_data()
    groups = data.points["detector"].fillna("unflagged").nunique()
    assert dom.charts == {
        "daily": {"main-svg": 3, "traces": 2, "points": 2 * len(data.daily)},
        "scores": {"main-svg": 3, "traces": groups, "points": len(data.points)},
        "districts": {"main-svg": 3, "traces": 2, "points": len(data.districts)},
    }
    assert dom.links == [] and "img" not in dom.tags
    assert page_requests(net_log) == []


def test_the_report_reads_a_run_from_postgres_and_is_published(fresh_database: Any, tmp_path: Path) -> None:
    reasons = {
        1: {"sentence": HOSTILE, "detectors": {"rules": {"contribution": 0.7}, "tails": {"contribution": 0.2}}},
        2: {
            "sentence": "Large transfer.",
            "detectors": {"rules": {"contribution": 0.1}, "tails": {"contribution": 0.5}},
        },
        3: {"sentence": "No parts.", "detectors": {"ml": {"score": 0.9}}},
    }
    scores = [
        (trans_id, 10 + trans_id % 2, date(1996, 1, 1 + trans_id % 3), "1996-01", score, trans_id in reasons)
        for trans_id, score in zip(range(1, 13), [0.99, 0.98, 0.97, *[0.01 * n for n in range(1, 10)]], strict=True)
    ]
    with connect(fresh_database) as connection:
        with connection.transaction(), connection.cursor() as cursor:
            ensure_anomaly_schema(cursor)
            cursor.executemany(
                "INSERT INTO anomaly.transaction_scores (trans_id, account_id, trans_date, month, score, is_anomaly, "
                "detector_scores, rule_hits, reasons, model_version, scored_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, '{}', '{}', %s, 'v1', now())",
                [(*row, json.dumps(reasons[row[0]]) if row[0] in reasons else None) for row in scores],
            )
            cursor.execute(
                "CREATE SCHEMA raw; CREATE SCHEMA marts;"
                "CREATE TABLE raw.fin_district (district_id int, a2 text);"
                "CREATE TABLE raw.fin_account (account_id bigint, district_id int);"
                "CREATE TABLE marts.fct_transaction_features "
                "(trans_id bigint, amount numeric, signed_amount numeric, transaction_kind text)"
            )
            cursor.executemany(
                "INSERT INTO raw.fin_district VALUES (%s, %s)", [(1, "Hl.m. Praha"), (54, HOSTILE), (74, "Ostrava")]
            )
            cursor.executemany("INSERT INTO raw.fin_account VALUES (%s, %s)", [(10, 1), (11, 54)])
            cursor.executemany(
                "INSERT INTO marts.fct_transaction_features VALUES (%s, %s, %s, 'cash')",
                [(trans_id, 100.0 * trans_id, -100.0 * trans_id) for trans_id in range(1, 13)],
            )
        ensure_quality_schema(connection)
        write_check_results(
            connection, [CheckRecord("run-1", "raw/fin_trans", "1996-01-01", "keys", "blocking", False, None)]
        )
        write_check_results(
            connection,
            [
                CheckRecord("run-2", "raw/fin_trans", "1996-01-01", "keys", "blocking", True, None),
                CheckRecord("run-2", "raw/fin_trans", "1996-01-01", "volume_daily", "warn", False, None),
                CheckRecord("run-2", "raw/fin_district", None, "schema", "blocking", True, None),
            ],
        )
        ensure_selection_tables(connection)
        with connection.transaction():
            connection.execute(
                f"INSERT INTO {LEADERBOARD_TABLE} VALUES ('1996-07', '1996-07-01', '1996-08-01', 'v1', 'tails', 1, "  # noqa: S608 - a constant table name
                "0.8, 0.9, '{}', true, true, now())"
            )

    report = publish_report(fresh_database, "run-2", OutputStore(tmp_path))

    assert (report.transactions, report.flagged) == (12, 3)
    assert report.index == tmp_path / REPORT_PAGE and report.url == report.index.as_uri()
    page = report.index.read_text(encoding="utf-8")
    assert report.size == len(page.encode("utf-8")) and "run-2" in page and HOSTILE not in page
    figures = figures_of(parsed(page))
    assert [sum(trace["y"]) for trace in figures["daily"]["data"]] == [12, 3]
    groups = {trace["name"]: trace["x"] for trace in figures["scores"]["data"]}
    assert groups == {
        "not flagged (sample)": [100.0 * trans_id for trans_id in range(4, 13)],
        "flagged: rules": [100.0],
        "flagged: tails": [200.0],
        "flagged: unattributed": [300.0],
    }
    active, idle = figures["districts"]["data"]
    assert active["marker"]["size"] == [6, 6] and active["marker"]["color"] == [16.667, 33.333]
    assert idle["text"] == ["Ostrava<br>no transactions"]
    assert html.escape(HOSTILE) in page and "Large transfer." in page
    assert (
        "<td>raw/fin_trans</td><td class=number>2</td><td class=number>1</td><td class=number>0</td><td class=number>1</td><td>volume_daily</td>"
        in page
    )
    assert "2 of 3 passed" in page and "Champion of each retrain: 1996-07 tails." in page


def test_the_asset_links_a_local_page_by_path_and_an_s3_one_by_url() -> None:
    local = PublishedReport("file:///out/report/index.html", Path("/out/report/index.html"), 10, 1, 100)
    remote = PublishedReport("s3://bucket/runs/report/index.html", None, 10, 1, 100)
    assert report_link(local) == dg.MetadataValue.path("/out/report/index.html")
    assert report_link(remote) == dg.MetadataValue.url("s3://bucket/runs/report/index.html")
