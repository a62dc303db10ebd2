"""Retention purge: delete recordings past their retention date (object, manifest, row), never under legal hold.

The retention date is fixed on the row when the recording is created, so a later settings change only
affects new recordings. Each purge leaves an append-only audit_log entry (what, when, which object,
which hashes) — the row is gone, the evidence that it existed and was deleted on schedule is not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from controller.config import Config
from controller.metrics import Metrics
from storage import audit, backup, outbox
from storage.backends.base import Backend, BackendError, ObjectMissing, manifest_key_for
from storage.backends.locations import StorageLocations, as_locations

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    dry_run: bool
    candidates: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    held: int = 0  # expired but under legal hold
    locked: list[str] = field(default_factory=list)  # "<id>: why" — the store's WORM lock is still in force
    not_backed_up: list[str] = field(default_factory=list)  # kept: no verified backup holds it (required)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def purge_expired(
    pool: asyncpg.Pool,
    store: Backend | StorageLocations,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "retention",
    progress: Callable[[int, int], None] | None = None,
    require_backup: bool = False,
) -> PurgeReport:
    """Purge every stored recording whose retention date has passed and that is not on legal hold, from
    the store that holds it (`store`: the installation's locations, or one backend)."""
    now = now or datetime.now(UTC)
    locations = as_locations(store)
    report = PurgeReport(dry_run=dry_run)
    rows = await pool.fetch(
        "SELECT id FROM recordings WHERE retention_until < $1 AND NOT legal_hold AND state = 'stored'"
        " ORDER BY retention_until",
        now,
    )
    report.held = await pool.fetchval("SELECT count(*) FROM recordings WHERE retention_until < $1 AND legal_hold", now)
    report.candidates = [str(r["id"]) for r in rows]
    if dry_run:
        return report
    total = len(rows)
    for i, r in enumerate(rows, 1):
        try:
            outcome = await _purge_one(pool, locations, r["id"], now, actor, require_backup)
            if outcome == PURGED:
                report.purged.append(str(r["id"]))
            elif outcome == NOT_BACKED_UP:
                report.not_backed_up.append(str(r["id"]))
            elif outcome:
                report.locked.append(f"{r['id']}: {outcome}")
                log.info("purge of %s skipped: %s", r["id"], outcome)
        except (BackendError, OSError, ValueError, asyncpg.PostgresError) as e:
            report.errors.append(f"{r['id']}: {e}")
            log.warning("purge of %s failed (will retry next run): %s", r["id"], e)
        if progress:
            progress(i, total)
    return report


PURGED = "purged"
NOT_BACKED_UP = "not in a verified backup"


def worm_lock(backend: Backend, row: Any, key: str) -> str:
    """Why the store would refuse deleting this recording's objects now ("" when it would not): the
    lock written with it, then what the store itself says (a lock is never tried early)."""
    now = datetime.now(UTC)  # the store's locks run on real time, whatever date a purge is run for
    if row["object_locked_until"] is not None and row["object_locked_until"] > now:
        return f"WORM-locked until {row['object_locked_until'].isoformat()}"
    if not backend.worm:
        return ""
    for k in (key, manifest_key_for(key)):
        try:
            state = backend.lock_state(k)
        except ObjectMissing:
            continue
        why = state.locked_at(now) if state else ""
        if why:
            return f"{k} is {why}"
    return ""


async def _purge_one(
    pool: asyncpg.Pool, locations: StorageLocations, rid: Any, now: datetime, actor: str, require_backup: bool = False
) -> str:
    """PURGED, "" (nothing to do any more), or why the store's WORM lock keeps it."""
    async with pool.acquire() as conn, conn.transaction():
        # Lock the row, then re-check: a legal hold set a moment ago must win over this purge.
        row = await conn.fetchrow(
            "SELECT * FROM recordings WHERE id = $1 AND retention_until < $2 AND NOT legal_hold FOR UPDATE", rid, now
        )
        if row is None:
            return ""
        held_by = await backup.holding_backup(conn, rid, row["ciphertext_sha256"])
        if require_backup and held_by is None:
            return NOT_BACKED_UP
        if row["object_uri"]:
            backend = locations.for_row(row)
            key = backend.key_from_uri(row["object_uri"])
            locked = await asyncio.to_thread(worm_lock, backend, row, key)
            if locked:
                return locked

            def rm() -> None:
                backend.delete(key)
                backend.delete(manifest_key_for(key))

            await asyncio.to_thread(rm)
        await outbox.enqueue(conn, "recording.purged", rid, {"reason": "retention"})
        await conn.execute("DELETE FROM recordings WHERE id = $1", rid)
        await conn.execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, 'recording.purge', $2, $3)",
            actor,
            str(rid),
            {
                "reason": "retention",
                "backup": held_by,  # the verified backup that still holds it, or None
                "object_uri": row["object_uri"],
                "retention_until": row["retention_until"].isoformat(),
                "started_at": row["started_at"].isoformat(),
                "audio_sha256": row["audio_sha256"],
                "ciphertext_sha256": row["ciphertext_sha256"],
                "account": row["account_id"],
            },
        )
    log.info("purged recording %s (retention until %s)", rid, row["retention_until"])
    return PURGED


@dataclass
class HoldResult:
    recording_id: str
    on: bool
    in_store: bool  # also applied as the store's own legal hold (S3 Object Lock)


async def set_legal_hold(
    pool: asyncpg.Pool,
    store: Backend | StorageLocations,
    recording_id: str,
    on: bool,
    *,
    actor: str,
    reason: str = "",
) -> HoldResult:
    """Place or lift a legal hold: on the row (purge and erasure refuse it) and, in a WORM store, as
    the store's own legal hold on the audio and its manifest. Both or neither: a store that refuses
    leaves the row unchanged. Audited."""
    try:
        uuid.UUID(str(recording_id))
    except ValueError:
        raise LookupError(f"no recording {recording_id!r} (not a recording id)") from None
    locations = as_locations(store)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM recordings WHERE id = $1 FOR UPDATE", recording_id)
        if row is None:
            raise LookupError(f"no recording {recording_id}")
        await conn.execute("UPDATE recordings SET legal_hold = $2, updated_at = now() WHERE id = $1", recording_id, on)
        in_store = False
        if row["object_uri"]:
            backend = locations.for_row(row)
            if backend.worm:
                key = backend.key_from_uri(row["object_uri"])

                def apply() -> None:
                    backend.set_legal_hold(key, on)
                    backend.set_legal_hold(manifest_key_for(key), on)

                await asyncio.to_thread(apply)
                in_store = True
        await audit.record(
            conn,
            actor=actor,
            action="recording.legal_hold",
            target=str(recording_id),
            detail={"on": on, "reason": reason, "object_uri": row["object_uri"], "store_legal_hold": in_store},
        )
    log.info("legal hold %s on recording %s (%s)", "placed" if on else "lifted", recording_id, reason)
    return HoldResult(str(recording_id), on, in_store)


class RetentionScheduler:
    """Runs `purge_expired` on an apscheduler interval (retention.purge_interval_minutes)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Config,
        metrics: Metrics | None = None,
        *,
        backend: Backend | StorageLocations | None = None,
        interval_seconds: float | None = None,
    ) -> None:
        self.pool, self.config = pool, config
        self.metrics = metrics or Metrics()
        self.locations = as_locations(backend) if backend is not None else StorageLocations.from_config(config)
        self.interval = interval_seconds or config.retention.purge_interval_minutes * 60.0
        self.last_report: PurgeReport | None = None
        self._scheduler: Any = None
        self.metrics.describe("callrec_retention_purged_total", "counter", "Recordings deleted by retention")
        self.metrics.describe("callrec_retention_held", "gauge", "Expired recordings kept by a legal hold")

    def start(self, *, first_run_in: float = 5.0) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self.run_now,
            "interval",
            seconds=self.interval,
            next_run_time=datetime.now(UTC) + timedelta(seconds=first_run_in),
            max_instances=1,
            coalesce=True,
            id="callrec-retention-purge",
        )
        self._scheduler.start()

    async def run_now(self) -> PurgeReport:
        report = await purge_expired(
            self.pool, self.locations, require_backup=self.config.retention.require_verified_backup
        )
        self.last_report = report
        self.metrics.inc("callrec_retention_purged_total", len(report.purged))
        self.metrics.set("callrec_retention_held", report.held)
        return report

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
