"""The configuration's [ami] section, for `callgate doctor`: validated like the others."""

from __future__ import annotations

import re

import pytest

from callgate.config import AmiSettings, ConfigError, parse_config


def test_no_ami_table_means_no_ami():
    config = parse_config({})
    assert config.ami is None
    assert "ami" not in config.tables


def test_an_ami_table_takes_its_defaults():
    config = parse_config({"ami": {"password_file": "/etc/callgate/ami-password"}})
    assert config.ami == AmiSettings(password_file="/etc/callgate/ami-password")
    assert (config.ami.host, config.ami.port, config.ami.username) == (
        "127.0.0.1",
        5038,
        "callgate",
    )
    assert "ami" in config.tables


def test_an_ipv6_host_is_an_address():
    assert parse_config({"ami": {"host": "[::1]"}}).ami.host == "::1"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": 0}, "ami.port: must be 1 to 65535, not 0"),
        ({"port": 70000}, "ami.port: must be 1 to 65535, not 70000"),
        ({"port": "5038"}, "ami.port: expected an integer"),
        ({"port": True}, "ami.port: expected an integer"),
        ({"host": "127.0.0.1:5038"}, "ami.host: '127.0.0.1:5038' is not a host"),
        ({"host": ""}, "ami.host"),
        ({"username": " "}, "ami.username: empty"),
        ({"password": "inline"}, "ami.password: unknown key"),
        ({"password_file": 3}, "ami.password_file: expected a string"),
    ],
)
def test_a_bad_ami_value_stops_naming_the_key(table, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_config({"ami": table})


def test_the_ami_password_comes_from_its_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "ami-password"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("CALLGATE_AMI_PASSWORD", raising=False)
    settings = AmiSettings(password_file=str(secret))
    assert settings.password() == "s3cret"
    monkeypatch.setenv("CALLGATE_AMI_PASSWORD", "from-env")
    assert settings.password() == "from-env"
    monkeypatch.delenv("CALLGATE_AMI_PASSWORD")
    with pytest.raises(ConfigError, match=re.escape("ami.password_file: not set")):
        AmiSettings().password()
