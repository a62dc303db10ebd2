"""Benchmark: GET /api/v1/calls with 1,000 live calls at a fixed 200 req/s, next to a trivial aiohttp
handler measured in the same run (the floor: what aiohttp + the client cost by themselves).

The server runs in a child process (so the load generator does not share its event loop); requests
are sent open-loop on a fixed schedule, so a slow server shows up as latency, not as a lower rate.

    .venv/bin/python -m lab.bench.api_bench [--calls 1000] [--rate 200] [--seconds 15]

Needs PostgreSQL (tokens are checked in the database on every request): CALLREC_TEST_DATABASE_URL
or the local server at 127.0.0.1:5432; a throw-away database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web

SERVER_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


class StaticLive:
    """A LiveCallSource with N calls shaped like the recorder's views."""

    def __init__(self, n: int) -> None:
        self.calls = {f"call-{i:05d}": _view(i) for i in range(n)}

    def live_calls(self) -> list[dict[str, Any]]:
        return list(self.calls.values())

    def live_call(self, call_id: str) -> dict[str, Any] | None:
        return self.calls.get(call_id)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        return asyncio.Queue()

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        pass

    async def pause(self, call_id: str, actor: Any, **_: Any) -> dict[str, Any]:
        raise NotImplementedError

    resume = pause


def _view(i: int) -> dict[str, Any]:
    agent = str(2000 + i % 200)
    return {
        "id": f"call-{i:05d}",
        "pbx": "fs1",
        "direction": "inbound" if i % 3 else "outbound",
        "customer_number": f"+1555{i:07d}",
        "account_number": "+15551234567",
        "agent": agent,
        "ring_group": ("sales", "support", "billing")[i % 3],
        "started_at": "2026-11-21T08:00:00+00:00",
        "answered_at": "2026-11-21T08:00:04+00:00",
        "recording": {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "state": "paused" if i % 10 == 0 else "recording",
            "decision": {
                "record": True,
                "sources": {
                    "record": "account",
                    "record_inbound": "account",
                    "agent_pause_allowed": "number:+15551234567",
                },
                "settings": {
                    "record_inbound": True,
                    "record_outbound": True,
                    "continue_on_external_transfer": True,
                    "agent_pause_allowed": True,
                    "dual_channel": True,
                    "retention_days": 183,
                },
            },
        },
        "timeline": {
            "segments": [{"party": agent, "class": "internal", "start_ms": 0, "end_ms": None}],
            "pauses": [{"start_ms": 5000, "end_ms": 9000, "by": f"agent:{agent}"}] if i % 10 == 0 else [],
            "transfers": [],
            "stop": None,
        },
    }


# ---------------------------------------------------------------- server (child process)


async def serve(dsn: str, calls: int) -> None:
    from controller.api import create_app, start_api
    from controller.config import Config
    from storage import db, users

    pool = await db.create_pool(dsn, min_size=2, max_size=10)
    _, admin = await users.add_user(pool, "bench-admin", "admin")
    _, sup = await users.add_user(pool, "bench-sales", "supervisor", listen_scope="ring_group:sales")
    app = create_app(Config(state_dir="/tmp/callrec-bench"), pool, StaticLive(calls))
    runner, port = await start_api(app, "127.0.0.1", 0)

    async def trivial(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    floor = web.Application()
    floor.router.add_get("/trivial", trivial)
    floor_runner = web.AppRunner(floor, access_log=None)
    await floor_runner.setup()
    site = web.TCPSite(floor_runner, "127.0.0.1", 0)
    await site.start()
    floor_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": port, "floor_port": floor_port, "admin": admin, "sup": sup}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await runner.cleanup()
    await floor_runner.cleanup()
    await pool.close()


# ---------------------------------------------------------------- load generator (parent)


async def measure(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    size = 0

    async def one() -> None:
        nonlocal errors, size
        t0 = time.perf_counter()
        try:
            async with session.get(url, headers=headers) as r:
                body = await r.read()
                if r.status != 200:
                    errors += 1
                    return
                size = len(body)
        except aiohttp.ClientError:
            errors += 1
            return
        latencies.append((time.perf_counter() - t0) * 1000)

    # warm-up
    for _ in range(20):
        await one()
    latencies.clear()
    n = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": n,
        "errors": errors,
        "achieved_rps": n / elapsed,
        "p50": q[49],
        "p90": q[89],
        "p99": q[98],
        "max": max(latencies, default=0.0),
        "bytes": size,
    }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--serve", metavar="DSN", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        await serve(args.serve, args.calls)
        return 0

    from storage import db

    name = f"callrec_bench_{secrets.token_hex(4)}"
    admin_conn = await asyncpg.connect(SERVER_DSN)
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(SERVER_DSN)._replace(path="/" + name))
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lab.bench.api_bench", "--serve", dsn, "--calls", str(args.calls),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        info = json.loads(await child.stdout.readline())
        base, floor = f"http://127.0.0.1:{info['port']}", f"http://127.0.0.1:{info['floor_port']}"
        targets = [
            ("trivial aiohttp handler", floor + "/trivial", {}),
            (
                f"GET /api/v1/calls, admin ({args.calls} calls)",
                base + "/api/v1/calls",
                {"Authorization": f"Bearer {info['admin']}"},
            ),
            (
                "GET /api/v1/calls, supervisor of 1 ring group",
                base + "/api/v1/calls",
                {"Authorization": f"Bearer {info['sup']}"},
            ),
        ]
        rows = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
            for label, url, headers in targets:
                rows.append((label, await measure(session, url, headers, args.rate, args.seconds)))
        child.stdin.close()
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.close()

    print(f"\nAPI benchmark: {args.rate:g} req/s for {args.seconds:g} s per target, {args.calls} live calls")
    cpus = os.cpu_count()
    print(f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, {platform.machine()}, {cpus} CPUs\n")
    cols = ("req", "err", "rps", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes")
    print(f"{'target':<46} " + " ".join(f"{c:>8}" for c in cols))
    for label, r in rows:
        times = [f"{r[k]:.2f}" for k in ("p50", "p90", "p99", "max")]
        values = [r["requests"], r["errors"], f"{r['achieved_rps']:.1f}", *times, r["bytes"]]
        print(f"{label:<46} " + " ".join(f"{v:>8}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
