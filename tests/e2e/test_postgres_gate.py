"""The ARI gate on a shared PostgreSQL store, and what it does when PostgreSQL goes away."""

from __future__ import annotations

import time

from harness.gate import write_config

CALLEE = "0612345678"
NPV = "+33948000001"
BUSY, REJECTED = 486, 403


def _pg_site(site, postgres):
    url = postgres.new_database()
    write_config(
        site.config, db=url, ari_url=site.pbx.asterisk.ari_url,  # type: ignore[arg-type]
        password_file=site.workdir / "ari-password",
    )  # fmt: skip
    return url


def test_the_gate_fails_closed_while_postgresql_is_down_and_recovers(pbx, site, postgres):
    _pg_site(site, postgres)
    site.consent(CALLEE)
    site.gate().start()
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == BUSY
    postgres.pause()
    try:
        outage = [pbx.call(NPV, CALLEE).final for _ in range(3)]
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
