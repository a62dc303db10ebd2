"""The audit log, for admins: who listened to, downloaded, shared or changed what, when, from where.

Filters: `actor` (user:alice), `action` (exact, or a family like `settings.*`), `target`
(account:main, number:+1555…, recording:<id>), `from` / `to` (ISO 8601).
"""

from __future__ import annotations

from aiohttp import web

from controller.api.auth import require_right
from controller.api.errors import ApiError
from controller.api.recordings import param_int, param_time
from controller.api.state import api_state
from storage import audit

_MAX_FILTER = 300


def _filter(request: web.Request, name: str) -> str | None:
    value = request.query.get(name) or None
    if value is not None and (len(value) > _MAX_FILTER or "\x00" in value):
        raise ApiError(400, "invalid_parameter", f"{name}: at most {_MAX_FILTER} characters, no NUL", field=name)
    return value


async def read_audit(request: web.Request) -> web.Response:
    require_right(request, "audit")
    limit = param_int(request, "limit", 100, 1, 1000)
    before = param_int(request, "before", 0, 0, 2**62) or None
    rows = await audit.read(
        api_state(request).pool,
        actor=_filter(request, "actor"),
        action=_filter(request, "action"),
        target=_filter(request, "target"),
        since=param_time(request, "from"),
        until=param_time(request, "to"),
        before_id=before,
        limit=limit,
    )
    nxt = rows[-1]["id"] if len(rows) == limit else None
    return web.json_response({"entries": rows, "next_before": nxt})
