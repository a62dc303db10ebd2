"""Webhook endpoints and their deliveries (the outbox rows), as stored. The secret is read here only
by `create` (returned once) and by the delivery worker's claim; every view omits it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg

_COLS = "id, account_id, url, events, description, enabled, download_link, created_at, updated_at"
_DELIVERY_COLS = (
    "id, event_id, event_type, recording_id, state, attempts, next_attempt_at, retry_until, last_status,"
    " last_error, created_at, delivered_at, payload"
)


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v is not None else None


def endpoint_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "account": r["account_id"],
        "url": r["url"],
        "events": list(r["events"]),
        "description": r["description"],
        "enabled": r["enabled"],
        "download_link": r["download_link"],
        "created_at": _iso(r["created_at"]),
        "updated_at": _iso(r["updated_at"]),
    }


def delivery_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "event_id": str(r["event_id"]),
        "event_type": r["event_type"],
        "recording_id": r["recording_id"],
        "state": r["state"],
        "attempts": r["attempts"],
        "next_attempt_at": _iso(r["next_attempt_at"]) if r["state"] == "pending" else None,
        "retry_until": _iso(r["retry_until"]),
        "last_status": r["last_status"],
        "last_error": r["last_error"],
        "created_at": _iso(r["created_at"]),
        "delivered_at": _iso(r["delivered_at"]),
        "payload": r["payload"],
    }


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def create(conn: asyncpg.Connection, fields: dict[str, Any]) -> tuple[asyncpg.Record, str]:
    secret = new_secret()
    row = await conn.fetchrow(
        f"INSERT INTO webhook_endpoints (account_id, url, events, description, enabled, secret, download_link)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLS}",
        fields["account"],
        fields["url"],
        fields["events"],
        fields.get("description", ""),
        fields.get("enabled", True),
        secret,
        fields.get("download_link", False),
    )
    assert row is not None
    return row, secret


async def list_endpoints(conn: asyncpg.Connection | asyncpg.Pool, account: str | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM webhook_endpoints WHERE $1::text IS NULL OR account_id = $1 ORDER BY id", account
    )


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: int, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLS} FROM webhook_endpoints WHERE id = $1" + (" FOR UPDATE" if lock else ""), endpoint_id
    )


async def update(conn: asyncpg.Connection, endpoint_id: int, fields: dict[str, Any]) -> asyncpg.Record:
    cols = {"account": "account_id"}
    sets = ", ".join(f"{cols.get(k, k)} = ${i + 2}" for i, k in enumerate(fields))
    row = await conn.fetchrow(
        f"UPDATE webhook_endpoints SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_COLS}",
        endpoint_id,
        *fields.values(),
    )
    assert row is not None
    return row


async def rotate_secret(conn: asyncpg.Connection, endpoint_id: int) -> str:
    secret = new_secret()
    await conn.execute(
        "UPDATE webhook_endpoints SET secret = $2, updated_at = now() WHERE id = $1", endpoint_id, secret
    )
    return secret


async def delete(conn: asyncpg.Connection, endpoint_id: int) -> None:
    await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)


async def deliveries(
    conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: int, state: str | None, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first; `before` = the last id of the previous page."""
    return await conn.fetch(
        f"SELECT {_DELIVERY_COLS} FROM webhook_outbox WHERE endpoint_id = $1"
        " AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        endpoint_id,
        state,
        before,
        limit,
    )


async def redeliver(conn: asyncpg.Connection, endpoint_id: int, delivery_id: int) -> asyncpg.Record | None:
    """A dead (or delivered) row back to pending with a fresh retry period; None when there is no such row,
    the row unchanged when it is pending already."""
    row = await conn.fetchrow(
        f"UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(), retry_until = NULL,"
        f" claimed_by = '', claimed_until = NULL, delivered_at = NULL"
        f" WHERE id = $1 AND endpoint_id = $2 AND state <> 'pending' RETURNING {_DELIVERY_COLS}",
        delivery_id,
        endpoint_id,
    )
    if row is None:
        row = await conn.fetchrow(
            f"SELECT {_DELIVERY_COLS} FROM webhook_outbox WHERE id = $1 AND endpoint_id = $2", delivery_id, endpoint_id
        )
    return row
