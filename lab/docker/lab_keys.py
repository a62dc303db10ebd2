"""Create the docker lab's keys once: age identity + recipient and the Ed25519 signing key.

Run inside the callrec image (pyrage and the project are installed). Existing files are kept, so a
restarted container still decrypts what it stored before.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyrage import x25519

from storage.crypto import generate_signing_key, write_secret_file


def main(keys: Path) -> None:
    keys.mkdir(parents=True, exist_ok=True)
    identity_file, recipient_file = keys / "identity.txt", keys / "recipient.txt"
    if not identity_file.exists():
        identity = x25519.Identity.generate()
        write_secret_file(identity_file, f"# callrec docker lab identity\n{identity}\n".encode())
        recipient_file.write_text(f"{identity.to_public()}\n")
    if not (keys / "signing.key").exists():
        generate_signing_key(keys / "signing.key")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
