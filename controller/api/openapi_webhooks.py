"""OpenAPI paths and schemas of /api/v1/webhooks (endpoints, deliveries, redelivery); build_spec merges it."""

from __future__ import annotations

from typing import Any

from storage.outbox import EVENTS

_EVENTS = {"type": "array", "items": {"enum": list(EVENTS)}, "minItems": 1, "uniqueItems": True}
_TS = {"type": ["string", "null"]}
_FIELDS: dict[str, Any] = {
    "account": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"},
    "url": {"type": "string", "maxLength": 2000, "description": "http:// or https:// URL the events are POSTed to"},
    "events": _EVENTS,
    "description": {"type": "string", "maxLength": 500},
    "enabled": {"type": "boolean"},
    "download_link": {
        "type": "boolean",
        "description": (
            "Put a short-lived download link (a share link, `[webhooks] download_link_minutes`, default 15) in"
            " this endpoint's recording.stored events as data.download_url, minted per delivery attempt; needs"
            " `[api] public_url`. Default false. Turning it on, or changing url/account while it is on, needs"
            " a role whose download scope is `all` (403 otherwise). Turning it off, changing url/account or deleting"
            " the endpoint revokes its links still active."
        ),
    },
}

SCHEMAS: dict[str, Any] = {
    "Webhook": {
        "type": "object",
        "required": ["id", "account", "url", "events", "description", "enabled", "download_link"],
        "properties": {"id": {"type": "integer"}, **_FIELDS, "created_at": _TS, "updated_at": _TS},
    },
    "WebhookCreate": {
        "type": "object",
        "required": ["account", "url", "events"],
        "properties": _FIELDS,
        "additionalProperties": False,
    },
    "WebhookChange": {"type": "object", "properties": _FIELDS, "additionalProperties": False},
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "event_id", "event_type", "recording_id", "state", "attempts", "payload"],
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "string", "format": "uuid", "description": "Idempotency key (Callrec-Event-Id)"},
            "event_type": {"enum": list(EVENTS)},
            "recording_id": {"type": "string"},
            "state": {"enum": ["pending", "delivered", "dead"]},
            "attempts": {"type": "integer"},
            "next_attempt_at": _TS,
            "retry_until": _TS,
            "last_status": {"type": ["integer", "null"]},
            "last_error": {"type": "string"},
            "created_at": _TS,
            "delivered_at": _TS,
            "payload": {
                "type": "object",
                "description": (
                    "The JSON body sent, as enqueued: a recording.stored event's download_url is minted per"
                    " attempt and never stored, so it is null here"
                ),
            },
        },
    },
}


def paths(op: Any, json: Any, ref: Any, errors: Any, param: Any) -> dict[str, Any]:
    """The webhook routes, built with openapi.py's helpers (passed in to avoid an import cycle)."""
    wid = param("webhook_id", "Webhook endpoint id", {"type": "integer", "minimum": 1})
    did = param("delivery_id", "Delivery id", {"type": "integer", "minimum": 1})
    created = {
        "allOf": [
            ref("Webhook"),
            {
                "type": "object",
                "required": ["secret"],
                "properties": {"secret": {"type": "string", "description": "Signing secret, shown once"}},
            },
        ]
    }
    q = {"in": "query", "required": False}
    return {
        "/api/v1/webhooks": {
            "get": op(
                "Webhook endpoints (settings right); never their secrets",
                {
                    "200": json(
                        {
                            "type": "object",
                            "required": ["webhooks"],
                            "properties": {"webhooks": {"type": "array", "items": ref("Webhook")}},
                        }
                    ),
                    **errors(401, 403),
                },
                params=[{**q, "name": "account", "schema": {"type": "string"}, "description": "Only this account's"}],
                tag="webhooks",
            ),
            "post": op(
                "Create an endpoint for an account's recording events; the response holds the secret, once",
                {"201": json(created), **errors(400, 401, 403, 413, 422)},
                body=ref("WebhookCreate"),
                tag="webhooks",
            ),
        },
        "/api/v1/webhooks/{webhook_id}": {
            "get": op(
                "One endpoint", {"200": json(ref("Webhook")), **errors(401, 403, 404)}, params=[wid], tag="webhooks"
            ),
            "put": op(
                "Change an endpoint (any subset of fields)",
                {"200": json(ref("Webhook")), **errors(400, 401, 403, 404, 413, 422)},
                params=[wid],
                body=ref("WebhookChange"),
                tag="webhooks",
            ),
            "delete": op(
                "Delete an endpoint and its undelivered events",
                {"204": {"description": "Deleted"}, **errors(401, 403, 404)},
                params=[wid],
                tag="webhooks",
            ),
        },
        "/api/v1/webhooks/{webhook_id}/secret": {
            "post": op(
                "Replace the signing secret; the new one is shown once and signs every later attempt",
                {
                    "200": json(
                        {
                            "type": "object",
                            "required": ["id", "secret"],
                            "properties": {"id": {"type": "integer"}, "secret": {"type": "string"}},
                        }
                    ),
                    **errors(401, 403, 404),
                },
                params=[wid],
                tag="webhooks",
            )
        },
        "/api/v1/webhooks/{webhook_id}/deliveries": {
            "get": op(
                "Events for this endpoint, newest first; state=dead is the dead-letter view",
                {
                    "200": json(
                        {
                            "type": "object",
                            "required": ["deliveries", "next_before"],
                            "properties": {
                                "deliveries": {"type": "array", "items": ref("WebhookDelivery")},
                                "next_before": {"type": ["integer", "null"]},
                            },
                        }
                    ),
                    **errors(400, 401, 403, 404, 422),
                },
                params=[
                    wid,
                    {
                        **q,
                        "name": "state",
                        "schema": {"enum": ["pending", "delivered", "dead"]},
                        "description": "Filter",
                    },
                    {**q, "name": "before", "schema": {"type": "integer", "minimum": 1}, "description": "next_before"},
                    {
                        **q,
                        "name": "limit",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "description": "Page size",
                    },
                ],
                tag="webhooks",
            )
        },
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {
            "post": op(
                "Send a dead (or delivered) event again, same event id, with a fresh retry period",
                {"200": json(ref("WebhookDelivery")), **errors(401, 403, 404)},
                params=[wid, did],
                tag="webhooks",
            )
        },
    }
