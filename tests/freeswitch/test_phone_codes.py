"""The agent's phone codes on the simulated FreeSWITCH (real ESL over TCP, real driver, recorder and
PostgreSQL journal): *1 pauses and *2 resumes a call whose policy allows agent pause — the file is
silent over exactly that span, the confirmation tone reaches the agent's ear only, never the
recording — and *1 is refused (refusal tone, nothing masked) where policy does not allow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.live import Actor
from controller.tones import TONES
from lab import scenarios as sc
from lab.esl_sim import CallHandle
from lab.tones import PROMPT_HZ, Earpieces
from tests.phone_codes_common import (
    ANNOUNCE,
    CONFIRM,
    PAUSE_STEPS,
    RECORD_ON,
    RECORD_STEPS,
    REFUSE,
    REFUSED_STEPS,
    SECURE_STEPS,
    assert_announced_to_the_customer_only,
    assert_pause_heard_and_silent,
    assert_recorded_from_the_code,
    assert_refused_heard,
    assert_secure_pause,
    codes_scenario,
    ear_frames,
    frames_with,
    stereo_frames,
)

from .conftest import Harness, policy_for


async def _play(h: Harness, tmp_path: Path, settings: dict[str, Any], steps: list[sc.Step]) -> CallHandle:
    h.policy = policy_for(settings)
    h.sim.earpieces = Earpieces(tmp_path / "ears")
    handle = await h.sim.run(codes_scenario(steps), on_step=h.on_step)
    await h.settle()
    return handle


async def test_agent_pauses_and_resumes_with_phone_codes(harness: Harness, tmp_path: Path) -> None:
    handle = await _play(harness, tmp_path, {"agent_pause_allowed": True}, PAUSE_STEPS)
    (row,) = await harness.recordings()
    (pause,) = row["timeline"]["pauses"]
    assert pause["by"] == "agent:2001" and pause["how"] == "phone"
    assert pause["resumed_by"] == "agent:2001" and pause["resumed_how"] == "phone"
    kinds = [(e["kind"], e["actor"]) for e in await harness.events(row["id"])]
    assert ("pause", "agent:2001") in kinds and ("resume", "agent:2001") in kinds
    ears = harness.sim.earpieces
    assert ears is not None
    assert_pause_heard_and_silent(
        row["spool_files"]["stereo"], ears.path(handle.legs["agent"].uuid), ears.path(handle.customer.uuid)
    )
    agent = handle.legs["agent"].uuid
    assert harness.sim.commands.count(f"uuid_broadcast {agent} {TONES['confirm'].freeswitch()} aleg") == 2


async def test_phone_pause_refused_where_policy_does_not_allow_it(harness: Harness, tmp_path: Path) -> None:
    handle = await _play(harness, tmp_path, {"agent_pause_allowed": False}, REFUSED_STEPS)
    (row,) = await harness.recordings()
    assert row["timeline"]["pauses"] == []
    assert not [c for c in harness.sim.commands if " mask " in c]
    ears = harness.sim.earpieces
    assert ears is not None
    assert_refused_heard(row["spool_files"]["stereo"], ears.path(handle.legs["agent"].uuid))


async def test_secure_pause_warns_the_agent_then_resumes_by_itself(harness: Harness, tmp_path: Path) -> None:
    harness.sim.time_scale = 1.0  # the limit is wall-clock time: the call must take as long
    assert harness.recorder is not None
    harness.recorder.warning_lead_s = 0.5
    handle = await _play(harness, tmp_path, {"agent_pause_allowed": True, "pause_max_seconds": 1}, SECURE_STEPS)
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    assert_secure_pause(
        row["timeline"],
        row["spool_files"]["stereo"],
        ears.path(handle.legs["agent"].uuid),
        ears.path(handle.customer.uuid),
    )
    assert ("resume", "system") in [(e["kind"], e["actor"]) for e in await harness.events(row["id"])]


async def test_agent_records_on_demand_where_policy_does_not(harness: Harness, tmp_path: Path) -> None:
    harness.policy = policy_for(RECORD_ON)
    harness.sim.earpieces = Earpieces(tmp_path / "ears")
    handle = await harness.sim.run(codes_scenario(RECORD_STEPS, recorded_at_answer=False), on_step=harness.on_step)
    await harness.settle()
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert_recorded_from_the_code(dict(row), row["spool_files"]["stereo"], ears.path(handle.legs["agent"].uuid))
    assert [e["kind"] for e in await harness.events(row["id"])] == ["start", "stop"]


async def test_record_on_demand_refused_where_the_setting_is_off(harness: Harness, tmp_path: Path) -> None:
    harness.policy = policy_for({"record_inbound": False})
    harness.sim.earpieces = Earpieces(tmp_path / "ears")
    handle = await harness.sim.run(codes_scenario(RECORD_STEPS, recorded_at_answer=False), on_step=harness.on_step)
    await harness.settle()
    assert await harness.recordings() == []
    heard = ear_frames(harness.sim.earpieces.path(handle.legs["agent"].uuid))
    assert frames_with(heard, REFUSE) and not frames_with(heard, CONFIRM)


# ---- the consent announcement (played to the customer's leg only) --------------------------------


async def _realtime(h: Harness, tmp_path: Path, settings: dict[str, Any], steps: list[sc.Step]) -> CallHandle:
    h.sim.time_scale = 1.0  # the announcement goes out when the recording has started: real time
    return await _play(h, tmp_path, settings, steps)


async def test_announcement_at_start_and_after_resume(harness: Harness, tmp_path: Path) -> None:
    settings = {"announcement": "beep", "announcement_after_resume": True, "agent_pause_allowed": True}
    handle = await _realtime(harness, tmp_path, settings, PAUSE_STEPS)
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    cust, agent = ears.path(handle.customer.uuid), ears.path(handle.legs["agent"].uuid)
    assert_announced_to_the_customer_only(row["timeline"], cust, agent, ["start", "resume"], [0, 125])
    # the recording holds what the customer was sent: the beep, on the agent's side, at the start
    left, right = stereo_frames(row["spool_files"]["stereo"])
    assert frames_with(right[:20], ANNOUNCE) and not frames_with(left, ANNOUNCE)
    kinds = [e["kind"] for e in await harness.events(row["id"])]
    assert kinds.count("announcement") == 2


async def test_periodic_announcement(harness: Harness, tmp_path: Path) -> None:
    settings = {"announcement": "periodic", "announcement_interval_seconds": 1}
    handle = await _realtime(harness, tmp_path, settings, [sc.Talk(2600), sc.Hangup("customer")])
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    cust, agent = ears.path(handle.customer.uuid), ears.path(handle.legs["agent"].uuid)
    assert_announced_to_the_customer_only(row["timeline"], cust, agent, ["start", "periodic", "periodic"], [0, 50, 100])


async def test_prompt_announcement_plays_the_file_to_the_customer(harness: Harness, tmp_path: Path) -> None:
    prompt = "/usr/share/freeswitch/sounds/callrec/consent.wav"
    settings = {"announcement": "prompt", "announcement_prompt": prompt}
    handle = await _realtime(harness, tmp_path, settings, [sc.Talk(1500), sc.Hangup("customer")])
    (row,) = await harness.recordings()
    (ann,) = row["timeline"]["announcements"]
    assert (ann["kind"], ann["why"], ann["prompt"]) == ("prompt", "start", prompt)
    assert f"uuid_broadcast {handle.customer.uuid} {prompt} aleg" in harness.sim.commands
    ears = harness.sim.earpieces
    assert ears is not None
    assert frames_with(ear_frames(ears.path(handle.customer.uuid))[:60], PROMPT_HZ)
    assert not frames_with(ear_frames(ears.path(handle.legs["agent"].uuid)), PROMPT_HZ)


async def test_secure_pause_outlives_a_controller_restart(harness: Harness) -> None:
    """Paused with pause_max_seconds = 2, then the controller is restarted: the new controller adopts
    the paused recording and still resumes it by itself when the limit (counted from the pause) is up."""
    harness.policy = policy_for({"pause_max_seconds": 2})
    handle = CallHandle(harness.sim, codes_scenario([]))
    for step in codes_scenario([]).steps:
        await handle.do(step, None, True)
    assert harness.recorder is not None
    await harness.wait(lambda: bool(harness.recorder and harness.recorder.live_calls()))
    call_id = harness.recorder.live_calls()[0]["id"]
    await harness.recorder.pause(call_id, Actor("sue", "supervisor"), reason="pci")
    await harness.stop_controller()
    await harness.start_controller()
    await harness.wait(lambda: harness.recorder is not None and harness.recorder.live_calls())
    assert harness.recorder.live_calls()[0]["recording"]["state"] == "paused"  # adopted as it was
    await harness.wait(lambda: harness.recorder.live_calls()[0]["recording"]["state"] == "recording", 6)
    await handle.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    (row,) = await harness.recordings()
    (pause,) = row["timeline"]["pauses"]
    assert (pause["by"], pause["reason"], pause["resumed_by"], pause["resumed_how"]) == (
        "user:sue",
        "pci",
        "system",
        "auto_resume",
    )


async def test_periodic_announcement_goes_on_after_a_controller_restart(harness: Harness, tmp_path: Path) -> None:
    """The new controller adopts the recording and keeps beeping every interval (no second start beep)."""
    harness.sim.time_scale = 1.0
    harness.sim.earpieces = Earpieces(tmp_path / "ears")
    harness.policy = policy_for({"announcement": "periodic", "announcement_interval_seconds": 1})
    steps = [sc.Talk(1200), sc.ControllerRestart(), sc.Talk(2300), sc.Hangup("customer")]
    await harness.sim.run(codes_scenario(steps), on_step=harness.on_step)
    await harness.settle()
    (row,) = await harness.recordings()
    whys = [a["why"] for a in row["timeline"]["announcements"]]
    assert whys[0] == "start" and whys.count("start") == 1
    assert len(whys) >= 4, whys  # start, one before the restart, at least two after it
