"""Every scenario end to end on Asterisk: AMI simulator over TCP → AsteriskDriver → the same recorder
(controller.recorder) → real PostgreSQL journal; the r()/t() legs joined by storage.audio into one
stereo WAV checked by FFT (customer LEFT, agent then transfer target RIGHT)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.drivers.asterisk import AsteriskDriver
from controller.live import Actor
from controller.policy import Account, PolicySet, settings_from_dict
from controller.recorder import Recorder
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.tones import channel_timeline, read_wav
from storage.audio import join_legs


def policy_for(settings: dict[str, Any]) -> PolicySet:
    return PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})


@dataclass
class Harness:
    sim: AmiSimulator
    pool: asyncpg.Pool
    spool: Path
    pbx: str
    policy: PolicySet = field(default_factory=PolicySet)
    driver: AsteriskDriver | None = None
    recorder: Recorder | None = None

    async def start_controller(self) -> None:
        self.driver = AsteriskDriver(
            self.pbx, "127.0.0.1", self.sim.port, self.sim.username, self.sim.secret, backoff_initial=0.05
        )
        self.recorder = Recorder(self.pool, [self.driver], lambda: self.policy, spool_dir=str(self.spool))
        await self.driver.start()
        await self.recorder.start()
        await self.wait(lambda: self.driver is not None and self.driver.connected)

    async def stop_controller(self) -> None:
        if self.recorder:
            await self.recorder.close()
        if self.driver:
            await self.driver.close()
        self.recorder = self.driver = None

    async def wait(self, cond: Any, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while True:
                r = cond()
                if asyncio.iscoroutine(r):
                    r = await r
                if r:
                    return
                await asyncio.sleep(0.02)

    async def on_step(self, step: Any) -> None:
        if isinstance(step, sc.Pause | sc.Resume):
            assert self.recorder is not None
            calls = self.recorder.live_calls()
            assert len(calls) == 1, calls
            actor = Actor("alice", "agent", "2001") if step.by == "agent" else Actor("sue", "supervisor")
            if isinstance(step, sc.Pause):
                await self.recorder.pause(calls[0]["id"], actor)
            else:
                await self.recorder.resume(calls[0]["id"], actor)
        elif isinstance(step, sc.LinkDrop):
            assert self.driver is not None
            before = self.driver.connects
            await self.wait(lambda: self.driver is not None and self.driver.connects > before)
        elif isinstance(step, sc.ControllerRestart):
            # mid-call = once the recording is journaled (the MixMonitor→row window is the recorder's)
            await self.wait(lambda: self.pool.fetchval("SELECT count(*) FROM recordings WHERE pbx = $1", self.pbx))
            await self.stop_controller()  # no cleanup: the PBX keeps recording
            await self.start_controller()
            await self.wait(self._adopted)

    def _adopted(self) -> bool:
        assert self.recorder is not None
        return any(c["recording"]["state"] == "recording" for c in self.recorder.live_calls())

    async def settle(self) -> None:
        async def done() -> bool:
            n = await self.pool.fetchval(
                "SELECT count(*) FROM recordings WHERE pbx = $1 AND state IN ('recording', 'paused')", self.pbx
            )
            return n == 0 and self.recorder is not None and not self.recorder.live_calls()

        await self.wait(done)

    async def recordings(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM recordings WHERE pbx = $1 ORDER BY started_at", self.pbx)


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
