"""The console's decision list (filters, keyset pages, live feed) and decision page."""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import METRO_NPV, MOBILE, MQ_MOBILE, a_config, console_login, paris
from test_chainstate import tamper

from callgate.api import make_app
from callgate.console.decisions import parse_cursor, parse_filters
from callgate.gate import check_call
from callgate.inputs import InvalidInput
from callgate.model import CallRequest, Consent, ConsentScope, Purpose, Verdict

TOKEN = "a-test-token-of-32-characters-xx"
BETA_NPV = "+33948000002"
COMPANIES = [
    {"id": "acme", "name": "ACME", "sector": "telecom", "numbers": [METRO_NPV]},
    {"id": "beta", "name": "Beta", "sector": "telecom", "numbers": [BETA_NPV]},
]
OTHER = "0798765432"  # a second callee, without consent
MONDAY = paris(2026, 11, 23, 11, 0)


def config():
    return a_config(companies=COMPANIES)


@pytest.fixture
async def client(store):
    async with TestClient(TestServer(make_app(store, config(), TOKEN))) as c:
        await console_login(c)
        yield c


async def record(store, at, *, company="acme", campaign=None, callee=MOBILE, purpose=None):
    caller = BETA_NPV if company == "beta" else METRO_NPV
    request = CallRequest(caller, callee, company, purpose or Purpose.PROSPECTING, campaign)
    return await check_call(store, config(), request, at, record=True)


def row_ids(page: str) -> list[str]:
    return re.findall(r'<tr class="decision" data-id="([^"]+)"', page)


def link(page: str, anchor_id: str) -> str | None:
    found = re.search(rf'<a id="{anchor_id}" href="([^"]+)"', page)
    return htmllib.unescape(found.group(1)) if found else None


def assert_no_inline_code(page: str) -> None:
    """No inline script, style attribute or event handler: the CSP would block them."""
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S | re.I):
        assert script.strip() == ""
    assert all(" src=" in tag for tag in re.findall(r"<script\b[^>]*>", page, re.I))
    assert not re.search(r"\sstyle\s*=", page, re.I)
    assert not re.search(r"<style\b", page, re.I)
    assert not re.search(r"\son[a-z]+\s*=", page, re.I)


@pytest.fixture
async def seeded(store):
    """Decisions that differ in one respect each; their ids by what they are."""
    await store.add_consent(
        "acme", "+33612345678", Consent(ConsentScope.PROSPECTING, MONDAY - timedelta(days=60))
    )
    made = {
        "allowed": await record(store, MONDAY),  # consent, in hours: allowed
        "night": await record(store, MONDAY.replace(hour=22)),  # HOURS_OUTSIDE
        "beta": await record(store, MONDAY + timedelta(hours=1), company="beta"),
        "winter": await record(store, MONDAY + timedelta(days=1), campaign="winter"),
        "other": await record(store, MONDAY + timedelta(days=1, hours=1), callee=OTHER),
        "earlier": await record(store, MONDAY - timedelta(days=3)),
    }
    return {name: d.decision_id for name, d in made.items()}


# ---------------------------------------------------------------- pure parts


def test_filters_are_read_like_the_cli_reads_them():
    filters = parse_filters(
        {"from": "2026-11-23T10:00", "to": "2026-11-24", "verdict": "reject",
         "reason": "consent_missing", "callee": "06 12 34 56 78", "company": "acme"}
    )  # fmt: skip
    query = filters.query
    assert query.since == paris(2026, 11, 23, 10, 0) and query.until == paris(2026, 11, 24, 0, 0)
    assert query.reason == "CONSENT_MISSING" and query.callee == "+33612345678"
    assert filters.field_value("from") == "2026-11-23T10:00"
    assert parse_filters({"verdict": "all"}).query.verdict is None
    assert parse_cursor("1764000000000000.42").seq == 42 and parse_cursor(None) is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "to"),
        ({"verdict": "maybe"}, "verdict"),
        ({"reason": "not a code"}, "reason"),
        ({"callee": "12"}, "callee"),
        ({"campaign": "x" * 300}, "campaign"),
        ({"company": "a\x00b"}, "company"),
        ({"kind": "calls"}, "kind"),
    ],
)
def test_a_bad_filter_names_its_field(params, field):
    with pytest.raises(InvalidInput) as raised:
        parse_filters(params)
    assert raised.value.field == field


# ---------------------------------------------------------------- the list


async def test_the_list_shows_every_decision_newest_first(client, store, seeded):
    reply = await client.get("/console/decisions")
    assert reply.status == 200
    page = await reply.text()
    expected = [seeded[n] for n in ["other", "winter", "night", "beta", "allowed", "earlier"]]
    assert row_ids(page) == expected
    row = re.search(rf'<tr class="decision" data-id="{seeded["beta"]}".*?</tr>', page, re.S)
    cells = row.group(0)
    assert f'href="/console/decisions/{seeded["beta"]}"' in cells
    assert re.search(r'<td class="company">beta</td>', cells)
    assert "CONSENT_MISSING" in re.search(r'<td class="reasons">.*?</td>', cells, re.S).group(0)
    assert '<td class="callee">+33612345678</td>' in cells
    assert 'data-seq="' in cells


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"verdict": "allow"}, {"allowed", "winter", "earlier"}),
        ({"verdict": "reject"}, {"night", "beta", "other"}),
        ({"reason": "HOURS_OUTSIDE"}, {"night"}),
        ({"reason": "consent_missing"}, {"beta", "other"}),
        ({"company": "beta"}, {"beta"}),
        ({"campaign": "winter"}, {"winter"}),
        ({"callee": "07 98 76 54 32"}, {"other"}),
        ({"callee": "+33798765432"}, {"other"}),
        ({"from": "2026-11-23T11:00", "to": "2026-11-23T22:00"}, {"allowed", "beta"}),
        ({"from": "2026-11-23T11:00:00+01:00", "to": "2026-11-24"}, {"allowed", "beta", "night"}),
        ({"to": "2026-11-23"}, {"earlier"}),
        ({"company": "acme", "verdict": "reject", "from": "2026-11-23"}, {"night", "other"}),
        ({"company": "acme", "callee": MOBILE, "reason": "HOURS_OUTSIDE"}, {"night"}),
        ({"company": "beta", "campaign": "winter"}, set()),
    ],
)  # fmt: skip
async def test_each_filter_narrows_the_list(client, seeded, params, names):
    reply = await client.get("/console/decisions", params=params)
    assert reply.status == 200
    page = await reply.text()
    assert set(row_ids(page)) == {seeded[name] for name in names}
    newest = link(page, "newest")  # the pager carries the filters on
    assert all(f"{name}=" in newest for name in params)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=garbage", "from"),
        ("to=2026-02-30T10:00", "to"),
        ("verdict=perhaps", "verdict"),
        ("reason=%3Cscript%3E", "reason"),
        ("callee=123", "callee"),
        ("before=zzz", "before"),
        ("before=1.99999999999999999999", "before"),
        ("kind=maybe", "kind"),
    ],
)
async def test_an_invalid_filter_is_a_400_page_naming_the_field(client, seeded, query, field):
    reply = await client.get(f"/console/decisions?{query}")
    assert reply.status == 400
    page = await reply.text()
    alert = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    assert alert and f"<code>{field}</code>" in alert.group(1)
    assert "<script>" not in page.split("</head>")[1]
    assert 'id="filters"' in page  # the form, to correct it


async def test_the_kind_filter_tells_calls_from_dry_runs(client, store, seeded):
    request = CallRequest(METRO_NPV, MOBILE, "acme", Purpose.PROSPECTING)
    dry = await check_call(store, config(), request, MONDAY + timedelta(hours=2), record=False)
    await store.record_decision(dry, kind="dry-run")
    calls = set(seeded.values())
    for kind, expected in (("call", calls), ("dry-run", {dry.decision_id}),
                           ("all", calls | {dry.decision_id})):  # fmt: skip
        page = await (await client.get("/console/decisions", params={"kind": kind})).text()
        assert set(row_ids(page)) == expected, kind
        if kind != "all":  # kept in the form and in the pager's links: a bookmark
            assert f'<option value="{kind}" selected>' in page
            assert f"kind={kind}" in link(page, "newest")
    feed = await client.get("/console/decisions/feed", params={"kind": "dry-run"})
    assert [e["id"] for e in (await feed.json())["entries"]] == [dry.decision_id]


def alert_text(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


@pytest.mark.parametrize(
    ("params", "field", "french", "english"),
    [
        ({"callee": "6 12 34 56 78"}, "callee", "numéro invalide", "not a valid phone number"),
        ({"from": "hier"}, "from", "date invalide : AAAA-MM-JJ ou AAAA-MM-JJTHH:MM attendu",
         "not an ISO 8601 date"),
        ({"to": "2026-11-23T25:00"}, "to", "date invalide", "not an ISO 8601 date"),
        ({"from": "3000-01-01"}, "from", "date invalide", "out of range"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "to", "doit être postérieure à « Depuis »",
         "must be later than from"),
        ({"verdict": "peut-être"}, "verdict", "valeur attendue", "expected allow or reject"),
        ({"kind": "tous"}, "kind", "valeur attendue", "expected call or dry-run"),
        ({"reason": "pas un code"}, "reason", "n'est pas un code de motif",
         "is not a reason code"),
        ({"campaign": "x" * 300}, "campaign", "au plus 200 caractères", "at most 200"),
        ({"company": "a\x01b"}, "company", "caractère de contrôle", "control character"),
        ({"before": "zzz"}, "before", "suivez les liens", "follow the page links"),
    ],
)  # fmt: skip
async def test_a_filter_error_is_said_in_the_page_language(client, params, field, french, english):
    reply = await client.get("/console/decisions", params=params)
    assert reply.status == 400
    said = alert_text(await reply.text())
    assert french in said and english not in said and f"({field})" in said
    reply = await client.get("/console/decisions", params={**params, "lang": "en"})
    said = alert_text(await reply.text())
    assert english in said and french not in said and f"({field})" in said


async def test_keyset_pages_have_no_duplicate_no_gap_and_do_not_shift(client, store):
    start = MONDAY - timedelta(days=2)
    ids = []
    for index in range(120):  # three decisions share each instant: seq breaks the tie
        decision = await record(store, start + timedelta(minutes=index // 3), callee=OTHER)
        ids.append(decision.decision_id)
    newest_first = ids[::-1]

    first = await (await client.get("/console/decisions")).text()
    assert row_ids(first) == newest_first[:50]
    older = link(first, "older")
    assert "before=" in older
    # Decisions recorded now are newer: they must not push anything onto the next page.
    for minutes in (1, 2):
        await record(store, MONDAY + timedelta(minutes=minutes), callee=OTHER)
    second = await (await client.get(older)).text()
    assert row_ids(second) == newest_first[50:100]
    third = await (await client.get(link(second, "older"))).text()
    assert row_ids(third) == newest_first[100:]
    assert link(third, "older") is None
    seen = row_ids(first) + row_ids(second) + row_ids(third)
    assert len(seen) == len(set(seen)) == 120


async def test_pages_keep_their_filters(client, store):
    for index in range(55):
        await record(store, MONDAY + timedelta(minutes=index), campaign="spring")
    await record(store, MONDAY - timedelta(minutes=1), campaign="autumn")
    first = await (await client.get("/console/decisions?campaign=spring")).text()
    older = link(first, "older")
    assert "campaign=spring" in older
    second = await (await client.get(older)).text()
    assert len(row_ids(second)) == 5
    assert "autumn" not in second


async def test_the_feed_gives_only_newer_matching_entries_in_order(client, store, seeded):
    page = await (await client.get("/console/decisions?company=acme")).text()
    live = re.search(r'<button type="button" id="live"[^>]*>', page, re.S).group(0)
    feed = htmllib.unescape(re.search(r'data-feed="([^"]+)"', live).group(1))
    after = int(re.search(r'data-after-seq="(\d+)"', live).group(1))
    assert feed == "/console/decisions/feed?company=acme"
    assert (await (await client.get(f"{feed}&after_seq={after}")).json())["entries"] == []

    late = MONDAY.replace(hour=22) + timedelta(days=2)
    first = await record(store, late, campaign="<b>late</b>")
    await record(store, MONDAY + timedelta(days=2), company="beta")  # filtered out
    second = await record(store, MONDAY + timedelta(days=3))
    answer = await (await client.get(f"{feed}&after_seq={after}")).json()
    entries = answer["entries"]
    assert [e["id"] for e in entries] == [first.decision_id, second.decision_id]
    assert entries[0]["seq"] < entries[1]["seq"] and entries[0]["seq"] > after
    assert entries[0]["campaign"] == "<b>late</b>"  # data: the script sets it as text
    assert entries[0]["url"] == f"/console/decisions/{first.decision_id}"
    assert {"code": "HOURS_OUTSIDE", "text": "Hors des heures permises"} in entries[0]["reasons"]
    assert entries[0]["verdict"] == "reject" and entries[1]["verdict"] == "allow"
    assert answer["more"] is False
    again = await (await client.get(f"{feed}&after_seq={entries[-1]['seq']}")).json()
    assert again["entries"] == []


async def test_the_feed_refuses_a_bad_cursor_and_needs_a_session(client, store):
    reply = await client.get("/console/decisions/feed?after_seq=-1")
    assert reply.status == 400
    assert (await reply.json())["field"] == "after_seq"
    reply = await client.get("/console/decisions/feed?verdict=nope")
    assert (await reply.json())["field"] == "verdict"
    async with TestClient(TestServer(make_app(store, config(), TOKEN))) as anonymous:
        reply = await anonymous.get("/console/decisions/feed", allow_redirects=False)
        assert reply.status == 303


async def test_the_live_script_is_served_and_builds_rows_as_text(client):
    reply = await client.get("/console/static/console.js")
    assert reply.status == 200
    script = await reply.text()
    assert "innerHTML" not in script and "textContent" in script
    assert "visibilitychange" in script


# ---------------------------------------------------------------- one decision


async def test_the_decision_page_explains_the_call(client, store, seeded):
    wanted = seeded["night"]
    entry = await store.log_entry(wanted)
    reply = await client.get(f"/console/decisions/{wanted}")
    assert reply.status == 200
    page = await reply.text()
    assert re.search(r'<p id="verdict" class="[^"]*verdict-rejected', page)
    call = re.search(r'<dl id="call".*?</dl>', page, re.S).group(0)
    assert "2026-11-23 22:00:00" in call and "+33612345678" in call and "acme" in call
    assert entry["caller_out"] in call and "FR-MET" in call
    logged = re.search(r'<ul id="logged-reasons">.*?</ul>', page, re.S).group(0)
    assert "<code>HOURS_OUTSIDE</code>" in logged
    rules = re.search(r'<table id="rules">.*?</table>', page, re.S).group(0)
    rule = r'<tr class="rule">\s*<td class="rule-name"><code>calling_hours</code>.*?</tr>'
    hours = re.search(rule, rules, re.S).group(0)
    assert "HOURS_OUTSIDE" in hours and "C. consom. D223-9" in hours
    assert len(re.findall(r'<tr class="rule">', rules)) >= 7
    retry = re.search(r'<p id="retry-after">(.*?)</p>', page, re.S).group(1)
    assert "2026-11-24 10:00:00" in retry  # the next window, Paris time
    place = re.search(r'<dl id="chain-place".*?</dl>', page, re.S).group(0)
    assert str(entry["seq"]) in place and entry["prev_hash"] in place and entry["hash"] in place
    assert 'href="/console/audit"' in page
    assert "aujourd&#39;hui décideraient autrement" not in page


async def test_a_prefix_finds_the_decision_and_an_unknown_id_is_a_404(client, seeded):
    wanted = seeded["allowed"]
    reply = await client.get(f"/console/decisions/{wanted[:8]}")
    assert reply.status == 200
    assert wanted in await reply.text()
    for unknown in ("00000000-0000-0000-0000-000000000000", "abc", "%25%25%25%25%25%25%25%25",
                    "%3Cscript%3Ealert(1)"):  # fmt: skip
        reply = await client.get(f"/console/decisions/{unknown}")
        assert reply.status == 404
        page = await reply.text()
        assert re.search(r'<p class="error" role="alert">', page)
        assert "<script>alert" not in page
        assert_no_inline_code(page)


async def test_a_callee_abroad_gets_their_local_time_and_a_dry_run_says_so(client, store):
    request = CallRequest(METRO_NPV, MQ_MOBILE, "acme", Purpose.PROSPECTING)
    dry = await check_call(store, config(), request, MONDAY.replace(hour=20), record=False)
    await store.record_decision(dry, kind="dry-run")
    page = await (await client.get(f"/console/decisions/{dry.decision_id}")).text()
    call = re.search(r'<dl id="call".*?</dl>', page, re.S).group(0)
    assert "America/Martinique" in call
    local = MONDAY.replace(hour=20).astimezone(ZoneInfo("America/Martinique"))
    assert local.strftime("%Y-%m-%d %H:%M:%S") in call
    assert "essai" in re.search(r'<p id="verdict".*?</p>', page, re.S).group(0)
    listed = await (await client.get("/console/decisions")).text()
    assert '<span class="tag">essai</span>' in listed


async def test_english_labels_with_the_switch(client, seeded):
    page = await (await client.get(f"/console/decisions/{seeded['night']}?lang=en")).text()
    assert "Logged reasons" in page and "Callee (E.164)" in page and "Call rejected" in page
    assert "Outside permitted hours" in page
    listed = await (await client.get("/console/decisions")).text()  # the cookie remembers
    assert "Newest" in listed and ">Apply<" in listed and "rejected" in listed


async def test_pages_have_the_csp_and_no_inline_script_or_style(client, seeded):
    for path in ("/console/decisions", f"/console/decisions/{seeded['beta']}",
                 "/console/decisions?verdict=nope", "/console/decisions/unknown-id"):  # fmt: skip
        reply = await client.get(path)
        csp = reply.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert_no_inline_code(await reply.text())


async def test_hostile_values_in_the_log_stay_text(client, store):
    await record(store, MONDAY, campaign='<img src=x onerror="alert(1)">')
    page = await (await client.get("/console/decisions")).text()
    assert "<img" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


async def test_the_page_says_when_todays_rules_would_decide_differently(client, store):
    judged = await check_call(
        store, config(), CallRequest(METRO_NPV, OTHER, "acme"), MONDAY, record=False
    )
    assert not judged.allowed  # no consent: today's rules refuse it
    logged = replace(judged, verdict=Verdict.ALLOW, reasons=())  # as an older rule book said
    await store.record_decision(logged)
    page = await (await client.get(f"/console/decisions/{judged.decision_id}")).text()
    assert "décideraient autrement" in page
    assert re.search(r'<ul id="logged-reasons">\s*</ul>', page)
    assert "CONSENT_MISSING" in re.search(r'<table id="rules">.*?</table>', page, re.S).group(0)


def altered_alert(page: str) -> str | None:
    found = re.search(r'<div id="altered" class="error" role="alert">(.*?)</div>', page, re.S)
    return found.group(1) if found else None


def chain_place(page: str) -> str:
    return re.search(r'<dl id="chain-place" class="([^"]*)"', page).group(1)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ("verdict = CASE verdict WHEN 'allow' THEN 'reject' ELSE 'allow' END",
         "son contenu ne correspond pas à son empreinte"),
        ("callee = '+33698765432'", "le numéro appelé ne correspond plus"),
    ],
)  # fmt: skip
async def test_a_row_edited_in_the_database_is_flagged_on_its_page(
    client, store, store_url, seeded, edit, words
):
    wanted, intact = seeded["night"], seeded["beta"]
    await tamper(store_url, f"UPDATE decisions SET {edit} WHERE id = '{wanted}'")
    page = await (await client.get(f"/console/decisions/{wanted}")).text()
    alert = altered_alert(page)
    assert alert is not None and words in alert
    assert 'href="/console/audit"' in alert
    assert "altered" in chain_place(page).split()
    english = await (await client.get(f"/console/decisions/{wanted}?lang=en")).text()
    assert "This entry was altered after it was recorded" in altered_alert(english)

    page = await (await client.get(f"/console/decisions/{intact}")).text()
    assert altered_alert(page) is None and 'role="alert"' not in page
    assert chain_place(page).split()[-1] == "intact"


def test_each_rule_of_the_pack_has_its_french_words_and_keeps_its_source():
    from callgate.console.labels import RULES, rule_text
    from callgate.rules.fr import SOLICITATION_RULES

    for rule in SOLICITATION_RULES:
        source = rule.__doc__.partition(": ")[0]
        french = rule_text(rule.__name__, rule.__doc__, "fr")
        assert rule.__name__ in RULES
        assert french.startswith(f"{source} : ") and french.endswith(".")
        assert rule_text(rule.__name__, rule.__doc__, "en") == rule.__doc__
    assert rule_text("some_new_rule", "Art. 1: a text", "fr") == "Art. 1: a text"
