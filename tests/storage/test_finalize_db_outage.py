"""Finalize outlives the database: down when the service starts, or cut while it runs, the worker
waits and then stores what was recorded meanwhile — it never ends quietly with jobs left pending
(the PostgreSQL outage drill caught a worker that died at start when the database was down)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from controller.metrics import Metrics
from storage import db
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, insert_recording, make_config


class _Switch:
    """A TCP forwarder to PostgreSQL that can refuse (the database is down) or cut every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = False
        self.links: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.up = False
        for w in self.links:
            w.transport.abort()
        self.links.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


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
    switch = _Switch(url.hostname or "127.0.0.1", url.port or 5432)
    port = await switch.start()
    pool = await db.create_pool(fresh_db.replace(url.netloc, f"{url.username}@127.0.0.1:{port}"), min_size=0)
    worker = FinalizeWorker(pool, cfg, Metrics(), "n")
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.5)  # the database is down the whole time the worker starts
        assert not task.done(), f"finalize gave up while the database was down: {task}"
        rid, _ = await insert_recording(dbpool, cfg)
        switch.up = True
        assert await _stored(dbpool, rid, 30)
        # cut while it runs (the listener's connection too), then back: the next recording is stored too
        switch.cut()
        rid2, _ = await insert_recording(dbpool, cfg)
        await asyncio.sleep(1.0)
        assert not task.done()
        switch.up = True
        assert await _stored(dbpool, rid2, 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await switch.close()
        await pool.close()
