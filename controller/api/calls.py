"""Live calls: list, detail, the SSE change stream, pause/resume.

Thin over `LiveCallSource` (the recorder): this module only filters by the caller's scope, maps the
recorder's refusals to HTTP, and writes the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from controller.api.admin_common import json_object
from controller.api.auth import principal
from controller.api.errors import ApiError, not_found
from controller.api.state import api_state
from controller.live import Actor, CallNotFound, LiveCallSource, PauseRefused
from controller.permissions import pause_mode, sees_call
from storage import audit

SSE_KEEPALIVE_S = 15.0


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


async def list_calls(request: web.Request) -> web.Response:
    _live(request)
    index = api_state(request).live_index
    assert index is not None
    return web.Response(body=index.calls_json(principal(request).view), content_type="application/json")


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
    if not isinstance(reason, str):
        raise ApiError(422, "invalid", 'reason must be a string (a short code such as "pci")', field="reason")
    if via not in PAUSE_VIA:
        raise ApiError(422, "invalid", f"via must be one of {', '.join(PAUSE_VIA)}", field="via")
    return reason, via


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a `snapshot` of visible calls, then `call.updated` / `call.ended`."""
    p = principal(request)
    live = _live(request)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    queue = live.subscribe()
    streams: set[asyncio.Task[Any]] = api_state(request).sse_tasks
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        snapshot = [c for c in live.live_calls() if sees_call(p, c)]
        await resp.write(_sse("snapshot", {"calls": snapshot}))
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            call = change.get("call") or {}
            if sees_call(p, call):
                await resp.write(_sse(str(change.get("type", "call.updated")), change))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        streams.discard(task)
        live.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))
