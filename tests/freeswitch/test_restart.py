"""A controller killed mid-call loses nothing and duplicates nothing: the next one adopts the
running recording (same journal row, timeline continued) or closes it if the call ended meanwhile;
a call that started while no controller was running is picked up at resync."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg

from lab import scenarios as sc
from lab.tones import channel_timeline

from .conftest import PASSWORD, Harness

ROOT = Path(__file__).resolve().parents[2]


async def _rows(h: Harness) -> list[asyncpg.Record]:
    return await h.recordings()


async def test_sigkilled_controller_process_recording_is_adopted_and_journaled_once(
    harness: Harness, db_dsn: str
) -> None:
    await harness.stop_controller()  # the first controller is a separate process we can SIGKILL
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.freeswitch.restart_controller",
        db_dsn,
        str(harness.sim.port),
        PASSWORD,
        harness.pbx,
        str(harness.spool),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"ready"
        await harness.sim.wait_connected(10)
        h = await _start_call(harness, sc.get("inbound"))
        await harness.wait(lambda: bool(h.customer.recordings))
        await harness.wait(_row_exists(harness))
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        await h.do(sc.Talk(1000), None, False)  # the PBX records on while no controller runs
        await harness.start_controller()
        await harness.wait(harness._adopted)
        await h.do(sc.Talk(1000), None, False)
        await h.do(sc.Hangup("customer"), None, False)
        await harness.settle()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rows = await _rows(harness)
    assert len(rows) == 1, [
        (r["customer_leg"], r["state"], r["stop_reason"], r["started_at"], r["timeline"], r["error"]) for r in rows
    ]
    rec = rows[0]
    assert rec["state"] == "stopped" and rec["stop_reason"] == "hangup"
    kinds = [e["kind"] for e in await harness.events(rec["id"])]
    assert kinds.count("start") == 1 and kinds.count("stop") == 1
    assert await harness.pool.fetchval("SELECT count(*) FROM finalize_jobs WHERE recording_id = $1", rec["id"]) == 1
    assert await harness.pool.fetchval("SELECT count(*) FROM calls WHERE pbx = $1", harness.pbx) == 1
    timeline = channel_timeline(rec["spool_files"]["stereo"])
    assert {r for _, r in timeline} == {880.0} and {left for left, _ in timeline} == {440.0}
    assert len(timeline) == 8, "2 s of talk: 1 s before and 1 s after the controller came back"


def _row_exists(h: Harness):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(await _rows(h))

    return check


async def _start_call(h: Harness, scenario: sc.Scenario):  # type: ignore[no-untyped-def]
    from lab.esl_sim import CallHandle

    handle = CallHandle(h.sim, scenario)
    for step in scenario.steps[:3]:  # place, ring, answer
        await handle.do(step, None, False)
    return handle


async def test_call_that_ended_while_controller_was_down_is_closed(harness: Harness) -> None:
    h = await _start_call(harness, sc.get("inbound"))
    await harness.wait(lambda: bool(h.customer.recordings))
    await harness.wait(_row_exists(harness))
    await harness.stop_controller()
    await h.do(sc.Talk(1000), None, False)
    await h.do(sc.Hangup("customer"), None, False)
    await harness.start_controller()
    await harness.settle()
    rows = await _rows(harness)
    assert len(rows) == 1 and rows[0]["state"] == "stopped" and rows[0]["stop_reason"] == "link_lost"
    assert rows[0]["timeline"]["stop"]["reason"] == "link_lost"
    assert await harness.pool.fetchval("SELECT count(*) FROM finalize_jobs WHERE recording_id = $1", rows[0]["id"]) == 1


async def test_call_bridged_while_controller_was_down_is_recorded_at_resync(harness: Harness) -> None:
    await harness.stop_controller()
    h = await _start_call(harness, sc.get("inbound_no_hook"))
    await harness.start_controller()
    await harness.wait(lambda: bool(h.customer.recordings))
    await h.do(sc.Talk(1000), None, False)
    await h.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    rows = await _rows(harness)
    assert len(rows) == 1 and rows[0]["state"] == "stopped" and rows[0]["stop_reason"] == "hangup"
    assert rows[0]["direction"] == "inbound" and rows[0]["customer_number"] == sc.CUSTOMER_NUMBER
    assert rows[0]["agent"] == sc.AGENT_EXT
