"""/api/v1/users: users, their role, extension, ring groups and tokens (needs the `users` right)."""

from __future__ import annotations

from aiohttp import web

from controller.access import users as service
from controller.api.admin_common import versioned, wanted_version
from controller.api.admin_http import caller, json_object, path_int, service_errors
from controller.api.state import api_state


@service_errors
async def list_users(request: web.Request) -> web.Response:
    caller(request, "users")
    return web.json_response({"users": await service.list_users(api_state(request).pool)})


@service_errors
async def create_user(request: web.Request) -> web.Response:
    who = caller(request, "users")
    user, token = await service.create_user(api_state(request).pool, who, await json_object(request))
    return web.json_response({"user": user, "token": token}, status=201, headers={"Cache-Control": "no-store"})


@service_errors
async def get_user(request: web.Request) -> web.Response:
    caller(request, "users")
    return versioned(await service.get_user(api_state(request).pool, path_int(request, "user_id", "user")))


@service_errors
async def update_user(request: web.Request) -> web.Response:
    who = caller(request, "users")
    uid = path_int(request, "user_id", "user")
    body = await json_object(request)
    version = wanted_version(request, body)
    return versioned(await service.update_user(api_state(request).pool, who, uid, body, version=version))


@service_errors
async def issue_token(request: web.Request) -> web.Response:
    who = caller(request, "users")
    token = await service.issue_token(api_state(request).pool, who, path_int(request, "user_id", "user"))
    return web.json_response(token, status=201, headers={"Cache-Control": "no-store"})


@service_errors
async def revoke_token(request: web.Request) -> web.Response:
    who = caller(request, "users")
    uid = path_int(request, "user_id", "user")
    tid = path_int(request, "token_id", "token")
    return web.json_response(await service.revoke_token(api_state(request).pool, who, uid, tid))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_get("/api/v1/users/{user_id}", get_user)
    r.add_put("/api/v1/users/{user_id}", update_user)
    r.add_post("/api/v1/users/{user_id}/tokens", issue_token)
    r.add_delete("/api/v1/users/{user_id}/tokens/{token_id}", revoke_token)
