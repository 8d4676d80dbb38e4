"""End to end: the gate's own ARI connections, after a quiet spell and for odd channel ids.

Asterisk closes an HTTP connection idle for session_keep_alive (15 s by default; the
harness's http.conf keeps the default). The gate's per-call requests travel on kept-alive
connections of its own (ari_app/rest.py): the first call after a quiet spell must not be
written to a connection Asterisk has dropped.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from harness.gate import ari_request

CALLEE = "0612345678"
NPV = "+33948000001"
BUSY = 486  # the carrier answers busy: the call reached it
# Longer than Asterisk's default session_keep_alive of 15 s.
QUIET_SECONDS = 17


def test_a_call_after_asterisk_dropped_the_idle_connections_reaches_the_carrier(pbx, site):
    site.consent(CALLEE)
    gate = site.gate()
    gate.start()
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == BUSY
    port = pbx.asterisk.ports.http
    # The events WebSocket, and the connection the call's requests went on (at least).
    assert _connections(gate.process.pid, port) >= 2
    time.sleep(QUIET_SECONDS)
    # Asterisk closed every idle one: only the WebSocket is left.
    assert _connections(gate.process.pid, port) == 1
    assert pbx.call(NPV, CALLEE).final == BUSY
    assert len(pbx.carrier.invites()) - before == 2
    assert [row[0] for row in site.decisions()] == ["allow", "allow"]
    log = site.gate_log()
    assert "cannot hand the verdict back" not in log
    assert "ARI unreachable" not in log


def _connections(pid: int, port: int) -> int:
    """The process's established TCP connections to ``port`` on loopback (IPv4)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target.removeprefix("socket:[").removesuffix("]"))
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port and inode in sockets:
            count += 1
    return count


def test_a_call_originated_with_a_channel_id_of_its_own_choosing_is_handed_back(pbx, site):
    """ARI's originate lets the dialer name the channels ("odd one;2"): the verdict must
    still reach that channel, and the allowed call the carrier."""
    callee = "0612345678"
    site.consent(callee)
    site.gate().start()
    before = len(pbx.carrier.invites())
    status, _ = ari_request(
        pbx.asterisk.ari_url, pbx.password, "POST", "/channels",
        {"endpoint": f"Local/{callee}@callgate-outbound", "context": "originate-demo",
         "extension": "s", "priority": 1, "callerId": "0612345678",
         "channelId": "odd one;1", "otherChannelId": "odd one;2"},
    )  # fmt: skip
    assert status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pbx.carrier.invites()) == before:
        time.sleep(0.1)
    assert [invite.uri_user for invite in pbx.carrier.invites()[before:]] == [callee]
    assert "cannot hand the verdict back" not in site.gate_log()
