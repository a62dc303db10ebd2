"""/api/v1/ring-groups: ring groups and their members (needs the `users` right: membership is access)."""

from __future__ import annotations

from aiohttp import web

from controller.access import ring_groups as service
from controller.api.admin_http import caller, json_object, path_int, service_errors
from controller.api.state import api_state


@service_errors
async def list_groups(request: web.Request) -> web.Response:
    caller(request, "users")
    return web.json_response({"ring_groups": await service.list_groups(api_state(request).pool)})


@service_errors
async def create_group(request: web.Request) -> web.Response:
    who = caller(request, "users")
    group = await service.create_group(api_state(request).pool, who, await json_object(request))
    return web.json_response(group, status=201)


@service_errors
async def get_group(request: web.Request) -> web.Response:
    caller(request, "users")
    return web.json_response(await service.get_group(api_state(request).pool, request.match_info["group_id"]))


@service_errors
async def update_group(request: web.Request) -> web.Response:
    who = caller(request, "users")
    body = await json_object(request)
    gid = request.match_info["group_id"]
    return web.json_response(await service.update_group(api_state(request).pool, who, gid, body))


@service_errors
async def delete_group(request: web.Request) -> web.Response:
    who = caller(request, "users")
    await service.delete_group(api_state(request).pool, who, request.match_info["group_id"])
    return web.Response(status=204)


@service_errors
async def add_member(request: web.Request) -> web.Response:
    who = caller(request, "users")
    gid, uid = request.match_info["group_id"], path_int(request, "user_id", "user")
    return web.json_response(await service.add_member(api_state(request).pool, who, gid, uid))


@service_errors
async def remove_member(request: web.Request) -> web.Response:
    who = caller(request, "users")
    gid, uid = request.match_info["group_id"], path_int(request, "user_id", "user")
    return web.json_response(await service.remove_member(api_state(request).pool, who, gid, uid))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/v1/ring-groups", list_groups)
    r.add_post("/api/v1/ring-groups", create_group)
    r.add_get("/api/v1/ring-groups/{group_id}", get_group)
    r.add_put("/api/v1/ring-groups/{group_id}", update_group)
    r.add_delete("/api/v1/ring-groups/{group_id}", delete_group)
    r.add_put("/api/v1/ring-groups/{group_id}/members/{user_id}", add_member)
    r.add_delete("/api/v1/ring-groups/{group_id}/members/{user_id}", remove_member)
