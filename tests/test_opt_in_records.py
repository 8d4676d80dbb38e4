"""The opt-in law's records through the store, the CLI and the API: a spoken withdrawal,
appointments, consents that prove themselves, and checks a dialer records (RULES-FR §2.4,
§3.3, §4)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import a_config, a_request, paris
from test_api import AUTH, TOKEN
from test_cli import run, verdict  # noqa: F401  (the fixture)

from callgate.api import make_app
from callgate.gate import check_call
from callgate.model import Appointment, Consent, ConsentScope
from callgate.store import open_store
from callgate.store.base import AppointmentRecord

CALLEE = "+33612345678"
TWO = a_config(companies=[
    {"id": "acme", "numbers": ["+33948000001"]},
    {"id": "globex", "numbers": ["+33948000002"]},
])  # fmt: skip
T = paris(2026, 10, 1, 15)


async def test_a_withdrawal_revokes_opts_out_and_starts_the_cool_down_for_one_company(store):
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.OUT_OF_HOURS, paris(2026, 9, 1)))
    await store.add_consent("globex", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
    done = await store.withdraw("acme", CALLEE, T, "cli")
    assert done.revoked == 2 and done.opposed and done.refusal_id > 0
    acme = await store.consents("acme", CALLEE)
    assert {(c.consent.revoked_at, c.consent.revoked_how) for c in acme} == {(T, "withdrawn")}
    [globex] = await store.consents("globex", CALLEE)
    assert globex.consent.revoked_at is None
    entries = [e async for e in store.oppositions(CALLEE, None)]
    assert [(e.company, e.source, e.added_at) for e in entries] == [("acme", "withdrawal", T)]
    # Said twice: one entry stays, a second refusal is recorded.
    again = await store.withdraw("acme", CALLEE, T + timedelta(minutes=1), "cli")
    assert again.revoked == 0 and not again.opposed

    later = paris(2026, 10, 5, 11)
    acme_call = await check_call(store, TWO, a_request(company="acme"), later, record=False)
    assert set(acme_call.codes) == {"REFUSAL_COOLDOWN", "OPPOSITION_LISTED", "CONSENT_REVOKED"}
    globex_call = await check_call(
        store, TWO, a_request(caller="+33948000002", company="globex"), later, record=False
    )
    assert globex_call.allowed


async def test_a_cancelled_appointment_lifts_nothing_live_and_a_replay_sees_it_as_it_was(store):
    saturday = paris(2026, 12, 5, 11)
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
    record = AppointmentRecord(0, "acme", CALLEE, Appointment(saturday), paris(2026, 12, 1))
    await store.add_appointment("acme", CALLEE, record)
    config = a_config()
    assert (await check_call(store, config, a_request(), saturday, record=False)).allowed
    assert await store.cancel_appointments("acme", CALLEE, saturday, paris(2026, 12, 5, 12)) == 1
    assert await store.cancel_appointments("acme", CALLEE, saturday, paris(2026, 12, 5, 12)) == 0
    live = await check_call(store, config, a_request(), saturday, record=False)
    assert live.codes == ("DAY_WEEKEND",)
    # A replay of the 11:00 call judges on what was known then: not yet cancelled.
    since = saturday - timedelta(days=70)
    known = await store.facts("acme", CALLEE, saturday, since, live=False)
    assert known.appointments == (Appointment(saturday),)
    before_recorded = await store.facts("acme", CALLEE, paris(2026, 11, 30), since, live=False)
    assert before_recorded.appointments == ()
    [listed] = await store.appointments("acme", None)
    assert listed.cancelled_at == paris(2026, 12, 5, 12)


# ---------------------------------------------------------------- the CLI


def test_cli_appointment_add_list_cancel_and_the_verdicts(run):  # noqa: F811
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    added = run("appointment", "add", "--to", "0612345678", "--at", "2026-12-05T11:00",
                "--source", "call", check_status=0)  # fmt: skip
    assert "until 2026-12-05 11:15 CET" in added.stdout
    args = ("--from", "0948000001", "--to", "0612345678")
    inside = verdict(run, *args, "--at", "2026-12-05T11:14:59", status=0)
    assert [r["code"] for r in inside["reasons"]] == ["APPOINTMENT"]
    verdict(run, *args, "--at", "2026-12-05T11:15", status=1)
    friday = verdict(run, *args, "--at", "2026-12-04T21:00", status=1)
    assert friday["retry_after"] == "2026-12-05T11:00:00+01:00"
    listed = json.loads(run("appointment", "list", "--json", check_status=0).stdout)
    assert (listed["start"], listed["end"]) == ("2026-12-05T10:00:00+00:00",
                                                "2026-12-05T10:15:00+00:00")  # fmt: skip
    run("appointment", "cancel", "--to", "0612345678", "--at", "2026-12-05T11:00", check_status=0)
    assert verdict(run, *args, "--at", "2026-12-05T11:05", status=1)["reasons"][0]["code"] == (
        "DAY_WEEKEND"
    )
    missing = run("appointment", "cancel", "--to", "0612345678", "--at", "2026-12-05T11:00")
    assert missing.returncode == 2 and "no appointment" in missing.stderr
    bad = run("appointment", "add", "--to", "0612345678", "--at", "2026-12-05T11:00",
              "--until", "2026-12-05T10:00")  # fmt: skip
    assert bad.returncode == 2 and "--until" in bad.stderr


def test_cli_outcome_withdrawn(run):  # noqa: F811
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    said = run("outcome", "withdrawn", "--to", "0612345678", "--at", "2026-10-01T15:00",
               check_status=0)  # fmt: skip
    assert "1 consent(s) revoked" in said.stdout and "opposition list" in said.stdout
    codes = {r["code"] for r in verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-10-05T11:00", status=1
    )["reasons"]}  # fmt: skip
    assert codes == {"REFUSAL_COOLDOWN", "OPPOSITION_LISTED", "CONSENT_REVOKED"}
    [entry] = [json.loads(line) for line in run("optout", "list", "--json").stdout.splitlines()]
    assert (entry["company"], entry["source"]) == ("acme", "withdrawal")


def test_cli_consent_fields_and_a_proof_file(run, tmp_path):  # noqa: F811
    proof = tmp_path / "signed form.pdf"
    proof.write_bytes(b"%PDF-1.4 a signed form")
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", "--channel", "web",
        "--collected-by", "partner site", "--covers", "fibre offers", "--proof-file", str(proof),
        "--by", "Jeanne Martin", "--source", "form 7", check_status=0)  # fmt: skip
    [listed] = [json.loads(line) for line in run("consent", "list", "--json").stdout.splitlines()]
    assert listed["channel"] == "web" and listed["collected_by"] == "partner site"
    assert listed["covers"] == "fibre offers" and listed["proof_name"] == "signed form.pdf"
    assert listed["proof_sha256"] == hashlib.sha256(b"%PDF-1.4 a signed form").hexdigest()
    too_long = run("consent", "add", "--to", "0612345678", "--at", "2026-09-01",
                   "--expires", "2027-09-02")  # fmt: skip
    assert too_long.returncode == 2 and "--expires" in too_long.stderr
    assert "365" in too_long.stderr
    exactly = run("consent", "add", "--to", "0612345678", "--at", "2026-09-01",
                  "--expires", "2027-09-01")  # fmt: skip
    assert exactly.returncode == 0, exactly.stderr
    bad = run("consent", "add", "--to", "0612345678", "--channel", "pigeon")
    assert bad.returncode == 2 and "--channel" in bad.stderr
    missing = run("consent", "add", "--to", "0612345678", "--proof-file", str(tmp_path / "none"))
    assert missing.returncode == 2 and "--proof-file" in missing.stderr


# ---------------------------------------------------------------- the API


@pytest.fixture
async def client(store_url):
    store = await open_store(store_url)
    async with TestClient(TestServer(make_app(store, a_config(), TOKEN))) as client:
        yield client
    await store.close()


async def test_api_check_records_an_attempt_only_when_asked(client):
    await client.post("/v1/consents", json={"to": "0612345678", "at": "2026-09-01"}, headers=AUTH)

    async def check(day: int, **extra: object) -> dict:
        body = {"from": "0948000001", "to": "0612345678", "at": f"2026-11-{day}T11:00", **extra}
        reply = await client.post("/v1/check", json=body, headers=AUTH)
        assert reply.status == 200
        return await reply.json()

    for day in (16, 17, 18, 19, 20):  # dry runs count for nothing
        assert (await check(day))["verdict"] == "allow"
    for day in (23, 24, 25, 26):
        assert (await check(day, record=True))["verdict"] == "allow"
    fifth = await check(27, record=True)
    assert [r["code"] for r in fifth["reasons"]] == ["CAP_30_DAYS"]
    assert fifth["retry_after"] == "2026-12-23T10:00:00+01:00"  # the cap lifts at 00:00
    log = await (await client.get("/v1/decisions?limit=100", headers=AUTH)).json()
    kinds = [entry["kind"] for entry in log["decisions"]]
    assert kinds.count("call") == 5 and kinds.count("dry-run") == 5
    wrong = await client.post("/v1/check", json={"from": "0948000001", "to": "0612345678",
                                                 "record": "yes"}, headers=AUTH)  # fmt: skip
    assert wrong.status == 422 and (await wrong.json())["field"] == "record"


async def test_api_withdrawn_appointments_and_consent_fields(client):
    consent = {
        "to": "0612345678",
        "at": "2026-09-01",
        "channel": "phone",
        "covers": "energy",
        "collected_by": "agent 12",
        "proof_sha256": "ab" * 32,
        "proof_name": "call.wav",
    }
    assert (await client.post("/v1/consents", json=consent, headers=AUTH)).status == 201
    [listed] = (await (await client.get("/v1/consents", headers=AUTH)).json())["consents"]
    assert (listed["channel"], listed["proof_name"]) == ("phone", "call.wav")
    half = {"to": "0612345678", "proof_sha256": "ab" * 32}
    assert (await client.post("/v1/consents", json=half, headers=AUTH)).status == 422

    booked = await client.post("/v1/appointments", json={
        "to": "0612345678", "at": "2026-12-05T11:00", "until": "2026-12-05T11:30",
    }, headers=AUTH)  # fmt: skip
    assert booked.status == 201
    assert (await booked.json())["end"] == "2026-12-05T11:30:00+01:00"
    call = {"from": "0948000001", "to": "0612345678", "at": "2026-12-05T11:29:59"}
    passed = await (await client.post("/v1/check", json=call, headers=AUTH)).json()
    assert passed["verdict"] == "allow" and passed["reasons"][0]["code"] == "APPOINTMENT"
    [appointment] = (await (await client.get("/v1/appointments", headers=AUTH)).json())[
        "appointments"
    ]
    assert appointment["cancelled_at"] is None
    cancelled = await client.post("/v1/appointments/cancel", json={
        "to": "0612345678", "at": "2026-12-05T11:00"}, headers=AUTH)  # fmt: skip
    assert (await cancelled.json())["cancelled"] == 1
    refused = await (await client.post("/v1/check", json=call, headers=AUTH)).json()
    assert refused["reasons"][0]["code"] == "DAY_WEEKEND"

    withdrawal = {"to": "0612345678", "outcome": "withdrawn", "at": "2026-10-01T15:00"}
    said = await client.post("/v1/outcomes", json=withdrawal, headers=AUTH)
    assert said.status == 201
    assert (await said.json())["consents_revoked"] == 1
    later = {"from": "0948000001", "to": "0612345678", "at": "2026-10-05T11:00"}
    reasons = (await (await client.post("/v1/check", json=later, headers=AUTH)).json())["reasons"]
    assert {r["code"] for r in reasons} == {
        "REFUSAL_COOLDOWN", "OPPOSITION_LISTED", "CONSENT_REVOKED",
    }  # fmt: skip
    unknown = await client.post("/v1/outcomes", json={"to": "0612345678", "outcome": "maybe"},
                                headers=AUTH)  # fmt: skip
    assert unknown.status == 422


def test_explain_and_replay_of_a_call_before_2026_08_11_keep_the_old_exception(run):  # noqa: F811
    run("consent", "add", "--to", "0612345678", "--at", "2026-08-01", "--scope", "out_of_hours",
        check_status=0)  # fmt: skip
    args = ("--from", "0948000001", "--to", "0612345678")
    old = verdict(run, *args, "--at", "2026-08-08T11:00", "--record", status=0)  # a Saturday
    assert old["ruleset"] == "fr-2023-03-01"
    # The same consent lifts nothing a week later, in the opt-in regime.
    new = verdict(run, *args, "--at", "2026-08-15T11:00", "--record", status=1)
    assert {r["code"] for r in new["reasons"]} == {"DAY_WEEKEND", "CONSENT_MISSING"}
    replayed = run("log", "replay", "--since", "2026-08-01", check_status=0)
    assert "2 decisions replayed, 0 would now differ" in replayed.stderr
    explained = run("log", "explain", old["decision_id"], check_status=0)
    assert "ALLOW decision" in explained.stdout and "fr-2023-03-01" in explained.stdout


def test_cli_receipt_prints_for_a_callee_in_each_format(run, tmp_path):  # noqa: F811
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", "--channel", "web",
        "--covers", "fibre", check_status=0)  # fmt: skip
    run("outcome", "withdrawn", "--to", "0612345678", "--at", "2026-10-01T15:00", check_status=0)
    text = run("consent", "receipt", "--to", "06 12 34 56 78", check_status=0).stdout
    assert "+33612345678" in text and "fibre" in text and "2026-10-01" in text
    html = run("consent", "receipt", "--to", "0612345678", "--format", "html", check_status=0)
    assert html.stdout.startswith("<!DOCTYPE html>") and "fibre" in html.stdout
    out = tmp_path / "receipt.pdf"
    run("consent", "receipt", "--to", "0612345678", "--format", "pdf", "--output", str(out),
        check_status=0)  # fmt: skip
    assert out.read_bytes().startswith(b"%PDF")
    assert run("consent", "receipt").returncode == 2  # no --to


async def test_api_receipt(client):
    await client.post("/v1/consents", json={"to": "0612345678", "at": "2026-09-01"}, headers=AUTH)
    reply = await client.get("/v1/consents/receipt?callee=0612345678&format=pdf", headers=AUTH)
    assert reply.status == 200 and reply.content_type == "application/pdf"
    assert (await reply.read()).startswith(b"%PDF")
    html = await client.get("/v1/consents/receipt?callee=0612345678", headers=AUTH)
    assert html.content_type == "text/html" and "+33612345678" in await html.text()
    bad = await client.get("/v1/consents/receipt?callee=0612345678&format=doc", headers=AUTH)
    assert bad.status == 422
    missing = await client.get("/v1/consents/receipt", headers=AUTH)
    assert missing.status == 422
