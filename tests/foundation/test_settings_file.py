import pytest

from controller.policy import PolicyError
from controller.settings_file import dump_settings, parse_settings

EXAMPLE = r"""
default_country = "US"
[accounts.main]
record_inbound = true
record_outbound = false
continue_on_external_transfer = false
agent_pause_allowed = false
retention_days = 183
[accounts.main.numbering]
internal = ["^[1-5]\\d{3}$"]
ring_groups = ["^6\\d{2}$"]
private_extensions = ["^8\\d{4}$"]
[accounts.main.numbers."+1 (555) 123-4567"]
record_inbound = false
agent_pause_allowed = true
[accounts.sales]
retention_days = 30
record_consultation = true
"""


def test_parse_normalizes_numbers_and_round_trips() -> None:
    ps = parse_settings(EXAMPLE)
    assert set(ps.numbers) == {"+15551234567"}
    assert ps.accounts["sales"].settings.retention_days == 30
    assert ps.accounts["sales"].settings.record_consultation is True
    assert ps.accounts["main"].settings.record_consultation is False  # the default
    assert ps.accounts["main"].numbering.classify("600").value == "ring_group"
    again = parse_settings(dump_settings(ps))
    assert again == ps
    assert dump_settings(again) == dump_settings(ps)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[accounts.main]\nretention_days = -1\n", "accounts.main.retention_days"),
        ("[accounts.main]\nrecord_inbund = true\n", "accounts.main.record_inbund"),
        ("[accounts.main.numbering]\ninternal = ['^(']\n", "accounts.main.numbering"),
        ("[accounts.main.numbers.'not a number']\n", "accounts.main.numbers.not a number"),
        ("[accounts.main.numbers.'+15551234567']\nrecord_inbound = 1\n", "record_inbound"),
        ("default_country = 'XX'\n", "default_country"),
        ("surprise = 1\n", "surprise"),
    ],
)
def test_errors_name_where(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_settings(text)
    assert where in str(e.value)


def test_number_under_two_accounts_names_both() -> None:
    text = "[accounts.a.numbers.'+15551234567']\n[accounts.b.numbers.'15551234567']\n"
    with pytest.raises(PolicyError, match="under accounts 'a' and 'b'"):
        parse_settings(text)
