"""After a reconnect the gate finds waiting channels by id: their Stasis arguments are
rebuilt from the dialplan application's data, or the call is refused, never guessed."""

import pytest

from ari_app.gate import _stasis_arguments


def channel(app: str, data: str) -> dict:
    return {"id": "c", "dialplan": {"app_name": app, "app_data": data}}


@pytest.mark.parametrize(
    ("app", "data", "arguments"),
    [
        ("Stasis", "callgate", []),
        ("Stasis", "callgate,company=acme,purpose=service", ["company=acme", "purpose=service"]),
        ("StasisBroadcast", "500,^callgate", []),
        ("StasisBroadcast", "500,^callgate,company=acme:purpose=contract",
         ["company=acme", "purpose=contract"]),
    ],
)  # fmt: skip
def test_the_arguments_are_rebuilt(app, data, arguments):
    assert _stasis_arguments(channel(app, data)) == arguments


@pytest.mark.parametrize(
    ("app", "data"),
    [("Stasis", 'callgate,"company=acme"'), ("Stasis", "callgate,a\\,b"), ("Wait", "5")],
)
def test_arguments_that_cannot_be_rebuilt_exactly_are_lost(app, data):
    assert _stasis_arguments(channel(app, data)) is None
