"""Frame-exact checks for transfers (issue #13 §1): which 20 ms frames of a stereo recording carry a
party's tone, who is on the right channel in turn, and the transfer scenarios both simulators play
(blind to an external number, a failed attended transfer).

A frame "carries" a tone as `lab.tones.tone_frames` says (-20 dB of the lab's tone amplitude at
exactly that frequency): one 20 ms frame of the external party is found, while the neighbouring
parties' tones (440 / 880 Hz) stay far below.
"""

from __future__ import annotations

import os

from lab import scenarios as sc
from lab.tones import SAMPLE_RATE, channel_timeline, read_wav, tone_frames

FRAME_MS = 20


def frames_with_tone(path: str | os.PathLike[str], hz: float) -> list[tuple[bool, ...]]:
    """Per 20 ms frame, per channel: does it carry `hz`?"""
    rate, _, frames = read_wav(path)
    assert rate == SAMPLE_RATE
    return tone_frames(frames, hz, FRAME_MS)


def right_sequence(path: str | os.PathLike[str]) -> list[float]:
    """The distinct RIGHT-channel tones of a stereo recording in order, 250 ms windows (silence dropped)."""
    seq: list[float] = []
    for _, right in channel_timeline(path, 250):
        if right is not None and (not seq or seq[-1] != right):
            seq.append(right)
    return seq


def blind_external(method: str, continue_rule: bool) -> sc.Scenario:
    """Inbound call, the customer transferred blind to the external number by `method` (phone REFER,
    the PBX told, or a redirect no event names), 2 s of talk on each side of the transfer."""
    stops = not continue_rule
    return sc.Scenario(
        f"blind_transfer_external_{'continue' if continue_rule else 'stop'}_{method}",
        f"blind transfer ({method}) to {sc.EXTERNAL_TARGET}, continue_on_external_transfer={continue_rule}",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.Transfer(kind="blind", method=method),  # type: ignore[arg-type]
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(
            True,
            segments=("agent",) if stops else ("agent", "target"),
            transfers=(("blind", "external"),),
            stop_reason="external_transfer" if stops else "hangup",
            ends_at_transfer=stops,
        ),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_EXTERNAL},
        settings={"continue_on_external_transfer": continue_rule},
    )


def failed_attended(method: str, outcome: str) -> sc.Scenario:
    """Inbound call; the agent consults a colleague (by `method`: the phone's hold + second call, or the
    PBX's Atxfer / att_xfer) who is busy, does not answer, or is given up on (`outcome`); the agent
    takes the customer back and they talk 2 s more."""
    return sc.Scenario(
        f"attended_transfer_{outcome}_{method}",
        "the agent consults a colleague who is busy / does not answer / is given up on; the customer is back",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.Transfer("attended", method=method, outcome=outcome),  # type: ignore[arg-type]
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_INTERNAL},
    )


def check_external_party(path: str | os.PathLike[str], timeline: dict, continue_rule: bool, announced: bool) -> None:
    """Rule off: not one frame of the external party anywhere. Rule on: the party is on the RIGHT in
    every frame from the one it answered in (2 s of talk + 500 ms ring after the recording began) to
    the end of its 2 s of talk — nothing of its first word masked. The timeline shows the transfer
    mute and how it ended — except when an `announced` target stopped the recording before the
    customer even left its bridge (nothing to mute then)."""
    hz = float(sc.TARGET_EXTERNAL.tone_hz)
    frames = frames_with_tone(path, hz)
    with_target = [i for i, f in enumerate(frames) if any(f)]
    mutes = [p for p in timeline["pauses"] if p.get("kind") == "transfer_mute"]
    if not continue_rule:
        assert with_target == [], f"external party heard in 20 ms frames {with_target[:10]}… of {len(frames)}"
        if announced and not mutes:
            assert timeline["transfers"][0]["stopped_recording"] is True
            return
    if announced:  # the PBX named an external party the rule lets us record: nothing unknown, no mute
        assert mutes == [], mutes
    else:
        assert mutes, f"no transfer mute in the timeline: {timeline['pauses']}"
        mute = mutes[0]
        assert mute["end_ms"] is not None and mute["next_party"] == sc.EXTERNAL_TARGET, mute
        if not continue_rule:
            assert mute["outcome"] == "stopped", mute
            return
        assert mute["outcome"] == "unmuted", mute
    answered = (2000 + 500) // FRAME_MS
    talk = 2000 // FRAME_MS
    assert with_target, "the external party is missing"
    assert with_target[0] == answered, f"first frame with the external party: {with_target[0]}, answered at {answered}"
    missing = [i for i in range(answered, answered + talk - 1) if not frames[i][1]]
    assert missing == [], f"frames without the external party after it answered: {missing[:10]}"
    target_segment = timeline["segments"][-1]
    assert target_segment["party"] == sc.EXTERNAL_TARGET
    assert all(m["end_ms"] <= target_segment["start_ms"] for m in mutes), "unmuted before the party was bridged"
