"""The API application: routes, middlewares, and how the service starts it.

`create_app` takes its collaborators explicitly (database pool, live-call source, metrics, health
checks, audio opener), so the service, the lab and the tests compose it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from controller.api import (
    audit_log,
    auth,
    calls,
    health,
    numbering,
    recordings,
    ring_groups,
    roles,
    settings,
    shares,
    users,
    webhooks,
)
from controller.api.audio import AudioOpener, backend_age_opener
from controller.api.auth_cache import AuthCache
from controller.api.errors import Handler, error_middleware
from controller.api.health import HealthCheck
from controller.api.live_index import LiveIndex
from controller.api.openapi import build_spec
from controller.api.state import STATE, ApiState
from controller.api.verify import signature_verifier
from controller.config import Config
from controller.live import LiveCallSource
from controller.metrics import Metrics

STATIC_DIR = Path(__file__).resolve().parent / "static"
ManifestVerifier = Callable[[Mapping[str, Any]], Any]
"""Given a stored recording row, returns {"status": "valid"|"invalid", ...} (or a bool; may be async)."""

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    config: Config,
    pool: asyncpg.Pool,
    live: LiveCallSource | None = None,
    metrics: Metrics | None = None,
    health_checks: Mapping[str, HealthCheck] | None = None,
    *,
    audio: AudioOpener | None = None,
    manifest_verifier: ManifestVerifier | None = None,
) -> web.Application:
    """The aiohttp application.

    `health_checks` adds to the built-in database / spool / finalize_backlog checks (e.g.
    `pbx:fs1`, `backend`). `audio` opens a stored recording's decrypted WAV stream; by default the
    configured storage backend with `encryption.identity_file`. `manifest_verifier` checks a stored
    recording's signed manifest; by default against the public half of `encryption.signing_key_file`.
    """
    app = web.Application(
        middlewares=[_metrics_middleware, error_middleware, auth.auth_middleware], client_max_size=settings.MAX_BODY
    )
    registry = metrics or Metrics()
    health.describe(registry)
    checks: dict[str, HealthCheck] = {
        "database": health.database_check(pool),
        "spool": health.spool_check(config.spool_dir),
        "finalize_backlog": health.finalize_backlog_check(pool),
        **(health_checks or {}),
    }
    app[STATE] = ApiState(
        config=config,
        pool=pool,
        live=live,
        metrics=registry,
        health_checks=checks,
        audio=audio or backend_age_opener(config),
        manifest_verifier=manifest_verifier or signature_verifier(config, pool),
        openapi=build_spec(),
        live_index=LiveIndex(live) if live is not None else None,
        auth_cache=AuthCache(pool),
    )
    app.on_startup.append(_start_background)
    app.on_shutdown.append(_close_streams)
    app.on_cleanup.append(_stop_background)

    r = app.router
    r.add_get("/health", health.health)
    r.add_get("/metrics", health.metrics)
    r.add_get("/api/v1/openapi.json", _openapi)
    r.add_get("/api/v1/me", auth.me)
    r.add_post("/api/v1/session", auth.open_session)
    r.add_delete("/api/v1/session", auth.close_session)
    r.add_get("/api/v1/calls", calls.list_calls)
    r.add_get("/api/v1/calls/{call_id}", calls.get_call)
    r.add_post("/api/v1/calls/{call_id}/recording/pause", calls.pause)
    r.add_post("/api/v1/calls/{call_id}/recording/resume", calls.resume)
    r.add_get("/api/v1/events", calls.events)
    r.add_get("/api/v1/recordings", recordings.search)
    r.add_get("/api/v1/recordings/{rec_id}", recordings.detail)
    r.add_get("/api/v1/recordings/{rec_id}/audio", recordings.audio_stream)
    r.add_get("/api/v1/recordings/{rec_id}/waveform", recordings.waveform)
    r.add_get("/api/v1/accounts/{account_id}/settings", settings.get_account_settings)
    r.add_put("/api/v1/accounts/{account_id}/settings", settings.put_account_settings)
    r.add_get("/api/v1/numbers/{number}/override", settings.get_number_override)
    r.add_put("/api/v1/numbers/{number}/override", settings.put_number_override)
    r.add_delete("/api/v1/numbers/{number}/override", settings.delete_number_override)
    r.add_get("/api/v1/accounts/{account_id}/numbers", numbering.list_numbers)
    r.add_get("/api/v1/accounts/{account_id}/numbering", numbering.get_plan)
    r.add_put("/api/v1/accounts/{account_id}/numbering", numbering.put_plan)
    r.add_get("/api/v1/accounts/{account_id}/numbering/classify", numbering.classify)
    r.add_get("/api/v1/policy/explain", numbering.explain)
    r.add_get("/api/v1/recordings/{rec_id}/shares", shares.list_shares)
    r.add_post("/api/v1/recordings/{rec_id}/shares", shares.create_share)
    r.add_delete("/api/v1/recordings/{rec_id}/shares/{share_id}", shares.revoke_share)
    r.add_get("/api/v1/sharing", shares.get_limits)
    r.add_put("/api/v1/sharing", shares.put_limits)
    r.add_get("/api/v1/audit", audit_log.read_audit)
    roles.add_routes(r)
    users.add_routes(r)
    ring_groups.add_routes(r)
    webhooks.add_routes(r)
    r.add_get("/share/{token}", shares.share_page)
    r.add_get("/share/{token}/info", shares.share_info)
    r.add_get("/share/{token}/audio", shares.share_audio)
    r.add_get("/", _page)
    r.add_get("/static/{name}", _static)
    return app


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].openapi)


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={**_PAGE_HEADERS, "Content-Type": _STATIC_TYPES[path.suffix]})


@web.middleware
async def _metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        request.app[STATE].metrics.inc("callrec_api_requests_total", route=name, status=str(status))


async def _start_background(app: web.Application) -> None:
    state = app[STATE]
    if state.auth_cache is not None:
        state.auth_cache.start()
    if state.live_index is not None:
        state.live_index.start()


async def _stop_background(app: web.Application) -> None:
    cache = app[STATE].auth_cache
    if cache is not None:
        await cache.stop()


async def _close_streams(app: web.Application) -> None:
    """End open SSE streams so shutdown does not wait for clients to hang up."""
    index = app[STATE].live_index
    if index is not None:
        index.close()
    tasks: set[asyncio.Task[Any]] = app[STATE].sse_tasks
    for t in list(tasks):
        t.cancel()
    for t in list(tasks):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


async def start_api(app: web.Application, bind: str = "127.0.0.1", port: int = 8080) -> tuple[web.AppRunner, int]:
    """Serve `app` on bind:port (port 0 = any free port); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
