"""Helpers and shared parameters of the OpenAPI document (controller/api/openapi.py and its parts):
one way to write an operation, a JSON response, the error responses, and path/query parameters."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad parameter",
        401: "Missing or bad token",
        403: "Not allowed",
        404: "Not found (or outside your scope)",
        409: "Wrong state",
        410: "Link expired or revoked",
        413: "Body too large",
        416: "Range not satisfiable",
        422: "Invalid body",
        502: "Stored audio unreadable",
        503: "Unavailable",
    }
    return {str(c): json_body(ref("Error"), text[c]) for c in codes}


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# The audio routes (a user's and a share link's) take the same download switch and Range header.
AUDIO_PARAMS = [
    query_param("download", {"enum": ["0", "1", "true", "false"]}, "1 = download (attachment)"),
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "bytes=start-end",
    },
]


def path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string"},
        "description": description,
    }


CALL_ID = path_param("call_id", "Live call id")
REC_ID = path_param("rec_id", "Recording id (UUID)", {"type": "string", "format": "uuid"})
ACCOUNT = path_param("account_id", "Account id", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"})
NUMBER = path_param("number", "Phone number (E.164, e.g. +15551234567; URL-encode the +)")
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the ETag you read; a stale one gets 409 with the current values",
}
CONFLICT = {"409": json_body({"$ref": "#/components/schemas/Conflict"}, "Changed since you loaded it")}
SHARE_ID = path_param("share_id", "Share id", {"type": "integer", "minimum": 1})
TOKEN = path_param("token", "The share link's token")
AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
AUTHED_ERRORS = (401,)


def op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[Any] | None = None,
    body: Any = None,
    tag: str,
    public: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    operation["security"] = [] if public else AUTH
    return operation
