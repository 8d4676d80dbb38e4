"""The consent receipt: every consent of a number, in every state, in text, HTML and PDF."""

import re
import zlib
from html import unescape

import pytest
from builders import POOL, a_config, paris

from callgate import receipt
from callgate.model import Consent, ConsentChannel, ConsentScope
from callgate.receipt import consent_receipt

CALLEE = "+33612345678"
NOW = paris(2026, 11, 23, 11)
PROOF = "formulaire #4711 <script>alert('x')</script> œuvre à Noël, 10 € 🎉"
DIGEST = "0f" * 32
CONFIG = a_config(
    companies=[{"id": "acme", "name": "ACME Télécom", "sector": "telecom", "numbers": list(POOL)}]
)


@pytest.fixture
async def history(store):
    """One consent in each state, oldest first; globex is not in the configuration."""
    add = store.add_consent
    # Expired on 2026-01-10; the revocations and opt-outs that follow came after its end.
    await add("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2025, 1, 10), source="salon"))
    await add("acme", CALLEE, Consent(ConsentScope.OUT_OF_HOURS, paris(2026, 2, 1), source="call"))
    await store.revoke_consents("acme", CALLEE, ConsentScope.OUT_OF_HOURS, paris(2026, 3, 2, 9))
    await add("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 4, 1), source="phone"))
    await store.withdraw("acme", CALLEE, paris(2026, 5, 4, 10, 30), "agent-key")
    await add("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 6, 1), source="shop"))
    await store.add_oppositions([CALLEE], None, "bloctel", paris(2026, 7, 6))
    await add("globex", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 8, 3), source="fair"))
    await store.add_oppositions([CALLEE], "globex", "do-not-call", paris(2026, 10, 5))
    full = Consent(
        ConsentScope.PROSPECTING, paris(2026, 9, 1, 14, 5), source="web form", proof=PROOF,
        given_by="Jeanne Martin", collected_by="site acme.fr", channel=ConsentChannel.WEB,
        covers="box internet", proof_name="signed-form.pdf", proof_sha256=DIGEST,
    )  # fmt: skip
    await add("acme", CALLEE, full)
    return store


def flat(text: str) -> str:
    """Text with its wrapping undone (no-break spaces included), for assertions that span
    a wrapped line."""
    return " ".join(text.split())


async def text_of(store, company=None, lang="fr") -> str:
    body, media = await consent_receipt(store, CONFIG, CALLEE, company, "text", NOW, lang=lang)
    assert media == "text/plain; charset=utf-8"
    return flat(body.decode())


def sections(text: str) -> dict[str, str]:
    """Each consent's part of a flattened French receipt, by its source."""
    parts = re.split(r"Consentement \d+ sur \d+", text)[1:]
    return {re.search(r"Source (\S+)", part).group(1): part for part in parts}


async def test_every_consent_of_every_company_in_every_state(history):
    text = await text_of(history)
    assert "Numéro +33612345678" in text and "toutes les entreprises" in text
    assert "Consentements enregistrés 6" in text
    by_source = sections(text)
    assert set(by_source) == {"salon", "call", "phone", "shop", "fair", "web"}

    assert "expiré le 2026-01-10 00:00 CET" in by_source["salon"]
    assert "jusqu'au 2029-01-10 au moins" in by_source["salon"]

    revoked = by_source["call"]
    assert "appels en dehors des jours et heures autorisés" in revoked
    assert "révoqué à la demande de l'appelé le 2026-03-02 09:00 CET" in revoked
    assert "jusqu'au 2029-03-02" in revoked

    withdrawn = by_source["phone"]
    assert "retiré oralement au cours d'un appel le 2026-05-04 10:30 CEST" in withdrawn
    assert "opposition" not in withdrawn  # the withdrawal's own list entry does not hide it

    opted_out = by_source["shop"]
    assert "terminé par une opposition le 2026-07-06 00:00 CEST" in opted_out
    assert "« bloctel » (toutes entreprises)" in opted_out
    assert "jusqu'au 2029-07-06" in opted_out

    other = by_source["fair"]
    assert "Entreprise globex" in other  # not configured: its id alone
    assert "« do-not-call » (cette entreprise)" in other

    active = by_source["web"]
    for field in (
        "Entreprise ACME Télécom (acme)", "Objet démarchage téléphonique",
        "Donné par Jeanne Martin", "Recueilli par site acme.fr", "Canal site web",
        "Produits ou services box internet", "Donné le 2026-09-01 14:05 CEST",
        "Échéance 2027-09-01 14:05 CEST", "Source web form", f"Preuve {PROOF}",
        f"Fichier de preuve signed-form.pdf SHA-256 {DIGEST}", "État actif",
        "jusqu'au 2030-09-01 au moins s'il prend fin à son échéance",
    ):  # fmt: skip
        assert field in active, field
    # A consent without its details says so rather than leaving a blank.
    assert "Recueilli par information non enregistrée" in by_source["salon"]
    assert "Donné par le titulaire de la ligne" in by_source["salon"]


async def test_one_company_leaves_the_others_out(history):
    text = await text_of(history, "acme")
    assert "Entreprise ACME Télécom (acme)" in text and "Consentements enregistrés 5" in text
    assert "globex" not in text and "do-not-call" not in text
    assert set(sections(text)) == {"salon", "call", "phone", "shop", "web"}


async def test_another_companys_opt_out_does_not_end_a_consent(store):
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
    await store.add_oppositions([CALLEE], "globex", "do-not-call", paris(2026, 10, 1))
    await store.add_oppositions([CALLEE], "acme", "crm", paris(2026, 10, 2))
    await store.remove_oppositions(CALLEE, "acme", paris(2026, 10, 3))
    text = await text_of(store)
    # A removed entry still revoked the consents before it (RULES-FR §4).
    assert "terminé par une opposition le 2026-10-02 00:00 CEST" in text
    assert "« crm » (cette entreprise, retirée depuis le 2026-10-03 00:00 CEST)" in text
    assert "do-not-call" not in text


async def test_a_number_without_consent_still_gets_a_receipt(store):
    text = await text_of(store)
    assert "Aucun consentement enregistré pour ce numéro." in text
    assert "Consentements enregistrés 0" in text
    english = await text_of(store, lang="en")
    assert "No consent recorded for this number." in english
    html, _ = await consent_receipt(store, CONFIG, CALLEE, "acme", "html", NOW)
    assert "Aucun consentement enregistré pour ce numéro." in html.decode()
    pdf, _ = await consent_receipt(store, CONFIG, CALLEE, None, "pdf", NOW)
    assert "Aucun consentement enregistré pour ce numéro." in pdf_text(pdf)


async def test_the_english_receipt_translates_the_labels_only(history):
    text = await text_of(history, lang="en")
    assert text.startswith("Receipt of consent to telephone prospecting")
    for words in (
        "expired on 2026-01-10 00:00 CET", "revoked at the callee's request on 2026-03-02",
        "withdrawn by voice during a call on 2026-05-04 10:30 CEST",
        "ended by an opt-out on 2026-07-06 00:00 CEST: entry “bloctel” (every company)",
        "Given by Jeanne Martin", "Channel website", f"Proof {PROOF}",
        "until 2030-09-01 at least",
    ):  # fmt: skip
        assert words in text, words


async def test_html_is_escaped_self_contained_and_printable(history):
    body, media = await consent_receipt(history, CONFIG, CALLEE, None, "html", NOW)
    assert media == "text/html; charset=utf-8"
    html = body.decode()
    assert html.startswith("<!DOCTYPE html>") and '<html lang="fr">' in html
    assert "<script" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "@media print" in html and "<h1>" in html and html.count("<h2") == 6
    assert '<th scope="row">' in html
    assert not re.search(r"https?:|<link|<img|src=|@import|url\(", html)
    text = flat(unescape(re.sub(r"<[^>]+>", " ", html)))
    for words in (
        "expiré le 2026-01-10", "révoqué à la demande de l'appelé le 2026-03-02",
        "retiré oralement au cours d'un appel le 2026-05-04",
        "terminé par une opposition le 2026-07-06", "Fichier de preuve signed-form.pdf",
        "Recueilli par site acme.fr", "Canal site web", "État actif", "2030-09-01",
        "ACME Télécom (acme)", "globex",
    ):  # fmt: skip
        assert words in text, words
    english, _ = await consent_receipt(history, CONFIG, CALLEE, None, "html", NOW, lang="en")
    assert '<html lang="en">' in english.decode()


async def test_control_characters_never_reach_the_receipt(store):
    sneaky = "ok\x1b[2J\u202eevil\r\nline two"
    await store.add_consent(
        "acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1), proof=sneaky)
    )
    body, _ = await consent_receipt(store, CONFIG, CALLEE, None, "text", NOW)
    text = body.decode()
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "ok\ufffd[2J\ufffdevil" in text and "line two" in text


async def test_the_pdf_prints_accents_and_survives_what_its_font_lacks(history, caplog):
    body, media = await consent_receipt(history, CONFIG, CALLEE, None, "pdf", NOW)
    assert media == "application/pdf"
    assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type /Page\b", body)) >= 1
    assert b"/FontFile2" in body  # a TrueType font is embedded: the core fonts are latin-1
    assert "missing" not in caplog.text.lower()  # the emoji was replaced, not left to a box
    text = pdf_text(body)
    for words in (
        "Justificatif de consentement au démarchage téléphonique", "+33612345678",
        "expiré le 2026-01-10", "révoqué à la demande", "retiré oralement",
        "terminé par une opposition", "bloctel", "Jeanne Martin", "site acme.fr",
        "box internet", "signed-form.pdf", DIGEST, "œuvre à Noël, 10 €", "2030-09-01",
        "ACME Télécom (acme)", "globex",
    ):  # fmt: skip
        assert words in text, words
    assert "🎉" not in text and "10 € ?" in text
    again, _ = await consent_receipt(history, CONFIG, CALLEE, None, "pdf", NOW)
    assert again == body  # the same records at the same instant give the same file


async def test_without_a_unicode_font_the_pdf_folds_into_latin1(history, monkeypatch):
    monkeypatch.setattr(receipt, "_FONTS", (("/nonexistent/font.ttf", "/nonexistent/b.ttf"),))
    body, _ = await consent_receipt(history, CONFIG, CALLEE, None, "pdf", NOW)
    assert body.startswith(b"%PDF-") and b"/FontFile2" not in body and b"Helvetica" in body
    assert receipt._fit_latin1("œuvre à 10 € 🎉 ā") == "oeuvre à 10 EUR ? a"


async def test_unknown_format_or_language_is_refused(store):
    with pytest.raises(ValueError, match="format"):
        await consent_receipt(store, CONFIG, CALLEE, None, "docx", NOW)
    with pytest.raises(ValueError, match="language"):
        await consent_receipt(store, CONFIG, CALLEE, None, "text", NOW, lang="de")


def test_the_proof_is_kept_three_years_from_a_leap_day():
    assert receipt._retention_day(paris(2028, 2, 29, 12)) == "2031-03-01"
    assert receipt._retention_day(paris(2026, 12, 31, 23, 30)) == "2029-12-31"


def pdf_text(data: bytes) -> str:
    """What a reader extracts from a PDF fpdf2 wrote: each font's ToUnicode map applied to
    the text of every page's content stream (no PDF library in the test tools)."""
    objects = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def stream(body: bytes) -> bytes:
        raw = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S).group(1)
        return zlib.decompress(raw) if b"/FlateDecode" in body else raw

    glyphs: dict[bytes, dict[int, str]] = {}
    for body in objects.values():
        for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", body):
            to_unicode = re.search(rb"/ToUnicode (\d+) 0 R", objects[int(ref)])
            if to_unicode:
                cmap = stream(objects[int(to_unicode.group(1))])
                pairs = re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]{4})>", cmap)
                glyphs[name] = {int(cid, 16): chr(int(code, 16)) for cid, code in pairs}
    pages = [objects[int(n)] for n in re.findall(rb"/Contents (\d+) 0 R", data)]
    out, font = [], b""
    for page in pages:
        content = stream(page)
        ops = re.finditer(rb"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) Tj", content, re.S)
        for op in ops:
            if op.group(1):
                font = op.group(1)
                continue
            raw = re.sub(rb"\\(.)", lambda m: {b"r": b"\r", b"n": b"\n"}.get(m[1], m[1]), op[2])
            codes = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
            out.append("".join(glyphs[font].get(code, "\ufffd") for code in codes))
    return flat(" ".join(out))
