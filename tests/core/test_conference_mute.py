"""`external_joiner` (issue #13 §3), pure: with continue_on_external_transfer off, an EXTERNAL party
joining a conference stops the recording (`stop`, the default) or mutes it while that party is in the
call (`mute`): the customer and the agent are recorded again once it has left; a user may not resume
meanwhile; the agent leaving it alone with the customer is a transfer to it and stops."""

from __future__ import annotations

import pytest

from controller.calls import Call, CallTracker, Changed, Mute, Stop, Unmute
from controller.events import HoldChanged, Unbridged
from controller.policy import Account, AccountSettings, PolicyError, PolicySet, settings_from_dict
from controller.settings_file import dump_settings, parse_settings
from tests.core.test_conference import T, created

EXTERNAL = "+15557654321"


def recorded(**settings: object) -> tuple[CallTracker, Call]:
    from tests.core.test_conference import Bridged, Decide

    t = CallTracker("ast")
    t.handle(created("A", "+15551230001", "+15557000100"))
    t.handle(created("B", "+15551230001", "2001", originator="A"))
    call = next(a for a in t.handle(Bridged("ast", 0, T, leg_a="B", leg_b="A")) if isinstance(a, Decide)).call
    acct = AccountSettings(**settings)  # type: ignore[arg-type]
    decision = PolicySet(accounts={"main": Account("main", acct)}).resolve(direction="inbound", number=None)
    t.recording_started(call, "r1", decision, T)
    return t, call


def dial_in(t: CallTracker, leg: str, number: str, at: float) -> list[object]:
    """`leg` is dialled into the conference as a call of its own (FreeSWITCH's `originate … &conference`):
    no consultation before, the join is the first sign of it."""
    from tests.core.test_conference import Bridged

    t.handle(created(leg, "", number))
    acts: list[object] = list(t.handle(Bridged("ast", 0, at, leg_a=leg, leg_b="A", number_a=number, size=3)))
    acts += t.handle(Bridged("ast", 0, at, leg_a=leg, leg_b="B", number_a=number, size=3))
    return acts


def test_the_setting_defaults_to_stop_takes_mute_and_refuses_anything_else() -> None:
    assert AccountSettings().external_joiner == "stop"
    assert settings_from_dict({"external_joiner": "mute"}).external_joiner == "mute"
    with pytest.raises(PolicyError) as e:
        settings_from_dict({"external_joiner": "pause"})
    assert e.value.field == "external_joiner" and "stop, mute" in str(e.value)
    ps = PolicySet(accounts={"main": Account("main", AccountSettings(external_joiner="mute"))})
    again = parse_settings(dump_settings(ps))  # the settings file round trip
    assert again.accounts["main"].settings.external_joiner == "mute"
    decision = ps.resolve(direction="inbound", number=None)
    assert (decision.settings.external_joiner, decision.sources["external_joiner"]) == ("mute", "account")


def test_stop_is_unchanged_by_default() -> None:
    t, _ = recorded(continue_on_external_transfer=False)
    acts = dial_in(t, "X", EXTERNAL, T + 3)
    assert [type(a) for a in acts if isinstance(a, (Stop, Mute))] == [Stop]


def test_mute_while_the_external_party_is_in_then_record_customer_and_agent_again() -> None:
    t, call = recorded(continue_on_external_transfer=False, external_joiner="mute")
    acts = dial_in(t, "X", EXTERNAL, T + 3)
    assert [type(a) for a in acts] == [Mute, Changed]  # the PBX command first
    rec = call.recording
    assert rec is not None and not rec.stopping and rec.timeline.transfer_muted
    (joined,) = rec.timeline.conference
    assert (joined["stopped_recording"], joined["muted_recording"]) == (False, True)
    assert call.silence_held  # a user's resume is refused while the party is in
    acts = t.handle(Unbridged("ast", 0, T + 7, leg_a="X", leg_b="A"))
    assert [type(a) for a in acts] == [Changed, Unmute]
    (p,) = rec.timeline.pauses
    assert (p["reason"], p["start_ms"], p["end_ms"], p["outcome"], p["next_party"]) == (
        "external_joiner",
        3000,
        7000,
        "unmuted",
        "2001",
    )
    assert joined["left_ms"] == 7000 and not call.silence_held and not rec.stopping
    assert [s["party"] for s in rec.timeline.segments] == ["2001"]


def test_rule_on_or_a_colleague_is_never_muted() -> None:
    for settings, number in (({"continue_on_external_transfer": True}, EXTERNAL), ({}, "2002")):
        t, call = recorded(**{"continue_on_external_transfer": False, "external_joiner": "mute", **settings})
        acts = dial_in(t, "X", number, T + 3)
        assert [type(a) for a in acts] == [Changed], (settings, number)
        assert call.recording is not None and call.recording.timeline.pauses == []


def test_agent_leaving_the_muted_party_alone_with_the_customer_stops() -> None:
    t, _call = recorded(continue_on_external_transfer=False, external_joiner="mute")
    dial_in(t, "X", EXTERNAL, T + 3)
    acts = t.handle(Unbridged("ast", 0, T + 5, leg_a="B", leg_b="A"))
    stop = next(a for a in acts if isinstance(a, Stop))
    assert stop.reason == "external_transfer" and not [a for a in acts if isinstance(a, Unmute)]


def test_a_consultation_merged_into_a_conference_keeps_its_mute_without_a_gap() -> None:
    """Asterisk's three-way merge: the agent consulted the external party (muted from the dial), comes
    back to the customer's bridge while the consultation is up, then the party joins: no unmute between."""
    t, call = recorded(continue_on_external_transfer=False, external_joiner="mute")
    t.handle(HoldChanged("ast", 0, T + 2, leg="B", held=True))
    assert [type(a) for a in t.handle(created("X", "", EXTERNAL, originator="B"))] == [Mute, Changed]
    t.handle(Unbridged("ast", 0, T + 2.1, leg_a="B", leg_b="A"))  # the agent moves to the consultation
    from tests.core.test_conference import Bridged

    assert t.handle(Bridged("ast", 0, T + 4, leg_a="B", leg_b="A")) == []  # back: still muted
    acts = t.handle(Bridged("ast", 0, T + 4, leg_a="X", leg_b="A", number_a=EXTERNAL, size=3))
    assert not [a for a in acts if isinstance(a, (Unmute, Mute, Stop))]
    rec = call.recording
    assert rec is not None and rec.timeline.transfer_muted and len(rec.timeline.pauses) == 1
    assert rec.timeline.consultations[0]["outcome"] == "conference"
    acts = t.handle(Unbridged("ast", 0, T + 6, leg_a="X", leg_b="A"))
    assert Unmute in [type(a) for a in acts] and not rec.timeline.transfer_muted
