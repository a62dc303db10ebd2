"""Decrypted access to a stored recording, for API playback and `callrec decrypt`.

age cannot be entered in the middle without its payload key, so there is no random access into the
ciphertext: callers either stream from the start (`decrypted_chunks`, constant memory; an HTTP Range
decrypts and skips up to the offset) or decrypt once to a private temp file (`decrypted_audio_file`,
mode 0600, deleted on exit, its SHA-256 checked against the row) and serve ranges from that.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

from pyrage import x25519

from storage import crypto
from storage.backends.base import Backend
from storage.backends.locations import StorageLocations, as_locations


class AudioIntegrityError(ValueError):
    """Decrypted audio does not match the hash recorded when it was stored."""


def object_reader(
    store: Backend | StorageLocations, row: Mapping[str, Any]
) -> Callable[[], AbstractContextManager[BinaryIO]]:
    """A zero-argument opener of the stored (encrypted) object of `row`, in the store that holds it."""
    backend = as_locations(store).for_row(row)
    key = backend.key_from_uri(row["object_uri"])
    return lambda: backend.open_read(key)


def _identities(config: Any, identities: list[x25519.Identity] | None) -> list[x25519.Identity]:
    if identities is not None:
        return identities
    if not config.encryption.identity_file:
        raise crypto.KeyFileError("encryption.identity_file is not configured: playback needs the age identity")
    return crypto.load_identities(config.encryption.identity_file)


@asynccontextmanager
async def decrypted_audio_file(
    config: Any,
    row: Mapping[str, Any],
    *,
    backend: Backend | StorageLocations | None = None,
    identities: list[x25519.Identity] | None = None,
    tmp_dir: str | Path | None = None,
) -> AsyncIterator[Path]:
    """Decrypt the recording of `row` into a private temp WAV; yields its path, removes it on exit.

    Raises WrongKeyError (identity is not a recipient) or AudioIntegrityError (hash differs)."""
    store = backend if backend is not None else StorageLocations.from_config(config)
    ids = _identities(config, identities)
    d = tempfile.mkdtemp(prefix="callrec-play-", dir=tmp_dir)  # mode 0700
    path = Path(d) / f"{row['id']}.wav"
    try:

        def work() -> str:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, object_reader(store, row)() as src:
                return crypto.decrypt_stream(src, out, ids)

        sha = await asyncio.to_thread(work)
        if row.get("audio_sha256") and sha != row["audio_sha256"]:
            raise AudioIntegrityError(f"decrypted audio sha256 {sha} != stored {row['audio_sha256']}")
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(d)
