"""`callrec legal-hold` and `callrec backup` as an administrator runs them (subprocess, real database,
real WORM S3 server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import boto3

from controller.config import load_config
from controller.metrics import Metrics
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, MotoServer, insert_recording
from tests.storage.test_cli import callrec


def config_file(tmp: Path, dsn: str, keys: Keys, moto: MotoServer, bucket: str) -> Path:
    p = tmp / "callrec.toml"
    p.write_text(
        f"""state_dir = "{tmp / "state"}"
[database]
url = "{dsn}"
[spool]
dir = "{tmp / "spool"}"
[storage]
backend = "s3"
endpoint = "{moto.endpoint}"
bucket = "{bucket}"
access_key = "k"
secret_key = "s"
object_lock = "compliance"
[encryption]
recipients = ["{keys.recipient}"]
signing_key_file = "{keys.signing_key}"
[finalize]
file_stable_seconds = 0
[backup]
window_days = 30
[backup.storage]
path = "{tmp / "backups"}"
"""
    )
    return p


async def test_legal_hold_and_backup_commands(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path, moto: MotoServer
) -> None:
    bucket = f"cli-worm-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    conf = config_file(tmp_path, fresh_db, keys, moto, bucket)
    cfg = load_config(conf, env={})
    rid, _ = await insert_recording(dbpool, cfg)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    uri = await dbpool.fetchval("SELECT object_uri FROM recordings WHERE id = $1", rid)
    key = uri.split(f"s3://{bucket}/", 1)[1]

    res = callrec("legal-hold", rid, "on", "--reason", "matter 7", config=conf)
    assert res.returncode == 0, res.stderr
    assert "legal hold ON (also as an S3 Object Lock legal hold" in res.stdout
    assert s3.get_object_legal_hold(Bucket=bucket, Key=key)["LegalHold"]["Status"] == "ON"
    res = callrec("legal-hold", rid, "off", config=conf)
    assert res.returncode == 0 and s3.get_object_legal_hold(Bucket=bucket, Key=key)["LegalHold"]["Status"] == "OFF"
    res = callrec("legal-hold", str(uuid.uuid4()), "on", config=conf)
    assert res.returncode != 0 and "no recording" in res.stderr

    res = callrec("backup", "run", config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 recording(s) verified in file://" in res.stdout
    res = callrec("backup", "list", config=conf)
    assert res.returncode == 0 and "verified" in res.stdout
    assert len(list((tmp_path / "backups").rglob("*.tar"))) == 1
