"""Who makes an administrative change, and its audit entry (old and new value, same transaction)."""

from __future__ import annotations

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
