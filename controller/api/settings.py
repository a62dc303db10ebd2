"""Account recording settings and per-number overrides (admins write; supervisors may read).

Validation is the policy module's (`validate_setting`), so the API, the CLI and the settings file
refuse exactly the same values, and every error names the field. Writes go through
`storage.policy_admin`: version-checked (If-Match / `version`; a stale one gets 409 with the current
values), atomic, audited with old and new values, and seen by the recorder's next decision.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.api.admin_common import (
    ACCOUNT_ID,
    MAX_BODY,
    account_id,
    actor,
    conflict,
    e164,
    json_object,
    policy_error,
    versioned,
    wanted_version,
)
from controller.api.auth import require_right
from controller.api.errors import ApiError, not_found
from controller.api.state import api_state
from controller.policy import PolicyError
from storage import policy_admin
from storage.policy_admin import Conflict

__all__ = ["MAX_BODY"]


async def get_account_settings(request: web.Request) -> web.Response:
    require_right(request, "view_settings", "settings")
    account = account_id(request)
    view = await policy_admin.get_settings(api_state(request).pool, account)
    if view is None:
        raise not_found("account")
    return versioned(view)


async def put_account_settings(request: web.Request) -> web.Response:
    p = require_right(request, "settings")
    account = account_id(request)
    body = await json_object(request)
    version = wanted_version(request, body)
    changes: Any = body["settings"] if set(body) == {"settings"} else body  # flat or wrapped in "settings"
    if not isinstance(changes, dict):
        raise ApiError(422, "invalid", "settings must be a JSON object", field="settings")
    try:
        view = await policy_admin.put_settings(
            api_state(request).pool, account, changes, version=version, actor=actor(request, p)
        )
    except PolicyError as e:
        raise policy_error(e) from None
    except Conflict as e:
        raise conflict(e) from None
    return versioned(view)


async def get_number_override(request: web.Request) -> web.Response:
    require_right(request, "view_settings", "settings")
    number = await e164(request, request.match_info["number"])
    view = await policy_admin.get_number(api_state(request).pool, number)
    if view is None:
        raise not_found("number")
    return versioned(view)


async def put_number_override(request: web.Request) -> web.Response:
    p = require_right(request, "settings")
    number = await e164(request, request.match_info["number"])
    body = await json_object(request)
    version = wanted_version(request, body)
    unknown = set(body) - {"account", "override"}
    if unknown:
        key = sorted(unknown)[0]
        raise ApiError(422, "invalid", f"unknown key {key!r} (expected account, override, version)", field=key)
    override = body.get("override", {})
    account = body.get("account")
    if not isinstance(override, dict):
        raise ApiError(422, "invalid", "override must be a JSON object", field="override")
    if account is not None and (not isinstance(account, str) or not ACCOUNT_ID.match(account)):
        raise ApiError(422, "invalid", "account: letters, digits, . _ - (at most 100)", field="account")
    try:
        view = await policy_admin.put_number(
            api_state(request).pool, number, override, account, version=version, actor=actor(request, p)
        )
    except PolicyError as e:
        raise policy_error(e) from None
    except Conflict as e:
        raise conflict(e) from None
    return versioned(view)


async def delete_number_override(request: web.Request) -> web.Response:
    p = require_right(request, "settings")
    number = await e164(request, request.match_info["number"])
    try:
        found = await policy_admin.clear_number(
            api_state(request).pool, number, version=wanted_version(request), actor=actor(request, p)
        )
    except Conflict as e:
        raise conflict(e) from None
    if not found:
        raise not_found("number")
    return web.Response(status=204)
