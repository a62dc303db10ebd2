"""The signed manifest: what a recording is (ids, parties, policy, timeline, hashes, keys), Ed25519-signed.

The signature covers the canonical JSON of the manifest (sorted keys, no spaces, UTF-8), so the
database's jsonb copy, the stored `.manifest.json` and an archive member all verify the same way.
Verification says exactly WHAT does not match: a tampered manifest, a manifest signed by another key,
a stored object whose bytes changed, an identity that is not a recipient, or audio whose hash differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyrage import x25519

from storage import crypto
from storage.keyring import KeyRing, load_keyring

FORMAT = "callrec-manifest/1"

# Problem kinds (stable strings: the API and the CLI show them).
TAMPERED_MANIFEST = "tampered_manifest"
WRONG_SIGNING_KEY = "wrong_signing_key"
TAMPERED_AUDIO = "tampered_audio"
WRONG_KEY = "wrong_key"
MISSING_OBJECT = "missing_object"
ROW_MISMATCH = "row_mismatch"
MALFORMED = "malformed_manifest"


def canonical(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(v)


def build(
    row: Mapping[str, Any],
    *,
    pbx_call_id: str,
    audio: Mapping[str, Any],
    enc: crypto.EncryptResult,
    object_key: str,
    signing_key_id: str,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest of a finalized recording (row = its `recordings` row)."""
    policy = row.get("policy") or {}
    return {
        "format": FORMAT,
        "recording_id": str(row["id"]),
        "call_id": str(row["call_id"]) if row.get("call_id") else None,
        "pbx": row["pbx"],
        "pbx_kind": row["pbx_kind"],
        "pbx_call_id": pbx_call_id,
        "customer_leg": row.get("customer_leg") or "",
        "account": row.get("account_id"),
        "direction": row.get("direction") or "unknown",
        "customer_number": row.get("customer_number") or "",
        "account_number": row.get("account_number") or "",
        "agent": row.get("agent") or "",
        "agents": list(row.get("agents") or []),
        "ring_groups": list(row.get("ring_groups") or []),
        "policy": policy,
        "dual_channel": bool(row.get("dual_channel", True)),
        "timeline": row.get("timeline") or {},
        "started_at": _iso(row.get("started_at")),
        "stopped_at": _iso(row.get("stopped_at")),
        "stop_reason": row.get("stop_reason") or "",
        "retention_until": _iso(row.get("retention_until")),
        "audio": dict(audio),
        "ciphertext": {"format": "age", "sha256": enc.cipher_sha256, "size": enc.cipher_size},
        "key_ids": list(enc.key_ids),
        "object_key": object_key,
        "signing_key_id": signing_key_id,
        "finalized_at": _iso(datetime.now(UTC)),
        "warnings": list(warnings or []),
    }


def sign(manifest: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    return crypto.sign(key, canonical(manifest))


def document(manifest: Mapping[str, Any], signature: str) -> bytes:
    """The stored `.manifest.json` file: the manifest and its detached signature."""
    doc = {"manifest": manifest, "signature": signature, "algorithm": "ed25519"}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"


def parse_document(data: bytes) -> tuple[dict[str, Any], str]:
    try:
        doc = json.loads(data)
        manifest, signature = doc["manifest"], doc["signature"]
        if not isinstance(manifest, dict) or not isinstance(signature, str):
            raise TypeError("wrong types")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a callrec manifest document ({e})") from None
    return manifest, signature


@dataclass
class VerifyResult:
    """What `verify` found. `ok` only when every check that could run passed."""

    recording_id: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    decrypted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def passed(self, name: str, detail: str) -> None:
        self.checks.append({"check": name, "ok": True, "detail": detail})

    def failed(self, name: str, kind: str, detail: str) -> None:
        self.checks.append({"check": name, "ok": False, "detail": detail})
        self.problems.append({"kind": kind, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        head = f"recording {self.recording_id}: " + ("OK" if self.ok else "FAILED")
        lines = [head] + [f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}: {c['detail']}" for c in self.checks]
        return "\n".join(lines)


def check_signature(
    result: VerifyResult, manifest: Mapping[str, Any], signature: str, trusted: KeyRing | Ed25519PublicKey
) -> None:
    """Check the signature with the trusted key the manifest names (its `signing_key_id` is signed too)."""
    ring = trusted if isinstance(trusted, KeyRing) else KeyRing.of(trusted)
    claimed = manifest.get("signing_key_id")
    key = ring.get(claimed)
    if key is None and not claimed and len(ring) == 1:
        key = ring.get(ring.ids()[0])  # a manifest that names no key: try the only trusted one
    if key is None:
        result.failed(
            "manifest signature",
            WRONG_SIGNING_KEY,
            f"manifest is signed by {claimed or 'an unnamed key'}, which is not a trusted key"
            f" (trusted: {ring.describe()}): foreign key or forged",
        )
    elif crypto.signature_valid(key, canonical(manifest), signature):
        result.passed("manifest signature", f"valid, signed by {crypto.signing_key_id(key)}")
    else:
        result.failed(
            "manifest signature",
            TAMPERED_MANIFEST,
            f"manifest content does not match its signature by {crypto.signing_key_id(key)}"
            " (manifest or signature was altered)",
        )


def check_object(
    result: VerifyResult,
    manifest: Mapping[str, Any],
    stream: BinaryIO,
    identities: list[x25519.Identity] | None,
) -> None:
    """Hash the stored ciphertext and, given identities, decrypt it and hash the audio — one pass."""
    expected_cipher = (manifest.get("ciphertext") or {}).get("sha256", "")
    expected_audio = (manifest.get("audio") or {}).get("sha256", "")
    cipher_hash = _TeeHash(stream)
    if identities:
        sink = _NullWriter()
        try:
            plain = crypto.decrypt_stream(cipher_hash, sink, identities)  # type: ignore[arg-type]
        except crypto.WrongKeyError:
            ids = ", ".join(crypto.identity_key_ids(identities))
            result.failed(
                "decrypt",
                WRONG_KEY,
                f"identity {ids} is not a recipient of this recording (encrypted to {manifest.get('key_ids')})",
            )
            cipher_hash.drain()
            plain = None
        except crypto.CorruptCiphertext as e:
            result.failed("decrypt", TAMPERED_AUDIO, f"ciphertext fails authentication ({e}): stored object altered")
            cipher_hash.drain()
            plain = None
        else:
            result.decrypted = True
            result.passed("decrypt", "decrypted with identity " + ", ".join(crypto.identity_key_ids(identities)))
        if plain is not None:
            if plain == expected_audio:
                result.passed("audio sha256", f"{plain} matches the manifest")
            else:
                result.failed(
                    "audio sha256", TAMPERED_AUDIO, f"decrypted audio is {plain}, manifest says {expected_audio}"
                )
    else:
        cipher_hash.drain()
    got = cipher_hash.h.hexdigest()
    if got == expected_cipher:
        result.passed("ciphertext sha256", f"{got} matches the manifest")
    else:
        result.failed("ciphertext sha256", TAMPERED_AUDIO, f"stored object is {got}, manifest says {expected_cipher}")


def check_row(result: VerifyResult, manifest: Mapping[str, Any], row: Mapping[str, Any]) -> None:
    """The database row must agree with its signed manifest (a DB edit is tampering too)."""
    diffs = []
    pairs = (
        ("audio_sha256", (manifest.get("audio") or {}).get("sha256")),
        ("ciphertext_sha256", (manifest.get("ciphertext") or {}).get("sha256")),
        ("id", manifest.get("recording_id")),
    )
    for col, want in pairs:
        if row.get(col) is not None and str(row.get(col)) != str(want):
            diffs.append(f"{col}={row.get(col)} vs manifest {want}")
    if row.get("signing_key_id") and row.get("signing_key_id") != manifest.get("signing_key_id"):
        diffs.append(f"signing_key_id={row.get('signing_key_id')} vs manifest {manifest.get('signing_key_id')}")
    if sorted(row.get("key_ids") or []) != sorted(manifest.get("key_ids") or []):
        diffs.append(f"key_ids={list(row.get('key_ids') or [])} vs manifest {manifest.get('key_ids')}")
    if diffs:
        result.failed("database row", ROW_MISMATCH, "; ".join(diffs))
    else:
        result.passed("database row", "agrees with the manifest")


class _TeeHash:
    """A reader that hashes what passes through it (the ciphertext, while it is being decrypted)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.h = f, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.h.update(b)
        return b

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _NullWriter:
    def write(self, b: bytes) -> int:
        return len(b)

    def flush(self) -> None:
        pass


# ---- whole-recording verification ---------------------------------------------------------------


def verify_files(
    audio: BinaryIO,
    manifest_doc: bytes | None,
    trusted: KeyRing | Ed25519PublicKey,
    identities: list[x25519.Identity] | None = None,
    *,
    row: Mapping[str, Any] | None = None,
    name: str = "",
) -> VerifyResult:
    """Verify an encrypted object against its signed manifest document (a file, an archive member, or
    what a backend returns). Blocking: run in a thread from async code."""
    result = VerifyResult(recording_id=name or (str(row["id"]) if row else ""))
    if manifest_doc is None:
        result.failed("manifest", MISSING_OBJECT, "the manifest object is missing")
        return result
    try:
        m, sig = parse_document(manifest_doc)
    except ValueError as e:
        result.failed("manifest", TAMPERED_MANIFEST, f"manifest is unreadable: {e} (manifest was altered)")
        return result
    result.recording_id = str(m.get("recording_id") or result.recording_id)
    check_signature(result, m, sig, trusted)
    check_object(result, m, audio, identities)
    if row is not None:
        check_row(result, m, row)
        if row.get("manifest") is not None and canonical(row["manifest"]) != canonical(m):
            result.failed("database row", ROW_MISMATCH, "the database copy of the manifest differs from the stored one")
    return result


def verify_stored(
    backend: Any,
    row: Mapping[str, Any],
    trusted: KeyRing | Ed25519PublicKey,
    identities: list[x25519.Identity] | None = None,
) -> VerifyResult:
    """Verify a stored recording (its `recordings` row) in its backend. Blocking."""
    from storage.backends.base import ObjectMissing, manifest_key_for

    rid = str(row["id"])
    if row.get("state") != "stored" or not row.get("object_uri"):
        result = VerifyResult(recording_id=rid)
        result.failed("state", MISSING_OBJECT, f"recording is not stored (state {row.get('state')!r})")
        return result
    audio_key = backend.key_from_uri(row["object_uri"])
    try:
        doc: bytes | None = backend.get_bytes(manifest_key_for(audio_key))
    except ObjectMissing:
        doc = None
    try:
        with backend.open_read(audio_key) as f:
            return verify_files(f, doc, trusted, identities, row=row, name=rid)
    except ObjectMissing:
        result = VerifyResult(recording_id=rid)
        result.failed("object", MISSING_OBJECT, f"encrypted object {row['object_uri']} is missing from the store")
        return result


async def verify_recording(
    pool_or_row: Any,
    config: Any,
    recording_id: str | None = None,
    *,
    backend: Any = None,
    identities: list[x25519.Identity] | None = None,
    trusted: KeyRing | Ed25519PublicKey | None = None,
    decrypt: bool = True,
) -> VerifyResult:
    """Verify one stored recording: signature (with the trusted key its manifest names: own keys,
    configured trusted keys, keys trusted at import), ciphertext hash, and (when an identity file is
    configured or given) decryption and the audio hash. `pool_or_row` is an asyncpg pool (with
    `recording_id`) or a `recordings` row. The API shows `result.as_dict()`."""
    import asyncio

    from storage.backends.locations import StorageLocations, UnknownLocation, as_locations

    row: Mapping[str, Any]
    if not hasattr(pool_or_row, "fetchrow"):  # a row (dict or asyncpg Record), not a pool
        row = dict(pool_or_row)
    else:
        rec = await pool_or_row.fetchrow("SELECT * FROM recordings WHERE id = $1", recording_id)
        if rec is None:
            result = VerifyResult(recording_id=str(recording_id))
            result.failed("row", MISSING_OBJECT, "no such recording")
            return result
        row = dict(rec)
    if trusted is None:
        if not hasattr(pool_or_row, "fetchrow"):
            raise ValueError("verify_recording: pass `trusted` when verifying a row without a pool")
        trusted = await load_keyring(pool_or_row, config)
    locations = as_locations(backend) if backend is not None else StorageLocations.from_config(config)
    try:
        backend = locations.for_row(row) if row.get("object_uri") else locations.default
    except UnknownLocation as e:
        result = VerifyResult(recording_id=str(row["id"]))
        result.failed("object", MISSING_OBJECT, str(e))
        return result
    if identities is None and decrypt and config.encryption.identity_file:
        identities = crypto.load_identities(config.encryption.identity_file)
    return await asyncio.to_thread(verify_stored, backend, row, trusted, identities if decrypt else None)
