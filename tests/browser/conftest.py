"""The console in a real browser: Debian's Chromium, driven by Selenium through Debian's
chromedriver, against the real `callgate api` process on each store, seeded through the
API as a dialer would seed it.

One Chromium serves the whole session (it takes a second to start); each store gets its own
`callgate api` process, its own tokens and its own seeded decisions.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callgate.calendar import HolidayReading, is_business_day
from callgate.numbering import Territory
from harness.sipp import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "callgate.toml"
PARIS = ZoneInfo("Europe/Paris")
INSTALL = "apt-get install chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
)  # fmt: skip
WAIT = 10.0  # seconds a page may take to show what a test waits for
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True}


# ---------------------------------------------------------------- the browser


def _program(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)


@dataclass
class Browser:
    """The one Chromium of the session, and where its downloads land."""

    driver: Any
    downloads: Path
    log: list[dict[str, Any]] = field(default_factory=list)

    def fresh_downloads(self) -> Path:
        """A new, empty folder for the next download (a file named as an earlier one would
        otherwise replace it unseen)."""
        folder = Path(tempfile.mkdtemp(prefix="download-", dir=self.downloads))
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
        )
        return folder

    def drain_log(self, test: str) -> list[dict[str, Any]]:
        """The browser console's entries since the last drain, tagged with ``test``."""
        entries = [{**e, "test": test} for e in self.driver.get_log("browser")]
        self.log.extend(entries)
        return entries


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium, chromedriver = _program("chromium"), _program("chromedriver")
    if chromium is None or chromedriver is None:
        if os.environ.get("CALLGATE_SKIP_BROWSER") == "1":
            pytest.skip(f"CALLGATE_SKIP_BROWSER=1: no browser tests ({INSTALL} to run them)")
        pytest.fail(f"Chromium or chromedriver is missing: {INSTALL}", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
    })  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: Selenium Manager must never look for one on the (closed) network.
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()


# ---------------------------------------------------------------- the API process


@dataclass(frozen=True)
class Tokens:
    read: str
    write: str
    admin: str


@dataclass(frozen=True)
class Recorded:
    """One call recorded through the API, as its answer gave it."""

    id: str
    to: str  # as the dialer sent it
    callee: str | None  # E.164
    at: datetime
    purpose: str
    campaign: str
    verdict: str  # allow | reject
    reasons: tuple[str, ...]
    retry_after: str | None


@dataclass
class Console:
    """A running `callgate api` with the console, its tokens and what was seeded in it."""

    url: str
    store: str  # sqlite | postgres
    tokens: Tokens
    shots: Path
    calls: list[Recorded] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)  # role -> national form
    refused_on: date | None = None  # the seeded refusal's day, Paris time

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """An API call with ``token`` (the write token by default); the JSON answer."""
        payload = (
            data if data is not None else (json.dumps(body).encode() if body is not None else None)
        )
        request = urllib.request.Request(self.url + path, data=payload, method=method, headers={
            "Authorization": f"Bearer {token or self.tokens.write}", "Content-Type": content_type,
        })  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read().decode()
        if path.startswith("/v1/scrub"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)

    def record(self, to: str, purpose: str, campaign: str, at: datetime | None = None) -> Recorded:
        """A call recorded as a dialer records one (POST /v1/check, record: true)."""
        body = {"from": "+33948000001", "to": to, "company": "acme", "purpose": purpose,
                "campaign": campaign, "record": True}  # fmt: skip
        if at is not None:
            body["at"] = at.isoformat()
        answer = self.api("POST", "/v1/check", body)
        call = Recorded(
            answer["decision_id"],
            to,
            answer["callee"],
            at or datetime.now(PARIS),
            purpose,
            campaign,
            answer["verdict"],
            tuple(r["code"] for r in answer["reasons"]),
            answer["retry_after"],
        )
        self.calls.append(call)
        return call

    def shot_path(self, name: str) -> Path:
        return self.shots / f"console-{name}.png"


def _config(folder: Path, tokens: Tokens) -> Path:
    """The example configuration, its API tokens in a tokens file (no single token)."""
    tokens_file = folder / "tokens"
    tokens_file.write_text(
        "# the console's browser tests\n"
        f"read {tokens.read}\nwrite {tokens.write}\nadmin {tokens.admin}\n"
    )
    tokens_file.chmod(0o600)
    text = EXAMPLE.read_text()
    text = re.sub(r"(?m)^token_file = .*$", f'tokens_file = "{tokens_file}"', text)
    assert "tokens_file" in text, "examples/callgate.toml has no [api] token_file line"
    config = folder / "callgate.toml"
    config.write_text(text)
    return config


def _wait_healthy(url: str, process: subprocess.Popen[bytes], errors: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, f"callgate api exited: {errors.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "callgate api did not start within 20 s"
        time.sleep(0.1)


def _callgate() -> str:
    found = shutil.which("callgate", path=str(Path(sys.executable).parent))
    return found or shutil.which("callgate") or "callgate"


def _shots_dir(store: str, tmp: Path) -> Path:
    """docs/ (or where $CALLGATE_SCREENSHOTS says) for the SQLite run; else a temporary
    folder, so that a normal run leaves the tree clean."""
    wanted = os.environ.get("CALLGATE_SCREENSHOTS")
    if wanted and store == "sqlite":
        folder = Path(wanted) if Path(wanted).is_absolute() else ROOT / wanted
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console(request: pytest.FixtureRequest, browser: Browser,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:  # fmt: skip
    """The real `callgate api` on one store, seeded; the browser's cookies cleared."""
    folder = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        db = str(folder / "callgate.db")
    else:
        db = request.getfixturevalue("postgres").new_database()
    tokens = Tokens(*(f"{scope}-{secrets.token_hex(16)}" for scope in ("read", "write", "admin")))
    env = {k: v for k, v in os.environ.items() if k != "CALLGATE_API_TOKEN"}
    env.update(CALLGATE_CONFIG=str(_config(folder, tokens)), CALLGATE_DB=db)
    port = free_port()
    errors = folder / "stderr"
    with errors.open("wb") as sink:
        process = subprocess.Popen(
            [_callgate(), "api", "--bind", f"127.0.0.1:{port}"], env=env, cwd=folder,
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, errors)
        running = Console(url, request.param, tokens, _shots_dir(request.param, folder))
        seed(running)
        browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        yield running
    finally:
        process.terminate()
        code = process.wait(timeout=15)
    log = errors.read_text(errors="replace")
    assert code == 0, f"callgate api exited {code}: {log[-2000:]}"
    assert "Traceback" not in log, log[-4000:]


# ---------------------------------------------------------------- the seed


def business_days_back(today: date, skip: int) -> list[date]:
    """Metropolitan business days before ``today`` - ``skip`` days, the latest first."""
    reading = HolidayReading()
    day, found = today - timedelta(days=skip), []
    while len(found) < 2:
        if is_business_day(day, Territory.MET, reading):
            found.append(day)
        day -= timedelta(days=1)
    return found


def last_sunday(today: date) -> date:
    return today - timedelta(days=(today.weekday() + 1) % 7 or 7)


def paris_at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def seed(console: Console) -> None:
    """A fortnight of a dialer's work: consents with their proof, an opposition entry,
    calls allowed and refused by several rules, and a callee's refusal."""
    today = datetime.now(PARIS).date()
    recent, earlier = business_days_back(today, 2)
    console.numbers.update(
        consented="06 11 22 33 44", refused="0622334455", unconsented="06 33 44 55 66",
        sunday="0655667788", opposed="07 44 55 66 77",
    )  # fmt: skip
    n = console.numbers
    for role in ("consented", "refused"):
        console.api("POST", "/v1/consents", {
            "to": n[role], "company": "acme", "scope": "prospecting",
            "at": paris_at(today - timedelta(days=20), 9, 12).isoformat(),
            "source": "formulaire web hiver-2026", "proof": f"formulaire n° 4471-{role}",
            "channel": "web", "collected_by": "ACME web", "covers": "offres fibre",
        })  # fmt: skip
    console.api("POST", "/v1/optouts", {"to": n["opposed"], "company": "acme",
                                        "source": "internal"})  # fmt: skip
    console.record(n["refused"], "prospecting", "printemps", paris_at(earlier, 11, 0))
    console.api("POST", "/v1/outcomes", {"to": n["refused"], "company": "acme",
                                         "outcome": "refused",
                                         "at": paris_at(earlier, 11, 5).isoformat()})  # fmt: skip
    console.refused_on = earlier
    console.record(n["consented"], "contract", "hiver", paris_at(earlier, 10, 15))
    console.record(n["consented"], "prospecting", "hiver", paris_at(recent, 10, 30))
    console.record(n["consented"], "prospecting", "hiver", paris_at(recent, 21, 30))
    console.record(n["unconsented"], "prospecting", "hiver", paris_at(recent, 14, 30))
    console.record(n["unconsented"], "service", "suivi", paris_at(recent, 22, 0))
    console.record(n["refused"], "prospecting", "printemps", paris_at(recent, 15, 0))
    console.record(n["opposed"], "newspaper", "presse", paris_at(recent, 16, 45))
    console.record(n["sunday"], "prospecting", "hiver", paris_at(last_sunday(today), 11, 0))
    console.record(n["consented"], "service", "suivi")  # now: today has a bar in the chart
    wanted = {"HOURS_OUTSIDE", "CONSENT_MISSING", "REFUSAL_COOLDOWN", "DAY_WEEKEND"}
    seeded = {code for call in console.calls for code in call.reasons}
    assert wanted <= seeded, f"the seed did not give {wanted - seeded}"
    assert any(call.verdict == "allow" for call in console.calls)


# ---------------------------------------------------------------- small helpers for tests


def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """``condition()``'s first truthy value, polled; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # a page still loading: its elements come and go
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s, still no {what}", pytrace=False)
        time.sleep(0.1)


def full_page_png(driver: Any, max_height: int = 8000) -> bytes:
    """The whole page (up to ``max_height`` px), not only the window, as PNG bytes."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height),
                 "scale": 1},
    })  # fmt: skip
    return base64.b64decode(shot["data"])


def fetch_with_session(driver: Any, url: str) -> tuple[int, bytes]:
    """``url`` fetched outside the browser with its session cookie."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    request = urllib.request.Request(url, headers={"Cookie": cookies})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
