"""Small builders for the tests: a config, an instant in a callee's zone, a request."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callgate.config import Config, parse_config
from callgate.model import (
    Attempt,
    CallRequest,
    Consent,
    ConsentScope,
    Contract,
    Decision,
    Facts,
    Opposition,
    Purpose,
)
from callgate.policy import decide

PARIS = ZoneInfo("Europe/Paris")
MARTINIQUE = ZoneInfo("America/Martinique")
REUNION = ZoneInfo("Indian/Reunion")
CAYENNE = ZoneInfo("America/Cayenne")
MAYOTTE = ZoneInfo("Indian/Mayotte")
GUADELOUPE = ZoneInfo("America/Guadeloupe")

METRO_NPV = "+33948000001"
MARTINIQUE_NPV = "+33947700001"
REUNION_NPV = "+33947800001"
PARIS_GEO = "+33140000000"
POOL = (METRO_NPV, MARTINIQUE_NPV, PARIS_GEO)

MOBILE = "0612345678"  # a metropolitan callee
MQ_MOBILE = "0696123456"  # Martinique
RE_MOBILE = "0692123456"  # La Réunion
YT_MOBILE = "0639012345"  # Mayotte
GF_MOBILE = "0694123456"  # Guyane
GP_MOBILE = "0690123456"  # Guadeloupe

NEW_YEAR_2026 = datetime(2026, 1, 1, tzinfo=PARIS)

# A Monday in the opt-in regime, and one in the opposition regime.
MONDAY = datetime(2026, 11, 23, 11, 0, tzinfo=PARIS)
OLD_MONDAY = datetime(2026, 3, 2, 11, 0, tzinfo=PARIS)


def a_config(**rules: object) -> Config:
    companies = rules.pop("companies", None) or [
        {"id": "acme", "name": "ACME", "sector": "telecom", "numbers": list(POOL)}
    ]
    return parse_config({"rules": rules, "companies": companies})


def paris(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PARIS)  # type: ignore[misc]


def a_request(
    callee: str = MOBILE,
    caller: str = METRO_NPV,
    purpose: Purpose = Purpose.PROSPECTING,
    company: str | None = "acme",
    dept: str | None = None,
) -> CallRequest:
    return CallRequest(caller, callee, company, purpose, dept=dept)


def consented(
    since: datetime, scope: ConsentScope = ConsentScope.PROSPECTING, **kw: object
) -> Consent:
    return Consent(scope, since, **kw)  # type: ignore[arg-type]


def facts(
    *,
    consents: tuple[Consent, ...] | None = None,
    attempts: tuple[datetime, ...] = (),
    refusals: tuple[datetime, ...] = (),
    contracts: tuple[Contract, ...] = (),
    oppositions: tuple[Opposition, ...] = (),
    consent_since: datetime = NEW_YEAR_2026,
) -> Facts:
    """Facts with a valid prospecting consent unless told otherwise."""
    if consents is None:
        consents = (consented(consent_since),)
    return Facts(
        attempts=tuple(Attempt(a, Purpose.PROSPECTING) for a in attempts),
        refusals=refusals,
        consents=consents,
        contracts=contracts,
        oppositions=oppositions,
    )


def judge(
    now: datetime,
    request: CallRequest | None = None,
    known: Facts | None = None,
    config: Config | None = None,
) -> Decision:
    return decide(
        request or a_request(), known if known is not None else facts(), now, config or a_config()
    )


def codes(decision: Decision, blocking: bool = True) -> set[str]:
    return {r.code for r in decision.reasons if r.blocking == blocking}


def days(n: int) -> timedelta:
    return timedelta(days=n)


# The token the console's HTTP tests log in with (an admin token: make_app takes a string).
CONSOLE_TOKEN = "a-test-token-of-32-characters-xx"


async def console_login(
    client: Any, token: str = CONSOLE_TOKEN, next_path: str = "/console/"
) -> str:
    """Logs an aiohttp TestClient in to the console as a browser does (the login form's
    CSRF cookie and field, then the session cookie); returns the session's CSRF token."""
    from callgate.console.access import SESSION_COOKIE, SESSIONS

    form = await client.get("/console/login")
    assert form.status == 200, await form.text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
    reply = await client.post(
        "/console/login",
        data={"token": token, "csrf": csrf, "next": next_path},
        allow_redirects=False,
    )
    assert reply.status == 303, await reply.text()
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))
    return client.app[SESSIONS].get(cookies[SESSION_COOKIE].value).csrf
