"""What the admin resources share: path parameters, JSON bodies, versions (ETag / If-Match) and the
acting user for the audit log."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from controller.api.errors import ApiError
from controller.api.scopes import Principal
from controller.api.state import api_state
from controller.numbering import InvalidNumber, normalize_e164
from controller.policy import PolicyError
from storage import repo
from storage.policy_admin import Actor, Conflict

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_BODY = 64 * 1024
_VERSION = re.compile(r"^[0-9a-f]{1,64}$")


def account_id(request: web.Request) -> str:
    account = request.match_info["account_id"]
    if not ACCOUNT_ID.match(account):
        raise ApiError(400, "invalid_parameter", "account id: letters, digits, . _ - (at most 100)", field="account")
    return account


async def default_country(request: web.Request) -> str:
    country = await api_state(request).pool.fetchval(
        "SELECT value FROM app_settings WHERE key = $1", repo.DEFAULT_COUNTRY_KEY
    )
    return str(country or "US")


async def e164(request: web.Request, raw: str, field: str = "number") -> str:
    try:
        return normalize_e164(raw, await default_country(request))
    except InvalidNumber as e:
        raise ApiError(400, "invalid_parameter", f"{field}: {e}", field=field) from None


async def json_object(request: web.Request) -> dict[str, Any]:
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


def wanted_version(request: web.Request, body: dict[str, Any] | None = None) -> str | None:
    """The version the client edited: `If-Match` (the ETag it got) or a `version` field in the body
    (removed from `body`). None = the client did not say (last write wins, as for the CLI import)."""
    header = request.headers.get("If-Match")
    value: Any = None
    if header is not None:
        value = header.strip().removeprefix("W/").strip('"')
        if value == "*":
            value = None
    if body is not None and "version" in body:
        value = body.pop("version")
        if value is None:
            raise ApiError(422, "invalid", "version: the `version` you read (omit it to overwrite)", field="version")
    if value is None:
        return None
    if not isinstance(value, str) or not _VERSION.match(value):
        raise ApiError(422, "invalid", "version: the `version` (or ETag) you read, e.g. 3f2a…", field="version")
    return value


def versioned(view: dict[str, Any], status: int = 200) -> web.Response:
    headers = {"ETag": f'"{view["version"]}"'} if view.get("version") else None
    return web.json_response(view, status=status, headers=headers)


def conflict(e: Conflict) -> ApiError:
    return ApiError(
        409,
        "conflict",
        "someone changed this since you loaded it; here are the current values — review and save again",
        current=e.current,
    )


def policy_error(e: PolicyError) -> ApiError:
    return ApiError(422, "invalid_setting", str(e), field=e.field)


def actor(request: web.Request, p: Principal) -> Actor:
    return Actor(p.name, request.remote or "")
