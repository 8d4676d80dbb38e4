"""Who may open the console: a login with an API token, a session cookie, CSRF checks and
the headers every console answer carries.

A session lives in memory: a restart of `callgate api` logs everyone out. It lasts
``[api] session_minutes`` from the login, whatever is done meanwhile. Its cookie is
HttpOnly, SameSite=Strict, limited to /console, and Secure under TLS (or with
``[api] secure_cookies`` behind a TLS proxy). A POST needs the session's CSRF token, as
the form field ``csrf`` (the first field of a multipart form) or the header
``X-CSRF-Token``; the login form, before any session, uses a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from callgate.console.render import render, tr

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSIONS",
    "SESSION_COOKIE",
    "THROTTLE",
    "LoginThrottle",
    "Session",
    "Sessions",
    "safe_next",
    "setup",
]

log = logging.getLogger("callgate.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "callgate_session"
LOGIN_CSRF_COOKIE = "callgate_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
HOME, LOGIN, LOGOUT = "/console/", "/console/login", "/console/logout"
STATIC = "/console/static/"
COOKIE_PATH = "/console"
LOGIN_FORM_SECONDS = 3600  # the login form's CSRF cookie
MAX_SESSIONS = 10_000  # past it, the oldest session ends
MAX_TOKEN = 4096  # characters of a token field looked at; no token is longer
MAX_CSRF = 256  # bytes of a multipart form's csrf field
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser. ``id`` is the hash of its cookie, never the cookie itself."""

    id: str
    scopes: frozenset[str]
    csrf: str
    expires_at: float  # time.time() at which it ends


@dataclass(slots=True)
class Sessions:
    """The live sessions, by the hash of their cookie; the oldest go first at the cap."""

    minutes: int
    clock: Callable[[], float] = time.time
    cap: int = MAX_SESSIONS
    _live: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def create(self, scopes: frozenset[str]) -> tuple[str, Session]:
        """A new session: (the cookie's value, the session)."""
        self._drop_expired()
        cookie = secrets.token_urlsafe(32)
        session = Session(
            _digest(cookie), scopes, secrets.token_urlsafe(32), self.clock() + self.minutes * 60
        )
        self._live[session.id] = session
        while len(self._live) > self.cap:
            self._live.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session of ``cookie``, if any."""
        if not cookie or len(cookie) > MAX_CSRF:
            return None
        key = _digest(cookie)
        session = self._live.get(key)
        if session is not None and session.expires_at <= self.clock():
            del self._live[key]
            return None
        return session

    def end(self, cookie: str | None) -> None:
        if cookie:
            self._live.pop(_digest(cookie), None)

    def __len__(self) -> int:
        return len(self._live)

    def _drop_expired(self) -> None:
        # Every session lasts as long: the oldest are the first to expire.
        now = self.clock()
        while self._live:
            oldest = next(iter(self._live.values()))
            if oldest.expires_at > now:
                return
            self._live.popitem(last=False)


@dataclass(slots=True)
class LoginThrottle:
    """Failed logins per client address: past ``limit`` within ``window`` seconds, the
    address must wait (a token cannot be guessed a thousand times a second)."""

    limit: int = 10
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    cap: int = 10_000  # addresses remembered; the least recent go first
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def wait(self, address: str) -> float:
        """Seconds ``address`` must wait before its next attempt (0: it may try)."""
        failures = self._recent(address)
        if len(failures) < self.limit:
            return 0.0
        return max(1.0, failures[-self.limit] + self.window - self.clock())

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        failures.append(self.clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self.cap:
            self._failures.popitem(last=False)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures


SESSIONS: web.AppKey[Sessions] = web.AppKey("console_sessions", Sessions)
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("console_login_throttle", LoginThrottle)


def setup(app: web.Application) -> None:
    """The session store, the login and logout handlers, the guard of every console path
    and the headers of every console answer."""
    from callgate.api import CONFIG

    app[SESSIONS] = Sessions(app[CONFIG].api.session_minutes)
    app[THROTTLE] = LoginThrottle()
    # First: the guard sees each console request before anything else does.
    app.middlewares.insert(0, _guard)
    app.on_response_prepare.append(_headers)
    app.router.add_get(LOGIN, login_form)
    app.router.add_post(LOGIN, login)
    app.router.add_post(LOGOUT, logout)


def is_console(path: str) -> bool:
    return path == COOKIE_PATH or path.startswith(COOKIE_PATH + "/")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    # A signal, not the middleware: errors, static files and streamed answers get them too.
    if is_console(request.path):
        # A handler's own policy stays: one that is stricter still, or that allows one
        # style block by its hash (the printable receipt).
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)


# ---------------------------------------------------------------- the guard


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not is_console(path) or path == LOGIN or path.startswith(STATIC):
        return await handler(request)
    session = request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return _see_other(f"{LOGIN}?next={quote(str(request.rel_url), safe='/')}")
    if "read" not in session.scopes:
        return _refused(request, 403, "Ce jeton n'a pas le droit de lecture.",
                        "This token lacks the 'read' scope.")  # fmt: skip
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, session.csrf):
        return _refused(request, 403, _CSRF_FR, _CSRF_EN)
    with warnings.catch_warnings():  # the pages' contract names it "session", a string
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request["session"] = session
    return await handler(request)


_CSRF_FR = "Jeton de formulaire absent ou erroné : rechargez la page et recommencez."
_CSRF_EN = "The form's security token is missing or wrong: reload the page and try again."


def _refused(request: web.Request, status: int, french: str, english: str) -> web.Response:
    text = tr(request, french, english)
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    """Whether the request carries ``expected``, in its header or its form."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        try:
            async with asyncio.timeout(_stall(request)):
                given = await _form_csrf(request)
        except (TimeoutError, ValueError, RequestPayloadError, HttpProcessingError,
                aiohttp.ClientError, ConnectionError):  # fmt: skip
            return False
    return given is not None and _same(given, expected)


async def _form_csrf(request: web.Request) -> str | None:
    if request.content_type == "application/x-www-form-urlencoded":
        value = (await request.post()).get("csrf")  # the handler reads the same, cached
        return value if isinstance(value, str) else None
    if request.content_type == "multipart/form-data":
        # Only the first part: the handler's own reader goes on from the next, and a
        # large upload is never held in memory here.
        part = await (await request.multipart()).next()
        if not isinstance(part, BodyPartReader) or part.name != "csrf":
            return None
        value = bytearray()
        while chunk := await part.read_chunk(MAX_CSRF):
            value += chunk
            if len(value) > MAX_CSRF:
                return None
        return value.decode("utf-8", "replace")
    return None


def _stall(request: web.Request) -> float:
    from callgate.api import CONFIG

    return request.app[CONFIG].api.stall_timeout


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- login and logout


async def login_form(request: web.Request) -> web.Response:
    """The login form, with a CSRF value in a cookie and in the form alike."""
    return _form(request, safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.StreamResponse:
    """A token in, a session cookie out, then on to ``next``."""
    address = request.remote or "-"
    throttle = request.app[THROTTLE]
    wait = throttle.wait(address)
    if wait:
        response = _form(request, safe_next(request.query.get("next")), "throttled", 429)
        response.headers["Retry-After"] = str(int(wait + 0.999))
        return response
    form = await _login_fields(request)
    target = safe_next(form.get("next"))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not _same(form.get("csrf", ""), cookie):
        return _form(request, target, "csrf", 403)
    token = form.get("token", "")
    scopes = _scopes_of(request, token)
    if scopes is None:
        throttle.failed(address)
        log.info("console: a login with an unknown token from %s", address)
        return _form(request, target, "token", 401)
    if "read" not in scopes:
        return _form(request, target, "scope", 403)
    value, _ = request.app[SESSIONS].create(scopes)
    log.info("console: login from %s (%s)", address, ", ".join(sorted(scopes)))
    response = _see_other(target)
    minutes = request.app[SESSIONS].minutes
    response.set_cookie(SESSION_COOKIE, value, max_age=minutes * 60, **_cookie_flags(request))
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Ends the session (the guard has checked its CSRF token)."""
    request.app[SESSIONS].end(request.cookies.get(SESSION_COOKIE))
    response = _see_other(LOGIN)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


async def _login_fields(request: web.Request) -> dict[str, str]:
    form: dict[str, str] = {}
    with contextlib.suppress(ValueError, RequestPayloadError, HttpProcessingError,
                             aiohttp.ClientError, TimeoutError):  # fmt: skip
        async with asyncio.timeout(_stall(request)):
            posted = await request.post()
        form = {key: value for key, value in posted.items() if isinstance(value, str)}
    return form


def _scopes_of(request: web.Request, token: str) -> frozenset[str] | None:
    from callgate.api import TOKENS

    if not token or len(token) > MAX_TOKEN:
        return None
    return request.app[TOKENS].scopes_of(token)


def _form(
    request: web.Request, target: str, error: str | None = None, status: int = 200
) -> web.Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(csrf) != 43 or not csrf.replace("-", "").replace("_", "").isalnum():
        csrf = secrets.token_urlsafe(32)  # several tabs share one, so it is kept
    context = {"login_csrf": csrf, "next": target, "error": error}
    response = render(request, "console/login.html", context, status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, max_age=LOGIN_FORM_SECONDS,
                        **_cookie_flags(request))  # fmt: skip
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _cookie_flags(request: web.Request) -> dict[str, object]:
    from callgate.api import CONFIG

    secure = request.secure or request.app[CONFIG].api.secure_cookies
    return {"path": COOKIE_PATH, "httponly": True, "samesite": "Strict", "secure": secure}


def safe_next(value: str | None) -> str:
    """``value`` when it is a console page of this site, else the overview: never a
    redirect elsewhere (``//host``, ``https://...``, ``/console/../``)."""
    if not value or len(value) > 2048 or not value.isprintable() or "\\" in value:
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(HOME):
        return HOME
    segments = unquote(parts.path).split("/")
    if any(segment in (".", "..") for segment in segments) or "\\" in unquote(parts.path):
        return HOME
    if parts.path in (LOGIN, LOGOUT):
        return HOME
    return urlunsplit(("", "", parts.path, parts.query, ""))
