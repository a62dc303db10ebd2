"""Webhook events into the durable outbox, inside the caller's transaction.

Every call site is one line in the transaction that makes the change (journal, finalize, retention):
the event row commits or rolls back with it, so an endpoint never hears of a change that did not
happen and never misses one that did. With no enabled endpoint for the account and event, nothing
is written (one indexed lookup). Delivery is storage/webhook_delivery.py's job, never the caller's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

EVENTS = (
    "recording.started",
    "recording.paused",
    "recording.resumed",
    "recording.stored",
    "recording.failed",
    "recording.purged",
)

_ROW = """
SELECT r.id, r.call_id, r.account_id, r.pbx, r.direction, r.customer_number, r.account_number, r.agent,
       r.agents, r.ring_groups, r.state, r.error, r.started_at, r.stopped_at, r.stop_reason, r.duration_ms,
       r.object_size, r.audio_sha256, r.ciphertext_sha256, r.key_ids, r.manifest, r.retention_until, r.stored_at
FROM recordings r
WHERE r.id = $1::uuid AND EXISTS (
    SELECT 1 FROM webhook_endpoints e WHERE e.enabled AND e.account_id = r.account_id AND $2 = ANY(e.events))
"""


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v is not None else None


def _summary(r: asyncpg.Record) -> dict[str, Any]:
    """What every event says about the recording: who, when, how long."""
    return {
        "recording_id": str(r["id"]),
        "call_id": str(r["call_id"]) if r["call_id"] else None,
        "account": r["account_id"],
        "pbx": r["pbx"],
        "direction": r["direction"],
        "state": r["state"],
        "parties": {
            "customer_number": r["customer_number"],
            "account_number": r["account_number"],
            "agent": r["agent"],
            "agents": list(r["agents"] or []),
            "ring_groups": list(r["ring_groups"] or []),
        },
        "started_at": _iso(r["started_at"]),
        "stopped_at": _iso(r["stopped_at"]),
        "duration_ms": r["duration_ms"],
    }


def _stored(r: asyncpg.Record) -> dict[str, Any]:
    m = r["manifest"] or {}
    return {
        "stored_at": _iso(r["stored_at"]),
        "stop_reason": r["stop_reason"],
        "retention_until": _iso(r["retention_until"]),
        "manifest": {
            "format": m.get("format"),
            "audio_sha256": r["audio_sha256"],
            "ciphertext_sha256": r["ciphertext_sha256"],
            "size": r["object_size"],
            "key_ids": list(r["key_ids"] or []),
            "signing_key_id": m.get("signing_key_id"),
            "pauses": len((m.get("timeline") or {}).get("pauses") or []),
        },
        # Filled per delivery attempt for endpoints that opted in (storage/webhook_links.py); never stored.
        "download_url": None,
        "download_expires_at": None,
    }


async def enqueue(
    conn: asyncpg.Connection, event_type: str, recording_id: Any, detail: dict[str, Any] | None = None
) -> str | None:
    """Write `event_type` about the recording to the outbox of every enabled endpoint of its account
    that subscribed to it; returns the event id (None when nobody listens). Call it inside the
    transaction of the change, after the change (the payload reads the row as changed)."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    row = await conn.fetchrow(_ROW, str(recording_id), event_type)
    if row is None:
        return None
    data = _summary(row)
    if event_type == "recording.stored":
        data.update(_stored(row))
    elif event_type == "recording.failed":
        data["error"] = row["error"]
    elif event_type == "recording.purged":
        data["retention_until"] = _iso(row["retention_until"])
    data.update(detail or {})
    event_id = str(uuid.uuid4())
    payload = {"id": event_id, "type": event_type, "created_at": datetime.now(UTC).isoformat(), "data": data}
    await conn.execute(
        "INSERT INTO webhook_outbox (event_id, endpoint_id, event_type, recording_id, payload)"
        " SELECT $1::uuid, e.id, $2, $3, $4::jsonb FROM webhook_endpoints e"
        " WHERE e.enabled AND e.account_id = $5 AND $2 = ANY(e.events) ORDER BY e.id",
        event_id,
        event_type,
        str(recording_id),
        payload,
        row["account_id"],
    )
    return event_id
