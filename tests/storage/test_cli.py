"""The storage CLI, run as a user runs it (`callrec ...` in a subprocess, real database and files)."""

# ruff: noqa: ASYNC221

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from controller.config import load_config
from controller.metrics import Metrics
from storage import db
from storage.finalize import FinalizeWorker
from tests.conftest import SERVER_DSN, _with_database
from tests.storage.conftest import insert_recording, objects

ROOT = Path(__file__).resolve().parents[2]


def callrec(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(path: Path, dsn: str, base: Path, keys_dir: Path, recipient: str) -> Path:
    path.write_text(
        f"""state_dir = "{base / "state"}"
[database]
url = "{dsn}"
[spool]
dir = "{base / "spool"}"
[storage]
path = "{base / "store"}"
[encryption]
recipients = ["{recipient}"]
signing_key_file = "{keys_dir / "signing.key"}"
identity_file = "{keys_dir / "identity.txt"}"
[finalize]
file_stable_seconds = 0
"""
    )
    return path


@pytest.fixture
async def second_db() -> AsyncIterator[str]:
    name = f"callrec_t_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(SERVER_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield _with_database(SERVER_DSN, name)
    admin = await asyncpg.connect(SERVER_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_keys_finalize_verify_decrypt_export_import(
    dbpool: asyncpg.Pool, fresh_db: str, second_db: str, tmp_path: Path
) -> None:
    # keys generate: 0600 files and the config lines to paste
    kd = tmp_path / "keys"
    blank = tmp_path / "blank.toml"
    blank.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    res = callrec("keys", "generate", "--dir", str(kd), config=blank)
    assert res.returncode == 0, res.stderr
    recipient = next(line for line in res.stdout.splitlines() if line.startswith("recipients")).split('"')[1]
    assert recipient.startswith("age1") and "signing_key_file" in res.stdout
    for name in ("identity.txt", "signing.key", "recipient.txt", "signing.pub"):
        assert stat.S_IMODE((kd / name).stat().st_mode) == 0o600
    assert callrec("keys", "generate", "--dir", str(kd), config=blank).returncode == 1, "never overwrite keys"

    conf = write_config(tmp_path / "a.toml", fresh_db, tmp_path / "a", kd, recipient)
    cfg = load_config(conf, env={})
    r1, _ = await insert_recording(dbpool, cfg, seconds=2.0)
    r2, _ = await insert_recording(dbpool, cfg, seconds=1.0)
    await dbpool.execute("UPDATE recordings SET agent = '2002', agents = '{2002}' WHERE id = $1", r2)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()

    res = callrec("verify", r1, config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout and "audio sha256" in res.stdout

    out = tmp_path / "r1.wav"
    res = callrec("decrypt", r1, "-o", str(out), config=conf)
    assert res.returncode == 0, res.stderr
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", r1)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == row["audio_sha256"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    # FILE mode with the wrong identity: says so, writes nothing usable
    other = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    enc = Path(cfg.storage.path) / next(o for o in objects(cfg) if r1 in o and o.endswith(".age"))
    res = callrec("verify", str(enc), "--identity", str(other), config=conf)
    assert res.returncode == 1 and "WRONG KEY" in res.stdout
    res = callrec("decrypt", str(enc), "--identity", str(other), "-o", str(tmp_path / "x.wav"), config=conf)
    assert res.returncode == 1 and "wrong key" in res.stderr

    # export only agent 2001's call, verify the archive, then tamper with a member
    day = row["started_at"].date().isoformat()
    tar = tmp_path / "backup.tar"
    res = callrec("export", "--from", day, "--to", day, "--agent", "2001", "-o", str(tar), config=conf)
    assert res.returncode == 0, res.stderr
    with tarfile.open(tar) as t:
        names = t.getnames()
    assert any(r1 in n and n.endswith(".wav.age") for n in names) and not any(r2 in n for n in names)
    assert not any(n.endswith(".wav") for n in names), "no plaintext in a backup"
    assert callrec("verify", str(tar), config=conf).returncode == 0

    # import into another installation (its own database, its own store and signing key)
    conf_b = write_config(tmp_path / "b.toml", second_db, tmp_path / "b", kd, recipient)
    res = callrec("import-archive", str(tar), "--public-key", str(kd / "signing.pub"), config=conf_b)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "imported 1" in res.stdout
    res = callrec("verify", r1, "--public-key", str(kd / "signing.pub"), config=conf_b)
    assert res.returncode == 0, res.stdout
    assert "imported 0, already present 1" in callrec("import-archive", str(tar), config=conf_b).stdout

    bad = tmp_path / "tampered.tar"
    bad.write_bytes(tar.read_bytes())
    with tarfile.open(bad) as t:
        member = next(m for m in t.getmembers() if m.name.endswith(".wav.age"))
    data = bytearray(bad.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    res = callrec("verify", f"{bad}:{r1}", config=conf)
    assert res.returncode == 1 and "TAMPERED AUDIO" in res.stdout

    res = callrec("purge", "--dry-run", config=conf)
    assert res.returncode == 0 and "0 recording(s) past retention" in res.stdout
    b = await db.connect(second_db)
    try:
        assert await b.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.import'") == 1
    finally:
        await b.close()
