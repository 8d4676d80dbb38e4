"""The compliance console as an officer sees it, in headless Chromium, on SQLite and on
PostgreSQL: log in, read the overview, filter the decision list, open a refused call and
its legal source, look a callee up, scrub a list, follow the log live, switch to English,
log out. The tests run in this file's order on each store; each logs in if it needs to.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from callgate.console.labels import reason_label
from callgate.model import Purpose
from callgate.rules.fr.hours import calling_hours

from .conftest import (
    PARIS,
    PHONE,
    WAIT,
    Browser,
    Console,
    Recorded,
    fetch_with_session,
    full_page_png,
    until,
)


class Officer:
    """The compliance officer at the browser."""

    def __init__(self, browser: Browser, console: Console) -> None:
        self.browser, self.driver, self.console = browser, browser.driver, console

    # -- where the browser is

    def open(self, path: str) -> None:
        self.driver.get(self.console.url + path)

    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.driver.current_url).query)

    def one(self, css: str, within: Any = None) -> Any:
        return (within or self.driver).find_element(By.CSS_SELECTOR, css)

    def all(self, css: str, within: Any = None) -> list[Any]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.one(css).text

    def wait_for(self, css: str, timeout: float = WAIT) -> Any:
        return until(lambda: self.one(css), f"element {css} on {self.driver.current_url}", timeout)

    def leaving(self, action: Any) -> None:
        """``action()`` (a click, a submit), then waits for the next page to load."""
        page = self.one("html")
        action()

        def gone() -> bool:
            try:
                page.tag_name  # noqa: B018 - raises once the page is replaced
            except StaleElementReferenceException:
                return True
            return False

        until(gone, "new page after the action")
        until(lambda: self.driver.execute_script("return document.readyState") == "complete",
              "page load")  # fmt: skip

    # -- what an officer does

    def login(self, token: str) -> None:
        self.open("/console/login")
        self.one("#token").send_keys(token)
        self.leaving(self.one("#login").click)

    def logged_in(self) -> Officer:
        """Logged in with the read token, on the overview."""
        self.open("/console/")
        if self.path() != "/console/":
            self.login(self.console.tokens.read)
        assert self.path() == "/console/", self.driver.current_url
        return self

    def submit_filters(self) -> None:
        self.leaving(self.one("#apply").click)

    def rows(self) -> list[Any]:
        return self.all("table#decisions tr.decision")

    def row_ids(self) -> list[str]:
        return [row.get_attribute("data-id") for row in self.rows()]

    def shot(self, name: str, max_height: int = 8000) -> Path:
        """The whole page saved as docs/console-<name>.png (or in a temporary folder)."""
        path = self.console.shot_path(name)
        path.write_bytes(full_page_png(self.driver, max_height))
        return path


@pytest.fixture
def officer(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Any:
    yield Officer(browser, console)
    browser.drain_log(request.node.name)


def figure(text: str) -> int:
    """A count as the page prints it (with its thousands separators)."""
    digits = re.sub(r"\D", "", text)
    assert digits, f"no figure in {text!r}"
    return int(digits)


def shows_reason(text: str, code: str) -> bool:
    """Whether a cell names ``code``: the code itself, or its label in either language."""
    return any(word in text for word in (code, reason_label(code, "fr"), reason_label(code, "en")))


def digits_of(number: str) -> str:
    """The national significant number: what every form of a French number shares."""
    return re.sub(r"\D", "", number)[-9:]


def newest_first(calls: list[Recorded]) -> list[str]:
    return [call.id for call in sorted(calls, key=lambda c: c.at, reverse=True)]


def rejected_with(console: Console, code: str) -> list[Recorded]:
    return [c for c in console.calls if c.verdict == "reject" and code in c.reasons]


def option_value(select: Any, prefix: str) -> str:
    """The value of ``select``'s option that starts with ``prefix`` (allow/reject...)."""
    values = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
    chosen = [v for v in values if v.startswith(prefix)]
    assert chosen, f"no option starting with {prefix!r} among {values}"
    return chosen[0]


# ---------------------------------------------------------------- access


def test_without_a_session_a_console_page_leads_to_the_login_page(officer: Officer) -> None:
    officer.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    officer.open("/console/decisions?verdict=reject")
    assert officer.path() == "/console/login"
    assert officer.query()["next"] == ["/console/decisions?verdict=reject"]
    assert officer.one("#token").get_attribute("type") == "password"


def test_a_write_only_token_cannot_open_the_console(officer: Officer) -> None:
    officer.login(officer.console.tokens.write)
    assert officer.path() == "/console/login"
    alert = officer.one(".error[role=alert]")
    assert "read" in alert.text, alert.text
    officer.open("/console/")
    assert officer.path() == "/console/login", "a write-only token opened a session"
    # The 403 of that login is what the test expects, not a page's error.
    officer.browser.drain_log("expected: 403 of a write-only login")


def test_the_read_token_logs_in_to_the_overview(officer: Officer) -> None:
    officer.open("/console/decisions?verdict=reject")
    officer.one("#token").send_keys(officer.console.tokens.read)
    officer.leaving(officer.one("#login").click)
    assert officer.path() == "/console/decisions"  # back where the officer was going
    assert officer.query().get("verdict") == ["reject"]
    officer.open("/console/")
    assert officer.path() == "/console/"
    assert officer.one("h1").text
    assert officer.one("#logout").is_displayed()


# ---------------------------------------------------------------- overview


def test_the_overview_counts_what_was_recorded(officer: Officer) -> None:
    officer.logged_in()
    card = officer.one("#period-30d")
    allowed = sum(c.verdict == "allow" for c in officer.console.calls)
    rejected = sum(c.verdict == "reject" for c in officer.console.calls)
    assert figure(officer.text("#period-30d .allowed-count")) == allowed, card.text
    assert figure(officer.text("#period-30d .rejected-count")) == rejected, card.text
    assert figure(officer.text("#period-30d .total-count")) == allowed + rejected, card.text
    today = [c for c in officer.console.calls if c.at.date() == datetime.now(PARIS).date()]
    assert figure(officer.text("#period-today .total-count")) == len(today)

    chart = officer.one("svg#chart.chart")
    assert officer.one("title", chart).get_attribute("textContent").strip()
    bars = [r for r in officer.all("rect", chart) if float(r.get_attribute("height") or 0) > 0]
    assert bars, "the chart has no bar"

    top = officer.one("table#top-reasons")
    seeded = Counter(code for c in officer.console.calls for code in c.reasons)
    assert any(shows_reason(top.text, code) for code in seeded), top.text
    links = [a.get_attribute("href") for a in officer.all("a", top)]
    assert any("/console/decisions?" in href and "reason=" in href for href in links), links
    assert "acme" in officer.text("table#by-company").lower()
    assert "hiver" in officer.text("table#by-campaign")
    assert officer.all("table#nodes tbody tr"), "no node in the health table"
    chain = set(officer.one("#chain").get_attribute("class").split())
    assert chain & {"ok", "pending"} and "bad" not in chain, chain  # the seeded log is intact
    officer.shot("overview")


# ---------------------------------------------------------------- decision list


def test_the_decision_list_is_newest_first(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions")
    assert officer.row_ids() == newest_first(officer.console.calls)
    shown = [datetime.strptime(t.text, "%Y-%m-%d %H:%M:%S") for t in officer.all("td.at")]
    assert shown == sorted(shown, reverse=True)
    first = officer.rows()[0]
    assert (
        officer.one("a", officer.one("td", first))
        .get_attribute("href")
        .endswith(f"/console/decisions/{first.get_attribute('data-id')}")
    )
    officer.shot("decisions")


def test_a_filter_through_the_form_is_applied_and_bookmarkable(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions")
    form = officer.one("form#filters")
    verdict = officer.one("select[name=verdict]", form)
    rejected = option_value(verdict, "reject")
    Select(verdict).select_by_value(rejected)
    Select(officer.one("select[name=reason]", form)).select_by_value("CONSENT_MISSING")
    officer.submit_filters()

    expected = newest_first(rejected_with(officer.console, "CONSENT_MISSING"))
    assert len(expected) >= 2
    assert officer.row_ids() == expected
    for row in officer.rows():
        assert shows_reason(officer.one("td.reasons", row).text, "CONSENT_MISSING"), row.text
        assert officer.one("td.verdict", row).text.strip(), row.text
    query = officer.query()
    assert query["verdict"] == [rejected] and query["reason"] == ["CONSENT_MISSING"]
    verdict_words = {officer.one("td.verdict", row).text for row in officer.rows()}
    assert len(verdict_words) == 1, verdict_words  # one word: rejected

    bookmark = officer.driver.current_url
    officer.open("/console/")
    officer.driver.get(bookmark)
    assert officer.row_ids() == expected
    assert (
        Select(officer.one("select[name=reason]")).first_selected_option.get_attribute("value")
        == "CONSENT_MISSING"
    )


def test_a_filter_by_callee_takes_the_national_form(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions")
    national = officer.console.numbers["unconsented"]  # "06 33 44 55 66"
    officer.one("form#filters input[name=callee]").send_keys(national)
    officer.submit_filters()
    expected = [c for c in officer.console.calls if c.to == national]
    assert officer.row_ids() == newest_first(expected)
    for cell in officer.all("td.callee"):
        assert digits_of(cell.text) == digits_of(national), cell.text


def test_an_invalid_filter_is_named_not_a_server_error(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions?callee=not-a-number")
    field = officer.one("form#filters input[name=callee]").get_attribute("id")
    label = officer.text(f"label[for={field}]").lower()
    alert = officer.one(".error[role=alert]").text.lower()
    assert "callee" in alert or label in alert, f"{alert!r} does not name the field {label!r}"
    assert officer.one("form#filters")  # the officer can correct it
    officer.browser.drain_log("expected: 4xx of an invalid filter")


# ---------------------------------------------------------------- one decision


def test_a_rejected_decision_shows_its_reason_and_legal_source(officer: Officer) -> None:
    officer.logged_in()
    night = rejected_with(officer.console, "HOURS_OUTSIDE")[0]
    officer.open("/console/decisions?reason=HOURS_OUTSIDE")
    row = officer.one(f'tr.decision[data-id="{night.id}"]')
    officer.leaving(officer.one("td a", row).click)
    assert officer.path() == f"/console/decisions/{night.id}"

    assert [c.text for c in officer.all("ul#logged-reasons li code")] == list(night.reasons)
    source = calling_hours.__doc__.split(":")[0]  # "C. consom. D223-9": the rule's article
    refusing = [r for r in officer.all("table#rules tr.rule")
                if "HOURS_OUTSIDE" in officer.one("td.rule-state", r).text]  # fmt: skip
    assert refusing, officer.text("table#rules")
    assert source in officer.one("td.rule-source", refusing[0]).text
    assert paris_minute(night.retry_after) in officer.text("#retry-after")

    entry = next(e for e in officer.console.api(
        "GET", f"/v1/decisions?callee={quote(night.callee)}", token=officer.console.tokens.read
    )["decisions"] if e["id"] == night.id)  # fmt: skip
    place = officer.text("#chain-place")
    assert str(entry["seq"]) in place and entry["hash"] in place and entry["prev_hash"] in place
    assert digits_of(night.to) in re.sub(r"\D", "", officer.text("dl#call"))
    officer.shot("decision")


def test_an_unknown_decision_is_a_404_page(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions/00000000-0000-0000-0000-000000000000")
    assert officer.one("h1").text
    assert officer.one("#lang")  # a console page, not a bare error
    officer.browser.drain_log("expected: 404 of an unknown decision")


# ---------------------------------------------------------------- one callee


def test_the_callee_page_shows_consent_refusal_and_next_call(officer: Officer) -> None:
    officer.logged_in()
    console = officer.console
    national = "06 22 33 44 55"
    assert digits_of(national) == digits_of(console.numbers["refused"])
    search = officer.one("#find-callee")
    officer.leaving(lambda: search.send_keys(national, Keys.ENTER))  # the header's search
    assert officer.path().startswith("/console/callees/")
    assert digits_of(officer.text("h1")) == digits_of(national)

    consents = officer.all("table#consents tr.consent")
    assert len(consents) == 1, officer.text("table#consents")
    state = officer.one("td.consent-state", consents[0])
    assert "state-active" in state.get_attribute("class").split(), state.get_attribute("class")
    assert "formulaire n° 4471-refused" in consents[0].text  # its proof

    lifts = console.refused_on + timedelta(days=61)  # D223-9: 60 full days, then calls resume
    refusals = officer.text("table#refusals")
    assert f"{lifts:%Y-%m-%d}" in refusals, refusals

    purposes = officer.all("table#next-call tr.purpose")
    assert len(purposes) == len(Purpose), officer.text("table#next-call")
    blocked = [p for p in purposes if shows_reason(p.text, "REFUSAL_COOLDOWN")]
    assert blocked, officer.text("table#next-call")
    assert f"{lifts:%Y-%m-%d}" <= officer.one("td.when", blocked[0]).text[:10]
    assert console.numbers["refused"] not in officer.text("table#oppositions")
    officer.shot("callee")

    receipt = officer.one("a#receipt").get_attribute("href")
    windows = officer.driver.window_handles
    officer.one("a#receipt").click()
    if len(officer.driver.window_handles) > len(windows):  # opened in a new tab
        officer.driver.switch_to.window(officer.driver.window_handles[-1])
    until(lambda: digits_of(national) in re.sub(r"\D", "", officer.text("body")),
          f"receipt naming the callee at {receipt}")  # fmt: skip
    assert "formulaire n° 4471-refused" in officer.text("body")
    if officer.driver.window_handles != windows:
        officer.driver.close()
        officer.driver.switch_to.window(windows[0])


# ---------------------------------------------------------------- audit


def test_the_audit_page_verifies_the_chain_and_exports_pseudonymised(officer: Officer) -> None:
    officer.logged_in()
    console = officer.console
    entries = console.api("GET", "/v1/decisions?limit=1000", token=console.tokens.read)
    last = entries["decisions"][-1]["seq"]
    officer.open("/console/audit")
    officer.leaving(officer.one("#verify-now").click)
    # While it runs the page refreshes itself (a meta refresh: no script needed).
    until(lambda: officer.path() == "/console/audit" and "ok" in officer.one("#chain")
          .get_attribute("class").split(), "chain verified as intact")  # fmt: skip
    assert f"seq {last}" in officer.text("#chain"), officer.text("#chain")
    officer.open("/console/")
    assert "ok" in officer.one("#chain").get_attribute("class").split()
    assert str(last) in officer.text("#chain")

    officer.open("/console/audit")
    officer.one("#export-pseudonymise").click()
    folder = officer.browser.fresh_downloads()
    officer.one("#export-now").click()
    saved = until(lambda: downloaded(folder), "exported log")
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    ids = {line["id"] for line in lines if "id" in line}
    assert ids == {e["id"] for e in entries["decisions"]}
    exported = saved.read_text()
    for number in {c.callee for c in console.calls if c.callee}:
        assert number not in exported, f"{number} in a pseudonymised export"


def test_only_an_admin_session_is_offered_the_purge(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/audit")
    assert officer.one("#retention").text and officer.one("#last-purge").text
    assert not officer.all("form#purge"), "a read session is offered the purge"
    try:
        officer.login(officer.console.tokens.admin)
        officer.open("/console/audit")
        assert officer.one("form#purge #purge-now").is_displayed()
    finally:
        officer.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})  # back to no session


def downloaded(folder: Path) -> Path | None:
    """The one file the browser finished downloading into ``folder``."""
    files = list(folder.iterdir())
    done = [p for p in files if not p.name.endswith(".crdownload")]
    return done[0] if len(done) == 1 and len(files) == 1 else None


# ---------------------------------------------------------------- scrub


SCRUB_NUMBERS = [
    "06 11 22 33 44",
    "0622334455",
    "06 33 44 55 66",
    "+33 6 55 66 77 88",
    "07 44 55 66 77",
    "01 40 00 00 01",
    "0612000001",
    "0612000002",
    "0612000003",
    "0612000004",
    "0612000005",
    "06 12 00 00 06",
    "+33612000007",
    "0033612000008",
    "0499000001",
    "12345",
    "pas un numéro",
    "0612",
    "+999 12 34",
    "06 12 34 56 78 90 12",
]


def reason_row(officer: Officer, code: str) -> Any:
    rows = [r for r in officer.all("table#scrub-reasons tbody tr") if shows_reason(r.text, code)]
    assert len(rows) == 1, (code, officer.text("table#scrub-reasons"))
    return rows[0]


def count_cell(officer: Officer, row: Any) -> int:
    """The row's count: its first cell holding a bare figure."""
    cells = [c.text for c in officer.all("td", row) if re.fullmatch(r"[\d\s\u202f,.]+", c.text)]
    assert cells, row.text
    return figure(cells[0])


def paris_minute(instant: str) -> str:
    return datetime.fromisoformat(instant).astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


def test_a_scrub_upload_gives_a_summary_and_a_download(officer: Officer, tmp_path: Path) -> None:
    officer.logged_in()
    console = officer.console
    upload = tmp_path / "liste-hiver.csv"
    with upload.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["nom", "telephone", "ville"])
        writer.writerows([f"client {i}", number, "Paris"] for i, number in enumerate(SCRUB_NUMBERS))
    officer.open("/console/scrub")
    officer.one("input#scrub-file").send_keys(str(upload))
    officer.one("input#scrub-column").send_keys("telephone")
    Select(officer.one("select#scrub-company")).select_by_value("acme")
    Select(officer.one("select#scrub-purpose")).select_by_value("prospecting")
    officer.leaving(officer.one("#scrub-submit").click)
    assert re.fullmatch(r"/console/scrub/[^/]+", officer.path()), officer.path()
    # The same list through the API's scrub, at the same moment: what the summary must say.
    judged = console.api(
        "POST",
        "/v1/scrub?company=acme&purpose=prospecting",
        data="\n".join(SCRUB_NUMBERS).encode(),
        content_type="text/plain",
    )
    summary = officer.wait_for("#scrub-summary", timeout=20)
    refused = [j for j in judged if j["verdict"] == "reject"]
    assert figure(officer.text("#scrub-summary .total-count")) == len(SCRUB_NUMBERS)
    assert figure(officer.text("#scrub-summary .refused-count")) == len(refused), summary.text
    for code in {code for j in refused for code in j["reasons"]}:
        row = reason_row(officer, code)
        having = [j for j in refused if code in j["reasons"]]
        assert count_cell(officer, row) == len(having), (code, row.text)
        if waits := [j["retry_after"] for j in having if j["retry_after"]]:
            assert paris_minute(min(waits, key=datetime.fromisoformat)) in row.text, row.text
    officer.shot("scrub")

    link = officer.one("a#scrub-download")
    folder = officer.browser.fresh_downloads()
    link.click()
    saved = until(lambda: downloaded(folder), "downloaded CSV")
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert {"number", "verdict", "reasons", "retry_after"} <= set(rows[0]), rows[0]
    assert len(rows) == len(SCRUB_NUMBERS)
    for row, number, verdict in zip(rows, SCRUB_NUMBERS, judged, strict=True):
        assert digits_of(row["number"]) == digits_of(number) or row["number"] == number, row
        assert row["verdict"].startswith(verdict["verdict"][:5]), (row, verdict)
        for code in verdict["reasons"]:
            assert code in row["reasons"], (row, verdict)
    assert any("DEST_INVALID" in row["reasons"] for row in rows)
    status, _ = fetch_with_session(officer.driver, link.get_attribute("href"))
    assert status == 200


# ---------------------------------------------------------------- live follow, language


def test_live_follow_shows_a_new_decision_without_reloading(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions")
    table = officer.one("table#decisions")
    status = officer.one("#live-status")
    assert status.get_attribute("aria-live") == "polite"
    before = status.text
    officer.one("#live").click()
    until(lambda: officer.one("#live-status").text != before, "live status change")
    call = officer.console.record(officer.console.numbers["opposed"], "service", "suivi")
    fresh = until(lambda: officer.one(f'tr.decision.fresh[data-id="{call.id}"]'),
                  "fresh row of the new decision", timeout=8)  # fmt: skip
    assert table.is_displayed()  # the same table: the page was not reloaded
    assert officer.rows()[0].get_attribute("data-id") == call.id
    assert digits_of(officer.one("td.callee", fresh).text) == digits_of(call.to)
    officer.one("#live").click()  # stops following


def test_the_english_switch_keeps_the_filters(officer: Officer) -> None:
    officer.logged_in()
    officer.open("/console/decisions?verdict=reject&reason=CONSENT_MISSING")
    french = (officer.text("h1"), officer.text("#apply"))
    ids = officer.row_ids()
    assert officer.one("html").get_attribute("lang") == "fr"
    officer.leaving(officer.one("a#lang").click)
    try:
        assert officer.one("html").get_attribute("lang") == "en"
        assert officer.query()["reason"] == ["CONSENT_MISSING"]
        assert officer.query()["verdict"] == ["reject"]
        assert officer.row_ids() == ids
        assert (officer.text("h1"), officer.text("#apply")) != french
        assert officer.text("#logout") == "Log out"
        assert shows_reason(officer.text("table#decisions"), "CONSENT_MISSING")
    finally:
        officer.leaving(officer.one("a#lang").click)  # back to French, remembered in a cookie
    assert officer.one("html").get_attribute("lang") == "fr"


# ---------------------------------------------------------------- phone, logout, console


PHONE_PAGES = ("/console/", "/console/decisions", "/console/scrub", "/console/audit")


def test_pages_fit_a_phone_screen(officer: Officer) -> None:
    officer.logged_in()
    pages = (*PHONE_PAGES, f"/console/callees/{officer.console.numbers['refused']}")
    officer.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        officer.open("/console/")
        officer.shot("phone", max_height=1500)
        wide = {}
        for page in pages:
            officer.open(page)
            wide[page] = officer.driver.execute_script(
                "return document.documentElement.scrollWidth"
            )
        too_wide = {page: px for page, px in wide.items() if px > PHONE["width"]}
        assert not too_wide, f"pages wider than a 375 px phone (px): {too_wide}"
    finally:
        officer.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# What a page's text reads against: its color and the first opaque background behind it.
CONTRAST_JS = """
function rgb(text) { return text.match(/[\\d.]+/g).map(Number); }
function lum(c) {
  var v = c.slice(0, 3).map(function (x) { x /= 255;
    return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function background(e) {
  for (; e; e = e.parentElement) {
    var c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0.99) { return c; }
  }
  return [255, 255, 255];
}
var low = [];
document.querySelectorAll("body *").forEach(function (e) {
  var own = Array.prototype.some.call(e.childNodes, function (n) {
    return n.nodeType === 3 && n.textContent.trim(); });
  var box = e.getBoundingClientRect();
  if (!own || !box.width || box.right < 0 || getComputedStyle(e).visibility !== "visible") {
    return;
  }
  var style = getComputedStyle(e), size = parseFloat(style.fontSize);
  var large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  var a = lum(rgb(style.color)), b = lum(background(e));
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < (large ? 3 : 4.5)) {
    low.push(e.tagName.toLowerCase() + " '" + e.textContent.trim().slice(0, 30) + "' "
             + ratio.toFixed(2));
  }
});
return low;
"""


def test_fields_are_labelled_and_text_is_readable(officer: Officer) -> None:
    officer.logged_in()
    pages = (*PHONE_PAGES, f"/console/callees/{officer.console.numbers['refused']}")
    unlabelled, low = {}, {}
    for page in pages:
        officer.open(page)
        fields = officer.all("input:not([type=hidden]):not([type=submit]), select, textarea")
        unlabelled[page] = [
            f.get_attribute("name") for f in fields
            if not (f.get_attribute("aria-label") or officer.all(
                f'label[for="{f.get_attribute("id")}"]') if f.get_attribute("id") else False)
        ]  # fmt: skip
        low[page] = officer.driver.execute_script(CONTRAST_JS)
    assert not any(unlabelled.values()), f"fields without a label: {unlabelled}"
    assert not any(low.values()), f"text under 4.5:1 (3:1 when large): {low}"


def test_logout_ends_the_session(officer: Officer) -> None:
    officer.logged_in()
    officer.leaving(officer.one("#logout").click)
    assert officer.path() == "/console/login"
    officer.open("/console/")
    assert officer.path() == "/console/login"
    officer.driver.back()
    officer.driver.refresh()
    assert officer.path() == "/console/login"


def test_the_browser_console_shows_no_error_and_no_csp_violation(
    officer: Officer, browser: Browser
) -> None:
    browser.drain_log("last")
    bad = [e for e in browser.log if is_error(e) and not e["test"].startswith("expected")]
    browser.log.clear()
    # One line per distinct message (the port aside), with the first test that caused it.
    seen: dict[str, str] = {}
    for entry in bad:
        seen.setdefault(re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1", entry["message"]), entry["test"])
    assert not seen, "\n".join(f"{test}: {message}" for message, test in seen.items())


def is_error(entry: dict[str, Any]) -> bool:
    return entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
