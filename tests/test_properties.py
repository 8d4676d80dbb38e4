"""Invariants of decide(), over generated calls, pools, histories and instants."""

from datetime import datetime, timedelta

from builders import PARIS, a_config
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from callgate.model import (
    Appointment,
    Attempt,
    CallRequest,
    Consent,
    ConsentScope,
    Contract,
    Facts,
    Opposition,
    Purpose,
)
from callgate.numbering import parse_number
from callgate.policy import decide
from callgate.rules.fr.caller_id import cli_faults

POOL_CANDIDATES = [
    "+33948000001", "+33948000002", "+33162000001", "+33947700001", "+33947800001",
    "+33947500001", "+33140000000", "+33240000000", "+590590271234", "+33612345678",
    "+33890000000", "+33937000000", "3010",
]  # fmt: skip
CALLERS = [*POOL_CANDIDATES, "anonymous", "", "junk", "0612345670", "118712", "+3225551234"]
CALLEES = [
    "0612345678", "0140000001", "0696123456", "0692123456", "0639012345", "0694123456",
    "0690123456", "+508411234", "+3225551234", "112", "garbage",
]  # fmt: skip
ZONES_OF_CALLEES = [
    "0612345678",
    "0696123456",
    "0692123456",
    "0639012345",
    "0694123456",
    "0690123456",
]

START = datetime(2026, 6, 1, tzinfo=PARIS)
instants = st.integers(min_value=0, max_value=400 * 24 * 60).map(
    lambda m: START + timedelta(minutes=m)
)
purposes = st.sampled_from(list(Purpose))


@st.composite
def configs(draw):
    pool = draw(st.lists(st.sampled_from(POOL_CANDIDATES), min_size=1, max_size=6, unique=True))
    sector = draw(st.sampled_from(["telecom", "telecom", "housing_adaptation"]))
    return a_config(companies=[{"id": "acme", "sector": sector, "numbers": pool}])


@st.composite
def histories(draw, now):
    offsets = st.integers(min_value=0, max_value=90 * 24 * 60).map(
        lambda m: now - timedelta(minutes=m)
    )
    attempts = draw(st.lists(offsets, max_size=7))
    refusals = draw(st.lists(offsets, max_size=1))
    consents = []
    for scope in ConsentScope:
        if draw(st.booleans()):
            given_at = draw(offsets)
            lasts = draw(st.none() | st.integers(1, 400))
            expires = None if lasts is None else given_at + timedelta(days=lasts)
            consents.append(Consent(scope, given_at, expires_at=expires))
    contracts = [Contract(now - timedelta(days=10))] if draw(st.booleans()) else []
    # Appointments around the call, some with an end of their own.
    starts = st.one_of(
        st.integers(min_value=-3 * 24 * 60, max_value=10 * 24 * 60),
        st.integers(min_value=1, max_value=12 * 60),  # often before the next window opens
    ).map(lambda m: now + timedelta(minutes=m))
    appointments = [
        Appointment(start, None if lasts is None else start + timedelta(minutes=lasts))
        for start, lasts in draw(st.lists(
            st.tuples(starts, st.none() | st.integers(1, 240)), max_size=3
        ))
    ]  # fmt: skip
    # An opt-out entered and removed before the call: it revoked the consents before it.
    oppositions = []
    if draw(st.booleans()):
        added = draw(offsets)
        removed = added + timedelta(minutes=draw(st.integers(1, 60 * 24)))
        if removed <= now:
            oppositions.append(Opposition("internal", added, "acme", removed))
    return Facts(
        attempts=tuple(Attempt(a, draw(purposes)) for a in attempts),
        refusals=tuple(refusals),
        consents=tuple(consents),
        contracts=tuple(contracts),
        oppositions=tuple(oppositions),
        appointments=tuple(appointments),
    )


@settings(max_examples=400, deadline=None)
@given(configs(), st.sampled_from(CALLERS), st.sampled_from(CALLEES), purposes, instants)
def test_a_presented_number_is_always_from_the_pool_and_allowed(
    config, caller, callee, purpose, now
):
    decision = decide(CallRequest(caller, callee, "acme", purpose), Facts(), now, config)
    if "EMERGENCY" in decision.codes or decision.caller_out is None:
        return
    assert decision.caller_out in config.companies["acme"].numbers
    assert cli_faults(parse_number(decision.caller_out), purpose, config.rules.npv_prefixes) == ()
    assert not decision.caller_out.startswith(("+336", "+337"))


@settings(max_examples=200, deadline=None)
@given(
    configs(),
    st.sampled_from(CALLERS),
    st.sampled_from(CALLEES),
    purposes,
    instants,
    instants,
    st.randoms(),
)
def test_the_same_callee_always_gets_the_same_number(config, caller, callee, purpose, t1, t2, rnd):
    first = decide(CallRequest(caller, callee, "acme", purpose), Facts(), t1, config)
    pool = list(config.companies["acme"].numbers)
    rnd.shuffle(pool)
    shuffled = a_config(
        companies=[{"id": "acme", "numbers": pool, "sector": config.companies["acme"].sector}]
    )
    again = decide(CallRequest(caller, callee, "acme", purpose), Facts(), t2, shuffled)
    if "CLI_REWRITTEN" in first.codes and "CLI_REWRITTEN" in again.codes:
        assert first.caller_out == again.caller_out


@st.composite
def rejected_calls(draw):
    now = draw(instants)
    callee = draw(st.sampled_from(ZONES_OF_CALLEES))
    purpose = draw(st.sampled_from([Purpose.PROSPECTING, Purpose.CONTRACT, Purpose.NEWSPAPER]))
    known = draw(histories(now))
    return CallRequest("+33948000001", callee, "acme", purpose), known, now


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rejected_calls(), st.lists(st.floats(min_value=0, max_value=1), min_size=5, max_size=5))
def test_retry_after_is_the_earliest_instant_that_allows_the_same_call(call, fractions):
    request, known, now = call
    config = a_config(companies=[{"id": "acme", "numbers": ["+33948000001", "+33947700001"]}])
    decision = decide(request, known, now, config)
    assume(not decision.allowed)
    if decision.retry_after is None:
        return
    retry = decision.retry_after
    event("retry: " + ",".join(sorted(r.code for r in decision.reasons if r.blocking)))
    if any(a.start == retry for a in known.appointments):
        event("retry at an appointment's start")
    assert retry >= now
    assert (
        retry.utcoffset()
        == retry.astimezone(parse_number(request.callee).territory.zone).utcoffset()
    )
    assert decide(request, known, retry, config).allowed
    if retry > now:
        assert not decide(request, known, retry - timedelta(seconds=1), config).allowed
        for fraction in fractions:
            earlier = now + (retry - now) * fraction
            if earlier < retry:
                assert not decide(request, known, earlier, config).allowed, earlier


OPT_IN = datetime(2026, 8, 12, tzinfo=PARIS)  # 2026-08-11 everywhere, even at UTC-4


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=300 * 24 * 60),
    st.integers(min_value=1, max_value=4 * 24 * 60),
    st.sampled_from(ZONES_OF_CALLEES),
)
def test_an_appointment_before_the_next_window_is_the_retry_time(minute, ahead, callee):
    """From 2026-08-11, a call refused for its hours with an appointment ahead: retry_after
    is the appointment's start when it comes before the next window opens."""
    config = a_config(companies=[{"id": "acme", "numbers": ["+33948000001", "+33947700001"]}])
    now = OPT_IN + timedelta(minutes=minute)
    request = CallRequest("+33948000001", callee, "acme", Purpose.NEWSPAPER)
    plain = decide(request, Facts(), now, config)
    assume(not plain.allowed)
    start = now + timedelta(minutes=ahead)
    decision = decide(request, Facts(appointments=(Appointment(start),)), now, config)
    assert decision.retry_after == min(start, plain.retry_after)
    assert decide(request, Facts(appointments=(Appointment(start),)), start, config).allowed
