"""Bearer-token authentication and role checks.

Scripts send `Authorization: Bearer <token>`. The page also needs the token for `EventSource` and
`<audio src>`, which cannot set headers, so `POST /api/v1/session` turns a bearer token into an
HttpOnly, SameSite=Strict cookie; that cookie is honoured for GET/HEAD only, so it can never be used
to change anything (no CSRF surface).
"""

from __future__ import annotations

from aiohttp import web

from controller.api.errors import ApiError, Handler
from controller.api.state import api_state
from controller.permissions import Principal
from storage import users

COOKIE = "callrec_token"
PUBLIC_API = frozenset({"/api/v1/openapi.json"})
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE) or None
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/") and request.path not in PUBLIC_API:
        token = bearer_token(request)
        if token is None:
            raise ApiError(401, "unauthorized", "a bearer token is required (Authorization: Bearer <token>)")
        principal = await users.authenticate(api_state(request).pool, token)
        if principal is None:
            raise ApiError(401, "unauthorized", "the token is unknown or revoked")
        request[PRINCIPAL_KEY] = principal
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def require_right(request: web.Request, *rights: str) -> Principal:
    """The caller, who must hold one of `rights` through their role (see controller/permissions.py)."""
    p = principal(request)
    if not any(p.has(r) for r in rights):
        raise ApiError(
            403, "forbidden", f"this needs the right {' or '.join(rights)}, which role {p.role} does not grant"
        )
    return p


def actor_label(p: Principal) -> str:
    return f"user:{p.name}"


async def me(request: web.Request) -> web.Response:
    return web.json_response(principal(request).as_dict())


async def open_session(request: web.Request) -> web.Response:
    """Set the cookie the page's EventSource and audio player ride on (token already checked)."""
    token = bearer_token(request)
    resp = web.json_response(principal(request).as_dict())
    resp.set_cookie(COOKIE, token or "", httponly=True, samesite="Strict", path="/api/", secure=request.secure)
    return resp


async def close_session(request: web.Request) -> web.Response:
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/api/")
    return resp
