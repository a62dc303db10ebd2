"""`/health` and `/metrics`.

Health is 200 only when every component check passes; the JSON names each component either way so
an operator sees at once what is wrong. The database, spool and finalize-backlog checks are built
in; the service plugs in the rest (each PBX link, the storage backend) as callables.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from controller.api.state import STATE, api_state
from controller.metrics import Metrics

HealthCheck = Callable[[], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]
"""Returns {"ok": bool, ...detail}; raising counts as not ok (the message becomes the detail)."""

CHECK_TIMEOUT_S = 3.0
FINALIZE_BACKLOG_MAX_AGE_S = 600
SPOOL_MIN_FREE_BYTES = 256 * 1024 * 1024
STATE_COUNT_TTL_S = 15.0


def database_check(pool: asyncpg.Pool) -> HealthCheck:
    async def check() -> Mapping[str, Any]:
        await pool.fetchval("SELECT 1")
        return {"ok": True}

    return check


def spool_check(spool_dir: Path) -> HealthCheck:
    def check() -> Mapping[str, Any]:
        if not spool_dir.is_dir():
            return {"ok": False, "error": f"spool directory {spool_dir} does not exist"}
        if not os.access(spool_dir, os.W_OK | os.X_OK):
            return {"ok": False, "error": f"spool directory {spool_dir} is not writable"}
        free = shutil.disk_usage(spool_dir).free
        return {"ok": free >= SPOOL_MIN_FREE_BYTES, "free_bytes": free, "min_free_bytes": SPOOL_MIN_FREE_BYTES}

    return check


def finalize_backlog_check(pool: asyncpg.Pool) -> HealthCheck:
    """Fails when a due finalize job has waited longer than FINALIZE_BACKLOG_MAX_AGE_S."""

    async def check() -> Mapping[str, Any]:
        row = await pool.fetchrow(
            "SELECT count(*) AS pending, extract(epoch FROM now() - min(next_attempt_at)) AS oldest"
            " FROM finalize_jobs WHERE state IN ('pending', 'running') AND next_attempt_at <= now()"
        )
        oldest = float(row["oldest"] or 0.0)
        return {
            "ok": oldest <= FINALIZE_BACKLOG_MAX_AGE_S,
            "due_jobs": row["pending"],
            "oldest_due_seconds": round(oldest, 1),
            "max_age_seconds": FINALIZE_BACKLOG_MAX_AGE_S,
        }

    return check


async def run_check(check: HealthCheck) -> dict[str, Any]:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, CHECK_TIMEOUT_S)
        out = dict(result)
        out["ok"] = bool(out.get("ok"))
        return out
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:g} s"}
    except Exception as e:
        return {"ok": False, "error": f"{e.__class__.__name__}: {e}"}


async def health(request: web.Request) -> web.Response:
    checks: Mapping[str, HealthCheck] = api_state(request).health_checks
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    components = dict(zip(names, results, strict=True))
    ok = all(r["ok"] for r in results)
    return web.json_response({"status": "ok" if ok else "failing", "components": components}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    registry: Metrics = app[STATE].metrics
    live = app[STATE].live
    if live is not None:
        calls = live.live_calls()
        registry.set("callrec_calls_live", len(calls))
    await _refresh_state_counts(app, registry)
    return web.Response(
        text=registry.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def _refresh_state_counts(app: web.Application, registry: Metrics) -> None:
    """Recordings by state, cached briefly: counting millions of rows on every scrape is wasteful."""
    now = time.monotonic()
    if now - app[STATE].state_counts_at < STATE_COUNT_TTL_S:
        return
    app[STATE].state_counts_at = now
    try:
        rows = await app[STATE].pool.fetch("SELECT state, count(*) AS n FROM recordings GROUP BY state")
    except (OSError, asyncpg.PostgresError):
        return
    counts = {r["state"]: r["n"] for r in rows}
    for state in ("recording", "paused", "stopped", "stored", "failed", "orphaned"):
        registry.set("callrec_recordings", counts.get(state, 0), state=state)


def describe(registry: Metrics) -> None:
    registry.describe("callrec_calls_live", "gauge", "Live calls the recorder is tracking")
    registry.describe("callrec_recordings", "gauge", "Recordings in the journal by state")
    registry.describe("callrec_api_requests_total", "counter", "API requests by route and status")
