"""`callrec verify ID|FILE|ARCHIVE.tar[:ID]` and `callrec verify --audit`.

Recordings: signature (with the trusted key the manifest names), hashes, and (with an identity)
decryption. Says exactly what does not match: tampered audio, tampered manifest, a manifest signed by
a key that is not trusted, or an identity that is not a recipient. `--audit` recomputes the audit
log's hash chain and names the first broken entry. Exit code 0 when everything verifies, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tarfile
from pathlib import Path

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail, identities
from controller.config import Config
from storage import archive, audit, crypto, keyring, manifest
from storage.backends.base import MANIFEST_SUFFIX


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a recording's signed manifest, hashes and key; or the audit log")
    p.add_argument(
        "target", nargs="?", metavar="ID|FILE|ARCHIVE.tar[:ID]", help="recording id, .wav.age file, or export archive"
    )
    p.add_argument("--audit", action="store_true", help="check the audit log's hash chain instead")
    p.add_argument("--identity", help="age identity file: also decrypt and check the audio hash")
    p.add_argument(
        "--public-key", help="trust only this manifest key (PEM; default: own, configured and import-trusted keys)"
    )
    p.add_argument("--no-decrypt", action="store_true", help="check signature and ciphertext only")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.audit:
        return _verify_audit(cfg, as_json=args.json)
    if not args.target:
        return fail("verify: give a recording id, a file or an archive (or --audit)")
    try:
        given = keyring.KeyRing.of(crypto.load_public_key(args.public_key), "--public-key") if args.public_key else None
        ids = None if args.no_decrypt else identities(args, cfg, required=False)
    except crypto.KeyFileError as e:
        return fail(str(e))
    target = args.target
    path, _, member = target.partition(":") if ".tar:" in target else (target, "", "")
    p = Path(path)
    try:
        if p.exists():
            trusted = given or _file_keyring(cfg)
            if tarfile.is_tarfile(p):
                try:
                    results = list(archive.verify_archive(p, trusted, ids, only=member or None))
                except (ValueError, KeyError, tarfile.TarError) as e:
                    return fail(f"{p}: not a readable callrec archive: {e}")
                if member and not results:
                    return fail(f"recording {member} is not in {p}")
                if not results:
                    print(f"{p}: the archive holds no recordings; nothing to verify")
                    return 0
            else:
                sibling = p.with_name(p.name.removesuffix(".wav.age") + MANIFEST_SUFFIX)
                doc = sibling.read_bytes() if sibling.exists() else None
                with open(p, "rb") as f:
                    results = [manifest.verify_files(f, doc, trusted, ids, name=p.name)]
        else:
            results = [asyncio.run(_verify_stored(cfg, target, given, ids))]
    except crypto.KeyFileError as e:
        return fail(str(e))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            print(r.summary())
            for prob in r.problems:
                print(f"  => {prob['kind'].replace('_', ' ').upper()}: {prob['detail']}")
    return 0 if all(r.ok for r in results) else 1


def _file_keyring(cfg: Config) -> keyring.KeyRing:
    """Files and archives: configured keys, plus import-trusted ones when a database is configured."""
    if not cfg.database.url:
        return keyring.config_keyring(cfg)

    async def go() -> keyring.KeyRing:
        async with open_pool(cfg, migrate=False) as pool:
            return await keyring.load_keyring(pool, cfg)

    return asyncio.run(go())


async def _verify_stored(
    cfg: Config, target: str, given: keyring.KeyRing | None, ids: list | None
) -> manifest.VerifyResult:
    async with open_pool(cfg) as pool:
        try:
            return await manifest.verify_recording(
                pool, cfg, target, identities=ids, trusted=given, decrypt=ids is not None
            )
        except crypto.KeyFileError:
            raise
        except Exception as e:  # e.g. not a uuid
            r = manifest.VerifyResult(recording_id=target)
            r.failed("row", manifest.MISSING_OBJECT, f"no such recording or file ({type(e).__name__})")
            return r


def _verify_audit(cfg: Config, *, as_json: bool) -> int:
    async def go() -> audit.ChainReport:
        async with open_pool(cfg) as pool, pool.acquire() as conn:
            return await audit.verify_chain(conn)

    report = asyncio.run(go())
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        print(f"audit log: OK, {report.entries} entries chained; head seq {report.head_seq} hash {report.head_hash}")
    else:
        print(f"audit log: BROKEN after {report.entries} good entries")
        print(f"  => first broken entry: {report.broken}")
    return 0 if report.ok else 1
