"""The consultation mute (issue #13 §1/§2) on what a REAL FreeSWITCH 1.10.12 sent for att_xfer
(LB_att_xfer_internal: completed; LB_att_xfer_busy: the target answered USER_BUSY), replayed with an
account whose numbering plan makes the consulted 3001 / 3099 EXTERNAL and continue_on_external_transfer
off: the recording is muted at the consultation leg's CHANNEL_CREATE, before the target answers; the
completion stops it with the mute never lifted; the failed one lifts it and the call goes on."""

from __future__ import annotations

from controller.calls import CallTracker, Decide, Mute, Stop, Unmute
from controller.events import ChannelAnswered, ChannelCreated, ChannelHungUp, Resync
from controller.numbering import NumberingPlan
from controller.policy import Account, AccountSettings, PolicySet

from .eslcap import LOOPBACK_FIXTURES
from .test_replay import replay

ONLY_2XXX = NumberingPlan(internal=(r"^2\d{3}$",))  # 3001 / 3099 are outside numbers here


async def _sequence(name: str, target: str) -> tuple[list[str], CallTracker]:
    """What happens, in order: the consultation's dial, the target answering or hanging up, and the
    tracker's mute / unmute / stop."""
    events = await replay(name, resplit=True, where=LOOPBACK_FIXTURES)
    settings = AccountSettings(continue_on_external_transfer=False)
    ps = PolicySet(accounts={"main": Account("main", settings, ONLY_2XXX)})
    tracker = CallTracker("fs-replay", numbering=ONLY_2XXX)
    seen: list[str] = []
    consult = ""
    for ev in events:
        if isinstance(ev, Resync):
            continue
        if isinstance(ev, ChannelCreated) and not consult and target in (ev.callee, ev.variables.get("dialed_user")):
            consult = ev.leg
            seen.append("dial")
        if isinstance(ev, ChannelAnswered) and ev.leg == consult:
            seen.append("target answers")
        if isinstance(ev, ChannelHungUp) and ev.leg == consult and ev.cause != "NORMAL_CLEARING":
            seen.append(f"target {ev.cause}")
        for act in tracker.handle(ev):
            if isinstance(act, Decide):
                tracker.recording_started(
                    act.call, "rec-1", ps.resolve(direction=act.call.direction, number=None), ev.wall
                )
            elif isinstance(act, Mute):
                seen.append(f"mute:{act.entry['reason']}")
            elif isinstance(act, Unmute):
                seen.append(f"unmute:{act.entry['outcome']}")
            elif isinstance(act, Stop):
                seen.append(f"stop:{act.reason}")
    return seen, tracker


async def test_completed_att_xfer_to_an_external_party_is_muted_from_the_dial_to_the_stop() -> None:
    seen, _ = await _sequence("LB_att_xfer_internal", "3001")
    assert seen == ["dial", "mute:external_consultation", "target answers", "stop:external_transfer"], seen


async def test_att_xfer_to_a_busy_external_party_is_unmuted_when_it_fails() -> None:
    seen, _ = await _sequence("LB_att_xfer_busy", "3099")
    assert seen[:2] == ["dial", "mute:external_consultation"], seen
    assert seen[2:] == ["target USER_BUSY", "unmute:unmuted", "stop:hangup"], seen
