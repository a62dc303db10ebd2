"""Re-wrap stored recordings to their account's current recipients (after a rotation).

An operator command, never run by the service: it needs the OLD identity, which the recording host
must not hold. Each object is streamed decrypt → encrypt through a pipe (no plaintext on disk), the
audio hash is checked against the signed manifest, and a new manifest (same recording, new
ciphertext and key ids, `rewrapped` saying from what) is signed with the account's current signing
key. Order: object, manifest, row; an interrupted run is resumed by running it again with both the
old and the new identity (the object may already be the new one).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pyrage import x25519

from storage import account_keys, audit, crypto, manifest
from storage.backends.base import Backend, manifest_key_for

log = logging.getLogger(__name__)


@dataclass
class RewrapReport:
    rewrapped: list[str] = field(default_factory=list)
    current: int = 0  # already encrypted to the current recipients
    errors: list[tuple[str, str]] = field(default_factory=list)


async def rewrap_recordings(
    pool: asyncpg.Pool,
    backend: Backend,
    config: Any,
    identities: list[x25519.Identity],
    *,
    account: str | None = None,
    dry_run: bool = False,
    actor: str = "cli:keys-rewrap",
) -> RewrapReport:
    report = RewrapReport()
    rows = await pool.fetch(
        "SELECT * FROM recordings WHERE state = 'stored' AND ($1::text IS NULL OR account_id = $1)"
        " ORDER BY started_at, id",
        account,
    )
    for row in rows:
        rid = str(row["id"])
        try:
            recipients = account_keys.recipients_for(config, row["account_id"])
            want = sorted(crypto.key_id(str(r)) for r in recipients)
            if sorted(row["key_ids"]) == want:
                report.current += 1
                continue
            if not dry_run:
                await _rewrap_one(pool, backend, config, row, identities, recipients, actor)
            report.rewrapped.append(rid)
        except (crypto.EncryptionConfigError, crypto.KeyFileError, crypto.WrongKeyError, crypto.CorruptCiphertext) as e:
            report.errors.append((rid, str(e)))
        except (OSError, asyncpg.PostgresError) as e:
            report.errors.append((rid, f"{type(e).__name__}: {e}"))
    return report


async def _rewrap_one(
    pool: asyncpg.Pool,
    backend: Backend,
    config: Any,
    row: Any,
    identities: list[x25519.Identity],
    recipients: list[x25519.Recipient],
    actor: str,
) -> None:
    rid = str(row["id"])
    key_path = account_keys.signing_key_path(config, row["account_id"])
    signing = crypto.load_signing_key(key_path)
    audio_key = backend.key_from_uri(row["object_uri"])
    with tempfile.TemporaryDirectory(prefix="callrec-rewrap-") as tmp:
        dst = Path(tmp) / f"{rid}.wav.age"  # ciphertext only

        def work() -> crypto.EncryptResult:
            with backend.open_read(audio_key) as src:
                return crypto.rewrap(src, dst, identities, recipients)

        enc = await asyncio.to_thread(work)
        old = row["manifest"] or {}
        signed_audio = (old.get("audio") or {}).get("sha256")
        if enc.plain_sha256 != signed_audio:
            raise crypto.CorruptCiphertext(f"decrypted audio is {enc.plain_sha256}, the manifest says {signed_audio}")
        m = {
            **old,
            "ciphertext": {"format": "age", "sha256": enc.cipher_sha256, "size": enc.cipher_size},
            "key_ids": list(enc.key_ids),
            "signing_key_id": crypto.signing_key_id(signing.public_key()),
            "rewrapped": {
                "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "from_key_ids": list(row["key_ids"]),
                "from_ciphertext_sha256": row["ciphertext_sha256"],
                "from_signing_key_id": old.get("signing_key_id"),
            },
        }
        sig = manifest.sign(m, signing)

        def put() -> None:
            backend.put_file(audio_key, dst)
            backend.put_bytes(manifest_key_for(audio_key), manifest.document(m, sig))

        await asyncio.to_thread(put)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE recordings SET ciphertext_sha256 = $2, object_size = $3, key_ids = $4, manifest = $5,"
            " manifest_signature = $6, signing_key_id = $7, updated_at = now() WHERE id = $1",
            row["id"],
            enc.cipher_sha256,
            enc.cipher_size,
            list(enc.key_ids),
            m,
            sig,
            m["signing_key_id"],
        )
        await audit.record(conn, actor=actor, action="recording.rewrap", target=rid, detail=m["rewrapped"])
    log.info("re-wrapped %s to %s", rid, list(enc.key_ids))
