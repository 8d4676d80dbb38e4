"""The console's audit page: the chain's state, a verification on demand, the export that
`callgate log verify` accepts, and the purge, for admins only; on both stores."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from datetime import UTC, datetime
from html import unescape as html_unescape
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import MONDAY, OLD_MONDAY, POOL, console_login, days
from test_chainstate import record_calls, tamper

from callgate.api import make_app
from callgate.cli_log import verify_export
from callgate.config import parse_config
from callgate.console import chainstate
from callgate.console.chainstate import CHAIN, ChainState
from callgate.store.base import LogQuery
from callgate.tokens import tokens_of

READ, ADMIN = "read-token-0123456789abcdef", "admin-token-0123456789abcdef"


def config(retention_days: int | None = 30):
    companies = [{"id": "acme", "name": "ACME", "sector": "telecom", "numbers": list(POOL)}]
    log = {"retention_days": retention_days} if retention_days else {}
    return parse_config({"companies": companies, "log": log})


def tokens():
    return tokens_of([(READ, frozenset({"read"})),
                      (ADMIN, frozenset({"admin", "read", "write"}))])  # fmt: skip


async def open_client(store, token: str = ADMIN, retention_days: int | None = 30):
    client = TestClient(TestServer(make_app(store, config(retention_days), tokens())))
    await client.start_server()
    csrf = await console_login(client, token)
    return client, csrf


@pytest.fixture
async def admin(store, monkeypatch):
    monkeypatch.setattr(chainstate, "INTERVAL", 0.05)
    await record_calls(store, 5)
    client, csrf = await open_client(store)
    yield client, csrf
    await client.close()


async def settled(client: TestClient) -> ChainState:
    watch = client.app[CHAIN]
    async with asyncio.timeout(10):
        while watch.state().running:
            await asyncio.sleep(0.01)
    return watch.state()


def chain_box(html: str) -> tuple[str, str]:
    found = re.search(r'<div id="chain" class="(\w+)"[^>]*>(.*?)</div>', html, re.S)
    assert found, "no #chain"
    return found.group(1), found.group(2)


async def test_an_intact_chain_says_ok(admin):
    client, _ = admin
    state = await settled(client)
    html = await (await client.get("/console/audit")).text()
    kind, text = chain_box(html)
    assert kind == "ok" and str(state.last_seq) in text and state.last_seq == 5
    assert 'http-equiv="refresh"' not in html  # nothing to follow


async def test_a_tampered_row_is_shown_broken_at_its_seq_after_verify(admin, store_url):
    client, csrf = admin
    await settled(client)
    await tamper(store_url, "UPDATE decisions SET campaign = 'forged' WHERE seq = 4")
    refused = await client.post("/console/audit/verify", data={}, allow_redirects=False)
    assert refused.status == 403  # no CSRF token
    posted = await client.post("/console/audit/verify", data={"csrf": csrf},
                               allow_redirects=False)  # fmt: skip
    assert posted.status == 303 and posted.headers["Location"] == "/console/audit"
    await settled(client)
    kind, text = chain_box(await (await client.get("/console/audit")).text())
    assert kind == "bad"
    assert '<strong class="break-seq">4</strong>' in text
    assert "modifiée : son contenu ne correspond plus à son empreinte" in text
    english = await (await client.get("/console/audit?lang=en")).text()
    assert "edited: its content does not match its hash" in chain_box(english)[1]


async def test_the_page_follows_a_verification_under_way(admin, monkeypatch):
    client, _ = admin
    running = ChainState(None, 0, 0, None, True, (2_500, 10_000))
    monkeypatch.setattr(client.app[CHAIN], "state", lambda: running)
    html = await (await client.get("/console/audit")).text()
    assert '<meta http-equiv="refresh" content="2">' in html
    assert re.search(r'<progress id="verify-progress" max="10000" value="2500">', html)
    assert chain_box(html)[0] == "pending"


async def test_new_entries_are_verified_by_the_increments(admin, store):
    client, _ = admin
    assert (await settled(client)).last_seq == 5
    await record_calls(store, 2, start=MONDAY + days(3))
    async with asyncio.timeout(10):
        while client.app[CHAIN].state().last_seq < 7:
            await asyncio.sleep(0.02)
    assert "seq 7 " in chain_box(await (await client.get("/console/audit")).text())[1]


async def download(client: TestClient, tmp_path, **query) -> tuple[list[dict], int]:
    reply = await client.get("/console/audit/export", params=query)
    assert reply.status == 200
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    path = tmp_path / "export.jsonl"
    path.write_bytes(await reply.read())
    verdict = verify_export(argparse.Namespace(target=str(path)))
    return [json.loads(line) for line in path.read_text().splitlines()], verdict


async def test_an_export_verifies_as_log_verify_checks_it(admin, tmp_path, capsys):
    client, _ = admin
    lines, verdict = await download(client, tmp_path)
    assert verdict == 0 and "intact" in capsys.readouterr().out
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert all(line["callee"] == "+33612345678" for line in lines)


async def test_a_pseudonymised_period_verifies_from_its_anchor(admin, tmp_path, capsys):
    client, _ = admin
    # The calls are an hour apart from 11:00 Paris: this period holds the 2nd to the 4th.
    lines, verdict = await download(
        client, tmp_path, **{"from": "2026-11-23T12:00", "to": "2026-11-23T15:00",
                             "pseudonymise": "1"},
    )  # fmt: skip
    assert verdict == 0 and "3 entries" in capsys.readouterr().out
    assert lines[0] == {"anchor": {"seq": 1, "hash": lines[1]["prev_hash"]}}
    assert [line["seq"] for line in lines[1:]] == [2, 3, 4]
    assert not any("callee" in line or "callee_salt" in line for line in lines[1:])


async def test_a_bad_export_date_is_named(admin):
    client, _ = admin
    reply = await client.get("/console/audit/export", params={"from": "yesterday"})
    assert reply.status == 400
    assert "from" in await reply.text() and 'role="alert"' in await reply.text()


async def test_the_retention_and_the_purge(store):
    await record_calls(store, 3, start=OLD_MONDAY)
    await record_calls(store, 2, start=datetime.now(UTC) - days(1))  # within the retention
    client, csrf = await open_client(store)
    try:
        html = await (await client.get("/console/audit")).text()
        assert re.search(r'<dd id="retention">30 jours', html)
        assert re.search(r'<dd id="last-purge">jamais', html)
        assert 'id="purge-now"' in html
        assert (await client.post("/console/audit/purge", data={})).status == 403  # no CSRF
        posted = await client.post("/console/audit/purge", data={"csrf": csrf, "confirm": "yes"},
                                   allow_redirects=False)  # fmt: skip
        assert posted.status == 303
        assert posted.headers["Location"] == "/console/audit?purged=3&kept=0"
        assert [e["seq"] for e in await store.log_entries(LogQuery())] == [4, 5]
        html = await (await client.get(posted.headers["Location"])).text()
        assert 'id="purge-result"' in html
        assert re.search(r'<dd id="last-purge">[^<]*seq 3</dd>', html)
        await client.app[CHAIN].verify_now()
        assert chain_box(html)[0] != "bad"
        assert (await settled(client)).broken is None  # the rest still verifies
    finally:
        await client.close()


async def test_a_read_session_cannot_purge(store):
    client, csrf = await open_client(store, READ)
    try:
        html = await (await client.get("/console/audit")).text()
        assert 'id="purge"' not in html
        reply = await client.post("/console/audit/purge", data={"csrf": csrf, "confirm": "yes"})
        assert reply.status == 403
    finally:
        await client.close()


async def test_a_purge_without_retention_says_so(store):
    await record_calls(store, 2)
    client, csrf = await open_client(store, retention_days=None)
    try:
        reply = await client.post("/console/audit/purge", data={"csrf": csrf, "confirm": "yes"})
        assert reply.status == 409
        assert "retention_days" in await reply.text()
        assert len(await store.log_entries(LogQuery())) == 2
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-11-23T15:00", "2026-11-23T12:00"), ("2026-11-23T12:00", "2026-11-23T12:00")],
)
async def test_an_export_ending_before_it_starts_is_a_400_naming_to(admin, start, end):
    client, _ = admin
    reply = await client.get("/console/audit/export", params={"from": start, "to": end})
    assert reply.status == 400 and reply.content_type == "text/html"
    error = re.search(r'<p class="error" role="alert" id="export-error">(.*?)</p>',
                      await reply.text()).group(1)  # fmt: skip
    assert "« to »" in error and "postérieur" in error
    reply = await client.get("/console/audit/export", params={"from": start, "to": end,
                                                              "lang": "en"})  # fmt: skip
    assert "must be later than from" in await reply.text()


async def test_a_bad_export_date_is_said_in_the_pages_language(admin):
    client, _ = admin
    french = await (await client.get("/console/audit/export", params={"to": "hier"})).text()
    assert "« hier » n&#39;est pas une date" in french and "ISO 8601" not in french
    english = await client.get("/console/audit/export", params={"to": "hier", "lang": "en"})
    assert "“hier” is not a date" in await english.text()


async def test_the_purge_needs_its_confirmation(store):
    await record_calls(store, 3, start=OLD_MONDAY)
    client, csrf = await open_client(store)
    try:
        html = await (await client.get("/console/audit")).text()
        checkbox = re.search(r'<input id="purge-confirm" name="confirm" type="checkbox"'
                             r' value="yes" required>', html)  # fmt: skip
        assert checkbox, html
        label = re.search(r'<label for="purge-confirm">(.*?)</label>', html, re.S).group(1)
        cutoff = datetime.now(UTC) - days(30)
        shown = re.search(r'<time id="purge-cutoff" datetime="([^"]+)">([^<]+)</time>', label)
        assert abs(datetime.fromisoformat(shown.group(1)) - cutoff).total_seconds() < 60
        assert shown.group(2).startswith(cutoff.astimezone(paris_zone()).strftime("%Y-%m-%d"))
        assert "seront supprimées" in label
        for form in ({"csrf": csrf}, {"csrf": csrf, "confirm": "on"}):
            reply = await client.post("/console/audit/purge", data=form, allow_redirects=False)
            assert reply.status == 400
            assert 'id="purge-error"' in await reply.text()
        assert len(await store.log_entries(LogQuery())) == 3  # nothing purged
        # The cutoff the form showed bounds the purge: an earlier one purges less.
        posted = await client.post(
            "/console/audit/purge", allow_redirects=False,
            data={"csrf": csrf, "confirm": "yes", "before": "2000-01-01T00:00:00+00:00"},
        )  # fmt: skip
        assert posted.headers["Location"] == "/console/audit?purged=0&kept=0"
        assert len(await store.log_entries(LogQuery())) == 3
    finally:
        await client.close()


async def test_a_purge_with_nothing_to_purge_says_so(store):
    await record_calls(store, 2, start=datetime.now(UTC) - days(1))
    client, csrf = await open_client(store)
    try:
        posted = await client.post("/console/audit/purge", data={"csrf": csrf, "confirm": "yes"},
                                   allow_redirects=False)  # fmt: skip
        assert posted.headers["Location"] == "/console/audit?purged=0&kept=0"
        html = await (await client.get(posted.headers["Location"])).text()
        result = re.search(r'id="purge-result">([^<]*)</p>', html).group(1)
        assert result.startswith("Rien à purger")
        assert re.search(r'<dd id="last-purge">jamais \(rien à purger\)</dd>', html)
        assert len(await store.log_entries(LogQuery())) == 2
    finally:
        await client.close()


async def test_a_purge_says_which_older_decisions_it_kept(store):
    """A decision recorded with a past date after a newer one stays (a purge cuts the
    chain's start only): the page says so rather than "nothing to purge"."""
    await record_calls(store, 1, start=datetime.now(UTC) - days(1))
    await record_calls(store, 2, start=datetime.now(UTC) - days(90))
    client, csrf = await open_client(store)
    try:
        posted = await client.post("/console/audit/purge", data={"csrf": csrf, "confirm": "yes"},
                                   allow_redirects=False)  # fmt: skip
        assert posted.headers["Location"] == "/console/audit?purged=0&kept=2"
        html = await (await client.get(posted.headers["Location"])).text()
        assert 'id="purge-result"' not in html and "rien à purger" not in html
        kept = re.search(r'id="purge-kept">([^<]*)</p>', html).group(1)
        assert html_unescape(kept).startswith("2 décisions datées d'avant la date limite")
        assert len(await store.log_entries(LogQuery())) == 3
    finally:
        await client.close()


def paris_zone() -> ZoneInfo:
    return ZoneInfo("Europe/Paris")
