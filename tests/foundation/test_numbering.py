import pytest

from controller.numbering import (
    InvalidNumber,
    InvalidPattern,
    NumberClass,
    NumberingPlan,
    dial_string,
    normalize_e164,
    search_forms,
)

PLAN = NumberingPlan(internal=(r"^[1-5]\d{3}$",), ring_groups=(r"^6\d{2}$",), private_extensions=(r"^8\d{4}$",))


@pytest.mark.parametrize("raw", ["+1 (555) 123-4567", "15551234567", "+15551234567", "555-123-4567", "1.555.123.4567"])
def test_us_spellings_are_one_number(raw: str) -> None:
    assert normalize_e164(raw, "US") == "+15551234567"


def test_default_country_reads_national_numbers() -> None:
    assert normalize_e164("020 7946 0000", "GB") == "+442079460000"
    assert normalize_e164("+44 20 7946 0000", "US") == "+442079460000"


@pytest.mark.parametrize("raw", ["", "abc", "12", "+1555abc4567", "sip:bob@example.com", "+" + "9" * 20])
def test_malformed_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        normalize_e164(raw, "US")


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("2001", NumberClass.INTERNAL),
        ("5999", NumberClass.INTERNAL),
        ("600", NumberClass.RING_GROUP),
        ("81234", NumberClass.PRIVATE_EXTENSION),
        ("+15557654321", NumberClass.EXTERNAL),
        ("9001", NumberClass.EXTERNAL),  # not in any pattern → external
        ("60", NumberClass.EXTERNAL),
        ("2001-0x5575d5b1bfb0", NumberClass.INTERNAL),  # FreeSWITCH registered contact user
        ("sip:2001@127.0.0.1", NumberClass.INTERNAL),
    ],
)
def test_classify(number: str, expected: NumberClass) -> None:
    assert PLAN.classify(number) is expected


def test_empty_plan_makes_everything_external() -> None:
    plan = NumberingPlan(internal=(), ring_groups=(), private_extensions=())
    assert plan.classify("2001") is NumberClass.EXTERNAL


def test_bad_pattern_names_itself() -> None:
    with pytest.raises(InvalidPattern, match=r"ring_group pattern '\^6\(' does not compile"):
        NumberingPlan(ring_groups=("^6(",))


def test_dial_string_strips_uri_and_contact_suffix() -> None:
    assert dial_string("sips:+15551234567@gw.example") == "+15551234567"
    assert dial_string("2001-0xABC") == "2001"


@pytest.mark.parametrize("raw", ["15551230062", "+1 (555) 123-0062", "+15551230062", "555-123-0062", " 5551230062 "])
def test_a_number_searches_for_every_spelling_the_journal_may_hold(raw: str) -> None:
    assert search_forms(raw, "US") == ("+15551230062", "15551230062", "5551230062")


def test_search_forms_of_extensions_and_foreign_numbers() -> None:
    assert search_forms("2001") == ("2001",)
    assert search_forms("sip:2001@10.0.0.1") == ("2001",)
    assert search_forms("   ") == ()
    assert search_forms("020 7946 0000", "GB") == ("+442079460000", "442079460000", "02079460000")
    # national digits only for a number of the default country: 02079460000 is not a US spelling
    assert search_forms("+44 20 7946 0000", "US") == ("+442079460000", "442079460000")
