"""FastAGI protocol pieces, with literal lines: headers in, quoted values out; and a
client that plays Asterisk's side of a FastAGI conversation, for the gate's other tests."""

import asyncio
import socket
from collections.abc import Mapping

import pytest

from agi import server
from agi.server import AgiHangup, _Request, agi_quote, parse_headers

COMPANY_NUMBER = "+33948000001"  # acme's metropolitan NPV number in examples/callgate.toml
CALLEE = "0612345678"


def asterisk_headers(script: str = "check", *arguments: str, callerid: str = COMPANY_NUMBER,
                     extension: str = CALLEE) -> bytes:  # fmt: skip
    """The header block Asterisk sends for AGI(agi://127.0.0.1:4573/SCRIPT,ARGUMENTS...)."""
    headers = {
        "agi_network": "yes", "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}", "agi_channel": "PJSIP/agent-00000001",
        "agi_language": "fr", "agi_type": "PJSIP", "agi_uniqueid": "1733475000.1",
        "agi_version": "22.1.0", "agi_callerid": callerid, "agi_calleridname": "Agent",
        "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
        "agi_callingtns": "0", "agi_dnid": extension, "agi_rdnis": "unknown",
        "agi_context": "callgate-via-agi", "agi_extension": extension, "agi_priority": "5",
        "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "140000000000000",
    }  # fmt: skip
    headers.update({f"agi_arg_{n}": value for n, value in enumerate(arguments, 1)})
    return "".join(f"{name}: {value}\n" for name, value in headers.items()).encode() + b"\n"


def asterisk_reply(command: str, variables: Mapping[str, str]) -> bytes:
    """What Asterisk answers to one AGI command."""
    if command.startswith("GET VARIABLE "):
        value = variables.get(command.removeprefix("GET VARIABLE "))
        return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()
    return b"200 result=1\n" if command.startswith("SET VARIABLE ") else b"200 result=0\n"


def play_asterisk(port: int, headers: bytes, variables: Mapping[str, str] | None = None,
                  timeout: float = 5.0) -> list[str]:  # fmt: skip
    """One FastAGI conversation played as Asterisk plays it: the headers, then an answer
    to each command until the gate closes. The commands, in order."""
    commands = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(headers)
        for line in sock.makefile("rb"):
            commands.append(line.decode().rstrip("\n"))
            sock.sendall(asterisk_reply(commands[-1], variables or {}))
    return commands


def result_of(commands: list[str]) -> list[str]:
    """The fields of CALLGATE_RESULT as the gate set it (VERDICT, CODES, ...)."""
    [value] = [c for c in commands if c.startswith("SET VARIABLE CALLGATE_RESULT ")]
    return value.removeprefix("SET VARIABLE CALLGATE_RESULT ").strip('"').split("|")


def test_headers_are_parsed_from_asterisk_lines():
    lines = [
        b"agi_network: yes\n",
        b"agi_network_script: check\n",
        b"agi_callerid: 0612345678\n",
        b"agi_extension: 0696123456\n",
        b"agi_arg_1: acme\n",
        b"agi_arg_2: \n",
    ]
    headers = parse_headers(lines)
    assert headers["agi_network_script"] == "check"
    assert headers["agi_extension"] == "0696123456"
    assert headers["agi_arg_1"] == "acme"
    assert headers["agi_arg_2"] == ""


def test_values_are_quoted_for_set_variable():
    assert agi_quote("ALLOW|CLI_REWRITTEN|||+33948000001") == '"ALLOW|CLI_REWRITTEN|||+33948000001"'
    assert agi_quote('a"b\\c') == '"a\\"b\\\\c"'


async def _request_reading(data: bytes) -> _Request:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return _Request(app=None, headers={}, reader=reader, writer=None)


async def test_a_result_line_is_parsed():
    request = await _request_reading(b"200 result=1 (d-42)\n")
    assert (await request._read_result())["result"] == ("1", "d-42")


@pytest.mark.parametrize("data", [b"", b"HANGUP\n"])
async def test_end_of_file_and_hangup_end_the_conversation(data):
    request = await _request_reading(data)
    with pytest.raises(AgiHangup):
        await request._read_result()


@pytest.mark.parametrize(
    "data",
    [b"not an AGI reply\n", b"\xff\xfe\n", b"9" * 5000 + b"\n"],
    ids=["text", "latin", "long"],
)
async def test_a_line_that_is_no_agi_reply_ends_the_conversation(data):
    request = await _request_reading(data)
    with pytest.raises(server.AgiProtocolError):
        await request._read_result()


async def test_a_reply_line_over_the_limit_ends_the_conversation():
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(b"200 result=1 (" + b"x" * 4096 + b")\n")
    reader.feed_eof()
    request = _Request(app=None, headers={}, reader=reader, writer=None)
    with pytest.raises(server.AgiProtocolError):
        await request._read_result()
