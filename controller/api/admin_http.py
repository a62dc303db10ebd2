"""What the admin resources' handlers share: the JSON body, the caller as an audit actor, and the
service layer's refusals as JSON errors (422 naming the field, 404, 409)."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from controller.access.audit import Who
from controller.access.errors import AccessError, Conflict, Invalid, NotFound
from controller.api.auth import require_right
from controller.api.errors import ApiError, Handler, not_found

MAX_BODY = 64 * 1024


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


def caller(request: web.Request, right: str) -> Who:
    """The caller, who must hold `right`, as the actor of the audit entries of their change."""
    p = require_right(request, right)
    return Who(f"user:{p.name}", request.remote or "")


def path_int(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise not_found(what)
    return int(raw)


def service_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Invalid as e:
            raise ApiError(422, "invalid", e.message, field=e.field) from None
        except NotFound as e:
            raise ApiError(404, "not_found", e.message) from None
        except Conflict as e:
            raise ApiError(409, "conflict", e.message, **e.extra) from None
        except AccessError as e:
            raise ApiError(400, "bad_request", e.message) from None

    return wrapped
