"""The live-call routes of the OpenAPI document: list (with ETag/304), one call, pause/resume, SSE."""

from __future__ import annotations

from typing import Any

from controller.api.openapi_common import CALL_ID, errors, json_body, op, ref

IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the ETag of the view you have; 304 when it is still current",
}
LIST_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "strong; changes exactly when your view does"},
    "Cache-Control": {"schema": {"type": "string"}, "description": "private, no-cache"},
}


def pause_op(action: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "via": {"enum": ["api", "page"], "default": "api", "description": "how the request was made (the page: page)"}
    }
    if action == "pause":
        props["reason"] = {
            "type": "string",
            "maxLength": 64,
            "description": "optional reason code (e.g. pci), kept with the pause in the timeline and manifest",
        }
    operation = op(
        f"{action.capitalize()} the call's recording (role's pause scope; `agent`: own call where policy allows)",
        {"200": json_body(ref("LiveCall")), **errors(400, 401, 403, 404, 409, 422, 503)},
        params=[CALL_ID],
        tag="calls",
    )
    schema = {"type": "object", "additionalProperties": False, "properties": props}
    operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": schema}}}
    return operation


def paths() -> dict[str, Any]:
    return {
        "/api/v1/calls": {
            "get": op(
                "Live calls you may see, with recording state, policy decision and timeline so far."
                " Poll with If-None-Match: an unchanged view is a 304 (strong ETag per view); gzip when accepted",
                {
                    "200": {
                        **json_body(
                            {
                                "type": "object",
                                "required": ["calls"],
                                "properties": {"calls": {"type": "array", "items": ref("LiveCall")}},
                            }
                        ),
                        "headers": LIST_HEADERS,
                    },
                    "304": {"description": "Not modified: If-None-Match is the current ETag", "headers": LIST_HEADERS},
                    **errors(401, 503),
                },
                params=[IF_NONE_MATCH],
                tag="calls",
            )
        },
        "/api/v1/calls/{call_id}": {
            "get": op(
                "One live call",
                {"200": json_body(ref("LiveCall")), **errors(401, 404, 503)},
                params=[CALL_ID],
                tag="calls",
            )
        },
        "/api/v1/calls/{call_id}/recording/pause": {"post": pause_op("pause")},
        "/api/v1/calls/{call_id}/recording/resume": {"post": pause_op("resume")},
        "/api/v1/events": {
            "get": op(
                "Server-sent events: `snapshot`, then `call.updated` / `call.ended`, only for calls you may see."
                " When users, tokens, roles or ring groups change the token is checked again: a narrowed scope"
                " gets a new `snapshot`, a revoked token a last `revoked` event, then the stream ends",
                {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors(401, 503),
                },
                tag="calls",
            )
        },
    }
