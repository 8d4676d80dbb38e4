"""RULES-FR §1: the presented number."""

import pytest
from builders import (
    MARTINIQUE_NPV,
    METRO_NPV,
    MQ_MOBILE,
    PARIS_GEO,
    RE_MOBILE,
    REUNION_NPV,
    a_config,
    a_request,
    codes,
    judge,
    paris,
)

from callgate.model import Purpose

NOW = paris(2026, 11, 23, 11)


def test_compliant_npv_is_kept_without_reason():
    decision = judge(NOW, a_request(caller="0948000001"))
    assert decision.allowed
    assert decision.reasons == ()
    assert decision.caller_out == METRO_NPV


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("anonymous", {"CLI_MISSING"}),
        ("", {"CLI_MISSING"}),
        ("restricted", {"CLI_MISSING"}),
        ("garbage", {"CLI_INVALID"}),
        ("0612345678", {"CLI_MOBILE", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("0756123456", {"CLI_MOBILE", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("0890000000", {"CLI_FORBIDDEN", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("118712", {"CLI_FORBIDDEN", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("3949", {"CLI_FORBIDDEN", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("+3225551234", {"CLI_FORBIDDEN", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),
        ("0937000000", {"CLI_NOT_NPV", "CLI_NOT_ASSIGNED"}),  # platform range, not NPV
        ("0140000000", {"CLI_NOT_NPV"}),  # in the pool, but geographic
        ("0948999999", {"CLI_NOT_ASSIGNED"}),  # an NPV of somebody else
    ],
)
def test_refused_caller_ids_are_rewritten_with_every_reason(caller, expected):
    decision = judge(NOW, a_request(caller=caller))
    assert decision.allowed
    assert codes(decision, blocking=False) == expected | {"CLI_REWRITTEN"}
    assert decision.caller_out == METRO_NPV


def test_rewrite_prefers_the_callees_territory():
    assert judge(NOW, a_request(MQ_MOBILE, caller="anonymous")).caller_out == MARTINIQUE_NPV
    assert judge(NOW, a_request(caller="anonymous")).caller_out == METRO_NPV


def test_rewrite_falls_back_to_any_allowed_number_of_the_pool():
    # No Réunion NPV in the pool: any allowed number (both NPVs), never the geographic one.
    decision = judge(paris(2026, 11, 23, 9), a_request(RE_MOBILE, caller="anonymous"))
    assert decision.caller_out in {METRO_NPV, MARTINIQUE_NPV}


def test_overseas_npv_serves_la_reunion_and_mayotte():
    config = a_config(companies=[{"id": "acme", "numbers": [METRO_NPV, REUNION_NPV]}])
    reunion = judge(paris(2026, 11, 23, 9), a_request(RE_MOBILE, caller="anonymous"), config=config)
    mayotte = judge(
        paris(2026, 11, 23, 9), a_request("0639012345", caller="anonymous"), config=config
    )
    assert reunion.caller_out == REUNION_NPV
    assert mayotte.caller_out == REUNION_NPV


def test_no_compliant_number_rejects_without_retry():
    config = a_config(companies=[{"id": "acme", "numbers": [PARIS_GEO, "+33612345678"]}])
    decision = judge(NOW, a_request(caller="anonymous"), config=config)
    assert not decision.allowed
    assert codes(decision) == {"CLI_NO_COMPLIANT_NUMBER", "CLI_MISSING"}
    assert decision.retry_after is None
    assert decision.caller_out is None


def test_service_calls_accept_a_geographic_number_of_the_pool():
    decision = judge(NOW, a_request(caller="0140000000", purpose=Purpose.SERVICE))
    assert decision.allowed and decision.reasons == ()
    assert decision.caller_out == PARIS_GEO


def test_service_rewrite_never_uses_a_mobile_even_in_the_pool():
    config = a_config(companies=[{"id": "acme", "numbers": ["+33612345678", PARIS_GEO]}])
    for callee in ("0612345679", "0612345680", "0612345681", "0140000001"):
        decision = judge(
            NOW, a_request(callee, caller="anonymous", purpose=Purpose.SERVICE), config=config
        )
        assert decision.caller_out == PARIS_GEO


def test_30pq_short_numbers_pass_for_service_only():
    config = a_config(companies=[{"id": "acme", "numbers": ["3010", METRO_NPV]}])
    service = judge(NOW, a_request(caller="3010", purpose=Purpose.SERVICE), config=config)
    assert service.reasons == () and service.caller_out == "3010"
    prospecting = judge(NOW, a_request(caller="3010"), config=config)
    assert codes(prospecting, blocking=False) == {"CLI_REWRITTEN", "CLI_NOT_NPV"}


def test_npv_list_is_configuration():
    config = a_config(npv_prefixes={"0140": ["FR-MET"]})
    assert judge(NOW, a_request(caller=PARIS_GEO), config=config).reasons == ()
    assert "CLI_NOT_NPV" in codes(judge(NOW, a_request(caller=METRO_NPV), config=config), False)


def test_sticky_choice_for_one_callee_spreads_over_callees():
    config = a_config(
        companies=[{"id": "acme", "numbers": [f"+3394800000{i}" for i in range(1, 6)]}]
    )
    first = judge(NOW, a_request("0612345678", caller="anonymous"), config=config).caller_out
    for _ in range(3):
        assert (
            judge(NOW, a_request("0612345678", caller="anonymous"), config=config).caller_out
            == first
        )
    chosen = {
        judge(NOW, a_request(f"06123456{i:02d}", caller="anonymous"), config=config).caller_out
        for i in range(40)
    }
    assert len(chosen) >= 3


def test_sticky_choice_survives_removing_another_number():
    numbers = [f"+3394800000{i}" for i in range(1, 6)]
    full = a_config(companies=[{"id": "acme", "numbers": numbers}])
    for i in range(20):
        callee = f"06123456{i:02d}"
        chosen = judge(NOW, a_request(callee, caller="anonymous"), config=full).caller_out
        others = [n for n in numbers if n != chosen]
        smaller = a_config(companies=[{"id": "acme", "numbers": [chosen, *others[1:]]}])
        assert (
            judge(NOW, a_request(callee, caller="anonymous"), config=smaller).caller_out == chosen
        )


def test_caller_id_rules_apply_to_foreign_callees_when_allowed():
    config = a_config(allow_foreign=True)
    decision = judge(NOW, a_request("+3225551234", caller="anonymous"), config=config)
    assert decision.allowed
    assert decision.territory == "BE"
    assert "CLI_REWRITTEN" in codes(decision, blocking=False)
    refused = judge(NOW, a_request("+3225551234"))
    assert codes(refused) == {"DEST_OUT_OF_SCOPE"}
    assert refused.retry_after is None
