"""The agent's phone codes on the simulated Asterisk (real AMI over TCP, real driver, recorder and
PostgreSQL journal): the applicationmap Gosub's UserEvent CallrecFeature is answered with Setvar
(tone + result) on the agent's channel, which plays it to the agent only; *1/*2 mute and unmute the
MixMonitor on the customer's channel (silence over exactly that span in the joined file), and *1 is
refused where policy does not allow agent pause."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lab import scenarios as sc
from lab.ami.calls import SimCall
from lab.ami_sim import AmiSimulator
from lab.tones import PROMPT_HZ, Earpieces
from storage.audio import join_legs
from tests.phone_codes_common import (
    ANNOUNCE,
    PAUSE_STEPS,
    RECORD_ON,
    RECORD_STEPS,
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
from tests.sim_harness import policy_for

from .test_e2e import Harness


@pytest.fixture
async def harness(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Harness]:
    sim = AmiSimulator(secret="lab-" + secrets.token_hex(4))
    await sim.start()
    sim.earpieces = Earpieces(tmp_path / "ears")
    h = Harness(sim, pool, tmp_path / "spool", "ast-" + secrets.token_hex(3))
    await h.start_controller()
    yield h
    await h.stop_controller()
    await sim.close()


async def _play(h: Harness, settings: dict[str, Any], steps: list[sc.Step], tmp_path: Path) -> tuple[SimCall, Path]:
    h.policy = policy_for(settings)
    call = await h.sim.play(codes_scenario(steps), h.on_step)
    await h.settle()
    (row,) = await h.recordings()
    stereo = tmp_path / "joined.wav"
    join_legs(Path(row["spool_files"]["rx"]), Path(row["spool_files"]["tx"]), stereo)
    return call, stereo


async def test_agent_pauses_and_resumes_with_phone_codes(harness: Harness, tmp_path: Path) -> None:
    call, stereo = await _play(harness, {"agent_pause_allowed": True}, PAUSE_STEPS, tmp_path)
    (row,) = await harness.recordings()
    (pause,) = row["timeline"]["pauses"]
    assert (pause["by"], pause["how"], pause["resumed_how"]) == ("agent:2001", "phone", "phone")
    ears = harness.sim.earpieces
    assert ears is not None
    assert_pause_heard_and_silent(stereo, ears.path(call.agent.uniqueid), ears.path(call.customer.uniqueid))
    assert call.agent.variables["CALLREC_FEATURE_RESULT"] == "ok"


async def test_phone_pause_refused_where_policy_does_not_allow_it(harness: Harness, tmp_path: Path) -> None:
    call, stereo = await _play(harness, {"agent_pause_allowed": False}, REFUSED_STEPS, tmp_path)
    (row,) = await harness.recordings()
    assert row["timeline"]["pauses"] == []
    assert call.agent.variables["CALLREC_FEATURE_RESULT"] == "refused"
    ears = harness.sim.earpieces
    assert ears is not None
    assert_refused_heard(stereo, ears.path(call.agent.uniqueid))


async def test_secure_pause_warns_the_agent_then_resumes_by_itself(harness: Harness, tmp_path: Path) -> None:
    harness.sim.time_scale = 1.0  # the limit is wall-clock time: the call must take as long
    assert harness.recorder is not None
    harness.recorder.warning_lead_s = 0.5
    settings = {"agent_pause_allowed": True, "pause_max_seconds": 1}
    call, stereo = await _play(harness, settings, SECURE_STEPS, tmp_path)
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    assert_secure_pause(row["timeline"], stereo, ears.path(call.agent.uniqueid), ears.path(call.customer.uniqueid))


async def test_agent_records_on_demand_where_policy_does_not(harness: Harness, tmp_path: Path) -> None:
    harness.policy = policy_for(RECORD_ON)
    call = await harness.sim.play(codes_scenario(RECORD_STEPS, recorded_at_answer=False), harness.on_step)
    await harness.settle()
    (row,) = await harness.recordings()
    stereo = tmp_path / "joined.wav"
    join_legs(Path(row["spool_files"]["rx"]), Path(row["spool_files"]["tx"]), stereo)
    ears = harness.sim.earpieces
    assert ears is not None
    assert_recorded_from_the_code(dict(row), stereo, ears.path(call.agent.uniqueid))
    assert call.agent.variables["CALLREC_FEATURE_RESULT"] == "ok"


# ---- the consent announcement (the hidden code's Gosub on the customer's channel) ------------------


async def test_announcement_at_start_and_after_resume(harness: Harness, tmp_path: Path) -> None:
    harness.sim.time_scale = 1.0  # the announcement goes out when the recording has started: real time
    settings = {"announcement": "beep", "announcement_after_resume": True, "agent_pause_allowed": True}
    call, stereo = await _play(harness, settings, PAUSE_STEPS, tmp_path)
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    cust, agent = ears.path(call.customer.uniqueid), ears.path(call.agent.uniqueid)
    assert_announced_to_the_customer_only(row["timeline"], cust, agent, ["start", "resume"], [0, 125])
    left, right = stereo_frames(stereo)  # t() holds what the customer was sent: the beep
    assert frames_with(right[:20], ANNOUNCE) and not frames_with(left, ANNOUNCE)


async def test_periodic_announcement(harness: Harness, tmp_path: Path) -> None:
    harness.sim.time_scale = 1.0
    settings = {"announcement": "periodic", "announcement_interval_seconds": 1}
    call, _ = await _play(harness, settings, [sc.Talk(2600), sc.Hangup("customer")], tmp_path)
    (row,) = await harness.recordings()
    ears = harness.sim.earpieces
    assert ears is not None
    cust, agent = ears.path(call.customer.uniqueid), ears.path(call.agent.uniqueid)
    assert_announced_to_the_customer_only(row["timeline"], cust, agent, ["start", "periodic", "periodic"], [0, 50, 100])


async def test_prompt_announcement_plays_the_file_to_the_customer(harness: Harness, tmp_path: Path) -> None:
    """announcement = prompt: the driver sets CALLREC_PROMPT on the customer's channel and the hidden
    code's Gosub plays it with Playback there (the simulator writes a prompt as 520 Hz)."""
    harness.sim.time_scale = 1.0
    settings = {"announcement": "prompt", "announcement_prompt": "custom/consent"}
    call, _ = await _play(harness, settings, [sc.Talk(1500), sc.Hangup("customer")], tmp_path)
    (row,) = await harness.recordings()
    (ann,) = row["timeline"]["announcements"]
    assert (ann["kind"], ann["prompt"]) == ("prompt", "custom/consent")
    assert call.customer.variables["CALLREC_PROMPT"] == "custom/consent"
    ears = harness.sim.earpieces
    assert ears is not None
    assert frames_with(ear_frames(ears.path(call.customer.uniqueid))[:60], PROMPT_HZ)
    assert not frames_with(ear_frames(ears.path(call.agent.uniqueid)), PROMPT_HZ)
