import pytest

from callgate.numbering import Category, Kind, Territory, classify, npv_territories, parse_number


@pytest.mark.parametrize(
    "raw",
    ["0612345678", "+33612345678", "0033612345678", "06 12 34 56 78", "06.12.34.56.78",
     "+33 (0)6 12 34 56 78".replace("(0)", ""), "06-12-34-56-78"],
)  # fmt: skip
def test_the_forms_a_dialplan_hands_over_give_one_e164(raw):
    number = parse_number(raw)
    assert number.kind is Kind.VALID
    assert number.e164 == "+33612345678"
    assert number.territory is Territory.MET
    assert number.national == "0612345678"


@pytest.mark.parametrize(
    ("raw", "e164", "territory"),
    [
        ("0590271234", "+590590271234", Territory.GP),
        ("0690123456", "+590690123456", Territory.GP),
        ("0594123456", "+594594123456", Territory.GF),
        ("0694123456", "+594694123456", Territory.GF),
        ("0596661234", "+596596661234", Territory.MQ),
        ("0696123456", "+596696123456", Territory.MQ),
        ("0262123456", "+262262123456", Territory.RE),
        ("0692123456", "+262692123456", Territory.RE),
        ("0269612345", "+262269612345", Territory.YT),
        ("0639012345", "+262639012345", Territory.YT),
        ("+262269612345", "+262269612345", Territory.YT),
        ("+262692123456", "+262692123456", Territory.RE),
        ("+596696123456", "+596696123456", Territory.MQ),
        ("00590690123456", "+590690123456", Territory.GP),
        ("+508411234", "+508411234", Territory.PM),
    ],
)
def test_overseas_numbers_map_to_their_own_plan_and_territory(raw, e164, territory):
    number = parse_number(raw)
    assert (number.kind, number.e164, number.territory) == (Kind.VALID, e164, territory)


def test_overseas_time_zones():
    assert str(parse_number("0696123456").territory.zone) == "America/Martinique"
    assert str(parse_number("0692123456").territory.zone) == "Indian/Reunion"
    assert str(parse_number("0639012345").territory.zone) == "Indian/Mayotte"
    assert str(parse_number("0694123456").territory.zone) == "America/Cayenne"
    assert str(parse_number("+508411234").territory.zone) == "America/Miquelon"
    assert str(parse_number("0140000000").territory.zone) == "Europe/Paris"


@pytest.mark.parametrize(
    "raw", ["", "   ", "anonymous", "Anonymous", "unknown", "restricted", None]
)
def test_masked_numbers_are_missing(raw):
    assert parse_number(raw).kind is Kind.MISSING


@pytest.mark.parametrize(
    "raw", ["abc", "06123", "061234567890", "+33", "0012", "06x2345678", "++33612345678"]
)
def test_junk_is_invalid_and_never_raises(raw):
    number = parse_number(raw)
    assert number.kind is Kind.INVALID
    assert number.e164 is None


def test_foreign_numbers_are_valid_but_not_french():
    number = parse_number("+3225551234")
    assert number.kind is Kind.VALID
    assert number.region == "BE"
    assert number.territory is None
    assert classify(number) is Category.OTHER


@pytest.mark.parametrize(
    ("raw", "category"),
    [
        ("0612345678", Category.MOBILE),
        ("0756123456", Category.MOBILE),
        ("0690123456", Category.MOBILE),
        ("0140000000", Category.GEOGRAPHIC),
        ("0590271234", Category.GEOGRAPHIC),
        ("0948000001", Category.NPV_METRO),
        ("0162000000", Category.NPV_METRO),
        ("0569000000", Category.NPV_METRO),
        ("0947700001", Category.NPV_OVERSEAS),
        ("0947900001", Category.NPV_OVERSEAS),
        ("0890000000", Category.PREMIUM_089),
        ("118712", Category.DIRECTORY_118),
        ("3949", Category.SHORT),
        ("0937000000", Category.OTHER),  # technical platforms, not NPV
        ("0800123456", Category.OTHER),
        ("anonymous", Category.NONE),
    ],
)
def test_categories(raw, category):
    assert classify(parse_number(raw)) is category


def test_npv_territories():
    assert npv_territories(parse_number("0947700001")) == {Territory.MQ}
    assert npv_territories(parse_number("0947800001")) == {Territory.RE, Territory.YT}
    assert npv_territories(parse_number("0948000001")) == {Territory.MET}
    assert npv_territories(parse_number("0938000001")) == frozenset()
    assert npv_territories(parse_number("0612345678")) == frozenset()


def test_short_codes_are_kept_as_dialled():
    number = parse_number("112")
    assert (number.kind, number.national, number.e164) == (Kind.SHORT, "112", None)
