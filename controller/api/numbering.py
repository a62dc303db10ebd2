"""An account's numbers and numbering plan, and the "why" box (policy explain over HTTP).

`GET /api/v1/policy/explain` answers with exactly what `callrec policy explain` prints
(`controller.policy.explain_call`), resolved against the policy as stored now — the same policy the
recorder's next decision uses.
"""

from __future__ import annotations

from aiohttp import web

from controller.api.admin_common import (
    ACCOUNT_ID,
    account_id,
    actor,
    conflict,
    json_object,
    policy_error,
    versioned,
    wanted_version,
)
from controller.api.auth import require_right
from controller.api.errors import ApiError, not_found
from controller.api.state import api_state
from controller.numbering import InvalidNumber
from controller.policy import PolicyError, explain_call
from storage import policy_admin, repo
from storage.policy_admin import Conflict

DIRECTIONS = ("inbound", "outbound", "internal")
_MAX_NUMBER = 64


async def list_numbers(request: web.Request) -> web.Response:
    require_right(request, "view_settings", "settings")
    account = account_id(request)
    pool = api_state(request).pool
    settings = await policy_admin.get_settings(pool, account)
    if settings is None:
        raise not_found("account")
    numbers = await policy_admin.list_numbers(pool, account)
    return web.json_response({"account": account, "account_settings": settings["settings"], "numbers": numbers})


async def get_plan(request: web.Request) -> web.Response:
    require_right(request, "view_settings", "settings")
    view = await policy_admin.get_plan(api_state(request).pool, account_id(request))
    if view is None:
        raise not_found("account")
    return versioned(view)


async def put_plan(request: web.Request) -> web.Response:
    p = require_right(request, "settings")
    account = account_id(request)
    body = await json_object(request)
    version = wanted_version(request, body)
    plan = body["plan"] if set(body) == {"plan"} and isinstance(body["plan"], dict) else body
    try:
        view = await policy_admin.put_plan(
            api_state(request).pool, account, plan, version=version, actor=actor(request, p)
        )
    except PolicyError as e:
        raise policy_error(e) from None
    except Conflict as e:
        raise conflict(e) from None
    if view is None:
        raise not_found("account")
    return versioned(view)


def _query_text(request: web.Request, name: str, *, required: bool) -> str | None:
    raw = request.query.get(name)
    if raw is None or not raw.strip():
        if required:
            raise ApiError(400, "invalid_parameter", f"{name}: required", field=name)
        return None
    if len(raw) > _MAX_NUMBER:
        raise ApiError(400, "invalid_parameter", f"{name}: at most {_MAX_NUMBER} characters", field=name)
    return raw.strip()


async def classify(request: web.Request) -> web.Response:
    """Which class the saved plan gives a dialled number, and which pattern decided it."""
    require_right(request, "view_settings", "settings")
    number = _query_text(request, "number", required=True)
    assert number is not None
    view = await policy_admin.get_plan(api_state(request).pool, account_id(request))
    if view is None:
        raise not_found("account")
    return web.json_response(policy_admin.classify(view["plan"], number))


async def explain(request: web.Request) -> web.Response:
    """Effective policy of a call (number + direction, optional transfer target), every value with its source."""
    require_right(request, "view_settings", "settings")
    direction = request.query.get("direction", "")
    if direction not in DIRECTIONS:
        raise ApiError(
            400, "invalid_parameter", f"direction: one of {', '.join(DIRECTIONS)}, got {direction!r}", field="direction"
        )
    number = _query_text(request, "number", required=True)
    transfer_to = _query_text(request, "transfer_to", required=False)
    dialplan = request.query.get("dialplan") or None
    if dialplan not in (None, "force", "never"):
        raise ApiError(400, "invalid_parameter", "dialplan: force or never", field="dialplan")
    account = request.query.get("account") or "main"
    if not ACCOUNT_ID.match(account):
        raise ApiError(400, "invalid_parameter", "account: letters, digits, . _ - (at most 100)", field="account")
    ps = await repo.load_policy_set(api_state(request).pool)
    if request.query.get("account") and account not in ps.accounts:
        # as `callrec policy explain`: an unknown account is a mistake, not "the defaults"
        known = ", ".join(sorted(ps.accounts)) or "none"
        raise ApiError(404, "not_found", f"no such account {account!r}; known: {known}", field="account")
    try:
        out = explain_call(
            ps, direction=direction, number=number, dialplan=dialplan, transfer_to=transfer_to, account=account
        )
    except InvalidNumber as e:
        raise ApiError(400, "invalid_parameter", f"number: {e}", field="number") from None
    return web.json_response(out)
