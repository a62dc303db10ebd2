"""The audit log, for admins: who listened to, downloaded or changed what, when, from where."""

from __future__ import annotations

from aiohttp import web

from controller.api.auth import require_role
from controller.api.recordings import param_int
from controller.api.state import api_state
from storage import audit


async def read_audit(request: web.Request) -> web.Response:
    require_role(request, "admin")
    limit = param_int(request, "limit", 100, 1, 1000)
    before = param_int(request, "before", 0, 0, 2**62) or None
    rows = await audit.read(
        api_state(request).pool,
        actor=request.query.get("actor") or None,
        action=request.query.get("action") or None,
        target=request.query.get("target") or None,
        before_id=before,
        limit=limit,
    )
    nxt = rows[-1]["id"] if len(rows) == limit else None
    return web.json_response({"entries": rows, "next_before": nxt})
