"""The OpenAPI 3.1 description of every route (served at /api/v1/openapi.json).

Written by hand next to the routes it describes; tests/api run schemathesis against it, so a route
that drifts from its description fails the build. Parts by concern: openapi_common (helpers, shared
parameters), openapi_schemas (component schemas), openapi_calls (live calls), openapi_access (roles,
users, ring groups), openapi_webhooks. The helpers are imported under their old private names, so
the routes below read as they did before the split.
"""

from __future__ import annotations

from typing import Any

from controller.api import openapi_access, openapi_calls, openapi_webhooks
from controller.api.openapi_common import ACCOUNT as _ACCOUNT
from controller.api.openapi_common import AUDIO_PARAMS as _AUDIO_PARAMS
from controller.api.openapi_common import AUTH as _AUTH
from controller.api.openapi_common import CONFLICT as _CONFLICT
from controller.api.openapi_common import IF_MATCH as _IF_MATCH
from controller.api.openapi_common import NUMBER as _NUMBER
from controller.api.openapi_common import REC_ID as _REC_ID
from controller.api.openapi_common import SHARE_ID as _SHARE_ID
from controller.api.openapi_common import TOKEN as _TOKEN
from controller.api.openapi_common import errors as _errors
from controller.api.openapi_common import json_body as _json
from controller.api.openapi_common import op as _op
from controller.api.openapi_common import path_param as _p
from controller.api.openapi_common import query_param as _q
from controller.api.openapi_common import ref as _ref
from controller.api.openapi_schemas import NULLABLE_STR as _NULLABLE_STR
from controller.api.openapi_schemas import OBJ as _OBJ
from controller.api.openapi_schemas import SCHEMAS


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
        **openapi_calls.paths(),
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
