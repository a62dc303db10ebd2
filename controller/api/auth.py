"""Bearer-token authentication and role checks.

Scripts send `Authorization: Bearer <token>`. The page also needs the token for `EventSource` and
`<audio src>`, which cannot set headers, so `POST /api/v1/session` turns a bearer token into an
HttpOnly, SameSite=Strict cookie; that cookie is honoured for GET/HEAD only, so it can never be used
to change anything (no CSRF surface).

Every request under /api/ is checked; the principals come from `AuthCache` (auth_cache.py), which
mirrors the database and forgets on every change, so a revoked token stops working at once.
"""

from __future__ import annotations

from aiohttp import web

from controller.api.auth_cache import AuthCache
from controller.api.errors import ApiError, Handler
from controller.api.state import api_state
from controller.permissions import Principal
from storage import users

COOKIE = "callrec_token"
PUBLIC_API = frozenset({"/api/v1/openapi.json"})
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


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
        cache: AuthCache | None = api_state(request).auth_cache
        if cache is None:
            principal = await users.authenticate(api_state(request).pool, token)
        else:
            principal = await cache.authenticate(token)
        if principal is None:
            raise ApiError(401, "unauthorized", "the token is unknown or revoked")
        request[PRINCIPAL_KEY] = principal
        if request.method not in _READS and cache is not None:
            # a write may have revoked or narrowed someone's access: its client's next request must see
            # it, without waiting for the notification (which also reaches the other instances)
            try:
                return await handler(request)
            finally:
                cache.invalidate()
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
