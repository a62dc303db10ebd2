"""Drill: PostgreSQL stops while calls start, transfer and end → nothing lost, the service recovers alone.

The drill runs its OWN PostgreSQL (lab.drills.private_pg, a private port) — never the machine's shared
one — and the service as a real process against both simulators. Three waves of calls on each PBX:
  A  answered before the outage; transferred and hung up while the database is down;
  B  answered while the database is down; ended after it is back;
  C  answered and ended entirely inside the outage.
Then `pg_ctl stop -m fast` → wait → `pg_ctl start`; nobody touches the service. Every call must end
with exactly one stored recording, and a transfer made during the outage must be in its timeline.
Fast variant: a 5 s outage; `-m slow`: 60 s.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from lab.ami_sim import AmiSimulator
from lab.drills.private_pg import PrivatePostgres
from lab.esl_sim import EslSimulator
from storage import db
from tests.drills.conftest import check_stored_once, spawn, states, stop, until, write_config
from tests.drills.mixed_calls import (
    PlayedCall,
    ami_connected,
    call_with_transfer,
    plain_call,
    play_ami,
    play_esl,
    within,
)

LATE_START_S = 2.0


async def _drill(tmp_path: Path, outage_s: float, per_wave: int) -> None:
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    fs, ast = EslSimulator(time_scale=1.0), AmiSimulator(time_scale=1.0)
    await fs.start()
    await ast.start()
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute("CREATE DATABASE callrec")
    await admin.close()
    dsn = pg.dsn_for("callrec")
    svc = write_config(
        tmp_path, dsn, node_id="drill-pg", fs_port=fs.port, ami_port=ast.port, extra="max_attempts = 1000\n"
    )
    proc = await asyncio.to_thread(spawn, svc)
    tasks: list[asyncio.Task[PlayedCall]] = []
    try:
        assert await fs.wait_connected(30), "the service never subscribed to the ESL simulator"
        assert await ami_connected(ast, 30), "the service never logged in to the AMI simulator"
        ms = int(outage_s * 1000)

        def place(scen_fs, scen_ast) -> None:  # type: ignore[no-untyped-def]
            for _ in range(per_wave):
                tasks.append(asyncio.create_task(play_esl(fs, scen_fs)))
                tasks.append(asyncio.create_task(play_ami(ast, scen_ast)))

        # wave A: answered now; transfer at ~30 % and hang-up at ~60 % of the outage
        lead_ms = 1500
        place(
            call_with_transfer(lead_ms + ms * 3 // 10, ms * 3 // 10),
            call_with_transfer(lead_ms + ms * 3 // 10, ms * 3 // 10),
        )
        conn = await asyncpg.connect(dsn)
        await until(lambda: _count(conn, "recording", 2 * per_wave), 30, "wave A journaled")
        await conn.close()
        await asyncio.to_thread(pg.stop)
        down_at = time.monotonic()
        print(
            f"\nPostgreSQL drill: injected `pg_ctl stop -m fast` with {2 * per_wave} calls recording; "
            f"down {outage_s:g} s"
        )
        # wave C: answered and ended inside the outage; wave B: answered inside, ended after it
        await asyncio.sleep(outage_s * 0.1)
        place(plain_call(ms * 4 // 10), plain_call(ms * 4 // 10, "outbound"))
        await asyncio.sleep(outage_s * 0.2)
        place(plain_call(ms + 3000), call_with_transfer(ms, 1500))
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        await asyncio.to_thread(pg.start)
        up_at = time.monotonic()
        played = await asyncio.gather(*tasks)
        legs = [p.leg for p in played]

        conn = await db.connect(dsn)  # json codecs: timelines as dicts
        try:

            async def settled() -> bool:  # every row finished, and either all calls have one or the service is idle
                st = await states(conn)
                done = set(st) <= {"stored", "failed"}
                return done and (sum(st.values()) >= len(legs) or time.monotonic() - up_at > 20)

            await until(settled, 120, "every recording finalized")
            recovered = time.monotonic() - up_at
            rows = {r["customer_leg"]: r for r in await conn.fetch("SELECT * FROM recordings")}
            orphans = len(list(svc.spool.rglob("*.wav")))
            during = (
                f"during the outage {within(played, 'Answer', down_at, up_at)} answers, "
                f"{within(played, 'Transfer', down_at, up_at)} transfers, {within(played, 'Hangup', down_at, up_at)} "
                f"hang-ups"
            )
            print(
                f"PostgreSQL drill: {during}; after PostgreSQL came back: {len(legs)} calls, {len(rows)} recordings "
                f"({await states(conn)}), {len([leg for leg in legs if leg not in rows])} calls without a recording, "
                f"{orphans} WAV files left in the spool, settled in {recovered:.1f} s"
            )
            counts = await check_stored_once(conn, legs, svc)
            lost_transfer = [p.leg for p in played if p.transferred and len(rows[p.leg]["timeline"]["transfers"]) != 1]
            reasons = Counter(r["stop_reason"] for r in rows.values())
            late = [p.leg for p in played if rows[p.leg]["started_at"].timestamp() - p.wall["Answer"] > LATE_START_S]
            print(
                f"PostgreSQL drill: counted {counts['recordings']} recordings, {counts['stored']} stored, "
                f"0 duplicates, 0 missing; stop reasons {dict(reasons)}; "
                f"{len(lost_transfer)} transfers missing from timelines; "
                f"{len(late)} recordings started more than {LATE_START_S:g} s after the answer"
            )
            assert not lost_transfer, f"transfers made during the outage lost from the timeline: {lost_transfer[:5]}"
            # every call ended by a hang-up; `link_lost` is honest when the hang-up came while the PBX link was down
            assert set(reasons) <= {"hangup", "link_lost"}, reasons
            assert not late, f"recordings that missed the start of their call: {late[:5]}"
        finally:
            await conn.close()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.to_thread(stop, proc)
        await fs.close()
        await ast.close()
        await asyncio.to_thread(pg.destroy)


async def _count(conn: asyncpg.Connection, state: str, n: int) -> bool:
    return (await states(conn)).get(state, 0) >= n


async def test_postgres_down_5s_during_calls_loses_nothing(tmp_path: Path) -> None:
    await _drill(tmp_path, outage_s=5.0, per_wave=3)


@pytest.mark.slow
async def test_postgres_down_60s_during_calls_loses_nothing(tmp_path: Path) -> None:
    await _drill(tmp_path, outage_s=60.0, per_wave=10)
