"""FastAGI protocol pieces, with literal lines: headers in, quoted values out."""

import asyncio

import pytest

from agi.server import AgiHangup, _Request, agi_quote, parse_headers


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
