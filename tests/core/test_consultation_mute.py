"""An attended transfer to an EXTERNAL party with continue_on_external_transfer off (issue #13 §1/§2),
pure: the completion bridges the customer to that party in the instant the PBX tells us, so the
customer's recording is muted from the moment the agent's consultation to that party is DIALLED until
the consultation ends — completed: the recording stops at the new bridge with the mute still on;
returned (busy / no answer / cancel): unmuted, the gap kept in the timeline. Both shapes: the agent's
phone (a consultation call of its own) and the PBX's attended transfer (a leg of the customer's call)."""

from __future__ import annotations

from typing import Any

from controller.calls import Call, CallTracker, Changed, Decide, Ended, Mute, Stop, Unmute
from controller.events import Bridged, ChannelHungUp, HoldChanged, TransferKind, Transferred, Unbridged
from tests.core.test_consultation import T, created, decision, phone_consultation, recorded_customer_call

EXTERNAL = "+15557654321"


def _pauses(call: Call) -> list[dict[str, Any]]:
    assert call.recording is not None
    return call.recording.timeline.as_dict()["pauses"]


def _consulting(t: CallTracker, call: Call, target: str) -> list[Any]:
    """The agent holds the customer (T+2) and its phone dials `target` (T+3): leg C, target leg D."""
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    acts = list(t.handle(created("C", "2001", target)))
    acts += t.handle(created("D", "2001", target, originator="C", dialed_user=target if len(target) < 6 else ""))
    return acts


def test_external_consultation_with_the_rule_off_mutes_at_the_dial_and_stops_at_completion() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    acts = _consulting(t, call, EXTERNAL)
    assert [type(a) for a in acts] == [Mute, Changed]  # the PBX command first, then the timeline entry
    mute = acts[0]
    assert isinstance(mute, Mute) and mute.call is call  # the CUSTOMER's recording
    assert mute.entry == {
        "start_ms": 0,  # the test's ChannelCreated clock is T: the dial
        "end_ms": None,
        "by": "transfer",
        "kind": "transfer_mute",
        "reason": "external_consultation",
    }
    assert call.silence_held  # neither a user's resume nor anything else may unmask it meanwhile
    t.handle(Bridged("fs", 0, T + 4, leg_a="C", leg_b="D"))  # the external party answers: still muted
    assert call.recording is not None and call.recording.timeline.transfer_muted
    # the phone completes (REFER/Replaces): the consultation leg goes as a transfer, the agent's leg goes,
    # the customer is bridged to the external party — stopped there, the mute never lifted
    acts = t.handle(ChannelHungUp("fs", 0, T + 6, leg="C", variables={"endpoint_disposition": "ATTENDED_TRANSFER"}))
    assert not [a for a in acts if isinstance(a, Unmute)]
    t.handle(ChannelHungUp("fs", 0, T + 6.1, leg="B"))
    acts = t.handle(Unbridged("fs", 0, T + 6.1, leg_a="A", leg_b="B"))
    assert not [a for a in acts if isinstance(a, Unmute)]
    acts = t.handle(Bridged("fs", 0, T + 6.2, leg_a="A", leg_b="D"))
    stop = next(a for a in acts if isinstance(a, Stop))
    assert (stop.call, stop.reason) == (call, "external_transfer")
    assert not [a for a in acts if isinstance(a, Unmute)]
    (p,) = _pauses(call)
    assert (p["reason"], p["outcome"], p["end_ms"], p["next_party"]) == (
        "external_consultation",
        "stopped",
        6200,
        EXTERNAL,
    )
    (c,) = call.recording.timeline.consultations
    assert (c["outcome"], c["muted"], c["target_class"]) == ("transferred", True, "external")
    (m,) = call.recording.timeline.transfers
    assert (m["at_ms"], m["target"], m["stopped_recording"]) == (6200, EXTERNAL, True)  # at the completion


def test_failed_external_consultation_unmutes_when_the_agent_is_back() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    assert [type(a) for a in _consulting(t, call, EXTERNAL)] == [Mute, Changed]
    assert t.handle(ChannelHungUp("fs", 0, T + 4, leg="D", cause="USER_BUSY")) == []
    acts = t.handle(ChannelHungUp("fs", 0, T + 4.1, leg="C", cause="USER_BUSY"))
    assert [type(a) for a in acts] == [Changed, Unmute, Ended]
    unmute = acts[1]
    assert isinstance(unmute, Unmute) and unmute.call is call
    (p,) = _pauses(call)
    assert (p["reason"], p["outcome"], p["start_ms"], p["end_ms"]) == ("external_consultation", "unmuted", 0, 4100)
    assert (p["next_party"], p["next_class"]) == ("2001", "internal")  # the agent, on the right again
    assert not call.silence_held and call.recording is not None and not call.recording.stopping
    (c,) = call.recording.timeline.consultations
    assert (c["outcome"], c["cause"], c["muted"]) == ("returned", "USER_BUSY", True)
    assert [s["party"] for s in call.recording.timeline.segments] == ["2001"]


def test_no_mute_when_the_rule_allows_it_or_the_target_is_internal() -> None:
    for settings, target in (({"continue_on_external_transfer": True}, EXTERNAL), ({}, "2002")):
        t = CallTracker("fs")
        call = recorded_customer_call(t, **{"continue_on_external_transfer": False, **settings})
        acts = _consulting(t, call, target)
        assert [type(a) for a in acts] == [Changed], (settings, target)
        assert not call.silence_held and _pauses(call) == []


def test_pbx_attended_transfer_leg_to_an_external_party_mutes_until_it_ends() -> None:
    """FreeSWITCH att_xfer / Asterisk Atxfer: the consultation is a leg of the customer's own call."""
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    acts = t.handle(created("X", "2001", EXTERNAL, originator="B"))
    assert [type(a) for a in acts] == [Mute, Changed]
    # completed: att_xfer bridges the customer to the consultation leg (uuid_br): stopped, still muted
    t.handle(Unbridged("fs", 0, T + 5, leg_a="B", leg_b="X"))
    t.handle(Unbridged("fs", 0, T + 5, leg_a="A", leg_b="B"))
    acts = t.handle(Bridged("fs", 0, T + 5, leg_a="X", leg_b="A"))
    assert [type(a) for a in acts if isinstance(a, (Stop, Unmute))] == [Stop]
    assert _pauses(call)[0]["outcome"] == "stopped"
    # failed: the leg is gone without a transfer, the agent never left the customer's bridge
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    t.handle(created("X", "2001", EXTERNAL, originator="B"))
    acts = t.handle(ChannelHungUp("fs", 0, T + 3, leg="X", cause="NO_ANSWER"))
    assert [type(a) for a in acts] == [Changed, Unmute]
    assert _pauses(call)[0]["outcome"] == "unmuted" and not call.recording.stopping  # type: ignore[union-attr]


def test_customer_moved_out_meanwhile_is_unmuted_only_when_bridged_back() -> None:
    """Asterisk's Atxfer takes the agent out of the customer's bridge (real R8): when the consultation
    fails, its legs go first and the agent re-enters the bridge after — the mute holds until then."""
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    assert [type(a) for a in t.handle(created("X", "2001", EXTERNAL, originator="B"))] == [Mute, Changed]
    assert t.handle(Unbridged("fs", 0, T + 2.5, leg_a="A", leg_b="B")) == []  # already silent: no second mute
    acts = t.handle(ChannelHungUp("fs", 0, T + 3, leg="X", cause="BUSY"))
    assert [type(a) for a in acts] == [Changed]  # the customer is alone: nothing to unmute to yet
    assert call.recording is not None and call.recording.timeline.transfer_muted and call.silence_held
    acts = t.handle(Bridged("fs", 0, T + 3.2, leg_a="A", leg_b="B"))
    assert [type(a) for a in acts] == [Unmute]
    (p,) = _pauses(call)
    assert (p["reason"], p["outcome"], p["end_ms"], p["next_party"]) == (
        "external_consultation",
        "unmuted",
        3200,
        "2001",
    )


def test_an_announced_recordable_target_lifts_it() -> None:
    """The PBX names where the customer goes and that party may be recorded: the mute is lifted."""
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    t.handle(created("X", "2001", EXTERNAL, originator="B"))
    acts = t.handle(Transferred("fs", 0, T + 4, leg="A", kind=TransferKind.ATTENDED, target="2002"))
    assert Unmute in [type(a) for a in acts] and not call.silence_held


def test_recorded_consultation_is_not_muted_only_the_customers_recording() -> None:
    """record_consultation on: the consultation's own recording (the target's leg) is what the account
    asked for; only the customer's recording is muted, and the consultation call is still decided."""
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False, record_consultation=True)
    t.handle(HoldChanged("fs", 0, T + 2, leg="B", held=True))
    consult, acts = phone_consultation(t, EXTERNAL, T + 3)
    assert [type(a) for a in acts] == [Mute, Changed, Changed, Decide]
    assert all(a.call is call for a in acts if isinstance(a, Mute))
    t.recording_started(consult, "r2", decision(record_consultation=True).for_consultation(), T + 3)
    assert consult.recording is not None and not consult.recording.timeline.paused


def test_a_users_pause_open_at_the_dial_stays_the_users_and_cannot_be_resumed_meanwhile() -> None:
    t = CallTracker("fs")
    call = recorded_customer_call(t, continue_on_external_transfer=False, agent_pause_allowed=True)
    t.pause(call, "agent:2001", T + 1)
    assert [type(a) for a in _consulting(t, call, EXTERNAL)] == [Changed]  # already silent
    assert call.silence_held  # PauseControl refuses a resume while this holds
    t.handle(ChannelHungUp("fs", 0, T + 4, leg="D", cause="USER_BUSY"))
    acts = t.handle(ChannelHungUp("fs", 0, T + 4.1, leg="C", cause="USER_BUSY"))
    assert [type(a) for a in acts] == [Changed, Ended]
    assert not call.silence_held
    (p,) = _pauses(call)
    assert p["by"] == "agent:2001" and p["end_ms"] is None  # still the user's open pause
