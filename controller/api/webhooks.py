"""/api/v1/webhooks: endpoints, their deliveries (dead-letter view) and redelivery.

Admin-only through the `settings` right: a webhook sends recording metadata out of the service."""

from __future__ import annotations

from aiohttp import web

from controller import webhooks as service
from controller.api.admin_http import caller, json_object, path_int, service_errors
from controller.api.auth import principal
from controller.api.errors import ApiError
from controller.api.state import api_state

RIGHT = "settings"


def _downloads_all(request: web.Request) -> bool:
    """Whether the caller may download every recording (what `download_link` hands to a receiver)."""
    return principal(request).download.all


def _endpoint_id(request: web.Request) -> int:
    return path_int(request, "webhook_id", "webhook")


@service_errors
async def list_webhooks(request: web.Request) -> web.Response:
    caller(request, RIGHT)
    account = request.query.get("account") or None
    return web.json_response({"webhooks": await service.list_endpoints(api_state(request).pool, account)})


@service_errors
async def create_webhook(request: web.Request) -> web.Response:
    who = caller(request, RIGHT)
    body = await json_object(request)
    created = await service.create_endpoint(
        api_state(request).pool, who, body, may_download_all=_downloads_all(request)
    )
    return web.json_response(created, status=201)


@service_errors
async def get_webhook(request: web.Request) -> web.Response:
    caller(request, RIGHT)
    return web.json_response(await service.get_endpoint(api_state(request).pool, _endpoint_id(request)))


@service_errors
async def update_webhook(request: web.Request) -> web.Response:
    who = caller(request, RIGHT)
    body = await json_object(request)
    out = await service.update_endpoint(
        api_state(request).pool, who, _endpoint_id(request), body, may_download_all=_downloads_all(request)
    )
    return web.json_response(out)


@service_errors
async def delete_webhook(request: web.Request) -> web.Response:
    who = caller(request, RIGHT)
    await service.delete_endpoint(api_state(request).pool, who, _endpoint_id(request))
    return web.Response(status=204)


@service_errors
async def rotate_secret(request: web.Request) -> web.Response:
    who = caller(request, RIGHT)
    return web.json_response(await service.rotate_secret(api_state(request).pool, who, _endpoint_id(request)))


def _int_query(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "invalid_parameter", f"{name}: an integer {lo}-{hi}", field=name)
    return int(raw)


@service_errors
async def list_deliveries(request: web.Request) -> web.Response:
    caller(request, RIGHT)
    state = request.query.get("state") or None
    before = _int_query(request, "before", None, 1, 2**62)
    limit = _int_query(request, "limit", 100, 1, 1000)
    assert limit is not None
    out = await service.deliveries(api_state(request).pool, _endpoint_id(request), state, before, limit)
    return web.json_response(out)


@service_errors
async def redeliver(request: web.Request) -> web.Response:
    who = caller(request, RIGHT)
    did = path_int(request, "delivery_id", "delivery")
    return web.json_response(await service.redeliver(api_state(request).pool, who, _endpoint_id(request), did))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/v1/webhooks", list_webhooks)
    r.add_post("/api/v1/webhooks", create_webhook)
    r.add_get("/api/v1/webhooks/{webhook_id}", get_webhook)
    r.add_put("/api/v1/webhooks/{webhook_id}", update_webhook)
    r.add_delete("/api/v1/webhooks/{webhook_id}", delete_webhook)
    r.add_post("/api/v1/webhooks/{webhook_id}/secret", rotate_secret)
    r.add_get("/api/v1/webhooks/{webhook_id}/deliveries", list_deliveries)
    r.add_post("/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", redeliver)
