"""Drill: kill -9 the service process mid-call, start it again → every recording stored exactly once.

The service runs as `python -m controller.cli --config … run`; the ESL simulator keeps the calls (and
their recordings) going while it is dead; the restarted process resyncs, adopts the running
recordings (same journal row) and finalizes them. Fast variant: 20 calls; `-m slow`: 100 calls.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from lab.esl_sim import EslSimulator
from tests.drills.conftest import call_scenario, check_stored_once, kill9, spawn, states, stop, until, write_config


async def _drill(tmp_path: Path, dsn: str, calls: int, talk_ms: int) -> None:
    sim = EslSimulator(time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, dsn, node_id="drill-kill9", fs_port=sim.port)
    conn = await asyncpg.connect(dsn)
    procs = []
    try:
        procs.append(await asyncio.to_thread(spawn, svc, "first"))
        assert await sim.wait_connected(30), "the service never subscribed to the ESL simulator"
        scen = call_scenario(talk_ms)
        tasks = []
        for _ in range(calls):
            tasks.append(asyncio.create_task(sim.run(scen, settle=False)))
            await asyncio.sleep(0.02)

        async def all_recording() -> bool:
            return (await states(conn)).get("recording", 0) >= calls

        await until(all_recording, 30, f"{calls} recordings journaled")
        live = sum(1 for c in sim.channels.values() if c.recordings)
        await asyncio.to_thread(kill9, procs[0])
        killed_at = time.monotonic()
        print(f"\nkill -9 drill: injected SIGKILL into the service with {live} recordings running on the PBX")
        procs.append(await asyncio.to_thread(spawn, svc, "second"))
        assert await sim.wait_connected(30), "the restarted service never subscribed"
        back = time.monotonic() - killed_at
        handles = await asyncio.gather(*tasks)
        legs = [h.customer.uuid for h in handles]

        async def finished() -> bool:
            st = await states(conn)
            return sum(st.values()) >= calls and set(st) <= {"stored", "failed"}

        await until(finished, 120, "every recording finalized")
        counts = await check_stored_once(conn, legs, svc)
        adopted = await conn.fetchval("SELECT count(*) FROM recordings WHERE stop_reason = 'hangup'")
        lost_link = await conn.fetchval("SELECT count(*) FROM recordings WHERE stop_reason = 'link_lost'")
        print(
            f"kill -9 drill: restarted and resubscribed in {back:.1f} s; counted {counts['calls']} calls, "
            f"{counts['recordings']} recordings, {counts['stored']} stored, 0 duplicates, 0 plaintext left; "
            f"{adopted} adopted and ended by hangup, {lost_link} closed as link_lost (ended while down)"
        )
    finally:
        for p in procs:
            await asyncio.to_thread(stop, p)
        await conn.close()
        await sim.close()


async def test_kill9_mid_call_then_restart_stores_every_recording_once(tmp_path: Path, fresh_db: str) -> None:
    await _drill(tmp_path, fresh_db, calls=20, talk_ms=5000)


@pytest.mark.slow
async def test_kill9_mid_call_100_calls(tmp_path: Path, fresh_db: str) -> None:
    await _drill(tmp_path, fresh_db, calls=100, talk_ms=8000)
