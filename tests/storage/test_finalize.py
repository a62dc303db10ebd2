"""Finalize end to end against the real database, real files and the real `age` CLI."""

# ruff: noqa: ASYNC240

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import asyncpg

from controller.metrics import Metrics
from storage import manifest
from storage.finalize import FinalizeWorker
from tests.storage.conftest import (
    AGENT_HZ,
    CUSTOMER_HZ,
    FIXTURES,
    TIMELINE,
    Keys,
    age_decrypt,
    dominant_hz,
    insert_recording,
    make_config,
    objects,
    read_wav,
)


async def _stored_row(pool: asyncpg.Pool, rid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row is not None
    return row


async def test_freeswitch_recording_is_stored_encrypted_and_age_cli_decrypts_it(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, layout="freeswitch", seconds=3.0)
    spool_sha = hashlib.sha256(Path(files["stereo"]).read_bytes()).hexdigest()

    worker = FinalizeWorker(dbpool, cfg, Metrics(), "test-node")
    assert await worker.drain() == 1

    row = await _stored_row(dbpool, rid)
    assert row["state"] == "stored", row["error"]
    assert row["audio_sha256"] == spool_sha  # the FreeSWITCH stereo file is stored as is
    assert row["duration_ms"] == 3000
    assert row["key_ids"] and row["key_ids"][0].startswith("age:")
    assert row["timeline"] == TIMELINE and row["manifest"]["timeline"] == TIMELINE
    assert not Path(files["stereo"]).exists(), "plaintext spool must be deleted once stored"

    stored = [o for o in objects(cfg) if o.endswith(".wav.age")]
    assert len(stored) == 1 and row["object_uri"].endswith(stored[0])
    assert b"RIFF" not in (Path(cfg.storage.path) / stored[0]).read_bytes()[:4096]

    out = tmp_path / "out.wav"
    res = age_decrypt(keys.identity_file, Path(cfg.storage.path) / stored[0], out)
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == row["manifest"]["audio"]["sha256"]
    samples, rate = read_wav(out)
    assert round(dominant_hz(samples[:, 0], rate)) == CUSTOMER_HZ
    assert round(dominant_hz(samples[:, 1], rate)) == AGENT_HZ

    doc, sig = manifest.parse_document(
        (Path(cfg.storage.path) / stored[0].replace(".wav.age", ".manifest.json")).read_bytes()
    )
    assert doc == row["manifest"] and sig == row["manifest_signature"]
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert job["state"] == "done"


async def test_real_asterisk_legs_are_joined_customer_left(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, layout="asterisk", write_audio=False)
    Path(files["rx"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "asterisk-S1-rx.wav", files["rx"])
    shutil.copy(FIXTURES / "asterisk-S1-tx.wav", files["tx"])

    await FinalizeWorker(dbpool, cfg, Metrics(), "test-node").drain()
    row = await _stored_row(dbpool, rid)
    assert row["state"] == "stored", row["error"]
    assert row["duration_ms"] == 6020
    out = tmp_path / "out.wav"
    enc = Path(cfg.storage.path) / next(o for o in objects(cfg) if o.endswith(".age"))
    assert age_decrypt(keys.identity_file, enc, out).returncode == 0
    samples, rate = read_wav(out)
    assert samples.shape[1] == 2
    assert round(dominant_hz(samples[:, 0], rate)) == CUSTOMER_HZ  # real r() leg → LEFT
    assert round(dominant_hz(samples[:, 1], rate)) == AGENT_HZ
    assert not Path(files["rx"]).exists() and not Path(files["tx"]).exists()
    assert list((cfg.spool_dir / ".callrec-work").iterdir()) == []


async def test_run_wakes_on_notify_and_two_workers_store_each_recording_once(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    import asyncio

    # poll interval of an hour: only NOTIFY callrec_finalize can wake the loops
    cfg = make_config(tmp_path, keys, workers=2, poll_interval_seconds=3600.0)
    a = FinalizeWorker(dbpool, cfg, Metrics(), "node-a")
    b = FinalizeWorker(dbpool, cfg, Metrics(), "node-b")
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await asyncio.sleep(0.3)  # both are idle, listening
        ids = [(await insert_recording(dbpool, cfg, seconds=1.0))[0] for _ in range(6)]
        for _ in range(300):  # until every job is done (stored, then its staging and spool cleaned up)
            n = await dbpool.fetchval("SELECT count(*) FROM finalize_jobs WHERE state = 'done'")
            if n == len(ids):
                break
            await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert await dbpool.fetchval("SELECT count(*) FROM recordings WHERE state = 'stored'") == 6
    assert len([o for o in objects(cfg) if o.endswith(".wav.age")]) == 6
    stored = [w.metrics.get("callrec_finalize_stored_total") for w in (a, b)]
    assert sum(stored) == 6, "each recording stored by exactly one worker"
    events = await dbpool.fetchval("SELECT count(*) FROM finalize_jobs WHERE state = 'done'")
    assert events == 6
