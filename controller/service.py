"""The running service: database, PBX links, recorder, finalize workers, retention, API.

This module only composes the parts; each part owns its own logic. `Service.run()` starts them in
dependency order and stops them in reverse on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from contextlib import AsyncExitStack

import asyncpg

from controller.config import Config
from controller.metrics import Metrics
from storage import db

log = logging.getLogger(__name__)


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_id = config.node_id or f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = Metrics()
        self.pool: asyncpg.Pool | None = None
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.config
        async with AsyncExitStack() as stack:
            for d in (cfg.spool_dir, cfg.storage_path):
                d.mkdir(parents=True, exist_ok=True, mode=0o750)
            dsn = await db.resolve_dsn(cfg.database.url, cfg.pgdata_dir)
            self.pool = await db.create_pool(dsn, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
            stack.push_async_callback(self.pool.close)
            async with self.pool.acquire() as conn:
                applied = await db.migrate(conn)
            if applied:
                log.info("database migrated: %s", ", ".join(applied))
            log.info("callrec service %s ready (%d PBX node(s))", self.node_id, len(cfg.pbx))
            self.ready.set()
            await self._stop.wait()
            log.info("stopping")


def run_forever(config: Config) -> int:
    """Run the service until SIGINT/SIGTERM; returns the exit code."""

    async def main() -> None:
        service = Service(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(main())
    return 0
