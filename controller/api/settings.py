"""Account settings and per-number overrides (admins write; supervisors may read).

Validation is the policy module's (`validate_setting`), so the API, the CLI and the settings file
refuse exactly the same values, and every error names the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from controller.api.auth import require_role
from controller.api.errors import ApiError, not_found
from controller.api.state import api_state
from controller.numbering import InvalidNumber, normalize_e164
from controller.policy import SETTING_FIELDS, AccountSettings, NumberOverride, PolicyError
from storage import audit, repo

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_BODY = 64 * 1024


def _account_id(request: web.Request) -> str:
    account = request.match_info["account_id"]
    if not _ACCOUNT_ID.match(account):
        raise ApiError(400, "invalid_parameter", "account id: letters, digits, . _ - (at most 100)", field="account")
    return account


async def _number(request: web.Request) -> str:
    raw = request.match_info["number"]
    country = await api_state(request).pool.fetchval(
        "SELECT value FROM app_settings WHERE key = $1", repo.DEFAULT_COUNTRY_KEY
    )
    try:
        return normalize_e164(raw, country or "US")
    except InvalidNumber as e:
        raise ApiError(400, "invalid_parameter", f"number: {e}", field="number") from None


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"body larger than {MAX_BODY} bytes")
    raw = await request.read()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object", field="body")
    return body


def _policy_error(e: PolicyError) -> ApiError:
    return ApiError(422, "invalid_setting", str(e), field=e.field)


def _settings_view(account: str, s: AccountSettings) -> dict[str, Any]:
    return {"account": account, "settings": s.as_dict()}


async def get_account_settings(request: web.Request) -> web.Response:
    require_role(request, "admin", "supervisor")
    account = _account_id(request)
    s = await repo.get_account_settings(api_state(request).pool, account)
    if s is None:
        raise not_found("account")
    return web.json_response(_settings_view(account, s))


async def put_account_settings(request: web.Request) -> web.Response:
    p = require_role(request, "admin")
    account = _account_id(request)
    body = await _json_object(request)
    changes = body["settings"] if set(body) == {"settings"} else body  # flat or wrapped in "settings"
    if not isinstance(changes, dict):
        raise ApiError(422, "invalid", "settings must be a JSON object", field="settings")
    try:
        s = await repo.put_account_settings(api_state(request).pool, account, changes)
    except PolicyError as e:
        raise _policy_error(e) from None
    except TypeError as e:
        raise ApiError(422, "invalid_setting", str(e), field="settings") from None
    await audit.record(
        api_state(request).pool,
        actor=f"user:{p.name}",
        action="settings.update",
        target=f"account:{account}",
        remote=request.remote or "",
        detail={"changes": changes},
    )
    return web.json_response(_settings_view(account, s))


def _override_view(number: str, account: str, ov: NumberOverride, base: AccountSettings | None) -> dict[str, Any]:
    base = base or AccountSettings()
    effective, sources = {}, {}
    for f in SETTING_FIELDS:
        value = getattr(ov, f)
        effective[f] = value if value is not None else getattr(base, f)
        sources[f] = f"number:{number}" if value is not None else "account"
    return {"number": number, "account": account, "override": ov.as_dict(), "effective": effective, "sources": sources}


async def get_number_override(request: web.Request) -> web.Response:
    require_role(request, "admin", "supervisor")
    number = await _number(request)
    pool = api_state(request).pool
    found = await repo.get_number_override(pool, number)
    if found is None:
        raise not_found("number")
    account, ov = found
    return web.json_response(_override_view(number, account, ov, await repo.get_account_settings(pool, account)))


async def put_number_override(request: web.Request) -> web.Response:
    p = require_role(request, "admin")
    number = await _number(request)
    body = await _json_object(request)
    unknown = set(body) - {"account", "override"}
    if unknown:
        raise ApiError(
            422, "invalid", f"unknown key {sorted(unknown)[0]!r} (expected account, override)", field=sorted(unknown)[0]
        )
    override = body.get("override", {})
    account = body.get("account")
    if not isinstance(override, dict):
        raise ApiError(422, "invalid", "override must be a JSON object", field="override")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT_ID.match(account)):
        raise ApiError(422, "invalid", "account: letters, digits, . _ - (at most 100)", field="account")
    pool = api_state(request).pool
    try:
        owner, ov = await repo.put_number_override(pool, number, override, account)
    except PolicyError as e:
        raise _policy_error(e) from None
    await audit.record(
        pool,
        actor=f"user:{p.name}",
        action="number_override.update",
        target=f"number:{number}",
        remote=request.remote or "",
        detail={"override": ov.as_dict(), "account": owner},
    )
    return web.json_response(_override_view(number, owner, ov, await repo.get_account_settings(pool, owner)))


async def delete_number_override(request: web.Request) -> web.Response:
    p = require_role(request, "admin")
    number = await _number(request)
    pool = api_state(request).pool
    if not await repo.delete_number_override(pool, number):
        raise not_found("number")
    await audit.record(
        pool,
        actor=f"user:{p.name}",
        action="number_override.delete",
        target=f"number:{number}",
        remote=request.remote or "",
    )
    return web.Response(status=204)
