"""The controller's answer to a phone code (pure): who may, when, and what each PBX is told to play."""

from __future__ import annotations

from controller.calls import CallTracker
from controller.events import Bridged, ChannelCreated, PolicyHint
from controller.features import decide, secure_pause_schedule
from controller.policy import Account, NumberOverride, PolicySet, settings_from_dict
from controller.tones import TONES
from lab.tones import parse_playtones, parse_tone_stream

DID = "+15557000100"


def _call(settings: dict[str, object], record: bool = True, override: NumberOverride | None = None):  # type: ignore[no-untyped-def]
    ps = PolicySet(
        accounts={"main": Account("main", settings_from_dict({"record_inbound": record, **settings}))},
        numbers={DID: ("main", override)} if override else {},
    )
    t = CallTracker("fs1")
    t.handle(ChannelCreated("fs1", 0, 0, leg="cust", call_id="cust", caller="+15551230001", callee=DID))
    t.handle(PolicyHint("fs1", 0, 0, leg="cust", values={"direction": "inbound", "account_number": DID}))
    t.handle(ChannelCreated("fs1", 0, 0, leg="agent", call_id="cust", callee="2001", originator="cust"))
    (act,) = t.handle(Bridged("fs1", 0, 0, leg_a="cust", leg_b="agent"))
    call = act.call  # type: ignore[union-attr]
    decision = ps.resolve(direction="inbound", number=DID)
    if decision.record:
        t.recording_started(call, "rec-1", decision, 0.0)
    return t, call, decision


def test_pause_only_where_agent_pause_is_effective_and_only_from_the_agent_leg() -> None:
    t, call, d = _call({"agent_pause_allowed": False})
    v = decide("pause", call, "agent", d)
    assert not v.accepted and "not allowed" in v.reason
    # a number override allowing it wins over the account
    t, call, d = _call({"agent_pause_allowed": False}, override=NumberOverride(agent_pause_allowed=True))
    assert decide("pause", call, "agent", d).action == "pause"
    assert not decide("pause", call, "cust", d).accepted  # the customer dialled *1
    t.pause(call, "agent:2001", 1.0)
    assert decide("pause", call, "agent", d).reason == "already paused"
    assert decide("resume", call, "agent", d).action == "resume"


def test_resume_needs_a_pause_and_unknown_codes_and_calls_are_refused() -> None:
    _, call, d = _call({"agent_pause_allowed": True})
    assert decide("resume", call, "agent", d).reason == "not paused"
    assert not decide("mute", call, "agent", d).accepted
    assert not decide("pause", None, "agent", None).accepted


def test_record_on_demand_only_where_policy_did_not_record_and_the_setting_allows() -> None:
    _, call, d = _call({"agent_record_on_demand": True}, record=True)
    assert decide("record", call, "agent", d).reason == "the call is already recorded"
    _, call, d = _call({"agent_record_on_demand": False}, record=False)
    assert not decide("record", call, "agent", d).accepted
    _, call, d = _call({"agent_record_on_demand": True}, record=False)
    assert decide("record", call, "agent", d).action == "record"
    assert not decide("pause", call, "agent", d).accepted  # nothing recorded, nothing to pause


def test_secure_pause_schedule() -> None:
    assert secure_pause_schedule(0) is None
    assert secure_pause_schedule(120) == (110.0, 120.0)
    assert secure_pause_schedule(4) == (0.0, 4.0)  # shorter than the lead: warn at once


def test_each_tone_renders_for_both_pbxes_as_the_simulators_read_it() -> None:
    for tone in TONES.values():
        fs, ast = parse_tone_stream(tone.freeswitch()), parse_playtones(tone.asterisk())
        assert fs == ast
        assert [hz for hz, _ in fs if hz] == [tone.hz] * tone.loops
        assert sum(ms for _, ms in fs) == tone.duration_ms


def test_what_the_customer_hears_and_when() -> None:
    from controller.features import announcement_for

    none = settings_from_dict({})
    assert [announcement_for(none, w) for w in ("start", "resume", "periodic")] == [None, None, None]
    beep = settings_from_dict({"announcement": "beep"})
    assert [announcement_for(beep, w) for w in ("start", "resume", "periodic")] == ["beep", None, None]
    again = settings_from_dict({"announcement": "periodic", "announcement_after_resume": True})
    assert [announcement_for(again, w) for w in ("start", "resume", "periodic")] == ["beep", "beep", "beep"]
    prompt = settings_from_dict({"announcement": "prompt", "announcement_prompt": "custom/consent"})
    assert announcement_for(prompt, "start") == "prompt"
    # a number override asking for the prompt where the account has no file: the beep, never silence
    ps = PolicySet(
        accounts={"main": Account("main", settings_from_dict({}))},
        numbers={DID: ("main", NumberOverride(announcement="prompt"))},
    )
    assert announcement_for(ps.resolve(direction="inbound", number=DID).settings, "start") == "beep"
