"""WORM retention against a real S3 server process that implements Object Lock (moto server): objects
are written locked until their retention date, legal hold maps to the store's legal hold, and a purge
never deletes a locked object early — the store itself refuses it too."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest

from controller.metrics import Metrics
from storage.backends.base import BackendError, ObjectLocked, manifest_key_for, open_backend
from storage.backends.s3 import S3Backend
from storage.finalize import FinalizeWorker
from storage.retention import purge_expired, set_legal_hold
from tests.storage.conftest import Keys, MotoServer, insert_recording, make_config


def s3_client(moto: MotoServer) -> Any:
    return boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )


def worm_bucket(moto: MotoServer, mode: str) -> tuple[str, Any]:
    name = f"worm-{mode}-{uuid.uuid4().hex[:8]}"
    client = s3_client(moto)
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name, dataclasses.replace(moto.storage(name), object_lock=mode)


def versions(client: Any, bucket: str) -> list[dict[str, Any]]:
    page = client.list_object_versions(Bucket=bucket)
    return page.get("Versions", []) + page.get("DeleteMarkers", [])


async def stored(pool: asyncpg.Pool, rid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row is not None and row["state"] == "stored", row and row["error"]
    return row


@pytest.mark.parametrize("mode", ["compliance", "governance"])
async def test_objects_are_written_locked_until_their_retention_date(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer, mode: str
) -> None:
    bucket, storage = worm_bucket(moto, mode)
    cfg = make_config(tmp_path, keys, storage=storage)
    backend = open_backend(storage, tmp_path)
    backend.check()
    rid, _ = await insert_recording(dbpool, cfg, retention_days=30)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await stored(dbpool, rid)
    assert row["object_locked_until"] == row["retention_until"]
    client = s3_client(moto)
    key = "rec/" + backend.key_from_uri(row["object_uri"])
    for k in (key, manifest_key_for(key)):
        head = client.head_object(Bucket=bucket, Key=k)
        assert head["ObjectLockMode"] == mode.upper()
        assert abs(head["ObjectLockRetainUntilDate"] - row["retention_until"]) < timedelta(seconds=1)
        assert head.get("ObjectLockLegalHoldStatus", "OFF") == "OFF"

    # The store itself refuses to delete any version of it: not even callrec's own delete gets through.
    with pytest.raises(ObjectLocked):
        backend.delete(backend.key_from_uri(row["object_uri"]))
    assert len([v for v in versions(client, bucket) if "IsLatest" in v]) >= 2


async def test_an_early_purge_attempt_keeps_the_locked_recording_and_reports_it(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    bucket, storage = worm_bucket(moto, "compliance")
    cfg = make_config(tmp_path, keys, storage=storage)
    rid, _ = await insert_recording(dbpool, cfg, retention_days=30)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await stored(dbpool, rid)
    client = s3_client(moto)
    before = sorted((v["Key"], v["VersionId"]) for v in versions(client, bucket))

    # The row's retention date was shortened behind callrec's back (or the clock is wrong): the
    # database says "expired", the store's lock says otherwise. The lock wins, and the purge says so.
    await dbpool.execute("UPDATE recordings SET retention_until = now() - interval '1 day' WHERE id = $1", rid)
    for attempt_at in (None, row["retention_until"] + timedelta(days=1)):  # even a purge "run in the future"
        report = await purge_expired(dbpool, open_backend(storage, tmp_path), now=attempt_at)
        assert report.purged == [] and report.errors == [], report
        assert len(report.locked) == 1 and report.locked[0].startswith(rid)
        assert "WORM-locked until" in report.locked[0]
    # Even with the lock date erased from the row too, the store's own lock is asked and wins.
    await dbpool.execute("UPDATE recordings SET object_locked_until = NULL WHERE id = $1", rid)
    report = await purge_expired(dbpool, open_backend(storage, tmp_path))
    assert report.purged == [] and report.errors == [] and len(report.locked) == 1
    assert "WORM-locked (compliance) until" in report.locked[0]
    assert await dbpool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", rid) == 1
    # Not one delete reached the store (a delete would have left a delete marker or removed a version).
    assert sorted((v["Key"], v["VersionId"]) for v in versions(client, bucket)) == before
    purges = await dbpool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.purge'")
    assert purges == 0


async def test_legal_hold_maps_to_the_object_lock_legal_hold(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    bucket, storage = worm_bucket(moto, "governance")
    cfg = make_config(tmp_path, keys, storage=storage)
    backend = open_backend(storage, tmp_path)
    rid, _ = await insert_recording(dbpool, cfg, retention_days=30)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await stored(dbpool, rid)
    client = s3_client(moto)
    keys_ = ["rec/" + backend.key_from_uri(row["object_uri"])]
    keys_.append(manifest_key_for(keys_[0]))

    res = await set_legal_hold(dbpool, backend, rid, True, actor="test", reason="case 42")
    assert res.in_store and res.on
    for k in keys_:
        assert client.get_object_legal_hold(Bucket=bucket, Key=k)["LegalHold"]["Status"] == "ON"
    assert await dbpool.fetchval("SELECT legal_hold FROM recordings WHERE id = $1", rid) is True
    audit = await dbpool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.legal_hold'")
    assert audit["target"] == rid and audit["detail"]["reason"] == "case 42" and audit["detail"]["on"] is True

    res = await set_legal_hold(dbpool, backend, rid, False, actor="test", reason="case closed")
    for k in keys_:
        assert client.get_object_legal_hold(Bucket=bucket, Key=k)["LegalHold"]["Status"] == "OFF"
    assert await dbpool.fetchval("SELECT legal_hold FROM recordings WHERE id = $1", rid) is False


async def test_a_recording_held_before_it_is_stored_is_written_under_legal_hold(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    bucket, storage = worm_bucket(moto, "compliance")
    cfg = make_config(tmp_path, keys, storage=storage)
    rid, _ = await insert_recording(dbpool, cfg, retention_days=30)
    await dbpool.execute("UPDATE recordings SET legal_hold = true WHERE id = $1", rid)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await stored(dbpool, rid)
    key = "rec/" + open_backend(storage, tmp_path).key_from_uri(row["object_uri"])
    assert s3_client(moto).head_object(Bucket=bucket, Key=key)["ObjectLockLegalHoldStatus"] == "ON"


async def test_once_the_lock_has_expired_purge_deletes_every_version(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    bucket, storage = worm_bucket(moto, "compliance")
    cfg = make_config(tmp_path, keys, storage=storage)
    rid, _ = await insert_recording(dbpool, cfg, started_at=datetime.now(UTC) - timedelta(days=31), retention_days=30)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    await dbpool.execute("UPDATE recordings SET retention_until = $2 WHERE id = $1", rid, until)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    await stored(dbpool, rid)
    client = s3_client(moto)
    assert versions(client, bucket)
    await asyncio.sleep((until - datetime.now(UTC)).total_seconds() + 1.0)  # the lock runs out
    report = await purge_expired(dbpool, open_backend(storage, tmp_path))
    assert report.purged == [rid] and report.locked == [] and report.errors == []
    assert versions(client, bucket) == [], "every version and no delete marker left: the data is gone"


def test_object_lock_config_is_checked(tmp_path: Path, moto: MotoServer) -> None:
    from controller.config import ConfigError, load_config

    moto.create_bucket("no-lock-here")
    plain = dataclasses.replace(moto.storage("no-lock-here"), object_lock="compliance")
    with pytest.raises(BackendError, match="no Object Lock"):
        open_backend(plain, tmp_path).check()
    for text, allowed in (
        ('[storage]\nbackend = "s3"\nendpoint = "http://x"\nbucket = "b"\nobject_lock = "strict"\n', "compliance"),
        ('[storage]\nbackend = "local"\nobject_lock = "compliance"\n', "backend = 's3'"),
    ):
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(tmp_path / "c.toml", env={})
        assert e.value.key == "storage.object_lock" and allowed in str(e.value)
    assert isinstance(open_backend(dataclasses.replace(plain, object_lock=""), tmp_path), S3Backend)
