"""Fixtures for the storage tests: real keys (the `age-keygen` CLI), tone WAVs, journal rows, a fresh
database per test (finalize workers must only ever see the jobs of their own test)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from controller.config import Config, EncryptionConfig, FinalizeConfig, SpoolConfig, StorageConfig
from storage import crypto, db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "storage"
RATE = 8000
CUSTOMER_HZ, AGENT_HZ = 440, 880

TIMELINE = {
    "segments": [{"party": "2001", "class": "internal", "start_ms": 0, "end_ms": None}],
    "pauses": [{"start_ms": 1000, "end_ms": 1500, "by": "agent:2001"}],
    "transfers": [],
    "stop": {"at_ms": 3000, "reason": "hangup"},
}


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")


def write_wav(path: Path, *channels: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(c) for c in channels)
    data = np.zeros((n, len(channels)), dtype="<i2")
    for i, c in enumerate(channels):
        data[: len(c), i] = c
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as (frames, channels) and the rate."""
    with wave.open(str(path), "rb") as w:
        raw, ch, rate = w.readframes(w.getnframes()), w.getnchannels(), w.getframerate()
    return np.frombuffer(raw, dtype="<i2").reshape(-1, ch), rate


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spec = np.abs(np.fft.rfft(samples.astype(float)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spec[1:])) + 1])


@dataclasses.dataclass(frozen=True)
class Keys:
    identity_file: Path
    recipient: str
    signing_key: Path
    other_identity_file: Path
    other_recipient: str


def _age_keygen(path: Path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    rec = _age_keygen(d / "identity.txt")
    other = _age_keygen(d / "other.txt")
    crypto.generate_signing_key(d / "signing.key")
    return Keys(d / "identity.txt", rec, d / "signing.key", d / "other.txt", other)


def make_config(tmp: Path, keys: Keys, **over: Any) -> Config:
    storage = over.pop("storage", StorageConfig(backend="local", path=str(tmp / "store")))
    recipients = over.pop("recipients", (keys.recipient,))
    fin_args: dict[str, Any] = {
        "workers": 1,
        "max_attempts": 5,
        "retry_base_seconds": 60.0,  # a retry is never due within one drain(); tests make it due by SQL
        "retry_max_seconds": 60.0,
        "file_stable_seconds": 0.0,
    }
    fin = FinalizeConfig(**(fin_args | over))
    return Config(
        state_dir=str(tmp / "state"),
        node_id="test-node",
        spool=SpoolConfig(dir=str(tmp / "spool")),
        storage=storage,
        encryption=EncryptionConfig(
            recipients=tuple(recipients), signing_key_file=str(keys.signing_key), identity_file=str(keys.identity_file)
        ),
        finalize=fin,
    )


@pytest.fixture
async def dbpool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(fresh_db, min_size=1, max_size=6)
    yield p
    await p.close()


def spool_path(cfg: Config, rid: str, suffix: str = "", started: datetime | None = None) -> Path:
    d = started or datetime.now(UTC)
    return cfg.spool_dir / f"{d:%Y/%m/%d}" / f"{rid}{suffix}.wav"


async def insert_recording(
    pool: asyncpg.Pool,
    cfg: Config,
    *,
    layout: str = "freeswitch",
    seconds: float = 3.0,
    dual_channel: bool = True,
    started_at: datetime | None = None,
    retention_days: int = 183,
    write_audio: bool = True,
    enqueue: bool = True,
    account: str = "main",
) -> tuple[str, dict[str, str]]:
    """What the recorder writes (calls row, recordings row 'stopped', job, NOTIFY) plus the PBX's spool files."""
    rid, cid = str(uuid.uuid4()), str(uuid.uuid4())
    started = started_at or datetime.now(UTC)
    if layout == "freeswitch":
        files = {"stereo": str(spool_path(cfg, rid, "", started))}
        if write_audio:
            write_wav(Path(files["stereo"]), tone(CUSTOMER_HZ, seconds), tone(AGENT_HZ, seconds))
    else:
        files = {"rx": str(spool_path(cfg, rid, "-rx", started)), "tx": str(spool_path(cfg, rid, "-tx", started))}
        if write_audio:
            write_wav(Path(files["rx"]), tone(CUSTOMER_HZ, seconds))  # r() = read from the customer channel
            write_wav(Path(files["tx"]), tone(AGENT_HZ, seconds))  # t() = written to it (the agent)
    policy = {
        "record": True,
        "sources": {"record": "account"},
        "settings": {"dual_channel": dual_channel, "retention_days": retention_days},
        "account": account,
        "direction": "inbound",
        "number": "+15551234567",
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO calls (id, pbx, pbx_call_id, account_id, direction, customer_number, account_number, agent,"
            " started_at) VALUES ($1, 'pbx1', $2, $4, 'inbound', '+15550001111', '+15551234567', '2001', $3)",
            cid,
            f"pbx-{rid[:8]}",
            started,
            account,
        )
        await conn.execute(
            "INSERT INTO recordings (id, call_id, pbx, pbx_kind, customer_leg, account_id, direction, customer_number,"
            " account_number, agent, agents, state, policy, dual_channel, spool_files, timeline, started_at,"
            " stopped_at, stop_reason, retention_until) VALUES ($1, $2, 'pbx1', $3, 'leg-1', $11, 'inbound',"
            " '+15550001111', '+15551234567', '2001', '{2001}', 'stopped', $4, $5, $6, $7, $8, $9, 'hangup', $10)",
            rid,
            cid,
            layout,
            policy,
            dual_channel,
            files,
            TIMELINE,
            started,
            started + timedelta(seconds=seconds),
            started + timedelta(days=retention_days),
            account,
        )
        if enqueue:
            await conn.execute("INSERT INTO finalize_jobs (recording_id) VALUES ($1) ON CONFLICT DO NOTHING", rid)
            await conn.execute("NOTIFY callrec_finalize")
    return rid, files


def objects(cfg: Config) -> list[str]:
    root = Path(cfg.storage.path)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def age_decrypt(identity: Path, src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["age", "-d", "-i", str(identity), "-o", str(dst), str(src)], capture_output=True, text=True)


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class MotoServer:
    """A real S3 server process (moto in server mode) on 127.0.0.1; stop()/start() simulate an outage."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import shutil
        import sys
        import time
        import urllib.request

        exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # our own child, by its pid
            self.proc.wait(10)
            self.proc = None

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        ).create_bucket(Bucket=name)

    def storage(self, bucket: str) -> StorageConfig:
        return StorageConfig(
            backend="s3", endpoint=self.endpoint, bucket=bucket, access_key="k", secret_key="s", prefix="rec"
        )


@pytest.fixture(scope="session")
def moto() -> Any:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


class WebDAVServer:
    """A real WebDAV server process (wsgidav + cheroot, tests/storage/webdav_server.py) on 127.0.0.1.

    stop()/start() simulate an outage on the same port; set_quota() makes PUTs answer 507 while the
    store is full; set_put_rate() slows uploads down (bytes/s) so a test can kill the server mid-PUT."""

    USER, PASSWORD = "callrec", "dav-secret"

    def __init__(self, base: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root, self.control = base / "davroot", base / "davcontrol"
        self.url = f"http://127.0.0.1:{self.port}/dav"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import sys
        import time
        import urllib.error
        import urllib.request

        root_dir = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.storage.webdav_server",
                str(self.root),
                str(self.control),
                str(self.port),
                self.USER,
                self.PASSWORD,
            ],
            cwd=root_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return
            except urllib.error.HTTPError:  # 401: it is up and asks for credentials
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("WebDAV test server did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, like a crashed or unplugged host."""
        if self.proc is not None:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def set_quota(self, nbytes: int | None) -> None:
        self._control("quota", nbytes)

    def set_put_rate(self, bytes_per_second: int | None) -> None:
        self._control("put_rate", bytes_per_second)

    def _control(self, name: str, value: int | None) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        if value is None:
            (self.control / name).unlink(missing_ok=True)
        else:
            (self.control / name).write_text(str(value))

    def files(self, base_path: str = "") -> list[str]:
        """Every file the server holds under base_path (partials included): what is really on its disk."""
        root = self.root / base_path
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def storage(self, base_path: str) -> StorageConfig:
        return StorageConfig(
            backend="webdav", url=self.url, username=self.USER, password=self.PASSWORD, base_path=base_path
        )


@pytest.fixture(scope="session")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = WebDAVServer(tmp_path_factory.mktemp("webdav"))
    server.start()
    yield server
    server.stop()
