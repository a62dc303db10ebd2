"""`callrec export --from --to [--number] [--agent] -o FILE.tar`: a still-encrypted backup archive."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from pathlib import Path

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import day_start, fail, parse_date, progress_bar
from storage import archive, crypto, keyring, recordings_query
from storage.backends.base import BackendError
from storage.backends.locations import StorageLocations
from storage.recordings_query import SearchFilter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="bundle stored recordings (encrypted) with manifests into a tar archive")
    p.add_argument("--from", dest="start", type=parse_date, required=True, help="first day (YYYY-MM-DD, UTC)")
    p.add_argument("--to", dest="end", type=parse_date, required=True, help="last day, inclusive")
    p.add_argument(
        "--number",
        default="",
        help="only calls with this customer or account number, in any spelling (+1 (555) 123-4567, 15551234567)",
    )
    p.add_argument("--agent", default="", help="only calls this agent took part in")
    p.add_argument("-o", "--output", required=True, help="archive file to write (FILE.tar)")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    update, close = progress_bar("exporting")

    async def go() -> int:
        async with open_pool(cfg) as pool:
            f = SearchFilter(
                start=day_start(args.start),
                end=day_start(args.end) + timedelta(days=1),
                numbers=await recordings_query.number_filter(pool, args.number),
                agent=args.agent or None,
                state="stored",
            )
            rows = await recordings_query.select_all(pool, f)
            try:
                pub = crypto.load_public_key(cfg.signing_key_path)
            except crypto.KeyFileError:
                pub = None
            try:  # every key that signed an exported manifest (accounts, rotated keys), for the importer
                ring = await keyring.load_keyring(pool, cfg)
            except crypto.KeyFileError:
                ring = keyring.KeyRing()
            used = {(r.get("manifest") or {}).get("signing_key_id") for r in rows}
            signers = [k for kid in sorted(i for i in used if i) if (k := ring.get(kid)) is not None]
            filters = {"from": str(args.start), "to": str(args.end), "number": args.number, "agent": args.agent}
            n = await asyncio.to_thread(
                archive.export_archive,
                rows,
                StorageLocations.from_config(cfg),
                Path(args.output),
                public_key=pub,
                signer_keys=signers,
                filters=filters,
                progress=update,
            )
            await pool.execute(
                "INSERT INTO audit_log (actor, action, target, detail) VALUES ('cli', 'recording.export', $1, $2)",
                args.output,
                {**filters, "count": n},
            )
            return n

    try:
        n = asyncio.run(go())
    except (BackendError, OSError) as e:
        return fail(f"export failed, no archive written: {e}")
    finally:
        close()
    print(f"{args.output}: {n} recording(s), still encrypted, with signed manifests")
    return 0
