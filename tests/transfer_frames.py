"""Frame-exact checks for transfers (issue #13 §1): which 20 ms frames of a stereo recording carry a
party's tone, who is on the right channel in turn, and the transfer scenarios both simulators play
(blind to an external number, a failed attended transfer).

A frame "carries" a tone as `lab.tones.tone_frames` says (-20 dB of the lab's tone amplitude at
exactly that frequency): one 20 ms frame of the external party is found, while the neighbouring
parties' tones (440 / 880 Hz) stay far below.
"""

from __future__ import annotations

import os
from typing import Any

from controller.config import Config
from lab import scenarios as sc
from lab.tones import SAMPLE_RATE, channel_timeline, read_wav, tone_frames
from storage.playback import decrypted_audio_file

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


def attended_external(method: str, continue_rule: bool, outcome: str = "answer") -> sc.Scenario:
    """Inbound call; after 2 s the agent consults the external number (the customer held), which
    answers after 500 ms (or is busy: `outcome`), and after 1 s of consultation the transfer completes
    (`method` phone: the agent's phone, REFER with Replaces; pbx: Asterisk Atxfer / FreeSWITCH att_xfer);
    then 2 s of talk. A failed consultation leaves the agent with the customer for those 2 s."""
    answered = outcome == "answer"
    stops = answered and not continue_rule
    rule = "continue" if continue_rule else "stop"
    return sc.Scenario(
        f"attended_transfer_external_{rule}_{method}_{outcome}",
        f"attended transfer ({method}) to {sc.EXTERNAL_TARGET} ({outcome}), "
        f"continue_on_external_transfer={continue_rule}",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.Transfer(kind="attended", method=method, outcome=outcome),  # type: ignore[arg-type]
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(
            True,
            segments=("agent",) if stops or not answered else ("agent", "target"),
            transfers=(("attended", "external"),) if answered else (),
            stop_reason="external_transfer" if stops else "hangup",
            ends_at_transfer=stops,
        ),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_EXTERNAL},
        settings={"continue_on_external_transfer": continue_rule},
    )


def check_attended_external(path: str | os.PathLike[str], timeline: dict, continue_rule: bool, outcome: str) -> None:
    """What the stored file of `attended_external` holds, per 20 ms frame (recording from the answer):
    the customer LEFT and the agent RIGHT for 2 s; rule off: from the consultation's dial on, silence on
    both channels (the customer's recording is muted) and not one frame of the external party — to the
    stop at the completion, or, after a failed consultation, until the agent is back (500 ms), then
    the customer and the agent again for 2 s. Rule on: no mute; the external party on the RIGHT in
    every frame from the completion (2 s + 500 ms ring + 1 s consultation) for its 2 s of talk."""
    customer, agent, external = (float(p.tone_hz) for p in (sc.CUSTOMER, sc.AGENT, sc.TARGET_EXTERNAL))
    ext = frames_with_tone(path, external)
    with_ext = [i for i, f in enumerate(ext) if any(f)]
    cust = frames_with_tone(path, customer)
    agt = frames_with_tone(path, agent)
    dial = 2000 // FRAME_MS
    talk = 2000 // FRAME_MS
    assert all(cust[i][0] and agt[i][1] for i in range(1, dial - 1)), "customer LEFT, agent RIGHT before the dial"
    mutes = [p for p in timeline["pauses"] if p.get("reason") == "external_consultation"]
    if continue_rule:
        assert mutes == [], mutes
        if outcome == "answer":
            done = (2000 + 500 + 1000) // FRAME_MS
            assert with_ext and with_ext[0] == done, (
                f"external party first in frame {with_ext[:1]}, completed at {done}"
            )
            missing = [i for i in range(done, done + talk - 1) if not ext[i][1]]
            assert missing == [], f"frames without the external party after the completion: {missing[:10]}"
        return
    assert with_ext == [], f"external party heard in 20 ms frames {with_ext[:10]}… of {len(cust)}"
    (mute,) = mutes
    assert mute["kind"] == "transfer_mute" and mute["end_ms"] is not None, mute
    heard = [i for i in range(dial + 1, len(cust)) if any(cust[i]) or any(agt[i])]
    if outcome == "answer":
        assert (mute["outcome"], mute["next_party"]) == ("stopped", sc.EXTERNAL_TARGET), mute
        assert heard == [], f"sound after the consultation's dial in frames {heard[:10]}"
        return
    assert (mute["outcome"], mute["next_party"]) == ("unmuted", sc.AGENT_EXT), mute
    back = (2000 + 500) // FRAME_MS
    assert heard and heard[0] >= back, f"sound during the consultation in frames {heard[:10]}"
    gaps = [i for i in range(back + 1, back + talk - 1) if not (cust[i][0] and agt[i][1])]
    assert gaps == [], f"frames after the agent came back without customer LEFT + agent RIGHT: {gaps[:10]}"


def three_way_external_muted() -> sc.Scenario:
    """Inbound call; after 2 s the agent brings the external number into a three-way call (rule off,
    `external_joiner = mute`), all three talk 2 s, the external party hangs up, customer and agent talk
    2 s more."""
    return sc.Scenario(
        "three_way_external_muted",
        "an external party joins a conference with continue_on_external_transfer off and external_joiner = mute",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.ThreeWay(),
            sc.Talk(2000),
            sc.Hangup("target"),
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_EXTERNAL},
        settings={"continue_on_external_transfer": False, "external_joiner": "mute"},
    )


def check_three_way_muted(path: str | os.PathLike[str], timeline: dict, joined_at_ms: int) -> None:
    """Per 20 ms frame: the customer LEFT and the agent RIGHT for 2 s; not one frame of the external
    party; silence on both channels for the 2 s it is in the call (from `joined_at_ms` in the file);
    the customer LEFT and the agent RIGHT again for the 2 s after it left. The timeline lists the join
    as muting (not stopping) the recording and the mute as lifted when it left."""
    customer, agent, external = (float(p.tone_hz) for p in (sc.CUSTOMER, sc.AGENT, sc.TARGET_EXTERNAL))
    ext = [i for i, f in enumerate(frames_with_tone(path, external)) if any(f)]
    cust, agt = frames_with_tone(path, customer), frames_with_tone(path, agent)
    assert ext == [], f"external party heard in 20 ms frames {ext[:10]}… of {len(cust)}"
    talk = 2000 // FRAME_MS
    assert all(cust[i][0] and agt[i][1] for i in range(1, talk - 1)), "customer LEFT, agent RIGHT before the join"
    join = joined_at_ms // FRAME_MS
    heard = [i for i in range(join + 1, join + talk - 1) if any(cust[i]) or any(agt[i])]
    assert heard == [], f"sound while the external party was in the call, frames {heard[:10]}"
    after = range(len(cust) - talk + 2, len(cust) - 1)
    gaps = [i for i in after if not (cust[i][0] and agt[i][1])]
    assert gaps == [], f"frames after it left without customer LEFT + agent RIGHT: {gaps[:10]} of {len(cust)}"
    (joined,) = timeline["conference"]
    assert (joined["party"], joined["stopped_recording"], joined["muted_recording"]) == (
        sc.EXTERNAL_TARGET,
        False,
        True,
    )
    assert joined["left_ms"] is not None
    mutes = [p for p in timeline["pauses"] if p.get("kind") == "transfer_mute" and p.get("outcome") == "unmuted"]
    assert mutes and mutes[-1]["end_ms"] >= joined["left_ms"], timeline["pauses"]
    assert mutes[-1]["next_party"] == sc.AGENT_EXT


def check_real_attended_external(
    path: str | os.PathLike[str], timeline: dict, *, external: str, agent: str, completed: bool
) -> None:
    """A REAL PBX's attended transfer to an `external` number, rule off (issue #13 §1/§2), per 20 ms
    frame of the stored file: not one frame of the external party (660 Hz) on either channel; the
    customer LEFT + agent RIGHT for the first 2 s (before the transfer began); the transfer mute (reason
    external_consultation) from that dial. Completed: nothing heard after the mute began and the file
    ends at the completion (the stop). Failed (busy): unmuted with the agent next, the agent back within
    1 s, and the customer LEFT + agent RIGHT in every frame after (a 100 ms margin at the edges)."""
    customer, agent_hz, ext_hz = (float(p.tone_hz) for p in (sc.CUSTOMER, sc.AGENT, sc.TARGET_EXTERNAL))
    ext = frames_with_tone(path, ext_hz)
    with_ext = [i for i, f in enumerate(ext) if any(f)]
    assert with_ext == [], f"external party heard in 20 ms frames {with_ext[:10]}… of {len(ext)}"
    cust, agt = frames_with_tone(path, customer), frames_with_tone(path, agent_hz)
    (mute,) = [p for p in timeline["pauses"] if p.get("reason") == "external_consultation"]
    assert mute["kind"] == "transfer_mute" and mute["end_ms"] is not None, mute
    start, end, margin = mute["start_ms"] // FRAME_MS, mute["end_ms"] // FRAME_MS, 100 // FRAME_MS
    # the tests start the transfer 2.5 s into the recording; the PBX holds the customer from then (Asterisk's
    # Atxfer: some 850 ms of silence while it takes the digits, before the consultation channel exists)
    before = range(25, min(start - margin, 2000 // FRAME_MS))  # from 500 ms: the agent's phone answering
    gaps = [i for i in before if not (cust[i][0] and agt[i][1])]
    assert len(before) > 50 and len(gaps) <= 3, f"customer LEFT + agent RIGHT missing before the dial: {gaps[:10]}"
    heard = [i for i in range(start + margin, min(end, len(cust))) if any(cust[i]) or any(agt[i])]
    assert heard == [], f"sound while muted for the consultation, frames {heard[:10]} (mute {mute})"
    if completed:
        assert (mute["outcome"], mute["next_party"]) == ("stopped", external), mute
        (xfer,) = timeline["transfers"]
        assert abs(len(cust) * FRAME_MS - xfer["at_ms"]) <= 500, (len(cust) * FRAME_MS, xfer)
        return
    assert (mute["outcome"], mute["next_party"]) == ("unmuted", agent), mute
    # unmuted when the consultation failed; the agent's way back into the customer's bridge takes the PBX
    # a moment more (Asterisk 20, busy at once: ~220 ms in which the customer, alone and held, is silent)
    both = [i for i in range(end, len(cust)) if cust[i][0] and agt[i][1]]
    assert both and both[0] - end <= 1000 // FRAME_MS, f"the agent not back within 1 s of the unmute: {both[:1]}"
    after = range(both[0], len(cust) - margin)
    gaps = [i for i in after if not (cust[i][0] and agt[i][1])]
    assert len(after) >= 100, f"only {len(after)} frames after the agent came back"
    assert len(gaps) <= 3, f"frames after the agent came back without customer LEFT + agent RIGHT: {gaps[:10]}"


def runs(flags: list[bool], gap: int = 5) -> list[tuple[int, int]]:
    """(first, end) frame spans where `flags` holds, bridging dropouts of up to `gap` frames (100 ms:
    media jitter on a loaded host)."""
    out: list[tuple[int, int]] = []
    for i, f in enumerate(flags):
        if f and out and i - out[-1][1] <= gap:
            out[-1] = (out[-1][0], i + 1)
        elif f:
            out.append((i, i + 1))
    return out


async def check_real_attended_external_row(
    config: Config, row: Any, *, external: str, agent: str, completed: bool
) -> None:
    """check_real_attended_external on a stored recording's row: first what the journal says (completed:
    stopped by the attended transfer to `external`; failed: no transfer, ended by the hang-up; the
    agent the only party either way), then its decrypted audio per frame."""
    t = row["timeline"]
    if completed:
        assert row["stop_reason"] == "external_transfer"
        assert [(x["kind"], x["target"], x["target_class"], x["stopped_recording"]) for x in t["transfers"]] == [
            ("attended", external, "external", True)
        ]
    else:
        assert row["stop_reason"] == "hangup"
        assert t["transfers"] == []
    assert [s["party"] for s in t["segments"]] == [agent]
    async with decrypted_audio_file(config, dict(row)) as path:
        check_real_attended_external(path, t, external=external, agent=agent, completed=completed)
