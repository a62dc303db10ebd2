"""Startup sweep: nothing a PBX wrote is left behind, nothing half-done stays half-done.

Run once when the service starts (before the finalize worker loop): release job claims of this node's
previous (crashed) process, adopt spool files that no journal row knows (journaled as 'orphaned' and
finalized like any recording), enqueue stopped recordings that lost their job, re-queue jobs that
failed only because the encryption config was wrong (once it is valid again), and report it all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from controller.config import Config
from storage.finalize import WORK_DIR_NAME, FinalizeWorker

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<id>[0-9a-fA-F-]{36})(?:-(?P<leg>rx|tx))?\.wav$")
DEFAULT_RETENTION_DAYS = 183


@dataclass
class SweepReport:
    released_claims: int = 0
    adopted: list[str] = field(default_factory=list)  # recording ids created for orphan files
    adopted_files: list[str] = field(default_factory=list)
    jobs_created: int = 0
    requeued_failed: int = 0
    unfinished_jobs: int = 0
    failed_jobs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"startup sweep: {len(self.adopted)} orphan recording(s) adopted from {len(self.adopted_files)} file(s), "
            f"{self.jobs_created} job(s) re-created, {self.requeued_failed} failed job(s) re-queued, "
            f"{self.released_claims} stale claim(s) released; {self.unfinished_jobs} job(s) to finish, "
            f"{self.failed_jobs} failed"
        )


def _scan_spool(spool: Path) -> dict[str, dict[str, str]]:
    """Spool WAVs grouped by recording id: {id: {"stereo"|"rx"|"tx": path}}."""
    found: dict[str, dict[str, str]] = {}
    if not spool.is_dir():
        return found
    for dirpath, dirnames, files in os.walk(spool):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != WORK_DIR_NAME]
        for name in files:
            if not name.lower().endswith(".wav") or name.startswith("."):
                continue
            path = str(Path(dirpath) / name)
            m = _NAME.match(name)
            if m:
                try:
                    rid = str(uuid.UUID(m.group("id")))
                except ValueError:
                    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, path))
                found.setdefault(rid, {})[m.group("leg") or "stereo"] = path
            else:  # a name we did not give: a stable id from its path, so a re-run adopts it once
                found.setdefault(str(uuid.uuid5(uuid.NAMESPACE_URL, path)), {})["stereo"] = path
    return found


async def _retention_days(conn: asyncpg.Connection, config: Config) -> tuple[str | None, int]:
    account = config.pbx[0].account if config.pbx else "main"
    days = await conn.fetchval("SELECT retention_days FROM accounts WHERE id = $1", account)
    return (account if days is not None else None), int(days or DEFAULT_RETENTION_DAYS)


async def adopt_orphans(pool: asyncpg.Pool, config: Config, report: SweepReport) -> None:
    groups = await asyncio.to_thread(_scan_spool, config.spool_dir)
    if not groups:
        return
    async with pool.acquire() as conn:
        known = {
            str(r["id"]) for r in await conn.fetch("SELECT id FROM recordings WHERE id = ANY($1::uuid[])", list(groups))
        }
        referenced = {
            r["p"]
            for r in await conn.fetch(
                "SELECT jsonb_array_elements_text(jsonb_path_query_array(spool_files, '$.*')) AS p FROM recordings"
                " WHERE state <> 'stored' OR id IN (SELECT recording_id FROM finalize_jobs WHERE state <> 'done')"
            )
        }
        account, days = await _retention_days(conn, config)
        pbx = config.pbx[0].name if len(config.pbx) == 1 else "unknown"
        for rid, files in sorted(groups.items()):
            if rid in known or any(p in referenced for p in files.values()):
                continue
            mtime = max(os.stat(p).st_mtime for p in files.values())
            started = datetime.fromtimestamp(mtime, UTC)
            kind = "asterisk" if ("rx" in files or "tx" in files) else "freeswitch"
            async with conn.transaction():
                inserted = await conn.fetchval(
                    "INSERT INTO recordings (id, pbx, pbx_kind, account_id, state, policy, spool_files, timeline,"
                    " started_at, stopped_at, stop_reason, retention_until, error)"
                    " VALUES ($1, $2, $3, $4, 'orphaned', $5, $6, '{}'::jsonb, $7, $7, 'orphaned', $8,"
                    " 'adopted from the spool by the startup sweep: no journal row')"
                    " ON CONFLICT (id) DO NOTHING RETURNING id",
                    rid,
                    pbx,
                    kind,
                    account,
                    {"record": True, "sources": {"record": "orphan"}, "settings": {"retention_days": days}},
                    files,
                    started,
                    started + timedelta(days=days),
                )
                if inserted is None:
                    continue
                await conn.execute(
                    "INSERT INTO recording_events (recording_id, kind, actor, detail) VALUES ($1, 'orphaned',"
                    " 'finalize', $2)",
                    rid,
                    {"files": files, "found_at": datetime.now(UTC).isoformat()},
                )
                await conn.execute("INSERT INTO finalize_jobs (recording_id) VALUES ($1) ON CONFLICT DO NOTHING", rid)
            report.adopted.append(rid)
            report.adopted_files.extend(files.values())
            log.warning("adopted orphan spool file(s) %s as recording %s", ", ".join(files.values()), rid)


async def startup_sweep(pool: asyncpg.Pool, config: Config, worker: FinalizeWorker | None = None) -> SweepReport:
    """Run the sweep (idempotent; safe with several instances) and return what it found."""
    report = SweepReport()
    if worker is not None:
        report.released_claims = await worker.release_stale_claims()
    await adopt_orphans(pool, config, report)
    async with pool.acquire() as conn:
        res = await conn.execute(
            "INSERT INTO finalize_jobs (recording_id) SELECT r.id FROM recordings r"
            " WHERE r.state IN ('stopped', 'orphaned')"
            " AND NOT EXISTS (SELECT 1 FROM finalize_jobs j WHERE j.recording_id = r.id)"
        )
        report.jobs_created = int(res.split()[-1])
        config_ok = worker is None or not worker.config_error()
        if config_ok:
            async with conn.transaction():
                ids = await conn.fetch(
                    "UPDATE finalize_jobs SET state = 'pending', attempts = 0, step = 'wait_closed',"
                    " next_attempt_at = now(), last_error = 'requeued: ' || last_error, updated_at = now()"
                    " WHERE state = 'failed' AND last_error LIKE 'encryption:%' RETURNING recording_id"
                )
                await conn.execute(
                    "UPDATE recordings SET state = 'stopped', error = '', updated_at = now()"
                    " WHERE id = ANY($1::uuid[]) AND state = 'failed'",
                    [r["recording_id"] for r in ids],
                )
            report.requeued_failed = len(ids)
        if worker is not None:  # waiting for a recipient of their account, which is usable now
            report.requeued_failed += len(await worker.requeue_no_recipient())
        counts = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'running')) AS open,"
            " count(*) FILTER (WHERE state = 'failed') AS failed FROM finalize_jobs"
        )
        report.unfinished_jobs, report.failed_jobs = counts["open"], counts["failed"]
        await conn.execute("NOTIFY callrec_finalize")
    log.info("%s", report.summary())
    return report
