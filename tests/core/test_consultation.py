"""The pure call state machine and an agent's consultation: a second call of the agent counts as the
consultation of a customer call only while that call's agent leg is on hold; its outcome (transferred,
or back with the customer after a busy / unanswered / cancelled target) lands in the customer
recording's timeline, and its policy is the customer call's (`record_consultation`)."""

from __future__ import annotations

from controller.calls import Call, CallTracker, Changed, Decide, Ended, Stop
from controller.events import (
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    HoldChanged,
    TransferKind,
    Transferred,
)
from controller.policy import Account, AccountSettings, PolicyDecision, PolicySet

T = 1_800_000_000.0


def created(leg: str, caller: str, callee: str, *, originator: str | None = None, **variables: str) -> ChannelCreated:
    return ChannelCreated(
        "fs",
        0,
        T,
        leg=leg,
        call_id=originator or leg,
        caller=caller,
        callee=callee,
        context="default",
        originator=originator,
        pbx_direction="outbound" if originator else "inbound",
        variables=variables,
    )


def decision(**settings: bool) -> PolicyDecision:
    ps = PolicySet(accounts={"main": Account("main", AccountSettings(**settings))})  # type: ignore[arg-type]
    return ps.resolve(direction="inbound", number=None)


def recorded_customer_call(t: CallTracker, **settings: bool) -> Call:
    """Customer A (+15551230001) → agent 2001 on leg B, recorded from T."""
    t.handle(created("A", "+15551230001", "+15557000100"))
    t.handle(created("B", "+15551230001", "2001", originator="A", dialed_user="2001"))
    call = next(a for a in t.handle(Bridged("fs", 0, T, leg_a="A", leg_b="B")) if isinstance(a, Decide)).call
    t.recording_started(call, "r1", decision(**settings), T)
    return call


def phone_consultation(t: CallTracker, target: str, at: float) -> tuple[Call, list[object]]:
    """The agent's phone calls `target` on a call of its own (leg C, target leg D), answered at `at`."""
    acts: list[object] = list(t.handle(created("C", "2001", target)))
    t.handle(created("D", "2001", target, originator="C", dialed_user=target if len(target) < 6 else ""))
    acts += t.handle(Bridged("fs", 0, at, leg_a="C", leg_b="D"))
    consult = next(a for a in acts if isinstance(a, Decide)).call  # type: ignore[attr-defined]
    return consult, acts


def test_second_call_while_the_customer_is_held_is_a_consultation_of_that_call() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    consult, acts = phone_consultation(t, "+15557654321", T + 3)
    assert consult.consultation_of == call.id
    # filed under the customer call: its numbers, the target's leg is the one that would be recorded
    assert (consult.customer_number, consult.customer_leg, consult.agent_leg) == ("+15551230001", "D", "C")
    assert [type(a) for a in acts] == [Changed, Changed, Decide]  # opened, answered, decide
    tl = call.recording.timeline.as_dict()  # type: ignore[union-attr]
    assert tl["consultations"] == [
        {
            "at_ms": 0,  # created at T (the test's ChannelCreated clock)
            "end_ms": None,
            "agent": "2001",
            "target": "+15557654321",
            "target_class": "external",
            "answered": True,
            "outcome": None,
            "recording_id": None,
        }
    ]
    # the phone completes with REFER/Replaces: its consultation leg goes away as a transfer
    acts = t.handle(ChannelHungUp("fs", 0, T + 6, leg="C", variables={"endpoint_disposition": "ATTENDED_TRANSFER"}))
    assert [type(a) for a in acts] == [Changed, Ended]
    acts = t.handle(Bridged("fs", 0, T + 6.5, leg_a="A", leg_b="D"))
    assert [s["party"] for s in call.recording.timeline.segments] == ["2001", "+15557654321"]  # type: ignore[union-attr]
    c = call.recording.timeline.consultations[0]  # type: ignore[union-attr]
    assert (c["outcome"], c["end_ms"]) == ("transferred", 6000)
    assert t.call_for_leg("D") is call  # the target's leg is the customer call's now


def test_overlapping_call_of_the_same_extension_without_hold_is_a_call_of_its_own() -> None:
    """What broke the PostgreSQL outage drill: agent 2001 on two genuine calls at once."""
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    other, acts = phone_consultation(t, "+15557654321", T + 3)
    assert other.consultation_of is None and other.customer_leg == "D" and other.customer_number == "+15557654321"
    assert [type(a) for a in acts] == [Decide]
    assert call.recording.timeline.consultations == []  # type: ignore[union-attr]


def test_hold_ended_before_the_second_call_is_no_consultation() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 1, leg="B", held=True))
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=False))
    other, _ = phone_consultation(t, "2002", T + 3)
    assert other.consultation_of is None and call.recording.timeline.consultations == []  # type: ignore[union-attr]


def test_a_colleague_calling_the_held_agent_is_no_consultation() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 1, leg="B", held=True))
    t.handle(created("C", "2002", "2001"))
    t.handle(created("D", "2002", "2001-0x1", originator="C", dialed_user="2001"))
    acts = t.handle(Bridged("fs", 0, T + 3, leg_a="C", leg_b="D"))
    assert [type(a) for a in acts] == [Decide]
    assert call.recording.timeline.consultations == []  # type: ignore[union-attr]


def test_busy_target_returns_to_the_agent_and_the_recording_goes_on() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    t.handle(created("C", "2001", "2002"))
    t.handle(created("D", "2001", "2002", originator="C", dialed_user="2002"))
    assert t.handle(ChannelHungUp("fs", 0, T + 3, leg="D", cause="USER_BUSY")) == []
    acts = t.handle(ChannelHungUp("fs", 0, T + 3.1, leg="C", cause="USER_BUSY"))
    assert [type(a) for a in acts] == [Changed, Ended]  # the consultation closed; no Stop of the customer's
    t.handle(HoldChanged("fs", 0, T + 3.5, leg="B", held=False))
    rec = call.recording
    assert rec is not None and not rec.stopping
    (c,) = rec.timeline.consultations
    assert (c["target"], c["answered"], c["outcome"], c["cause"], c["end_ms"]) == (
        "2002",
        False,
        "returned",
        "USER_BUSY",
        3100,
    )
    assert [s["party"] for s in rec.timeline.segments] == ["2001"] and rec.timeline.segments[0]["end_ms"] is None
    # a later call of the agent (hold taken off) is a call of its own again
    t.handle(created("E", "2001", "+15550000001"))
    assert t.call_for_leg("E").consultation_of is None  # type: ignore[union-attr]


def test_consultation_policy_is_the_customer_calls() -> None:
    on = decision(record_consultation=True).for_consultation()
    off = decision().for_consultation()
    assert (on.record, off.record) == (True, False)
    assert on.sources["record"] == "consultation" and on.account_id == "main"
    assert "record_consultation = false" in off.record_reason()


def test_recorded_consultation_is_listed_and_stopped_before_the_customer_joins() -> None:
    """record_consultation on: the consultation's own recording stops when the phone completes the
    transfer, so it never holds the customer's voice; the customer's timeline names it."""
    t = CallTracker("fs")
    call = recorded_customer_call(t, record_consultation=True)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    consult, _ = phone_consultation(t, "+15557654321", T + 3)
    t.recording_started(consult, "r2", decision(record_consultation=True).for_consultation(), T + 3)
    acts = t.handle(ChannelHungUp("fs", 0, T + 6, leg="C", variables={"endpoint_disposition": "ATTENDED_TRANSFER"}))
    stop = next(a for a in acts if isinstance(a, Stop))
    assert (stop.call, stop.reason) == (consult, "consultation_ended")
    assert call.recording.timeline.consultations[0]["recording_id"] == "r2"  # type: ignore[union-attr]


def test_pbx_attended_transfer_inside_the_call_is_listed() -> None:
    """Asterisk Atxfer / FreeSWITCH att_xfer: the consultation is a leg of the customer's own call."""
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    acts = t.handle(created("X", "", "2002", originator="B"))  # the feature's consultation leg
    assert [type(a) for a in acts] == [Changed]
    assert [type(a) for a in t.handle(ChannelAnswered("fs", 0, T + 3, leg="X"))] == [Changed]  # picked up
    assert not [a for a in t.handle(Bridged("fs", 0, T + 3, leg_a="B", leg_b="X")) if isinstance(a, Changed)]
    acts = t.handle(Transferred("fs", 0, T + 5, leg="A", kind=TransferKind.ATTENDED, target="2002"))
    (c,) = call.recording.timeline.consultations  # type: ignore[union-attr]
    assert (c["agent"], c["target"], c["answered"], c["outcome"], c["end_ms"]) == (
        "2001",
        "2002",
        True,
        "transferred",
        5000,
    )
    assert [x["kind"] for x in call.recording.timeline.transfers] == ["attended"]  # type: ignore[union-attr]


def test_failed_pbx_attended_transfer_agent_back_in_the_customers_bridge() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    t.handle(created("X", "", "2002", originator="B"))
    # the feature's legs are gone without a transfer (R8's Local pair; here one leg): the agent is back
    acts = t.handle(ChannelHungUp("fs", 0, T + 3, leg="X", cause="NO_ANSWER"))
    assert [type(a) for a in acts] == [Changed]
    assert not t.handle(Bridged("fs", 0, T + 4, leg_a="B", leg_b="A"))  # back in the customer's bridge
    (c,) = call.recording.timeline.consultations  # type: ignore[union-attr]
    assert (c["outcome"], c["cause"], c["end_ms"]) == ("returned", "NO_ANSWER", 3000)
    assert call.recording.timeline.segments[-1]["party"] == "2001" and not call.recording.stopping  # type: ignore[union-attr]
