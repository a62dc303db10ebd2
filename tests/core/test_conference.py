"""The pure call state machine and a three-way call: a party entering the bridge the customer shares
with the agent (a multi-party bridge) JOINS — listed in the timeline with when it joined and left —
instead of replacing the agent as a transfer would; an external joiner with the rule off stops."""

from __future__ import annotations

from controller.calls import Call, CallTracker, Changed, Decide, Stop
from controller.events import Bridged, ChannelCreated, ChannelHungUp, Unbridged
from controller.policy import Account, AccountSettings, PolicySet

T = 1_800_000_000.0


def created(leg: str, caller: str, callee: str, originator: str | None = None) -> ChannelCreated:
    return ChannelCreated(
        "ast", 0, T, leg=leg, call_id=originator or leg, caller=caller, callee=callee, originator=originator
    )


def recorded(continue_rule: bool = True) -> tuple[CallTracker, Call]:
    t = CallTracker("ast")
    t.handle(created("A", "+15551230001", "+15557000100"))
    t.handle(created("B", "+15551230001", "2001", originator="A"))
    call = next(a for a in t.handle(Bridged("ast", 0, T, leg_a="B", leg_b="A")) if isinstance(a, Decide)).call
    settings = AccountSettings(continue_on_external_transfer=continue_rule)
    decision = PolicySet(accounts={"main": Account("main", settings)}).resolve(direction="inbound", number=None)
    t.recording_started(call, "r1", decision, T)
    return t, call


def join(t: CallTracker, leg: str, number: str, at: float) -> list[object]:
    """`leg` enters the customer's bridge (A, B): the AMI translator reports it with each member."""
    t.handle(created(leg, "", number, originator="B"))
    acts: list[object] = list(t.handle(Bridged("ast", 0, at, leg_a=leg, leg_b="A", number_a=number, size=3)))
    acts += t.handle(Bridged("ast", 0, at, leg_a=leg, leg_b="B", number_a=number, size=3))
    return acts


def test_third_party_joins_and_leaves_the_agent_stays_on_the_right() -> None:
    t, call = recorded()
    acts = join(t, "X", "2002", T + 3)
    assert [type(a) for a in acts] == [Changed]
    rec = call.recording
    assert rec is not None
    assert [s["party"] for s in rec.timeline.segments] == ["2001"] and rec.timeline.transfers == []
    assert call.agent_leg == "B" and "2002" in call.agents
    t.handle(Unbridged("ast", 0, T + 7, leg_a="X", leg_b="A"))
    t.handle(Unbridged("ast", 0, T + 7, leg_a="X", leg_b="B"))
    t.handle(ChannelHungUp("ast", 0, T + 7, leg="X"))
    assert rec.timeline.conference == [
        {"party": "2002", "class": "internal", "joined_ms": 3000, "left_ms": 7000, "stopped_recording": False}
    ]
    assert not rec.stopping and rec.timeline.pauses == []  # the customer never was alone: no transfer mute


def test_a_new_partner_in_a_two_party_bridge_is_still_a_transfer() -> None:
    t, call = recorded()
    t.handle(Unbridged("ast", 0, T + 2, leg_a="B", leg_b="A"))
    t.handle(created("X", "", "2002", originator="A"))
    t.handle(Bridged("ast", 0, T + 3, leg_a="X", leg_b="A", number_a="2002"))
    rec = call.recording
    assert rec is not None and rec.timeline.conference == []
    assert [s["party"] for s in rec.timeline.segments] == ["2001", "2002"]
    assert [(x["kind"], x["target"]) for x in rec.timeline.transfers] == [("blind", "2002")]


def test_external_joiner_with_the_rule_off_stops_the_recording() -> None:
    t, call = recorded(continue_rule=False)
    acts = join(t, "X", "+15557654321", T + 3)
    stop = next(a for a in acts if isinstance(a, Stop))
    assert stop.reason == "external_joined"
    rec = call.recording
    assert rec is not None and rec.timeline.stop == {"at_ms": 3000, "reason": "external_joined"}
    assert rec.timeline.conference[0]["stopped_recording"] is True


def test_agent_drops_out_the_joiner_carries_on_with_the_customer() -> None:
    t, call = recorded()
    join(t, "X", "2002", T + 3)
    t.handle(Unbridged("ast", 0, T + 5, leg_a="B", leg_b="A"))
    rec = call.recording
    assert rec is not None and [s["party"] for s in rec.timeline.segments] == ["2001", "2002"]
    assert call.agent_leg == "X" and rec.timeline.segments[-1]["start_ms"] == 5000
