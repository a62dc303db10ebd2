"""Table-driven and property tests of the pure policy engine."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.numbering import InvalidNumber, NumberClass, NumberingPlan
from controller.policy import (
    SETTING_FIELDS,
    Account,
    AccountSettings,
    NumberOverride,
    PolicyError,
    PolicySet,
    explain,
    override_from_dict,
    settings_from_dict,
)

PLAN = NumberingPlan(internal=(r"^[1-5]\d{3}$",), ring_groups=(r"^6\d{2}$",), private_extensions=(r"^8\d{4}$",))
MAIN = Account(
    "main", AccountSettings(record_inbound=True, record_outbound=False, continue_on_external_transfer=False), PLAN
)
OTHER = Account("other", AccountSettings(record_inbound=False, record_outbound=True, retention_days=30), PLAN)
PS = PolicySet(
    accounts={"main": MAIN, "other": OTHER},
    numbers={
        "+15551234567": ("main", NumberOverride(record_inbound=False, agent_pause_allowed=True)),
        "+15550000001": ("other", NumberOverride(continue_on_external_transfer=True)),
        "+15550000002": ("main", NumberOverride()),
    },
)


def test_an_internal_call_is_keyed_on_an_extension_of_the_plan() -> None:
    ps = PolicySet(accounts={"main": Account("main", numbering=NumberingPlan(internal=(r"^2\d{3}$",)))})
    d = ps.resolve(direction="internal", number="2001", account="main")
    assert (d.account_id, d.number, d.record, d.sources["record"]) == ("main", "2001", False, "direction:internal")
    assert ps.resolve(direction="internal", number="2001", dialplan="force", account="main").record is True
    assert ps.resolve(direction="inbound", number="15551234567", account="main").number == "+15551234567"
    with pytest.raises(InvalidNumber, match="nor an extension of the account's numbering plan"):
        ps.resolve(direction="internal", number="9001", account="main")  # no phone number, not in the plan


@pytest.mark.parametrize(
    ("direction", "number", "dialplan", "record", "source"),
    [
        ("inbound", "+15559999999", None, True, "account"),  # unknown number → account defaults
        ("outbound", "+15559999999", None, False, "account"),
        ("inbound", "+1 (555) 123-4567", None, False, "number:+15551234567"),  # override, any spelling
        ("outbound", "15551234567", None, False, "account"),  # override sets inbound only → outbound inherits
        ("inbound", "+15551234567", "force", True, "dialplan"),  # dialplan beats number
        ("inbound", "+15559999999", "never", False, "dialplan"),  # dialplan beats account
        ("internal", "+15559999999", None, False, "direction:internal"),
        ("internal", "+15559999999", "force", True, "dialplan"),
        ("inbound", "+15550000001", None, False, "account"),  # number of account other
        ("outbound", "+15550000001", None, True, "account"),
        ("inbound", "+15550000002", None, True, "account"),  # empty override inherits everything
    ],
)
def test_record_decision_and_source(
    direction: str, number: str, dialplan: str | None, record: bool, source: str
) -> None:
    d = PS.resolve(direction=direction, number=number, dialplan=dialplan, account="main")
    assert d.record is record
    assert d.sources["record"] == source


def test_every_field_has_value_and_source() -> None:
    d = PS.resolve(direction="inbound", number="+15551234567", account="main")
    assert set(d.sources) == {*SETTING_FIELDS, "record"}
    assert d.settings.agent_pause_allowed is True and d.sources["agent_pause_allowed"] == "number:+15551234567"
    assert d.settings.retention_days == 183 and d.sources["retention_days"] == "account"


def test_known_number_selects_its_own_account() -> None:
    d = PS.resolve(direction="inbound", number="+15550000001", account="main")
    assert d.account_id == "other" and d.settings.retention_days == 30


def test_unknown_account_gets_product_defaults() -> None:
    d = PolicySet().resolve(direction="inbound", number="+15551112222", account="nobody")
    assert d.settings == AccountSettings()
    assert d.settings.continue_on_external_transfer is True and d.settings.agent_pause_allowed is False
    assert d.settings.dual_channel is True and d.settings.retention_days == 183


@pytest.mark.parametrize(
    ("number", "target", "target_class", "stop"),
    [
        ("+15559999999", "+15557654321", NumberClass.EXTERNAL, True),  # main: continue off
        ("+15559999999", "2001", NumberClass.INTERNAL, False),
        ("+15559999999", "600", NumberClass.RING_GROUP, False),
        ("+15559999999", "81234", NumberClass.PRIVATE_EXTENSION, False),
        ("+15550000001", "+15557654321", NumberClass.EXTERNAL, False),  # number override: continue on
    ],
)
def test_external_transfer_rule(number: str, target: str, target_class: NumberClass, stop: bool) -> None:
    d = PS.resolve(direction="inbound", number=number, account="main")
    t = d.transfer(target)
    assert t.target_class is target_class
    assert t.stop_recording is stop
    assert d.should_stop_on_transfer(target) is stop


def test_explain_shape() -> None:
    d = PS.resolve(direction="inbound", number="+15551234567", account="main")
    out = explain(d, "+15557654321")
    assert out["record"] is False
    assert out["sources"]["record"] == "number:+15551234567"
    assert out["transfer"] == {"target": "+15557654321", "target_class": "external", "stop_recording": True}


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"retention_days": 0}, "retention_days"), ({"record_inbound": "yes"}, "record_inbound"), ({"bogus": 1}, "bogus")],
)
def test_bad_values_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(PolicyError) as e:
        settings_from_dict(changes)
    assert e.value.field == field


# --- properties ---------------------------------------------------------------------------------

bools = st.one_of(st.none(), st.booleans())
overrides = st.builds(
    NumberOverride,
    record_inbound=bools,
    record_outbound=bools,
    continue_on_external_transfer=bools,
    agent_pause_allowed=bools,
    dual_channel=bools,
    retention_days=st.one_of(st.none(), st.integers(1, 3650)),
)
settings = st.builds(
    AccountSettings,
    record_inbound=st.booleans(),
    record_outbound=st.booleans(),
    continue_on_external_transfer=st.booleans(),
    agent_pause_allowed=st.booleans(),
    dual_channel=st.booleans(),
    retention_days=st.integers(1, 3650),
)
subscribers = st.integers(2000000, 9999999).map(lambda n: f"+1555{n}")


@given(settings, overrides, subscribers, subscribers, st.sampled_from(["inbound", "outbound"]))
def test_override_never_leaks_to_another_number(base, ov, overridden, other, direction) -> None:
    if overridden == other:
        return
    ps = PolicySet(accounts={"a": Account("a", base)}, numbers={overridden: ("a", ov)})
    d = ps.resolve(direction=direction, number=other, account="a")
    assert d.settings == base
    assert all(src == "account" for f, src in d.sources.items() if f != "record")


@given(settings, overrides, subscribers, st.sampled_from(["inbound", "outbound"]))
def test_unset_fields_always_inherit(base, ov, number, direction) -> None:
    ps = PolicySet(accounts={"a": Account("a", base)}, numbers={number: ("a", ov)})
    d = ps.resolve(direction=direction, number=number, account="a")
    for f in SETTING_FIELDS:
        if getattr(ov, f) is None:
            assert getattr(d.settings, f) == getattr(base, f)
            assert d.sources[f] == "account"
        else:
            assert getattr(d.settings, f) == getattr(ov, f)
            assert d.sources[f] == f"number:{number}"


@given(
    settings,
    overrides,
    subscribers,
    st.sampled_from(["force", "never"]),
    st.sampled_from(["inbound", "outbound", "internal"]),
)
def test_dialplan_always_wins(base, ov, number, dialplan, direction) -> None:
    ps = PolicySet(accounts={"a": Account("a", base)}, numbers={number: ("a", ov)})
    d = ps.resolve(direction=direction, number=number, dialplan=dialplan, account="a")
    assert d.record is (dialplan == "force") and d.sources["record"] == "dialplan"


@given(overrides)
def test_override_round_trips_through_dict(ov) -> None:
    assert override_from_dict(ov.as_dict()) == ov
    assert replace(ov) == ov
