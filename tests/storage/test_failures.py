"""Bad input and outages: nothing is lost, nothing is stored unencrypted, nothing half-written is 'stored'."""

# ruff: noqa: ASYNC230, ASYNC240

from __future__ import annotations

import struct
from pathlib import Path

import asyncpg
import pytest

from controller.metrics import Metrics
from storage import audio
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


@pytest.mark.parametrize("recipients", [(), ("age1notarealrecipient",), None])
async def test_invalid_or_missing_recipient_fails_with_reason_and_stores_nothing(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, recipients: tuple[str, ...] | None
) -> None:
    # None = one valid recipient plus a broken one: never encrypt to a subset of what was configured
    recips = (keys.recipient, keys.recipient[:-3] + "xyz") if recipients is None else recipients
    cfg = make_config(tmp_path, keys, recipients=recips)
    rid, files = await insert_recording(dbpool, cfg)
    metrics = Metrics()
    worker = FinalizeWorker(dbpool, cfg, metrics, "n")
    await worker.drain()

    row = await dbpool.fetchrow("SELECT state, error FROM recordings WHERE id = $1", rid)
    assert row["state"] == "failed"
    assert "recipient" in row["error"]
    assert objects(cfg) == [], "nothing may reach the store"
    assert Path(files["stereo"]).exists(), "the spool keeps the audio until it can be stored encrypted"
    st = await worker.status()
    assert st.failed == 1 and "recipient" in st.config_error and not st.ok
    assert metrics.get("callrec_finalize_config_error") == 1
    assert "callrec_finalize_failed_total" in metrics.render()


async def test_wav_with_zero_header_sizes_is_repaired_and_stored(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, seconds=2.5)
    p = Path(files["stereo"])
    with open(p, "r+b") as f:  # what a PBX crash leaves: the sizes it meant to patch at close are 0
        f.seek(4)
        f.write(struct.pack("<I", 0))
        f.seek(40)
        f.write(struct.pack("<I", 0))
    assert audio.inspect_wav(p).repaired is False
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", row["error"]
    assert row["duration_ms"] == 2500
    assert any("wav_repaired" in w for w in row["manifest"]["warnings"])
    enc = Path(cfg.storage.path) / next(o for o in objects(cfg) if o.endswith(".age"))
    assert age_decrypt(keys.identity_file, enc, tmp_path / "o.wav").returncode == 0
    samples, _ = read_wav(tmp_path / "o.wav")  # the stdlib reader trusts the header: it must be right now
    assert samples.shape == (20000, 2)


def test_header_only_44_byte_file_and_0xffffffff_sizes(tmp_path: Path) -> None:
    from tests.storage.conftest import tone, write_wav

    p = write_wav(tmp_path / "a.wav", tone(CUSTOMER_HZ, 1.0))
    data = bytearray(p.read_bytes())
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    p.write_bytes(bytes(data) + b"\x01")  # plus a torn half frame at the end
    info = audio.repair_wav(p)
    assert info.repaired and info.frames == 8000
    assert audio.repair_wav(p).repaired is False  # idempotent
    empty = tmp_path / "empty.wav"
    empty.write_bytes(p.read_bytes()[:44])
    assert audio.repair_wav(empty).data_size == 0
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    with pytest.raises(audio.AudioError):
        audio.repair_wav(junk)


@pytest.mark.parametrize("layout", ["freeswitch", "asterisk"])
async def test_dual_channel_false_stores_a_mono_mix(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, layout: str
) -> None:
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, layout=layout, dual_channel=False, seconds=2.0)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored", row["error"]
    assert row["manifest"]["audio"]["channels"] == 1
    enc = Path(cfg.storage.path) / next(o for o in objects(cfg) if o.endswith(".age"))
    assert age_decrypt(keys.identity_file, enc, tmp_path / "m.wav").returncode == 0
    samples, rate = read_wav(tmp_path / "m.wav")
    import numpy as np

    spec = np.abs(np.fft.rfft(samples[:, 0].astype(float)))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    both = {round(freqs[i]) for i in np.argsort(spec)[-2:]}
    assert both == {CUSTOMER_HZ, AGENT_HZ}, "a mono mix holds both voices"


async def test_asterisk_leg_missing_is_stored_with_silence_and_a_warning(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, layout="asterisk")
    Path(files["tx"]).unlink()
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored"
    assert any("leg_missing" in w and "tx" in w for w in row["manifest"]["warnings"])
    enc = Path(cfg.storage.path) / next(o for o in objects(cfg) if o.endswith(".age"))
    assert age_decrypt(keys.identity_file, enc, tmp_path / "o.wav").returncode == 0
    samples, rate = read_wav(tmp_path / "o.wav")
    assert round(dominant_hz(samples[:, 0], rate)) == CUSTOMER_HZ
    assert not samples[:, 1].any()


async def test_missing_spool_file_fails_visibly(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, write_audio=False)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    row = await dbpool.fetchrow("SELECT state, error FROM recordings WHERE id = $1", rid)
    assert row["state"] == "failed" and "missing" in row["error"]


async def test_file_still_being_written_waits(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys, file_stable_seconds=3600.0)
    rid, files = await insert_recording(dbpool, cfg)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert job["state"] == "pending" and job["step"] == "wait_closed" and job["attempts"] == 0
    assert "still writing" in job["last_error"]
    assert Path(files["stereo"]).exists() and objects(cfg) == []


async def test_disk_full_during_store_leaves_no_object_then_recovers(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE makes every write past 64 KiB fail with EFBIG, like a full disk, inside the worker
    process exactly when it starts writing ciphertext into the store's filesystem."""
    cfg = make_config(tmp_path, keys)
    rid, files = await insert_recording(dbpool, cfg, seconds=10.0)  # 160 KB of audio
    code, out = run_worker(fresh_db, tmp_path, keys, hook="fsize:before:encrypt:65536")
    assert code == 0, out
    row = await dbpool.fetchrow("SELECT state FROM recordings WHERE id = $1", rid)
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert row["state"] == "stopped", "not stored, not failed: it will be retried"
    assert job["state"] == "pending" and job["attempts"] >= 1 and "too large" in job["last_error"].lower()
    assert objects(cfg) == [], "no half-written object (nor a .partial) is left in the store"
    assert Path(files["stereo"]).exists()
    assert out["status"]["retrying"] == 1 and out["status"]["last_error"]

    await dbpool.execute("UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1", rid)
    code, out = run_worker(fresh_db, tmp_path, keys)
    assert code == 0, out
    row = await dbpool.fetchrow("SELECT state FROM recordings WHERE id = $1", rid)
    assert row["state"] == "stored"
    assert len(objects(cfg)) == 2


async def test_s3_backend_down_is_retried_and_stored_after_recovery(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    from tests.storage.conftest import MotoServer

    server = MotoServer()  # our own server so stopping it disturbs no other test
    cfg = make_config(tmp_path, keys, storage=server.storage("rec-down"))
    rid, files = await insert_recording(dbpool, cfg)
    metrics = Metrics()
    worker = FinalizeWorker(dbpool, cfg, metrics, "n")
    await worker.drain()  # the store is down: the upload fails, the job is retried later
    job = await dbpool.fetchrow("SELECT * FROM finalize_jobs WHERE recording_id = $1", rid)
    assert job["state"] == "pending" and job["step"] == "upload" and job["attempts"] >= 1
    assert (await dbpool.fetchval("SELECT state FROM recordings WHERE id = $1", rid)) == "stopped"
    assert Path(files["stereo"]).exists()
    st = await worker.status()
    assert st.retrying == 1 and "s3" in st.last_error and not st.ok
    assert metrics.get("callrec_finalize_retries_total", step="upload") >= 1

    server.start()
    try:
        server.create_bucket("rec-down")
        await dbpool.execute("UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1", rid)
        await worker.drain()
        row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
        assert row["state"] == "stored"
        assert row["object_uri"].startswith("s3://rec-down/rec/")
        assert not Path(files["stereo"]).exists()
        assert (await worker.status()).ok
    finally:
        server.stop()


PUT_UNDER_LIMIT = """
import resource, signal, sys
from pathlib import Path
from storage.backends.local import LocalBackend
from storage.backends.base import BackendError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
try:
    LocalBackend(sys.argv[1]).put_file("2026/01/01/x.wav.age", Path(sys.argv[2]))
except BackendError as e:
    print("BackendError", e)
    sys.exit(3)
"""


def test_local_backend_copy_on_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """The copy path (source on another filesystem, e.g. an import from /tmp): EFBIG mid-copy → no object."""
    import os
    import subprocess
    import sys
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) to force the copy path")
    with tempfile.NamedTemporaryFile(dir=shm) as src:
        src.write(os.urandom(300_000))
        src.flush()
        root = tmp_path / "store"
        p = subprocess.run(
            [sys.executable, "-c", PUT_UNDER_LIMIT, str(root), src.name], capture_output=True, text=True, timeout=60
        )
    assert p.returncode == 3, p.stdout + p.stderr
    assert "too large" in p.stdout.lower()
    assert [f for f in root.rglob("*") if f.is_file()] == [], "no object and no .partial left behind"


def test_streamed_join_is_byte_identical_to_the_joined_file(tmp_path: Path) -> None:
    """Finalize encrypts Asterisk legs joined on the fly; that stream must be exactly `join_legs`' WAV."""
    import hashlib

    from tests.storage.conftest import tone, write_wav

    rx = write_wav(tmp_path / "rx.wav", tone(CUSTOMER_HZ, 20.0))
    tx = write_wav(tmp_path / "tx.wav", tone(AGENT_HZ, 17.3))  # the agent leg closed earlier
    for stereo in (True, False):
        plan = audio.plan_join(rx, tx, stereo=stereo)
        assert plan is not None
        streamed = b"".join(plan.chunks())
        audio.join_legs(rx, tx, tmp_path / "j.wav", stereo=stereo)
        assert hashlib.sha256(streamed).digest() == hashlib.sha256((tmp_path / "j.wav").read_bytes()).digest()
        assert len(streamed) == plan.size and plan.info.duration_ms == 20000
    odd = write_wav(tmp_path / "tx16k.wav", tone(AGENT_HZ, 1.0, rate=16000), rate=16000)
    assert audio.plan_join(rx, odd) is None, "legs of different rates go through the file-based join"
