"""Scheduled backups into a real local directory, S3 server (moto) and WebDAV server (wsgidav): each
run archives the rolling window, reads the archive back from the backup store and verifies it before
it counts; purge can require a verified backup, and every deletion names the backup that holds it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from controller.config import BackupConfig, Config, ConfigError, RetentionConfig, StorageConfig, load_config
from controller.metrics import Metrics
from storage import archive, crypto
from storage.backends.base import open_backend
from storage.backup import BackupScheduler, run_backup
from storage.finalize import FinalizeWorker
from storage.retention import purge_expired
from tests.storage.conftest import Keys, MotoServer, WebDAVServer, insert_recording, make_config


@pytest.fixture(params=["local", "s3", "webdav"])
def backup_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageConfig]:
    tag = uuid.uuid4().hex[:8]
    if request.param == "local":
        yield StorageConfig(backend="local", path=str(tmp_path / "backups"))
    elif request.param == "s3":
        moto: MotoServer = request.getfixturevalue("moto")
        moto.create_bucket(f"backup-{tag}")
        yield moto.storage(f"backup-{tag}")
    else:
        dav: WebDAVServer = request.getfixturevalue("webdav")
        yield dav.storage(f"backups-{tag}")


def with_backup(cfg: Config, store: StorageConfig | None, *, require: bool = False, days: int = 7) -> Config:
    return dataclasses.replace(
        cfg,
        backup=BackupConfig(schedule="30 2 * * *", window_days=days, storage=store),
        retention=RetentionConfig(require_verified_backup=require),
    )


async def test_a_run_archives_the_window_and_verifies_it_in_the_backup_store(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, backup_store: StorageConfig
) -> None:
    cfg = with_backup(make_config(tmp_path, keys), backup_store)
    now = datetime.now(UTC)
    inside = [(await insert_recording(dbpool, cfg, started_at=now - timedelta(days=d)))[0] for d in (1, 3)]
    outside, _ = await insert_recording(dbpool, cfg, started_at=now - timedelta(days=20))
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()

    run = await run_backup(dbpool, cfg, now=now)
    assert run is not None and run.state == "verified", run and run.error
    assert run.recordings == 2
    row = await dbpool.fetchrow("SELECT * FROM backup_runs WHERE id = $1", run.id)
    assert row["state"] == "verified" and row["destination"] == run.destination and row["recordings"] == 2
    members = {str(r["recording_id"]) for r in await dbpool.fetch("SELECT * FROM backup_members")}
    assert members == set(inside) and outside not in members

    # What is in the backup store is a real archive: fetch it independently and verify every entry.
    dest = open_backend(backup_store, tmp_path / "unused")
    key = dest.key_from_uri(run.destination)
    assert list(dest.list_keys("callrec-backups/")) == [key]
    got = tmp_path / "fetched.tar"
    dest.get_file(key, got)
    trusted = crypto.load_public_key(cfg.signing_key_path)
    results = list(archive.verify_archive(got, trusted))
    assert sorted(r.recording_id for r in results) == sorted(inside) and all(r.ok for r in results)
    audit = await dbpool.fetchrow("SELECT * FROM audit_log WHERE action = 'backup.run'")
    assert audit["target"] == run.destination and audit["detail"]["recordings"] == 2


async def test_purge_requiring_a_backup_deletes_only_backed_up_recordings_and_names_the_backup(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, webdav: WebDAVServer
) -> None:
    store = webdav.storage(f"backups-{uuid.uuid4().hex[:8]}")
    cfg = with_backup(make_config(tmp_path, keys), store, require=True, days=60)
    old = datetime.now(UTC) - timedelta(days=40)
    backed, _ = await insert_recording(dbpool, cfg, started_at=old, retention_days=30)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    run = await run_backup(dbpool, cfg)
    assert run is not None and run.state == "verified", run and run.error
    late, _ = await insert_recording(dbpool, cfg, started_at=old, retention_days=30)  # stored after the backup
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()

    report = await purge_expired(dbpool, open_backend(cfg.storage, cfg.storage_path), require_backup=True)
    assert report.purged == [backed] and report.not_backed_up == [late]
    assert await dbpool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", late) == 1
    entry = await dbpool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.purge'")
    assert entry["target"] == backed and entry["detail"]["reason"] == "retention"
    assert entry["detail"]["backup"]["run"] == run.id and entry["detail"]["backup"]["archive"] == run.destination

    # The next run holds the late one too; then it may go.
    run2 = await run_backup(dbpool, cfg)
    assert run2 is not None and run2.state == "verified" and run2.recordings == 1
    report = await purge_expired(dbpool, open_backend(cfg.storage, cfg.storage_path), require_backup=True)
    assert report.purged == [late] and report.not_backed_up == []


async def test_a_failed_run_is_recorded_and_counts_for_nothing(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    from tests.storage.test_webdav import quick_backend

    server = WebDAVServer(tmp_path / "full")
    server.start()
    try:
        server.set_quota(1000)  # the backup server is full
        store = server.storage("b")
        cfg = with_backup(make_config(tmp_path, keys), store, require=True, days=60)
        rid, _ = await insert_recording(
            dbpool, cfg, started_at=datetime.now(UTC) - timedelta(days=40), retention_days=30
        )
        await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
        run = await run_backup(dbpool, cfg, destination=quick_backend(server, "b"))
        assert run is not None and run.state == "failed" and "507 Insufficient Storage" in run.error
        row = await dbpool.fetchrow("SELECT * FROM backup_runs WHERE id = $1", run.id)
        assert row["state"] == "failed" and "507" in row["error"] and row["finished_at"] is not None
        assert await dbpool.fetchval("SELECT count(*) FROM backup_members") == 0
        report = await purge_expired(dbpool, open_backend(cfg.storage, cfg.storage_path), require_backup=True)
        assert report.purged == [] and report.not_backed_up == [rid]
        assert not list((tmp_path / "state" / "backup-work").glob("*")), "no archive left in the work dir"
    finally:
        server.stop()


async def test_the_scheduler_runs_backups_and_counts_them(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    cfg = with_backup(make_config(tmp_path, keys), StorageConfig(backend="local", path=str(tmp_path / "bk")))
    await insert_recording(dbpool, cfg, started_at=datetime.now(UTC) - timedelta(hours=1))
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    metrics = Metrics()
    sched = BackupScheduler(dbpool, cfg, metrics)
    sched.start(trigger=IntervalTrigger(seconds=0.3))
    try:
        for _ in range(200):
            if await dbpool.fetchval("SELECT count(*) FROM backup_runs WHERE state = 'verified'") >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        sched.shutdown()
    assert await dbpool.fetchval("SELECT count(*) FROM backup_runs WHERE state = 'verified'") >= 2
    assert metrics.get("callrec_backup_runs_total", state="verified") >= 2


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ('[backup]\nschedule = "every night"\n[backup.storage]\npath = "/b"\n', "backup.schedule", "cron"),
        ('[backup]\nschedule = "30 2 * * *"\n', "backup.storage", "[backup.storage]"),
        ("[backup]\nwindow_days = 0\n", "backup.window_days", ">= 1"),
        ('[backup.storage]\nbackend = "webdav"\n', "backup.storage.url", "http://"),
        ("[retention]\nrequire_verified_backup = true\n", "retention.require_verified_backup", "[backup.storage]"),
    ],
)
def test_bad_backup_settings_name_the_key(tmp_path: Path, toml: str, key: str, allowed: str) -> None:
    (tmp_path / "c.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.toml", env={})
    assert e.value.key == key and allowed in str(e.value)


def test_backup_config_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[backup]\nschedule = "30 2 * * *"\nwindow_days = 14\n[backup.storage]\nbackend = "s3"\n'
        'endpoint = "https://s3.example.com"\nbucket = "callrec-backup"\nsecret_key = "xyz"\n'
        "[retention]\nrequire_verified_backup = true\n"
    )
    cfg = load_config(tmp_path / "c.toml", env={"CALLREC_BACKUP_WINDOW_DAYS": "3"})
    assert cfg.backup.schedule == "30 2 * * *" and cfg.backup.window_days == 3
    assert cfg.backup.storage is not None and cfg.backup.storage.bucket == "callrec-backup"
    assert cfg.retention.require_verified_backup
    assert cfg.redacted()["backup"]["storage"]["secret_key"] == "***"


async def test_an_erasure_names_the_backup_that_still_holds_the_recording(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    from storage.erasure import erase_number

    cfg = with_backup(make_config(tmp_path, keys), StorageConfig(backend="local", path=str(tmp_path / "bk")))
    rid, _ = await insert_recording(dbpool, cfg, started_at=datetime.now(UTC) - timedelta(hours=2))
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    run = await run_backup(dbpool, cfg)
    assert run is not None and run.state == "verified"
    report = await erase_number(dbpool, open_backend(cfg.storage, cfg.storage_path), "+15550001111")
    assert report.erased == [rid]
    entry = await dbpool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.erase'")
    assert entry["detail"]["reason"] == "erasure request"
    assert entry["detail"]["backup"]["run"] == run.id and entry["detail"]["backup"]["archive"] == run.destination
