"""Webhook load next to recording starts: N events/min flow journal → outbox → a local HTTP receiver
while recording starts are timed, compared with the same starts when no webhook is configured (the
anchor: the outbox lookup finds no endpoint and writes nothing). Prints a table; asserts nothing.

    .venv/bin/python -m lab.bench.webhooks_bench [--events-per-minute 10000] [--seconds 60] [--dsn ...]

Load: every simulated call journals started, paused, resumed (three events) through storage.journal —
the recorder's own writes — paced to the target rate; one WebhookWorker (the service's delivery task)
POSTs them, signed, to an aiohttp receiver on an OS-picked port. Measured: recording start latency
(journal.open_recording, the write a call waits for) p50 / p95 / max, events delivered per minute,
and the backlog left when the load stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

DEFAULT_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _receiver() -> tuple[web.AppRunner, int, list[int]]:
    got = [0]

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        got[0] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1]), got


async def run(dsn: str, per_minute: int, seconds: float, with_hooks: bool) -> dict[str, Any]:
    from controller.config import WebhooksConfig
    from controller.metrics import Metrics
    from lab.journal_sample import inbound_start
    from storage import db, journal
    from storage.webhook_delivery import WebhookWorker

    name = "callrec_bench_wh_" + secrets.token_hex(4)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = dsn.rsplit("/", 1)[0] + "/" + name
    runner, port, got = await _receiver()
    pool = await db.create_pool(base, max_size=10)
    worker_task = None
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        if with_hooks:
            await pool.execute(
                "INSERT INTO webhook_endpoints (account_id, url, events, secret)"
                " VALUES ('main', $1, $2, 'whsec_bench')",
                f"http://127.0.0.1:{port}/hook",
                ["recording.started", "recording.paused", "recording.resumed"],
            )
        worker = WebhookWorker(pool, WebhooksConfig(concurrency=32, poll_interval_seconds=0.2), Metrics(), "bench")
        worker_task = asyncio.create_task(worker.run())
        calls_per_s = per_minute / 60 / 3
        starts: list[float] = []
        t0 = time.monotonic()
        n = 0

        async def one_call(i: int) -> None:
            now = time.time()
            rid = str(uuid.uuid4())
            call, rec = inbound_start("bench", f"leg-{i}", rid, now)
            s = time.perf_counter()
            await journal.open_recording(pool, call, rec)
            starts.append(time.perf_counter() - s)
            for kind in ("pause", "resume"):
                await journal.record_event(
                    pool,
                    rid,
                    kind,
                    wall=time.time(),
                    offset_ms=0,
                    actor="bench",
                    detail={},
                    timeline={},
                    state="paused" if kind == "pause" else "recording",
                )

        tasks: set[asyncio.Task[None]] = set()
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(elapsed * calls_per_s) + 1
            while n < due:
                t = asyncio.create_task(one_call(n))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                n += 1
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        load_s = time.monotonic() - t0
        delivered_during = got[0]
        backlog = await pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE state = 'pending'")
        starts.sort()
        return {
            "webhooks": "on" if with_hooks else "off (anchor)",
            "calls": n,
            "events/min offered": round(n * 3 / load_s * 60) if with_hooks else 0,
            "delivered/min": round(delivered_during / load_s * 60),
            "backlog at end": backlog,
            "start p50 ms": round(statistics.median(starts) * 1000, 2),
            "start p95 ms": round(starts[int(len(starts) * 0.95) - 1] * 1000, 2),
            "start max ms": round(starts[-1] * 1000, 2),
        }
    finally:
        if worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await pool.close()
        await runner.cleanup()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-per-minute", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ns = ap.parse_args()
    rows = [asyncio.run(run(ns.dsn, ns.events_per_minute, ns.seconds, hooks)) for hooks in (False, True)]
    keys = list(rows[0])
    width = max(len(k) for k in keys)
    for k in keys:
        print(f"{k:<{width}}  " + "  ".join(f"{row[k]!s:>14}" for row in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
