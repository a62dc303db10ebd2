"""The pure call state machine: who is the customer, when to decide, transfers and the timeline."""

from __future__ import annotations

from controller.calls import CallTracker, Changed, Decide, Ended, Stop
from controller.events import (
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    Direction,
    LiveChannel,
    PolicyHint,
    TransferKind,
    Transferred,
)
from controller.policy import Account, AccountSettings, PolicySet

T = 1_800_000_000.0


def created(
    leg: str, caller: str, callee: str, *, originator: str | None = None, context: str = "default", **variables: str
) -> ChannelCreated:
    return ChannelCreated(
        "fs",
        0,
        T,
        leg=leg,
        call_id=originator or leg,
        caller=caller,
        callee=callee,
        context=context,
        originator=originator,
        pbx_direction="outbound" if originator else "inbound",
        variables=variables,
    )


def test_inbound_from_trunk_context_customer_is_caller_even_with_internal_looking_number() -> None:
    t = CallTracker("fs", inbound_contexts=("public",))
    t.handle(created("A", "5551", "+15557000100", context="public"))
    t.handle(created("B", "5551", "2001-0xabc", originator="A", dialed_user="2001"))
    t.handle(ChannelAnswered("fs", 0, T, leg="B"))
    acts = t.handle(Bridged("fs", 0, T + 1, leg_a="A", leg_b="B"))
    call = next(a for a in acts if isinstance(a, Decide)).call
    assert (call.direction, call.customer_leg, call.agent, call.account_number) == (
        Direction.INBOUND,
        "A",
        "2001",
        "+15557000100",
    )


def test_hook_says_outbound_customer_is_the_far_leg() -> None:
    t = CallTracker("fs")
    t.handle(created("A", "2001", "+15551230001"))
    t.handle(PolicyHint("fs", 0, T, leg="A", values={"direction": "outbound", "account_number": "+15557000100"}))
    t.handle(created("B", "+15557000100", "+15551230001", originator="A"))
    call = next(a for a in t.handle(Bridged("fs", 0, T, leg_a="A", leg_b="B")) if isinstance(a, Decide)).call
    assert (call.direction, call.customer_leg, call.agent, call.customer_number) == (
        Direction.OUTBOUND,
        "B",
        "2001",
        "+15551230001",
    )


def test_unanswered_call_is_never_decided_and_ends() -> None:
    t = CallTracker("fs")
    t.handle(created("A", "+15551230001", "+15557000100"))
    t.handle(created("B", "+15551230001", "2001", originator="A", dialed_user="2001"))
    acts = t.handle(ChannelHungUp("fs", 0, T, leg="A", cause="ORIGINATOR_CANCEL"))
    acts += t.handle(ChannelHungUp("fs", 0, T, leg="B", cause="ORIGINATOR_CANCEL"))
    assert [type(a) for a in acts] == [Ended]
    assert not t.calls and not t.legs


def _recording_call(settings: AccountSettings) -> tuple[CallTracker, object]:
    t = CallTracker("fs")
    t.handle(created("A", "+15551230001", "+15557000100"))
    t.handle(created("B", "+15551230001", "2001", originator="A", dialed_user="2001"))
    call = next(a for a in t.handle(Bridged("fs", 0, T, leg_a="A", leg_b="B")) if isinstance(a, Decide)).call
    decision = PolicySet(accounts={"main": Account("main", settings)}).resolve(direction="inbound", number=None)
    t.recording_started(call, "r1", decision, T)
    return t, call


def test_internal_transfer_adds_a_segment_and_keeps_recording() -> None:
    t, call = _recording_call(AccountSettings(continue_on_external_transfer=False))
    t.handle(ChannelHungUp("fs", 0, T + 5, leg="B"))
    t.handle(created("C", "+15551230001", "2002", originator="A", dialed_user="2002"))
    acts = t.handle(Bridged("fs", 0, T + 6, leg_a="A", leg_b="C"))
    assert not [a for a in acts if isinstance(a, Stop)]
    tl = call.recording.timeline.as_dict()  # type: ignore[attr-defined]
    assert [(s["party"], s["start_ms"], s["end_ms"]) for s in tl["segments"]] == [
        ("2001", 0, 6000),
        ("2002", 6000, None),
    ]
    assert tl["transfers"] == [
        {
            "at_ms": 6000,
            "kind": "blind",
            "target": "2002",
            "target_class": "internal",
            "stopped_recording": False,
            "from": "B",
        }
    ]
    assert [type(a) for a in t.handle(ChannelHungUp("fs", 0, T + 9, leg="A"))] == [Stop, Ended]
    assert tl != call.recording.timeline.as_dict()  # type: ignore[attr-defined]
    assert call.recording.timeline.stop == {"at_ms": 9000, "reason": "hangup"}  # type: ignore[attr-defined]


def test_external_transfer_with_rule_off_stops_when_the_target_is_known() -> None:
    t, call = _recording_call(AccountSettings(continue_on_external_transfer=False))
    acts = t.handle(Transferred("fs", 0, T + 3, leg="A", kind=TransferKind.BLIND, target="+15557654321"))
    assert [type(a) for a in acts] == [Changed, Stop]
    assert acts[1].reason == "external_transfer"  # type: ignore[union-attr]
    tl = call.recording.timeline  # type: ignore[attr-defined]
    assert tl.stop == {"at_ms": 3000, "reason": "external_transfer"} and tl.segments[-1]["end_ms"] == 3000
    # the later bridge to the target changes nothing any more
    t.handle(created("C", "+15551230001", "+15557654321", originator="A"))
    assert not t.handle(Bridged("fs", 0, T + 5, leg_a="A", leg_b="C"))


def test_resync_applies_the_hook_variables_a_listing_carries() -> None:
    """A call bridged while the controller was away: the hook's variables in the channel listing decide
    it as the hook said (here: inbound on a DID, though both numbers look internal)."""
    t = CallTracker("ast")
    cust = LiveChannel(
        leg="c1",
        call_id="c1",
        caller="1001",
        callee="2001",
        context="from-trunk",
        answered=True,
        bridged_to="a1",
        variables={"callrec_direction": "inbound", "callrec_account_number": "+15557000100"},
    )
    agent = LiveChannel(leg="a1", call_id="c1", caller="1001", callee="2001", answered=True, bridged_to="c1")
    _, fresh = t.resync([cust, agent], T, known_before=set())
    (call,) = fresh
    decide = t.decide_from_resync(call, T)
    assert decide is not None
    assert decide.call.direction is Direction.INBOUND
    assert (decide.call.customer_leg, decide.call.account_number) == ("c1", "+15557000100")


def test_rebridge_with_the_same_party_through_a_new_channel_is_not_a_transfer() -> None:
    """After Asterisk's Local-channel clean-up the customer's partner is a new channel of the same
    agent; a hold/unhold then re-bridges it. No transfer marker, no new segment."""
    t, call = _recording_call(AccountSettings())
    t.handle(created("B2", "+15551230001", "2001", originator="A", dialed_user="2001"))
    acts = t.handle(Bridged("fs", 0, T + 4, leg_a="A", leg_b="B2"))
    assert acts == []
    tl = call.recording.timeline.as_dict()  # type: ignore[attr-defined]
    assert tl["transfers"] == [] and [s["party"] for s in tl["segments"]] == ["2001"]
    # a real transfer after that is still one
    t.handle(created("C", "+15551230001", "2002", originator="A", dialed_user="2002"))
    t.handle(Bridged("fs", 0, T + 6, leg_a="A", leg_b="C"))
    tl = call.recording.timeline.as_dict()  # type: ignore[attr-defined]
    assert [(x["target"], x["from"]) for x in tl["transfers"]] == [("2002", "B2")]
