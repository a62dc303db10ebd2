"""`callrec keys generate` (an age identity + recipient and an Ed25519 manifest signing key, files
0600), `callrec keys rotate` (a new recipient and signing key for the new recordings of the
installation or of one account; old recordings keep the key ids that open and verify them) and
`callrec keys rewrap` (re-encrypt old recordings to the current recipients, streaming)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyrage import x25519

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail
from controller.config import Config
from storage import account_keys, audit, crypto, keyring, rewrap
from storage.backends.base import open_backend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="encryption and signing keys")
    ks = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    g = ks.add_parser("generate", help="create an age identity/recipient and a manifest signing key")
    g.add_argument(
        "--dir", help="where to write the key files (required unless run as root; root's default: <state_dir>/keys)"
    )
    g.add_argument(
        "--force", action="store_true", help="replace existing key files (old recordings need the old identity!)"
    )
    g.set_defaults(handler=_generate)
    r = ks.add_parser("rotate", help="new recipient + signing key for new recordings (global or --account)")
    r.add_argument("--account", help="rotate this account's own keys ([accounts.<id>.encryption])")
    r.add_argument("--identity-out", help="where to write the new age identity (default: next to the recipients file)")
    r.set_defaults(handler=_rotate)
    w = ks.add_parser("rewrap", help="re-encrypt stored recordings to their current recipients (operator only)")
    w.add_argument("--identity", action="append", required=True, help="identity file(s) opening the old files")
    w.add_argument("--account", help="only this account's recordings")
    w.add_argument("--dry-run", action="store_true", help="only list what would be re-wrapped")
    w.set_defaults(handler=_rewrap)


def _generate(args: argparse.Namespace) -> int:
    if not args.dir and os.geteuid() != 0:
        print(
            "callrec: keys generate needs --dir DIR: where to write the identity and signing key"
            " (e.g. --dir /etc/callrec as root, or a directory of your own)",
            file=sys.stderr,
        )
        return 2
    cfg = config_from_args(args)
    d = Path(args.dir or Path(cfg.state_dir) / "keys").absolute()
    files = {n: d / n for n in ("identity.txt", "recipient.txt", "signing.key", "signing.pub")}
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not args.force:
        return fail(
            f"refusing to overwrite {', '.join(existing)} (use --force; keep the old identity to read old recordings)"
        )
    for p in files.values():
        p.unlink(missing_ok=True)
    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    crypto.write_secret_file(files["identity.txt"], f"# created: {now}\n# public key: {recipient}\n{ident}\n".encode())
    crypto.write_secret_file(files["recipient.txt"], f"{recipient}\n".encode())
    key = crypto.generate_signing_key(files["signing.key"])
    crypto.write_secret_file(files["signing.pub"], crypto.public_key_pem(key.public_key()))
    print(f"""# Keys written to {d} (mode 0600). Put this in callrec.toml:
[encryption]
recipients = ["{recipient}"]   # key id {crypto.key_id(recipient)}; public, safe on the recording host
signing_key_file = "{files["signing.key"]}"   # {crypto.signing_key_id(key.public_key())}
# identity_file: ONLY on hosts that play back or decrypt; keep {files["identity.txt"]} off the recording host
identity_file = "{files["identity.txt"]}"
# Give {files["signing.pub"]} to whoever imports or verifies your archives; they pin it with
#   trusted_signing_keys = [{{ id = "{crypto.signing_key_id(key.public_key())}", file = "signing.pub" }}]""")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    src = account_keys.source_for(cfg, args.account)
    if args.account and src.account is None:
        return fail(
            f"account {args.account} has no [accounts.{args.account}.encryption] table: add one with"
            " recipients_file (and signing_key_file for a signing key of its own) first"
        )
    if not src.recipients_file:
        return fail(
            f"{src.name}.recipients_file is not set: rotation rewrites that file. Put the live recipient in a"
            f" file (one age1... per line), set {src.name}.recipients_file, keep escrow recipients in recipients"
        )
    rfile = Path(src.recipients_file)
    try:
        old = account_keys.read_recipients_file(rfile) if rfile.exists() else []
    except crypto.EncryptionConfigError as e:
        return fail(str(e))
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    rid = crypto.key_id(recipient)
    ident_text = f"# created: {now} by callrec keys rotate ({src.name})\n# public key: {recipient}\n{ident}\n"
    ident_out = Path(args.identity_out or rfile.with_name(f"identity-{rid.split(':', 1)[1]}.txt"))
    try:
        crypto.write_secret_file(ident_out, ident_text.encode())
    except OSError as e:
        return fail(f"cannot write the new identity {ident_out}: {e}")
    playback = Path(cfg.encryption.identity_file) if cfg.encryption.identity_file else None
    if playback is not None and playback.is_file():  # this host plays back: keep reading old AND new
        with open(playback, "a") as f:
            f.write(ident_text)
    retired = "".join(f"# retired {now}: {r} ({crypto.key_id(r)})\n" for r in old)
    _replace_text(rfile, f"# live recipient, written by callrec keys rotate at {now}\n{retired}{recipient}\n", 0o644)
    signing = Path(src.signing_key_file) if src.signing_key_file else None
    if signing is None and src.account is None:
        signing = cfg.signing_key_path
    old_sign = new_sign = ""
    if signing is not None:
        old_sign, new_sign = _rotate_signing_key(signing)
    detail = {
        "config": src.name,
        "retired_recipients": [crypto.key_id(r) for r in old],
        "recipient": rid,
        "retired_signing_key": old_sign,
        "signing_key": new_sign,
    }
    asyncio.run(_audit(cfg, args.account or "", detail))
    print(f"{src.name}: new recordings are encrypted to {rid} ({recipient})")
    for r in old:
        print(f"  retired recipient {crypto.key_id(r)}: keep its identity to open older recordings")
    print(f"  new identity: {ident_out} (0600) — keep it where playback/decrypt runs, off the recording host")
    if playback is not None and playback.is_file():
        print(f"  appended to {playback} (playback here reads old and new recordings)")
    if new_sign and signing is not None:
        print(f"  signing key {signing}: now {new_sign}; {old_sign or 'none'} kept in {keyring.retired_dir(signing)}")
    else:
        print("  signing: this account uses the global signing key (set signing_key_file to give it its own)")
    return 0


def _replace_text(path: Path, text: str, mode: int) -> None:
    """Write a file atomically (temp + rename): a running service never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rotate_signing_key(path: Path) -> tuple[str, str]:
    """Retire the current key (its PUBLIC half kept for verification, the private half destroyed) and
    put a new one in its place. Returns (old id, new id)."""
    old_id = ""
    if path.exists():
        old = crypto.load_signing_key(path).public_key()
        old_id = crypto.signing_key_id(old)
        rdir = keyring.retired_dir(path)
        rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _replace_text(rdir / f"{old_id.split(':', 1)[1]}.pub", crypto.public_key_pem(old).decode(), 0o644)
    new_path = path.with_name(path.name + ".new")
    new_path.unlink(missing_ok=True)
    key = crypto.generate_signing_key(new_path)
    os.replace(new_path, path)
    pub = path.with_suffix(".pub")
    if pub.exists():  # the public copy `keys generate` wrote next to it
        _replace_text(pub, crypto.public_key_pem(key.public_key()).decode(), 0o600)
    return old_id, crypto.signing_key_id(key.public_key())


async def _audit(cfg: Config, account: str, detail: dict[str, Any]) -> None:
    async with open_pool(cfg) as pool:
        await audit.record(pool, actor="cli:keys", action="keys.rotate", target=account or "(global)", detail=detail)


def _rewrap(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        ids = [i for path in args.identity for i in crypto.load_identities(path)]
    except crypto.KeyFileError as e:
        return fail(str(e))

    async def go() -> rewrap.RewrapReport:
        async with open_pool(cfg) as pool:
            backend = open_backend(cfg.storage, cfg.storage_path)
            return await rewrap.rewrap_recordings(pool, backend, cfg, ids, account=args.account, dry_run=args.dry_run)

    report = asyncio.run(go())
    verb = "would re-wrap" if args.dry_run else "re-wrapped"
    for rid in report.rewrapped:
        print(f"{verb} {rid}")
    for rid, err in report.errors:
        print(f"error {rid}: {err}")
    print(f"{verb} {len(report.rewrapped)}, already current {report.current}, errors {len(report.errors)}")
    return 1 if report.errors else 0
