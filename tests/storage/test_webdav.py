"""WebDAV storage against a real wsgidav server process: outages mid-upload, a full server (507),
wrong credentials and a read that loses its connection. Nothing is lost and nothing is stored twice."""

# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from controller.metrics import Metrics
from storage.backends.base import BackendError, manifest_key_for
from storage.backends.webdav import WebDAVBackend
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, WebDAVServer, age_decrypt, insert_recording, make_config


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[WebDAVServer]:
    """A WebDAV server of this test alone: it gets killed, filled up and slowed down."""
    server = WebDAVServer(tmp_path / "server")
    server.start()
    yield server
    server.stop()


def quick_backend(server: WebDAVServer, base: str, attempts: int = 3) -> WebDAVBackend:
    """Few, short retries so that a test sees the backend give up within a second."""
    return WebDAVBackend(
        url=server.url,
        username=server.USER,
        password=server.PASSWORD,
        base_path=base,
        attempts=attempts,
        backoff_base=0.05,
        backoff_max=0.2,
    )


async def _make_due(pool: asyncpg.Pool, rid: str) -> None:
    await pool.execute("UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1", rid)


async def test_server_killed_mid_upload_nothing_lost_retried_and_stored_once(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, dav: WebDAVServer
) -> None:
    cfg = make_config(tmp_path, keys, storage=dav.storage("recs"))
    backend = quick_backend(dav, "recs")
    rid, files = await insert_recording(dbpool, cfg, seconds=60.0)  # ~1.9 MB of ciphertext
    spool_sha = hashlib.sha256(Path(files["stereo"]).read_bytes()).hexdigest()
    dav.set_put_rate(256 * 1024)  # a slow link: the upload takes seconds

    killed = threading.Event()

    def kill_when_the_upload_is_under_way() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            partial = [f for f in dav.files("recs") if f.endswith(".partial")]
            if partial and (dav.root / "recs" / partial[0]).stat().st_size > 100_000:
                dav.kill()
                killed.set()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_the_upload_is_under_way)
    killer.start()
    worker = FinalizeWorker(dbpool, cfg, Metrics(), "n", backend=backend)
    await worker.drain()
    await asyncio.to_thread(killer.join)
    assert killed.is_set(), "the server was killed while the object was being uploaded"

    row = await dbpool.fetchrow("SELECT state, object_uri FROM recordings WHERE id = $1", rid)
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert row["state"] == "stopped" and row["object_uri"] is None, "not stored, not failed"
    assert job["state"] == "pending" and job["step"] == "upload" and job["attempts"] == 1
    assert "webdav PUT" in job["last_error"] and "gave up after 3 attempts" in job["last_error"]
    assert hashlib.sha256(Path(files["stereo"]).read_bytes()).hexdigest() == spool_sha, "the spool keeps the audio"
    assert not any(f.endswith(".wav.age") for f in dav.files("recs")), "no object under its final name"

    dav.set_put_rate(None)
    dav.start()
    await _make_due(dbpool, rid)
    await worker.drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", row["error"]
    key = backend.key_from_uri(row["object_uri"])
    assert dav.files("recs") == sorted([key, manifest_key_for(key)]), "stored once, the killed upload's leftover gone"
    data = (dav.root / "recs" / key).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["ciphertext_sha256"]
    (tmp_path / "o.age").write_bytes(data)
    assert age_decrypt(keys.identity_file, tmp_path / "o.age", tmp_path / "o.wav").returncode == 0
    assert hashlib.sha256((tmp_path / "o.wav").read_bytes()).hexdigest() == spool_sha
    assert not Path(files["stereo"]).exists()


async def test_insufficient_storage_507_is_named_and_stored_once_space_is_back(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, dav: WebDAVServer
) -> None:
    cfg = make_config(tmp_path, keys, storage=dav.storage("full"))
    rid, files = await insert_recording(dbpool, cfg, seconds=5.0)
    dav.set_quota(10_000)  # far less than one recording
    worker = FinalizeWorker(dbpool, cfg, Metrics(), "n")
    await worker.drain()

    row = await dbpool.fetchrow("SELECT state FROM recordings WHERE id = $1", rid)
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert row["state"] == "stopped" and job["state"] == "pending" and job["attempts"] == 1
    assert "507 Insufficient Storage" in job["last_error"] and "out of space" in job["last_error"]
    assert "gave up" not in job["last_error"], "a full server is reported at once, not hammered with retries"
    st = await worker.status()
    assert "507" in st.last_error and not st.ok
    assert Path(files["stereo"]).exists()
    assert dav.files("full") == [], "nothing half-written on the server"

    dav.set_quota(None)  # the administrator made room
    await _make_due(dbpool, rid)
    await worker.drain()
    row = await dbpool.fetchrow("SELECT state, object_uri FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored"
    assert [f for f in dav.files("full") if f.endswith(".wav.age")] == [row["object_uri"].split("/full/")[1]]
    assert len(dav.files("full")) == 2 and not Path(files["stereo"]).exists()


def test_wrong_credentials_are_reported_with_the_status(dav: WebDAVServer) -> None:
    b = WebDAVBackend(url=dav.url, username=dav.USER, password="wrong-Pa55", base_path="x", attempts=1)
    with pytest.raises(BackendError, match=r"MKCOL .*: 401 .*storage.username") as e:
        b.check()
    with pytest.raises(BackendError, match="401") as e2:
        b.put_bytes("2026/01/01/a.manifest.json", b"{}")
    assert dav.files() == []
    assert "wrong-Pa55" not in str(e.value) + str(e2.value), "the password is never part of an error"


def test_a_read_that_loses_its_connection_resumes_with_a_range_request(dav: WebDAVServer, tmp_path: Path) -> None:
    """Playback and export stream large objects: a server restart mid-read resumes at the offset."""
    b = quick_backend(dav, "big", attempts=6)
    b.backoff_max = 1.0
    data = os.urandom(24 * 1024 * 1024)  # larger than what socket buffers hold
    b.put_bytes("2026/01/01/big.wav.age", data)
    with b.open_read("2026/01/01/big.wav.age") as f:
        head = f.read(65536)
        dav.kill()
        dav.start()
        rest = f.read()
        resumes = f._resumes  # type: ignore[attr-defined]
    assert head + rest == data
    assert resumes >= 1, "the body was cut and resumed with Range (not merely buffered)"
