"""/api/v1/roles: named permission sets (needs the `roles` right)."""

from __future__ import annotations

from aiohttp import web

from controller.access import roles as service
from controller.api.admin_common import versioned, wanted_version
from controller.api.admin_http import caller, json_object, service_errors
from controller.api.state import api_state


@service_errors
async def list_roles(request: web.Request) -> web.Response:
    caller(request, "roles")
    return web.json_response({"roles": await service.list_roles(api_state(request).pool)})


@service_errors
async def create_role(request: web.Request) -> web.Response:
    who = caller(request, "roles")
    role = await service.create_role(api_state(request).pool, who, await json_object(request))
    return versioned(role, status=201)


@service_errors
async def get_role(request: web.Request) -> web.Response:
    caller(request, "roles")
    return versioned(await service.get_role(api_state(request).pool, request.match_info["name"]))


@service_errors
async def update_role(request: web.Request) -> web.Response:
    who = caller(request, "roles")
    body = await json_object(request)
    version = wanted_version(request, body)
    name = request.match_info["name"]
    return versioned(await service.update_role(api_state(request).pool, who, name, body, version=version))


@service_errors
async def delete_role(request: web.Request) -> web.Response:
    who = caller(request, "roles")
    await service.delete_role(api_state(request).pool, who, request.match_info["name"])
    return web.Response(status=204)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/v1/roles", list_roles)
    r.add_post("/api/v1/roles", create_role)
    r.add_get("/api/v1/roles/{name}", get_role)
    r.add_put("/api/v1/roles/{name}", update_role)
    r.add_delete("/api/v1/roles/{name}", delete_role)
