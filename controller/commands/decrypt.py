"""`callrec decrypt ID|FILE -o out.wav`: decrypt a stored recording (by id) or an `.wav.age` file."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail, identities
from storage import crypto, manifest
from storage.backends.base import MANIFEST_SUFFIX
from storage.backends.locations import StorageLocations
from storage.playback import object_reader


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decrypt", help="decrypt a recording to a WAV file")
    p.add_argument("target", metavar="ID|FILE", help="recording id, or an encrypted .wav.age file")
    p.add_argument("-o", "--output", required=True, help="where to write the WAV (created 0600)")
    p.add_argument("--identity", help="age identity file (default: encryption.identity_file)")
    p.set_defaults(handler=_decrypt)


def _decrypt(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        ids = identities(args, cfg, required=True)
        assert ids is not None
        if Path(args.target).exists():
            src = Path(args.target)
            expected = None
            sibling = src.with_name(src.name.removesuffix(".wav.age") + MANIFEST_SUFFIX)
            if sibling.exists():
                expected = manifest.parse_document(sibling.read_bytes())[0]["audio"]["sha256"]
            sha = _write(lambda: open(src, "rb"), Path(args.output), ids)
        else:
            row = asyncio.run(_row(cfg, args.target))
            if row is None:
                return fail(f"no stored recording {args.target!r} (and no such file)")
            expected = row["audio_sha256"]
            sha = _write(object_reader(StorageLocations.from_config(cfg), row), Path(args.output), ids)
    except crypto.WrongKeyError as e:
        return fail(f"wrong key: {e}")
    except (crypto.KeyFileError, crypto.CorruptCiphertext, OSError, ValueError) as e:
        Path(args.output).unlink(missing_ok=True)
        return fail(str(e))
    if expected and sha != expected:
        Path(args.output).unlink(missing_ok=True)
        return fail(f"tampered audio: decrypted sha256 {sha} != manifest {expected}; output removed")
    print(f"{args.output}: sha256 {sha}" + (" (matches the manifest)" if expected else ""))
    return 0


def _write(opener, out: Path, ids) -> str:  # type: ignore[no-untyped-def]
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f, opener() as src:
        return crypto.decrypt_stream(src, f, ids)


async def _row(cfg, rid: str):  # type: ignore[no-untyped-def]
    async with open_pool(cfg) as pool:
        try:
            return await pool.fetchrow("SELECT * FROM recordings WHERE id = $1::uuid AND state = 'stored'", rid)
        except Exception:  # not a uuid
            return None
