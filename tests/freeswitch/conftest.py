"""Harness: the ESL simulator on a real TCP port, the real FreeSWITCH driver, the recorder and the
real PostgreSQL journal. Each harness uses its own PBX node name, so tests share one database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.drivers.freeswitch import FreeSwitchDriver
from controller.live import Actor
from controller.policy import Account, PolicySet, settings_from_dict
from controller.recorder import Recorder
from lab import scenarios as sc
from lab.esl_sim import CallHandle, EslSimulator

PASSWORD = "lab-secret-" + secrets.token_hex(4)


def policy_for(settings: dict[str, Any]) -> PolicySet:
    return PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})


@dataclass
class Harness:
    sim: EslSimulator
    pool: asyncpg.Pool
    spool: Path
    pbx: str
    policy: PolicySet = field(default_factory=PolicySet)
    driver: FreeSwitchDriver | None = None
    recorder: Recorder | None = None

    async def start_controller(self) -> None:
        self.driver = FreeSwitchDriver(
            self.pbx, "127.0.0.1", self.sim.port, PASSWORD, record_dir=str(self.spool), backoff_initial=0.05
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

    async def wait(self, cond: Any, limit: float = 10.0) -> None:
        async def _w() -> None:
            while True:
                r = cond()
                if asyncio.iscoroutine(r):
                    r = await r
                if r:
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(_w(), limit)

    async def on_step(self, step: Any, handle: CallHandle) -> None:
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
            # the controller reconnects and resyncs on its own
            assert self.driver is not None
            before = self.driver.connects
            await self.wait(lambda: self.driver is not None and self.driver.connects > before)
        elif isinstance(step, sc.ControllerRestart):
            # kill: cancel the recorder task and drop the socket without any cleanup, then start anew
            await self.stop_controller()
            await self.start_controller()
            await self.wait(self._adopted)

    def _adopted(self) -> bool:
        assert self.recorder is not None
        return any(c["recording"]["state"] == "recording" for c in self.recorder.live_calls())

    async def play(self, scenario: sc.Scenario) -> CallHandle:
        self.policy = policy_for(scenario.settings)
        handle = await self.sim.run(scenario, on_step=self.on_step)
        await self.settle()
        return handle

    async def settle(self) -> None:
        """Wait until the recorder has handled everything and the journal has no open recording."""

        async def done() -> bool:
            if self.recorder is not None:
                await self.recorder.drain()
            n = await self.pool.fetchval(
                "SELECT count(*) FROM recordings WHERE pbx = $1 AND state IN ('recording', 'paused')", self.pbx
            )
            return n == 0 and self.recorder is not None and not self.recorder.live_calls()

        await self.wait(done)

    async def recordings(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM recordings WHERE pbx = $1 ORDER BY started_at", self.pbx)

    async def events(self, rec_id: Any) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM recording_events WHERE recording_id = $1 ORDER BY id", rec_id)


@pytest.fixture
async def harness(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Harness]:
    sim = EslSimulator(password=PASSWORD, time_scale=0.0)
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "fs-" + secrets.token_hex(3))
    await h.start_controller()
    yield h
    await h.stop_controller()
    await sim.close()
