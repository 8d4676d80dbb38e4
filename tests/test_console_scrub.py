"""The console's list scrub: upload, summary, download, on both stores; jobs private to
their session; uploads bounded; a long list streamed."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import a_config, console_login, paris

from callgate.api import make_app
from callgate.console import scrub as scrub_page
from callgate.console.scrub import SCRUBS
from callgate.model import Consent, ConsentScope, Purpose
from callgate.scrub import scrub

TOKEN = "a-test-token-of-32-characters-xx"
NOW = paris(2026, 11, 23, 11, 0)  # a Monday, in the opt-in regime
CONSENTED, COOLING, LISTED, BARE = "0612345678", "0612345677", "0612345676", "0612345675"


@pytest.fixture
async def client(store, monkeypatch):
    monkeypatch.setattr(scrub_page, "now", lambda: NOW)
    for number in (CONSENTED, COOLING):
        await store.add_consent("acme", "+33" + number[1:],
                                Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))  # fmt: skip
    await store.add_refusal("acme", "+33" + COOLING[1:], NOW - timedelta(days=10), "test")
    await store.add_oppositions(["+33" + LISTED[1:]], None, "bloctel", paris(2026, 10, 1))
    async with TestClient(TestServer(make_app(store, a_config(), TOKEN))) as client:
        client.csrf = await console_login(client)
        yield client


async def upload(client: TestClient, content: bytes, column: str = "", status: int | None = 303,
                 purpose: str = "prospecting") -> aiohttp.ClientResponse:  # fmt: skip
    form = aiohttp.FormData()
    form.add_field("csrf", client.csrf)  # first: the guard reads only that part
    form.add_field("column", column)
    form.add_field("company", "acme")
    form.add_field("purpose", purpose)
    form.add_field("file", content, filename="list.csv", content_type="text/csv")
    reply = await client.post("/console/scrub", data=form, allow_redirects=False)
    assert status is None or reply.status == status, await reply.text()
    return reply


async def finished(client: TestClient, location: str, timeout: float = 30) -> str:
    """The job's page once it is done."""
    async with asyncio.timeout(timeout):
        while True:
            reply = await client.get(location)
            assert reply.status == 200
            html = await reply.text()
            if 'id="scrub-progress"' not in html:
                return html
            assert '<meta http-equiv="refresh" content="2">' in html
            await asyncio.sleep(0.05)


def figure(html: str, name: str) -> int:
    found = re.search(rf'<span class="{name}">([\d\u202f]+)</span>', html)
    assert found, name
    return int(found.group(1).replace("\u202f", ""))


def reason_counts(html: str) -> dict[str, int]:
    return {
        code: int(count.replace("\u202f", ""))
        for code, count in re.findall(
            r'<tr class="reason" data-code="(\w+)">.*?<td class="num count">([\d\u202f]+)</td>',
            html, re.S,
        )
    }  # fmt: skip


async def download(client: TestClient, html: str) -> list[dict[str, str]]:
    link = re.search(r'<a id="scrub-download"[^>]* href="([^"]+)"', html).group(1)
    reply = await client.get(link)
    assert reply.status == 200 and reply.content_type == "text/csv"
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(await reply.text())))


async def expected(store, numbers: list[str]) -> list[dict]:
    """What the scrub itself says of ``numbers`` at NOW."""

    async def given():
        for number in numbers:
            yield number

    config = a_config()
    caller = config.companies["acme"].numbers[0]
    results = scrub(store, config, given(), caller=caller, company="acme",
                    purpose=Purpose.PROSPECTING, now=NOW)  # fmt: skip
    return [r async for r in results]


CRM = (
    "name;phone;city\n"
    f"Martin;{CONSENTED};Lyon\n"
    f'"Durand; Jean";{COOLING};Paris\n'
    f"Petit;{LISTED};Nantes\n"
    f"Roux;{BARE};Lille\n"
    "Blanc;not a number;Brest\n"
)


async def test_a_csv_with_a_chosen_column(client, store):
    reply = await upload(client, CRM.encode(), column=" Phone ")
    html = await finished(client, reply.headers["Location"])
    numbers = [CONSENTED, COOLING, LISTED, BARE, "not a number"]
    judged = await expected(store, numbers)
    refused = [r for r in judged if r["verdict"] == "reject"]
    assert figure(html, "total-count") == 5 and figure(html, "refused-count") == len(refused) == 4
    counts = reason_counts(html)
    assert counts == {code: sum(code in r["reasons"] for r in refused)
                      for r in refused for code in r["reasons"]}  # fmt: skip
    assert counts["REFUSAL_COOLDOWN"] == 1 and counts["DEST_INVALID"] == 1
    # The cooling one passes when its cool-down lifts, RULES-FR §3.2: D + 61 days.
    cooling = next(r for r in judged if r["to"] == COOLING)
    assert cooling["retry_after"] is not None
    row = re.search(r'data-code="REFUSAL_COOLDOWN">.*?<td class="earliest">([^<]+)</td>', html,
                    re.S).group(1)  # fmt: skip
    assert row >= str((NOW - timedelta(days=10)).date() + timedelta(days=61))
    rows = await download(client, html)
    assert [(r["number"], r["verdict"], r["reasons"], r["retry_after"]) for r in rows] == [
        (r["to"], r["verdict"], " ".join(r["reasons"]), r["retry_after"] or "") for r in judged
    ]


async def test_a_plain_list_with_or_without_a_header(client, store):
    numbers = [CONSENTED, BARE, LISTED]
    for content, column in ((numbers, ""), (["numéro", *numbers], ""), (["tel", *numbers], "TEL")):
        reply = await upload(client, ("\r\n".join(content) + "\r\n").encode("utf-8-sig"), column)
        html = await finished(client, reply.headers["Location"])
        assert figure(html, "total-count") == 3
        rows = await download(client, html)
        assert [r["number"] for r in rows] == numbers
        judged = await expected(store, numbers)
        assert [r["verdict"] for r in rows] == [r["verdict"] for r in judged]


async def test_a_first_line_with_digits_is_judged(client):
    reply = await upload(client, b"ref 12\n0612345678\n")
    html = await finished(client, reply.headers["Location"])
    assert figure(html, "total-count") == 2
    assert reason_counts(html)["DEST_INVALID"] == 1


async def test_another_session_cannot_see_the_job(client):
    reply = await upload(client, CRM.encode(), column="phone")
    location = reply.headers["Location"]
    await finished(client, location)
    client.session.cookie_jar.clear()
    client.csrf = await console_login(client)
    assert (await client.get(location)).status == 404
    assert (await client.get(location + "/download")).status == 404


async def test_an_oversize_upload_is_refused(client):
    client.app[SCRUBS].max_upload = 1000
    reply = await upload(client, b"0612345678\n" * 200, status=413)
    assert 'role="alert"' in await reply.text()
    assert not client.app[SCRUBS].jobs
    assert not list(client.app[SCRUBS].folder.iterdir())  # the part received is gone


async def test_the_upload_needs_the_csrf_token(client):
    form = aiohttp.FormData()
    form.add_field("file", b"0612345678\n", filename="list.csv")
    reply = await client.post("/console/scrub", data=form)
    assert reply.status == 403


async def test_a_list_of_100_000_lines_completes(client):
    lines = "".join(f"06{n:08d}\n" for n in range(100_000)).encode()
    started = time.perf_counter()
    reply = await upload(client, lines)
    html = await finished(client, reply.headers["Location"], timeout=60)
    assert figure(html, "total-count") == 100_000
    assert time.perf_counter() - started < 30
    rows = await download(client, html)
    assert len(rows) == 100_000 and rows[-1]["number"] == "0600099999"


# ---------------------------------------------------------------- encodings


async def test_a_windows_1252_list_is_read_as_such(client, store):
    """Excel's "CSV" on a French Windows: not UTF-8, the column named with an accent."""
    content = f"numéro;nom\n{CONSENTED};é\n{LISTED};Hélène Noël – 5 €\n".encode("cp1252")
    reply = await upload(client, content, column="numéro")
    html = await finished(client, reply.headers["Location"])
    assert 'role="alert"' not in html, html
    assert figure(html, "total-count") == 2
    rows = await download(client, html)
    judged = await expected(store, [CONSENTED, LISTED])
    assert [(r["number"], r["verdict"]) for r in rows] == [(j["to"], j["verdict"]) for j in judged]


async def test_lines_of_both_kinds_in_one_list(client):
    """UTF-8 and Windows-1252 lines in one file: each line is read in its own."""
    content = "numéro;nom\n".encode() + f"{CONSENTED};é\n".encode("cp1252")
    content += f"{BARE};ü\n".encode()
    reply = await upload(client, content, column="NUMÉRO")
    html = await finished(client, reply.headers["Location"])
    assert [r["number"] for r in await download(client, html)] == [CONSENTED, BARE]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
async def test_an_excel_unicode_text_list_is_read(client, store, encoding):
    """Excel's "Unicode text": UTF-16 with its BOM, tab-separated, CR LF; long enough to
    cross the decoder's chunks, with a line over the length limit in the middle."""
    numbers = [f"06{n:08d}" for n in range(20_000)]
    lines = ["Nom\tNuméro de téléphone", *(f"Zoé {n}\t{number}" for n, number in
                                           enumerate(numbers[:10_000]))]  # fmt: skip
    lines += ["x\t" + "9" * (scrub_page.MAX_LINE + 10)]
    lines += [f"Zoé\t{number}" for number in numbers[10_000:]]
    text = "\ufeff" + "\r\n".join(lines) + "\r\n"
    reply = await upload(client, text.encode(encoding), column="numéro de téléphone")
    html = await finished(client, reply.headers["Location"])
    assert 'role="alert"' not in html, html
    assert figure(html, "total-count") == 20_001
    rows = await download(client, html)
    assert [r["number"] for r in rows] == [
        *numbers[:10_000],
        f"(a line longer than {scrub_page.MAX_LINE} bytes)",
        *numbers[10_000:],
    ]
    assert rows[0]["verdict"] == (await expected(store, numbers[:1]))[0]["verdict"]
    assert rows[10_000]["reasons"] == "DEST_INVALID"


# ---------------------------------------------------------------- one session, one list


@pytest.fixture
def held(monkeypatch):
    """Jobs that judge nothing until the test sets the event."""
    release = asyncio.Event()

    async def waiting(*args, **kwargs):
        await release.wait()
        async for result in scrub(*args, **kwargs):
            yield result

    monkeypatch.setattr(scrub_page, "scrub", waiting)
    yield release
    release.set()


async def test_one_session_cannot_take_every_place(client, held):
    replies = await asyncio.gather(*(
        upload(client, f"{BARE}\n".encode(), status=None) for _ in range(5)
    ))  # fmt: skip
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [303, 429, 429, 429, 429]
    job = client.app[SCRUBS].running_of(next(iter(client.app[SCRUBS].jobs.values())).owner)
    refused = await next(r for r in replies if r.status == 429).text()
    assert "encore en cours" in refused and 'role="alert"' in refused
    assert f'href="/console/scrub/{job.id}"' in refused  # to the list being checked
    # Another person's list still goes through.
    client.session.cookie_jar.clear()
    client.csrf = await console_login(client)
    other = await upload(client, f"{BARE}\n".encode())
    held.set()
    await finished(client, other.headers["Location"])
    # Once it is done, the same session may send its next list.
    await finished(client, (await upload(client, f"{BARE}\n".encode())).headers["Location"])


async def test_every_place_taken_is_a_429_for_a_new_session(client, held, monkeypatch):
    monkeypatch.setattr(scrub_page, "MAX_RUNNING", 2)
    for _ in range(2):
        client.session.cookie_jar.clear()
        client.csrf = await console_login(client)
        await upload(client, f"{BARE}\n".encode())
    client.session.cookie_jar.clear()
    client.csrf = await console_login(client)
    reply = await upload(client, f"{BARE}\n".encode(), status=429)
    assert "Trop de contrôles" in await reply.text()


# ---------------------------------------------------------------- the download


def test_a_cell_a_spreadsheet_would_run_is_neutralised():
    for formula in ('=HYPERLINK("http://evil")', "@SUM(A1)", "+1+2", "-2+3", "\t=1",
                    "\r=1", "+cmd|' /C calc'!A0", " =1", "-"):  # fmt: skip
        assert scrub_page.safe_cell(formula).startswith("'"), formula
    for data in ("+33612345678", "+33 6 12 34 56 78", "0612345678", "-12", "not a number", ""):
        assert scrub_page.safe_cell(data) == data
    assert scrub_page.safe_cell("06\x0012\x1b34\x7f") == "061234"
    assert scrub_page.safe_cell("=1\x00") == "'=1"


async def test_the_download_runs_no_formula(client):
    content = (
        b'name;phone\nA;"=HYPERLINK(""http://evil"",""x"")"\nB;+33612345678\n'
        b"C;06123\x0045678\nD;@SUM(1)\nE;-1+1\n"
    )
    reply = await upload(client, content, column="phone")
    html = await finished(client, reply.headers["Location"])
    numbers = [r["number"] for r in await download(client, html)]
    assert numbers == [
        '\'=HYPERLINK("http://evil","x")',
        "+33612345678",
        "0612345678",
        "'@SUM(1)",
        "'-1+1",
    ]


async def test_the_download_name_cannot_break_its_header(client):
    reply = await upload(client, f"{BARE}\n".encode())
    html = await finished(client, reply.headers["Location"])
    job = next(iter(client.app[SCRUBS].jobs.values()))
    link = re.search(r'<a id="scrub-download"[^>]* href="([^"]+)"', html).group(1)
    job.company = 'evil"><img src=x>'
    header = (await client.get(link)).headers["Content-Disposition"]
    assert header == f'attachment; filename="scrub-evil___img_src_x_-{job.id}.csv"'
    job.company = "société"
    header = (await client.get(link)).headers["Content-Disposition"]
    assert header.startswith(f'attachment; filename="scrub-soci_t_-{job.id}.csv"; ')
    assert header.endswith(f"filename*=UTF-8''scrub-soci%C3%A9t%C3%A9-{job.id}.csv")


# ---------------------------------------------------------------- messages in the page's language


async def test_an_unknown_column_is_named_in_the_pages_language(client):
    reply = await upload(client, CRM.encode(), column="mobile")
    location = reply.headers["Location"]
    french = await finished(client, location)
    assert 'role="alert"' in french and 'id="scrub-download"' not in french
    assert "Aucune colonne nommée « mobile »" in french and "name, phone, city" in french
    english = await finished(client, location + "?lang=en")
    assert "No column named “mobile”" in english


@pytest.mark.parametrize(
    ("company", "purpose", "french", "english"),
    [
        ("acme", "<b>x", "Objet d&#39;appel inconnu « &lt;b&gt;x »",
         "Unknown call purpose “&lt;b&gt;x”"),
        ("nope", "prospecting", "Entreprise inconnue « nope » (connues : acme",
         "Unknown company “nope” (known: acme"),
    ],
)  # fmt: skip
async def test_a_bad_company_or_purpose_is_named(client, company, purpose, french, english):
    for lang, words in (("fr", french), ("en", english)):
        form = aiohttp.FormData()
        form.add_field("csrf", client.csrf)
        form.add_field("company", company)
        form.add_field("purpose", purpose)
        form.add_field("file", f"{BARE}\n".encode(), filename="list.csv")
        reply = await client.post(f"/console/scrub?lang={lang}", data=form)
        assert reply.status == 400
        html = await reply.text()
        assert words in html and "is not a valid" not in html and 'role="alert"' in html
    assert not client.app[SCRUBS].jobs


async def test_a_store_failure_is_said_in_the_pages_language(client, monkeypatch):
    async def failing(*args, **kwargs):
        raise OSError("connection reset by peer")
        yield  # an async generator

    monkeypatch.setattr(scrub_page, "scrub", failing)
    reply = await upload(client, f"{BARE}\n".encode())
    html = await finished(client, reply.headers["Location"])
    assert "Le stockage n&#39;a pas répondu" in html and "connection reset" not in html
