"""The audit log: who listened to, downloaded or changed what, when and from where.

Append-only by construction: the table refuses UPDATE and DELETE (a trigger in 001), and this
module only inserts and reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


async def record(
    conn: _Conn, *, actor: str, action: str, target: str = "", remote: str = "", detail: dict[str, Any] | None = None
) -> int:
    """Append one entry; returns its id."""
    return int(
        await conn.fetchval(
            "INSERT INTO audit_log (actor, action, target, remote, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            actor,
            action,
            target,
            remote,
            detail or {},
        )
    )


async def read(
    conn: _Conn,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; page on with `before_id` = the last id seen. `action` ending in `.*` matches a
    family (`settings.*`); `since` is inclusive, `until` exclusive."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("actor", actor), ("action", action), ("target", target)):
        if not value:
            continue
        if column == "action" and value.endswith(".*"):
            args.append(value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where.append(f"action LIKE ${len(args)}")
        else:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if since is not None:
        args.append(since)
        where.append(f"at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"at < ${len(args)}")
    if before_id is not None:
        args.append(before_id)
        where.append(f"id < ${len(args)}")
    args.append(limit)
    sql = (
        "SELECT id, at, actor, action, target, remote, detail FROM audit_log"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY id DESC LIMIT ${len(args)}"
    )
    rows = await conn.fetch(sql, *args)
    return [{**dict(r), "at": r["at"].isoformat()} for r in rows]
