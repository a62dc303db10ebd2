"""The kill -9 and link-drop drills on Asterisk (AMI): the same faults as test_kill9_restart.py and
test_link_drops.py, with the AMI simulator as the PBX (MixMonitor r()/t() legs joined at finalize).

kill -9: the service process dies mid-call with every call's MixMonitor running; the restarted process
logs in, lists the channels (CoreShowChannels), adopts the recordings (same journal row) and stores
each once. Link drops: the AMI socket is aborted 10 times with calls up; each resync is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import asyncpg
import pytest

from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from tests.drills.conftest import (
    all_finished,
    call_scenario,
    check_stored_once,
    kill9,
    spawn,
    states,
    stop,
    until,
    write_config,
)
from tests.drills.mixed_calls import ami_connected

DROPS = 10


def _listings(sim: AmiSimulator) -> int:
    """How many CoreShowChannels the controller sent: one per (re)connect resync."""
    return sum(1 for a in sim.actions_seen if a.get("action", [""])[0].lower() == "coreshowchannels")


async def _kill9_drill(tmp_path: Path, dsn: str, calls: int, talk_ms: int) -> None:
    sim = AmiSimulator(time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, dsn, node_id="drill-ami-kill9", ami_port=sim.port)
    conn = await asyncpg.connect(dsn)
    procs = []
    try:
        procs.append(await asyncio.to_thread(spawn, svc, "first"))
        assert await ami_connected(sim, 30), "the service never logged in to the AMI simulator"
        tasks = []
        for _ in range(calls):
            tasks.append(asyncio.create_task(sim.play(call_scenario(talk_ms), settle=False)))
            await asyncio.sleep(0.02)

        async def all_recording() -> bool:
            return (await states(conn)).get("recording", 0) >= calls

        await until(all_recording, 30, f"{calls} recordings journaled")
        live = len(sim.recording_channels())
        await asyncio.to_thread(kill9, procs[0])
        killed_at = time.monotonic()
        print(f"\nAMI kill -9 drill: injected SIGKILL into the service with {live} MixMonitors running on the PBX")
        listed = _listings(sim)
        procs.append(await asyncio.to_thread(spawn, svc, "second"))
        await until(lambda: _listings(sim) > listed, 30, "the restarted service resynced (CoreShowChannels)")
        back = time.monotonic() - killed_at
        played = await asyncio.gather(*tasks)
        legs = [c.customer.uniqueid for c in played]
        await until(lambda: all_finished(conn, calls), 120, "every recording finalized")
        counts = await check_stored_once(conn, legs, svc)
        adopted = await conn.fetchval("SELECT count(*) FROM recordings WHERE stop_reason = 'hangup'")
        lost_link = await conn.fetchval("SELECT count(*) FROM recordings WHERE stop_reason = 'link_lost'")
        mixmonitors = sum(1 for a in sim.actions_seen if a.get("action", [""])[0].lower() == "mixmonitor")
        print(
            f"AMI kill -9 drill: restarted and resynced in {back:.1f} s; counted {counts['calls']} calls, "
            f"{counts['recordings']} recordings, {counts['stored']} stored, 0 duplicates, 0 plaintext left; "
            f"{mixmonitors} MixMonitor actions for {calls} calls; {adopted} adopted and ended by hangup, "
            f"{lost_link} closed as link_lost (ended while down)"
        )
        assert mixmonitors == calls, "the restarted service started second MixMonitors on adopted calls"
    finally:
        for p in procs:
            await asyncio.to_thread(stop, p)
        await conn.close()
        await sim.close()


async def test_ami_kill9_mid_call_then_restart_stores_every_recording_once(tmp_path: Path, fresh_db: str) -> None:
    await _kill9_drill(tmp_path, fresh_db, calls=20, talk_ms=5000)


@pytest.mark.slow
async def test_ami_kill9_mid_call_100_calls(tmp_path: Path, fresh_db: str) -> None:
    await _kill9_drill(tmp_path, fresh_db, calls=100, talk_ms=8000)


async def test_ten_ami_drops_under_load_lose_nothing(tmp_path: Path, fresh_db: str) -> None:
    sim = AmiSimulator(time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, fresh_db, node_id="drill-ami-drops", ami_port=sim.port)
    conn = await asyncpg.connect(fresh_db)
    proc = await asyncio.to_thread(spawn, svc)
    try:
        assert await ami_connected(sim, 30), "the service never logged in to the AMI simulator"
        tasks = []
        for _ in range(20):
            tasks.append(asyncio.create_task(sim.play(call_scenario(9000), settle=False)))
            await asyncio.sleep(0.05)
        resyncs = []
        for _ in range(DROPS):
            await asyncio.sleep(0.3)
            listed = _listings(sim)
            sim.drop_connections()
            t0 = time.monotonic()
            await until(lambda n=listed: _listings(sim) > n, 30, "resync after an AMI drop")
            resyncs.append(time.monotonic() - t0)
        played = await asyncio.gather(*tasks)
        legs = [c.customer.uniqueid for c in played]
        await until(lambda: all_finished(conn, len(legs)), 120, "every recording finalized")
        counts = await check_stored_once(conn, legs, svc)
        mixmonitors = sum(1 for a in sim.actions_seen if a.get("action", [""])[0].lower() == "mixmonitor")
        print(
            f"\nAMI link drop drill: injected {DROPS} AMI socket aborts with {len(legs)} calls up; resync after each: "
            f"{', '.join(f'{r:.2f}' for r in resyncs)} s (max {max(resyncs):.2f} s, goal < 2 s); counted "
            f"{counts['recordings']} recordings, {counts['stored']} stored, 0 duplicates, 0 lost; "
            f"{mixmonitors} MixMonitor actions for {len(legs)} calls"
        )
        assert mixmonitors == len(legs), "a drop made the service start a second MixMonitor on a call"
    finally:
        await asyncio.to_thread(stop, proc)
        await conn.close()
        await sim.close()


async def test_ami_call_answered_while_service_dead_is_recorded_after_restart(tmp_path: Path, fresh_db: str) -> None:
    sim = AmiSimulator(time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, fresh_db, node_id="drill-ami-dead", ami_port=sim.port)
    conn = await asyncpg.connect(fresh_db)
    procs = []
    try:
        procs.append(await asyncio.to_thread(spawn, svc, "first"))
        assert await ami_connected(sim, 30), "the service never logged in to the AMI simulator"
        await asyncio.to_thread(kill9, procs[0])
        calls = 5
        resynced = asyncio.Event()
        answered = 0

        async def hold_until_resync(step: sc.Step) -> None:
            """Each call is answered and bridged while no controller runs, and stays up (no simulated
            time passes) until the restarted service has listed the channels: a restart on a loaded
            machine takes longer than any fixed talk time, and a call that ends before the controller
            is back cannot be recorded by anyone."""
            nonlocal answered
            if isinstance(step, sc.Answer):
                answered += 1
                await resynced.wait()

        tasks = [
            asyncio.create_task(sim.play(call_scenario(4000), hold_until_resync, settle=False)) for _ in range(calls)
        ]
        await until(lambda: answered == calls, 30, "every call answered while the service is down")
        print(f"\nAMI dead-service drill: injected SIGKILL, then {calls} calls answered while the service was down")
        listed = _listings(sim)
        procs.append(await asyncio.to_thread(spawn, svc, "second"))
        await until(lambda: _listings(sim) > listed, 60, "the restarted service resynced (CoreShowChannels)")
        resynced.set()  # the calls talk 4 s more with the controller back
        played = await asyncio.gather(*tasks)
        legs = [c.customer.uniqueid for c in played]

        async def settled() -> bool:
            st = await states(conn)
            return sum(st.values()) >= calls and set(st) <= {"stored", "failed"}

        with contextlib.suppress(AssertionError):
            await until(settled, 8, "every recording finalized")
        print(f"AMI dead-service drill: recordings after restart {await states(conn)} for {calls} calls")
        counts = await check_stored_once(conn, legs, svc)
        print(f"AMI dead-service drill: counted {counts['recordings']} recordings, {counts['stored']} stored")
    finally:
        for p in procs:
            await asyncio.to_thread(stop, p)
        await conn.close()
        await sim.close()
