"""API tokens and their scopes: the tokens file, the single admin token, and what each
scope may call on /v1."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import a_config
from test_api import ENDPOINTS

from callgate import cli
from callgate.api import make_app
from callgate.config import ConfigError, parse_config
from callgate.store import open_store
from callgate.tokens import Tokens, expand, parse_tokens, tokens_of

READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
BOTH = "both-token-0123456789abcdef"
FILE = f"""# the console's and the dialers' tokens
read {READ}

write   {WRITE}   # the dialer
admin {ADMIN}
read,write {BOTH}
"""


def test_a_tokens_file_gives_each_token_its_scopes():
    tokens = tokens_of(parse_tokens(FILE))
    assert tokens.scopes_of(READ) == {"read"}
    assert tokens.scopes_of(WRITE) == {"write"}
    assert tokens.scopes_of(ADMIN) == {"admin", "read", "write"}
    assert tokens.scopes_of(BOTH) == {"read", "write"}
    assert len(tokens) == 4


@pytest.mark.parametrize("given", ["", READ[:-1], READ + "x", READ.upper(), f" {READ}", "\udcff"])
def test_anything_but_a_whole_token_has_no_scope(given):
    assert tokens_of(parse_tokens(FILE)).scopes_of(given) is None


def test_the_single_token_is_an_admin_token():
    assert Tokens.admin(ADMIN).scopes_of(ADMIN) == expand({"admin"}) == {"admin", "read", "write"}
    tokens = tokens_of(parse_tokens(f"read {READ}"), ADMIN)
    assert tokens.scopes_of(ADMIN) == {"admin", "read", "write"}
    assert tokens.scopes_of(READ) == {"read"}


def test_a_repr_never_shows_a_token():
    assert READ not in repr(tokens_of(parse_tokens(FILE)))


SECRET = "s3cret-token-that-must-not-leak"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (f"reed {SECRET}", 1, "unknown scope 'reed' (known: read, write, admin)"),
        (f"read,\n{SECRET}", 1, "expected 'SCOPE[,SCOPE...] TOKEN'"),
        (f"# tokens\n\n{SECRET} read", 3, "unknown scope (known: read, write, admin)"),
        (f"read,root {SECRET}", 1, "unknown scope 'root'"),
        (f"read, write {SECRET}", 1, "expected 'SCOPE[,SCOPE...] TOKEN'"),
        (f"read {SECRET} extra", 1, "expected 'SCOPE[,SCOPE...] TOKEN'"),
        (f"read {SECRET}\nwrite {SECRET}", 2, "the same token as line 1"),
        ("read short-token", 1, "the token must be 16 characters or more"),
        (f"read {SECRET}é", 1, "the token must be printable ASCII without spaces"),
        (f"read\n{SECRET}", 1, "expected 'SCOPE[,SCOPE...] TOKEN'"),
    ],
)
def test_a_bad_line_is_named_and_its_token_never_shown(text, line, message):
    with pytest.raises(ConfigError) as raised:
        parse_tokens(text)
    error = str(raised.value)
    assert error.startswith(f"api.tokens_file: line {line}: ")
    assert message in error
    assert SECRET not in error
    assert "\n" not in error


def test_api_settings_read_the_tokens_file_and_the_single_token(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLGATE_API_TOKEN", raising=False)
    path = tmp_path / "tokens"
    path.write_text(FILE)
    single = tmp_path / "token"
    single.write_text(ADMIN.replace("admin", "other") + "\n")
    both = _api(tokens_file=str(path), token_file=str(single)).tokens()
    assert both.scopes_of(READ) == {"read"}
    assert both.scopes_of(ADMIN.replace("admin", "other")) == {"admin", "read", "write"}
    assert _api(tokens_file=str(path)).tokens().scopes_of(WRITE) == {"write"}
    monkeypatch.setenv("CALLGATE_API_TOKEN", SECRET)
    assert _api().tokens().scopes_of(SECRET) == {"admin", "read", "write"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "api: no token; set api.tokens_file, api.token_file or $CALLGATE_API_TOKEN"),
        ("# nothing yet\n", "api: api.tokens_file has no token; set api.tokens_file"),
        (f"write {SECRET}\n", "api.token_file: the same token is in api.tokens_file"),
        (f"read {SECRET}\nread x\n", "api.tokens_file: line 2: the token must be 16"),
    ],
)
def test_api_settings_say_which_keys_to_set(tmp_path, monkeypatch, content, message):
    monkeypatch.delenv("CALLGATE_API_TOKEN", raising=False)
    settings = {}
    if content is not None:
        (tmp_path / "tokens").write_text(content)
        settings["tokens_file"] = str(tmp_path / "tokens")
    if "same token" in message:
        monkeypatch.setenv("CALLGATE_API_TOKEN", SECRET)
    with pytest.raises(ConfigError) as raised:
        _api(**settings).tokens()
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_tokens_file_that_cannot_be_read_is_one_line(tmp_path):
    for path, message in [
        (tmp_path / "missing", "cannot read"),
        (tmp_path, "is not a regular file"),
    ]:
        with pytest.raises(ConfigError, match=f"^api.tokens_file: .*{message}"):
            _api(tokens_file=str(path)).tokens()
    (tmp_path / "binary").write_bytes(b"read \xff" + b"x" * 20)
    with pytest.raises(ConfigError, match="not UTF-8"):
        _api(tokens_file=str(tmp_path / "binary")).tokens()


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({"session_minutes": 4}, "api.session_minutes: must be 5 to 10080 minutes, not 4"),
        ({"session_minutes": 10_081}, "api.session_minutes: must be 5 to 10080 minutes"),
        ({"session_minutes": "8h"}, "api.session_minutes: expected an integer"),
        ({"secure_cookies": "yes"}, "api.secure_cookies: expected true or false"),
        ({"tokens_file": 1}, "api.tokens_file: expected a string"),
    ],
)
def test_the_console_keys_are_checked(api, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"api": api})


def test_the_console_keys_have_defaults():
    settings = parse_config({}).api
    assert (settings.session_minutes, settings.secure_cookies, settings.tokens_file) == (
        480, False, None,
    )  # fmt: skip
    given = parse_config({"api": {"session_minutes": 5, "secure_cookies": True}}).api
    assert (given.session_minutes, given.secure_cookies) == (5, True)


def test_callgate_api_with_a_bad_tokens_file_is_one_line_and_status_2(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("CALLGATE_API_TOKEN", raising=False)
    (tmp_path / "tokens").write_text(f"read {SECRET}\nsuper {SECRET[::-1]}\n")
    config = tmp_path / "callgate.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/callgate.db"\n'
        f'[api]\nbind = "127.0.0.1:1"\ntokens_file = "{tmp_path}/tokens"\n'
    )
    assert cli.main(["--config", str(config), "api"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "api.tokens_file: line 2: unknown scope 'super'" in error
    assert SECRET not in error and SECRET[::-1] not in error


def _api(**settings: str):
    return parse_config({"api": settings}).api


# ---------------------------------------------------------------- scopes on the API


@pytest.fixture
async def client(tmp_path):
    store = await open_store(str(tmp_path / "callgate.db"))
    app = make_app(store, a_config(), tokens_of(parse_tokens(FILE)))
    async with TestClient(TestServer(app)) as client:
        yield client
    await store.close()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_read_is_every_get_and_write_every_post(client, method, path):
    needed = "read" if method == "GET" else "write"
    for token in (READ, WRITE):
        reply = await client.request(method, path, headers=_auth(token))
        if token.startswith(needed):
            assert reply.status not in (401, 403), await reply.text()
        else:
            assert reply.status == 403
            assert await reply.json() == {
                "error": "forbidden", "message": f"this token lacks the '{needed}' scope",
            }  # fmt: skip
    for token in (ADMIN, BOTH):
        reply = await client.request(method, path, headers=_auth(token))
        assert reply.status not in (401, 403), await reply.text()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_an_unknown_token_is_still_401(client, method, path):
    for headers in ({}, _auth("wrong-token-0123456789abcdef"), {"Authorization": READ}):
        reply = await client.request(method, path, headers=headers)
        assert reply.status == 401
        assert (await reply.json())["error"] == "unauthorized"


async def test_healthz_needs_no_token(client):
    assert (await client.get("/healthz")).status == 200


async def test_a_read_token_cannot_record_an_outcome(client):
    body = {"to": "0612345678", "outcome": "refused"}
    reply = await client.post("/v1/outcomes", json=body, headers=_auth(READ))
    assert reply.status == 403
    listed = await client.get("/v1/decisions", headers=_auth(READ))
    assert listed.status == 200
    written = await client.post("/v1/outcomes", json=body, headers=_auth(WRITE))
    assert written.status == 201
