"""The permission model lives in controller/permissions.py (pure; importable without the API)."""

from controller.permissions import (  # noqa: F401
    ALL,
    NONE,
    RIGHTS,
    Principal,
    Role,
    Scope,
    ScopeError,
    call_parties,
    parse_scope,
    pause_mode,
    sees_call,
)
