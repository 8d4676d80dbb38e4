"""Two `callgate run` serving one Asterisk through StasisBroadcast (callgate-via-ari-pool).

The first gate to claim a call decides it. Killing one gate under load loses no call:
what it held fails closed (the dialplan refuses it once CALLGATE_WAIT is up), and every
call placed after the kill is decided by the gate that is left.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.gate import GateProcess, ari_request, write_config
from tests.e2e.conftest import REJECTED, Pbx, _site, _start_pbx, _stop_pbx

# Monday 2 March 2026, 11:00 in Paris, before the opt-in law: a fresh callee needs no
# consent, so every call on a healthy gate is allowed and meets the carrier's 486.
BEFORE_OPT_IN = "2026-03-02 10:00:00"
NPV = "+33948000001"
BUSY = 486


@pytest.fixture(scope="module")
def pbx_pool(tmp_path_factory):
    started = _start_pbx(tmp_path_factory, "ari-pool")
    yield started
    _stop_pbx(started)


@pytest.fixture
def pool(pbx_pool, tmp_path):
    """Gates "a" and "b" (ARI apps callgate-a and callgate-b) on one SQLite store."""
    for site in _site(pbx_pool, tmp_path):
        gates = {}
        for node in ("a", "b"):
            config = write_config(
                tmp_path / f"{node}.toml", db=site.db, ari_url=pbx_pool.asterisk.ari_url,
                password_file=tmp_path / "ari-password", ari_app=f"callgate-{node}", node=node,
            )  # fmt: skip
            gates[node] = GateProcess(
                config, tmp_path / f"{node}.log", ari_url=pbx_pool.asterisk.ari_url,
                ari_password=pbx_pool.password, fake_now=BEFORE_OPT_IN,
            )  # fmt: skip
            site.gates.append(gates[node])
            gates[node].start()
        yield site, gates


def _decided(db, callee_e164: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT node, verdict, reasons FROM decisions WHERE callee = ? AND kind = 'call'",
            (callee_e164,),
        ).fetchall()


def _e164(national: str) -> str:
    return "+33" + national[1:]


def test_the_first_gate_to_claim_decides_each_call_once(pbx_pool: Pbx, pool):
    site, _ = pool
    callees = [f"0620{i:06d}" for i in range(12)]
    finals = [pbx_pool.call(NPV, callee).final for callee in callees]
    assert finals == [BUSY] * len(callees)
    nodes = []
    for callee in callees:
        decided = _decided(site.db, _e164(callee))
        assert len(decided) == 1, decided  # one gate decided it, not both
        nodes.append(decided[0][0])
    assert set(nodes) <= {"a", "b"}


def test_a_call_nobody_claims_is_refused(pbx_pool: Pbx, pool):
    _, gates = pool
    for gate in gates.values():
        gate.kill()
    before = len(pbx_pool.carrier.invites())
    assert pbx_pool.call(NPV, "0621000001").final == REJECTED
    assert len(pbx_pool.carrier.invites()) == before


def test_a_call_held_by_a_killed_gate_fails_closed_and_the_other_takes_the_next(
    pbx_pool: Pbx, pool
):
    """Gate b is frozen, so gate a claims the call; a's store is locked, so the call is
    still in flight there when a is killed. The call must be refused, never dialled."""
    site, gates = pool
    held, after = "0622000001", "0622000002"
    before = len(pbx_pool.carrier.invites())
    gates["b"].process.send_signal(signal.SIGSTOP)
    lock = sqlite3.connect(site.db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with ThreadPoolExecutor(1) as pool_:
            future = pool_.submit(pbx_pool.call, NPV, held)
            time.sleep(0.8)  # claimed by a, its decision waiting on the store
            status, app = ari_request(
                pbx_pool.asterisk.ari_url, pbx_pool.password, "GET", "/applications/callgate-a"
            )
            assert status == 200 and len(app["channel_ids"]) == 1, app
            gates["a"].kill()
            gates["b"].process.send_signal(signal.SIGCONT)
            lock.execute("ROLLBACK")
            assert future.result().final == REJECTED
    finally:
        gates["b"].process.send_signal(signal.SIGCONT)
        lock.close()
    assert "claim" not in gates["b"].log.read_text()  # b's late claim is no error
    assert _decided(site.db, _e164(held)) == []  # a died before it could record anything
    assert pbx_pool.call(NPV, after).final == BUSY
    assert [node for node, *_ in _decided(site.db, _e164(after))] == ["b"]
    assert len(pbx_pool.carrier.invites()) == before + 1  # only the call after


def test_killing_a_gate_under_load_loses_no_call(pbx_pool: Pbx, pool):
    site, gates = pool
    callees = [f"0623{i:06d}" for i in range(150)]
    before = {invite.uri_user for invite in pbx_pool.carrier.invites()}
    done = 0
    killed_at: list[float] = []
    lock = threading.Lock()

    def call(callee: str) -> tuple[float, int | None]:
        nonlocal done
        started = time.monotonic()
        final = pbx_pool.call(NPV, callee).final
        with lock:
            done += 1
            if done == 50:
                gates["a"].kill()
                killed_at.append(time.monotonic())
        return started, final

    with ThreadPoolExecutor(6) as workers:
        results = list(workers.map(call, callees))

    finals = [final for _, final in results]
    assert set(finals) <= {BUSY, REJECTED}, finals  # every call got its answer
    assert finals.count(REJECTED) <= 6, finals  # at most what was in flight on a
    dialled = {invite.uri_user for invite in pbx_pool.carrier.invites()} - before
    for callee, (_, final) in zip(callees, results, strict=True):
        decided = _decided(site.db, _e164(callee))
        if final == BUSY:
            # Dialled, and only after a gate allowed it and recorded so.
            assert [verdict for _, verdict, _ in decided] == ["allow"], (callee, decided)
        else:
            assert not any(callee[1:] in user or callee in user for user in dialled), callee
    allowed_by = [
        _decided(site.db, _e164(callee))[0][0]
        for callee, (_, final) in zip(callees, results, strict=True) if final == BUSY
    ]  # fmt: skip
    assert "a" in allowed_by and "b" in allowed_by, allowed_by  # a took calls before it died
    after_kill = [
        (callee, final) for callee, (started, final) in zip(callees, results, strict=True)
        if started > killed_at[0]
    ]  # fmt: skip
    assert len(after_kill) >= 80, len(after_kill)  # about 94; calls start during the kill
    assert all(final == BUSY for _, final in after_kill), after_kill
    assert {_decided(site.db, _e164(c))[0][0] for c, _ in after_kill} == {"b"}
