"""The consent receipt: the proof of consent a callee may obtain, free, on a durable medium.

RULES-FR §4 (opt-in regime; décret of July 2026, R223-1 and R223-2 as reported): the record
of a consent says who collected it and for which company, for what, through which channel,
when and until when; its proof is kept 3 years; the callee can obtain it without creating an
account. The receipt lists every consent the store holds for the number, ended or not, so
that the callee sees what the company could show a regulator.
"""

from __future__ import annotations

import asyncio
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from callgate.cli_format import local_text
from callgate.model import ConsentChannel, ConsentScope, Opposition
from callgate.rules.fr.consent import consent_expiry, consent_revoked_at
from callgate.store.base import ConsentRecord, OppositionRecord
from callgate.timeparse import DEFAULT_ZONE

if TYPE_CHECKING:
    import jinja2
    from fpdf import FPDF

    from callgate.config import Config
    from callgate.store.base import Store

__all__ = [
    "FORMATS", "LANGUAGES", "MEDIA_TYPES", "RETENTION_YEARS", "consent_receipt", "consent_state",
]  # fmt: skip

MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
FORMATS = tuple(MEDIA_TYPES)
LANGUAGES = ("fr", "en")

# R223-2 as reported: the proof is kept 3 years after the consent ends.
RETENTION_YEARS = 3

# Unicode TrueType fonts, first found wins: the PDF core fonts only know latin-1.
# Debian: fonts-dejavu-core; Fedora: dejavu-sans-fonts; else Liberation or FreeFont.
_FONTS = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
     "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
     "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
     "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/freefont/FreeSans.ttf",
     "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf"),
)  # fmt: skip

_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Justificatif de consentement au démarchage téléphonique",
        "number": "Numéro",
        "companies": "Entreprise",
        "every_company": "toutes les entreprises",
        "issued": "Établi le (état à cette date)",
        "free": "Document remis gratuitement au titulaire de la ligne, sans création de compte.",
        "zone": "Dates et heures en heure légale française (Europe/Paris).",
        "count": "Consentements enregistrés",
        "none": "Aucun consentement enregistré pour ce numéro.",
        "consent": "Consentement {n} sur {total} (enregistrement n° {id})",
        "company": "Entreprise",
        "scope": "Objet",
        "given_by": "Donné par",
        "holder": "le titulaire de la ligne",
        "collected_by": "Recueilli par",
        "channel": "Canal",
        "covers": "Produits ou services",
        "given_at": "Donné le",
        "expires": "Échéance",
        "source": "Source",
        "proof": "Preuve",
        "proof_file": "Fichier de preuve",
        "unknown": "information non enregistrée",
        "state": "État",
        "active": "actif",
        "upcoming": "pas encore en vigueur",
        "expired": "expiré le {at}",
        "revoked": "révoqué à la demande de l'appelé le {at}",
        "withdrawn": "retiré oralement au cours d'un appel le {at}",
        "opted_out": "terminé par une opposition le {at}\u00a0: inscription"
        " «\u00a0{source}\u00a0» ({whom})",
        "opt_out_all": "toutes entreprises",
        "opt_out_one": "cette entreprise",
        "removed": "retirée depuis le {at}",
        "kept": "Conservation de la preuve",
        "kept_ended": "au moins 3 ans après la fin du consentement, soit jusqu'au {day} au moins",
        "kept_active": "au moins 3 ans après la fin du consentement\u00a0: jusqu'au {day} au moins"
        " s'il prend fin à son échéance",
        ConsentScope.PROSPECTING: "démarchage téléphonique",
        ConsentScope.OUT_OF_HOURS: "appels en dehors des jours et heures autorisés",
        ConsentChannel.WEB: "site web",
        ConsentChannel.PHONE: "téléphone",
        ConsentChannel.PAPER: "papier",
        ConsentChannel.EMAIL: "courriel",
        ConsentChannel.SMS: "SMS",
        ConsentChannel.OTHER: "autre",
    },
    "en": {
        "title": "Receipt of consent to telephone prospecting",
        "number": "Number",
        "companies": "Company",
        "every_company": "every company",
        "issued": "Issued (state as of)",
        "free": "Given free of charge to the line's holder, without creating an account.",
        "zone": "Dates and times in French legal time (Europe/Paris).",
        "count": "Consents recorded",
        "none": "No consent recorded for this number.",
        "consent": "Consent {n} of {total} (record no. {id})",
        "company": "Company",
        "scope": "Scope",
        "given_by": "Given by",
        "holder": "the line's holder",
        "collected_by": "Collected by",
        "channel": "Channel",
        "covers": "Products or services",
        "given_at": "Given on",
        "expires": "Expires",
        "source": "Source",
        "proof": "Proof",
        "proof_file": "Proof file",
        "unknown": "not recorded",
        "state": "State",
        "active": "active",
        "upcoming": "not yet in force",
        "expired": "expired on {at}",
        "revoked": "revoked at the callee's request on {at}",
        "withdrawn": "withdrawn by voice during a call on {at}",
        "opted_out": "ended by an opt-out on {at}: entry \u201c{source}\u201d ({whom})",
        "opt_out_all": "every company",
        "opt_out_one": "this company",
        "removed": "removed since {at}",
        "kept": "Proof kept",
        "kept_ended": "at least 3 years after the consent ended, that is until {day} at least",
        "kept_active": "at least 3 years after the consent ends: until {day} at least"
        " if it ends when it expires",
        ConsentScope.PROSPECTING: "telephone prospecting",
        ConsentScope.OUT_OF_HOURS: "calls outside the permitted days and hours",
        ConsentChannel.WEB: "website",
        ConsentChannel.PHONE: "telephone",
        ConsentChannel.PAPER: "paper",
        ConsentChannel.EMAIL: "email",
        ConsentChannel.SMS: "SMS",
        ConsentChannel.OTHER: "other",
    },
}

_TEXT_WIDTH = 100

Row = tuple[str, str, str]  # (key, label, value): the key lets the HTML style a row


@dataclass(frozen=True, slots=True)
class _Section:
    heading: str
    state: str  # active, upcoming, expired, revoked, withdrawn, opted_out
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class _Document:
    lang: str
    title: str
    callee: str
    header: tuple[Row, ...]
    notes: tuple[str, ...]
    sections: tuple[_Section, ...]
    empty: str | None  # the "no consent" sentence, when there is none


async def consent_receipt(
    store: Store,
    config: Config,
    callee: str,
    company: str | None,
    fmt: str,
    now: datetime,
    lang: str = "fr",
) -> tuple[bytes, str]:
    """The receipt of every consent of ``callee`` (E.164) to ``company`` (None: to every
    company), as of ``now``, as ``fmt`` ("text", "html" or "pdf"): (document, media type)."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if lang not in _LABELS:
        raise ValueError(f"language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    records = await store.consents(company, callee)
    entries = [entry async for entry in store.oppositions(callee, None)]
    document = _document(config, callee, company, now, lang, records, entries)
    if fmt == "text":
        body = _render_text(document).encode()
    elif fmt == "html":
        body = _render_html(document).encode()
    else:
        body = await asyncio.to_thread(_render_pdf, document, now)  # seconds for many
    return body, MEDIA_TYPES[fmt]


# ------------------------------------------------------------------ what the receipt says


def _document(
    config: Config,
    callee: str,
    company: str | None,
    now: datetime,
    lang: str,
    records: list[ConsentRecord],
    entries: list[OppositionRecord],
) -> _Document:
    t = _LABELS[lang]
    header = (
        ("number", t["number"], callee),
        ("companies", t["companies"],
         _company_text(config, company) if company else t["every_company"]),
        ("issued", t["issued"], local_text(now)),
        ("count", t["count"], str(len(records))),
    )  # fmt: skip
    ordered = sorted(records, key=lambda r: (r.consent.given_at, r.id))
    sections = tuple(
        _section(config, record, entries, now, t, n, len(ordered))
        for n, record in enumerate(ordered, 1)
    )
    return _Document(
        lang=lang,
        title=t["title"],
        callee=callee,
        header=header,
        notes=(t["free"], t["zone"]),
        sections=sections,
        empty=None if records else t["none"],
    )


def _section(
    config: Config,
    record: ConsentRecord,
    entries: list[OppositionRecord],
    now: datetime,
    t: dict[str, str],
    n: int,
    total: int,
) -> _Section:
    c = record.consent
    expiry = consent_expiry(c, config.rules.consent_max_age_days)
    state, ended, state_text = _state(record, entries, expiry, now, t)
    end = ended or expiry
    kept = t["kept_active" if ended is None else "kept_ended"].format(day=_retention_day(end))
    unknown = t["unknown"]
    rows: list[Row] = [
        ("company", t["company"], _company_text(config, record.company)),
        ("scope", t["scope"], t.get(c.scope, c.scope.value)),
        ("given_by", t["given_by"], _clean(c.given_by) or t["holder"]),
        ("collected_by", t["collected_by"], _clean(c.collected_by) or unknown),
        ("channel", t["channel"], t.get(c.channel, c.channel.value) if c.channel else unknown),
        ("covers", t["covers"], _clean(c.covers) or unknown),
        ("given_at", t["given_at"], local_text(c.given_at)),
        ("expires", t["expires"], local_text(expiry)),
        ("source", t["source"], _clean(c.source) or unknown),
    ]
    if c.proof or not (c.proof_name or c.proof_sha256):
        rows.append(("proof", t["proof"], _clean(c.proof) or unknown))
    if c.proof_name or c.proof_sha256:
        name = _clean(c.proof_name) or unknown
        digest = _clean(c.proof_sha256) or unknown
        rows.append(("proof_file", t["proof_file"], f"{name}\nSHA-256 {digest}"))
    rows.append(("state", t["state"], state_text))
    rows.append(("kept", t["kept"], kept))
    return _Section(t["consent"].format(n=n, total=total, id=record.id), state, tuple(rows))


def consent_state(
    record: ConsentRecord, oppositions: list[OppositionRecord], expiry: datetime, now: datetime
) -> tuple[str, datetime | None]:
    """(active | upcoming | revoked | expired, when it ended) as of ``now``: whatever ended
    the consent first, a revocation or an expiry at ``now`` included. The receipt and the
    console's callee page both say what this says."""
    consent = record.consent
    revoked = consent_revoked_at(consent, _opt_outs(record, oppositions))
    if revoked is not None and revoked <= now and revoked <= expiry:
        return "revoked", revoked
    if expiry <= now:
        return "expired", expiry
    if consent.given_at > now:
        return "upcoming", None
    return "active", None


def _opt_outs(record: ConsentRecord, oppositions: list[OppositionRecord]) -> list[Opposition]:
    """The entries that revoke this company's consents: its own and every company's
    (RULES-FR §4)."""
    return [
        Opposition(o.source, o.added_at, o.company, o.removed_at)
        for o in oppositions if o.company is None or o.company == record.company
    ]  # fmt: skip


def _state(
    record: ConsentRecord,
    entries: list[OppositionRecord],
    expiry: datetime,
    now: datetime,
    t: dict[str, str],
) -> tuple[str, datetime | None, str]:
    """(state, when it ended or None, the words for it) as of ``now``; a revocation is
    named by what made it: the consent's own, or the opt-out entry."""
    c = record.consent
    state, ended = consent_state(record, entries, expiry, now)
    if state == "revoked":
        assert ended is not None
        at = local_text(ended)
        if ended == c.revoked_at:
            # A withdrawal also lists the number at the same instant: the consent's own
            # revocation says how, so it wins the tie.
            how = "withdrawn" if c.revoked_how == "withdrawn" else "revoked"
            return how, ended, t[how].format(at=at)
        applicable = [e for e in entries if e.company is None or e.company == record.company]
        entry = min((e for e in applicable if e.added_at == ended), key=lambda e: e.id)
        whom = t["opt_out_all"] if entry.company is None else t["opt_out_one"]
        if entry.removed_at is not None:
            whom += ", " + t["removed"].format(at=local_text(entry.removed_at))
        text = t["opted_out"].format(at=at, source=_clean(entry.source), whom=whom)
        return "opted_out", ended, text
    if state == "expired":
        return state, ended, t["expired"].format(at=local_text(ended))
    return state, ended, t[state]


def _company_text(config: Config, company_id: str) -> str:
    configured = config.companies.get(company_id)
    if configured is None or configured.name == company_id:
        return company_id
    return f"{configured.name} ({company_id})"


def _retention_day(end: datetime) -> str:
    """The local day 3 years after ``end``; 29 February gives 1 March, never earlier."""
    local = end.astimezone(DEFAULT_ZONE)
    try:
        later = local.replace(year=local.year + RETENTION_YEARS)
    except ValueError:
        later = local.replace(year=local.year + RETENTION_YEARS, day=28) + timedelta(days=1)
    return f"{later:%Y-%m-%d}"


def _clean(text: str | None) -> str | None:
    """Text as the callee or an agent typed it, without control or format characters: the
    text receipt goes to terminals, where an escape sequence could rewrite what is shown,
    and a bidirectional override would reorder a proof in every format."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(
        ch if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") else "\ufffd"
        for ch in text
    ).strip()


# ------------------------------------------------------------------ the three formats


def _render_text(document: _Document) -> str:
    lines = [document.title, "=" * len(document.title), ""]
    lines += _text_rows(document.header, indent="")
    lines += ["", *document.notes]
    if document.empty:
        lines += ["", document.empty]
    for section in document.sections:
        lines += ["", section.heading, "-" * len(section.heading)]
        lines += _text_rows(section.rows, indent="  ")
    return "\n".join(lines) + "\n"


def _text_rows(rows: tuple[Row, ...], indent: str) -> list[str]:
    width = max(len(label) for _, label, _ in rows) + 2
    room = max(40, _TEXT_WIDTH - len(indent) - width)
    out = []
    for _, label, value in rows:
        # A digest or a reference must stay whole to be compared: never cut a word.
        lines = [line for paragraph in value.split("\n") for line in _wrap(paragraph, room)]
        out.append(f"{indent}{label:<{width}}{lines[0]}")
        out += [f"{indent}{'':<{width}}{line}" for line in lines[1:]]
    return out


def _wrap(paragraph: str, room: int) -> list[str]:
    return textwrap.wrap(paragraph, room, break_long_words=False, break_on_hyphens=False) or [""]


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    # Autoescape everywhere, whatever the template's name: proofs and names are typed by
    # callees, agents and partners, and must never become markup.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("callgate", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render_html(document: _Document) -> str:
    return _templates().get_template("receipt.html").render(doc=document)


def _render_pdf(document: _Document, now: datetime) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    # Reproducible bytes: the same records at the same instant give the same file.
    pdf.set_creation_date(now)
    pdf.set_title(document.title)
    pdf.set_lang(document.lang)
    pdf.set_creator("callgate")
    pdf.set_auto_page_break(True, margin=15)
    family, unicode_font = _pdf_font(pdf)
    pdf.add_page()

    def fit(text: str) -> str:
        return _fit_unicode(pdf, text) if unicode_font else _fit_latin1(text)

    def table(rows: tuple[Row, ...]) -> None:
        bold = FontFace(emphasis="BOLD")
        # Smaller, so that a SHA-256 fits on one line and can be copied whole.
        digest = FontFace(size_pt=8)
        with pdf.table(
            col_widths=(32, 68), first_row_as_headings=False, text_align="LEFT",
            borders_layout="HORIZONTAL_LINES", line_height=5,
        ) as grid:  # fmt: skip
            for key, label, value in rows:
                row = grid.row()
                row.cell(fit(label), style=bold)
                row.cell(fit(value), style=digest if key == "proof_file" else None)

    pdf.set_font(family, "B", 15)
    pdf.multi_cell(0, 8, fit(document.title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(family, "", 10)
    table(document.header)
    pdf.ln(2)
    pdf.set_font(family, "", 9)
    for note in document.notes:
        pdf.multi_cell(0, 5, fit(note), new_x="LMARGIN", new_y="NEXT")
    if document.empty:
        pdf.ln(4)
        pdf.set_font(family, "B", 11)
        pdf.multi_cell(0, 6, fit(document.empty), new_x="LMARGIN", new_y="NEXT")
    for section in document.sections:
        pdf.ln(4)
        pdf.set_font(family, "B", 12)
        pdf.multi_cell(0, 7, fit(section.heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 10)
        table(section.rows)
    return bytes(pdf.output())


def _pdf_font(pdf: FPDF) -> tuple[str, bool]:
    """(font family, whether it is Unicode): a TrueType font if one is installed, else
    the core Helvetica, whose latin-1 the text is folded into."""
    for regular, bold in _FONTS:
        if Path(regular).is_file():
            pdf.add_font("receipt", "", regular)
            pdf.add_font("receipt", "B", bold if Path(bold).is_file() else regular)
            return "receipt", True
    return "helvetica", False


def _fit_unicode(pdf: FPDF, text: str) -> str:
    """Characters the font lacks (an emoji, say) become "?" rather than an empty box."""
    cmap = pdf.current_font.cmap  # type: ignore[union-attr]
    return "".join(ch if ch == "\n" or ord(ch) in cmap else "?" for ch in text)


_LATIN1_FOLDS = str.maketrans({
    "œ": "oe", "Œ": "OE", "€": "EUR", "‘": "'", "’": "'", "“": '"', "”": '"',
    "–": "-", "—": "-", "…": "...", "\u202f": " ", "\ufffd": "?",
})  # fmt: skip


def _fit_latin1(text: str) -> str:
    """The core fonts raise on anything outside latin-1: fold what has a plain spelling,
    drop accents latin-1 lacks, and mark the rest with "?"."""
    out = []
    for ch in text.translate(_LATIN1_FOLDS):
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or "?")
    return "".join(out)
