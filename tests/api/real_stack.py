"""The real chain behind the API: ESL simulator on a TCP port → FreeSWITCH driver → recorder →
PostgreSQL journal → finalize (stereo, age, signed manifest) → API on its own port."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from controller.api import create_app, start_api
from controller.drivers.freeswitch import FreeSwitchDriver
from controller.metrics import Metrics
from controller.policy import Account, PolicySet, settings_from_dict
from controller.recorder import Recorder
from controller.service import PolicyCache
from lab import scenarios as sc
from lab.esl_sim import CallHandle, EslSimulator
from storage import repo
from storage.finalize import FinalizeWorker, ensure_signing_key
from tests.api.conftest import World

PASSWORD = "api-e2e-" + secrets.token_hex(4)


@dataclass
class RealStack:
    base: str
    sim: EslSimulator
    recorder: Recorder
    finalize: FinalizeWorker
    pbx: str
    policy: PolicyCache | None = None

    async def play(self, name: str, on_step: Callable[[Any, CallHandle], Any]) -> CallHandle:
        return await self.sim.run(sc.get(name), on_step=on_step)

    async def wait(self, cond: Callable[[], Any], within_s: float = 10.0) -> None:
        for _ in range(int(within_s / 0.02)):
            r = cond()
            if asyncio.iscoroutine(r):
                r = await r
            if r:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("timed out")


@asynccontextmanager
async def real_stack(
    world: World, tmp_path: Path, settings: dict[str, Any], *, time_scale: float = 0.0, policy_from_db: bool = False
) -> AsyncIterator[RealStack]:
    """`time_scale` 1.0 plays scenario talk time in real time (timeline offsets then match the audio).
    `policy_from_db`: the recorder follows the database as the service's does (PolicyCache, reloaded
    when the API changes a setting), starting from `settings` written to account main."""
    pbx = "fs-api-" + secrets.token_hex(3)
    spool = tmp_path / "spool"
    spool.mkdir()
    config = replace(world.config, state_dir=str(tmp_path), spool=replace(world.config.spool, dir=str(spool)))
    ensure_signing_key(config)
    sim = EslSimulator(password=PASSWORD, time_scale=time_scale)
    await sim.start()
    driver = FreeSwitchDriver(pbx, "127.0.0.1", sim.port, PASSWORD, record_dir=str(spool), backoff_initial=0.05)
    cache: PolicyCache | None = None
    cache_task: asyncio.Task[None] | None = None
    if policy_from_db:
        await repo.put_account_settings(world.pool, "main", dict(settings))
        cache = PolicyCache(world.pool)
        await cache.refresh()
        cache_task = asyncio.create_task(cache.run())
        recorder = Recorder(world.pool, [driver], cache, spool_dir=str(spool))
    else:
        policy = PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})
        recorder = Recorder(world.pool, [driver], lambda: policy, spool_dir=str(spool))
    await driver.start()
    await recorder.start()
    runner: web.AppRunner | None = None
    try:
        for _ in range(250):
            if driver.connected:
                break
            await asyncio.sleep(0.02)
        app = create_app(config, world.pool, recorder, Metrics(), {f"pbx:{pbx}": lambda: {"ok": driver.connected}})
        runner, port = await start_api(app, "127.0.0.1", 0)
        yield RealStack(f"http://127.0.0.1:{port}", sim, recorder, FinalizeWorker(world.pool, config), pbx, cache)
    finally:
        if cache_task is not None:
            cache_task.cancel()
            await asyncio.gather(cache_task, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        await recorder.close()
        await driver.close()
        await sim.close()
