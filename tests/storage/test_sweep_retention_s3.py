"""Startup sweep (orphans, lost jobs), retention purge (legal hold), S3 against a real server process."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import boto3

from controller.metrics import Metrics
from storage import manifest
from storage.backends.base import open_backend
from storage.backends.s3 import S3Backend
from storage.finalize import FinalizeWorker
from storage.retention import RetentionScheduler, purge_expired
from storage.sweep import startup_sweep
from tests.storage.conftest import (
    CUSTOMER_HZ,
    Keys,
    MotoServer,
    age_decrypt,
    insert_recording,
    make_config,
    objects,
    tone,
    write_wav,
)


async def test_sweep_adopts_orphan_spool_files_and_finalizes_them(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, keys)
    day = cfg.spool_dir / "2026" / "11" / "20"
    fs_id, ast_id = str(uuid.uuid4()), str(uuid.uuid4())
    write_wav(day / f"{fs_id}.wav", tone(CUSTOMER_HZ, 1.0), tone(880, 1.0))
    write_wav(day / f"{ast_id}-rx.wav", tone(CUSTOMER_HZ, 1.0))
    write_wav(day / f"{ast_id}-tx.wav", tone(880, 1.0))
    write_wav(day / "strange-name.wav", tone(CUSTOMER_HZ, 1.0), tone(880, 1.0))
    known, _ = await insert_recording(dbpool, cfg, enqueue=False)  # a stopped recording that lost its job

    worker = FinalizeWorker(dbpool, cfg, Metrics(), "n")
    report = await startup_sweep(dbpool, cfg, worker)
    assert set(report.adopted) >= {fs_id, ast_id} and len(report.adopted) == 3
    assert report.jobs_created == 1
    assert report.unfinished_jobs == 4
    assert "3 orphan recording(s)" in report.summary()
    again = await startup_sweep(dbpool, cfg, worker)
    assert again.adopted == [] and again.jobs_created == 0, "the sweep is idempotent"

    await worker.drain()
    rows = await dbpool.fetch("SELECT id, state, pbx_kind, manifest FROM recordings")
    assert {r["state"] for r in rows} == {"stored"} and len(rows) == 4
    kinds = {str(r["id"]): r["pbx_kind"] for r in rows}
    assert kinds[ast_id] == "asterisk" and kinds[fs_id] == "freeswitch" and known in kinds
    orphan = next(r for r in rows if str(r["id"]) == fs_id)
    assert any(w.startswith("orphaned") for w in orphan["manifest"]["warnings"])
    events = await dbpool.fetchval("SELECT count(*) FROM recording_events WHERE kind = 'orphaned'")
    assert events == 3
    assert not any(p.suffix == ".wav" for p in cfg.spool_dir.rglob("*"))


async def test_sweep_requeues_recipient_failures_once_the_config_is_fixed(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    bad = make_config(tmp_path, keys, recipients=())
    rid, _ = await insert_recording(dbpool, bad)
    await FinalizeWorker(dbpool, bad, Metrics(), "n").drain()
    assert await dbpool.fetchval("SELECT state FROM recordings WHERE id = $1", rid) == "failed"

    good = make_config(tmp_path, keys)
    worker = FinalizeWorker(dbpool, good, Metrics(), "n")
    report = await startup_sweep(dbpool, good, worker)
    assert report.requeued_failed == 1
    await worker.drain()
    assert await dbpool.fetchval("SELECT state FROM recordings WHERE id = $1", rid) == "stored"


async def test_purge_respects_retention_date_and_legal_hold(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys)
    old = datetime.now(UTC) - timedelta(days=40)
    expired, _ = await insert_recording(dbpool, cfg, started_at=old, retention_days=30)
    held, _ = await insert_recording(dbpool, cfg, started_at=old, retention_days=30)
    kept, _ = await insert_recording(dbpool, cfg, started_at=old, retention_days=183)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    await dbpool.execute("UPDATE recordings SET legal_hold = true WHERE id = $1", held)
    # A later settings change does not move the retention date of existing recordings.
    await dbpool.execute("UPDATE accounts SET retention_days = 1")
    assert len(objects(cfg)) == 6

    backend = open_backend(cfg.storage, cfg.storage_path)
    dry = await purge_expired(dbpool, backend, dry_run=True)
    assert dry.candidates == [expired] and dry.purged == [] and len(objects(cfg)) == 6

    report = await purge_expired(dbpool, backend, actor="test")
    assert report.purged == [expired] and report.held == 1
    ids = {str(r["id"]) for r in await dbpool.fetch("SELECT id FROM recordings")}
    assert ids == {held, kept}
    assert len(objects(cfg)) == 4 and not any(expired in o for o in objects(cfg))
    audit = await dbpool.fetchrow("SELECT * FROM audit_log WHERE target = $1", expired)
    assert audit["action"] == "recording.purge" and audit["actor"] == "test"
    assert audit["detail"]["ciphertext_sha256"]

    await dbpool.execute("UPDATE recordings SET legal_hold = false WHERE id = $1", held)
    assert (await purge_expired(dbpool, backend)).purged == [held]


async def test_retention_scheduler_purges_on_its_interval(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, started_at=datetime.now(UTC) - timedelta(days=3), retention_days=1)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    metrics = Metrics()
    sched = RetentionScheduler(dbpool, cfg, metrics, interval_seconds=0.2)
    sched.start(first_run_in=0.1)
    try:
        for _ in range(100):
            if not await dbpool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", rid):
                break
            await asyncio.sleep(0.1)
    finally:
        sched.shutdown()
    assert await dbpool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", rid) == 0
    assert metrics.get("callrec_retention_purged_total") == 1


async def test_s3_backend_against_real_server_with_multipart(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    moto.create_bucket("recs")
    cfg = make_config(tmp_path, keys, storage=moto.storage("recs"))
    backend = S3Backend(
        bucket="recs",
        endpoint=moto.endpoint,
        access_key="k",
        secret_key="s",
        prefix="rec",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunk=5 * 1024 * 1024,
    )
    rid, _ = await insert_recording(dbpool, cfg, seconds=200.0)  # 6.4 MB: two parts
    worker = FinalizeWorker(dbpool, cfg, Metrics(), "n", backend=backend)
    await worker.drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", row["error"]
    key = backend.key_from_uri(row["object_uri"])
    client = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    head = client.head_object(Bucket="recs", Key="rec/" + key)
    assert head["ETag"].strip('"').endswith("-2"), "uploaded in two multipart parts"
    body = client.get_object(Bucket="recs", Key="rec/" + key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == row["ciphertext_sha256"]
    (tmp_path / "o.age").write_bytes(body)
    assert age_decrypt(keys.identity_file, tmp_path / "o.age", tmp_path / "o.wav").returncode == 0
    assert hashlib.sha256((tmp_path / "o.wav").read_bytes()).hexdigest() == row["audio_sha256"]

    result = await manifest.verify_recording(dbpool, cfg, rid, backend=backend)
    assert result.ok, result.summary()
    report = await purge_expired(dbpool, backend, now=row["retention_until"] + timedelta(seconds=1))
    assert report.purged == [rid]
    assert list(backend.list_keys()) == []
