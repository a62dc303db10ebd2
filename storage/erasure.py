"""GDPR erasure: delete every recording of one customer number (objects, manifests, rows).

A recording on legal hold is never erased (GDPR Art. 17(3)(e): legal claims); one that is still being
recorded or finalized is refused too (its object does not exist yet; erase again once it is stored).
Every deletion leaves an audit entry with the recording id and the reason "erasure request" — the
audit log keeps THAT a recording was erased, never its content.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from storage import audit, backup, outbox
from storage.backends.base import Backend, manifest_key_for
from storage.backends.locations import StorageLocations, as_locations

log = logging.getLogger(__name__)

REASON = "erasure request"
IN_PROGRESS = ("recording", "paused", "stopped")


@dataclass
class ErasureReport:
    number: str
    dry_run: bool
    erased: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (recording id, why)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.refused or self.errors)


def _refusal(row: Any) -> str:
    if row["legal_hold"]:
        return "on legal hold: a legal hold overrides an erasure request (lift the hold first)"
    if row["state"] in IN_PROGRESS:
        return f"still in progress (state {row['state']}): erase again once it is stored"
    return ""


async def erase_number(
    pool: asyncpg.Pool,
    store: Backend | StorageLocations,
    number: str,
    *,
    dry_run: bool = False,
    actor: str = "cli:erase",
    request: str = "",
    spellings: tuple[str, ...] = (),
) -> ErasureReport:
    """Erase the recordings whose customer number is `number` (E.164, already normalized), also where
    the journal holds it in another of its `spellings` (numbering.search_forms: as the trunk gave it)."""
    report = ErasureReport(number=number, dry_run=dry_run)
    rows = await pool.fetch(
        "SELECT id, state, legal_hold FROM recordings WHERE customer_number = ANY($1::text[]) ORDER BY started_at, id",
        list(dict.fromkeys((number, *spellings))),
    )
    for r in rows:
        rid = str(r["id"])
        why = _refusal(r)
        if why:
            report.refused.append((rid, why))
        elif dry_run:
            report.erased.append(rid)
        else:
            try:
                why = await _erase_one(pool, as_locations(store), r["id"], actor, request)
            except (OSError, ValueError, asyncpg.PostgresError) as e:
                report.errors.append((rid, f"{type(e).__name__}: {e}"))
                log.warning("erasure of %s failed (nothing of it was deleted from the database): %s", rid, e)
                continue
            if why:
                report.refused.append((rid, why))
            else:
                report.erased.append(rid)
    return report


async def _erase_one(pool: asyncpg.Pool, locations: StorageLocations, rid: Any, actor: str, request: str) -> str:
    async with pool.acquire() as conn, conn.transaction():
        # Lock, then re-check: a hold set (or a finalize started) a moment ago wins over this erasure.
        row = await conn.fetchrow("SELECT * FROM recordings WHERE id = $1 FOR UPDATE", rid)
        if row is None:
            return "gone meanwhile"
        why = _refusal(row)
        if why:
            return why
        await outbox.enqueue(conn, "recording.purged", rid, {"reason": "erasure"})
        await conn.execute("DELETE FROM recordings WHERE id = $1", rid)

        def rm() -> None:
            if row["object_uri"]:
                backend = locations.for_row(row)  # the store that holds it ([storage] or its account's)
                key = backend.key_from_uri(row["object_uri"])
                backend.delete(key)  # a missing object is not an error
                backend.delete(manifest_key_for(key))
            for p in (row["spool_files"] or {}).values():  # a failed recording's plaintext, if any
                if p:
                    Path(p).unlink(missing_ok=True)

        # Objects inside the transaction: if deleting fails, the row stays and the erasure is reported
        # as an error (run it again). The audit entry comes last: the chain's lock is held briefly.
        await asyncio.to_thread(rm)
        await audit.record(
            conn,
            actor=actor,
            action="recording.erase",
            target=str(rid),
            detail={
                "reason": REASON,
                "request": request,
                "object_uri": row["object_uri"],
                "state": row["state"],
                "started_at": row["started_at"].isoformat(),
                "account": row["account_id"],
                "ciphertext_sha256": row["ciphertext_sha256"],
                # a verified backup still holding it: erase it there too (or let the backup age out)
                "backup": await backup.holding_backup(conn, rid, row["ciphertext_sha256"]),
            },
        )
    log.info("erased recording %s (%s)", rid, REASON)
    return ""
