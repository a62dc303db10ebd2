"""`callrec verify ID|FILE|ARCHIVE.tar[:ID]`: signature, hashes, and (with an identity) decryption.

Says exactly what does not match: tampered audio, tampered manifest, a manifest signed by another key,
or an identity that is not a recipient. Exit code 0 when everything verifies, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tarfile
from pathlib import Path

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail, identities, trusted_key
from storage import archive, crypto, manifest
from storage.backends.base import MANIFEST_SUFFIX


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a recording's signed manifest, hashes and key")
    p.add_argument("target", metavar="ID|FILE|ARCHIVE.tar[:ID]", help="recording id, .wav.age file, or export archive")
    p.add_argument("--identity", help="age identity file: also decrypt and check the audio hash")
    p.add_argument("--public-key", help="trusted manifest key (PEM; default: the configured signing key)")
    p.add_argument("--no-decrypt", action="store_true", help="check signature and ciphertext only")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        trusted = trusted_key(args, cfg)
        ids = None if args.no_decrypt else identities(args, cfg, required=False)
    except crypto.KeyFileError as e:
        return fail(str(e))
    target = args.target
    path, _, member = target.partition(":") if ".tar:" in target else (target, "", "")
    p = Path(path)
    if p.exists() and tarfile.is_tarfile(p):
        results = list(archive.verify_archive(p, trusted, ids, only=member or None))
        if not results:
            return fail(f"{member or 'no recordings'} not found in {p}")
    elif p.exists():
        sibling = p.with_name(p.name.removesuffix(".wav.age") + MANIFEST_SUFFIX)
        doc = sibling.read_bytes() if sibling.exists() else None
        with open(p, "rb") as f:
            results = [manifest.verify_files(f, doc, trusted, ids, name=p.name)]
    else:

        async def go() -> manifest.VerifyResult:
            async with open_pool(cfg) as pool:
                try:
                    return await manifest.verify_recording(
                        pool, cfg, target, identities=ids, trusted=trusted, decrypt=ids is not None
                    )
                except Exception as e:  # e.g. not a uuid
                    r = manifest.VerifyResult(recording_id=target)
                    r.failed("row", manifest.MISSING_OBJECT, f"no such recording or file ({type(e).__name__})")
                    return r

        results = [asyncio.run(go())]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            print(r.summary())
            for prob in r.problems:
                print(f"  => {prob['kind'].replace('_', ' ').upper()}: {prob['detail']}")
    return 0 if all(r.ok for r in results) else 1
