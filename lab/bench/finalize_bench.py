"""Finalize throughput and memory vs call length: stereo 8 kHz calls through the REAL finalize job,
against the `age` CLI encrypting the same audio in the same run. Prints a table; asserts nothing.

    .venv/bin/python -m lab.bench.finalize_bench [--minutes 10 30 60 120] [--runs 3] [--quick]

For each call length, each run alternates: `age` CLI on the stereo WAV, a FreeSWITCH finalize, the
`age` CLI again, an Asterisk finalize (two mono legs joined), so a busy moment of the machine hits
both sides alike; the figures are medians over the runs. A finalize child process (real PostgreSQL,
local backend on the same disk) drains a backlog of `--batch` recordings of that length with
`finalize.workers` as `callrec run` has it (the cores; `--workers` to change; more than one encrypts on
worker processes, started before the clock starts as the service starts them before its first job):

- s/rec: its drain time / batch: the cost of one recording when finalize has a backlog (each worker
  overlaps one recording's fsync, manifest, upload and commit with its next one's encryption);
- first: the first recording's latency, claim → row 'stored';
- ratio: age CLI seconds / s/rec (higher is better; the issue's goal), `first` gives the latency ratio;
- CPU: CPU seconds per recording (the child and its encryption processes, all threads) next to the
  `age` CLI's: on a machine with no idle core the wall-clock ratio follows the CPU ratio (see the
  CPU budget lines printed under the table);
- peak RSS: the child's ru_maxrss (kernel), next to its RSS before the drain (imports, pool), and the
  encryption processes' peak (VmHWM): flat when memory does not grow with the call length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import statistics
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
LENGTHS = [10.0, 30.0, 60.0, 120.0]
QUICK_LENGTHS = [10.0, 30.0, 60.0]


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


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker_rss_mb() -> float:
    """Peak RSS of the encryption worker processes (VmHWM; 0 when encryption ran in this process)."""
    import psutil

    peak = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, psutil.Error):
            continue
    return peak


def cpu_all() -> float:
    """CPU seconds of this process and of the encryption worker processes (psutil: they are alive)."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def child(
    layout: str, batch: int, workers: int, dsn: str, base: Path, src: Path, recipient: str
) -> dict[str, float]:
    """Finalize `batch` recordings whose spool files are hard links to the WAV(s) in `src`, with
    `workers` concurrent jobs (as `callrec run` does; > 1 encrypts on worker processes, started
    before the clock starts, as the service starts them before its first job)."""
    from controller.config import Config, EncryptionConfig, FinalizeConfig, SpoolConfig, StorageConfig
    from controller.metrics import Metrics
    from storage import db
    from storage.finalize import FinalizeWorker

    cfg = Config(
        state_dir=str(base / "state"),
        spool=SpoolConfig(dir=str(base / "spool")),
        storage=StorageConfig(path=str(base / "store")),
        encryption=EncryptionConfig(recipients=(recipient,)),  # signing key created in state_dir/keys
        finalize=FinalizeConfig(workers=workers, file_stable_seconds=0.0),
    )
    pool = await db.create_pool(dsn, min_size=1, max_size=3)
    started = datetime.now(UTC)
    shard = cfg.spool_dir / f"{started:%Y/%m/%d}"
    shard.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(batch):
        rid = str(uuid.uuid4())
        legs = {"stereo": "stereo.wav"} if layout == "freeswitch" else {"rx": "rx.wav", "tx": "tx.wav"}
        files = {}
        for kind, name in legs.items():
            files[kind] = str(shard / f"{rid}-{kind}.wav")
            os.link(src / name, files[kind])  # the spool file (finalize deletes the link, not the source)
        await pool.execute(
            "INSERT INTO recordings (id, pbx, pbx_kind, state, spool_files, started_at, stopped_at,"
            " retention_until) VALUES ($1, 'bench', $2, 'stopped', $3, $4, $4, $5)",
            rid,
            layout,
            files,
            started + timedelta(microseconds=i),
            started + timedelta(days=1),
        )
        await pool.execute("INSERT INTO finalize_jobs (recording_id) VALUES ($1)", rid)
        ids.append(rid)
    worker = FinalizeWorker(pool, cfg, Metrics(), "bench")
    on_processes = workers > 1 and hasattr(worker, "_encrypt_on_process")  # (older code: threads)
    if on_processes:
        from storage import encrypt_procs

        await asyncio.to_thread(encrypt_procs.prestart, workers)
    before = rss_mb()
    c0, t0, wall0 = cpu_all(), time.perf_counter(), datetime.now(UTC)
    await asyncio.gather(*(worker.drain() for _ in range(workers)))  # `run()`'s loops, ending when idle
    seconds, cpu = time.perf_counter() - t0, cpu_all() - c0
    rows = await pool.fetch("SELECT state, stored_at FROM recordings WHERE id = ANY($1::uuid[])", ids)
    await pool.close()
    if any(r["state"] != "stored" for r in rows):
        raise SystemExit(f"finalize did not store the recordings: {[r['state'] for r in rows]}")
    first = min(r["stored_at"] for r in rows)
    return {
        "per_rec": seconds / batch,
        "first": (first - wall0).total_seconds(),
        "cpu_per_rec": cpu / batch,
        "rss_before_mb": before,
        "peak_rss_mb": rss_mb(),
        "worker_rss_mb": worker_rss_mb(),
        "on_processes": float(on_processes),
    }


def age_cli(src: Path, recipient: str, out: Path) -> tuple[float, float]:
    """One `age -r … -o out src`: (wall seconds, CPU seconds of the age process)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["age", "-r", recipient, "-o", str(out), str(src)], check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.unlink()
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def encrypt_io_seconds(src: Path, recipient: str, out: Path) -> tuple[float, float]:
    """pyrage.encrypt_io alone (no hashes, no fsync), the ceiling for anything built on pyrage:
    (wall seconds, CPU seconds)."""
    import pyrage
    from pyrage import x25519

    c0, t0 = cpu_self(), time.perf_counter()
    with open(src, "rb") as fin, open(out, "wb") as fout:
        pyrage.encrypt_io(fin, fout, [x25519.Recipient.from_str(recipient)])
    wall, cpu = time.perf_counter() - t0, cpu_self() - c0
    out.unlink()
    return wall, cpu


def sha256_cpu_seconds(src: Path) -> float:
    """CPU seconds of one SHA-256 over the file (hashlib/OpenSSL): finalize needs two (plain, cipher)."""
    import hashlib

    c0 = cpu_self()
    with open(src, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return cpu_self() - c0


def run_child(
    layout: str, batch: int, workers: int, dsn: str, work: Path, src: Path, recipient: str
) -> dict[str, float]:
    argv = ["--child", layout, str(batch), str(workers), dsn, str(work), str(src), recipient]
    out = subprocess.run(
        [sys.executable, "-m", "lab.bench.finalize_bench", *argv],
        capture_output=True,
        text=True,
    )
    subprocess.run(["rm", "-rf", str(work)], check=True)
    if out.returncode != 0:
        raise SystemExit(f"finalize child failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


Row = tuple[str, dict[str, float]]  # path, figures


def measure(minutes: float, runs: int, batch: int, workers: int, dsn: str, base: Path, recipient: str) -> list[Row]:
    """Alternated runs for one call length; the medians per path."""
    src = base / f"src-{minutes:g}"
    size = write_tone_wav(src / "stereo.wav", [440, 880], minutes)
    write_tone_wav(src / "rx.wav", [440], minutes)
    write_tone_wav(src / "tx.wav", [880], minutes)
    age: list[tuple[float, float]] = []
    io_s: list[tuple[float, float]] = []
    sha_cpu: list[float] = []
    fin: dict[str, list[dict[str, float]]] = {"freeswitch": [], "asterisk": []}
    loads: list[float] = []
    for run in range(runs):
        io_s.append(encrypt_io_seconds(src / "stereo.wav", recipient, base / "ref.age"))
        sha_cpu.append(sha256_cpu_seconds(src / "stereo.wav"))
        for layout in ("freeswitch", "asterisk"):
            age.append(age_cli(src / "stereo.wav", recipient, base / "ref.age"))
            fin[layout].append(run_child(layout, batch, workers, dsn, base / f"{layout}-{run}", src, recipient))
            loads.append(os.getloadavg()[0])
    subprocess.run(["rm", "-rf", str(src)], check=True)
    common = {
        "minutes": minutes,
        "size": float(size),
        "age": statistics.median(a for a, _ in age),
        "age_cpu": statistics.median(c for _, c in age),
        "load": statistics.median(loads),
    }
    io = {
        "per_rec": statistics.median(w for w, _ in io_s),
        "cpu_per_rec": statistics.median(c for _, c in io_s),
        "sha_cpu": statistics.median(sha_cpu),
    }
    rows: list[Row] = [("encrypt_io", common | io)]
    for layout, results in fin.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        med["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
        rows.append((layout, common | med))
    return rows


def print_table(rows: list[Row], runs: int, batch: int, workers: int) -> None:
    la = os.getloadavg()
    procs = any(r.get("on_processes") for _, r in rows)
    print(
        f"\nFinalize vs `age` CLI — {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"medians of {runs} alternated runs, backlog of {batch} recordings per finalize, {workers} worker(s)"
        f"{' (encryption on worker processes)' if procs else ' (threads of one process)'}; load average now "
        f"{la[0]:.1f} {la[1]:.1f} {la[2]:.1f}"
    )
    print("goal: ratio >= 0.6 FreeSWITCH, >= 0.4 Asterisk (ratio = age CLI s / finalize s per recording)")
    print(
        f"{'call':>5} {'path':<26} {'WAV MB':>7} {'age s':>6} {'fin s/rec':>9} {'MB/s':>5} {'ratio':>6} "
        f"{'first s':>7} {'ratio':>6} {'CPU fin':>7} {'CPU age':>7} {'RSS before':>10} {'peak RSS':>8} {'enc proc':>8} "
        f"{'load1':>5}"
    )
    budget = []
    for path, r in rows:
        mb, age_s, per = r["size"] / 1e6, r["age"], r["per_rec"]
        head = f"{r['minutes']:>4.0f}m {path if path != 'encrypt_io' else '(pyrage encrypt_io alone)':<26} {mb:>7.1f}"
        figures = f"{age_s:>6.2f} {per:>9.2f} {mb / per:>5.0f} {age_s / per:>6.2f}"
        if path == "encrypt_io":
            print(f"{head} {figures} {'':>7} {'':>6} {r['cpu_per_rec']:>7.2f} {r['age_cpu']:>7.2f}")
            floor = r["cpu_per_rec"] + 2 * r["sha_cpu"]
            budget.append(
                f"{r['minutes']:>4.0f}m: age CLI {r['age_cpu']:.2f} CPU-s; finalize needs at least pyrage encrypt_io "
                f"{r['cpu_per_rec']:.2f} + 2 x SHA-256 {r['sha_cpu']:.2f} = {floor:.2f} CPU-s -> CPU-bound ratio "
                f"<= {r['age_cpu'] / floor:.2f}"
            )
            continue
        print(
            f"{head} {figures} {r['first']:>7.2f} {age_s / r['first']:>6.2f} {r['cpu_per_rec']:>7.2f} "
            f"{r['age_cpu']:>7.2f} {r['rss_before_mb']:>8.0f}MB {r['peak_rss_mb']:>6.0f}MB "
            f"{r['worker_rss_mb']:>6.0f}MB {r['load']:>5.1f}"
        )
    print("CPU budget (what a machine with no idle core can give; a free core overlaps the two hashes):")
    for line in budget:
        print("  " + line)
    by = {(path, r["minutes"]): r for path, r in rows}
    fs, ast = by.get(("freeswitch", 60.0)), by.get(("asterisk", 60.0))
    if fs and ast:  # the row, in its own words
        rf, ra = fs["age"] / fs["per_rec"], ast["age"] / ast["per_rec"]
        met = "met" if rf >= 0.6 and ra >= 0.4 else "NOT met (see the CPU budget)"
        print(
            f"\nissue #15 row 4 | finalize 60 min stereo / age CLI | age {fs['age']:.2f} s | FreeSWITCH {rf:.2f}x, "
            f"Asterisk {ra:.2f}x | goal >= 0.6x and >= 0.4x: {met} | load {fs['load']:.1f} on {os.cpu_count()} cores"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", help=f"call lengths (default {LENGTHS})")
    ap.add_argument("--quick", action="store_true", help=f"call lengths {QUICK_LENGTHS} (no 120 min)")
    ap.add_argument("--runs", type=int, default=3, help="alternated runs per length (medians reported)")
    ap.add_argument("--batch", type=int, default=4, help="recordings per finalize drain (backlog)")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server; a throw-away database is created")
    ap.add_argument("--workers", type=int, default=0, help="finalize.workers (default: as `callrec run`, the cores)")
    ap.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        layout, batch, workers, dsn, base, src, recipient = args.child
        res = asyncio.run(child(layout, int(batch), int(workers), dsn, Path(base), Path(src), recipient))
        print(json.dumps(res))
        return
    lengths = args.minutes or (QUICK_LENGTHS if args.quick else LENGTHS)
    from controller import config

    default = getattr(config, "default_finalize_workers", lambda: config.FinalizeConfig().workers)
    workers = args.workers or default()  # `callrec run`'s finalize.workers

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
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="callrec-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
            base = Path(tmp)
            subprocess.run(["age-keygen", "-o", str(base / "id.txt")], check=True, capture_output=True)
            recipient = subprocess.run(
                ["age-keygen", "-y", str(base / "id.txt")], check=True, capture_output=True, text=True
            ).stdout.strip()
            for minutes in lengths:
                rows += measure(minutes, args.runs, args.batch, workers, dsn, base, recipient)
    finally:
        asyncio.run(drop_db(name))
    print_table(rows, args.runs, args.batch, workers)


if __name__ == "__main__":
    main()
