"""The storage backend interface: where encrypted recordings and their signed manifests live.

Backends are synchronous (file and HTTP I/O); async callers run them with `asyncio.to_thread`. Every
write is atomic: an object is either absent or complete, so a crash or a full disk never leaves a
half-written object that a row could point at.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

AUDIO_SUFFIX = ".wav.age"
MANIFEST_SUFFIX = ".manifest.json"


class BackendError(OSError):
    """The store refused or failed an operation (down, full, no permission): the caller retries."""


class ObjectMissing(BackendError):
    """The object does not exist in the store."""


class ObjectLocked(BackendError):
    """The store refuses to delete the object: WORM retention or a legal hold is still in force."""


@dataclass(frozen=True)
class LockState:
    """What the store itself enforces on an object (S3 Object Lock)."""

    mode: str  # COMPLIANCE | GOVERNANCE | "" (none)
    retain_until: datetime | None
    legal_hold: bool

    def locked_at(self, when: datetime) -> str:
        """Why the object cannot be deleted at `when` ("" when it can)."""
        if self.legal_hold:
            return "under an S3 Object Lock legal hold"
        if self.retain_until is not None and self.retain_until > when:
            return f"WORM-locked ({self.mode.lower() or 'retention'}) until {self.retain_until.isoformat()}"
        return ""


def object_keys(recording_id: str, started_at: datetime) -> tuple[str, str]:
    """Date-sharded keys (UTC start date) for the encrypted audio and its manifest."""
    d = started_at.astimezone(UTC) if started_at.tzinfo else started_at
    shard = f"{d:%Y/%m/%d}"
    return f"{shard}/{recording_id}{AUDIO_SUFFIX}", f"{shard}/{recording_id}{MANIFEST_SUFFIX}"


def manifest_key_for(audio_key: str) -> str:
    if not audio_key.endswith(AUDIO_SUFFIX):
        raise ValueError(f"not an audio object key: {audio_key}")
    return audio_key[: -len(AUDIO_SUFFIX)] + MANIFEST_SUFFIX


class Backend(ABC):
    name: str
    worm = False  # True when the store enforces retention itself (S3 Object Lock)

    @abstractmethod
    def uri(self, key: str) -> str:
        """A URI naming the object (stored in recordings.object_uri)."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str: ...

    @abstractmethod
    def put_file(self, key: str, src: Path, *, retain_until: datetime | None = None, legal_hold: bool = False) -> None:
        """Store `src` under `key` atomically (replacing any previous object of that key). A WORM store
        locks the object until `retain_until` (and under `legal_hold`) in the same write; other stores
        ignore both (the database's retention date and legal hold still govern purge)."""

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> None: ...

    def lock_state(self, key: str) -> LockState | None:
        """The lock the store enforces on the object, or None for stores without WORM."""
        return None

    def set_legal_hold(self, key: str, on: bool) -> None:  # noqa: B027 - optional: WORM stores override it
        """Place or lift the store's own legal hold on the object (no-op for stores without WORM)."""

    @abstractmethod
    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A readable binary stream of the object; raises ObjectMissing."""

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def get_file(self, key: str, dst: Path, chunk: int = 1 << 20) -> None:
        with self.open_read(key) as f, open(dst, "wb") as out:
            while b := f.read(chunk):
                out.write(b)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the object (fewer at its end); raises ObjectMissing.
        Stores that can (HTTP Range) override this to fetch only those bytes."""
        with self.open_read(key) as f:
            skip = start
            while skip > 0:
                got = f.read(min(skip, 1 << 20))
                if not got:
                    return b""
                skip -= len(got)
            out = b""
            while len(out) < length and (got := f.read(length - len(out))):
                out += got
            return out

    def staging_dir(self) -> Path | None:
        """Where finalize should write ciphertext bound for this store, when the store can then adopt it
        without a copy (local: a directory on the same filesystem, so `put_file` is a rename)."""
        return None

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error (purge is retried)."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]: ...

    @abstractmethod
    def check(self) -> None:
        """Raise BackendError if the store is not usable right now (for /health and retries)."""


def open_backend(storage: object, default_path: Path) -> Backend:
    """The backend named by a `StorageConfig` (`default_path` = the local root when none is set)."""
    kind = getattr(storage, "backend", "local")
    if kind == "local":
        from storage.backends.local import LocalBackend

        return LocalBackend(getattr(storage, "path", "") or default_path)
    if kind == "s3":
        from storage.backends.s3 import S3Backend

        return S3Backend(
            object_lock=getattr(storage, "object_lock", ""),
            bucket=getattr(storage, "bucket", ""),
            endpoint=getattr(storage, "endpoint", ""),
            region=getattr(storage, "region", ""),
            access_key=getattr(storage, "access_key", ""),
            secret_key=getattr(storage, "secret_key", ""),
            prefix=getattr(storage, "prefix", ""),
        )
    if kind == "webdav":
        from storage.backends.webdav import shared_backend

        return shared_backend(
            url=getattr(storage, "url", ""),
            username=getattr(storage, "username", ""),
            password=getattr(storage, "password", ""),
            verify_tls=getattr(storage, "verify_tls", True),
            base_path=getattr(storage, "base_path", ""),
        )
    raise ValueError(f"unknown storage backend {kind!r}")
