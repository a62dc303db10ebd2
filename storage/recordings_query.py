"""Recording search and detail reads: the API, `callrec recordings` and `callrec export` share them.

Keyset pagination on (started_at DESC, id DESC): every page is one index range scan whatever its
depth, so paging through millions of rows stays fast (OFFSET would rescan everything before the
page). Access scopes are applied in SQL, so a page never holds rows the caller may not see and
counts never leak.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from controller.numbering import search_forms
from storage.repo import DEFAULT_COUNTRY_KEY

if TYPE_CHECKING:
    from controller.permissions import Scope

_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

SUMMARY_COLUMNS = (
    "id, call_id, pbx, pbx_kind, account_id, direction, customer_number, account_number, agent, agents,"
    " ring_groups, state, error, started_at, stopped_at, stop_reason, duration_ms, retention_until, legal_hold,"
    " stored_at"
)
DETAIL_COLUMNS = (
    SUMMARY_COLUMNS + ", policy, dual_channel, timeline, object_uri, object_size, audio_sha256, ciphertext_sha256,"
    " key_ids, manifest, manifest_signature, updated_at"
)


DIRECTIONS = ("inbound", "outbound", "internal", "unknown")
STATES = ("recording", "paused", "stopped", "stored", "failed", "orphaned")


class BadCursor(ValueError):
    """A pagination cursor that this server did not hand out."""


@dataclass(frozen=True)
class SearchFilter:
    start: datetime | None = None  # started_at >= start
    end: datetime | None = None  # started_at < end
    numbers: tuple[str, ...] = ()  # customer or account number equals any of these
    agent: str | None = None
    direction: str | None = None
    state: str | None = None
    account: str | None = None


def encode_cursor(started_at: datetime, rec_id: uuid.UUID) -> str:
    raw = json.dumps([started_at.isoformat(), str(rec_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, rec_id = json.loads(raw)
        return datetime.fromisoformat(started), uuid.UUID(rec_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as e:
        raise BadCursor(f"cursor is not one this server handed out ({e.__class__.__name__})") from None


def scope_sql(scope: Scope | None, args: list[Any]) -> str | None:
    """A WHERE fragment limiting rows to `scope` (None = no limit), appending its parameters."""
    if scope is None or scope.all:
        return None
    parts = []
    if scope.ring_groups:
        args.append(sorted(scope.ring_groups))
        parts.append(f"ring_groups && ${len(args)}::text[]")
    if scope.agents:
        args.append(sorted(scope.agents))
        parts.append(f"agents && ${len(args)}::text[]")
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _where(f: SearchFilter, scope: Scope | None, args: list[Any]) -> list[str]:
    """The WHERE conditions of a filter and a scope, appending their parameters to `args`."""
    where: list[str] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.replace("?", f"${len(args)}"))

    if f.start is not None:
        add("started_at >= ?", f.start)
    if f.end is not None:
        add("started_at < ?", f.end)
    if f.numbers:
        args.append(list(f.numbers))
        n = len(args)
        where.append(f"(customer_number = ANY(${n}::text[]) OR account_number = ANY(${n}::text[]))")
    if f.agent:
        add("agents @> ARRAY[?]::text[]", f.agent)
    if f.direction:
        add("direction = ?", f.direction)
    if f.state:
        add("state = ?", f.state)
    if f.account:
        add("account_id = ?", f.account)
    limit_sql = scope_sql(scope, args)
    if limit_sql:
        where.append(limit_sql)
    return where


async def number_filter(conn: _Conn, raw: str) -> tuple[str, ...]:
    """`SearchFilter.numbers` for a number as a user typed it, read in the policy's default country."""
    if not raw.strip():
        return ()
    country = await conn.fetchval("SELECT value FROM app_settings WHERE key = $1", DEFAULT_COUNTRY_KEY)
    return search_forms(raw, country or "US")


async def search(
    conn: _Conn, f: SearchFilter, scope: Scope | None, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of recordings, newest first, and the cursor of the next page (None at the end)."""
    args: list[Any] = []
    where = _where(f, scope, args)
    if cursor:
        started, rec_id = decode_cursor(cursor)
        args.extend([started, rec_id])
        where.append(f"(started_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    sql = (
        f"SELECT {SUMMARY_COLUMNS} FROM recordings"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY started_at DESC, id DESC LIMIT ${len(args)}"
    )
    rows = await conn.fetch(sql, *args)
    page = rows[:limit]
    nxt = encode_cursor(page[-1]["started_at"], page[-1]["id"]) if len(rows) > limit else None
    return [_jsonable(dict(r)) for r in page], nxt


async def select_all(conn: _Conn, f: SearchFilter) -> list[dict[str, Any]]:
    """Every matching recording, whole rows, oldest first (for `callrec export`: same filter as search)."""
    args: list[Any] = []
    where = _where(f, None, args)
    sql = "SELECT * FROM recordings" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, id"
    return [dict(r) for r in await conn.fetch(sql, *args)]


async def get(conn: _Conn, rec_id: uuid.UUID, scope: Scope | None) -> dict[str, Any] | None:
    """One recording with everything about it, or None when absent OR outside `scope` (same answer;
    None = every recording, for the admin CLI)."""
    args: list[Any] = [rec_id]
    limit_sql = scope_sql(scope, args)
    sql = f"SELECT {DETAIL_COLUMNS} FROM recordings WHERE id = $1" + (f" AND {limit_sql}" if limit_sql else "")
    row = await conn.fetchrow(sql, *args)
    return _jsonable(dict(row)) if row else None


async def events(conn: _Conn, rec_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT kind, at, offset_ms, actor, detail FROM recording_events WHERE recording_id = $1 ORDER BY id", rec_id
    )
    return [_jsonable(dict(r)) for r in rows]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = v.isoformat()
        elif isinstance(v, uuid.UUID):
            d[k] = str(v)
    return d
