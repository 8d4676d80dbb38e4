"""The real `callgate api` process: started as a user starts it, fuzzed from its OpenAPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_cli import CALLGATE, EXAMPLE

from harness.sipp import free_port

TOKEN = "fuzzing-token-0123456789abcdef"
OPENAPI = Path(__file__).parent.parent / "callgate" / "openapi.yaml"


@pytest.fixture
def api(tmp_path):
    port = free_port()
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "api.db"),
           "CALLGATE_API_TOKEN": TOKEN}  # fmt: skip
    process = subprocess.Popen(
        [CALLGATE, "api", "--bind", f"127.0.0.1:{port}"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as reply:
                assert reply.status == 200
                break
        except OSError:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "callgate api did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert "Traceback" not in process.stderr.read()


def test_the_api_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CALLGATE_API_TOKEN"}
    env.update(CALLGATE_CONFIG=str(EXAMPLE), CALLGATE_DB=str(tmp_path / "x.db"))
    result = subprocess.run([CALLGATE, "api"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "api.token_file: cannot read /etc/callgate/api-token" in result.stderr


def test_no_request_the_openapi_document_allows_makes_a_server_error(api):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is a test dependency"
    result = subprocess.run(
        [st, "run", str(OPENAPI), "--url", api, "-H", f"Authorization: Bearer {TOKEN}",
         "--checks", "not_a_server_error", "-n", "20", "--generation-deterministic"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout
