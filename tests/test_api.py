"""The HTTP API: every endpoint with and without the token, good and bad input."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import a_config

from callgate.api import make_app
from callgate.store import open_store

TOKEN = "a-test-token-of-32-characters-xx"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ENDPOINTS = [
    ("GET", "/metrics"),
    ("GET", "/openapi.yaml"),
    ("POST", "/v1/check"),
    ("POST", "/v1/scrub"),
    ("POST", "/v1/outcomes"),
    ("GET", "/v1/outcomes"),
    ("GET", "/v1/consents"),
    ("POST", "/v1/consents"),
    ("POST", "/v1/consents/revoke"),
    ("GET", "/v1/consents/receipt"),
    ("GET", "/v1/appointments"),
    ("POST", "/v1/appointments"),
    ("POST", "/v1/appointments/cancel"),
    ("GET", "/v1/contracts"),
    ("POST", "/v1/contracts"),
    ("POST", "/v1/contracts/end"),
    ("GET", "/v1/optouts"),
    ("POST", "/v1/optouts"),
    ("POST", "/v1/optouts/remove"),
    ("GET", "/v1/decisions"),
]


@pytest.fixture
async def client(store_url):
    store = await open_store(store_url)
    app = make_app(store, a_config(), TOKEN)
    async with TestClient(TestServer(app)) as client:
        yield client
    await store.close()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_but_healthz_needs_the_token(client, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = await client.request(method, path, headers=headers)
        assert reply.status == 401
        assert (await reply.json())["error"] == "unauthorized"


async def test_healthz_is_open_and_says_what_it_checked(client):
    reply = await client.get("/healthz")
    assert reply.status == 200
    assert await reply.json() == {"status": "ok", "store": "ok", "ari": "not configured"}


async def test_check_answers_like_the_cli_and_logs_a_dry_run(client):
    body = {"from": "0612345678", "to": "0612345678", "at": "2026-11-23T11:00:00+01:00"}
    reply = await client.post("/v1/check", json=body, headers=AUTH)
    assert reply.status == 200
    verdict = await reply.json()
    assert verdict["verdict"] == "reject"
    assert [r["code"] for r in verdict["reasons"] if r["blocking"]] == ["CONSENT_MISSING"]
    assert verdict["caller_out"] == "+33948000001"
    log = await (await client.get("/v1/decisions", headers=AUTH)).json()
    assert [(d["id"], d["kind"]) for d in log["decisions"]] == [(verdict["decision_id"], "dry-run")]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("not json", 400, None),
        ([], 400, None),
        ({"to": "0612345678"}, 422, "from"),
        ({"from": "0948000001", "to": "0612345678", "purpose": "spam"}, 422, "purpose"),
        ({"from": "0948000001", "to": "0612345678", "at": "yesterday"}, 422, "at"),
        ({"from": 12, "to": "0612345678"}, 422, "from"),
    ],
)
async def test_bad_check_requests_say_what_is_wrong(client, body, status, field):
    data = body if isinstance(body, str) else json.dumps(body)
    reply = await client.post("/v1/check", data=data, headers=AUTH)
    assert reply.status == status
    problem = await reply.json()
    assert problem["message"]
    assert problem.get("field") == field


async def test_consents_contracts_optouts_and_outcomes_change_the_verdict(client):
    at = "2026-11-23T11:00:00+01:00"
    call = {"from": "0948000001", "to": "0612345678", "at": at}

    async def verdict():
        reply = await client.post("/v1/check", json=call, headers=AUTH)
        return [r["code"] for r in (await reply.json())["reasons"] if r["blocking"]]

    assert await verdict() == ["CONSENT_MISSING"]
    added = await client.post(
        "/v1/consents",
        headers=AUTH,
        json={"to": "06 12 34 56 78", "at": "2026-09-01", "proof": "form 42", "given_by": "J. M."},
    )
    assert added.status == 201
    assert await verdict() == []
    listed = await (await client.get("/v1/consents?to=0612345678", headers=AUTH)).json()
    assert listed["consents"][0]["proof"] == "form 42"
    refused = await client.post(
        "/v1/outcomes",
        json={"to": "0612345678", "outcome": "refused", "at": "2026-11-20"},
        headers=AUTH,
    )
    assert refused.status == 201
    assert await verdict() == ["REFUSAL_COOLDOWN"]
    assert (
        await client.post(
            "/v1/optouts", json={"to": "0612345678", "at": "2026-11-01"}, headers=AUTH
        )
    ).status == 201
    # The opt-out is also a revocation of the consent given before it.
    assert set(await verdict()) == {"REFUSAL_COOLDOWN", "OPPOSITION_LISTED", "CONSENT_REVOKED"}
    removed = await client.post(
        "/v1/optouts/remove", json={"to": "0612345678", "at": "2026-11-02"}, headers=AUTH
    )
    assert (await removed.json())["removed"] == 1
    revoked = await client.post(
        "/v1/consents/revoke", json={"to": "0612345678", "at": "2026-11-02"}, headers=AUTH
    )
    assert (await revoked.json())["revoked"] == 1
    contract = await client.post(
        "/v1/contracts", json={"to": "0612345678", "at": "2026-01-01"}, headers=AUTH
    )
    assert contract.status == 201
    ended = await client.post(
        "/v1/contracts/end", json={"to": "0612345678", "at": "2026-11-02"}, headers=AUTH
    )
    assert (await ended.json())["ended"] == 1
    contracts = await (await client.get("/v1/contracts", headers=AUTH)).json()
    assert contracts["contracts"][0]["end"].startswith("2026-11-01T23:00")
    optouts = await (await client.get("/v1/optouts", headers=AUTH)).json()
    assert optouts["optouts"][0]["removed_at"]


async def test_outcomes_are_listed_with_the_log_entry_that_recorded_each(client):
    for body in (
        {"to": "0612345678", "outcome": "refused", "at": "2026-11-20T10:00:00+01:00"},
        {"to": "0612345679", "outcome": "withdrawn", "at": "2026-11-21T10:00:00+01:00"},
    ):
        assert (await client.post("/v1/outcomes", json=body, headers=AUTH)).status == 201
    listed = (await (await client.get("/v1/outcomes", headers=AUTH)).json())["outcomes"]
    assert [(o["kind"], o["callee"], o["source"], o["at"]) for o in listed] == [
        ("refusal", "+33612345678", "api", "2026-11-20T09:00:00+00:00"),
        ("withdrawal", "+33612345679", "api", "2026-11-21T09:00:00+00:00"),
    ]
    mine = await (await client.get("/v1/outcomes?to=0612345679", headers=AUTH)).json()
    assert [o["kind"] for o in mine["outcomes"]] == ["withdrawal"]
    # Each is an entry of the log, found by its seq among the writes of facts.
    facts = await (await client.get("/v1/decisions?kind=fact", headers=AUTH)).json()
    by_seq = {entry["seq"]: entry for entry in facts["decisions"]}
    assert [by_seq[o["seq"]]["fact"] for o in listed] == ["refusal", "withdrawal"]
    decisions = await (await client.get("/v1/decisions", headers=AUTH)).json()
    assert decisions["decisions"] == []  # by default, decisions alone
    wrong = await client.get("/v1/decisions?kind=gossip", headers=AUTH)
    assert wrong.status == 422 and (await wrong.json())["field"] == "kind"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/consents", {"to": "junk"}, "to"),
        ("/v1/consents", {"to": "0612345678", "company": "nobody"}, "company"),
        ("/v1/consents", {"to": "0612345678", "scope": "forever"}, "scope"),
        (
            "/v1/consents",
            {"to": "0612345678", "at": "2026-09-01", "expires": "2026-08-01"},
            "expires",
        ),
        ("/v1/outcomes", {"to": "0612345678", "outcome": "happy"}, "outcome"),
        ("/v1/optouts", {"to": "0612345678", "source": "gossip"}, "source"),
        ("/v1/contracts", {"to": "0612345678", "at": "2026-09-01", "until": "2026-01-01"}, "until"),
    ],
)
async def test_bad_records_are_refused_with_the_field(client, path, body, field):
    reply = await client.post(path, json=body, headers=AUTH)
    assert reply.status == 422
    assert (await reply.json())["field"] == field


async def test_scrub_streams_one_result_per_number_in_order(client):
    numbers = [f"06{12000000 + i:08d}" for i in range(1200)] + ["junk", '{"to": "0696123456"}']
    reply = await client.post(
        "/v1/scrub?at=2026-03-02T11:00:00%2B01:00", data="\n".join(numbers) + "\n", headers=AUTH
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    results = [json.loads(line) for line in (await reply.text()).splitlines()]
    assert len(results) == len(numbers)
    assert results[0] == {
        "to": "0612000000",
        "callee": "+33612000000",
        "verdict": "allow",
        "reasons": [],
        "retry_after": None,
    }
    assert results[-2]["reasons"] == ["DEST_INVALID"]
    assert results[-1]["callee"] == "+596696123456"


async def test_scrub_reads_a_long_list_sent_in_odd_pieces(client):
    """Lines cut across reads, CRLF ends, no final newline: every number, in order."""
    numbers = [f"06{13000000 + i:08d}" for i in range(10_000)]
    body = "\r\n".join(numbers).encode()

    async def pieces():
        for start in range(0, len(body), 7_777):
            yield body[start : start + 7_777]

    reply = await client.post(
        "/v1/scrub?at=2026-03-02T11:00:00%2B01:00", data=pieces(), headers=AUTH
    )
    results = [json.loads(line) for line in (await reply.text()).splitlines()]
    assert [r["to"] for r in results] == numbers
    assert {r["verdict"] for r in results} == {"allow"}


async def test_scrub_sees_the_store(client):
    await client.post("/v1/optouts", json={"to": "0612000001", "at": "2026-01-01"}, headers=AUTH)
    reply = await client.post(
        "/v1/scrub?at=2026-03-02T11:00:00%2B01:00", data="0612000000\n0612000001\n", headers=AUTH
    )
    verdicts = [json.loads(line)["verdict"] for line in (await reply.text()).splitlines()]
    assert verdicts == ["allow", "reject"]


async def test_decisions_filter_and_page(client):
    for hour in ("11", "21"):
        await client.post(
            "/v1/check",
            headers=AUTH,
            json={"from": "0948000001", "to": "0612345678", "at": f"2026-03-02T{hour}:00:00+01:00"},
        )
    rejected = await (await client.get("/v1/decisions?verdict=reject", headers=AUTH)).json()
    assert [d["reasons"][0]["code"] for d in rejected["decisions"]] == ["HOURS_OUTSIDE"]
    by_reason = await (await client.get("/v1/decisions?reason=HOURS_OUTSIDE", headers=AUTH)).json()
    assert len(by_reason["decisions"]) == 1
    page = await (await client.get("/v1/decisions?limit=1", headers=AUTH)).json()
    assert page["next_after"] == page["decisions"][0]["seq"]
    rest = await (
        await client.get(f"/v1/decisions?after={page['next_after']}", headers=AUTH)
    ).json()
    assert len(rest["decisions"]) == 1 and rest["next_after"] is None
    bad = await client.get("/v1/decisions?limit=x", headers=AUTH)
    assert bad.status == 422


async def test_metrics_count_decisions_by_verdict_and_reason(client):
    await client.post("/v1/check", json={"from": "0948000001", "to": "junk"}, headers=AUTH)
    text = await (await client.get("/metrics", headers=AUTH)).text()
    assert 'callgate_decisions_total{verdict="reject"}' in text
    assert 'callgate_decision_reasons_total{reason="DEST_INVALID"}' in text
    assert "callgate_decision_seconds_bucket" in text


async def test_the_openapi_document_is_served_and_lists_every_endpoint(client):
    import yaml

    text = await (await client.get("/openapi.yaml", headers=AUTH)).text()
    paths = yaml.safe_load(text)["paths"]
    for _, path in ENDPOINTS:
        assert path in paths
