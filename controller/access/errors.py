"""What a service call can refuse, independent of HTTP (the API maps them to 422 / 404 / 403 / 409)."""

from __future__ import annotations

from typing import Any


class AccessError(Exception):
    def __init__(self, message: str, **extra: Any) -> None:
        self.message = message
        self.extra = extra
        super().__init__(message)


class Invalid(AccessError):
    """Bad input; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFound(AccessError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")


class Forbidden(AccessError):
    """The caller may make this kind of change, but not this one (it would grant more than they hold)."""


class Conflict(AccessError):
    """The change contradicts the current state (e.g. deleting a role that users still have)."""
