"""A backlog through one finalize worker: the next recording's encryption starts while the previous one
is still being made durable and committed. Every recording must still be stored exactly once, with
hashes of exactly its bytes, and a kill -9 in the middle of that overlap must lose nothing."""

# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import wave
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from controller.config import Config
from controller.metrics import Metrics
from storage import audio, encrypt_procs, manifest
from storage.finalize import FinalizeWorker
from tests.storage.conftest import (
    AGENT_HZ,
    CUSTOMER_HZ,
    Keys,
    age_decrypt,
    dominant_hz,
    insert_recording,
    make_config,
    objects,
    read_wav,
)
from tests.storage.test_crash_resume import run_worker

Rec = tuple[str, dict[str, str], str, str]  # id, spool files, layout, SHA-256 of the FreeSWITCH spool file


async def _check_all_stored_once(pool: asyncpg.Pool, cfg: Config, keys: Keys, tmp: Path, recs: list[Rec]) -> None:
    stored = objects(cfg)
    assert len([o for o in stored if o.endswith(".wav.age")]) == len(recs), stored
    assert len([o for o in stored if o.endswith(".manifest.json")]) == len(recs), stored
    assert len(stored) == 2 * len(recs), f"leftovers in the store: {stored}"
    for rid, files, layout, spool_sha in recs:
        row = await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
        assert row["state"] == "stored", (rid, row["state"], row["error"])
        assert not any(Path(p).exists() for p in files.values()), "plaintext spool must be gone"
        enc = Path(cfg.storage.path) / next(o for o in stored if o.endswith(f"{rid}.wav.age"))
        assert hashlib.sha256(enc.read_bytes()).hexdigest() == row["ciphertext_sha256"]
        assert row["object_size"] == enc.stat().st_size
        out = tmp / f"{rid}.wav"
        assert age_decrypt(keys.identity_file, enc, out).returncode == 0
        assert hashlib.sha256(out.read_bytes()).hexdigest() == row["audio_sha256"] == row["manifest"]["audio"]["sha256"]
        assert row["manifest"]["audio"]["size"] == out.stat().st_size
        if layout == "freeswitch":
            assert row["audio_sha256"] == spool_sha, "the FreeSWITCH stereo file is stored as is"
        samples, rate = read_wav(out)
        assert round(dominant_hz(samples[:, 0], rate)) == CUSTOMER_HZ  # customer LEFT
        assert round(dominant_hz(samples[:, 1], rate)) == AGENT_HZ
        result = await manifest.verify_recording(pool, cfg, rid)  # signature, object hash, decryption
        assert result.ok, result.summary()


async def _backlog(pool: asyncpg.Pool, cfg: Config) -> list[Rec]:
    recs = []
    for layout in ("freeswitch", "asterisk", "freeswitch", "asterisk"):
        rid, files = await insert_recording(pool, cfg, layout=layout, seconds=40.0)
        spool_sha = hashlib.sha256(Path(files["stereo"]).read_bytes()).hexdigest() if layout == "freeswitch" else ""
        recs.append((rid, files, layout, spool_sha))
    return recs


@pytest.mark.parametrize("workers", [1, 2])  # 2: encrypted on worker processes (storage/encrypt_procs.py)
async def test_backlog_through_one_worker_stores_each_recording_once_with_its_own_hashes(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, workers: int
) -> None:
    cfg = make_config(tmp_path, keys, workers=workers)
    recs = await _backlog(dbpool, cfg)
    worker = FinalizeWorker(dbpool, cfg, Metrics(), "test-node")
    assert await worker.drain() == len(recs)
    assert worker.metrics.get("callrec_finalize_stored_total") == len(recs)
    await _check_all_stored_once(dbpool, cfg, keys, tmp_path, recs)


@pytest.mark.parametrize(("step", "workers"), [("encrypt", 1), ("upload", 1), ("commit", 1), ("encrypt", 2)])
async def test_kill_9_while_the_next_recording_is_encrypting_loses_nothing(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path, step: str, workers: int
) -> None:
    cfg = make_config(tmp_path, keys)
    recs = await _backlog(dbpool, cfg)
    code, _ = run_worker(fresh_db, tmp_path, keys, hook=f"crash:after:{step}", workers=workers)
    assert code == -signal.SIGKILL, "the hook must have killed the worker"
    assert await dbpool.fetchval("SELECT count(*) FROM recordings WHERE state = 'stored'") < len(recs)

    code, out = run_worker(fresh_db, tmp_path, keys)
    assert code == 0, out
    await _check_all_stored_once(dbpool, cfg, keys, tmp_path, recs)
    assert [p for p in (cfg.spool_dir / ".callrec-work").iterdir()] == []


def _write_mono(path: Path, samples: bytes, width: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(8000)
        w.writeframes(samples)
    return path


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_joined_legs_put_each_customer_sample_left_and_agent_sample_right(tmp_path: Path, width: int) -> None:
    """Any sample width: frame i is customer sample i, then agent sample i; the shorter leg ends in
    silence. (24-bit legs came out as 32-bit data under a 24-bit header before: garbled audio.)"""
    rng = np.random.default_rng(width)
    frames_c, frames_a = 70_000, 150_001  # across the chunk size, agent leg longer
    c = rng.integers(0, 256, frames_c * width, dtype=np.uint8).tobytes()
    a = rng.integers(0, 256, frames_a * width, dtype=np.uint8).tobytes()
    rx, tx = _write_mono(tmp_path / "rx.wav", c, width), _write_mono(tmp_path / "tx.wav", a, width)
    plan = audio.plan_join(rx, tx)
    assert plan is not None
    data = b"".join(plan.chunks())
    assert len(data) == plan.size == 44 + frames_a * 2 * width
    frames = np.frombuffer(data[44:], dtype=np.uint8).reshape(frames_a, 2, width)
    assert frames[:frames_c, 0].tobytes() == c and not frames[frames_c:, 0].any()
    assert frames[:, 1].tobytes() == a
    audio.join_legs(rx, tx, tmp_path / "j.wav")
    assert (tmp_path / "j.wav").read_bytes() == data


async def test_an_encryption_process_killed_while_idle_is_replaced(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    """The OOM killer (or an admin) ends an idle encryption process: the next recording is stored
    by a fresh one, without a failed attempt."""
    cfg = make_config(tmp_path, keys, workers=2)
    await asyncio.to_thread(encrypt_procs.prestart, 2)
    victims = [w.proc for w in encrypt_procs._idle]
    assert victims, "the encryption processes are up"
    for p in victims:
        os.kill(p.pid, signal.SIGKILL)
        await asyncio.to_thread(p.wait)  # dead (not reaped by the pool)
    rid, _ = await insert_recording(dbpool, cfg, layout="asterisk", seconds=5.0)
    await FinalizeWorker(dbpool, cfg, Metrics(), "test-node").drain()
    row = await dbpool.fetchrow("SELECT state, error FROM recordings WHERE id = $1", rid)
    job = await dbpool.fetchrow("SELECT attempts, last_error FROM finalize_jobs WHERE recording_id = $1", rid)
    assert row["state"] == "stored", (row["error"], job["last_error"])
    assert job["attempts"] == 0, job["last_error"]
