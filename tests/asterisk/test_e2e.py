"""Every scenario end to end on Asterisk: AMI simulator over TCP → AsteriskDriver → the same recorder
(controller.recorder) → real PostgreSQL journal; the r()/t() legs joined by storage.audio into one
stereo WAV checked by FFT (customer LEFT, agent then transfer target RIGHT)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.drivers.asterisk import AsteriskDriver
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.tones import channel_timeline, read_wav
from storage.audio import join_legs
from tests.sim_harness import SimHarness, policy_for


@dataclass
class Harness(SimHarness):
    sim: AmiSimulator

    def make_driver(self) -> AsteriskDriver:
        return AsteriskDriver(
            self.pbx, "127.0.0.1", self.sim.port, self.sim.username, self.sim.secret, backoff_initial=0.05
        )

    async def on_step(self, step: Any) -> None:
        await self.controller_step(step)


@pytest.fixture
async def harness(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Harness]:
    sim = AmiSimulator(secret="lab-" + secrets.token_hex(4))
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "ast-" + secrets.token_hex(3))
    await h.start_controller()
    yield h
    await h.stop_controller()
    await sim.close()


def _right_sequence(path: str) -> list[float]:
    seq: list[float] = []
    for _, right in channel_timeline(path, 250):
        if right is not None and (not seq or seq[-1] != right):
            seq.append(right)
    return seq


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if s.expect.recorded))
async def test_recorded_scenarios(harness: Harness, name: str, tmp_path: Path) -> None:
    scenario = sc.get(name)
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    rows = await harness.recordings()
    mine = [r for r in rows if r["customer_leg"] == call.customer.uniqueid]
    assert len(mine) == 1, [dict(r) for r in rows]
    # an agent's phone consulting an external number is an outbound call of its own (its own Linkedid)
    assert all(r["customer_number"] == sc.EXTERNAL_TARGET for r in rows if r not in mine)
    rec = mine[0]
    exp = scenario.expect
    assert rec["state"] == "stopped"
    assert rec["pbx_kind"] == "asterisk"
    assert rec["direction"] == exp.direction
    assert rec["customer_number"] == sc.CUSTOMER_NUMBER
    assert rec["account_number"] == sc.DID
    assert rec["agent"] == sc.AGENT_EXT
    assert rec["stop_reason"] == exp.stop_reason
    tl = rec["timeline"]
    assert len(tl["segments"]) == len(exp.segments)
    assert tl["segments"][0]["party"] == sc.AGENT_EXT
    assert len(tl["pauses"]) == exp.pauses
    assert [(t["kind"], t["target_class"]) for t in tl["transfers"]] == list(exp.transfers)
    assert tl["stop"]["reason"] == exp.stop_reason
    assert await harness.pool.fetchval("SELECT count(*) FROM finalize_jobs WHERE recording_id = $1", rec["id"]) == 1
    kinds = [
        e["kind"]
        for e in await harness.pool.fetch(
            "SELECT kind FROM recording_events WHERE recording_id = $1 ORDER BY id", rec["id"]
        )
    ]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("stop") == 1

    files = rec["spool_files"]
    assert set(files) == {"rx", "tx"}
    stereo = tmp_path / "joined.wav"
    join_legs(Path(files["rx"]), Path(files["tx"]), stereo)
    rate, channels, frames = read_wav(stereo)
    assert (rate, channels) == (8000, 2)
    assert len(read_wav(files["rx"])[2]) == len(read_wav(files["tx"])[2])  # legs sample-aligned
    timeline = channel_timeline(stereo, 250)
    assert {left for left, _ in timeline if left is not None} == {440.0}, "customer must be LEFT throughout"
    assert _right_sequence(str(stereo)) == [float(x) for x in exp.right_tones]
    if exp.pauses:
        assert (None, None) in timeline, "the paused span must be silent on both channels"
        p = tl["pauses"][0]
        assert p["by"] == "agent:2001" and p["end_ms"] > p["start_ms"]
    if exp.ends_at_transfer:
        xfer = next(s for s in scenario.steps if isinstance(s, sc.Transfer))
        before_ms = 2000 + xfer.ring_ms + (xfer.consult_ms if xfer.kind == "attended" else 0)
        assert len(frames) / 8 < before_ms + 600
        assert tl["transfers"][0]["stopped_recording"] is True


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if not s.expect.recorded))
async def test_not_recorded_scenarios(harness: Harness, name: str) -> None:
    harness.policy = policy_for(sc.get(name).settings)
    await harness.sim.play(sc.get(name), harness.on_step)
    await harness.settle()
    assert await harness.recordings() == []
    assert not [a for a in harness.sim.actions_seen if a.get("action") == ["MixMonitor"]]
