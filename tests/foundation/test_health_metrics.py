"""/health and /metrics tell the same story about finalize, over real HTTP from the running service."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import asyncpg

from controller.config import load_config
from controller.metrics import Metrics
from controller.service import Service
from storage.finalize import FinalizeWorker
from tests.foundation.conftest import CliKeys, write_config
from tests.storage.conftest import insert_recording


async def _all_done(pool: asyncpg.Pool, n: int) -> None:
    """Wait (a bounded wait, not a timing assertion) until n finalize jobs have run to the end."""
    for _ in range(600):
        if await pool.fetchval("SELECT count(*) FROM finalize_jobs WHERE state = 'done'") >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("finalize did not finish within 60 s")


def _metric(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m, f"{series} missing from /metrics"
    return float(m.group(1))


async def _scrape(base: str) -> tuple[dict, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/health") as r:
            health = await r.json()
        async with http.get(f"{base}/metrics") as r:
            metrics = await r.text()
    return health, metrics


async def test_health_and_metrics_agree_on_stored_recordings(fresh_db: str, cli_keys: CliKeys, tmp_path: Path) -> None:
    conf = write_config(
        tmp_path / "callrec.toml",
        fresh_db,
        tmp_path,
        cli_keys,
        extra="workers = 2\npoll_interval_seconds = 0.2\n[api]\nport = 0\n",
    )
    cfg = load_config(conf, env={})
    service = Service(cfg)
    await service.start()
    try:
        assert service.pool is not None
        n = 10
        for _ in range(n):
            await insert_recording(service.pool, cfg, seconds=0.3)
        await _all_done(service.pool, n)
        health, metrics = await _scrape(f"http://127.0.0.1:{service.api_port}")
        stored = health["components"]["finalize"]["stored_total"]
        assert stored == _metric(metrics, "callrec_finalize_stored_total") == n, (health, metrics)
        assert _metric(metrics, 'callrec_recordings{state="stored"}') == n  # the journal's count, all instances

        # Another instance (its own process counters) stores more of the same journal's recordings:
        # this instance's counter stays its own, in both endpoints; the journal's total is a gauge.
        other = FinalizeWorker(service.pool, cfg, Metrics(), "other-instance")
        m = 3
        for _ in range(m):
            await insert_recording(service.pool, cfg, seconds=0.3)
        await other.drain()
        await _all_done(service.pool, n + m)
        health, metrics = await _scrape(f"http://127.0.0.1:{service.api_port}")
        own = health["components"]["finalize"]["stored_total"]
        assert own == _metric(metrics, "callrec_finalize_stored_total"), (health, metrics)
        assert n <= own <= n + m
    finally:
        await service.close()
