"""Manifest verification status for the recording detail view (signature + database row, no audio).

Cheap enough for every detail request: it checks the Ed25519 signature of the manifest held in the
row, with the trusted key the manifest names (own keys, rotated-out keys, configured trusted keys,
keys trusted at import), and that the row agrees with it. Hashing the stored object is
`callrec verify`'s job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from controller.config import Config


def signature_verifier(config: Config, pool: asyncpg.Pool) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
    async def verify(rec: Mapping[str, Any]) -> dict[str, Any]:
        from storage import crypto, keyring, manifest

        try:
            ring = await keyring.load_keyring(pool, config)
        except crypto.KeyFileError as e:
            return {"status": "not_checked", "reason": str(e)}
        if not len(ring):
            return {"status": "not_checked", "reason": "no signing key available to this instance"}
        result = manifest.VerifyResult(str(rec["id"]))
        doc = rec.get("manifest") or {}
        manifest.check_signature(result, doc, rec.get("manifest_signature") or "", ring)
        manifest.check_row(result, doc, rec)
        return {"status": "valid" if result.ok else "invalid", "checks": result.checks, "problems": result.problems}

    return verify
