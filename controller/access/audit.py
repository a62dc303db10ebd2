"""Who makes an administrative change, and its audit entry (old and new value, same transaction)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage import audit


@dataclass(frozen=True)
class Who:
    actor: str  # "user:<name>" for the API, "cli:<login>" for the command line
    remote: str = ""


async def log(
    conn: asyncpg.Connection, who: Who, action: str, target: str, *, old: Any = None, new: Any = None, **extra: Any
) -> None:
    detail: dict[str, Any] = {"old": old, "new": new, **extra}
    await audit.record(conn, actor=who.actor, action=action, target=target, remote=who.remote, detail=detail)


def version_of(view: dict[str, Any]) -> str:
    """A short fingerprint of what an editor sees; a save that names an older one gets 409."""
    return hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()[:16]
