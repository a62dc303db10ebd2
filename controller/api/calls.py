"""Live calls: list, detail, the SSE change stream, pause/resume.

Thin over `LiveCallSource` (the recorder): this module only filters by the caller's scope, maps the
recorder's refusals to HTTP, and writes the audit log. The list and the SSE stream are served from
`LiveIndex` (live_index.py): bodies encoded once per change and scope, with strong ETags (a repeated
poll of an unchanged view is a 304) and a cached gzip copy for clients that accept it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from controller.api.admin_common import json_object
from controller.api.auth import bearer_token, principal
from controller.api.errors import ApiError, not_found
from controller.api.live_index import Body, LiveIndex, Subscriber
from controller.api.state import api_state
from controller.live import Actor, CallNotFound, LiveCallSource, PauseRefused
from controller.pause_control import REASON_MAX
from controller.permissions import pause_mode, sees_call
from storage import audit

SSE_KEEPALIVE_S = 15.0
GZIP_MIN_BYTES = 1400
"""Smaller bodies fit one packet anyway; gzip would only add latency."""


def _live(request: web.Request) -> LiveCallSource:
    live: LiveCallSource | None = api_state(request).live
    if live is None:
        raise ApiError(503, "live_unavailable", "this instance does not track live calls")
    return live


def _visible_call(request: web.Request, call_id: str) -> dict[str, Any]:
    call = _live(request).live_call(call_id)
    if call is None or not sees_call(principal(request), call):
        raise not_found("live call")
    return call


def _index(request: web.Request) -> LiveIndex:
    _live(request)
    index = api_state(request).live_index
    assert index is not None
    return index


async def list_calls(request: web.Request) -> web.Response:
    return conditional(request, _index(request).view(principal(request).view))


def conditional(request: web.Request, body: Body) -> web.Response:
    """`body` as 200 (gzip when accepted and worth it) or 304 when the client's If-None-Match is current."""
    use_gzip = len(body.body) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("Accept-Encoding", ""))
    headers = {"ETag": body.gzip_etag if use_gzip else body.etag, "Cache-Control": "private, no-cache"}
    if len(body.body) >= GZIP_MIN_BYTES:
        headers["Vary"] = "Accept-Encoding"
    if _matches(request.headers.get("If-None-Match", ""), body):
        return web.Response(status=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=body.gzipped(), content_type="application/json", headers=headers)
    return web.Response(body=body.body, content_type="application/json", headers=headers)


def _matches(if_none_match: str, body: Body) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2); either representation's tag matches."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return body.etag in tags or body.gzip_etag in tags


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


async def get_call(request: web.Request) -> web.Response:
    return web.json_response(_visible_call(request, request.match_info["call_id"]), dumps=_dumps)


async def pause(request: web.Request) -> web.Response:
    return await _pause_resume(request, "pause")


async def resume(request: web.Request) -> web.Response:
    return await _pause_resume(request, "resume")


async def _pause_resume(request: web.Request, action: str) -> web.Response:
    p = principal(request)
    call_id = request.match_info["call_id"]
    mode = pause_mode(p, _visible_call(request, call_id))
    if mode is None:
        raise ApiError(
            403, f"{action}_refused", f"role {p.role} may not pause this call (pause scope: {p.pause})", reason="scope"
        )
    live = _live(request)
    reason, via = await _pause_body(request, action)
    # an agent-initiated pause is checked by the recorder: own call, and agent pause allowed by policy
    actor = Actor(p.name, "agent" if mode == "agent" else "supervisor", p.agent_ext)
    try:
        if action == "pause":
            view = await live.pause(call_id, actor, reason=reason, how=via)
        else:
            view = await live.resume(call_id, actor, how=via)
    except CallNotFound:
        raise not_found("live call") from None
    except PauseRefused as e:
        if e.reason == "input":
            raise ApiError(422, "invalid", str(e), field="reason") from None
        raise ApiError(403 if e.reason != "state" else 409, f"{action}_refused", str(e), reason=e.reason) from None
    await audit.record(
        api_state(request).pool,
        actor=f"user:{p.name}",
        action=f"call.{action}",
        target=f"call:{call_id}",
        remote=request.remote or "",
        detail={"recording": (view.get("recording") or {}).get("id")},
    )
    return web.json_response(view, dumps=_dumps)


PAUSE_VIA = ("api", "page")


async def _pause_body(request: web.Request, action: str) -> tuple[str, str]:
    """The optional body of pause/resume: `reason` (pause only: a short code such as "pci", kept with
    the pause in the timeline and the manifest) and `via` ("api" by default; the page sends "page")."""
    body = await json_object(request) if request.can_read_body else {}
    allowed = {"reason", "via"} if action == "pause" else {"via"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            422, "invalid", f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})", field=unknown[0]
        )
    reason, via = body.get("reason", ""), body.get("via", "api")
    if not isinstance(reason, str) or len(reason.strip()) > REASON_MAX:
        raise ApiError(
            422, "invalid", f'reason must be a short code (at most {REASON_MAX} characters, e.g. "pci")', field="reason"
        )
    if via not in PAUSE_VIA:
        raise ApiError(422, "invalid", f"via must be one of {', '.join(PAUSE_VIA)}", field="via")
    return reason, via


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a `snapshot` of visible calls, then `call.updated` / `call.ended`.

    The stream's token is checked again whenever users, tokens, roles or ring groups change (the
    auth cache's generation moves): a revoked token ends the stream, a narrowed scope gets a fresh
    snapshot, and no event outside the current scope is written.
    """
    p = principal(request)
    index = _index(request)
    state = api_state(request)
    cache = state.auth_cache
    token = bearer_token(request) or ""
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    sub = index.subscribe(p.view)
    streams: set[asyncio.Task[Any]] = state.sse_tasks
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    generation = cache.generation if cache is not None else 0
    watcher = asyncio.create_task(_wake_on_auth_change(cache, sub)) if cache is not None else None
    try:
        await resp.write(index.snapshot_event(sub.scope))
        while True:
            try:
                groups, agents, event = await asyncio.wait_for(sub.queue.get(), SSE_KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if cache is not None and cache.generation != generation:
                generation = cache.generation
                now = await cache.authenticate(token)
                if now is None:
                    await resp.write(b'event: revoked\ndata: {"reason":"the token is unknown or revoked"}\n\n')
                    break
                if now.view != sub.scope:
                    sub.scope = now.view
                    sub.resync_now()
                    continue
            if sub.resync:
                sub.resync = False
                await resp.write(index.snapshot_event(sub.scope))
                continue
            if event and sub.scope.covers(groups, agents):
                await resp.write(event)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if watcher is not None:
            watcher.cancel()
        streams.discard(task)
        index.unsubscribe(sub)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp


async def _wake_on_auth_change(cache: Any, sub: Subscriber) -> None:
    while True:
        await cache.changed()
        sub.wake()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))
