"""Helpers for running the real `callrec` CLI against a real database with stored recordings in it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.config import load_config
from controller.metrics import Metrics
from storage import crypto, db
from storage.finalize import FinalizeWorker
from tests.storage.conftest import insert_recording

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CliKeys:
    identity_file: Path
    recipient: str
    signing_key: Path


@pytest.fixture(scope="session")
def cli_keys(tmp_path_factory: pytest.TempPathFactory) -> CliKeys:
    """Real keys from the `age-keygen` CLI (identity 0600) and an Ed25519 signing key."""
    d = tmp_path_factory.mktemp("cli-keys")
    ident = d / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(ident)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(ident)], check=True, capture_output=True, text=True
    ).stdout.strip()
    crypto.generate_signing_key(d / "signing.key")
    return CliKeys(ident, recipient, d / "signing.key")


def write_config(path: Path, dsn: str, base: Path, keys: CliKeys, *, extra: str = "") -> Path:
    path.write_text(
        f"""state_dir = "{base / "state"}"
[database]
url = "{dsn}"
[spool]
dir = "{base / "spool"}"
[storage]
path = "{base / "store"}"
[encryption]
recipients = ["{keys.recipient}"]
signing_key_file = "{keys.signing_key}"
identity_file = "{keys.identity_file}"
[finalize]
file_stable_seconds = 0
{extra}"""
    )
    return path


def run_cli(
    *args: str, config: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`callrec ARGS` in a subprocess, stdout and stderr piped (as under cron or in a CI log)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}
    cmd = [sys.executable, "-m", "controller.cli"] + (["--config", str(config)] if config else []) + list(args)
    return subprocess.run(cmd, cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=120)


async def store_recordings(pool: asyncpg.Pool, config: Path, n: int, **row: Any) -> list[str]:
    """N recordings through the real finalize (stereo, encrypt, sign, store); `row` sets journal columns."""
    cfg = load_config(config, env={})
    ids = []
    for _ in range(n):
        rid, _files = await insert_recording(pool, cfg, seconds=0.5)
        ids.append(rid)
        for col, value in row.items():
            await pool.execute(f"UPDATE recordings SET {col} = $2 WHERE id = $1", rid, value)
    await FinalizeWorker(pool, cfg, Metrics(), "cli-test").drain()
    stored = await pool.fetchval("SELECT count(*) FROM recordings WHERE id = ANY($1::uuid[]) AND state = 'stored'", ids)
    assert stored == n
    return ids


@pytest.fixture
async def cli_db(fresh_db: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A fresh database of this test's own: its DSN (for the CLI) and a pool (to arrange rows)."""
    p = await db.create_pool(fresh_db, min_size=1, max_size=4)
    yield fresh_db, p
    await p.close()


@pytest.fixture
async def second_cli_db(server_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """Another fresh database (an import target), migrated."""
    from tests.conftest import _create_migrated, _drop

    name = f"callrec_t_{secrets.token_hex(4)}"
    dsn = await _create_migrated(server_dsn, name)
    p = await db.create_pool(dsn, min_size=1, max_size=4)
    yield dsn, p
    await p.close()
    await _drop(server_dsn, name)
