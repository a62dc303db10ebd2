"""What the FreeSWITCH and Asterisk simulator harnesses share: a simulator on a real TCP port, the
real driver, the recorder and the real PostgreSQL journal, plus the controller's part of the shared
scenarios (pause/resume, reconnect, restart). Each PBX's harness only says how to build its driver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from controller.drivers.base import PbxDriver
from controller.live import Actor
from controller.policy import Account, NumberOverride, PolicySet, settings_from_dict
from controller.recorder import Recorder
from lab import scenarios as sc


def policy_for(settings: dict[str, Any]) -> PolicySet:
    return PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})


@dataclass
class SimHarness:
    sim: Any
    pool: asyncpg.Pool
    spool: Path
    pbx: str
    policy: PolicySet = field(default_factory=PolicySet)
    driver: Any = None
    recorder: Recorder | None = None

    def make_driver(self) -> PbxDriver:
        raise NotImplementedError

    def driver_idle(self) -> bool:
        """The driver holds no event the recorder has not taken yet (each PBX's harness says how)."""
        raise NotImplementedError

    async def start_controller(self) -> None:
        self.driver = self.make_driver()
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
        async with asyncio.timeout(limit):
            while True:
                r = cond()
                if asyncio.iscoroutine(r):
                    r = await r
                if r:
                    return
                await asyncio.sleep(0.02)

    async def controller_step(self, step: Any) -> None:
        """The harness's part of a scenario step: what an agent, a supervisor or an operator does."""
        if isinstance(step, sc.Pause | sc.Resume):
            assert self.recorder is not None
            calls = self.recorder.live_calls()
            assert len(calls) == 1, calls
            actor = Actor("alice", "agent", "2001") if step.by == "agent" else Actor("sue", "supervisor")
            if isinstance(step, sc.Pause):
                await self.recorder.pause(calls[0]["id"], actor)
            else:
                await self.recorder.resume(calls[0]["id"], actor)
        elif isinstance(step, sc.Transfer):
            await self.caught_up(f"the {step.kind} transfer ({step.method}, {step.outcome})")
        elif isinstance(step, sc.LinkDrop):
            # the controller reconnects and resyncs on its own
            assert self.driver is not None
            before = self.driver.connects
            await self.wait(lambda: self.driver is not None and self.driver.connects > before)
        elif isinstance(step, sc.ControllerRestart):
            # mid-call = once the recording is journaled (the command→row window is the recorder's)
            await self.wait(lambda: self.pool.fetchval("SELECT count(*) FROM recordings WHERE pbx = $1", self.pbx))
            await self.stop_controller()  # no cleanup: the PBX keeps recording
            await self.start_controller()
            await self.wait(self._adopted)

    async def caught_up(self, after: str, limit: float = 10.0) -> None:
        """Wait until the controller has handled every event the simulated PBX sent so far and has done
        what they asked (PBX commands and journal writes). The simulators run in simulated time: the
        seconds of talk after a transfer take them a few milliseconds, less than the controller's own
        reaction (a mute and its lift wait for journal writes), so without this the file would depend
        on which of the two is faster at that moment. On a real PBX the call goes on for seconds."""
        assert self.driver is not None and self.recorder is not None
        await self.driver.live_channels()  # a round trip on the link: every event sent before it is in
        node = self.recorder.nodes[self.pbx]
        try:
            async with asyncio.timeout(limit):
                while not (self.driver_idle() and not node.busy and not node.chains):
                    await self.recorder.drain(self.pbx)
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(
                f"the controller has not caught up {limit:.0f} s after {after}: driver idle {self.driver_idle()},"
                f" handling an event {node.busy}, calls with queued actions {len(node.chains)}"
            ) from None

    def _adopted(self) -> bool:
        assert self.recorder is not None
        return any(c["recording"]["state"] == "recording" for c in self.recorder.live_calls())

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


def outbound(hook: bool, recorded: bool) -> sc.Scenario:
    """The shared outbound scenario with or without our dialplan hook; `recorded` = what the test
    expects (the simulators wait for a recording only when one is expected)."""
    base = sc.get("outbound")
    place = base.steps[0]
    assert isinstance(place, sc.PlaceCall)
    steps = (replace(place, hook=hook), *base.steps[1:])
    return replace(base, steps=steps, expect=base.expect if recorded else sc.Expectation(False))


def outbound_off_for_did() -> PolicySet:
    """Outbound calls are recorded, except those presenting the DID (a per-number override)."""
    return PolicySet(
        accounts={"main": Account("main", settings_from_dict({"record_outbound": True}))},
        numbers={sc.DID: ("main", NumberOverride(record_outbound=False))},
    )
