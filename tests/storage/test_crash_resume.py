"""kill -9 the finalize worker at every step, restart a fresh one: exactly one object, stored once."""

# ruff: noqa: ASYNC240

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage.finalize import STEPS, TEST_HOOK_ENV
from tests.storage.conftest import Keys, age_decrypt, insert_recording, make_config, objects

ROOT = Path(__file__).resolve().parents[2]


def run_worker(
    dsn: str, tmp: Path, keys: Keys, hook: str = "", storage: dict | None = None, workers: int = 1
) -> tuple[int, Any]:
    spec = {
        "dsn": dsn,
        "tmp": str(tmp),
        "keys": {k: str(v) for k, v in dataclasses.asdict(keys).items()},
        "storage": storage,
        "workers": workers,
    }
    env = {k: v for k, v in os.environ.items() if k != TEST_HOOK_ENV}
    if hook:
        env[TEST_HOOK_ENV] = hook
    p = subprocess.run(
        [sys.executable, "-m", "tests.storage.worker_proc", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else p.stderr
    return p.returncode, out


# Default suite: a kill after the work of every step (before its result is committed) on the FreeSWITCH
# path, and the Asterisk join; the full matrix (before/after x every step x both layouts) runs with -m slow.
CASES = [("freeswitch", "after", s) for s in STEPS] + [("asterisk", "after", "prepare")]
SLOW_CASES = [
    (layout, when, s)
    for layout in ("freeswitch", "asterisk")
    for when in ("before", "after")
    for s in STEPS
    if (layout, when, s) not in CASES
]


@pytest.mark.parametrize(
    ("layout", "when", "step"), CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES]
)
async def test_kill_9_at_each_step_then_restart_stores_exactly_once(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path, step: str, when: str, layout: str
) -> None:
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, layout=layout, seconds=2.0)

    code, _ = run_worker(fresh_db, tmp_path, keys, hook=f"crash:{when}:{step}")
    assert code == -signal.SIGKILL, "the hook must have killed the worker"
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert job["state"] == "running" and job["claimed_by"], "the dead worker's claim is left behind"

    code, out = run_worker(fresh_db, tmp_path, keys)
    assert code == 0, out
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", (row["state"], row["error"], out)
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert job["state"] == "done"

    stored = objects(cfg)
    assert len([o for o in stored if o.endswith(".wav.age")]) == 1, stored
    assert len([o for o in stored if o.endswith(".manifest.json")]) == 1, stored
    assert len(stored) == 2, f"leftovers in the store: {stored}"
    assert not any(Path(p).exists() for p in files.values()), "plaintext spool must be gone"
    assert list((cfg.spool_dir / ".callrec-work").iterdir()) == []

    enc = Path(cfg.storage.path) / next(o for o in stored if o.endswith(".wav.age"))
    assert hashlib.sha256(enc.read_bytes()).hexdigest() == row["ciphertext_sha256"]
    res = age_decrypt(keys.identity_file, enc, tmp_path / "out.wav")
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256((tmp_path / "out.wav").read_bytes()).hexdigest() == row["manifest"]["audio"]["sha256"]
