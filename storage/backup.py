"""Scheduled backups: export archives of a rolling window into a backup store, verified after upload.

Each run selects the stored recordings that started in the last `backup.window_days` days, writes an
export archive (the same format as `callrec export`: ciphertext and signed manifests only, never
plaintext), stores it in the backup location (local directory, S3 or WebDAV: `[backup.storage]`),
reads it back from there and verifies every entry (manifest signature with a trusted key, ciphertext
hash), and only then records the run as `verified` with one `backup_members` row per recording.
Purge can require that (`retention.require_verified_backup`): a recording is deleted only while a
verified backup holds exactly its ciphertext, and the purge's audit entry names that backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from controller.metrics import Metrics
from storage import archive, audit, crypto, keyring
from storage.backends.base import Backend, open_backend
from storage.backends.locations import StorageLocations

log = logging.getLogger(__name__)

BACKUP_LOCK_KEY = 0x63726261636B  # "crback": one backup run at a time across instances
ARCHIVE_PREFIX = "callrec-backups"


class BackupError(Exception):
    """A backup run failed; the run is recorded as failed with this reason."""


@dataclass
class BackupRun:
    id: int
    state: str
    window_from: datetime
    window_to: datetime
    destination: str = ""
    recordings: int = 0
    archive_sha256: str = ""
    archive_size: int = 0
    error: str = ""
    problems: list[str] = field(default_factory=list)


def backup_backend(config: Any) -> Backend:
    """The backup location (`[backup.storage]`)."""
    st = config.backup.storage
    if st is None:
        raise BackupError("no backup location configured ([backup.storage])")
    return open_backend(st, Path(config.state_dir) / "backups")


def archive_key(run_id: int, window_from: datetime, window_to: datetime) -> str:
    span = f"{window_from:%Y%m%dT%H%M}-{window_to:%Y%m%dT%H%M}"
    return f"{ARCHIVE_PREFIX}/{window_to:%Y/%m}/callrec-backup-{run_id:06d}-{span}.tar"


async def run_backup(
    pool: asyncpg.Pool,
    config: Any,
    *,
    locations: StorageLocations | None = None,
    destination: Backend | None = None,
    now: datetime | None = None,
    node: str = "",
    metrics: Metrics | None = None,
) -> BackupRun | None:
    """One backup run of the rolling window ending now. None when another instance is running one."""
    locations = locations or StorageLocations.from_config(config)
    now = now or datetime.now(UTC)
    window_from = now - timedelta(days=config.backup.window_days)
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", BACKUP_LOCK_KEY):
            log.info("backup: another instance is running one; skipped")
            return None
        try:
            run_id = await pool.fetchval(
                "INSERT INTO backup_runs (window_from, window_to, node) VALUES ($1, $2, $3) RETURNING id",
                window_from,
                now,
                node,
            )
            run = BackupRun(run_id, "running", window_from, now)
            try:
                await _run(pool, config, locations, destination, run)
            except Exception as e:  # recorded, never raised into the scheduler
                run.state, run.error = "failed", f"{type(e).__name__}: {e}"
                log.error("backup run %d failed: %s", run.id, run.error)
                await pool.execute(
                    "UPDATE backup_runs SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1",
                    run.id,
                    run.error[:2000],
                )
            if metrics is not None:
                metrics.inc("callrec_backup_runs_total", state=run.state)
                if run.state == "verified":
                    metrics.set("callrec_backup_last_verified_timestamp", datetime.now(UTC).timestamp())
            return run
        finally:
            await lock_conn.fetchval("SELECT pg_advisory_unlock($1)", BACKUP_LOCK_KEY)


async def _run(
    pool: asyncpg.Pool, config: Any, locations: StorageLocations, destination: Backend | None, run: BackupRun
) -> None:
    dest = destination or backup_backend(config)
    rows = await archive.select_for_export(pool, start=run.window_from, end=run.window_to)
    trusted = await keyring.load_keyring(pool, config)
    key = archive_key(run.id, run.window_from, run.window_to)
    work = Path(config.state_dir) / "backup-work"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    pub = None
    with contextlib.suppress(crypto.KeyFileError, OSError):
        pub = crypto.load_public_key(config.signing_key_path)
    local = work / f"run-{run.id}.tar"
    back = work / f"run-{run.id}.readback.tar"
    try:
        filters = {"from": run.window_from.isoformat(), "to": run.window_to.isoformat(), "backup_run": run.id}
        used = {(r.get("manifest") or {}).get("signing_key_id") for r in rows}
        signers = [k for kid in sorted(i for i in used if i) if (k := trusted.get(kid)) is not None]
        count = await asyncio.to_thread(
            archive.export_archive, rows, locations, local, public_key=pub, signer_keys=signers, filters=filters
        )
        sha = await asyncio.to_thread(_sha256, local)
        size = local.stat().st_size
        await asyncio.to_thread(dest.put_file, key, local)
        # Verify what the backup store holds, not what we meant to send.
        await asyncio.to_thread(dest.get_file, key, back)
        got = await asyncio.to_thread(_sha256, back)
        if got != sha:
            raise BackupError(f"archive read back from {dest.uri(key)} has sha256 {got}, wrote {sha}")
        results = await asyncio.to_thread(lambda: list(archive.verify_archive(back, trusted)))
        bad = [f"{r.recording_id}: {r.summary()}" for r in results if not r.ok]
        if bad or len(results) != count:
            run.problems = bad
            raise BackupError(f"archive in the backup store does not verify: {'; '.join(bad) or 'entries missing'}")
    finally:
        local.unlink(missing_ok=True)
        back.unlink(missing_ok=True)
        local.with_name(local.name + ".part").unlink(missing_ok=True)
    run.state, run.destination, run.recordings = "verified", dest.uri(key), count
    run.archive_sha256, run.archive_size = sha, size
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO backup_members (run_id, recording_id, ciphertext_sha256) VALUES ($1, $2, $3)",
            [(run.id, r["id"], r["ciphertext_sha256"]) for r in rows],
        )
        await conn.execute(
            "UPDATE backup_runs SET state = 'verified', finished_at = now(), destination = $2, archive_sha256 = $3,"
            " archive_size = $4, recordings = $5 WHERE id = $1",
            run.id,
            run.destination,
            sha,
            size,
            count,
        )
        await audit.record(
            conn,
            actor="backup",
            action="backup.run",
            target=run.destination,
            detail={
                "run": run.id,
                "recordings": count,
                "sha256": sha,
                "from": run.window_from.isoformat(),
                "to": run.window_to.isoformat(),
            },
        )
    log.info("backup run %d verified: %d recording(s) in %s", run.id, count, run.destination)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def holding_backup(conn: Any, recording_id: Any, ciphertext_sha256: str | None) -> dict[str, Any] | None:
    """The newest verified backup that holds exactly this recording's ciphertext, or None."""
    if not ciphertext_sha256:
        return None
    r = await conn.fetchrow(
        "SELECT b.id, b.destination, b.finished_at FROM backup_members m JOIN backup_runs b ON b.id = m.run_id"
        " WHERE m.recording_id = $1 AND m.ciphertext_sha256 = $2 AND b.state = 'verified'"
        " ORDER BY b.finished_at DESC LIMIT 1",
        recording_id,
        ciphertext_sha256,
    )
    if r is None:
        return None
    return {"run": r["id"], "archive": r["destination"], "verified_at": r["finished_at"].isoformat()}


class BackupScheduler:
    """Runs `run_backup` on the configured cron schedule (apscheduler)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Any,
        metrics: Metrics | None = None,
        *,
        node: str = "",
        locations: StorageLocations | None = None,
    ) -> None:
        self.pool, self.config, self.node = pool, config, node
        self.metrics = metrics or Metrics()
        self.locations = locations or StorageLocations.from_config(config)
        self.last_run: BackupRun | None = None
        self._scheduler: Any = None
        self.metrics.describe("callrec_backup_runs_total", "counter", "Backup runs, by final state")
        self.metrics.describe("callrec_backup_last_verified_timestamp", "gauge", "When the last backup verified")

    def start(self, *, trigger: Any = None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.cron import CronTrigger

        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self.run_now,
            trigger or CronTrigger.from_crontab(self.config.backup.schedule, timezone=UTC),
            max_instances=1,
            coalesce=True,
            id="callrec-backup",
        )
        self._scheduler.start()

    async def run_now(self) -> BackupRun | None:
        run = await run_backup(self.pool, self.config, locations=self.locations, node=self.node, metrics=self.metrics)
        self.last_run = run or self.last_run
        return run

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
