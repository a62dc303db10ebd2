"""Drill: two service processes on one PBX (simulated) and one database.

Exactly one is active for the node (holds its lease, is the only one connected to the PBX, the only one
sending recording commands); kill -9 the active one mid-call → the standby takes over, adopts the
live recordings, and every recording is stored exactly once. The takeover time is printed (the lease
ttl is 4 s; the standby's round comes at the expiry, not at its next ttl/4 round).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import asyncpg

from lab.esl_sim import EslSimulator
from tests.drills.conftest import call_scenario, check_stored_once, kill9, spawn, states, stop, until, write_config


async def _health(http: aiohttp.ClientSession, port: int) -> dict | None:
    try:
        async with http.get(f"http://127.0.0.1:{port}/health") as r:
            return await r.json()
    except (aiohttp.ClientError, OSError):
        return None


async def test_standby_takes_over_after_kill9_and_stores_each_recording_once(tmp_path: Path, fresh_db: str) -> None:
    sim = EslSimulator(time_scale=1.0)
    await sim.start()
    a = write_config(tmp_path / "a", fresh_db, node_id="ha-a", fs_port=sim.port, state_dir=tmp_path / "state")
    b = write_config(tmp_path / "b", fresh_db, node_id="ha-b", fs_port=sim.port, state_dir=tmp_path / "state")
    a.base = b.base = tmp_path  # one shared spool and store (a shared mount in production)
    conn = await asyncpg.connect(fresh_db)
    procs = {}
    try:
        async with aiohttp.ClientSession() as http:
            procs["ha-a"] = await asyncio.to_thread(spawn, a, "a")
            assert await sim.wait_connected(30)
            procs["ha-b"] = await asyncio.to_thread(spawn, b, "b")

            async def both_up() -> bool:
                return bool(await _health(http, a.api_port)) and bool(await _health(http, b.api_port))

            await until(both_up, 30, "both instances answering /health")
            active = await conn.fetchval("SELECT holder FROM pbx_leases WHERE pbx = 'fs1'")
            standby = "ha-b" if active == "ha-a" else "ha-a"
            ports = {"ha-a": a.api_port, "ha-b": b.api_port}
            h_active, h_standby = await _health(http, ports[active]), await _health(http, ports[standby])
            assert h_active and h_active["components"]["pbx:fs1"]["active"] is True
            assert h_standby and h_standby["components"]["pbx:fs1"]["active"] is False

            calls = 10
            tasks = []
            for _ in range(calls):
                tasks.append(asyncio.create_task(sim.run(call_scenario(6000), settle=False)))
                await asyncio.sleep(0.02)
            max_links = 0

            async def all_recording() -> bool:
                nonlocal max_links
                max_links = max(max_links, len(sim.conns))
                return (await states(conn)).get("recording", 0) >= calls

            await until(all_recording, 30, "recordings journaled by the active instance")
            # Only the active instance ever connected to the PBX, so only it sent recording commands.
            assert max_links == 1 and len(sim.conns) == 1, f"{len(sim.conns)} instances connected to the PBX"
            starts = [c for c in sim.commands if c.startswith("uuid_record") and " start " in c]
            assert len(starts) == calls

            await asyncio.to_thread(kill9, procs[active])
            t0 = time.monotonic()
            print(
                f"\nHA drill: {active} active, {standby} standby; injected SIGKILL into {active} with {calls} calls up"
            )

            async def standby_active() -> bool:
                return await conn.fetchval(
                    "SELECT holder FROM pbx_leases WHERE pbx = 'fs1' AND expires_at > now()"
                ) == standby and bool(sim.conns)

            await until(standby_active, 30, "standby holding the lease and connected to the PBX")
            takeover = time.monotonic() - t0
            handles = await asyncio.gather(*tasks)
            legs = [h.customer.uuid for h in handles]

            async def finished() -> bool:
                st = await states(conn)
                return sum(st.values()) >= calls and set(st) <= {"stored", "failed"}

            await until(finished, 120, "every recording finalized")
            counts = await check_stored_once(conn, legs, a)
            starts_after = [c for c in sim.commands if c.startswith("uuid_record") and " start " in c]
            adopted = await conn.fetchval("SELECT count(*) FROM recordings WHERE stop_reason = 'hangup'")
            print(
                f"HA drill: {standby} took over in {takeover:.1f} s (goal < 5 s); PBX links at once: max 1; "
                f"recording starts sent: {len(starts)} before, {len(starts_after) - len(starts)} after takeover; "
                f"{adopted} recordings adopted and ended by hangup; counted {counts['recordings']} recordings, "
                f"{counts['stored']} stored, 0 duplicates"
            )
            assert len(starts_after) == len(starts), "the standby started second recordings of adopted calls"
    finally:
        for p in procs.values():
            await asyncio.to_thread(stop, p)
        await conn.close()
        await sim.close()
