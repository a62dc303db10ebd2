"""`callrec keys generate`: an age identity + recipient and an Ed25519 manifest signing key (files 0600)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from pyrage import x25519

from controller.commands._common import config_from_args
from controller.commands._storage_cli import fail
from storage import crypto


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="encryption and signing keys")
    ks = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    g = ks.add_parser("generate", help="create an age identity/recipient and a manifest signing key")
    g.add_argument("--dir", help="where to write the key files (default: <state_dir>/keys)")
    g.add_argument(
        "--force", action="store_true", help="replace existing key files (old recordings need the old identity!)"
    )
    g.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
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
