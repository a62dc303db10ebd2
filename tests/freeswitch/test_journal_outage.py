"""The database goes away while calls start, transfer and end: the recorder holds each call's journal
writes (in order) and writes them once PostgreSQL is reachable again — a recording that started during
the outage gets its row, its transfer, its stop and its finalize job, exactly once.

The outage is real at the socket level: the recorder's pool talks to PostgreSQL through a TCP relay on
loopback that the test cuts (open connections closed, new ones refused) and restores."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from controller.drivers.freeswitch import FreeSwitchDriver
from controller.recorder import Recorder
from lab import scenarios as sc
from lab.esl_sim import EslSimulator
from storage import db
from tests.db_relay import Relay, via

from .conftest import PASSWORD, Harness, policy_for


@pytest.fixture
async def outage(db_dsn: str, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[tuple[Harness, Relay]]:
    u = urlsplit(db_dsn)
    relay = Relay(u.hostname or "127.0.0.1", u.port or 5432)
    await relay.start()
    relayed = await db.create_pool(via(db_dsn, relay.port), min_size=1, max_size=4)
    sim = EslSimulator(password=PASSWORD, time_scale=1.0)
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "fs-out-" + secrets.token_hex(3))
    h.driver = FreeSwitchDriver(h.pbx, "127.0.0.1", sim.port, PASSWORD, record_dir=str(h.spool))
    h.recorder = Recorder(relayed, [h.driver], lambda: h.policy, spool_dir=str(h.spool), journal_retry_max=0.5)
    await h.driver.start()
    await h.recorder.start()
    await h.wait(lambda: h.driver is not None and h.driver.connected)
    yield h, relay
    relay.restore()
    await h.stop_controller()
    await sim.close()
    relayed.terminate()
    await relay.close()


async def test_calls_during_a_database_outage_are_journaled_once_it_is_back(outage: tuple[Harness, Relay]) -> None:
    h, relay = outage
    scenario = sc.get("blind_transfer_external_continue")
    h.policy = policy_for(scenario.settings)
    relay.cut()
    played = await asyncio.gather(h.sim.run(scenario), h.sim.run(sc.get("inbound")))
    assert h.recorder is not None
    await h.wait(lambda: h.recorder is not None and h.recorder.journal_waiting > 0, 5)
    assert await h.recordings() == []  # nothing could be written yet
    relay.restore()
    await h.settle()
    rows = await h.recordings()
    assert len(rows) == 2, [dict(r) for r in rows]
    assert {r["customer_leg"] for r in rows} == {p.customer.uuid for p in played}
    assert {r["state"] for r in rows} == {"stopped"}
    by_leg = {r["customer_leg"]: r for r in rows}
    transferred = by_leg[played[0].customer.uuid]
    assert [(t["kind"], t["target_class"]) for t in transferred["timeline"]["transfers"]] == [("blind", "external")]
    assert transferred["timeline"]["stop"]["reason"] == "hangup"
    for r in rows:
        kinds = [e["kind"] for e in await h.events(r["id"])]
        assert kinds.count("start") == 1 and kinds.count("stop") == 1, kinds
    jobs = await h.pool.fetchval(
        "SELECT count(*) FROM finalize_jobs WHERE recording_id = ANY($1::uuid[])", [r["id"] for r in rows]
    )
    assert jobs == 2
    assert h.recorder.journal_waiting == 0


async def test_a_restart_while_the_database_is_down_adopts_the_recording_once_it_is_back(
    outage: tuple[Harness, Relay],
) -> None:
    """The controller restarts mid-call while PostgreSQL is unreachable: its resync cannot consult the
    journal, so it neither adopts nor starts anything; once the database answers it reconnects, resyncs
    in full and adopts the running recording — one row, one start command, one stop."""
    h, relay = outage
    scenario = sc.get("controller_restart")
    h.policy = policy_for(scenario.settings)
    assert h.recorder is not None
    relayed = h.recorder.pool

    async def on_step(step: object, handle: object) -> None:
        if not isinstance(step, sc.ControllerRestart):
            return
        await h.wait(h.recordings)  # the recording is journaled
        relay.cut()
        assert h.recorder is not None and h.driver is not None
        await h.recorder.close()  # the old controller dies
        await h.driver.close()
        h.driver = FreeSwitchDriver(h.pbx, "127.0.0.1", h.sim.port, PASSWORD, record_dir=str(h.spool))
        h.recorder = Recorder(relayed, [h.driver], lambda: h.policy, spool_dir=str(h.spool), journal_retry_max=0.5)
        await h.driver.start()
        await h.recorder.start()
        await h.wait(lambda: h.recorder is not None and h.recorder.journal_waiting > 0, 10)  # resync is waiting
        connects = h.driver.connects
        relay.restore()
        await h.wait(lambda: h.driver is not None and h.driver.connects > connects, 15)  # reconnected to resync
        await h.wait(lambda: h.recorder is not None and any(c["recording"]["id"] for c in h.recorder.live_calls()), 10)

    handle = await h.sim.run(scenario, on_step=on_step)
    await h.settle()
    rows = await h.recordings()
    assert [r["customer_leg"] for r in rows] == [handle.customer.uuid]
    assert rows[0]["state"] == "stopped" and rows[0]["stop_reason"] == "hangup"
    kinds = [e["kind"] for e in await h.events(rows[0]["id"])]
    assert kinds.count("start") == 1 and kinds.count("stop") == 1, kinds
    starts = [c for c in h.sim.commands if c.startswith("uuid_record") and " start " in c]
    assert len(starts) == 1, starts  # adopted, never started a second time
