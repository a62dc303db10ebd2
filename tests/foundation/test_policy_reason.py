"""The sentence the service logs for a call it does not record: the rule that decided, in words
(it used to print the decision's raw sources dict)."""

import pytest

from controller.policy import Account, AccountSettings, NumberOverride, PolicySet

PS = PolicySet(
    accounts={"main": Account("main", AccountSettings(record_outbound=False))},
    numbers={"+15557000199": ("main", NumberOverride(record_inbound=False))},
)


@pytest.mark.parametrize(
    ("direction", "number", "dialplan", "record", "reason"),
    [
        ("inbound", "+15557000199", None, False, "number +15557000199 sets record_inbound = false"),
        ("inbound", "+1 (555) 700-0199", None, False, "number +15557000199 sets record_inbound = false"),
        ("outbound", "+15557000100", None, False, "account main sets record_outbound = false"),
        ("inbound", "+15557000100", None, True, "account main sets record_inbound = true"),
        ("inbound", "+15557000100", "never", False, "the dialplan hook set callrec_record=never"),
        ("outbound", "+15557000100", "force", True, "the dialplan hook set callrec_record=force"),
        ("internal", None, None, False, "internal calls are recorded only when the dialplan hook forces it"),
        ("unknown", None, None, False, "calls of unknown direction are recorded only when the dialplan hook forces it"),
    ],
)
def test_record_reason_names_the_rule(
    direction: str, number: str | None, dialplan: str | None, record: bool, reason: str
) -> None:
    decision = PS.resolve(direction=direction, number=number, dialplan=dialplan)
    assert decision.record is record
    assert decision.record_reason() == reason
