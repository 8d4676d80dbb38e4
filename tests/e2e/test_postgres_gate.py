"""The ARI gate on a shared PostgreSQL store, and what it does when PostgreSQL goes away."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from harness.gate import write_config
from harness.sipp import free_port
from tests.e2e.conftest import REJECTED

CALLEE = "0612345678"
NPV = "+33948000001"
BUSY = 486


def _pg_site(site, postgres):
    url = postgres.new_database()
    write_config(
        site.config, db=url, ari_url=site.pbx.asterisk.ari_url,  # type: ignore[arg-type]
        password_file=site.workdir / "ari-password",
    )  # fmt: skip
    return url


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_the_gate_fails_closed_while_postgresql_is_down_and_recovers(pbx, site, postgres):
    _pg_site(site, postgres)
    site.consent(CALLEE)
    gate, health = site.gate(), free_port()
    gate.extra_args = ["--metrics", f"127.0.0.1:{health}"]
    gate.start()
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == BUSY
    status, body = _get(health, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok", "store": "ok", "ari": "connected"})
    postgres.pause()
    try:
        outage = [pbx.call(NPV, CALLEE).final for _ in range(3)]
        status, body = _get(health, "/healthz")
        assert status == 503 and json.loads(body)["store"] == "down", body
        metrics = _get(health, "/metrics")[1]
        assert _metric(metrics, "callgate_store_up") == 0
        assert _metric(metrics, "callgate_store_errors_total") == 3
        assert _metric(metrics, 'callgate_decision_reasons_total{reason="GATE_ERROR"}') == 3
    finally:
        postgres.resume()
    assert outage == [REJECTED] * 3
    assert len(pbx.carrier.invites()) == before + 1  # nothing leaked during the outage
    log = site.gate_log()
    assert log.count("the store does not answer") == 1  # once per outage
    assert "GATE_ERROR" in log
    # The pool reconnects on its own: a call goes through again without a restart.
    finals = []
    for _ in range(4):
        finals.append(pbx.call(NPV, CALLEE).final)
        if finals[-1] == BUSY:
            break
        time.sleep(0.5)
    assert finals[-1] == BUSY, finals
    assert "the store answers again" in site.gate_log()
    assert _get(health, "/healthz")[0] == 200
    assert _metric(_get(health, "/metrics")[1], "callgate_store_up") == 1


def test_two_gates_on_one_postgresql_never_overrun_the_cap(pbx, site, postgres):
    """Two `callgate run` (two ARI apps of one Asterisk), one PostgreSQL, one slot left:
    a burst of calls to one callee through both gates lets exactly one reach the carrier."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.gate import GateProcess

    url = _pg_site(site, postgres)
    site.consent(CALLEE)
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):  # three calls this month
        site.cli("check", "--from", NPV, "--to", CALLEE, "--at", f"{day}T11:00", "--record")
    second = write_config(
        site.workdir / "node2.toml", db=url, ari_url=pbx.asterisk.ari_url,  # type: ignore[arg-type]
        password_file=site.workdir / "ari-password", ari_app="callgate2",
    )  # fmt: skip
    site.gate().start()
    node2 = GateProcess(
        second, site.workdir / "node2.log", ari_url=pbx.asterisk.ari_url,
        ari_password=pbx.password, fake_now="2026-11-23 10:00:00",
    )  # fmt: skip
    site.gates.append(node2)
    node2.start()
    # Calls presented from the Martinique NPV go to the second gate's app.
    extensions = pbx.asterisk.outside / "etc" / "extensions.conf"
    original = extensions.read_text()
    extensions.write_text(original.replace(
        "Stasis(callgate)",
        'Stasis(${IF($["${CALLERID(num)}" = "+33947700001"]?callgate2:callgate)})',
    ))  # fmt: skip
    pbx.asterisk.rx("dialplan reload")
    try:
        before = len(pbx.carrier.invites())
        callers = [NPV, "+33947700001"] * 4
        with ThreadPoolExecutor(max_workers=8) as pool:
            finals = list(pool.map(lambda caller: pbx.call(caller, CALLEE).final, callers))
    finally:
        extensions.write_text(original)
        pbx.asterisk.rx("dialplan reload")
    assert sorted(finals) == sorted([REJECTED] * 7 + [BUSY]), finals
    assert len(pbx.carrier.invites()) == before + 1
    assert "CAP_30_DAYS" in site.gate_log() or "CAP_30_DAYS" in node2.log.read_text()
    assert "ALLOW" in site.gate_log() + node2.log.read_text()
    assert "+33612345678" in node2.log.read_text()  # the second node did take calls
