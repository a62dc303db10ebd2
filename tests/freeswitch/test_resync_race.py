"""A call that hangs up while the driver resyncs (between its `show channels` snapshot and the Resync
it posts) is not adopted as running: its recording is closed, not left open for ever.

Seen in the scale-out drill: a survivor taking over a killed controller's nodes under load adopted
five recordings whose calls had just ended — their hangup events were queued ahead of the Resync
built from an older snapshot, so nothing ever stopped them. Here the simulator hangs the call up at
the exact moment that opens the window: after answering `show channels`, before `show calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from lab import scenarios as sc
from lab.esl_sim import EslSimulator

from .conftest import PASSWORD, Harness, policy_for


class RacySim(EslSimulator):
    """Hangs `hang_up_at_resync` up right after serving `show channels` (events go out before the
    `show calls` reply)."""

    hang_up_at_resync: str | None = None

    def api(self, cmd: str) -> str:
        out = super().api(cmd)
        if cmd.strip() == "show channels as json" and self.hang_up_at_resync:
            ch = self.channels.get(self.hang_up_at_resync)
            self.hang_up_at_resync = None
            if ch is not None:
                partner = self.channels.get(ch.bridged_to or "")
                self._hangup(ch, "NORMAL_CLEARING", "recv_bye")
                if partner:
                    self._hangup(partner, "NORMAL_CLEARING", "send_bye")
                    self._hangup_complete(partner, "NORMAL_CLEARING")
                    self._unbridge(ch, partner)
                    self._destroy(partner)
                self._hangup_complete(ch, "NORMAL_CLEARING")
                self._destroy(ch)
        return out


@pytest.fixture
async def racy(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Harness]:
    sim = RacySim(password=PASSWORD, time_scale=1.0)
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "fs-" + secrets.token_hex(3))
    await h.start_controller()
    yield h
    await h.stop_controller()
    await sim.close()


async def test_a_call_ending_during_the_resync_is_closed_not_adopted(racy: Harness) -> None:
    scen = sc.Scenario(
        "long_inbound",
        "inbound call that talks long",
        (sc.PlaceCall("inbound"), sc.Ring(100), sc.Answer(), sc.Talk(60_000), sc.Hangup("customer")),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
    )
    racy.policy = policy_for(scen.settings)
    call = asyncio.create_task(racy.sim.run(scen, settle=False))
    try:

        async def recording() -> bool:
            return bool(await racy.pool.fetchval("SELECT count(*) FROM recordings WHERE pbx = $1", racy.pbx))

        await racy.wait(recording, 15)
        row = await racy.pool.fetchrow("SELECT id, customer_leg FROM recordings WHERE pbx = $1", racy.pbx)
        # another controller takes the node over (as after a kill -9): it knows the call only from the
        # journal and the snapshot, and the call ends inside its resync window
        await racy.stop_controller()
        racy.sim.hang_up_at_resync = row["customer_leg"]
        await racy.start_controller()

        async def closed() -> bool:
            st = await racy.pool.fetchval("SELECT state FROM recordings WHERE id = $1", row["id"])
            return st != "recording"

        with contextlib.suppress(TimeoutError):
            await racy.wait(closed, 10)
        state = await racy.pool.fetchval("SELECT state FROM recordings WHERE id = $1", row["id"])
        assert racy.sim.hang_up_at_resync is None, "the simulator never saw the resync"
        assert state == "stopped", f"the recording of a call that ended during the resync is {state!r}"
    finally:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
