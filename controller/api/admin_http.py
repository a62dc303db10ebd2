"""What the access resources' handlers share: the caller as an audit actor, numeric path ids, and the
service layer's refusals as JSON errors (422 naming the field, 404, 409). JSON bodies are read with
admin_common.json_object, like every admin resource."""

from __future__ import annotations

import functools

from aiohttp import web

from controller.access.audit import Who
from controller.access.errors import AccessError, Conflict, Forbidden, Invalid, NotFound
from controller.api.admin_common import json_object
from controller.api.auth import require_right
from controller.api.errors import ApiError, Handler, not_found

__all__ = ["caller", "json_object", "path_int", "service_errors"]


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
        except Forbidden as e:
            raise ApiError(403, "forbidden", e.message) from None
        except AccessError as e:
            raise ApiError(400, "bad_request", e.message) from None

    return wrapped
