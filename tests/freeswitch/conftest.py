"""Harness: the ESL simulator on a real TCP port, the real FreeSWITCH driver, the recorder and the
real PostgreSQL journal. Each harness uses its own PBX node name, so tests share one database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.drivers.freeswitch import FreeSwitchDriver
from lab import scenarios as sc
from lab.esl_sim import CallHandle, EslSimulator
from tests.sim_harness import SimHarness, policy_for

PASSWORD = "lab-secret-" + secrets.token_hex(4)


@dataclass
class Harness(SimHarness):
    sim: EslSimulator

    def make_driver(self) -> FreeSwitchDriver:
        return FreeSwitchDriver(
            self.pbx, "127.0.0.1", self.sim.port, PASSWORD, record_dir=str(self.spool), backoff_initial=0.05
        )

    def driver_idle(self) -> bool:
        return not self.driver._pending  # nothing queued for the recorder

    async def on_step(self, step: Any, handle: CallHandle) -> None:
        await self.controller_step(step)

    async def play(self, scenario: sc.Scenario) -> CallHandle:
        self.policy = policy_for(scenario.settings)
        handle = await self.sim.run(scenario, on_step=self.on_step)
        await self.settle()
        return handle

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
