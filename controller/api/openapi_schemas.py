"""Component schemas of the OpenAPI document (controller/api/openapi.py): the bodies the routes take
and return. Split out of openapi.py by concern; the document is unchanged."""

from __future__ import annotations

from typing import Any

from controller.policy import CHOICES, INT_RANGES, PROMPT_MAX, SETTING_FIELDS, TEXT_FIELDS

ERROR = {
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
OBJ: dict[str, Any] = {"type": "object"}
NULLABLE_STR = {"type": ["string", "null"]}
_VERSION = {"type": "string", "pattern": "^[0-9a-f]{1,64}$", "description": "send back as If-Match or `version`"}
_PLAN_KEYS = ("internal", "ring_groups", "private_extensions")

SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
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
            "segments": {"type": "array", "items": OBJ},
            "pauses": {"type": "array", "items": OBJ},
            "transfers": {"type": "array", "items": OBJ},
            "stop": {"type": ["object", "null"]},
            "consultations": {"type": "array", "items": OBJ},
            "conference": {"type": "array", "items": OBJ},
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
            "started_at": NULLABLE_STR,
            "answered_at": NULLABLE_STR,
            "recording": {
                "type": "object",
                "properties": {
                    "id": NULLABLE_STR,
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
            "call_id": NULLABLE_STR,
            "pbx": {"type": "string"},
            "account_id": NULLABLE_STR,
            "direction": {"type": "string"},
            "customer_number": {"type": "string"},
            "account_number": {"type": "string"},
            "agent": {"type": "string"},
            "agents": {"type": "array", "items": {"type": "string"}},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
            "state": {"enum": ["recording", "paused", "stopped", "stored", "failed", "orphaned"]},
            "error": {"type": "string"},
            "started_at": {"type": "string"},
            "stopped_at": NULLABLE_STR,
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
                    "policy": OBJ,
                    "timeline": OBJ,
                    "events": {"type": "array", "items": OBJ},
                    "manifest_verification": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"type": "string"}},
                    },
                    "audio_sha256": NULLABLE_STR,
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
            "matched_pattern": NULLABLE_STR,
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
            "number": NULLABLE_STR,
            "sources": {"type": "object", "additionalProperties": {"type": "string"}},
            "settings": {"type": "object", "properties": _SETTINGS_PROPS},
            "transfer": {
                "type": "object",
                "properties": {
                    "target": {"type": "string"},
                    "target_class": {"type": "string"},
                    "stop_recording": {"type": "boolean"},
                    "matched_pattern": NULLABLE_STR,
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
            "revoked_at": NULLABLE_STR,
            "revoked_by": {"type": "string"},
            "opens": {"type": "integer"},
            "last_opened_at": NULLABLE_STR,
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
                "properties": {"code": {"const": "conflict"}, "message": {"type": "string"}, "current": OBJ},
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
            "detail": OBJ,
        },
    },
}
