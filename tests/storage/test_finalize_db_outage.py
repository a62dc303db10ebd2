"""Finalize outlives the database: down when the service starts, or cut while it runs, the worker
waits and then stores what was recorded meanwhile — it never ends quietly with jobs left pending
(the PostgreSQL outage drill caught a worker that died at start when the database was down)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from controller.metrics import Metrics
from storage import db
from storage.finalize import FinalizeWorker
from tests.db_relay import Relay, via
from tests.storage.conftest import Keys, insert_recording, make_config


async def _stored(dbpool: asyncpg.Pool, rid: str, within: float) -> bool:
    async with asyncio.timeout(within):
        while True:
            if await dbpool.fetchval("SELECT state FROM recordings WHERE id = $1", rid) == "stored":
                return True
            await asyncio.sleep(0.1)


async def test_finalize_started_while_the_database_is_down_stores_once_it_is_back(
    fresh_db: str, dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, keys, poll_interval_seconds=0.2)
    url = urlsplit(fresh_db)
    switch = Relay(url.hostname or "127.0.0.1", url.port or 5432)
    await switch.start()
    switch.cut()  # the database is down when the worker starts
    pool = await db.create_pool(via(fresh_db, switch.port), min_size=0)
    worker = FinalizeWorker(pool, cfg, Metrics(), "n")
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.5)  # the database is down the whole time the worker starts
        assert not task.done(), f"finalize gave up while the database was down: {task}"
        rid, _ = await insert_recording(dbpool, cfg)
        switch.restore()
        assert await _stored(dbpool, rid, 30)
        # cut while it runs (the listener's connection too), then back: the next recording is stored too
        switch.cut()
        rid2, _ = await insert_recording(dbpool, cfg)
        await asyncio.sleep(1.0)
        assert not task.done()
        switch.restore()
        assert await _stored(dbpool, rid2, 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await switch.close()
        await pool.close()
