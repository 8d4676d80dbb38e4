"""The console's overview: the periods' figures, the chart, the tables, health and chain."""

from __future__ import annotations

import html as html_lib
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import METRO_NPV, MOBILE, PARIS, a_config, console_login

from callgate.api import make_app
from callgate.auditlog import ChainBreak
from callgate.console import overview
from callgate.console.chainstate import CHAIN, ChainState
from callgate.console.chart import ChartText, HourBar, draw_chart, hourly_bars
from callgate.console.overview import node_is_silent, periods
from callgate.gate import check_call
from callgate.model import CallRequest, Consent, ConsentScope, Purpose

TOKEN = "a-test-token-of-32-characters-xx"
SVG = "{http://www.w3.org/2000/svg}"
# A Wednesday afternoon, inside the calling windows.
NOW = datetime(2026, 11, 25, 15, 30, tzinfo=PARIS)
BETA_NPV = "+33948000002"
TWO_COMPANIES = [
    {"id": "acme", "name": "ACME", "sector": "telecom", "numbers": [METRO_NPV]},
    {"id": "beta", "name": "Beta", "sector": "telecom", "numbers": [BETA_NPV]},
]
EARLIER = NOW - timedelta(hours=1)
TEXT = ChartText("Per hour", "A description", "Allowed", "Rejected", "{when}: {allowed}/{rejected}")


@pytest.fixture
def at_now(monkeypatch):
    """The overview's "now" set to ``NOW`` (a test may set another)."""

    def set_now(instant: datetime) -> None:
        monkeypatch.setattr(overview, "clock", lambda: instant.astimezone(UTC))

    set_now(NOW)
    return set_now


@pytest.fixture
async def client(store, at_now):
    async with TestClient(
        TestServer(make_app(store, a_config(companies=TWO_COMPANIES), TOKEN))
    ) as c:
        await console_login(c)
        yield c


async def record(store, at, company="acme", campaign=None, callee=MOBILE):
    caller = BETA_NPV if company == "beta" else METRO_NPV
    request = CallRequest(caller, callee, company, Purpose.PROSPECTING, campaign=campaign)
    config = a_config(companies=TWO_COMPANIES)
    return await check_call(store, config, request, at, record=True)


def card(html: str, key: str) -> dict[str, int]:
    """The figures of one period card, as shown."""
    block = re.search(rf'id="period-{key}".*?</article>', html, re.S).group(0)
    figures = {}
    for name in ("allowed", "rejected", "total"):
        shown = re.search(rf'class="{name}-count[^"]*">([^<]*)<', block).group(1)
        figures[name] = int(re.sub(r"\D", "", shown))
    return figures


def figures(html: str) -> dict[str, list[int]]:
    """A table's body rows: the row header's text, then the numbers of its cells."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        name = re.sub(r"<[^>]+>", "", re.search(r"<th[^>]*>(.*?)</th>", row, re.S).group(1))
        cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
        rows[name.strip()] = [int(re.sub(r"<[^>]+>", "", cell)) for cell in cells]
    return rows


def table(html: str, table_id: str) -> str:
    return re.search(rf'<table id="{table_id}">.*?</table>', html, re.S).group(0)


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-11-25", 24), ("2026-03-29", 23), ("2026-10-25", 25)],
)
def test_a_paris_day_is_its_whole_utc_hours_on_clock_change_days_too(day, hours):
    now = datetime.fromisoformat(f"{day}T12:00").replace(tzinfo=PARIS)
    today, week, month = periods(now)
    assert today.until - today.since == timedelta(hours=hours)
    for span in (today, week, month):
        assert span.since.astimezone(PARIS).time().hour == 0
        assert span.until.astimezone(PARIS).time().hour == 0
        assert span.since.minute == span.since.second == 0
        assert span.last == now.date() and span.until.astimezone(PARIS).date() > now.date()
    assert (week.last - week.first).days == 6 and (month.last - month.first).days == 29


def test_hourly_bars_fill_every_hour_and_add_up_rows():
    since = datetime(2026, 11, 25, 10, tzinfo=UTC)
    rows = [
        (since, "allow", 2),
        (since, "reject", 1),
        (since.replace(tzinfo=None) + timedelta(hours=2), "reject", 4),  # naive: UTC
    ]
    bars = hourly_bars(rows, since, since + timedelta(hours=4))
    assert [(b.allowed, b.rejected) for b in bars] == [(2, 1), (0, 0), (0, 4), (0, 0)]
    assert [b.hour for b in bars] == [since + timedelta(hours=h) for h in range(4)]


def test_the_chart_has_a_group_per_hour_stacked_by_verdict_and_escapes_its_text():
    start = datetime(2026, 11, 24, 21, tzinfo=UTC)  # 22:00 Paris: midnight two bars later
    bars = [HourBar(start + timedelta(hours=h), h, 2 * h) for h in range(5)]
    hostile = ChartText("<script>x</script>", 'a "quote" & <b>', "A<", "R&", "{when} <i>")
    svg = draw_chart(bars, hostile, PARIS)
    root = ET.fromstring(svg)  # well-formed XML, whatever the text held
    assert root.get("id") == "chart" and "chart" in root.get("class").split()
    assert root.find(f"{SVG}title").text == "<script>x</script>"
    assert "<script>" not in svg and "<b>" not in svg and "<i>" not in svg
    groups = root.findall(f"{SVG}g")
    assert len(groups) == 5
    last = {rect.get("class"): rect for rect in groups[-1].findall(f"{SVG}rect")}
    allowed, rejected = last["allowed"], last["rejected"]
    # Stacked: the rejected part sits on the allowed one, twice as tall.
    assert float(rejected.get("y")) + float(rejected.get("height")) == pytest.approx(
        float(allowed.get("y"))
    )
    assert float(rejected.get("height")) == pytest.approx(2 * float(allowed.get("height")))
    assert groups[0].findall(f"{SVG}rect") == []  # an hour without decisions: no bar
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "25/11" in labels  # the Paris midnight is marked


def test_an_empty_chart_is_still_a_chart():
    root = ET.fromstring(draw_chart([], TEXT, PARIS))
    assert root.find(f"{SVG}desc").text == "A description"


@pytest.mark.parametrize(
    ("now", "last", "silent"),
    [
        (datetime(2026, 11, 25, 15, 30), datetime(2026, 11, 25, 14, 15), True),
        (datetime(2026, 11, 25, 15, 30), datetime(2026, 11, 25, 14, 45), False),
        (datetime(2026, 11, 25, 13, 30), datetime(2026, 11, 25, 11, 0), False),  # lunch
        (datetime(2026, 11, 25, 14, 30), datetime(2026, 11, 25, 12, 0), False),  # after it
        (datetime(2026, 11, 25, 21, 0), datetime(2026, 11, 25, 12, 0), False),  # evening
        (datetime(2026, 11, 28, 15, 30), datetime(2026, 11, 27, 19, 0), False),  # Saturday
    ],
)
def test_a_node_is_flagged_only_when_silent_through_an_hour_of_calling_time(now, last, silent):
    assert node_is_silent(last.replace(tzinfo=PARIS), now.replace(tzinfo=PARIS)) is silent


# ---------------------------------------------------------------- the page


async def test_the_periods_count_what_was_recorded_on_their_boundaries(client, store):
    midnight = NOW.replace(hour=0, minute=0)
    recorded = {
        "today": [
            await record(store, midnight),
            await record(store, NOW - timedelta(minutes=5)),
        ],
        "7d": [
            await record(store, midnight - timedelta(seconds=1)),  # 23:59:59 yesterday
            await record(store, midnight - timedelta(days=6)),
        ],
        "30d": [
            await record(store, midnight - timedelta(days=6, seconds=1)),
            await record(store, midnight - timedelta(days=29)),
        ],
    }
    await record(store, midnight - timedelta(days=29, seconds=1))  # before all three
    await store.add_consent(
        "acme", "+33612345678", Consent(ConsentScope.PROSPECTING, NOW - timedelta(days=90))
    )
    recorded["today"].append(await record(store, NOW - timedelta(minutes=1)))
    dry = await check_call(
        store,
        a_config(companies=TWO_COMPANIES),
        CallRequest(METRO_NPV, MOBILE, "acme"),
        NOW,
        record=False,
    )
    await store.record_decision(dry, kind="dry-run")  # not a call: not counted

    reply = await client.get("/console/")
    assert reply.status == 200
    html = await reply.text()
    spans = ["today", "7d", "30d"]
    for index, key in enumerate(spans):
        within = [d for k in spans[: index + 1] for d in recorded[k]]
        allowed = sum(d.allowed for d in within)
        assert card(html, key) == {
            "allowed": allowed,
            "rejected": len(within) - allowed,
            "total": len(within),
        }
    assert card(html, "today")["allowed"] == 1  # the consent made one call compliant


async def test_the_day_clocks_go_back_counts_its_25_hours(client, store, at_now):
    at_now(datetime(2026, 10, 25, 12, 0, tzinfo=PARIS))
    twice = [datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in (0, 1)]  # 02:30, twice
    assert {t.astimezone(PARIS).strftime("%H:%M") for t in twice} == {"02:30"}
    for instant in (*twice, datetime(2026, 10, 24, 21, 59, 59, tzinfo=UTC)):  # 23:59:59 before
        await record(store, instant)
    html = await (await client.get("/console/")).text()
    assert card(html, "today")["total"] == 2
    assert card(html, "7d")["total"] == 3


async def test_the_chart_has_one_bar_group_per_hour_of_the_last_seven_days(client, store):
    await record(store, NOW - timedelta(hours=3))
    html = await (await client.get("/console/")).text()
    svg = re.search(r'<svg id="chart".*?</svg>', html, re.S).group(0)
    root = ET.fromstring(svg)
    week = periods(NOW)[1]
    hours = (NOW.astimezone(UTC).replace(minute=0) + timedelta(hours=1) - week.since) // timedelta(
        hours=1
    )
    groups = root.findall(f"{SVG}g")
    assert len(groups) == hours
    filled = [g for g in groups if g.findall(f"{SVG}rect")]
    assert len(filled) == 1
    expected = (NOW - timedelta(hours=3)).astimezone(UTC).strftime("%Y-%m-%dT%H:00Z")
    assert filled[0].get("data-hour") == expected
    assert root.find(f"{SVG}title").text and root.find(f"{SVG}desc").text
    assert '<table id="chart-table">' in html  # the same figures, as text


async def test_top_reasons_companies_and_campaigns_link_to_the_filtered_list(client, store):
    await record(store, NOW - timedelta(hours=1), company="acme", campaign="winter")
    await record(store, NOW - timedelta(days=2), company="acme", campaign="winter")
    await record(store, NOW - timedelta(days=10), company="beta", campaign="spring & <co>")
    html = await (await client.get("/console/")).text()
    reasons = table(html, "top-reasons")
    month_start = f"{periods(NOW)[2].first:%Y-%m-%d}T00%3A00"
    today_start = f"{NOW:%Y-%m-%d}T00%3A00"
    tomorrow = f"{NOW + timedelta(days=1):%Y-%m-%d}T00%3A00"
    for start in (month_start, today_start):
        assert (
            f"/console/decisions?reason=CONSENT_MISSING&amp;kind=call&amp;from={start}"
            f"&amp;to={tomorrow}"
        ) in reasons
    assert figures(reasons)["Consentement absent CONSENT_MISSING"] == [1, 2, 3]

    companies = figures(table(html, "by-company"))
    assert companies == {"acme": [0, 1, 0, 2, 0, 2], "beta": [0, 0, 0, 0, 0, 1]}
    campaigns = table(html, "by-campaign")
    assert "spring &amp; &lt;co&gt;" in campaigns and "<co>" not in campaigns
    assert 'scope="col"' in campaigns and 'scope="colgroup"' in campaigns


async def listed(client, url: str) -> int:
    """How many decisions the list at ``url`` holds, through every page."""
    count = 0
    while url:
        page = await client.get(html_lib.unescape(url))
        assert page.status == 200
        text = await page.text()
        count += len(re.findall(r'<tr class="decision"', text))
        older = re.search(r'<a id="older" href="([^"]+)"', text)
        url = older.group(1) if older else None
    return count


def linked_figures(html: str) -> list[tuple[int, str]]:
    """Every figure of a table that links to the list: (figure, link)."""
    cells = re.findall(r'<td class="num"><a href="([^"]+)">([^<]+)</a></td>', html)
    return [(int(re.sub(r"\D", "", figure)), url) for url, figure in cells]


async def test_each_figure_links_to_a_list_of_as_many_decisions(client, store):
    for hours in (1, 2, 30, 24 * 5, 24 * 20):
        await record(store, NOW - timedelta(hours=hours), campaign="winter")
    await record(store, NOW - timedelta(hours=3), company="beta")
    for _ in range(2):  # dry runs are no calls: not counted, so not listed
        dry = await check_call(
            store, a_config(companies=TWO_COMPANIES), CallRequest(METRO_NPV, MOBILE, "acme"),
            NOW - timedelta(hours=4), record=False,
        )  # fmt: skip
        await store.record_decision(dry, kind="dry-run")
    await record(store, NOW + timedelta(days=2), campaign="winter")  # a clock ahead
    html = await (await client.get("/console/")).text()

    for key in ("today", "7d", "30d"):
        block = re.search(rf'id="period-{key}".*?</article>', html, re.S).group(0)
        url = re.search(r'<a href="([^"]+)"', block).group(1)
        assert await listed(client, url) == card(html, key)["total"], key
    reasons = linked_figures(table(html, "top-reasons"))
    assert len(reasons) >= 3
    for figure, url in reasons:
        assert await listed(client, url) == figure, url
    for table_id, name in (("by-company", "acme"), ("by-campaign", "winter")):
        rows = table(html, table_id)
        url = re.search(rf'<a href="([^"]+)">{name}</a>', rows).group(1)
        month = figures(rows)[name][-2:]  # allowed, rejected over 30 days
        assert await listed(client, url) == sum(month) > 0, table_id
        cells = linked_figures(rows)  # each non-zero figure of each period
        assert len(cells) >= 2, table_id
        for figure, cell_url in cells:
            assert await listed(client, cell_url) == figure, cell_url


async def test_health_shows_the_store_and_each_node_with_a_silence_warning(client, store):
    await record(store, NOW - timedelta(minutes=80))
    html = await (await client.get("/console/")).text()
    assert re.search(r'id="store-state" class="ok"', html)
    nodes = table(html, "nodes")
    assert store.node in nodes
    assert (NOW - timedelta(minutes=80)).strftime("%Y-%m-%d %H:%M") in nodes
    assert 'class="warn"' in nodes  # 80 minutes of silence on a Wednesday afternoon


async def test_a_recent_node_is_not_flagged(client, store):
    await record(store, NOW - timedelta(minutes=20))
    nodes = table(await (await client.get("/console/")).text(), "nodes")
    assert 'class="warn"' not in nodes and 'class="ok"' in nodes


@pytest.mark.parametrize(
    ("state", "css", "words"),
    [
        (ChainState(NOW, 12, 12, None, False, None, EARLIER), "ok", "12"),
        (ChainState(NOW, 12, 12, None, False, None, EARLIER), "ok",
         "vérification complète : 2026-11-25 14:30:00"),
        (ChainState(NOW, 3, 3, ChainBreak(4, 4, "abc", "hash mismatch"), False, None), "bad",
         "hash mismatch"),
        (ChainState(None, 0, 0, None, True, (5, 10)), "pending", "5 / 10"),
        (ChainState(None, 0, 0, None, True, (5, 10)), "pending", "Pas encore entièrement"),
        # New entries checked, the whole chain not yet: no "intact" before a full pass.
        (ChainState(NOW, 12, 12, None, False, None), "pending", "Pas encore entièrement"),
        (ChainState(NOW, 12, 12, None, True, (5, 12), EARLIER), "pending",
         "Intègre jusqu&#39;à seq 12"),
    ],
)  # fmt: skip
async def test_the_chain_state_is_shown(client, monkeypatch, state, css, words):
    monkeypatch.setattr(client.app[CHAIN], "state", lambda: state)
    html = await (await client.get("/console/")).text()
    chain = re.search(r'<p id="chain" class="(\w+)"[^>]*>(.*?)</p>', html, re.S)
    assert chain.group(1) == css
    assert words in chain.group(2)


async def test_the_overview_is_in_english_with_the_switch(client, store):
    html = await (await client.get("/console/?lang=en")).text()
    assert "Last 7 days" in html and "Gates&#39; health" in html
    assert '<html lang="en">' in html


async def test_the_overview_has_the_headers_and_no_inline_script_or_style(client, store):
    await record(store, NOW - timedelta(hours=1))
    reply = await client.get("/console/")
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    html = await reply.text()
    assert_no_inline_code(html)


def assert_no_inline_code(html: str) -> None:
    """No inline script, style attribute or event handler: the CSP would block them."""
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S | re.I):
        assert script.strip() == ""
    assert all(" src=" in tag for tag in re.findall(r"<script\b[^>]*>", html, re.I))
    assert not re.search(r"\sstyle\s*=", html, re.I)
    assert not re.search(r"<style\b", html, re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)


async def test_the_overview_needs_a_session(store):
    async with TestClient(TestServer(make_app(store, a_config(), TOKEN))) as client:
        reply = await client.get("/console/", allow_redirects=False)
        assert reply.status == 303
        assert reply.headers["Location"].startswith("/console/login")


async def test_a_store_that_fails_leaves_a_page_that_says_so(client, store, monkeypatch):
    async def broken(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(store, "decision_counts", broken)
    reply = await client.get("/console/")
    assert reply.status == 200
    html = await reply.text()
    assert re.search(r'<p class="error" role="alert">', html)
    assert 'id="store-state" class="ok"' in html  # it answered the probe, not the figures
    today = re.search(r'id="period-today".*?</article>', html, re.S).group(0)
    assert re.search(r'class="total-count[^"]*">-<', today)  # no figure rather than a wrong one

    monkeypatch.setattr(store, "log_anchor", broken)
    html = await (await client.get("/console/")).text()
    assert 'id="store-state" class="bad"' in html
    assert "connection refused" not in html
