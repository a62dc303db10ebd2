"""What the phone-code tests check on either simulated PBX, by FFT over 20 ms frames: the recording
(customer LEFT 440 Hz, agent RIGHT 880 Hz) is silent on both channels over exactly the paused span,
and a tone callrec plays reaches the ear of the party it is meant for and nobody else — never the
recording. Frame indices count from the recording's start; an earpiece starts 500 ms (25 frames)
earlier, when the phone began to ring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.tones import TONES
from lab import scenarios as sc
from lab.tones import frame_tones, read_wav

RING_FRAMES = 25  # sc.Ring() = 500 ms before the answer


def near(hz: float | None, want: int) -> bool:
    return hz is not None and abs(hz - want) <= 60


def stereo_frames(path: str | Path) -> tuple[list[float | None], list[float | None]]:
    _, _, frames = read_wav(path)
    return frame_tones(frames[:, 0]), frame_tones(frames[:, 1])


def ear_frames(path: str | Path) -> list[float | None]:
    """What one party heard, per 20 ms frame, aligned with the recording (the ringing cut off)."""
    return frame_tones(read_wav(path)[2][:, 0])[RING_FRAMES:]


def assert_talk(left: list[float | None], right: list[float | None], start: int, end: int) -> None:
    assert all(near(x, 440) for x in left[start:end]), left[start:end]
    assert all(near(x, 880) for x in right[start:end]), right[start:end]


def assert_silent(left: list[float | None], right: list[float | None], start: int, end: int) -> None:
    assert left[start:end] == [None] * (end - start), left[start:end]
    assert right[start:end] == [None] * (end - start), right[start:end]


def frames_with(tones: list[float | None], hz: int) -> list[int]:
    return [i for i, x in enumerate(tones) if near(x, hz)]


CONFIRM, REFUSE = TONES["confirm"].hz, TONES["refuse"].hz

# talk 1 s (frames 0-49), *1, paused 1.5 s (frames 50-124), *2, talk 1 s (frames 125-174)
PAUSE_STEPS: list[sc.Step] = [
    sc.Talk(1000),
    sc.DialCode("pause"),
    sc.Talk(1500),
    sc.DialCode("resume"),
    sc.Talk(1000),
    sc.Hangup("customer"),
]
REFUSED_STEPS: list[sc.Step] = [sc.Talk(1000), sc.DialCode("pause"), sc.Talk(1000), sc.Hangup("customer")]


def codes_scenario(steps: list[sc.Step], *, recorded_at_answer: bool = True) -> sc.Scenario:
    return sc.Scenario(
        "codes",
        "inbound; the agent dials codes",
        (sc.PlaceCall("inbound"), sc.Ring(), sc.Answer(), *steps),
        sc.Expectation(recorded_at_answer),
    )


def assert_pause_heard_and_silent(stereo: str | Path, agent_ear: Path, customer_ear: Path) -> None:
    """PAUSE_STEPS as recorded and heard."""
    left, right = stereo_frames(stereo)
    assert len(left) == 175
    assert_talk(left, right, 0, 50)
    assert_silent(left, right, 50, 125)
    assert_talk(left, right, 125, 175)
    # the confirmation beeps never reached the recording (customer side or agent side) ...
    assert not frames_with(left + right, CONFIRM)
    # ... but the agent heard one right after each code, and the customer none
    beeps = frames_with(ear_frames(agent_ear), CONFIRM)
    assert beeps and 50 <= beeps[0] < 60 and any(125 <= i < 135 for i in beeps), beeps
    assert not frames_with(ear_frames(customer_ear), CONFIRM)


def assert_refused_heard(stereo: str | Path, agent_ear: Path) -> None:
    """REFUSED_STEPS: nothing silent in the file, the refusal (not the confirmation) in the agent's ear."""
    left, right = stereo_frames(stereo)
    assert_talk(left, right, 0, len(left))
    heard = ear_frames(agent_ear)
    assert frames_with(heard, REFUSE) and not frames_with(heard, CONFIRM)


WARNING = TONES["warning"].hz

# talk 1 s, *1, then 2 s of call in real time: a 1 s secure pause warns at 0.5 s and resumes at 1 s
SECURE_STEPS: list[sc.Step] = [sc.Talk(1000), sc.DialCode("pause"), sc.Talk(2000), sc.Hangup("customer")]


def assert_secure_pause(timeline: dict[str, object], stereo: str | Path, agent_ear: Path, customer_ear: Path) -> None:
    """SECURE_STEPS with pause_max_seconds = 1 and a 0.5 s warning lead, played in real time: the
    pause ended by itself (who/how in the timeline) after about a second; the file is silent from the
    code to the automatic resume, then the call is recorded again; the agent heard the warning during
    the pause, the customer did not, and the recording has no trace of it. The spans allow 200 ms
    either way for a loaded machine: what matters is that the pause ENDS, not to the millisecond."""
    (pause,) = timeline["pauses"]  # type: ignore[misc]
    assert (pause["how"], pause["resumed_by"], pause["resumed_how"]) == ("phone", "system", "auto_resume")
    assert 800 <= pause["end_ms"] - pause["start_ms"] <= 1600, pause
    left, right = stereo_frames(stereo)
    assert_talk(left, right, 0, 50)
    assert_silent(left, right, 52, 90)
    assert_talk(left, right, 110, len(left) - 2)
    assert len(left) >= 140
    warned = frames_with(ear_frames(agent_ear), WARNING)
    assert warned and 55 <= warned[0] <= 95, warned
    assert not frames_with(ear_frames(customer_ear), WARNING) and not frames_with(left + right, WARNING)


# talk 1 s unrecorded (policy says no), *3, talk 1 s recorded
RECORD_STEPS: list[sc.Step] = [sc.Talk(1000), sc.DialCode("record"), sc.Talk(1000), sc.Hangup("customer")]
RECORD_ON = {"record_inbound": False, "agent_record_on_demand": True}


def assert_recorded_from_the_code(row: dict[str, object], stereo: str | Path, agent_ear: Path) -> None:
    """RECORD_STEPS with RECORD_ON: one recording, started by the agent's code, holding the second
    after it (not the second before), both parties in place; the agent heard the confirmation."""
    policy = row["policy"]
    assert policy["record"] is True and policy["sources"]["record"] == "on_demand:agent:2001", policy  # type: ignore[index]
    left, right = stereo_frames(stereo)
    assert 45 <= len(left) <= 55, len(left)  # 1 s, from the code on
    assert_talk(left, right, 0, len(left))
    assert frames_with(ear_frames(agent_ear), CONFIRM)


ANNOUNCE = TONES["announce"].hz


def onsets(tones: list[float | None], hz: int) -> list[int]:
    """Frames where a run of `hz` begins."""
    hits = set(frames_with(tones, hz))
    return [i for i in sorted(hits) if i - 1 not in hits]


def assert_announced_to_the_customer_only(
    timeline: dict[str, Any], customer_ear: Path, agent_ear: Path, whys: list[str], near_frames: list[int]
) -> None:
    """The customer heard the announcement beep at about each of `near_frames` (±15 frames, 300 ms: a
    real-time call on a loaded machine), the agent never; the timeline lists each, why it played."""
    assert [a["why"] for a in timeline.get("announcements", [])] == whys, timeline
    assert all(a["kind"] == "beep" for a in timeline["announcements"])
    heard = onsets(ear_frames(customer_ear), ANNOUNCE)
    assert len(heard) == len(near_frames), heard
    for got, want in zip(heard, near_frames, strict=True):
        assert abs(got - want) <= 15, (heard, near_frames)
    assert not frames_with(ear_frames(agent_ear), ANNOUNCE)
