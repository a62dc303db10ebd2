"""Backup archives: selected recordings, still encrypted, with their signed manifests and an index.

A plain (uncompressed: ciphertext does not compress) tar:
    callrec-archive.json            index: format, filters, and one metadata entry per recording
    signing-key.pub.pem             the exporting installation's manifest key (informational: import
                                    trusts it only with --trust-archive-key, which prints its fingerprint)
    objects/YYYY/MM/DD/<id>.wav.age and <id>.manifest.json
The archive never contains plaintext or a private key. `import_archive` checks every entry (signature
by a key trusted HERE, index against the signed manifest, object hash) before writing anything of it;
`verify_archive` runs the same checks as `callrec verify`.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from storage import crypto, keyring, manifest
from storage.backends.base import Backend, manifest_key_for, object_keys
from storage.backends.locations import StorageLocations, as_locations
from storage.keyring import KeyRing

INDEX = "callrec-archive.json"
PUBKEY = "signing-key.pub.pem"
SIGNING_KEYS_DIR = "signing-keys/"  # <key hex>.pub.pem: every key that signed an exported manifest
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
    store: Backend | StorageLocations,
    out: Path,
    *,
    public_key: Ed25519PublicKey | None = None,
    signer_keys: list[Ed25519PublicKey] | None = None,
    filters: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the archive (to `out.part`, renamed when complete); returns the number of recordings.
    Each recording is read from the store that holds it (`store`: the locations, or one backend)."""
    locations = as_locations(store)
    entries: list[dict[str, Any]] = []
    for r in rows:
        backend = locations.for_row(r)
        audio_key = backend.key_from_uri(r["object_uri"])
        entries.append(
            {
                **{k: r.get(k) for k in _META},
                "audio_member": f"objects/{audio_key}",
                "manifest_member": f"objects/{manifest_key_for(audio_key)}",
                "_key": audio_key,
                "_backend": backend,
            }
        )
    index = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "filters": filters or {},
        "count": len(entries),
        "recordings": [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries],
    }
    total = sum(int(r.get("object_size") or 0) for r in rows)
    done = 0
    part = out.with_name(out.name + ".part")
    try:
        # The manifests inside carry customer numbers: never world-readable, even while being written.
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, INDEX, json.dumps(index, indent=2, default=_json_default).encode())
            if public_key is not None:
                _add_bytes(tar, PUBKEY, crypto.public_key_pem(public_key))
            for k in {crypto.signing_key_id(k): k for k in signer_keys or []}.values():
                name = f"{SIGNING_KEYS_DIR}{crypto.signing_key_id(k).split(':', 1)[1]}.pub.pem"
                _add_bytes(tar, name, crypto.public_key_pem(k))
            for e in entries:
                backend = e["_backend"]
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


def archive_public_keys(tar: tarfile.TarFile) -> list[Ed25519PublicKey]:
    """The keys the archive carries about its exporter: informational, never trusted implicitly."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    names = [PUBKEY, *sorted(n for n in tar.getnames() if n.startswith(SIGNING_KEYS_DIR) and n.endswith(".pem"))]
    found: dict[str, Ed25519PublicKey] = {}
    for name in names:
        f = _member(tar, name)
        if f is None:
            continue
        try:
            key = load_pem_public_key(f.read())
        except ValueError:
            continue
        if isinstance(key, Ed25519PublicKey):
            found.setdefault(crypto.signing_key_id(key), key)
    return list(found.values())


def verify_archive(
    path: Path,
    trusted: KeyRing | Ed25519PublicKey,
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
    skipped: list[str] = field(default_factory=list)  # already present, identical
    rejected: list[str] = field(default_factory=list)  # "<id>: reason" — failed a signature/integrity check
    conflicts: list[str] = field(default_factory=list)  # "<id>: reason" — id exists here with other content

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.conflicts)


class _Rejected(Exception):
    pass


# Index fields that must equal the signed manifest (the index itself is not signed).
_SIGNED_FIELDS = {
    "id": "recording_id",
    "pbx": "pbx",
    "pbx_kind": "pbx_kind",
    "customer_leg": "customer_leg",
    "account_id": "account",
    "direction": "direction",
    "customer_number": "customer_number",
    "account_number": "account_number",
    "agent": "agent",
    "agents": "agents",
    "ring_groups": "ring_groups",
    "policy": "policy",
    "dual_channel": "dual_channel",
    "timeline": "timeline",
    "stop_reason": "stop_reason",
    "key_ids": "key_ids",
}
_SIGNED_TIMES = {"started_at": "started_at", "stopped_at": "stopped_at", "retention_until": "retention_until"}


def _ts(v: Any) -> datetime | None:
    if not v:
        return None
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def _norm(v: Any) -> str:
    return json.dumps("" if v is None else v, sort_keys=True, default=str)


def _check_entry(e: dict[str, Any], m: dict[str, Any], sig: str, ring: KeyRing) -> Ed25519PublicKey:
    """Signature with a trusted key, and the index entry agrees with the signed manifest."""
    claimed = m.get("signing_key_id")
    key = ring.get(claimed)
    if key is None:
        raise _Rejected(
            f"manifest is signed by {claimed or 'an unnamed key'}, which is not trusted (trusted: {ring.describe()});"
            " pass the exporter's key with --public-key, or list it in encryption.trusted_signing_keys"
        )
    if not crypto.signature_valid(key, manifest.canonical(m), sig):
        raise _Rejected(f"manifest signature by {claimed} does not verify: the manifest or its signature was altered")
    diffs = [k for k, mk in _SIGNED_FIELDS.items() if k in e and _norm(e[k]) != _norm(m.get(mk))]
    diffs += [k for k, mk in _SIGNED_TIMES.items() if k in e and _ts(e[k]) != _ts(m.get(mk))]
    signed_hashes = {
        "audio_sha256": (m.get("audio") or {}).get("sha256"),
        "ciphertext_sha256": (m.get("ciphertext") or {}).get("sha256"),
    }
    diffs += [k for k, want in signed_hashes.items() if k in e and e[k] != want]
    if diffs:
        raise _Rejected(f"index entry differs from the signed manifest in {', '.join(diffs)} (index altered)")
    return key


async def import_archive(
    pool: asyncpg.Pool,
    store: Backend | StorageLocations,
    path: Path,
    *,
    trusted: KeyRing,
    remember: list[tuple[Ed25519PublicKey, str]] | None = None,
    progress: Progress | None = None,
    actor: str = "cli",
) -> ImportReport:
    """Restore an archive into this installation (its database and, per recording, the store of its
    account: [accounts.<id>.storage] or [storage]; a WORM store locks it until its retention date).

    Every entry is checked before anything of it is written: its manifest must be signed by a key in
    `trusted` (the key the manifest names), the index entry must agree with the signed manifest, and
    the object's SHA-256 must be the signed one. An id that exists here already is "already present"
    only when manifest and object are identical; otherwise it is a conflict and nothing is touched.
    `remember`: (key, how) the operator trusted explicitly for this import; each is stored (audited)
    when a recording it signed is imported, so that `verify` keeps working afterwards."""
    report = ImportReport()
    with tarfile.open(path, "r:") as tar:
        index = read_index(tar)
        total = sum(int(e.get("object_size") or 0) for e in index["recordings"])
        done = 0
        for e in index["recordings"]:
            rid = str(e.get("id"))
            done += int(e.get("object_size") or 0)
            try:
                outcome = await _import_one(pool, as_locations(store), tar, e, trusted, remember or [], actor, path)
            except _Rejected as err:
                report.rejected.append(f"{rid}: {err}")
                continue
            except _Conflict as err:
                report.conflicts.append(f"{rid}: {err}")
                continue
            (report.imported if outcome == "imported" else report.skipped).append(rid)
            if progress:
                progress(done, total)
    return report


class _Conflict(Exception):
    pass


async def _import_one(
    pool: asyncpg.Pool,
    locations: StorageLocations,
    tar: tarfile.TarFile,
    e: dict[str, Any],
    ring: KeyRing,
    remember: list[tuple[Ed25519PublicKey, str]],
    actor: str,
    path: Path,
) -> str:
    rid = str(e.get("id"))
    mf, audio = _member(tar, str(e.get("manifest_member"))), _member(tar, str(e.get("audio_member")))
    if mf is None:
        raise _Rejected(f"archive member {e.get('manifest_member')} (manifest) is missing")
    if audio is None:
        raise _Rejected(f"archive member {e.get('audio_member')} (audio) is missing")
    doc = mf.read()
    try:
        m, sig = manifest.parse_document(doc)
    except ValueError as err:
        raise _Rejected(f"manifest is unreadable: {err}") from None
    if str(m.get("recording_id")) != rid:
        raise _Rejected(f"the manifest in this entry is for recording {m.get('recording_id')}, not {rid}")
    key = _check_entry(e, m, sig, ring)
    started = _ts(m["started_at"])
    assert started is not None
    audio_key, manifest_key = object_keys(rid, started)
    location, backend = locations.for_account(m.get("account"))
    retain_until = _ts(m.get("retention_until")) if backend.worm else None  # WORM: locked as when first stored
    hold = bool(e.get("legal_hold")) and retain_until is not None
    with tempfile.NamedTemporaryFile(prefix="callrec-import-", suffix=".age") as tmp:
        h, size = hashlib.sha256(), 0
        while chunk := audio.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
            tmp.write(chunk)
        tmp.flush()
        want = (m.get("ciphertext") or {}).get("sha256")
        if h.hexdigest() != want:
            raise _Rejected(f"audio object sha256 {h.hexdigest()} is not the signed {want} (audio was altered)")
        async with pool.acquire() as conn, conn.transaction():
            # One importer per id at a time; the existing row decides identical vs conflict.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('callrec-import:' || $1))", rid)
            existing = await conn.fetchrow(
                "SELECT manifest, manifest_signature, ciphertext_sha256 FROM recordings WHERE id = $1", rid
            )
            if existing is not None:
                return _compare_existing(existing, m, sig, h.hexdigest())
            written: list[str] = []
            try:
                await asyncio.to_thread(
                    lambda: backend.put_file(audio_key, Path(tmp.name), retain_until=retain_until, legal_hold=hold)
                )
                written.append(audio_key)
                await asyncio.to_thread(
                    lambda: backend.put_bytes(manifest_key, doc, retain_until=retain_until, legal_hold=hold)
                )
                written.append(manifest_key)
                signer = crypto.signing_key_id(key)
                for trusted_key, how in remember:
                    if crypto.signing_key_id(trusted_key) == signer:
                        await keyring.trust_key(conn, trusted_key, source=how, actor=actor)
                await _insert_row(conn, e, m, sig, size, backend.uri(audio_key), actor, path)
                await conn.execute(
                    "UPDATE recordings SET storage_location = $2, object_locked_until = $3 WHERE id = $1",
                    m["recording_id"],
                    location,
                    retain_until,
                )
            except BaseException:
                for k in written:  # the row is not there: leave no object behind either
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(backend.delete, k)
                raise
    return "imported"


def _compare_existing(existing: Any, m: dict[str, Any], sig: str, cipher_sha256: str) -> str:
    diffs = []
    if existing["ciphertext_sha256"] != cipher_sha256:
        diffs.append(f"audio object sha256 {cipher_sha256} here is {existing['ciphertext_sha256']}")
    if existing["manifest"] is None or manifest.canonical(existing["manifest"]) != manifest.canonical(m):
        diffs.append("the signed manifest differs from the stored one")
    elif existing["manifest_signature"] != sig:
        diffs.append("the manifest signature differs from the stored one")
    if diffs:
        raise _Conflict(
            "CONFLICT: this id exists here with different content (" + "; ".join(diffs) + "); nothing changed"
        )
    return "skipped"


async def _insert_row(
    conn: asyncpg.Connection,
    e: dict[str, Any],
    m: dict[str, Any],
    sig: str,
    size: int,
    uri: str,
    actor: str,
    path: Path,
) -> None:
    """The row comes from the SIGNED manifest; only legal hold (a state, not content) from the index."""
    await conn.execute(
        "INSERT INTO recordings (id, pbx, pbx_kind, customer_leg, account_id, direction, customer_number,"
        " account_number, agent, agents, ring_groups, state, policy, dual_channel, timeline, started_at,"
        " stopped_at, stop_reason, duration_ms, object_uri, object_size, audio_sha256, ciphertext_sha256,"
        " key_ids, manifest, manifest_signature, signing_key_id, retention_until, legal_hold, stored_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,'stored',$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,"
        " $24,$25,$26,$27,$28,now())",
        m["recording_id"],
        m["pbx"],
        m["pbx_kind"],
        m.get("customer_leg") or "",
        m.get("account"),
        m.get("direction") or "unknown",
        m.get("customer_number") or "",
        m.get("account_number") or "",
        m.get("agent") or "",
        list(m.get("agents") or []),
        list(m.get("ring_groups") or []),
        m.get("policy") or {},
        bool(m.get("dual_channel", True)),
        m.get("timeline") or {},
        _ts(m["started_at"]),
        _ts(m.get("stopped_at")),
        m.get("stop_reason") or "",
        (m.get("audio") or {}).get("duration_ms"),
        uri,
        size,
        (m.get("audio") or {}).get("sha256"),
        (m.get("ciphertext") or {}).get("sha256"),
        list(m.get("key_ids") or []),
        m,
        sig,
        m.get("signing_key_id"),
        _ts(m["retention_until"]),
        bool(e.get("legal_hold")),
    )
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, 'recording.import', $2, $3)",
        actor,
        str(m["recording_id"]),
        {"archive": str(path), "object_uri": uri, "signing_key_id": m.get("signing_key_id")},
    )
