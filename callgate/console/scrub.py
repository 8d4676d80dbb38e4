"""The scrub page: a call list uploaded, judged by the existing scrub, summed up, and given
back as a CSV with each number's verdict.

The upload is streamed to a temporary file (bounded), then a background job reads it a
line at a time, so that a list of a million lines costs a file on disk, not memory. Jobs
live in memory, belong to the session that made them, and their files go after an hour.

Reading a list: one entry per line. With a column named, the first line is the header
and the column is found by its name (case and spaces ignored); without one, the first
column of each line is the number, and a first line without any digit is taken for a
header and skipped (one with digits that is no number is judged: DEST_INVALID). The
separator is the first line's commonest of ``;``, ``,`` and tab (none: the whole line).
Quoted fields are read as CSV, but a field may not span lines.

Its encoding: a file that starts with a UTF-16 byte order mark (Excel's "Unicode text") is
read as UTF-16, decoded as it streams; otherwise each line is read as UTF-8 (a UTF-8 BOM
dropped) and, when a line is not valid UTF-8, as Windows-1252 (the Latin-1 that Excel
writes as "CSV" on a French Windows). The choice is made line by line, so that a list
joined from files of both kinds reads right.

The result CSV is meant to be opened in a spreadsheet: a cell a spreadsheet would run as a
formula gets a leading ``'``, and control characters are dropped (see ``safe_cell``).

One session judges one list at a time, and the app at most MAX_RUNNING at once: a session
cannot take every place.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from callgate.api import CONFIG, SCRUB_WORKERS, STORE, first_line
from callgate.console.render import error_page, render, tr
from callgate.inputs import InvalidInput, company_id
from callgate.model import Purpose
from callgate.scrub import MAX_LINE, scrub

__all__ = [
    "SCRUBS",
    "TIME_CODES",
    "Message",
    "ScrubJob",
    "ScrubJobs",
    "download_name",
    "list_numbers",
    "routes",
    "safe_cell",
]

log = logging.getLogger("callgate.console")

routes = web.RouteTableDef()

MAX_UPLOAD = 200 << 20  # bytes of an uploaded list
MAX_RUNNING = 4  # jobs judging at once (uploads being received included)
MAX_KEPT = 20  # jobs remembered; past it the oldest finished one goes
KEEP_SECONDS = 3600  # a finished job's files are removed after this
MAX_FIELD = 200  # characters of the column name, the company, the purpose
# The reasons that time alone lifts: the summary says when those numbers pass.
TIME_CODES = ("HOURS_OUTSIDE", "DAY_WEEKEND", "DAY_HOLIDAY", "CAP_30_DAYS", "REFUSAL_COOLDOWN")
RESULT_COLUMNS = ("number", "verdict", "reasons", "retry_after")
_SEPARATORS = (";", ",", "\t")
CHUNK = 1 << 16  # bytes of a UTF-16 list decoded at once
# Control characters a cell of the result loses: all but tab and CR, which a spreadsheet
# reads as the start of a formula and are neutralised instead (see safe_cell).
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f-\x9f]")
_PHONE_DIGITS = re.compile(r"[\d ]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class Message:
    """A message for a person, in both of the console's languages."""

    fr: str
    en: str


@dataclass
class ScrubJob:
    """One list being judged, or judged."""

    id: str
    owner: str  # the session's id
    company: str
    purpose: Purpose | None
    upload: Path
    result: Path
    size: int  # bytes uploaded
    read: int = 0  # bytes judged so far
    total: int = 0  # numbers judged
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Per time-lifted reason: the earliest and latest retry_after of the refused numbers.
    passes: dict[str, list[str]] = field(default_factory=dict)
    later: int = 0  # refused numbers that time alone lets through
    error: Message | None = None
    finished_at: float | None = None  # time.monotonic()
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def count(self, result: dict[str, Any]) -> None:
        self.total += 1
        if result["verdict"] != "reject":
            return
        self.refused += 1
        self.reasons.update(result["reasons"])
        retry = result["retry_after"]
        if retry is None:
            return
        self.later += 1
        for code in result["reasons"]:
            if code in TIME_CODES:
                span = self.passes.setdefault(code, [retry, retry])
                # ISO instants in UTC compare as text.
                span[0], span[1] = min(span[0], retry), max(span[1], retry)


class ScrubJobs:
    """The app's scrub jobs and their folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.max_upload = MAX_UPLOAD
        self.jobs: dict[str, ScrubJob] = {}
        self.uploading: Counter[str] = Counter()  # uploads being received, per session

    def busy(self) -> bool:
        """Every place is taken (uploads being received included)."""
        running = sum(1 for job in self.jobs.values() if job.running)
        return running + self.uploading.total() >= MAX_RUNNING

    def busy_for(self, owner: str) -> bool:
        """The session already has a list being received or judged."""
        return self.uploading[owner] > 0 or self.running_of(owner) is not None

    def running_of(self, owner: str) -> ScrubJob | None:
        """The session's list being judged, if any."""
        return next((j for j in self.jobs.values() if j.owner == owner and j.running), None)

    def get(self, job_id: str, owner: str) -> ScrubJob | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def add(self, job: ScrubJob) -> None:
        self.sweep()
        self.jobs[job.id] = job
        finished = sorted((j for j in self.jobs.values() if not j.running),
                          key=lambda j: j.finished_at or 0.0)  # fmt: skip
        while len(self.jobs) > MAX_KEPT and finished:
            self.drop(finished.pop(0))

    def sweep(self) -> None:
        """Forgets the jobs finished more than an hour ago, and their files."""
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.finished_at is not None and now - job.finished_at > KEEP_SECONDS:
                self.drop(job)

    def drop(self, job: ScrubJob) -> None:
        self.jobs.pop(job.id, None)
        if job.task is not None:
            job.task.cancel()
        for path in (job.upload, job.result):
            path.unlink(missing_ok=True)

    async def close(self) -> None:
        tasks = [job.task for job in self.jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.jobs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


SCRUBS: web.AppKey[ScrubJobs] = web.AppKey("console_scrubs", ScrubJobs)


def now() -> datetime:
    """The instant a list is judged at (a test sets its own)."""
    return datetime.now(UTC)


async def start(app: web.Application) -> None:
    folder = Path(tempfile.mkdtemp(prefix="callgate-scrub-"))
    app[SCRUBS] = ScrubJobs(folder)
    app[_SWEEPER] = asyncio.create_task(_sweep_now_and_then(app[SCRUBS]), name="scrub-sweeper")


async def stop(app: web.Application) -> None:
    if _SWEEPER in app:
        app[_SWEEPER].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[_SWEEPER]
    if SCRUBS in app:
        await app[SCRUBS].close()


_SWEEPER: web.AppKey[asyncio.Task[None]] = web.AppKey("console_scrub_sweeper")


async def _sweep_now_and_then(jobs: ScrubJobs) -> None:
    while True:
        await asyncio.sleep(60)
        jobs.sweep()


# ---------------------------------------------------------------- pages


@routes.get("/console/scrub")
async def scrub_form(request: web.Request) -> web.Response:
    return _form(request)


@routes.post("/console/scrub")
async def scrub_upload(request: web.Request) -> web.StreamResponse:
    """The list in, to a file; a job judges it; on to the job's page."""
    jobs = request.app[SCRUBS]
    owner = request["session"].id
    if jobs.busy_for(owner):
        return _form(request, error=tr(
            request, "Votre liste précédente est encore en cours de contrôle : attendez sa fin.",
            "Your previous list is still being checked: wait for it to finish.",
        ), previous=jobs.running_of(owner), status=429)  # fmt: skip
    if jobs.busy():
        message = tr(request, "Trop de contrôles en cours : réessayez dans un moment.",
                      "Too many scrubs under way: try again in a moment.")  # fmt: skip
        return _form(request, error=message, status=429)
    jobs.uploading[owner] += 1
    job_id = secrets.token_urlsafe(12)
    upload = jobs.folder / f"{job_id}.upload"
    try:
        fields, size = await _receive(request, upload, jobs.max_upload)
    except _Refused as refused:
        upload.unlink(missing_ok=True)
        return _form(request, error=refused.message(request), status=refused.status)
    finally:
        jobs.uploading[owner] -= 1
        if jobs.uploading[owner] <= 0:
            del jobs.uploading[owner]
    try:
        company, purpose = _call_fields(request, fields)
    except _Refused as refused:
        upload.unlink(missing_ok=True)
        return _form(request, error=refused.message(request), status=refused.status)
    job = ScrubJob(
        job_id, owner, company, purpose, upload, jobs.folder / f"{job_id}.csv", size,
    )  # fmt: skip
    jobs.add(job)
    job.task = asyncio.create_task(_run(request.app, job, fields.get("column", "").strip()))
    raise web.HTTPSeeOther(f"/console/scrub/{job_id}")


@routes.get("/console/scrub/{job}")
async def scrub_job(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request)
    rows = [
        (code, count, job.passes.get(code))
        for code, count in sorted(job.reasons.items(), key=lambda item: (-item[1], item[0]))
    ]
    return render(request, "console/scrub_job.html", {
        "job": job, "rows": rows, "time_codes": TIME_CODES,
        "percent": min(100, job.read * 100 // job.size) if job.size else 100,
    })  # fmt: skip


@routes.get("/console/scrub/{job}/download")
async def scrub_download(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    if job is None or job.running or job.error is not None:
        return _not_found(request)
    return web.FileResponse(job.result, headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": download_name(f"scrub-{job.company}-{job.id}.csv"),
    })  # fmt: skip


def download_name(name: str) -> str:
    """A Content-Disposition for ``name``: an ASCII name of [A-Za-z0-9._-] (others become
    ``_``, so that nothing can end the header's quotes), and the name in UTF-8 too when it
    holds letters that ASCII lacks."""
    plain = _UNSAFE_NAME.sub("_", name)
    header = f'attachment; filename="{plain}"'
    readable = re.sub(r"[^\w.-]", "_", name)
    if readable != plain:
        header += "; filename*=UTF-8''" + quote(readable, safe="")
    return header


def _call_fields(request: web.Request, fields: dict[str, str]) -> tuple[str, Purpose | None]:
    """The form's company and purpose, or _Refused naming what is wrong."""
    config = request.app[CONFIG]
    given = fields.get("company") or None
    try:
        company = company_id(config, given)
    except InvalidInput:
        known = ", ".join(config.companies) or "-"
        shown = (given or "")[:60]
        if given is None:
            raise _Refused(400, f"Choisissez une entreprise (connues : {known}).",
                           f"Choose a company (known: {known}).") from None  # fmt: skip
        raise _Refused(400, f"Entreprise inconnue « {shown} » (connues : {known}).",
                       f"Unknown company “{shown}” (known: {known}).") from None  # fmt: skip
    wanted = fields.get("purpose", "")
    if not wanted:
        return company, None
    try:
        return company, Purpose(wanted)
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        shown = wanted[:60]
        raise _Refused(400, f"Objet d'appel inconnu « {shown} » (connus : {known}).",
                       f"Unknown call purpose “{shown}” (known: {known}).") from None  # fmt: skip


def _job(request: web.Request) -> ScrubJob | None:
    jobs = request.app[SCRUBS]
    jobs.sweep()
    return jobs.get(request.match_info["job"], request["session"].id)


def _form(
    request: web.Request, *, error: str | None = None, previous: ScrubJob | None = None,
    status: int = 200,
) -> web.Response:  # fmt: skip
    config = request.app[CONFIG]
    return render(request, "console/scrub.html", {
        "companies": list(config.companies), "purposes": [p.value for p in Purpose],
        "default_purpose": config.rules.default_purpose.value, "error": error,
        "previous": previous, "max_upload_mb": request.app[SCRUBS].max_upload // (1 << 20),
    }, status)  # fmt: skip


def _not_found(request: web.Request) -> web.Response:
    message = tr(request, "Ce contrôle de liste n'existe pas, ou plus.",
                  "This scrub does not exist, or no longer does.")  # fmt: skip
    return error_page(request, 404, message)


# ---------------------------------------------------------------- the upload


class _Refused(Exception):
    def __init__(self, status: int, french: str, english: str) -> None:
        super().__init__(english)
        self.status, self.french, self.english = status, french, english

    def message(self, request: web.Request) -> str:
        return tr(request, self.french, self.english)


async def _receive(request: web.Request, path: Path, limit: int) -> tuple[dict[str, str], int]:
    """The form's fields, and the file written to ``path`` (its size), read as it comes."""
    if request.content_type != "multipart/form-data":
        raise _Refused(400, "Envoyez le formulaire (multipart/form-data).",
                       "Send the form (multipart/form-data).")  # fmt: skip
    fields: dict[str, str] = {}
    size = -1
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and size < 0:
                size = await _save(part, path, limit)
            elif part.name in ("column", "company", "purpose"):
                fields[part.name] = await _small_field(part)
            else:
                await part.release()
    except _Refused:
        raise
    except Exception as error:  # a body cut short or malformed: the client's fault
        log.info("scrub upload unreadable: %s", first_line(error))
        raise _Refused(
            400, "Le fichier n'a pas pu être lu.", "The file could not be read."
        ) from None
    if size < 0:
        raise _Refused(400, "Choisissez un fichier.", "Choose a file.")
    return fields, size


async def _save(part: BodyPartReader, path: Path, limit: int) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > limit:
                mb = limit // (1 << 20) or f"{limit / (1 << 20):.3f}"
                raise _Refused(413, f"Fichier trop gros : {mb} Mo au plus.",
                               f"File too large: {mb} MB at most.")  # fmt: skip
            out.write(chunk)
    return size


async def _small_field(part: BodyPartReader) -> str:
    value = bytearray()
    while chunk := await part.read_chunk(1024):
        value += chunk
        if len(value) > MAX_FIELD * 4:
            raise _Refused(400, "Champ trop long.", "A field is too long.")
    return value.decode("utf-8", "replace")[:MAX_FIELD]


# ---------------------------------------------------------------- the job


async def _run(app: web.Application, job: ScrubJob, column: str) -> None:
    """Judges the uploaded list, writing the result CSV and counting as it goes."""
    config = app[CONFIG]
    caller = config.companies[job.company].first_number
    try:
        with job.upload.open("rb") as source, job.result.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(RESULT_COLUMNS)
            numbers = list_numbers(source, column, job)
            results = scrub(
                app[STORE], config, numbers, caller=caller, company=job.company,
                purpose=job.purpose, now=now(), workers=app[SCRUB_WORKERS],
            )  # fmt: skip
            async with contextlib.aclosing(results):
                async for result in results:
                    job.count(result)
                    writer.writerow(_row(result))
    except _NoColumn as error:
        job.error = error.message
    except asyncio.CancelledError:
        raise
    except Exception as error:  # the store failed: the page says so, the log too
        log.warning("scrub %s stopped: %s", job.id, first_line(error))
        job.error = Message(
            "Le stockage n'a pas répondu : le contrôle s'est arrêté. Réessayez.",
            "The store did not answer: the scrub stopped. Try again.",
        )
    finally:
        job.finished_at = time.monotonic()
        job.read = job.size
        job.upload.unlink(missing_ok=True)


def _row(result: dict[str, Any]) -> tuple[str, str, str, str]:
    reasons = " ".join(result["reasons"])
    return safe_cell(result["to"]), result["verdict"], reasons, result["retry_after"] or ""


def safe_cell(text: str) -> str:
    """``text`` as a spreadsheet cell that runs nothing: control characters dropped, and a
    ``'`` before a cell a spreadsheet would take for a formula (starting with ``=``, ``@``,
    tab or CR, or with ``+`` or ``-`` not followed by a phone number's digits and spaces:
    "+33612345678" is data and stays as it is)."""
    text = _CONTROLS.sub("", text)
    start = text.lstrip(" ")
    if start[:1] in ("=", "@", "\t", "\r"):
        return "'" + text
    if start[:1] in ("+", "-") and not _PHONE_DIGITS.fullmatch(start[1:]):
        return "'" + text
    return text


class _NoColumn(Exception):
    def __init__(self, message: Message) -> None:
        super().__init__(message.en)
        self.message = message


async def list_numbers(source: BinaryIO, column: str, job: ScrubJob) -> AsyncIterator[str]:
    """The list's numbers, in order (see the module's docstring for how a line is read)."""
    lines = _lines(source, job)
    first = next(lines, None)
    if first is None:
        return
    separator = max(_SEPARATORS, key=first.count) if any(s in first for s in _SEPARATORS) else ""
    if column:
        header = [name.strip().casefold() for name in _fields(first, separator)]
        wanted = column.strip().casefold()
        if wanted not in header:
            shown = ", ".join(name for name in header if name)[:300] or "-"
            raise _NoColumn(Message(
                f"Aucune colonne nommée « {column[:60]} » (colonnes : {shown}).",
                f"No column named “{column[:60]}” (columns: {shown}).",
            ))  # fmt: skip
        index = header.index(wanted)
        first = None  # the header is no number
    else:
        index = 0
        if not any(ch.isdigit() for ch in first):
            first = None  # a header: "phone", "numéro"
    if first is not None:
        yield _number(first, separator, index)
    for count, line in enumerate(lines):
        if line.strip():
            yield _number(line, separator, index)
        if count % 5000 == 0:
            await asyncio.sleep(0)  # a file read runs without a wait: let the API answer


_TOO_LONG = f"(a line longer than {MAX_LINE} bytes)"


def _lines(source: BinaryIO, job: ScrubJob) -> Iterator[str]:
    """The file's lines as text (BOM and line ends dropped), in its encoding (see the
    module's docstring); a line over MAX_LINE bytes (characters, in UTF-16) comes out as a
    text that names it and is no number."""
    head = source.read(2)
    source.seek(0)
    if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return _utf16_lines(source, job)
    return _byte_lines(source, job)


def _byte_lines(source: BinaryIO, job: ScrubJob) -> Iterator[str]:
    for raw in iter(lambda: source.readline(MAX_LINE + 1), b""):
        job.read += len(raw)
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while (rest := source.readline(1 << 16)) and not rest.endswith(b"\n"):
                job.read += len(rest)
            job.read += len(rest)
            yield _TOO_LONG
            continue
        yield _decoded(raw).lstrip("\ufeff").rstrip("\r\n")


def _decoded(raw: bytes) -> str:
    """A line in UTF-8 or, when it is not valid UTF-8, in Windows-1252."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")  # five bytes have no character there


def _utf16_lines(source: BinaryIO, job: ScrubJob) -> Iterator[str]:
    """The lines of a UTF-16 file (its BOM tells the byte order), decoded as it streams:
    a line's end is a character there, not a byte."""
    decoder = codecs.getincrementaldecoder("utf-16")("replace")
    line: list[str] = []  # the line being read, in pieces
    length = 0  # its characters; -1: over MAX_LINE, its rest dropped
    while True:
        chunk = source.read(CHUNK)
        job.read += len(chunk)
        *ends, tail = decoder.decode(chunk, final=not chunk).split("\n")
        for piece in ends:
            yield _utf16_line(line, length, piece)
            line, length = [], 0
        if length >= 0:
            line.append(tail)
            length += len(tail)
            if length > MAX_LINE:
                line, length = [], -1
        if not chunk:
            break
    if length:
        yield _utf16_line(line, length, "")


def _utf16_line(pieces: list[str], length: int, last: str) -> str:
    if length < 0 or length + len(last) > MAX_LINE:
        return _TOO_LONG
    return ("".join(pieces) + last).lstrip("\ufeff").rstrip("\r")


def _fields(line: str, separator: str) -> list[str]:
    if not separator:
        return [line]
    return next(csv.reader(io.StringIO(line), delimiter=separator), [""])


def _number(line: str, separator: str, index: int) -> str:
    """The line's number; a line too long to read says so, whatever the column."""
    return line if line == _TOO_LONG else _field(line, separator, index)


def _field(line: str, separator: str, index: int) -> str:
    fields = _fields(line, separator)
    return fields[index].strip() if index < len(fields) else ""
