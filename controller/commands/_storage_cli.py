"""Shared bits of the storage commands (keys, decrypt, verify, purge, export, import-archive)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pyrage import x25519

from controller.config import Config
from storage import crypto


def progress_bar(desc: str, unit: str = "B") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr fed with (done, total); returns (update, close).

    Only on a terminal: under cron or in a CI log every refresh would be one more line of noise, so
    there the bar is off and the command's one summary line is all that is printed."""
    from tqdm import tqdm

    bar: Any = None
    on_tty = sys.stderr.isatty()

    def update(done: int, total: int) -> None:
        nonlocal bar
        if not on_tty:
            return
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", file=sys.stderr, leave=True)
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def trusted_key(args: argparse.Namespace, cfg: Config) -> Ed25519PublicKey:
    return crypto.load_public_key(args.public_key or cfg.signing_key_path)


def identities(args: argparse.Namespace, cfg: Config, *, required: bool) -> list[x25519.Identity] | None:
    path = getattr(args, "identity", None) or cfg.encryption.identity_file
    if not path:
        if required:
            raise crypto.KeyFileError("no identity file: pass --identity or set encryption.identity_file")
        return None
    return crypto.load_identities(path)


def parse_date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date (YYYY-MM-DD)") from None


def day_start(d: date) -> datetime:
    """Midnight UTC of a day given on the command line (days are UTC, like the journal's times)."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def looks_like_file(arg: str) -> bool:
    return Path(arg.split(":", 1)[0] if ".tar:" in arg else arg).exists()


def fail(msg: str) -> int:
    print(f"callrec: {msg}", file=sys.stderr)
    return 1
