"""Manifest verification status for the recording detail view (signature + database row, no audio).

Cheap enough for every detail request: it checks the Ed25519 signature of the manifest held in the
row and that the row agrees with it. Hashing the stored object is `callrec verify`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def signature_verifier(key_path: Path) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    def verify(rec: Mapping[str, Any]) -> dict[str, Any]:
        from storage import crypto, manifest

        if not key_path.is_file():
            return {"status": "not_checked", "reason": "no signing key available to this instance"}
        key = crypto.load_public_key(key_path)
        result = manifest.VerifyResult(str(rec["id"]))
        doc = rec.get("manifest") or {}
        manifest.check_signature(result, doc, rec.get("manifest_signature") or "", key)
        manifest.check_row(result, doc, rec)
        return {"status": "valid" if result.ok else "invalid", "checks": result.checks, "problems": result.problems}

    return verify
