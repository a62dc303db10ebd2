from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from controller.drivers.asterisk import AsteriskDriver
from lab.ami_sim import AmiSimulator


@pytest.fixture
async def sim() -> AsyncIterator[AmiSimulator]:
    s = AmiSimulator()
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def driver(sim: AmiSimulator) -> AsyncIterator[AsteriskDriver]:
    d = AsteriskDriver("ast1", "127.0.0.1", sim.port, sim.username, sim.secret, backoff_initial=0.05, backoff_max=0.4)
    await d.start()
    yield d
    await d.close()


class EventLog:
    """Collects a driver's normalized events in the background; `wait_for` returns the first match."""

    def __init__(self, driver: AsteriskDriver) -> None:
        self.events: list = []
        self._task = asyncio.create_task(self._pump(driver))
        self._changed = asyncio.Event()

    async def _pump(self, driver: AsteriskDriver) -> None:
        async for ev in driver.events():
            self.events.append(ev)
            self._changed.set()

    async def wait_for(self, kind: type, pred=lambda e: True, within: float = 5.0):  # type: ignore[no-untyped-def]
        async with asyncio.timeout(within):
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if isinstance(ev, kind) and pred(ev):
                        return ev
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self._task.cancel()


@pytest.fixture
async def evlog(driver: AsteriskDriver) -> AsyncIterator[EventLog]:
    log = EventLog(driver)
    yield log
    log.close()
