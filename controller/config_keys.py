"""The key material checks of the configuration (pure parsing plus reading the key files).

`callrec run` refuses to start without somewhere to encrypt to, or with a key file that is missing,
unparsable or readable by anyone but its owner; every other command only needs the recipients to be
well-formed. Problems are added to the caller's collector, so all of them are reported together.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyrage
from pyrage import x25519

from storage import crypto

if TYPE_CHECKING:
    from controller.config import Config


class Problems(Protocol):
    def add(self, key: str, value: Any, allowed: str) -> None: ...


def recipient_problem(value: str) -> str:
    """Why `value` is not an age X25519 recipient ("" when it is one); pyrage parses it as age would."""
    if not value.startswith("age1"):
        return "it does not start with age1"
    try:
        x25519.Recipient.from_str(value)
    except (pyrage.RecipientError, ValueError) as e:
        return str(e) or e.__class__.__name__
    return ""


def check_keys(cfg: Config, problems: Problems) -> None:
    """What the recording service needs before it starts: somewhere to encrypt to, and key files that
    exist, parse and are not readable by anyone but their owner. (A key that becomes unusable while
    the service runs is handled at finalize: the recording waits in the spool and /health says why.)"""
    if not cfg.encryption.recipients and not cfg.encryption.recipients_file:
        problems.add(
            "encryption.recipients", [], "at least one age recipient (`callrec keys generate --dir DIR` prints one)"
        )
    signing = cfg.signing_key_path
    if cfg.encryption.signing_key_file or signing.exists():  # the default path is created on first use
        _check_key_file(
            problems, "encryption.signing_key_file", signing, crypto.load_signing_key, "an Ed25519 signing key (PEM)"
        )
    for account_id, acct in cfg.accounts.items():
        if acct.encryption is not None and acct.encryption.signing_key_file:
            _check_key_file(
                problems,
                f"accounts.{account_id}.encryption.signing_key_file",
                Path(acct.encryption.signing_key_file),
                crypto.load_signing_key,
                "an Ed25519 signing key (PEM)",
            )
    if cfg.encryption.identity_file:
        _check_key_file(
            problems,
            "encryption.identity_file",
            Path(cfg.encryption.identity_file),
            crypto.load_identities,
            "an age identity file",
        )


def _check_key_file(problems: Problems, key: str, path: Path, load: Any, what: str) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        problems.add(key, str(path), f"{what} that exists (no such file)")
        return
    except OSError as e:
        problems.add(key, str(path), f"{what} this user can read ({e.strerror})")
        return
    if not path.is_file():
        problems.add(key, str(path), f"{what}, a regular file")
        return
    if mode & 0o077:
        problems.add(
            key, str(path), f"a private key readable by its owner only (mode {mode:04o}; run chmod 600 {path})"
        )
    try:
        load(path)
    except crypto.KeyFileError as e:
        problems.add(key, str(path), f"{what} ({e})")
