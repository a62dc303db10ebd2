"""Backup archives: selected recordings, still encrypted, with their signed manifests and an index.

A plain (uncompressed: ciphertext does not compress) tar:
    callrec-archive.json            index: format, filters, and one metadata entry per recording
    signing-key.pub.pem             the exporting installation's manifest key (informational: trust it
                                    only if it matches what that installation published)
    objects/YYYY/MM/DD/<id>.wav.age and <id>.manifest.json
The archive never contains plaintext or a private key. `import_archive` checks every object against
its manifest before restoring it; `verify_archive` runs the same checks as `callrec verify`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pyrage import x25519

from storage import crypto, manifest
from storage.backends.base import Backend, manifest_key_for, object_keys

INDEX = "callrec-archive.json"
PUBKEY = "signing-key.pub.pem"
FORMAT = "callrec-archive/1"
_META = (
    "id",
    "call_id",
    "pbx",
    "pbx_kind",
    "customer_leg",
    "account_id",
    "direction",
    "customer_number",
    "account_number",
    "agent",
    "agents",
    "ring_groups",
    "policy",
    "dual_channel",
    "timeline",
    "started_at",
    "stopped_at",
    "stop_reason",
    "duration_ms",
    "object_size",
    "audio_sha256",
    "ciphertext_sha256",
    "key_ids",
    "retention_until",
    "legal_hold",
    "stored_at",
)

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


async def select_for_export(
    pool: asyncpg.Pool,
    *,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    number: str = "",
    agent: str = "",
) -> list[dict[str, Any]]:
    """Stored recordings started in [start, end) (a date `end` includes that whole day)."""
    if isinstance(end, date) and not isinstance(end, datetime):
        end = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    if isinstance(start, date) and not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day, tzinfo=UTC)
    rows = await pool.fetch(
        "SELECT * FROM recordings WHERE state = 'stored'"
        " AND ($1::timestamptz IS NULL OR started_at >= $1) AND ($2::timestamptz IS NULL OR started_at < $2)"
        " AND ($3 = '' OR customer_number = $3 OR account_number = $3)"
        " AND ($4 = '' OR agent = $4 OR $4 = ANY(agents)) ORDER BY started_at, id",
        start,
        end,
        number,
        agent,
    )
    return [dict(r) for r in rows]


def export_archive(
    rows: list[dict[str, Any]],
    backend: Backend,
    out: Path,
    *,
    public_key: Ed25519PublicKey | None = None,
    filters: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the archive (to `out.part`, renamed when complete); returns the number of recordings."""
    entries: list[dict[str, Any]] = []
    for r in rows:
        audio_key = backend.key_from_uri(r["object_uri"])
        entries.append(
            {
                **{k: r.get(k) for k in _META},
                "audio_member": f"objects/{audio_key}",
                "manifest_member": f"objects/{manifest_key_for(audio_key)}",
                "_key": audio_key,
            }
        )
    index = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "filters": filters or {},
        "count": len(entries),
        "recordings": [{k: v for k, v in e.items() if k != "_key"} for e in entries],
    }
    total = sum(int(r.get("object_size") or 0) for r in rows)
    done = 0
    part = out.with_name(out.name + ".part")
    try:
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, INDEX, json.dumps(index, indent=2, default=_json_default).encode())
            if public_key is not None:
                _add_bytes(tar, PUBKEY, crypto.public_key_pem(public_key))
            for e in entries:
                doc = backend.get_bytes(manifest_key_for(e["_key"]))
                size = backend.size(e["_key"])
                with backend.open_read(e["_key"]) as src:
                    info = tarfile.TarInfo(e["audio_member"])
                    info.size, info.mtime, info.mode = size, int(time.time()), 0o600
                    tar.addfile(info, src)
                _add_bytes(tar, e["manifest_member"], doc)
                done += size
                if progress:
                    progress(done, total)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return len(entries)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))


def read_index(tar: tarfile.TarFile) -> dict[str, Any]:
    f = tar.extractfile(INDEX)
    if f is None:
        raise ValueError(f"not a callrec archive: no {INDEX}")
    index = json.loads(f.read())
    if index.get("format") != FORMAT:
        raise ValueError(f"unsupported archive format {index.get('format')!r}")
    return index


def _member(tar: tarfile.TarFile, name: str) -> BinaryIO | None:
    try:
        return tar.extractfile(name)  # type: ignore[return-value]
    except KeyError:
        return None


def verify_archive(
    path: Path,
    trusted: Ed25519PublicKey,
    identities: list[x25519.Identity] | None = None,
    *,
    only: str | None = None,
) -> Iterator[manifest.VerifyResult]:
    """Verify archive members (all, or recording `only`) exactly like stored recordings."""
    with tarfile.open(path, "r:") as tar:
        for e in read_index(tar)["recordings"]:
            if only and str(e["id"]) != only:
                continue
            mf = _member(tar, e["manifest_member"])
            doc = mf.read() if mf else None
            audio = _member(tar, e["audio_member"])
            if audio is None:
                r = manifest.VerifyResult(recording_id=str(e["id"]))
                r.failed("object", manifest.MISSING_OBJECT, f"archive member {e['audio_member']} is missing")
                yield r
                continue
            yield manifest.verify_files(audio, doc, trusted, identities, name=str(e["id"]))


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already present
    rejected: list[str] = field(default_factory=list)  # failed the integrity/signature check


async def import_archive(
    pool: asyncpg.Pool,
    backend: Backend,
    path: Path,
    *,
    trusted: Ed25519PublicKey | None = None,
    progress: Progress | None = None,
    actor: str = "cli",
) -> ImportReport:
    """Restore an archive into this installation (its database and backend). Each object is checked
    against its manifest (and the manifest's signature when `trusted` is given) before it is stored."""
    report = ImportReport()
    with tarfile.open(path, "r:") as tar:
        index = read_index(tar)
        total = sum(int(e.get("object_size") or 0) for e in index["recordings"])
        done = 0
        for e in index["recordings"]:
            rid = str(e["id"])
            done += int(e.get("object_size") or 0)
            if await pool.fetchval("SELECT 1 FROM recordings WHERE id = $1", rid):
                report.skipped.append(rid)
                continue
            mf, audio = _member(tar, e["manifest_member"]), _member(tar, e["audio_member"])
            if mf is None or audio is None:
                report.rejected.append(f"{rid}: member missing")
                continue
            doc = mf.read()
            try:
                m, sig = manifest.parse_document(doc)
            except ValueError as err:
                report.rejected.append(f"{rid}: {err}")
                continue
            if trusted is not None and not crypto.signature_valid(trusted, manifest.canonical(m), sig):
                report.rejected.append(f"{rid}: manifest signature does not verify with the given key")
                continue
            started = datetime.fromisoformat(e["started_at"])
            audio_key, manifest_key = object_keys(rid, started)
            with tempfile.NamedTemporaryFile(prefix="callrec-import-", suffix=".age") as tmp:
                h = hashlib.sha256()
                while chunk := audio.read(1 << 20):
                    h.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                if h.hexdigest() != m["ciphertext"]["sha256"] or h.hexdigest() != e["ciphertext_sha256"]:
                    report.rejected.append(f"{rid}: object does not match its manifest (sha256 {h.hexdigest()})")
                    continue
                await asyncio.to_thread(backend.put_file, audio_key, Path(tmp.name))
            await asyncio.to_thread(backend.put_bytes, manifest_key, doc)
            await _insert_row(pool, e, m, sig, backend.uri(audio_key), actor, path)
            report.imported.append(rid)
            if progress:
                progress(done, total)
    return report


async def _insert_row(
    pool: asyncpg.Pool, e: dict[str, Any], m: dict[str, Any], sig: str, uri: str, actor: str, path: Path
) -> None:
    def ts(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO recordings (id, pbx, pbx_kind, customer_leg, account_id, direction, customer_number,"
            " account_number, agent, agents, ring_groups, state, policy, dual_channel, timeline, started_at,"
            " stopped_at, stop_reason, duration_ms, object_uri, object_size, audio_sha256, ciphertext_sha256,"
            " key_ids, manifest, manifest_signature, retention_until, legal_hold, stored_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,'stored',$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,"
            " $24,$25,$26,$27,now()) ON CONFLICT (id) DO NOTHING",
            e["id"],
            e["pbx"],
            e["pbx_kind"],
            e.get("customer_leg") or "",
            e.get("account_id"),
            e.get("direction") or "unknown",
            e.get("customer_number") or "",
            e.get("account_number") or "",
            e.get("agent") or "",
            list(e.get("agents") or []),
            list(e.get("ring_groups") or []),
            e.get("policy") or {},
            bool(e.get("dual_channel", True)),
            e.get("timeline") or {},
            ts(e["started_at"]),
            ts(e.get("stopped_at")),
            e.get("stop_reason") or "",
            e.get("duration_ms"),
            uri,
            e.get("object_size"),
            e.get("audio_sha256"),
            e.get("ciphertext_sha256"),
            list(e.get("key_ids") or []),
            m,
            sig,
            ts(e["retention_until"]),
            bool(e.get("legal_hold")),
        )
        await conn.execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, 'recording.import', $2, $3)",
            actor,
            str(e["id"]),
            {"archive": str(path), "object_uri": uri},
        )
