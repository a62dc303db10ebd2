"""Storage per account: an account's recordings go into its own store ([accounts.<id>.storage]) and
everything afterwards — playback over the API, verify, export, purge — finds them there."""

from __future__ import annotations

import hashlib
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import boto3
import pytest

from controller.api import create_app, start_api
from controller.config import Config, ConfigError, load_config
from controller.metrics import Metrics
from storage import archive, crypto, keyring, manifest, users
from storage.backends.locations import StorageLocations
from storage.finalize import FinalizeWorker
from storage.retention import purge_expired
from tests.storage.conftest import Keys, MotoServer, WebDAVServer, insert_recording


def account_config(tmp: Path, keys: Keys, dav: WebDAVServer, moto: MotoServer, tag: str) -> Config:
    """Written as an administrator would: callrec.toml with two accounts that store elsewhere."""
    text = f"""
state_dir = "{tmp / "state"}"
node_id = "test-node"
[spool]
dir = "{tmp / "spool"}"
[storage]
backend = "local"
path = "{tmp / "store"}"
[encryption]
recipients = ["{keys.recipient}"]
signing_key_file = "{keys.signing_key}"
identity_file = "{keys.identity_file}"
[finalize]
workers = 1
file_stable_seconds = 0.0
retry_base_seconds = 60.0
[accounts.acme.storage]
backend = "webdav"
url = "{dav.url}"
username = "{dav.USER}"
password = "{dav.PASSWORD}"
base_path = "tenants/acme-{tag}"
[accounts.globex.storage]
backend = "s3"
endpoint = "{moto.endpoint}"
bucket = "globex-{tag}"
access_key = "k"
secret_key = "s"
[accounts.initech]                       # an account without its own store uses [storage]
"""
    (tmp / "callrec.toml").write_text(text)
    return load_config(tmp / "callrec.toml", env={})


async def test_two_accounts_store_in_their_own_locations_and_play_back(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, webdav: WebDAVServer, moto: MotoServer
) -> None:
    tag = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]
    moto.create_bucket(f"globex-{tag}")
    cfg = account_config(tmp_path, keys, webdav, moto, tag)
    old = datetime.now(UTC) - timedelta(days=40)
    ids = {
        acct: (await insert_recording(dbpool, cfg, account=acct, seconds=2.0, started_at=old, retention_days=30))[0]
        for acct in ("main", "acme", "globex", "initech")
    }
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    rows = {acct: await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid) for acct, rid in ids.items()}
    assert all(r["state"] == "stored" for r in rows.values()), {a: r["error"] for a, r in rows.items()}

    # Each recording is where its account stores, and nowhere else.
    assert rows["acme"]["storage_location"] == "account:acme"
    assert rows["acme"]["object_uri"].startswith(f"{webdav.url}/tenants/acme-{tag}/")
    assert rows["globex"]["storage_location"] == "account:globex"
    assert rows["globex"]["object_uri"].startswith(f"s3://globex-{tag}/")
    assert rows["main"]["storage_location"] == rows["initech"]["storage_location"] == "default"
    local = sorted(p.name for p in (tmp_path / "store").rglob("*.wav.age"))
    assert local == sorted([f"{ids['main']}.wav.age", f"{ids['initech']}.wav.age"])
    dav_files = webdav.files(f"tenants/acme-{tag}")
    assert [f.rsplit("/", 1)[1] for f in dav_files] == [f"{ids['acme']}.manifest.json", f"{ids['acme']}.wav.age"]
    s3 = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    s3_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=f"globex-{tag}").get("Contents", [])]
    globex = ids["globex"]
    assert sorted(k.rsplit("/", 1)[1] for k in s3_keys) == [f"{globex}.manifest.json", f"{globex}.wav.age"]

    # Playback over the real API: each plays from its own store, decrypted to the stored audio.
    _, token = await users.add_user(dbpool, "boss", "admin", listen_scope="all", download_scope="all")
    runner, port = await start_api(create_app(cfg, dbpool, None, Metrics(), {}), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for acct, rid in ids.items():
                async with http.get(f"http://127.0.0.1:{port}/api/v1/recordings/{rid}/audio") as resp:
                    body = await resp.read()
                    assert resp.status == 200, (acct, body[:200])
                assert hashlib.sha256(body).hexdigest() == rows[acct]["audio_sha256"], acct
                async with http.get(
                    f"http://127.0.0.1:{port}/api/v1/recordings/{rid}/audio", headers={"Range": "bytes=100-199"}
                ) as resp:
                    assert resp.status == 206 and len(await resp.read()) == 100
    finally:
        await runner.cleanup()

    # Verify (no backend given: the configured locations), export from all stores at once.
    for acct, rid in ids.items():
        result = await manifest.verify_recording(dbpool, cfg, rid)
        assert result.ok, (acct, result.summary())
    rows_out = await archive.select_for_export(dbpool)
    out = tmp_path / "all.tar"
    assert archive.export_archive(rows_out, StorageLocations.from_config(cfg), out) == 4
    trusted = crypto.load_public_key(cfg.signing_key_path)
    assert all(r.ok for r in archive.verify_archive(out, trusted))
    with tarfile.open(out) as tar:
        assert len([n for n in tar.getnames() if n.endswith(".wav.age")]) == 4

    # Purge deletes each from its own store.
    report = await purge_expired(dbpool, StorageLocations.from_config(cfg))
    assert sorted(report.purged) == sorted(ids.values()) and not report.errors
    assert list((tmp_path / "store").rglob("*.wav.age")) == []
    assert webdav.files(f"tenants/acme-{tag}") == []
    assert s3.list_objects_v2(Bucket=f"globex-{tag}").get("KeyCount") == 0

    # Restoring the archive puts each recording back into its own account's store.
    ring = await keyring.load_keyring(dbpool, cfg)
    restored = await archive.import_archive(dbpool, StorageLocations.from_config(cfg), out, trusted=ring)
    assert sorted(restored.imported) == sorted(ids.values()) and restored.ok
    back = {acct: await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid) for acct, rid in ids.items()}
    assert back["acme"]["storage_location"] == "account:acme"
    assert back["acme"]["object_uri"].startswith(f"{webdav.url}/tenants/acme-{tag}/")
    assert back["globex"]["object_uri"].startswith(f"s3://globex-{tag}/")
    assert len(webdav.files(f"tenants/acme-{tag}")) == 2
    assert s3.list_objects_v2(Bucket=f"globex-{tag}").get("KeyCount") == 2
    for acct, rid in ids.items():
        assert (await manifest.verify_recording(dbpool, cfg, rid)).ok, acct


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ('[accounts.acme.storage]\nbackend = "ftp"\n', "accounts.acme.storage.backend", "local, s3, webdav"),
        ('[accounts.acme.storage]\nbackend = "webdav"\n', "accounts.acme.storage.url", "http://"),
        ('[accounts.acme.storage]\nbackend = "s3"\nendpoint = "http://x"\n', "accounts.acme.storage.bucket", "a value"),
        ('[accounts.acme.storage]\nbackend = "local"\n', "accounts.acme.storage.path", "own directory"),
        ('[accounts.acme.storage]\nbackend = "local"\npth = "/x"\n', "accounts.acme.storage.pth", "known keys"),
        ('[accounts.acme]\nstorge = {backend = "local"}\n', "accounts.acme.storge", "storage"),
        ('accounts = "acme"\n', "accounts", "a table"),
    ],
)
def test_bad_account_storage_is_refused_naming_the_key(tmp_path: Path, toml: str, key: str, allowed: str) -> None:
    (tmp_path / "c.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.toml", env={})
    assert e.value.key == key and allowed in str(e.value)


def test_account_store_secrets_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[accounts.acme.storage]\nbackend = "webdav"\nurl = "https://dav.example.com/"\npassword = "hunter2"\n'
    )
    red = load_config(tmp_path / "c.toml", env={}).redacted()
    assert red["accounts"]["acme"]["storage"]["password"] == "***"
    assert "hunter2" not in repr(red)
