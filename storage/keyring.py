"""Which Ed25519 manifest keys this installation trusts, by key id.

A manifest names the key that signed it (`signing_key_id`, covered by the signature); verification
looks that id up here and checks the signature with exactly that key. Trusted are: this installation's
own signing keys (global, per account, and the ones retired by `callrec keys rotate`), the keys listed
in `encryption.trusted_signing_keys` (pinned by id), and keys an operator trusted explicitly when
importing an archive (table `signing_keys`, each addition audited). Nothing found inside the thing
being verified (an archive's own key, a manifest's claim) is ever trusted implicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from storage import crypto

KEY_ID_RE = re.compile(r"^ed25519:[0-9a-f]{16}$")
RETIRED_DIR_SUFFIX = ".retired"  # <signing_key_file>.retired/<key id>.pub: keys `keys rotate` replaced


@dataclass
class KeyRing:
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, key: Ed25519PublicKey, source: str = "given") -> KeyRing:
        ring = cls()
        ring.add(key, source)
        return ring

    def add(self, key: Ed25519PublicKey, source: str) -> str:
        kid = crypto.signing_key_id(key)
        if kid not in self.keys:
            self.keys[kid], self.sources[kid] = key, source
        return kid

    def get(self, key_id: str | None) -> Ed25519PublicKey | None:
        return self.keys.get(key_id or "")

    def ids(self) -> list[str]:
        return list(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def describe(self) -> str:
        return ", ".join(self.keys) or "none"


def retired_dir(signing_key_file: Path) -> Path:
    return signing_key_file.with_name(signing_key_file.name + RETIRED_DIR_SUFFIX)


def _add_own(ring: KeyRing, path: Path, source: str) -> None:
    if path.is_file():
        ring.add(crypto.load_public_key(path), source)
    rdir = retired_dir(path)
    if rdir.is_dir():
        for pub in sorted(rdir.glob("*.pub")):
            ring.add(crypto.load_public_key(pub), f"retired ({pub})")


def pinned_key(index: int, key_id: str, file: str) -> Ed25519PublicKey:
    """A configured trusted key: its file must hold exactly the key the configured id names."""
    name = f"encryption.trusted_signing_keys[{index}]"
    try:
        key = crypto.load_public_key(file)
    except crypto.KeyFileError as e:
        raise crypto.KeyFileError(f"{name}: {e}") from None
    got = crypto.signing_key_id(key)
    if got != key_id:
        raise crypto.KeyFileError(
            f"{name}: {file} holds key {got}, not the configured {key_id} (wrong or swapped file)"
        )
    return key


def config_keyring(config: Any) -> KeyRing:
    """Own keys (present ones) and pinned trusted keys from the configuration. Raises KeyFileError
    when a configured trusted key is unusable (a typo must not silently shrink the trusted set)."""
    ring = KeyRing()
    _add_own(ring, config.signing_key_path, "own signing key")
    for acc_id, acc in sorted((getattr(config, "accounts", None) or {}).items()):
        if acc.encryption is not None and acc.encryption.signing_key_file:
            _add_own(ring, Path(acc.encryption.signing_key_file), f"signing key of account {acc_id}")
    for i, t in enumerate(config.encryption.trusted_signing_keys):
        ring.add(pinned_key(i, t.id, t.file), f"encryption.trusted_signing_keys[{i}]")
    return ring


async def db_keys(conn: Any) -> list[tuple[str, Ed25519PublicKey, str]]:
    rows = await conn.fetch("SELECT key_id, public_key, source FROM signing_keys ORDER BY added_at")
    out = []
    for r in rows:
        key = load_pem_public_key(r["public_key"].encode())
        if isinstance(key, Ed25519PublicKey) and crypto.signing_key_id(key) == r["key_id"]:
            out.append((r["key_id"], key, f"trusted at import ({r['source']})"))
    return out


async def load_keyring(conn: Any, config: Any) -> KeyRing:
    """Everything `callrec verify` and the API trust: configured keys plus keys trusted at import."""
    ring = config_keyring(config)
    for _kid, key, source in await db_keys(conn):
        ring.add(key, source)
    return ring


async def trust_key(conn: Any, key: Ed25519PublicKey, *, source: str, actor: str) -> bool:
    """Remember a key an operator trusted explicitly; audited. Returns True when it was new."""
    kid = crypto.signing_key_id(key)
    added = await conn.fetchval(
        "INSERT INTO signing_keys (key_id, public_key, source, added_by) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (key_id) DO NOTHING RETURNING true",
        kid,
        crypto.public_key_pem(key).decode(),
        source,
        actor,
    )
    if added:
        await conn.execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, 'signing_key.trust', $2, $3)",
            actor,
            kid,
            {"source": source, "fingerprint": fingerprint(key)},
        )
    return bool(added)


def fingerprint(key: Ed25519PublicKey) -> str:
    """The full SHA-256 of the raw public key, for an operator to compare out of band."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()
