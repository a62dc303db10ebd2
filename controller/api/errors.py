"""Every error leaves the API as JSON `{"error": {"code", "message"}}` with the right status.

Handlers raise `ApiError`; aiohttp's own HTTP errors (unknown route, wrong method, body too large)
are rewritten by the middleware; anything unexpected is logged and answered with a bare 500 that
reveals nothing about the internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def error_response(status: int, code: str, message: str, headers: Any = None, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        headers = {"WWW-Authenticate": 'Bearer realm="callrec"'} if e.status == 401 else None
        return error_response(e.status, e.code, e.message, headers, **e.extra)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "www-authenticate", "content-range")}
        message = e.reason if e.status != 404 else "no such route"
        return error_response(e.status, _CODES.get(e.status, "error"), message, headers or None)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (see the service log)")
