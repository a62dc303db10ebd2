"""Frame-exact checks for transfers (issue #13 §1): which 20 ms frames of a stereo recording carry a
party's tone, and the blind-transfer-to-an-external-number scenarios both simulators play.

A frame "carries" a tone when the tone's amplitude, estimated by a Hann-windowed DFT at exactly that
frequency, is at least a tenth of the lab's tone amplitude (-20 dB): one 20 ms frame of the external
party is found, while the neighbouring parties' tones (440 / 880 Hz, 4+ bins away) stay far below.
"""

from __future__ import annotations

import os

import numpy as np

from lab import scenarios as sc
from lab.tones import AMPLITUDE, SAMPLE_RATE, read_wav

FRAME_MS = 20
FRAME = SAMPLE_RATE * FRAME_MS // 1000


def tone_amplitude(samples: np.ndarray, hz: float, rate: int = SAMPLE_RATE) -> float:
    """Amplitude of the `hz` component of one frame (a full-scale sine of amplitude A gives ~A)."""
    x = samples.astype(np.float64)
    w = np.hanning(x.size)
    n = np.arange(x.size)
    return float(2 * abs(np.sum(w * x * np.exp(-2j * np.pi * hz * n / rate))) / np.sum(w))


def frames_with_tone(path: str | os.PathLike[str], hz: float) -> list[tuple[bool, ...]]:
    """Per 20 ms frame, per channel: does it carry `hz`?"""
    rate, channels, frames = read_wav(path)
    assert rate == SAMPLE_RATE
    out = []
    for i in range(0, len(frames) - FRAME + 1, FRAME):
        out.append(tuple(tone_amplitude(frames[i : i + FRAME, c], hz) >= AMPLITUDE / 10 for c in range(channels)))
    return out


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
    assert mutes, f"no transfer mute in the timeline: {timeline['pauses']}"
    mute = mutes[0]
    assert mute["end_ms"] is not None and mute["next_party"] == sc.EXTERNAL_TARGET, mute
    if not continue_rule:
        assert mute["outcome"] == "stopped", mute
        return
    answered = (2000 + 500) // FRAME_MS
    talk = 2000 // FRAME_MS
    assert with_target, "the external party is missing"
    assert with_target[0] == answered, f"first frame with the external party: {with_target[0]}, answered at {answered}"
    missing = [i for i in range(answered, answered + talk - 1) if not frames[i][1]]
    assert missing == [], f"frames without the external party after it answered: {missing[:10]}"
    assert mute["outcome"] == "unmuted", mute
    target_segment = timeline["segments"][-1]
    assert target_segment["party"] == sc.EXTERNAL_TARGET
    assert mute["end_ms"] <= target_segment["start_ms"], "unmuted before the party was bridged"
