"""Finalize throughput and memory: a long stereo 8 kHz call through the REAL finalize job, compared
with the `age` CLI encrypting the same file in the same run. Prints a table; asserts nothing.

    .venv/bin/python -m lab.bench.finalize_bench [--minutes 60 10] [--dsn postgresql://...]

Each finalize runs in its own child process (real PostgreSQL, local backend on the same disk), so the
peak RSS reported is that of one finalize, measured by the kernel (ru_maxrss), next to the child's RSS
before the job started (imports, pool). Ratio = age CLI seconds / finalize seconds (higher is better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

RATE = 8000
DEFAULT_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def write_tone_wav(path: Path, freqs: list[float], minutes: float) -> int:
    """A WAV with one tone per channel, written in 10 s chunks (the parent stays small too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(minutes * 60 * RATE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(freqs))
        w.setsampwidth(2)
        w.setframerate(RATE)
        for start in range(0, frames, RATE * 10):
            t = (np.arange(start, min(frames, start + RATE * 10)) / RATE)[:, None]
            data = (np.sin(2 * np.pi * np.array(freqs)[None, :] * t) * 8000).astype("<i2")
            w.writeframes(data.tobytes())
    return path.stat().st_size


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def child(layout: str, minutes: float, dsn: str, base: Path, recipient: str) -> dict[str, float]:
    from controller.config import Config, EncryptionConfig, FinalizeConfig, SpoolConfig, StorageConfig
    from controller.metrics import Metrics
    from storage import db
    from storage.finalize import FinalizeWorker

    cfg = Config(
        state_dir=str(base / "state"),
        spool=SpoolConfig(dir=str(base / "spool")),
        storage=StorageConfig(path=str(base / "store")),
        encryption=EncryptionConfig(recipients=(recipient,)),  # signing key created in state_dir/keys
        finalize=FinalizeConfig(workers=1, file_stable_seconds=0.0),
    )
    rid, started = str(uuid.uuid4()), datetime.now(UTC)
    shard = cfg.spool_dir / f"{started:%Y/%m/%d}"
    if layout == "freeswitch":
        files = {"stereo": str(shard / f"{rid}.wav")}
        write_tone_wav(Path(files["stereo"]), [440, 880], minutes)
    else:
        files = {"rx": str(shard / f"{rid}-rx.wav"), "tx": str(shard / f"{rid}-tx.wav")}
        write_tone_wav(Path(files["rx"]), [440], minutes)
        write_tone_wav(Path(files["tx"]), [880], minutes)
    pool = await db.create_pool(dsn, min_size=1, max_size=3)
    await pool.execute(
        "INSERT INTO recordings (id, pbx, pbx_kind, state, spool_files, started_at, stopped_at, retention_until)"
        " VALUES ($1, 'bench', $2, 'stopped', $3, $4, $4, $5)",
        rid,
        layout,
        files,
        started,
        started + timedelta(days=1),
    )
    await pool.execute("INSERT INTO finalize_jobs (recording_id) VALUES ($1)", rid)
    worker = FinalizeWorker(pool, cfg, Metrics(), "bench")
    before = rss_mb()
    t0 = time.perf_counter()
    await worker.drain()
    seconds = time.perf_counter() - t0
    state = await pool.fetchval("SELECT state FROM recordings WHERE id = $1", rid)
    size = await pool.fetchval("SELECT object_size FROM recordings WHERE id = $1", rid)
    await pool.close()
    if state != "stored":
        raise SystemExit(f"finalize did not store the recording: {state}")
    return {"seconds": seconds, "rss_before_mb": before, "peak_rss_mb": rss_mb(), "object_bytes": float(size)}


def age_cli_seconds(src: Path, recipient: str, out: Path, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["age", "-r", recipient, "-o", str(out), str(src)], check=True)
        best = min(best, time.perf_counter() - t0)
        out.unlink()
    return best


def encrypt_io_seconds(src: Path, recipient: str, out: Path, runs: int = 3) -> float:
    """pyrage.encrypt_io alone (no hashes, no fsync): the ceiling for anything built on pyrage."""
    import pyrage
    from pyrage import x25519

    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        with open(src, "rb") as fin, open(out, "wb") as fout:
            pyrage.encrypt_io(fin, fout, [x25519.Recipient.from_str(recipient)])
        best = min(best, time.perf_counter() - t0)
        out.unlink()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[60.0, 10.0])
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server; a throw-away database is created")
    ap.add_argument("--runs", type=int, default=3, help="finalize runs per case (best is reported)")
    ap.add_argument(
        "--child", nargs=5, metavar=("LAYOUT", "MINUTES", "DSN", "DIR", "RECIPIENT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        layout, minutes, dsn, base, recipient = args.child
        print(json.dumps(asyncio.run(child(layout, float(minutes), dsn, Path(base), recipient))))
        return

    import asyncpg

    from storage import db

    async def make_db() -> tuple[str, str]:
        name = f"callrec_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(args.dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = args.dsn.rsplit("/", 1)[0] + "/" + name
        conn = await db.connect(dsn)
        await db.migrate(conn)
        await conn.close()
        return name, dsn

    async def drop_db(name: str) -> None:
        admin = await asyncpg.connect(args.dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    name, dsn = asyncio.run(make_db())
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="callrec-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
            base = Path(tmp)
            subprocess.run(["age-keygen", "-o", str(base / "id.txt")], check=True, capture_output=True)
            recipient = subprocess.run(
                ["age-keygen", "-y", str(base / "id.txt")], check=True, capture_output=True, text=True
            ).stdout.strip()
            for minutes in args.minutes:
                ref = base / "ref.wav"
                size = write_tone_wav(ref, [440, 880], minutes)
                age_s = age_cli_seconds(ref, recipient, base / "ref.age")
                io_s = encrypt_io_seconds(ref, recipient, base / "ref.age")
                ref.unlink()
                rows.append((minutes, "encrypt_io", size, age_s, {"seconds": io_s}))
                for layout in ("freeswitch", "asterisk"):
                    best: dict[str, float] | None = None
                    for run in range(args.runs):
                        d = base / f"{layout}-{minutes}-{run}"
                        out = subprocess.run(
                            [
                                sys.executable,
                                "-m",
                                "lab.bench.finalize_bench",
                                "--child",
                                layout,
                                str(minutes),
                                dsn,
                                str(d),
                                recipient,
                            ],
                            capture_output=True,
                            text=True,
                        )
                        if out.returncode != 0:
                            raise SystemExit(f"finalize child failed:\n{out.stderr}")
                        res = json.loads(out.stdout.strip().splitlines()[-1])
                        if best is None or res["seconds"] < best["seconds"]:
                            best = res
                        subprocess.run(["rm", "-rf", str(d)], check=True)
                    assert best is not None
                    rows.append((minutes, layout, size, age_s, best))
    finally:
        asyncio.run(drop_db(name))

    print(f"\nFinalize benchmark — {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{'call':>6} {'path':<10} {'WAV MB':>7} {'age CLI s':>9} {'finalize s':>10} {'MB/s':>6} {'ratio':>6} "
        f"{'RSS before':>10} {'peak RSS':>9}"
    )
    for minutes, layout, size, age_s, r in rows:
        if layout == "encrypt_io":
            print(
                f"{minutes:>4.0f}m {'(pyrage encrypt_io alone)':<25} {age_s:>9.2f} {r['seconds']:>10.2f} "
                f"{size / 1e6 / r['seconds']:>6.0f} {age_s / r['seconds']:>6.2f}"
            )
            continue
        print(
            f"{minutes:>4.0f}m {layout:<10} {size / 1e6:>7.1f} {age_s:>9.2f} {r['seconds']:>10.2f} "
            f"{size / 1e6 / r['seconds']:>6.0f} {age_s / r['seconds']:>6.2f} {r['rss_before_mb']:>8.0f}MB "
            f"{r['peak_rss_mb']:>7.0f}MB"
        )


if __name__ == "__main__":
    main()
