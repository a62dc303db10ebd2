"""The consultation mute (issue #13 §1/§2/§3) on what a REAL Asterisk 20.20.1 sent for Atxfer (R7, R8:
completed; R10, R11: the target busy; R12: merged into a three-way call), replayed with an account
whose numbering plan makes the consulted 3002 / 3098 / 3099 EXTERNAL and continue_on_external_transfer
off: the recording is muted at the consultation's Local channel (Newchannel), before the target
answers; a completion stops it with the mute never lifted; a failed one lifts it when the agent is
back; a three-way merge stops it (external_joiner = stop) or keeps it muted with no unmute in between
until the joiner has left (mute)."""

from __future__ import annotations

import pytest

from controller.calls import CallTracker, Changed, Decide, Mute, Stop, Unmute
from controller.drivers.ami_translate import AmiTranslator
from controller.events import ChannelAnswered, ChannelCreated
from controller.numbering import NumberingPlan
from controller.policy import Account, PolicySet, settings_from_dict

from .test_real_replay import real_messages

ONLY_2XXX = NumberingPlan(internal=(r"^2\d{3}$",))  # the consulted 3xxx are outside numbers here


async def _sequence(name: str, target: str, **settings: object) -> list[str]:
    acct = settings_from_dict({"continue_on_external_transfer": False, **settings})
    ps = PolicySet(accounts={"main": Account("main", acct, ONLY_2XXX)})
    tr, tracker = AmiTranslator("ast"), CallTracker("ast")
    seen: list[str] = []
    dialled: set[str] = set()
    for t, msg in await real_messages(name):
        for ev in tr.feed(msg, t, 1_800_000_000 + t):
            if isinstance(ev, ChannelCreated) and ev.callee == target:
                if not dialled:
                    seen.append("dial")
                dialled.add(ev.leg)
            if isinstance(ev, ChannelAnswered) and ev.leg in dialled and "target answers" not in seen:
                seen.append("target answers")
            for act in tracker.handle(ev):
                if isinstance(act, Decide):
                    call = act.call
                    decision = ps.resolve(direction=call.direction, number=call.account_number or None)
                    tracker.recording_started(call, "rec-1", decision, ev.wall)
                elif isinstance(act, Mute):
                    seen.append(f"mute:{act.entry['reason']}")
                elif isinstance(act, Unmute):
                    seen.append(f"unmute:{act.entry['outcome']}")
                elif isinstance(act, Stop):
                    seen.append(f"stop:{act.reason}")
                elif isinstance(act, Changed) and act.kind == "conference":
                    seen.append("joins" if act.detail["left_ms"] is None else "leaves")
    return seen


@pytest.mark.parametrize("name", ["R7-attended-merge-before-transfer", "R8-attended-customer-moved"])
async def test_completed_atxfer_to_an_external_party_is_muted_from_the_dial_to_the_stop(name: str) -> None:
    seen = await _sequence(name, "3002")
    assert seen == ["dial", "mute:external_consultation", "target answers", "stop:external_transfer"], seen


@pytest.mark.parametrize(
    ("name", "target"), [("R10-attended-target-busy", "3099"), ("R11-attended-target-busy-at-once", "3098")]
)
async def test_atxfer_to_a_busy_external_party_is_unmuted_when_the_agent_is_back(name: str, target: str) -> None:
    seen = await _sequence(name, target)
    assert seen == ["dial", "mute:external_consultation", "unmute:unmuted", "stop:hangup"], seen


@pytest.mark.parametrize("joiner", ["stop", "mute"])
async def test_three_way_merge_with_an_external_party(joiner: str) -> None:
    seen = await _sequence("R12-threeway-then-joiner-leaves", "3002", external_joiner=joiner)
    assert seen[:3] == ["dial", "mute:external_consultation", "target answers"], seen
    if joiner == "stop":
        assert seen[3:] == ["joins", "stop:external_joined"], seen
    else:  # the consultation's mute becomes the join's: lifted once, when the joiner has left
        assert seen[3:] == ["joins", "leaves", "unmute:unmuted", "stop:hangup"], seen
