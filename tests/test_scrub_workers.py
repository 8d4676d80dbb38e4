"""Scrubbing on several cores: worker processes give the in-process verdicts, in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta

import pytest
from test_cli import CALLGATE, EXAMPLE

from callgate.config import ConfigError, load_config, parse_config
from callgate.model import Consent, ConsentScope
from callgate.scrub import BATCH, scrub
from callgate.scrub_workers import ScrubWorkers
from callgate.store import StoreError, open_store
from harness.sipp import free_port

NOW = datetime.fromisoformat("2026-11-23T11:00:00+01:00")  # a Monday, opt-in regime


def number(i: int) -> str:
    return f"06{20_000_000 + i:08d}"


async def seeded_store(path):
    """Consents for even numbers, one in seven on the opposition list, refusals for some."""
    store = await open_store(str(path))
    for i in range(0, 3 * BATCH, 2):
        consent = Consent(ConsentScope.PROSPECTING, NOW - timedelta(days=30))
        await store.add_consent("acme", "+33" + number(i)[1:], consent)
    listed = ["+33" + number(i)[1:] for i in range(0, 3 * BATCH, 7)]
    await store.add_oppositions(listed, None, "bloctel", NOW - timedelta(days=60))
    for i in range(0, 3 * BATCH, 11):
        await store.add_refusal("acme", "+33" + number(i)[1:], NOW - timedelta(days=3), "test")
    return store


def call_list() -> list[str]:
    """Three batches and a bit: numbers with every kind of fact, and malformed ones."""
    numbers = [number(i) for i in range(3 * BATCH)]
    numbers[5] = "not a number"
    numbers[BATCH + 3] = ""
    numbers[2 * BATCH + 1] = numbers[2 * BATCH]  # the same number twice
    return [*numbers, "+33612345678", "112"]


async def results(store, config, workers=None):
    async def numbers():
        for raw in call_list():
            yield raw

    caller = config.companies["acme"].numbers[0]
    judged = scrub(
        store, config, numbers(), caller=caller, company="acme", purpose=None, now=NOW,
        workers=workers,
    )  # fmt: skip
    return [result async for result in judged]


@pytest.fixture
async def seeded(tmp_path):
    """The seeded store, the configuration, and two started workers on the same file."""
    db = tmp_path / "scrub.db"
    store = await seeded_store(db)
    workers = ScrubWorkers(EXAMPLE, str(db), 2)
    try:
        await workers.start()
        yield store, load_config(EXAMPLE), workers
    finally:
        workers.close()
        await store.close()


async def test_workers_give_the_in_process_verdicts_in_the_list_order(seeded):
    store, config, workers = seeded
    alone = await results(store, config)
    shared = await results(store, config, workers)
    assert shared == alone
    assert [r["to"] for r in shared] == call_list()
    codes = {code for r in shared for code in r["reasons"]}
    # The list exercised the rules that read facts, and the malformed numbers.
    assert {"OPPOSITION_LISTED", "CONSENT_MISSING", "REFUSAL_COOLDOWN", "DEST_INVALID"} <= codes
    assert sum(r["verdict"] == "allow" for r in shared) > BATCH // 2


async def test_a_dead_worker_fails_the_scrub_and_the_next_scrub_starts_afresh(seeded):
    store, config, workers = seeded
    pool = workers._executor()
    for pid in list(pool._processes):  # the only way in: the pool does not name them
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(StoreError, match="scrub worker process died"):
        await results(store, config, workers)
    again = await results(store, config, workers)
    assert len(again) == len(call_list())


def test_scrub_workers_out_of_range_stop_the_configuration():
    with pytest.raises(ConfigError, match=r"api\.scrub_workers: must be 1 to 64, not 0"):
        parse_config({"api": {"scrub_workers": 0}})
    with pytest.raises(ConfigError, match=r"api\.scrub_workers: expected an integer"):
        parse_config({"api": {"scrub_workers": "4"}})


def test_the_api_refuses_scrub_workers_it_cannot_give_a_store(tmp_path):
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": ":memory:",
           "CALLGATE_API_TOKEN": "x" * 20}  # fmt: skip
    result = subprocess.run(
        [CALLGATE, "api", "--scrub-workers", "2"], env=env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert ":memory: lives in one process" in result.stderr
    result = subprocess.run(
        [CALLGATE, "api", "--scrub-workers", "0"], env=env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--scrub-workers: must be 1 to 64, not '0'" in result.stderr


def test_the_real_api_scrubs_with_workers_and_leaves_none_behind(tmp_path):
    token = "workers-token-0123456789"
    db = tmp_path / "api.db"
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(db),
           "CALLGATE_API_TOKEN": token}  # fmt: skip
    opted_out = tmp_path / "optouts.txt"
    opted_out.write_text("0620000000\n")
    subprocess.run([CALLGATE, "optout", "import", str(opted_out), "--at", "2026-01-01"],
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    port = free_port()
    api = subprocess.Popen(
        [CALLGATE, "api", "--bind", f"127.0.0.1:{port}", "--scrub-workers", "2"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                assert api.poll() is None, api.stderr.read()
                assert time.monotonic() < deadline, "callgate api did not start"
                time.sleep(0.2)
        children = _children(api.pid)  # two workers, and multiprocessing's resource tracker
        assert len(children) == 3
        body = "".join(f"{number(i)}\n" for i in range(2 * BATCH + 10)).encode()
        request = urllib.request.Request(
            f"{url}/v1/scrub?company=acme&at=2026-11-23T11:00:00%2B01:00", data=body,
            headers={"Authorization": f"Bearer {token}"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as reply:
            lines = [json.loads(line) for line in reply.read().splitlines()]
    finally:
        api.terminate()
        status = api.wait(timeout=30)
    assert status == 0
    assert "Traceback" not in api.stderr.read()
    assert [line["to"] for line in lines] == [number(i) for i in range(2 * BATCH + 10)]
    assert lines[0]["reasons"] == ["OPPOSITION_LISTED", "CONSENT_MISSING"]
    assert lines[1]["reasons"] == ["CONSENT_MISSING"]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in children if _alive(pid)] == []


def test_workers_do_not_outlive_an_api_killed_outright(tmp_path):
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "k.db"),
           "CALLGATE_API_TOKEN": "workers-token-0123456789"}  # fmt: skip
    port = free_port()
    api = subprocess.Popen(
        [CALLGATE, "api", "--bind", f"127.0.0.1:{port}", "--scrub-workers", "2"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(children := _children(api.pid)) < 3:
        assert api.poll() is None and time.monotonic() < deadline, "no workers started"
        time.sleep(0.2)
    api.kill()
    api.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in children if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]
