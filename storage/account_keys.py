"""Which keys a recording of an account is encrypted to and signed with.

An account with its own `[accounts.<id>.encryption]` uses only its own recipients (a tenant's
recordings open only with that tenant's identity) and, when it names one, its own signing key; an
account without one uses the global `[encryption]` keys. Recipients come from the inline
`recipients` list plus the `recipients_file` (one `age1…` per line; `callrec keys rotate` rewrites
it), read for every recording, so a rotation or a fixed file applies without a restart. An account
whose recipients are missing or unusable never falls back to other keys: its recordings wait in the
spool (`no_recipient`) until a key appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrage import x25519

from storage import crypto

NO_RECIPIENT = "no_recipient"


class NoRecipient(crypto.EncryptionConfigError):
    """The account has no usable recipient: nothing of it may be stored."""


@dataclass(frozen=True)
class KeySource:
    """Where an account's keys are configured (`encryption` or `accounts.<id>.encryption`)."""

    account: str | None  # None: the global keys
    name: str  # the config table, for messages
    recipients: tuple[str, ...]
    recipients_file: str
    signing_key_file: str  # empty: the global signing key


def source_for(config: Any, account: str | None) -> KeySource:
    acc = (getattr(config, "accounts", None) or {}).get(account or "")
    enc = getattr(acc, "encryption", None) if acc is not None else None
    if enc is not None:
        return KeySource(
            account, f"accounts.{account}.encryption", enc.recipients, enc.recipients_file, enc.signing_key_file
        )
    g = config.encryption
    return KeySource(None, "encryption", g.recipients, g.recipients_file, "")


def read_recipients_file(path: str | Path) -> list[str]:
    """The recipients of an age recipients file (`age -R` format: one per line, # comments)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise NoRecipient(f"recipients file {p}: {e.strerror or e}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def recipient_strings(src: KeySource) -> list[str]:
    values = list(src.recipients)
    if src.recipients_file:
        values += read_recipients_file(src.recipients_file)
    return values


def recipients_for(config: Any, account: str | None) -> list[x25519.Recipient]:
    """The parsed recipients for a recording of `account`; NoRecipient says why there are none."""
    src = source_for(config, account)
    who = f"account {account}" if src.account else "the global [encryption]"
    try:
        values = recipient_strings(src)
        if not values:
            raise NoRecipient(f"{src.name}: no recipients configured")
        return crypto.parse_recipients(values)
    except crypto.EncryptionConfigError as e:
        raise NoRecipient(f"{who} has no usable recipient ({e})") from None


def signing_key_path(config: Any, account: str | None) -> Path:
    src = source_for(config, account)
    return Path(src.signing_key_file) if src.signing_key_file else Path(config.signing_key_path)
