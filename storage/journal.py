"""The recording journal: every write the recorder makes to calls / recordings / recording_events /
finalize_jobs, in one place, so the contract (common brief, "Journal") is enforced by one module.

A row exists from the moment the start command is sent; the stop moves it to 'stopped' and enqueues
the finalize job in the SAME transaction (which notifies callrec_finalize at commit), and only from
an open state, so a recording is closed exactly once even when two controllers (a killed one and its
successor) race for it. The writes the recorder makes for every call (open, timeline change, stop,
end) are each ONE statement (data-modifying CTEs): one round trip instead of five to seven, which was
most of the service's event-loop time under call load (issue #15).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage import outbox

OPEN_STATES = ("recording", "paused")
_WEBHOOK_KINDS = {"pause": "recording.paused", "resume": "recording.resumed"}


@contextlib.asynccontextmanager
async def _acquire(pool: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the pool, or the connection itself (the recorder may hold one for its writes)."""
    if isinstance(pool, asyncpg.Pool):
        async with pool.acquire() as conn:
            yield conn
    else:
        yield pool


def _ts(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


@dataclass(frozen=True)
class CallRow:
    id: str
    pbx: str
    pbx_call_id: str
    account_id: str
    direction: str
    customer_number: str
    account_number: str
    agent: str
    ring_group: str
    started_wall: float
    answered_wall: float | None


@dataclass(frozen=True)
class RecordingRow:
    id: str
    pbx: str
    pbx_kind: str
    customer_leg: str
    account_id: str
    direction: str
    customer_number: str
    account_number: str
    agent: str
    policy: dict[str, Any]
    dual_channel: bool
    spool_files: dict[str, str]
    timeline: dict[str, Any]
    started_wall: float
    retention_days: int


def _call_params(call: CallRow) -> tuple[Any, ...]:
    """$1..$11 of both calls-row writes, in the column order of their INSERT."""
    return (
        call.id,
        call.pbx,
        call.pbx_call_id,
        call.account_id,
        call.direction,
        call.customer_number,
        call.account_number,
        call.agent,
        call.ring_group,
        _ts(call.started_wall),
        _ts(call.answered_wall) if call.answered_wall else None,
    )


async def upsert_call(conn: asyncpg.Connection | asyncpg.Pool, call: CallRow) -> str:
    """Insert the call (or return the id of the row the same PBX call already has)."""
    return str(
        await conn.fetchval(
            """
            INSERT INTO calls (id, pbx, pbx_call_id, account_id, direction, customer_number, account_number,
                               agent, ring_group, started_at, answered_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (pbx, pbx_call_id) DO UPDATE
                SET agent = EXCLUDED.agent, answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at)
            RETURNING id
            """,
            *_call_params(call),
        )
    )


# One statement, one round trip (the recorder writes this for every call, issue #15): the calls row
# (or the id the same PBX call already has), the recordings row and the 'start' event, atomically. The
# guard keeps it from writing anything when a webhook endpoint of the account wants recording.started:
# then the event is built in Python inside one transaction with the rows (_open_with_webhook).
_OPEN = """
WITH quiet AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM webhook_endpoints e
        WHERE e.enabled AND e.account_id = $4::text AND 'recording.started' = ANY(e.events)) AS ok
), c AS (
    INSERT INTO calls (id, pbx, pbx_call_id, account_id, direction, customer_number, account_number,
                       agent, ring_group, started_at, answered_at)
    SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text,
           $10::timestamptz, $11::timestamptz
    FROM quiet WHERE ok
    ON CONFLICT (pbx, pbx_call_id) DO UPDATE
        SET agent = EXCLUDED.agent, answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at)
    RETURNING id
), r AS (
    INSERT INTO recordings (id, call_id, pbx, pbx_kind, customer_leg, account_id, direction,
        customer_number, account_number, agent, agents, ring_groups, state, policy, dual_channel,
        spool_files, timeline, started_at, retention_until)
    SELECT $12::uuid, c.id, $2::text, $13::text, $14::text, $4::text, $5::text, $6::text, $7::text, $8::text,
           $15::text[], $16::text[], 'recording', $17::jsonb, $18::boolean, $19::jsonb, $20::jsonb,
           $21::timestamptz, $22::timestamptz
    FROM c
    RETURNING id
), ev AS (
    INSERT INTO recording_events (recording_id, kind, at, offset_ms, actor, detail)
    SELECT r.id, 'start', $21::timestamptz, 0, 'policy', $23::jsonb FROM r
)
SELECT (SELECT id FROM c) AS call_id, (SELECT ok FROM quiet) AS ok
"""


async def open_recording(pool: asyncpg.Pool | asyncpg.Connection, call: CallRow, rec: RecordingRow) -> str:
    """calls row + recordings row (state 'recording') + the 'start' event, atomically (one statement;
    with a webhook endpoint listening, one transaction that also writes the event to the outbox).
    Returns the calls.id actually used."""
    started = _ts(rec.started_wall)
    row = await pool.fetchrow(
        _OPEN,
        *_call_params(call),
        rec.id,
        rec.pbx_kind,
        rec.customer_leg,
        [rec.agent] if rec.agent else [],
        [call.ring_group] if call.ring_group else [],
        rec.policy,
        rec.dual_channel,
        rec.spool_files,
        rec.timeline,
        started,
        started + timedelta(days=rec.retention_days),
        {"policy": rec.policy, "spool_files": rec.spool_files},
    )
    if row is not None and row["ok"]:
        return str(row["call_id"])
    return await _open_with_webhook(pool, call, rec)


async def _open_with_webhook(pool: asyncpg.Pool | asyncpg.Connection, call: CallRow, rec: RecordingRow) -> str:
    """open_recording for an account whose webhook endpoint wants recording.started."""
    async with _acquire(pool) as conn, conn.transaction():
        call_id = await upsert_call(conn, call)
        started = _ts(rec.started_wall)
        await conn.execute(
            """
            INSERT INTO recordings (id, call_id, pbx, pbx_kind, customer_leg, account_id, direction,
                customer_number, account_number, agent, agents, ring_groups, state, policy, dual_channel,
                spool_files, timeline, started_at, retention_until)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'recording', $13, $14, $15, $16, $17, $18)
            """,
            rec.id,
            call_id,
            rec.pbx,
            rec.pbx_kind,
            rec.customer_leg,
            rec.account_id,
            rec.direction,
            rec.customer_number,
            rec.account_number,
            rec.agent,
            [rec.agent] if rec.agent else [],
            [call.ring_group] if call.ring_group else [],
            rec.policy,
            rec.dual_channel,
            rec.spool_files,
            rec.timeline,
            started,
            started + timedelta(days=rec.retention_days),
        )
        await conn.execute(
            "INSERT INTO recording_events (recording_id, kind, at, offset_ms, actor, detail)"
            " VALUES ($1, 'start', $2, 0, 'policy', $3)",
            rec.id,
            started,
            {"policy": rec.policy, "spool_files": rec.spool_files},
        )
        await outbox.enqueue(conn, "recording.started", rec.id)
    return call_id


_EVENT = """
WITH ev AS (
    INSERT INTO recording_events (recording_id, kind, at, offset_ms, actor, detail)
    VALUES ($1::uuid, $2::text, $3::timestamptz, $4::bigint, $5::text, $6::jsonb)
), u AS (
    UPDATE recordings SET timeline = $7::jsonb, state = COALESCE($8::text, state),
        agents = COALESCE($9::text[], agents), updated_at = now()
    WHERE id = $1::uuid AND state IN ('recording', 'paused')
    RETURNING id
)
SELECT count(*) FROM u
"""


async def record_event(
    pool: asyncpg.Pool | asyncpg.Connection,
    recording_id: str,
    kind: str,
    *,
    wall: float,
    offset_ms: int,
    actor: str,
    detail: dict[str, Any],
    timeline: dict[str, Any],
    state: str | None = None,
    agents: list[str] | None = None,
) -> None:
    """One timeline change (pause, resume, segment, transfer): the event row + the timeline so far
    (so a controller that adopts the recording after a restart continues the same timeline). One
    statement; pause and resume, which may have webhook events, one transaction with the outbox."""
    if kind not in _WEBHOOK_KINDS:
        await pool.fetchval(_EVENT, recording_id, kind, _ts(wall), offset_ms, actor, detail, timeline, state, agents)
        return
    async with _acquire(pool) as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO recording_events (recording_id, kind, at, offset_ms, actor, detail)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            recording_id,
            kind,
            _ts(wall),
            offset_ms,
            actor,
            detail,
        )
        res = await conn.execute(
            """
            UPDATE recordings SET timeline = $2, state = COALESCE($3, state),
                agents = COALESCE($4, agents), updated_at = now()
            WHERE id = $1 AND state IN ('recording', 'paused')
            """,
            recording_id,
            timeline,
            state,
            agents,
        )
        if kind in _WEBHOOK_KINDS and res.endswith(" 1"):
            await outbox.enqueue(conn, _WEBHOOK_KINDS[kind], recording_id, {"pause": detail})


_STOP = """
WITH u AS (
    UPDATE recordings SET state = 'stopped', stopped_at = $2::timestamptz, stop_reason = $3::text,
        timeline = $4::jsonb,
        duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM ($2::timestamptz - started_at)) * 1000)::bigint),
        updated_at = now()
    WHERE id = $1::uuid AND state IN ('recording', 'paused')
    RETURNING id
), ev AS (
    INSERT INTO recording_events (recording_id, kind, at, offset_ms, actor, detail)
    SELECT id, 'stop', $2::timestamptz, $5::bigint, $6::text, $7::jsonb FROM u
), job AS (
    INSERT INTO finalize_jobs (recording_id) SELECT id FROM u ON CONFLICT (recording_id) DO NOTHING
)
SELECT id, pg_notify('callrec_finalize', '') FROM u
"""


async def stop_recording(
    pool: asyncpg.Pool | asyncpg.Connection,
    recording_id: str,
    *,
    wall: float,
    reason: str,
    timeline: dict[str, Any],
    actor: str = "pbx",
) -> bool:
    """Close the recording once: state 'stopped' + the 'stop' event + the finalize job, one statement
    (so one transaction), which notifies callrec_finalize at its commit. Returns False when it was
    already closed (nothing written)."""
    stop = timeline.get("stop") or {}
    row = await pool.fetchrow(
        _STOP, recording_id, _ts(wall), reason, timeline, int(stop.get("at_ms") or 0), actor, {"reason": reason}
    )
    return row is not None


async def fail_recording(pool: asyncpg.Pool, recording_id: str, *, wall: float, error: str) -> None:
    """The PBX refused the start: visibly failed with the reason, never silently gone."""
    async with _acquire(pool) as conn, conn.transaction():
        res = await conn.execute(
            "UPDATE recordings SET state = 'failed', error = $2, stopped_at = $3, stop_reason = 'pbx',"
            " updated_at = now() WHERE id = $1 AND state IN ('recording', 'paused')",
            recording_id,
            error,
            _ts(wall),
        )
        if res.endswith(" 1"):
            await outbox.enqueue(conn, "recording.failed", recording_id)
        await conn.execute(
            "INSERT INTO recording_events (recording_id, kind, at, actor, detail) VALUES ($1, 'error', $2, 'pbx', $3)",
            recording_id,
            _ts(wall),
            {"error": error},
        )


async def end_call(pool: asyncpg.Pool | asyncpg.Connection, call_id: str, *, wall: float, reason: str) -> None:
    await pool.execute(
        "UPDATE calls SET state = 'ended', ended_at = $2, end_reason = $3 WHERE id = $1 AND state = 'live'",
        call_id,
        _ts(wall),
        reason,
    )


async def legs_with_ended_recordings(pool: asyncpg.Pool, pbx: str, legs: list[str]) -> set[str]:
    """Customer legs (of `legs`) whose recording already ended — stopped at an external transfer, by a
    stop command, or finalized. A resync must not decide those calls again: that would record the
    customer with an external party the rule said not to record."""
    rows = await pool.fetch(
        "SELECT DISTINCT customer_leg FROM recordings"
        " WHERE pbx = $1 AND customer_leg = ANY($2::text[]) AND state NOT IN ('recording', 'paused')",
        pbx,
        legs,
    )
    return {r["customer_leg"] for r in rows}


async def open_recordings(pool: asyncpg.Pool, pbx: str) -> list[asyncpg.Record]:
    """Recordings this node still has open (recording / paused): adopted or closed after a resync."""
    return await pool.fetch(
        """
        SELECT r.*, EXTRACT(EPOCH FROM r.started_at) AS started_epoch, c.ring_group AS call_ring_group,
               c.started_at AS call_started_at, c.answered_at AS call_answered_at
        FROM recordings r LEFT JOIN calls c ON c.id = r.call_id
        WHERE r.pbx = $1 AND r.state IN ('recording', 'paused')
        ORDER BY r.started_at
        """,
        pbx,
    )
