"""OpenAPI paths and schemas of the access resources: roles, users (and tokens), ring groups.

Kept apart from openapi.py so each resource's description lives with its kind; build_spec merges it.
"""

from __future__ import annotations

from typing import Any

from controller.permissions import RIGHTS

SCOPE_DOC = (
    "all | none | comma list of: ring_group (calls through the user's own ring groups), agent (calls the user"
    " handled on their extension), ring_group:<id>, agent:<ext>"
)
_SCOPE = {"type": "string", "maxLength": 2000, "description": SCOPE_DOC}
_RIGHTS = {"type": "array", "items": {"enum": list(RIGHTS)}, "uniqueItems": True}
_ROLE_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"}
_GROUP_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.+@-]{0,99}$"}
_TS = {"type": ["string", "null"]}
_VERSION_OUT = {"type": "string", "description": "Send back as If-Match (or `version`) to get 409 if it changed"}
_VERSION_IN = {"type": "string", "pattern": "^[0-9a-f]{1,64}$", "description": "The version you loaded"}

_ROLE_FIELDS: dict[str, Any] = {
    "description": {"type": "string", "maxLength": 500},
    "view": {
        **_SCOPE,
        "description": "Calls seen (metadata, live state) besides those listened to or downloaded. " + SCOPE_DOC,
    },
    "listen": {**_SCOPE, "description": "Recordings the user may play. " + SCOPE_DOC},
    "download": {**_SCOPE, "description": "Recordings the user may download. " + SCOPE_DOC},
    "pause": {
        **_SCOPE,
        "description": "Live calls (among those seen) the user may pause/resume; the `agent` term is"
        " agent-initiated pause: own call, only where the account or number allows agent pause. " + SCOPE_DOC,
    },
    "rights": {
        **_RIGHTS,
        "description": "view_settings: read account settings and number overrides; settings: change them;"
        " users: users, tokens, ring groups; roles: roles; audit: read the audit log",
    },
}

SCHEMAS: dict[str, Any] = {
    "Role": {
        "type": "object",
        "required": ["name", "description", "builtin", "view", "listen", "download", "pause", "rights", "users"],
        "properties": {
            "name": {"type": "string"},
            "builtin": {"type": "boolean"},
            "users": {"type": "integer", "description": "How many users have this role"},
            "version": _VERSION_OUT,
            **_ROLE_FIELDS,
        },
    },
    "RoleCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": _ROLE_NAME, **_ROLE_FIELDS},
        "additionalProperties": False,
    },
    "RoleChange": {
        "type": "object",
        "properties": {**_ROLE_FIELDS, "version": _VERSION_IN},
        "additionalProperties": False,
    },
    "User": {
        "type": "object",
        "required": ["id", "name", "role", "agent_ext", "ring_groups", "disabled", "active_tokens"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "role": {"type": "string"},
            "agent_ext": {"type": "string"},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean"},
            "active_tokens": {"type": "integer"},
            "created_at": _TS,
            "version": _VERSION_OUT,
        },
    },
    "Token": {
        "type": "object",
        "required": ["id", "created_at", "last_used_at", "revoked"],
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string"},
            "last_used_at": _TS,
            "revoked": {"type": "boolean"},
        },
    },
    "UserCreate": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^\\S+$"},
            "role": {"type": "string"},
            "agent_ext": {"type": "string", "maxLength": 64},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "UserChange": {
        "type": "object",
        "properties": {
            "role": {"type": "string"},
            "agent_ext": {"type": "string", "maxLength": 64},
            "ring_groups": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean", "description": "A disabled user's tokens are refused until enabled again"},
            "version": _VERSION_IN,
        },
        "additionalProperties": False,
    },
    "RingGroup": {
        "type": "object",
        "required": ["id", "name", "members"],
        "properties": {
            "id": {"type": "string", "description": "The value the dialplan hook sets as ring_group"},
            "name": {"type": "string"},
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "agent_ext"],
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "agent_ext": {"type": "string"},
                    },
                },
            },
        },
    },
    "RingGroupCreate": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": _GROUP_ID,
            "name": {"type": "string", "maxLength": 200},
            "members": {"type": "array", "items": {"type": "integer"}, "description": "User ids"},
        },
        "additionalProperties": False,
    },
    "RingGroupChange": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "members": {"type": "array", "items": {"type": "integer"}, "description": "User ids (replaces)"},
        },
        "additionalProperties": False,
    },
}


def paths(op: Any, json: Any, ref: Any, errors: Any, param: Any) -> dict[str, Any]:
    """The access routes, built with openapi.py's helpers (passed in to avoid an import cycle)."""
    name = param("name", "Role name", _ROLE_NAME)
    uid = param("user_id", "User id", {"type": "integer", "minimum": 1})
    tid = param("token_id", "Token id", {"type": "integer", "minimum": 1})
    gid = param("group_id", "Ring group id", _GROUP_ID)

    def listing(key: str, schema: str) -> dict[str, Any]:
        return json({"type": "object", "required": [key], "properties": {key: {"type": "array", "items": ref(schema)}}})

    created_user = {
        "type": "object",
        "required": ["user", "token"],
        "properties": {"user": ref("User"), "token": {"type": "string", "description": "Shown once"}},
    }
    user_detail = {
        "allOf": [ref("User"), {"type": "object", "properties": {"tokens": {"type": "array", "items": ref("Token")}}}]
    }
    new_token = {
        "allOf": [ref("Token"), {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}]
    }
    return {
        "/api/v1/roles": {
            "get": op(
                "Roles with their scopes, rights and user counts (roles right)",
                {"200": listing("roles", "Role"), **errors(401, 403)},
                tag="access",
            ),
            "post": op(
                "Create a role; unset fields get the defaults (listen all, download none, nothing else)",
                {"201": json(ref("Role")), **errors(400, 401, 403, 409, 413, 422)},
                body=ref("RoleCreate"),
                tag="access",
            ),
        },
        "/api/v1/roles/{name}": {
            "get": op(
                "One role (roles right)",
                {"200": json(ref("Role")), **errors(401, 403, 404)},
                params=[name],
                tag="access",
            ),
            "put": op(
                "Change a role (any subset of fields); its users' rights change with their next request",
                {"200": json(ref("Role")), **errors(400, 401, 403, 404, 409, 413, 422)},
                params=[name],
                body=ref("RoleChange"),
                tag="access",
            ),
            "delete": op(
                "Delete a custom role no user has (409 otherwise, and for built-in roles)",
                {"204": {"description": "Deleted"}, **errors(401, 403, 404, 409)},
                params=[name],
                tag="access",
            ),
        },
        "/api/v1/users": {
            "get": op(
                "Users (users right); never tokens", {"200": listing("users", "User"), **errors(401, 403)}, tag="access"
            ),
            "post": op(
                "Create a user; the answer holds their first token, shown once",
                {"201": json(created_user), **errors(400, 401, 403, 409, 413, 422)},
                body=ref("UserCreate"),
                tag="access",
            ),
        },
        "/api/v1/users/{user_id}": {
            "get": op(
                "One user with their tokens' ids and use (never the tokens)",
                {"200": json(user_detail), **errors(401, 403, 404)},
                params=[uid],
                tag="access",
            ),
            "put": op(
                "Change a user's role, extension, ring groups or disabled flag",
                {"200": json(ref("User")), **errors(400, 401, 403, 404, 409, 413, 422)},
                params=[uid],
                body=ref("UserChange"),
                tag="access",
            ),
        },
        "/api/v1/users/{user_id}/tokens": {
            "post": op(
                "Issue a further token (shown once)",
                {"201": json(new_token), **errors(401, 403, 404, 409)},
                params=[uid],
                tag="access",
            ),
        },
        "/api/v1/users/{user_id}/tokens/{token_id}": {
            "delete": op(
                "Revoke one token",
                {"200": json(ref("Token")), **errors(401, 403, 404)},
                params=[uid, tid],
                tag="access",
            ),
        },
        "/api/v1/ring-groups": {
            "get": op(
                "Ring groups and their members (users right)",
                {"200": listing("ring_groups", "RingGroup"), **errors(401, 403)},
                tag="access",
            ),
            "post": op(
                "Create a ring group (id = the dialplan's ring_group value)",
                {"201": json(ref("RingGroup")), **errors(400, 401, 403, 409, 413, 422)},
                body=ref("RingGroupCreate"),
                tag="access",
            ),
        },
        "/api/v1/ring-groups/{group_id}": {
            "get": op(
                "One ring group", {"200": json(ref("RingGroup")), **errors(401, 403, 404)}, params=[gid], tag="access"
            ),
            "put": op(
                "Rename a ring group or replace its members",
                {"200": json(ref("RingGroup")), **errors(400, 401, 403, 404, 413, 422)},
                params=[gid],
                body=ref("RingGroupChange"),
                tag="access",
            ),
            "delete": op(
                "Delete a ring group (its members lose it)",
                {"204": {"description": "Deleted"}, **errors(401, 403, 404)},
                params=[gid],
                tag="access",
            ),
        },
        "/api/v1/ring-groups/{group_id}/members/{user_id}": {
            "put": op(
                "Add a member",
                {"200": json(ref("RingGroup")), **errors(401, 403, 404)},
                params=[gid, uid],
                tag="access",
            ),
            "delete": op(
                "Remove a member",
                {"200": json(ref("RingGroup")), **errors(401, 403, 404)},
                params=[gid, uid],
                tag="access",
            ),
        },
    }
