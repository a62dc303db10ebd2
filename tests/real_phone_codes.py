"""What the real-PBX phone-code tests check in a stored recording: a baresip agent phone keyed *1 then
*2 (RFC 4733 telephone-events) during a call with the customer phone playing 440 Hz (LEFT) and the
agent's 880 Hz (RIGHT). Per 20 ms frame of the decrypted file: both channels silent over the pause the
timeline lists (±1 frame at each edge), both parties there before and after it; the confirmation
tone (1400 Hz) never on the customer's channel; the pause listed as the agent's, by phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lab.tones import read_wav, tone_amplitude
from tests.phone_codes_common import CONFIRM, frames_with, near, stereo_frames

FRAME_MS = 20
TONE_FLOOR = 300.0  # amplitude of a tone component that counts as "there" (lab tones ~8000, FS -13 dBm0 ~3000)


def tone_present(path: str | Path, hz: float, channel: int) -> list[int]:
    """Frames of `path` whose `channel` carries `hz` (mixed or not with another party's tone)."""
    _, _, frames = read_wav(path)
    size = 8000 * FRAME_MS // 1000
    samples: np.ndarray = frames[:, channel]
    return [
        i // size
        for i in range(0, len(samples) - size + 1, size)
        if tone_amplitude(samples[i : i + size], hz) >= TONE_FLOOR
    ]


def assert_paused_by_phone(timeline: dict[str, Any], agent: str) -> tuple[int, int]:
    """The one pause: the agent's, by phone, resumed by phone; its span in frames."""
    (pause,) = [p for p in timeline["pauses"] if p.get("kind") != "transfer_mute"]
    assert (pause["by"], pause["how"]) == (f"agent:{agent}", "phone"), pause
    assert (pause["resumed_by"], pause["resumed_how"]) == (f"agent:{agent}", "phone"), pause
    return pause["start_ms"] // FRAME_MS, -(-pause["end_ms"] // FRAME_MS)


def share(tones: list[float | None], frames: range, hz: int) -> float:
    return sum(near(tones[i], hz) for i in frames) / max(1, len(frames))


def assert_silent_over(stereo: str | Path, start: int, end: int) -> None:
    """Both channels silent within the pause (±1 frame); the customer (440 Hz LEFT) there in every
    frame of the second before it and the second after it; the agent (880 Hz RIGHT) in 90% of the
    frames of a second before the keying and after it. The agent's RIGHT goes quiet while the phone
    keys a code: a phone sends telephone-events instead of voice then (observed ~150 ms before the
    pause and ~500 ms after the resume with baresip), and a loaded host drops a frame here and there."""
    left, right = stereo_frames(stereo)
    assert end - start >= 75, (start, end)  # the test pauses for ~2 s
    span = range(start + 1, end - 1)
    sound = [(i, left[i], right[i]) for i in span if left[i] is not None or right[i] is not None]
    assert sound == [], (start, end, sound)
    assert len(left) >= end + 100, (end, len(left))
    before, after = range(start - 50, start - 1), range(end + 1, end + 51)
    assert all(near(left[i], 440) for i in before), [left[i] for i in before]
    assert all(near(left[i], 440) for i in after), [left[i] for i in after]
    assert share(right, range(start - 75, start - 25), 880) >= 0.9, [right[i] for i in range(start - 75, start)]
    assert share(right, range(end + 50, end + 100), 880) >= 0.9, [right[i] for i in range(end, end + 100)]


def assert_confirmed_twice(heard: str | Path) -> None:
    """What the agent's phone played: the confirmation once per code (*1, then *2 about 2 s later)."""
    frames = tone_present(heard, CONFIRM, 0)
    onsets = [f for f in frames if f - 1 not in frames]
    assert len(onsets) == 2 and 80 <= onsets[1] - onsets[0] <= 160, frames


def assert_confirm_not_on_customer(stereo: str | Path) -> list[int]:
    """The confirmation never on LEFT; returns the frames where it is on RIGHT (PBX-dependent)."""
    assert tone_present(stereo, CONFIRM, 0) == []
    left, _ = stereo_frames(stereo)
    assert not frames_with(left, CONFIRM)
    return tone_present(stereo, CONFIRM, 1)
