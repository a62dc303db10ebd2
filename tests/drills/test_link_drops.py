"""Drill: cut the ESL socket 10 times while calls are up → nothing lost, each resync timed and printed.

The service is a real process; the simulator aborts its TCP connection (the calls go on, as on a real
PBX); the driver reconnects with backoff, resyncs (`show channels/calls as json`) and the recorder
adopts the recordings it already journaled. Every call ends with exactly one stored recording.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from lab.esl_sim import EslSimulator
from tests.drills.conftest import (
    call_scenario,
    check_stored_once,
    spawn,
    states,
    stop,
    until,
    write_config,
)

DROPS = 10


async def test_ten_esl_drops_under_load_lose_nothing(tmp_path: Path, fresh_db: str) -> None:
    sim = EslSimulator(time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, fresh_db, node_id="drill-drops", fs_port=sim.port)
    conn = await asyncpg.connect(fresh_db)
    proc = await asyncio.to_thread(spawn, svc)
    try:
        assert await sim.wait_connected(30)
        tasks = []
        for _ in range(20):
            tasks.append(asyncio.create_task(sim.run(call_scenario(9000), settle=False)))
            await asyncio.sleep(0.05)
        resyncs = []
        for _ in range(DROPS):
            await asyncio.sleep(0.3)
            sim.drop_connections()
            t0 = time.monotonic()
            # resynced = resubscribed AND the two `show … as json` answered (the driver's resync)
            shows = sum(1 for c in sim.commands if c.startswith("show "))
            await until(lambda s=shows: len([c for c in sim.commands if c.startswith("show ")]) >= s + 2, 30, "resync")
            resyncs.append(time.monotonic() - t0)
        handles = await asyncio.gather(*tasks)
        legs = [h.customer.uuid for h in handles]

        async def finished() -> bool:
            st = await states(conn)
            return sum(st.values()) >= len(legs) and set(st) <= {"stored", "failed"}

        await until(finished, 120, "every recording finalized")
        counts = await check_stored_once(conn, legs, svc)
        print(
            f"\nlink drop drill: injected {DROPS} ESL socket aborts with {len(legs)} calls up; resync after each: "
            f"{', '.join(f'{r:.2f}' for r in resyncs)} s (max {max(resyncs):.2f} s, goal < 2 s); counted "
            f"{counts['recordings']} recordings, {counts['stored']} stored, 0 duplicates, 0 lost"
        )
    finally:
        await asyncio.to_thread(stop, proc)
        await conn.close()
        await sim.close()
