"""The agent's phone codes on the simulated FreeSWITCH (real ESL over TCP, real driver, recorder and
PostgreSQL journal): *1 pauses and *2 resumes a call whose policy allows agent pause — the file is
silent over exactly that span, the confirmation tone reaches the agent's ear only, never the
recording — and *1 is refused (refusal tone, nothing masked) where policy does not allow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.tones import TONES
from lab import scenarios as sc
from lab.tones import Earpieces, frame_tones, read_wav

from .conftest import Harness, policy_for

CONFIRM, REFUSE = TONES["confirm"].hz, TONES["refuse"].hz


def _near(hz: float | None, want: int) -> bool:
    return hz is not None and abs(hz - want) <= 60


async def _play(h: Harness, tmp_path: Path, settings: dict[str, Any], steps: list[sc.Step]) -> Any:
    h.policy = policy_for(settings)
    h.sim.earpieces = Earpieces(tmp_path / "ears")
    scenario = sc.Scenario(
        "codes", "phone codes", (sc.PlaceCall("inbound"), sc.Ring(), sc.Answer(), *steps), sc.Expectation(True)
    )
    handle = await h.sim.run(scenario, on_step=h.on_step)
    await h.settle()
    return handle


async def test_agent_pauses_and_resumes_with_phone_codes(harness: Harness, tmp_path: Path) -> None:
    steps: list[sc.Step] = [
        sc.Talk(1000),
        sc.DialCode("pause"),
        sc.Talk(1500),
        sc.DialCode("resume"),
        sc.Talk(1000),
        sc.Hangup("customer"),
    ]
    handle = await _play(harness, tmp_path, {"agent_pause_allowed": True}, steps)
    (row,) = await harness.recordings()
    (pause,) = row["timeline"]["pauses"]
    assert pause["by"] == "agent:2001" and pause["how"] == "phone"
    assert pause["resumed_by"] == "agent:2001" and pause["resumed_how"] == "phone"
    kinds = [(e["kind"], e["actor"]) for e in await harness.events(row["id"])]
    assert ("pause", "agent:2001") in kinds and ("resume", "agent:2001") in kinds

    _, _, frames = read_wav(row["spool_files"]["stereo"])
    left, right = frame_tones(frames[:, 0]), frame_tones(frames[:, 1])
    # 20 ms frames: talk (customer 440 left, agent 880 right) for 1 s, silence for the 1.5 s pause, talk again
    assert len(left) == 175
    assert all(_near(x, 440) for x in left[:50]) and all(_near(x, 880) for x in right[:50])
    assert left[50:125] == [None] * 75 and right[50:125] == [None] * 75
    assert all(_near(x, 440) for x in left[125:]) and all(_near(x, 880) for x in right[125:])
    # the confirmation beeps never reached the recording (customer side or agent side) ...
    assert not any(_near(x, CONFIRM) for x in left + right)
    # ... but the agent heard one after each code, and the customer heard none
    agent_ear = frame_tones(read_wav(harness.sim.earpieces.path(handle.legs["agent"].uuid))[2][:, 0])
    customer_ear = frame_tones(read_wav(harness.sim.earpieces.path(handle.customer.uuid))[2][:, 0])
    # (the ear hears from the first ring: 500 ms = 25 frames before the recording starts)
    beeps = [i - 25 for i, x in enumerate(agent_ear) if _near(x, CONFIRM)]
    assert beeps and 50 <= beeps[0] < 60 and any(125 <= i < 135 for i in beeps)
    assert not any(_near(x, CONFIRM) for x in customer_ear)
    assert (
        harness.sim.commands.count(f"uuid_broadcast {handle.legs['agent'].uuid} {TONES['confirm'].freeswitch()} aleg")
        == 2
    )


async def test_phone_pause_refused_where_policy_does_not_allow_it(harness: Harness, tmp_path: Path) -> None:
    steps: list[sc.Step] = [sc.Talk(1000), sc.DialCode("pause"), sc.Talk(1000), sc.Hangup("customer")]
    handle = await _play(harness, tmp_path, {"agent_pause_allowed": False}, steps)
    (row,) = await harness.recordings()
    assert row["timeline"]["pauses"] == []
    assert not [c for c in harness.sim.commands if " mask " in c]
    _, _, frames = read_wav(row["spool_files"]["stereo"])
    assert None not in frame_tones(frames[:, 0]) + frame_tones(frames[:, 1])
    agent_ear = frame_tones(read_wav(harness.sim.earpieces.path(handle.legs["agent"].uuid))[2][:, 0])
    assert any(_near(x, REFUSE) for x in agent_ear) and not any(_near(x, CONFIRM) for x in agent_ear)
