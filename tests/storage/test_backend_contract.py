"""The storage backend contract, run against every backend: a local directory, a real S3 server
process (moto) and a real WebDAV server process (wsgidav). What finalize, playback, verify, export and
purge rely on must hold for each of them alike."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from controller.config import StorageConfig
from controller.metrics import Metrics
from storage import manifest
from storage.backends.base import Backend, BackendError, ObjectMissing, manifest_key_for, open_backend
from storage.finalize import FinalizeWorker
from storage.retention import purge_expired
from tests.storage.conftest import (
    AGENT_HZ,
    CUSTOMER_HZ,
    Keys,
    MotoServer,
    WebDAVServer,
    age_decrypt,
    dominant_hz,
    insert_recording,
    make_config,
    read_wav,
)

BACKENDS = ["local", "s3", "webdav"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageConfig]:
    """A fresh, empty store of each kind (its own directory / bucket / WebDAV folder)."""
    tag = uuid.uuid4().hex[:10]
    if request.param == "local":
        yield StorageConfig(backend="local", path=str(tmp_path / "store"))
    elif request.param == "s3":
        moto: MotoServer = request.getfixturevalue("moto")
        moto.create_bucket(f"contract-{tag}")
        yield moto.storage(f"contract-{tag}")
    else:
        dav: WebDAVServer = request.getfixturevalue("webdav")
        yield dav.storage(f"contract/{tag}")


def backend_of(store: StorageConfig, tmp_path: Path) -> Backend:
    return open_backend(store, tmp_path / "default-store")


def test_put_read_size_exists_and_uri_round_trip(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    b.check()
    data = os.urandom(300_000)
    src = tmp_path / "obj.age"
    src.write_bytes(data)
    key = "2026/01/02/rec-1.wav.age"
    assert not b.exists(key)
    b.put_file(key, src)
    assert b.exists(key) and b.size(key) == len(data)
    assert b.get_bytes(key) == data
    with b.open_read(key) as f:  # a stream, read in pieces
        parts = []
        while chunk := f.read(65536):
            parts.append(chunk)
    assert b"".join(parts) == data
    b.get_file(key, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == data
    uri = b.uri(key)
    assert b.key_from_uri(uri) == key
    assert src.read_bytes() == data, "the source file is left intact"


def test_range_reads_return_exactly_the_asked_bytes(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    data = os.urandom(100_000)
    b.put_bytes("2026/01/02/r.wav.age", data)
    assert b.read_range("2026/01/02/r.wav.age", 0, 44) == data[:44]
    assert b.read_range("2026/01/02/r.wav.age", 70_000, 1000) == data[70_000:71_000]
    assert b.read_range("2026/01/02/r.wav.age", 99_990, 100) == data[99_990:], "a range past the end is cut"


def test_put_replaces_an_object_of_the_same_key(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    b.put_bytes("2026/01/02/x.manifest.json", b"first version, longer than the second")
    b.put_bytes("2026/01/02/x.manifest.json", b"second")
    assert b.get_bytes("2026/01/02/x.manifest.json") == b"second"
    assert b.size("2026/01/02/x.manifest.json") == 6
    assert list(b.list_keys()) == ["2026/01/02/x.manifest.json"], "no temporary object is left or listed"


def test_missing_objects(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    with pytest.raises(ObjectMissing):
        b.open_read("2026/01/02/none.wav.age")
    with pytest.raises(ObjectMissing):
        b.size("2026/01/02/none.wav.age")
    assert not b.exists("2026/01/02/none.wav.age")
    b.delete("2026/01/02/none.wav.age")  # purge is retried: deleting what is gone is no error


def test_list_by_prefix_and_delete(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    keys = ["2026/01/02/a.wav.age", "2026/01/02/a.manifest.json", "2026/01/03/b.wav.age", "2026/02/01/c.wav.age"]
    for k in keys:
        b.put_bytes(k, k.encode())
    assert sorted(b.list_keys()) == sorted(keys)
    assert sorted(b.list_keys("2026/01/")) == sorted(keys[:3])
    assert sorted(b.list_keys("2026/01/02/a")) == sorted(keys[:2])
    assert list(b.list_keys("2025/")) == []
    b.delete(keys[0])
    assert not b.exists(keys[0]) and b.exists(keys[1])
    assert sorted(b.list_keys()) == sorted(keys[1:])


def test_foreign_uri_is_refused(store: StorageConfig, tmp_path: Path) -> None:
    b = backend_of(store, tmp_path)
    for foreign in ("file:///etc/passwd", "s3://other-bucket/x.wav.age", "http://elsewhere.example/dav/x.wav.age"):
        with pytest.raises(ValueError):
            b.key_from_uri(foreign)
    with pytest.raises(ValueError):
        b.put_bytes("../escape.wav.age", b"x")


def test_an_unreachable_store_fails_check_with_a_backend_error(store: StorageConfig, tmp_path: Path) -> None:
    import dataclasses
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    if store.backend == "local":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        broken = dataclasses.replace(store, path=str(blocker / "store"))
    elif store.backend == "s3":
        broken = dataclasses.replace(store, endpoint=dead)
    else:
        broken = dataclasses.replace(store, url=dead + "/dav")
    b = backend_of(broken, tmp_path)
    if store.backend == "webdav":
        b.attempts, b.backoff_base = 2, 0.01  # type: ignore[attr-defined]
    with pytest.raises(BackendError):
        b.check()


async def test_finalize_verify_play_and_purge_through_the_backend(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, store: StorageConfig
) -> None:
    """A recording goes through finalize into the store, verifies, decrypts with the age CLI to the
    right voices on the right channels, and a purge removes its audio and manifest."""
    cfg = make_config(tmp_path, keys, storage=store)
    backend = backend_of(store, tmp_path)
    rid, _ = await insert_recording(dbpool, cfg, seconds=2.0, started_at=datetime.now(UTC) - timedelta(days=10))
    await FinalizeWorker(dbpool, cfg, Metrics(), "n", backend=backend).drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", row["error"]
    key = backend.key_from_uri(row["object_uri"])
    assert sorted(backend.list_keys()) == sorted([key, manifest_key_for(key)])

    body = backend.get_bytes(key)
    assert hashlib.sha256(body).hexdigest() == row["ciphertext_sha256"]
    (tmp_path / "o.age").write_bytes(body)
    assert age_decrypt(keys.identity_file, tmp_path / "o.age", tmp_path / "o.wav").returncode == 0
    samples, rate = read_wav(tmp_path / "o.wav")
    assert round(dominant_hz(samples[:, 0], rate)) == CUSTOMER_HZ
    assert round(dominant_hz(samples[:, 1], rate)) == AGENT_HZ

    result = await manifest.verify_recording(dbpool, cfg, rid, backend=backend)
    assert result.ok, result.summary()

    report = await purge_expired(dbpool, backend, now=row["retention_until"] + timedelta(seconds=1))
    assert report.purged == [rid]
    assert list(backend.list_keys()) == []
