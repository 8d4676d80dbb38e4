"""The console's callee page: what the store knows about a number, and when it may be
called next, on both stores; its receipt links; a number that does not parse."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import MOBILE, a_config, a_request, console_login, paris

from callgate.api import make_app
from callgate.console import callees
from callgate.console.callees import receipt_policy
from callgate.gate import check_call
from callgate.model import Consent, ConsentScope, Contract
from callgate.store.base import LogQuery

TOKEN = "a-test-token-of-32-characters-xx"
CALLEE = "+33612345678"  # MOBILE, in E.164
NOW = paris(2026, 11, 23, 11, 0)  # a Monday, in the opt-in regime
PAGE = f"/console/callees/{CALLEE}"


@pytest.fixture
async def client(store, monkeypatch):
    monkeypatch.setattr(callees, "now", lambda: NOW)
    async with TestClient(TestServer(make_app(store, a_config(), TOKEN))) as client:
        await console_login(client)
        yield client


async def page(client: TestClient, path: str = PAGE) -> str:
    reply = await client.get(path)
    assert reply.status == 200, await reply.text()
    return await reply.text()


def table(html: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert found, f"no table#{table_id}"
    return found.group(0)


def next_call(html: str, purpose: str) -> tuple[str, str]:
    """(the "when" cell's text, the reasons cell's text) of one purpose's row."""
    row = re.search(
        rf'<tr class="purpose" data-purpose="{purpose}".*?<td class="when[^"]*">(.*?)</td>'
        r'\s*<td class="reasons">(.*?)</td>', html, re.S,
    )  # fmt: skip
    assert row, f"no next-call row for {purpose}"
    return row.group(1), row.group(2)


async def consent(store, **fields) -> int:
    """A prospecting consent given long before NOW, with ``fields``."""
    given = fields.pop("given_at", paris(2026, 9, 1))
    return await store.add_consent(
        "acme", CALLEE, Consent(ConsentScope.PROSPECTING, given, proof="form 42", **fields)
    )


async def test_attempts_show_up_with_when_the_cap_lifts(client, store):
    await consent(store)
    for day in (16, 17, 18, 19):  # four calls the week before
        decision = await check_call(store, a_config(), a_request(), paris(2026, 11, day, 10),
                                    record=True)  # fmt: skip
        assert decision.allowed
    html = await page(client)
    assert table(html, "attempts").count('<tr class="attempt">') == 4
    # RULES-FR §3.1: the oldest counted call's date + 30 days, at midnight local time.
    assert "2026-12-16 00:00:00" in html
    when, reasons = next_call(html, "prospecting")
    assert "CAP_30_DAYS" in reasons and when >= "2026-12-16"
    assert "2026-12-16 00:00:00" in table(html, "attempts")  # the oldest leaves the count


async def test_three_attempts_leave_the_cap_open(client, store):
    await consent(store)
    for day in (17, 18, 19):
        await check_call(store, a_config(), a_request(), paris(2026, 11, day, 10), record=True)
    html = await page(client)
    assert table(html, "attempts").count('<tr class="attempt">') == 3
    assert "cap-lifts" not in html
    assert next_call(html, "prospecting")[1].strip() == "-"


@pytest.mark.parametrize(("days_ago", "refused"), [(59, True), (60, True), (61, False)])
async def test_the_cool_down_lifts_on_the_61st_day(client, store, days_ago, refused):
    """RULES-FR §3.2: a refusal on local day D blocks until 00:00 on D + 61 days."""
    await consent(store)
    at = NOW - timedelta(days=days_ago)
    await store.add_refusal("acme", CALLEE, at, "test")
    html = await page(client)
    assert table(html, "refusals").count('<tr class="refusal">') == 1
    lifts = (at.date() + timedelta(days=61)).isoformat() + " 00:00:00"
    assert lifts in table(html, "refusals")
    when, reasons = next_call(html, "prospecting")
    if refused:
        assert "REFUSAL_COOLDOWN" in reasons
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", when) and when >= lifts
    else:
        assert "REFUSAL_COOLDOWN" not in reasons
        assert when == "maintenant"


async def test_consent_states_at_their_boundaries(client, store):
    ids = {
        "expired": await consent(store, expires_at=NOW),
        "active": await consent(store, expires_at=NOW + timedelta(microseconds=1)),
        "revoked": await consent(store, revoked_at=NOW),
        "active-too": await consent(store, revoked_at=NOW + timedelta(seconds=1)),
        "aged": await consent(store, given_at=NOW - timedelta(days=3 * 365)),
    }
    html = table(await page(client), "consents")
    states = dict(re.findall(
        r'<tr class="consent" data-id="(\d+)">\s*<td class="consent-state state-(\w+)"', html
    ))  # fmt: skip
    assert states[str(ids["expired"])] == "expired"
    assert states[str(ids["active"])] == "active"
    assert states[str(ids["revoked"])] == "revoked"
    assert states[str(ids["active-too"])] == "active"
    assert states[str(ids["aged"])] == "expired"  # consent_max_age_days from its giving
    assert "form 42" in html  # the proof


async def test_an_opt_out_revokes_earlier_consents(client, store):
    given = await consent(store)
    await store.add_oppositions([CALLEE], "acme", "crm", NOW - timedelta(days=1))
    html = await page(client)
    assert f'data-id="{given}">\n    <td class="consent-state state-revoked"' in html
    oppositions = table(html, "oppositions")
    assert "crm" in oppositions and "acme" in oppositions
    assert "OPPOSITION_LISTED" in next_call(html, "prospecting")[1]


async def test_contracts_and_bloctel_entries_show_up(client, store):
    await store.add_contract("acme", CALLEE, Contract(paris(2026, 1, 1), None))
    await store.add_oppositions([CALLEE], None, "bloctel", paris(2026, 10, 1))
    html = await page(client)
    contracts = table(html, "contracts")
    assert contracts.count('<tr class="contract">') == 1 and "2026-01-01 00:00:00" in contracts
    oppositions = table(html, "oppositions")
    assert "bloctel" in oppositions and "toutes les entreprises" in oppositions
    # RULES-FR §4, opt-in regime: an opposition entry holds every purpose but service.
    assert "OPPOSITION_LISTED" in next_call(html, "contract")[1]
    assert next_call(html, "service")[0] == "maintenant"


async def test_the_next_call_dry_run_is_not_logged(client, store):
    await check_call(store, a_config(), a_request(), paris(2026, 11, 20, 10), record=True)
    before = await store.log_entries(LogQuery())
    html = await page(client)
    assert html.count('<tr class="purpose"') == 4  # one per purpose, one company
    assert await store.log_entries(LogQuery()) == before
    decisions = table(html, "callee-decisions-table")
    assert decisions.count('<tr class="decision"') == 1
    assert "/console/decisions?callee=%2B33612345678" in html


async def test_the_receipt_comes_with_the_session(client, store):
    await consent(store)
    html = await page(client)
    link = re.search(r'<a id="receipt"[^>]* href="([^"]+)"', html).group(1).replace("&amp;", "&")
    pdf = re.search(r'<a id="receipt-pdf"[^>]* href="([^"]+)"', html).group(1).replace("&amp;", "&")
    printable = await client.get(link)
    assert printable.status == 200 and printable.content_type == "text/html"
    assert CALLEE in await printable.text() and "form 42" in await printable.text()
    document = await client.get(pdf)
    assert document.status == 200 and document.content_type == "application/pdf"
    assert (await document.read()).startswith(b"%PDF")
    # Its inline style (the file is self-contained) is allowed by its hash, nothing more.
    body = await printable.read()
    style = re.search(rb"<style>(.*?)</style>", body, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in receipt_policy(body)
    assert "script-src" not in receipt_policy(body)  # default-src 'none' covers scripts
    client.session.cookie_jar.clear()
    anonymous = await client.get(link, allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"].startswith("/console/login?next=")


async def test_a_number_is_found_in_any_form(client):
    reply = await client.get("/console/callees", params={"number": "06 12 34 56 78"},
                             allow_redirects=False)  # fmt: skip
    assert reply.status == 303
    assert reply.headers["Location"] == "/console/callees/%2B33612345678"
    assert CALLEE in await page(client, f"/console/callees/{MOBILE}")


@pytest.mark.parametrize(
    "path",
    ["/console/callees?number=not-a-number", "/console/callees/12ab", "/console/callees?number="],
)
async def test_a_bad_number_is_a_400_naming_it(client, path):
    reply = await client.get(path)
    assert reply.status == 400
    text = await reply.text()
    assert 'role="alert"' in text
    given = path.split("=")[-1] if "=" in path else path.rsplit("/", 1)[-1]
    assert (given or "(vide)") in text


async def test_an_unknown_company_is_a_400(client):
    reply = await client.get(PAGE, params={"company": "globex"})
    assert reply.status == 400 and "globex" in await reply.text()


async def test_english_labels_follow_the_switch(client, store):
    await consent(store)
    html = await page(client, PAGE + "?lang=en")
    assert re.search(r'class="consent-state state-active">active\b', html)
    assert next_call(html, "service")[0] == "now"


async def test_an_unknown_company_is_named_in_the_pages_language(client):
    french = await client.get(PAGE, params={"company": "nope"})
    assert french.status == 400
    assert "Entreprise inconnue « nope » (connues : acme" in await french.text()
    english = await client.get(PAGE, params={"company": "nope", "lang": "en"})
    assert english.status == 400
    text = await english.text()
    assert "Unknown company “nope” (known: acme" in text and "unknown company 'nope'" not in text


async def test_opposition_lists_are_named_in_the_pages_language(client, store):
    await store.add_oppositions([CALLEE], None, "bloctel", paris(2026, 10, 1))
    await store.add_oppositions([CALLEE], "acme", "internal", paris(2026, 10, 2))
    await store.add_oppositions([CALLEE], "acme", "withdrawal", paris(2026, 10, 3))
    sources = r'<tr class="opposition[^"]*" data-source="(\w+)">\s*<td class="source">([^<]+)</td>'
    french = dict(re.findall(sources, table(await page(client), "oppositions")))
    assert french == {
        "bloctel": "Bloctel (liste nationale d&#39;opposition)",
        "internal": "Liste d&#39;opposition de l&#39;entreprise",
        "withdrawal": "Retrait du consentement par l&#39;appelé",
    }
    english = dict(re.findall(sources, table(await page(client, PAGE + "?lang=en"), "oppositions")))
    assert english["internal"] == "The company&#39;s own opt-out list"
    assert set(english.values()).isdisjoint(english)  # no list shown by its bare code


CHROMEDRIVER = Path("/usr/bin/chromedriver")


def page_width(path: Path, width: int) -> int:
    """The document's width in headless Chromium on a ``width`` px wide phone screen."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 812, "deviceScaleFactor": 1, "mobile": True,
        })  # fmt: skip
        driver.get(path.as_uri())
        return driver.execute_script("return document.documentElement.scrollWidth")
    finally:
        driver.quit()


@pytest.mark.skipif(not CHROMEDRIVER.exists(), reason="no chromedriver (apt-get install "
                    "chromium chromium-driver)")  # fmt: skip
@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_the_printable_receipt_fits_a_phone(client, store, tmp_path, lang):
    await consent(store, given_by="Jean-Philippe Dupont-Lagrange de la Tour-d'Auvergne",
                  collected_by="https://example.com/" + "a" * 80)  # fmt: skip
    reply = await client.get(f"{PAGE}/receipt", params={"format": "html", "lang": lang})
    assert reply.status == 200
    receipt = tmp_path / "receipt.html"
    receipt.write_bytes(await reply.read())
    assert await asyncio.to_thread(page_width, receipt, 375) <= 375
