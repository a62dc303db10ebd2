"""The audit log: who listened to, downloaded or changed what, when and from where.

Append-only by construction: the table refuses UPDATE and DELETE (a trigger in 001), and this
module only inserts and reads. Tamper-evident on top of that (migration 004): each entry carries the
hash of the previous one and its own hash, computed by a trigger in the database under one row lock
(so every code path and every instance chains, in commit order). Someone with the power to bypass
the trigger and edit or delete rows breaks the chain, and `verify_chain` names the first broken entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


@dataclass
class ChainReport:
    ok: bool
    entries: int  # entries checked and found good, in chain order
    head_seq: int
    head_hash: str
    broken: str = ""  # the first broken entry and why
    broken_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHAIN_SQL = (
    "SELECT id, seq, prev_hash, hash,"
    " audit_entry_hash(id, seq, prev_hash, at, actor, action, target, remote, detail) AS computed"
    " FROM audit_log WHERE seq IS NOT NULL ORDER BY seq"
)


async def verify_chain(conn: asyncpg.Connection) -> ChainReport:
    """Recompute the chain in seq order (streamed: constant memory on millions of entries)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one consistent snapshot
        return await _verify_chain(conn)


async def _verify_chain(conn: asyncpg.Connection) -> ChainReport:
    head = await conn.fetchrow("SELECT seq, hash FROM audit_chain_head")
    if head is None:
        return ChainReport(False, 0, 0, "", "the chain head (audit_chain_head) is missing")
    unchained = await conn.fetchval("SELECT min(id) FROM audit_log WHERE seq IS NULL OR hash IS NULL")
    good, prev_hash, prev_id, expect = 0, "", None, 1

    def broken(entry_id: int | None, why: str) -> ChainReport:
        return ChainReport(False, good, head["seq"], head["hash"], why, entry_id)

    async for r in conn.cursor(_CHAIN_SQL, prefetch=1000):
        at = f"entry id {r['id']} (seq {r['seq']})"
        if r["seq"] != expect:
            after = f"after entry id {prev_id}" if prev_id is not None else "at the start of the log"
            missing = f"seq {expect}" if r["seq"] == expect + 1 else f"seq {expect}..{r['seq'] - 1}"
            return broken(r["id"], f"{at}: the entries {missing} {after} are missing (deleted)")
        if r["prev_hash"] != prev_hash:
            return broken(
                r["id"],
                f"{at}: its link to the previous entry (id {prev_id}) does not match — that entry was"
                " altered or replaced",
            )
        if r["computed"] != r["hash"]:
            return broken(r["id"], f"{at}: its content no longer matches its hash (entry altered)")
        good, prev_hash, prev_id, expect = good + 1, r["hash"], r["id"], expect + 1
    if unchained is not None:
        return broken(unchained, f"entry id {unchained} is outside the chain (inserted with the chain trigger off)")
    if head["seq"] > good:
        return broken(
            None,
            f"the chain ends at seq {good} (entry id {prev_id}) but its head says seq {head['seq']}:"
            " the newest entries were deleted",
        )
    if head["seq"] != good or head["hash"] != prev_hash:
        good -= 1
        return broken(
            prev_id, f"entry id {prev_id} (seq {good + 1}), the newest, is not the one the chain head recorded"
        )
    return ChainReport(True, good, head["seq"], head["hash"])
