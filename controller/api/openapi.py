"""The OpenAPI 3.1 description of every route (served at /api/v1/openapi.json).

Written by hand next to the routes it describes; tests/api run schemathesis against it, so a route
that drifts from its description fails the build.
"""

from __future__ import annotations

from typing import Any

from controller.api import openapi_access, openapi_webhooks
from controller.policy import CHOICES, INT_RANGES, PROMPT_MAX, SETTING_FIELDS, TEXT_FIELDS

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
        }
    },
}
def _setting_schema(f: str) -> dict[str, Any]:
    if f in INT_RANGES:
        return {"type": "integer", "minimum": INT_RANGES[f][0], "maximum": INT_RANGES[f][1]}
    if f in CHOICES:
        return {"type": "string", "enum": list(CHOICES[f])}
    if f in TEXT_FIELDS:
        return {"type": "string", "maxLength": PROMPT_MAX, "pattern": "^[^ ]*$"}
    return {"type": "boolean"}


_SETTINGS_PROPS: dict[str, Any] = {f: _setting_schema(f) for f in SETTING_FIELDS}
_OBJ: dict[str, Any] = {"type": "object"}
_NULLABLE_STR = {"type": ["string", "null"]}
_VERSION = {"type": "string", "pattern": "^[0-9a-f]{1,64}$", "description": "send back as If-Match or `version`"}
_PLAN_KEYS = ("internal", "ring_groups", "private_extensions")

SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Me": {
        "type": "object",
        "description": "The caller's effective rights: their role's scopes resolved against their extension and"
        " ring groups (`ring_group` and `agent` terms become explicit lists). Read fresh on every request.",
        "required": ["name", "role", "listen_scope", "download_scope", "view_scope", "pause_scope", "rights"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "role": {"type": "string"},
            "agent_ext": {"type": "string"},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
            "listen_scope": {"type": "string"},
            "download_scope": {"type": "string"},
            "view_scope": {"type": "string"},
            "pause_scope": {"type": "string", "description": "Calls the user may pause as a supervisor"},
            "agent_pause": {
                "type": "boolean",
                "description": "May pause their own calls where the account or number allows agent pause",
            },
            "rights": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Timeline": {
        "type": "object",
        "properties": {
            "segments": {"type": "array", "items": _OBJ},
            "pauses": {"type": "array", "items": _OBJ},
            "transfers": {"type": "array", "items": _OBJ},
            "stop": {"type": ["object", "null"]},
            "consultations": {"type": "array", "items": _OBJ},
            "conference": {"type": "array", "items": _OBJ},
        },
    },
    "LiveCall": {
        "type": "object",
        "required": ["id", "recording"],
        "properties": {
            "id": {"type": "string"},
            "pbx": {"type": "string"},
            "direction": {"type": "string"},
            "customer_number": {"type": "string"},
            "account_number": {"type": "string"},
            "agent": {"type": "string"},
            "agents": {"type": "array", "items": {"type": "string"}},
            "ring_group": {"type": "string"},
            "started_at": _NULLABLE_STR,
            "answered_at": _NULLABLE_STR,
            "recording": {
                "type": "object",
                "properties": {
                    "id": _NULLABLE_STR,
                    "state": {"enum": ["recording", "paused", "not_recording", "stopped"]},
                    "decision": {"type": ["object", "null"]},
                },
            },
            "timeline": {"anyOf": [{"$ref": "#/components/schemas/Timeline"}, {"type": "null"}]},
        },
    },
    "RecordingSummary": {
        "type": "object",
        "required": ["id", "state", "direction", "started_at", "permissions"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "call_id": _NULLABLE_STR,
            "pbx": {"type": "string"},
            "account_id": _NULLABLE_STR,
            "direction": {"type": "string"},
            "customer_number": {"type": "string"},
            "account_number": {"type": "string"},
            "agent": {"type": "string"},
            "agents": {"type": "array", "items": {"type": "string"}},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
            "state": {"enum": ["recording", "paused", "stopped", "stored", "failed", "orphaned"]},
            "error": {"type": "string"},
            "started_at": {"type": "string"},
            "stopped_at": _NULLABLE_STR,
            "stop_reason": {"type": "string"},
            "duration_ms": {"type": ["integer", "null"]},
            "retention_until": {"type": "string"},
            "legal_hold": {"type": "boolean"},
            "permissions": {
                "type": "object",
                "description": "What the caller may do with this recording under their role right now: show"
                " the play button only where `listen`, the download button only where `download`.",
                "required": ["listen", "download"],
                "properties": {"listen": {"type": "boolean"}, "download": {"type": "boolean"}},
            },
        },
    },
    "RecordingDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/RecordingSummary"},
            {
                "type": "object",
                "required": ["policy", "timeline", "events", "manifest_verification"],
                "properties": {
                    "policy": _OBJ,
                    "timeline": _OBJ,
                    "events": {"type": "array", "items": _OBJ},
                    "manifest_verification": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"type": "string"}},
                    },
                    "audio_sha256": _NULLABLE_STR,
                },
            },
        ]
    },
    "AccountSettings": {
        "type": "object",
        "required": ["account", "settings", "defaults", "sources", "version"],
        "properties": {
            "account": {"type": "string"},
            "settings": {"type": "object", "properties": _SETTINGS_PROPS, "required": list(SETTING_FIELDS)},
            "defaults": {"type": "object", "properties": _SETTINGS_PROPS},
            "sources": {"type": "object", "additionalProperties": {"enum": ["account", "default"]}},
            "version": _VERSION,
        },
    },
    "SettingsChange": {
        "type": "object",
        "properties": {**_SETTINGS_PROPS, "version": _VERSION},
        "additionalProperties": False,
    },
    "NumberOverride": {
        "type": "object",
        "required": ["number", "account", "override", "effective", "sources", "version"],
        "properties": {
            "number": {"type": "string"},
            "account": {"type": "string"},
            "override": {"type": "object", "properties": _SETTINGS_PROPS},
            "effective": {"type": "object", "properties": _SETTINGS_PROPS},
            "sources": {"type": "object", "additionalProperties": {"type": "string"}},
            "version": _VERSION,
        },
    },
    "NumberList": {
        "type": "object",
        "required": ["account", "account_settings", "numbers"],
        "properties": {
            "account": {"type": "string"},
            "account_settings": {"type": "object", "properties": _SETTINGS_PROPS},
            "numbers": {"type": "array", "items": {"$ref": "#/components/schemas/NumberOverride"}},
        },
    },
    "NumberingPlan": {
        "type": "object",
        "required": ["account", "plan", "is_default", "version"],
        "properties": {
            "account": {"type": "string"},
            "plan": {
                "type": "object",
                "required": ["internal", "ring_groups", "private_extensions"],
                "properties": {k: {"type": "array", "items": {"type": "string"}} for k in _PLAN_KEYS},
            },
            "is_default": {"type": "boolean"},
            "version": _VERSION,
        },
    },
    "NumberingPlanChange": {
        "type": "object",
        "properties": {
            **{k: {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200}} for k in _PLAN_KEYS},
            "version": _VERSION,
        },
        "additionalProperties": False,
    },
    "Classification": {
        "type": "object",
        "required": ["number", "dial_string", "class", "matched_pattern"],
        "properties": {
            "number": {"type": "string"},
            "dial_string": {"type": "string"},
            "class": {"enum": ["internal", "ring_group", "private_extension", "external"]},
            "matched_pattern": _NULLABLE_STR,
            "stops_recording_when_rule_off": {"type": "boolean"},
        },
    },
    "Explanation": {
        "type": "object",
        "required": ["record", "account", "direction", "number", "sources", "settings"],
        "properties": {
            "record": {"type": "boolean"},
            "account": {"type": "string"},
            "direction": {"type": "string"},
            "number": _NULLABLE_STR,
            "sources": {"type": "object", "additionalProperties": {"type": "string"}},
            "settings": {"type": "object", "properties": _SETTINGS_PROPS},
            "transfer": {
                "type": "object",
                "properties": {
                    "target": {"type": "string"},
                    "target_class": {"type": "string"},
                    "stop_recording": {"type": "boolean"},
                    "matched_pattern": _NULLABLE_STR,
                    "decided_by": {"type": "string"},
                },
            },
        },
    },
    "Share": {
        "type": "object",
        "required": ["id", "recording_id", "created_by", "created_at", "expires_at", "allow_download", "status"],
        "properties": {
            "id": {"type": "integer"},
            "recording_id": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string"},
            "expires_at": {"type": "string"},
            "allow_download": {"type": "boolean"},
            "status": {"enum": ["active", "expired", "revoked"]},
            "revoked_at": _NULLABLE_STR,
            "revoked_by": {"type": "string"},
            "opens": {"type": "integer"},
            "last_opened_at": _NULLABLE_STR,
            "token": {"type": "string", "description": "only in the answer to POST: shown once, never stored"},
            "url": {"type": "string", "description": "only in the answer to POST"},
        },
    },
    "ShareCreate": {
        "type": "object",
        "properties": {
            "expires_in_hours": {"type": "integer", "minimum": 1, "maximum": 8784},
            "allow_download": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "SharingLimits": {
        "type": "object",
        "required": ["default_hours", "max_hours", "version"],
        "properties": {
            "default_hours": {"type": "integer"},
            "max_hours": {"type": "integer"},
            "version": _VERSION,
        },
    },
    "SharingLimitsChange": {
        "type": "object",
        "properties": {
            "default_hours": {"type": "integer", "minimum": 1, "maximum": 8784},
            "max_hours": {"type": "integer", "minimum": 1, "maximum": 8784},
            "version": _VERSION,
        },
        "additionalProperties": False,
    },
    "Conflict": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "current"],
                "properties": {"code": {"const": "conflict"}, "message": {"type": "string"}, "current": _OBJ},
            }
        },
    },
    "NumberOverrideChange": {
        "type": "object",
        "properties": {
            "version": _VERSION,
            "account": {"type": "string"},
            "override": {
                "type": "object",
                "properties": {k: {"type": [v["type"], "null"]} for k, v in _SETTINGS_PROPS.items()},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "actor", "action"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "remote": {"type": "string"},
            "detail": _OBJ,
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
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
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# The audio routes (a user's and a share link's) take the same download switch and Range header.
_AUDIO_PARAMS = [
    _q("download", {"enum": ["0", "1", "true", "false"]}, "1 = download (attachment)"),
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "bytes=start-end",
    },
]


def _p(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string"},
        "description": description,
    }


_CALL_ID = _p("call_id", "Live call id")
_REC_ID = _p("rec_id", "Recording id (UUID)", {"type": "string", "format": "uuid"})
_ACCOUNT = _p("account_id", "Account id", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"})
_NUMBER = _p("number", "Phone number (E.164, e.g. +15551234567; URL-encode the +)")
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the ETag you read; a stale one gets 409 with the current values",
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the ETag of the view you have; 304 when it is still current",
}
_LIST_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "strong; changes exactly when your view does"},
    "Cache-Control": {"schema": {"type": "string"}, "description": "private, no-cache"},
}
_CONFLICT = {"409": _json({"$ref": "#/components/schemas/Conflict"}, "Changed since you loaded it")}
_SHARE_ID = _p("share_id", "Share id", {"type": "integer", "minimum": 1})
_TOKEN = _p("token", "The share link's token")
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
_AUTHED_ERRORS = (401,)


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[Any] | None = None,
    body: Any = None,
    tag: str,
    public: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = [] if public else _AUTH
    return op


def _pause_op(action: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "via": {"enum": ["api", "page"], "default": "api", "description": "how the request was made (the page: page)"}
    }
    if action == "pause":
        props["reason"] = {
            "type": "string",
            "maxLength": 64,
            "description": "optional reason code (e.g. pci), kept with the pause in the timeline and manifest",
        }
    op = _op(
        f"{action.capitalize()} the call's recording (role's pause scope; `agent`: own call where policy allows)",
        {"200": _json(_ref("LiveCall")), **_errors(401, 403, 404, 409, 422, 503)},
        params=[_CALL_ID],
        tag="calls",
    )
    schema = {"type": "object", "additionalProperties": False, "properties": props}
    op["requestBody"] = {"required": False, "content": {"application/json": {"schema": schema}}}
    return op


def build_spec() -> dict[str, Any]:
    audio_ok = {
        "description": "WAV audio (customer left, agent right)",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": _op(
                "Component health: 200 only when all is well",
                {"200": _json(_OBJ, "Healthy"), "503": _json(_OBJ, "A component is failing")},
                tag="service",
                public=True,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                tag="service",
                public=True,
            )
        },
        "/api/v1/openapi.json": {"get": _op("This document", {"200": _json(_OBJ)}, tag="service", public=True)},
        "/api/v1/me": {"get": _op("Who the token belongs to", {"200": _json(_ref("Me")), **_errors(401)}, tag="auth")},
        "/api/v1/session": {
            "post": _op(
                "Set the page's HttpOnly session cookie from the bearer token",
                {"200": _json(_ref("Me")), **_errors(401)},
                tag="auth",
            ),
            "delete": _op("Clear the session cookie", {"204": {"description": "Cleared"}, **_errors(401)}, tag="auth"),
        },
        "/api/v1/calls": {
            "get": _op(
                "Live calls you may see, with recording state, policy decision and timeline so far."
                " Poll with If-None-Match: an unchanged view is a 304 (strong ETag per view); gzip when accepted",
                {
                    "200": {
                        **_json(
                            {
                                "type": "object",
                                "required": ["calls"],
                                "properties": {"calls": {"type": "array", "items": _ref("LiveCall")}},
                            }
                        ),
                        "headers": _LIST_HEADERS,
                    },
                    "304": {"description": "Not modified: If-None-Match is the current ETag", "headers": _LIST_HEADERS},
                    **_errors(401, 503),
                },
                params=[_IF_NONE_MATCH],
                tag="calls",
            )
        },
        "/api/v1/calls/{call_id}": {
            "get": _op(
                "One live call",
                {"200": _json(_ref("LiveCall")), **_errors(401, 404, 503)},
                params=[_CALL_ID],
                tag="calls",
            )
        },
        "/api/v1/calls/{call_id}/recording/pause": {"post": _pause_op("pause")},
        "/api/v1/calls/{call_id}/recording/resume": {"post": _pause_op("resume")},
        "/api/v1/events": {
            "get": _op(
                "Server-sent events: `snapshot`, then `call.updated` / `call.ended`, only for calls you may see."
                " When users, tokens, roles or ring groups change the token is checked again: a narrowed scope"
                " gets a new `snapshot`, a revoked token a last `revoked` event, then the stream ends",
                {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 503),
                },
                tag="calls",
            )
        },
        "/api/v1/recordings": {
            "get": _op(
                "Search recordings you may see, newest first (keyset pagination)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["recordings", "next_cursor"],
                            "properties": {
                                "recordings": {"type": "array", "items": _ref("RecordingSummary")},
                                "next_cursor": _NULLABLE_STR,
                            },
                        }
                    ),
                    **_errors(400, 401),
                },
                params=[
                    _q("from", {"type": "string", "format": "date-time"}, "Started at or after (ISO 8601)"),
                    _q("to", {"type": "string", "format": "date-time"}, "Started before (ISO 8601)"),
                    _q("number", {"type": "string"}, "Customer or account number"),
                    _q("agent", {"type": "string"}, "Agent extension on any segment"),
                    _q("direction", {"enum": ["inbound", "outbound", "internal", "unknown"]}, "Call direction"),
                    _q(
                        "state",
                        {"enum": ["recording", "paused", "stopped", "stored", "failed", "orphaned"]},
                        "Recording state",
                    ),
                    _q("account", {"type": "string"}, "Account id"),
                    _q("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 50)"),
                ],
                tag="recordings",
            )
        },
        "/api/v1/recordings/{rec_id}": {
            "get": _op(
                "Recording metadata, timeline, policy explanation, events, manifest verification",
                {"200": _json(_ref("RecordingDetail")), **_errors(401, 404)},
                params=[_REC_ID],
                tag="recordings",
            )
        },
        "/api/v1/recordings/{rec_id}/audio": {
            "get": _op(
                "Decrypted WAV (HTTP Range supported); `download=1` needs download permission. Audit-logged.",
                {"200": audio_ok, "206": audio_ok, **_errors(400, 401, 403, 404, 409, 416, 502, 503)},
                params=[
                    _REC_ID,
                    *_AUDIO_PARAMS,
                ],
                tag="recordings",
            )
        },
        "/api/v1/recordings/{rec_id}/waveform": {
            "get": _op(
                "Peak amplitude per lane (customer left, agent right) for the player; needs listen permission",
                {"200": _json(_OBJ), **_errors(400, 401, 403, 404, 409, 502, 503)},
                params=[
                    _REC_ID,
                    _q("buckets", {"type": "integer", "minimum": 10, "maximum": 4000}, "Number of slices"),
                ],
                tag="recordings",
            )
        },
        "/api/v1/accounts/{account_id}/settings": {
            "get": _op(
                "Account settings (view_settings or settings right)",
                {"200": _json(_ref("AccountSettings")), **_errors(400, 401, 403, 404)},
                params=[_ACCOUNT],
                tag="settings",
            ),
            "put": _op(
                "Change account settings (settings right); any subset of the fields; creates the account if new."
                " Audited (old/new); the next call decision uses it.",
                {"200": _json(_ref("AccountSettings")), **_errors(400, 401, 403, 413, 422), **_CONFLICT},
                params=[_ACCOUNT, _IF_MATCH],
                body=_ref("SettingsChange"),
                tag="settings",
            ),
        },
        "/api/v1/numbers/{number}/override": {
            "get": _op(
                "A number's override and effective settings (view_settings or settings right)",
                {"200": _json(_ref("NumberOverride")), **_errors(400, 401, 403, 404)},
                params=[_NUMBER],
                tag="settings",
            ),
            "put": _op(
                "Set a number's override (settings right); null/absent fields inherit; a new number needs `account`",
                {"200": _json(_ref("NumberOverride")), **_errors(400, 401, 403, 413, 422), **_CONFLICT},
                params=[_NUMBER, _IF_MATCH],
                body=_ref("NumberOverrideChange"),
                tag="settings",
            ),
            "delete": _op(
                "Clear a number's override (settings right)",
                {"204": {"description": "Cleared"}, **_errors(400, 401, 403, 404, 422), **_CONFLICT},
                params=[_NUMBER, _IF_MATCH],
                tag="settings",
            ),
        },
        "/api/v1/accounts/{account_id}/numbers": {
            "get": _op(
                "The account's numbers: each override, effective value and source per field (view_settings right)",
                {"200": _json(_ref("NumberList")), **_errors(400, 401, 403, 404)},
                params=[_ACCOUNT],
                tag="settings",
            )
        },
        "/api/v1/accounts/{account_id}/numbering": {
            "get": _op(
                "The account's numbering plan (view_settings or settings right)",
                {"200": _json(_ref("NumberingPlan")), **_errors(400, 401, 403, 404)},
                params=[_ACCOUNT],
                tag="settings",
            ),
            "put": _op(
                "Replace the numbering plan (settings right); all lists empty = the default plan",
                {"200": _json(_ref("NumberingPlan")), **_errors(400, 401, 403, 404, 413, 422), **_CONFLICT},
                params=[_ACCOUNT, _IF_MATCH],
                body=_ref("NumberingPlanChange"),
                tag="settings",
            ),
        },
        "/api/v1/accounts/{account_id}/numbering/classify": {
            "get": _op(
                "Classify a dialled number with the saved plan, naming the pattern that matched",
                {"200": _json(_ref("Classification")), **_errors(400, 401, 403, 404)},
                params=[_ACCOUNT, {**_q("number", {"type": "string"}, "Dialled number"), "required": True}],
                tag="settings",
            )
        },
        "/api/v1/policy/explain": {
            "get": _op(
                "Why a call would (not) be recorded: `callrec policy explain` over HTTP (view_settings right)",
                {"200": _json(_ref("Explanation")), **_errors(400, 401, 403, 404)},
                params=[
                    {
                        **_q("direction", {"enum": ["inbound", "outbound", "internal"]}, "Call direction"),
                        "required": True,
                    },
                    {**_q("number", {"type": "string"}, "The account's number (DID or caller ID)"), "required": True},
                    _q("transfer_to", {"type": "string"}, "Also decide a transfer to this number"),
                    _q("dialplan", {"enum": ["force", "never"]}, "The dialplan hook's callrec_record"),
                    _q("account", {"type": "string"}, "Account when the number is unknown (default main)"),
                ],
                tag="settings",
            )
        },
        "/api/v1/recordings/{rec_id}/shares": {
            "get": _op(
                "Share links of the recording (settings right: all; others: their own)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["shares"],
                            "properties": {"shares": {"type": "array", "items": _ref("Share")}},
                        }
                    ),
                    **_errors(401, 403, 404),
                },
                params=[_REC_ID],
                tag="sharing",
            ),
            "post": _op(
                "Create a share link (needs listen; allow_download needs download). The token is shown once.",
                {"201": _json(_ref("Share"), "Created"), **_errors(400, 401, 403, 404, 409, 413, 422)},
                params=[_REC_ID],
                body=_ref("ShareCreate"),
                tag="sharing",
            ),
        },
        "/api/v1/recordings/{rec_id}/shares/{share_id}": {
            "delete": _op(
                "Revoke a share link (its creator or an admin); the link then answers 410",
                {"200": _json(_ref("Share")), **_errors(401, 404)},
                params=[_REC_ID, _SHARE_ID],
                tag="sharing",
            )
        },
        "/api/v1/sharing": {
            "get": _op(
                "Share link lifetimes: default and maximum hours",
                {"200": _json(_ref("SharingLimits")), **_errors(401)},
                tag="sharing",
            ),
            "put": _op(
                "Change share link lifetimes (settings right)",
                {"200": _json(_ref("SharingLimits")), **_errors(400, 401, 403, 413, 422), **_CONFLICT},
                params=[_IF_MATCH],
                body=_ref("SharingLimitsChange"),
                tag="sharing",
            ),
        },
        "/share/{token}": {
            "get": _op(
                "The shared recording's player page (no token needed); 410 once expired or revoked",
                {
                    "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "404": {"description": "No such link", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "410": {
                        "description": "Expired or revoked",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                },
                params=[_TOKEN],
                tag="sharing",
                public=True,
            )
        },
        "/share/{token}/info": {
            "get": _op(
                "What the shared player shows: when, how long, expiry, whether downloads are allowed",
                {"200": _json(_OBJ), **_errors(404, 410)},
                params=[_TOKEN],
                tag="sharing",
                public=True,
            )
        },
        "/share/{token}/audio": {
            "get": _op(
                "The shared recording's audio (HTTP Range); `download=1` only if the link allows it. Audited.",
                {"200": audio_ok, "206": audio_ok, **_errors(400, 403, 404, 409, 410, 416, 502, 503)},
                params=[
                    _TOKEN,
                    *_AUDIO_PARAMS,
                ],
                tag="sharing",
                public=True,
            )
        },
        "/api/v1/audit": {
            "get": _op(
                "Audit log, newest first (audit right)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["entries", "next_before"],
                            "properties": {
                                "entries": {"type": "array", "items": _ref("AuditEntry")},
                                "next_before": {"type": ["integer", "null"]},
                            },
                        }
                    ),
                    **_errors(400, 401, 403),
                },
                params=[
                    _q("actor", {"type": "string"}, "e.g. user:alice"),
                    _q("action", {"type": "string"}, "e.g. recording.listen, or a family: settings.*"),
                    _q("target", {"type": "string"}, "e.g. recording:<id>, account:main, number:+1555…"),
                    _q("from", {"type": "string", "format": "date-time"}, "At or after (ISO 8601)"),
                    _q("to", {"type": "string", "format": "date-time"}, "Before (ISO 8601)"),
                    _q("before", {"type": "integer", "minimum": 0}, "next_before of the previous page"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (default 100)"),
                ],
                tag="audit",
            )
        },
    }
    paths.update(openapi_access.paths(_op, _json, _ref, _errors, _p))
    paths.update(openapi_webhooks.paths(_op, _json, _ref, _errors, _p))
    return {
        "openapi": "3.1.0",
        "info": {"title": "callrec supervisor API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **openapi_access.SCHEMAS, **openapi_webhooks.SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "callrec users add prints one"}
            },
        },
        "security": _AUTH,
    }
