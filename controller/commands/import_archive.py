"""`callrec import-archive FILE.tar`: restore an export archive into this installation.

Nothing in the archive is trusted by itself: every manifest must be signed by a key this installation
trusts (its own keys, `encryption.trusted_signing_keys`, `--public-key FILE`, or — only when asked
with `--trust-archive-key` — the key the archive carries, whose fingerprint is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail, progress_bar
from storage import archive, crypto, keyring
from storage.backends.locations import StorageLocations


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-archive", help="restore recordings from an export archive (verified)")
    p.add_argument("archive", help="FILE.tar written by `callrec export`")
    p.add_argument(
        "--public-key",
        action="append",
        help="the exporting installation's manifest key (PEM), trusted for this import (repeatable)",
    )
    p.add_argument(
        "--trust-archive-key",
        action="store_true",
        help="trust the signing key carried inside the archive (prints its fingerprint: compare it out of band)",
    )
    p.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    remember: list[tuple[Ed25519PublicKey, str]] = []
    try:
        for path in args.public_key or []:
            remember.append((crypto.load_public_key(path), f"--public-key {Path(path).absolute()}"))
        if args.trust_archive_key:
            with tarfile.open(args.archive, "r:") as tar:
                carried = archive.archive_public_keys(tar)
            if not carried:
                return fail(f"{args.archive} carries no signing key (--trust-archive-key cannot be used)")
            for key in carried:
                remember.append((key, f"--trust-archive-key {Path(args.archive).name}"))
                print(
                    f"trusting the archive's own signing key {crypto.signing_key_id(key)}"
                    f" ({keyring.fingerprint(key)}): compare it with what the exporting installation published"
                )
    except crypto.KeyFileError as e:
        return fail(str(e))
    except (OSError, tarfile.TarError) as e:
        return fail(f"cannot read {args.archive}: {e}")
    update, close = progress_bar("importing")

    async def go() -> archive.ImportReport:
        async with open_pool(cfg) as pool:
            ring = await keyring.load_keyring(pool, cfg)
            for key, how in remember:
                ring.add(key, how)
            return await archive.import_archive(
                pool,
                StorageLocations.from_config(cfg),
                Path(args.archive),
                trusted=ring,
                remember=remember,
                progress=update,
            )

    try:
        report = asyncio.run(go())
    except crypto.KeyFileError as e:
        return fail(str(e))
    except (ValueError, OSError, tarfile.TarError) as e:
        return fail(f"cannot import {args.archive}: {e}")
    finally:
        close()
    print(
        f"imported {len(report.imported)}, already present {len(report.skipped)},"
        f" conflicts {len(report.conflicts)}, rejected {len(report.rejected)}"
    )
    for r in report.conflicts:
        print(f"  conflict: {r}")
    for r in report.rejected:
        print(f"  rejected: {r}")
    return 0 if report.ok else 1
