"""The service under call load: recording-start latency, controller CPU and RSS, finalize drain rate.

    .venv/bin/python -m lab.bench.load_bench [--pbx freeswitch asterisk] [--rate 100] [--concurrent 1000]
        [--repeats 3] [--quick]

The simulator (lab.esl_sim / lab.ami_sim, real TCP, real WAV files) is the load generator in THIS
process; the service runs as `callrec run` composes it (lab.bench.load_service: real PostgreSQL,
finalize to encrypted local storage, API up) in a CHILD process, so its CPU and RSS are its own.
Calls arrive at `rate` per second and each talks `concurrent / rate` seconds, so `concurrent` calls
are up at once in the steady state. Finalize is held during the load, so the controller's own cost
is measured apart; then the backlog of every recording is released and its drain timed.
Each PBX runs `--repeats` alternated pairs: the service, and its anchor (lab.bench.anchors: the bare
greenswitch / panoramisk client reacting to the same simulator under the same load); the latency row
gives the median p99 of each, their ratio and the goal. For FreeSWITCH a second row times both from
the simulator's own write of the CHANNEL_BRIDGE frame (`from_pbx`), so time a frame waits in the
socket while the client is busy counts too. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
from pyrage import x25519

from lab import scenarios as sc
from lab.ami_sim import AmiSimulator, SimChannel
from lab.bench.load_report import Paired, Result, from_pbx, paired_rows, print_table, rows
from lab.esl_sim import EslSimulator

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def load_scenario(talk_ms: int) -> sc.Scenario:
    return sc.Scenario(
        "bench_inbound",
        "inbound call for load: answer, talk, customer hangs up",
        (sc.PlaceCall("inbound"), sc.Ring(100), sc.Answer(), sc.Talk(talk_ms), sc.Hangup("customer")),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
    )


class LoadAmiSimulator(AmiSimulator):
    """Under load one wall-clock ticker advances every MixMonitor (one loop instead of one per call),
    and a call's talk time just passes."""

    async def elapse(self, ms: float, channels: list[SimChannel] | None = None) -> None:
        await asyncio.sleep(ms / 1000 * self.time_scale)

    async def ticker(self, step_ms: float = 250.0) -> None:
        while True:
            await asyncio.sleep(step_ms / 1000)
            self.advance_audio(step_ms)


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def write_config(base: Path, dsn: str, pbx: str, port: int) -> Path:
    identity = x25519.Identity.generate()
    node = (
        f'[[pbx]]\nname = "fs1"\ntype = "freeswitch"\nport = {port}\npassword = "ClueCon-lab"\n'
        if pbx == "freeswitch"
        else f'[[pbx]]\nname = "ast1"\ntype = "asterisk"\nport = {port}\nusername = "callrec"\n'
        'secret = "callrec-secret"\n'
    )
    path = base / "callrec.toml"
    path.write_text(
        f'state_dir = "{base / "state"}"\nnode_id = "bench"\nlog_level = "warning"\n'
        f'[database]\nurl = "{dsn}"\npool_max = 10\n{node}'
        f'[encryption]\nrecipients = ["{identity.to_public()}"]\n'
        "[api]\nport = 0\n"
        "[finalize]\nfile_stable_seconds = 0.2\npoll_interval_seconds = 0.5\n"
    )
    return path


async def _count_states(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await conn.fetch("SELECT state, count(*) AS n FROM recordings GROUP BY 1")}


async def run_one(pbx: str, rate: float, concurrent: int, calls: int, server_dsn: str, *, drain: bool = True) -> Result:
    """One run of the service under load; `drain=False` stops after the load (latency, CPU, RSS only)."""
    res = Result(pbx)
    talk_ms = int(concurrent / rate * 1000)
    name = f"callrec_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(server_dsn, name)
    sim: EslSimulator | LoadAmiSimulator
    sim = EslSimulator(time_scale=1.0) if pbx == "freeswitch" else LoadAmiSimulator(time_scale=1.0)
    if isinstance(sim, EslSimulator):
        sim.bridge_sent = {}
    await sim.start()
    tmp = tempfile.TemporaryDirectory(prefix="callrec-bench-")
    base = Path(tmp.name)
    cfg = write_config(base, dsn, pbx, sim.port)
    out = base / "probe.json"
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "lab.bench.load_service", str(cfg), str(out), "--hold-finalize"], cwd=ROOT
    )
    proc = psutil.Process(child.pid)
    conn: asyncpg.Connection | None = None
    ticker: asyncio.Task[None] | None = None
    try:
        if isinstance(sim, EslSimulator):
            ok = await sim.wait_connected(30)
        else:
            ticker = asyncio.create_task(sim.ticker())
            ok = await _until(lambda: any(s for s in sim.sessions), 30)
        if not ok:
            raise RuntimeError("the service never connected to the simulator")
        await asyncio.sleep(2.0)  # startup settles (migrations, pool, first resync)
        conn = await asyncpg.connect(dsn)
        res.rss_idle_mb = proc.memory_info().rss / 2**20
        cpu0 = sum(proc.cpu_times()[:2])
        await drive_load(sim, rate, calls, talk_ms, proc, res)
        res.calls = calls

        async def all_closed() -> bool:
            st = await _count_states(conn)
            return sum(st.values()) >= calls and not st.get("recording") and not st.get("paused")

        await _until_async(all_closed, 60)
        res.cpu_load_s = sum(proc.cpu_times()[:2]) - cpu0
        if not drain:
            return res
        # finalize backlog drain
        cpu1 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        child.send_signal(signal.SIGUSR1)

        async def drained() -> bool:
            st = await _count_states(conn)
            return not st.get("stopped") and not st.get("recording")

        await _until_async(drained, 900)
        res.drain_s = time.monotonic() - t0
        res.cpu_drain_s = sum(proc.cpu_times()[:2]) - cpu1
        res.states = await _count_states(conn)
        res.recordings = sum(res.states.values())
    finally:
        if ticker:
            ticker.cancel()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(child.wait, 30)
            except subprocess.TimeoutExpired:
                child.kill()
        if out.exists():
            probe = json.loads(out.read_text())
            res.latencies_ms = [x * 1000 for x in probe["latencies"]]
            res.first_ms = [x * 1000 for x in probe["first"]]
            res.unmatched = probe["unmatched"]
            res.errors = probe["recorder_errors"]
            res.from_pbx_ms = from_pbx(getattr(sim, "bridge_sent", None), probe.get("written", {}))
        if conn is not None:
            await conn.close()
        await sim.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        tmp.cleanup()
    return res


async def drive_load(sim: Any, rate: float, calls: int, talk_ms: int, proc: psutil.Process, res: Result) -> None:
    """Place `calls` calls at `rate` per second (each talking `talk_ms`) and wait for them all to end;
    peak concurrency and the RSS of `proc` are sampled meanwhile."""
    scen = load_scenario(talk_ms)
    tasks: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    sampler = asyncio.create_task(_sample(sim, proc, res))
    try:
        for i in range(calls):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if isinstance(sim, EslSimulator):
                tasks.append(asyncio.create_task(sim.run(scen, settle=False)))
            else:
                tasks.append(asyncio.create_task(sim.play(scen, settle=False)))
        await asyncio.gather(*tasks)
    finally:
        sampler.cancel()


async def run_anchor(pbx: str, rate: float, concurrent: int, calls: int) -> tuple[list[float], list[float]]:
    """The same load on a fresh simulator, with the bare library client (lab.bench.anchors) in the
    child process instead of the service: its bridge → command latencies in ms, and (FreeSWITCH) the
    same from the simulator's write of the bridge (`from_pbx`)."""
    talk_ms = int(concurrent / rate * 1000)
    sim: EslSimulator | LoadAmiSimulator
    sim = EslSimulator(time_scale=1.0) if pbx == "freeswitch" else LoadAmiSimulator(time_scale=1.0)
    if isinstance(sim, EslSimulator):
        sim.bridge_sent = {}
    await sim.start()
    tmp = tempfile.TemporaryDirectory(prefix="callrec-anchor-")
    out = Path(tmp.name) / "anchor.json"
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "lab.bench.anchors", pbx, str(sim.port), str(out), tmp.name], cwd=ROOT
    )
    proc = psutil.Process(child.pid)
    ticker: asyncio.Task[None] | None = None
    try:
        if isinstance(sim, EslSimulator):
            ok = await sim.wait_connected(30)
        else:
            ticker = asyncio.create_task(sim.ticker())
            ok = await _until(lambda: any(s for s in sim.sessions), 30)
        if not ok:
            raise RuntimeError(f"the {pbx} anchor never connected to the simulator")
        await asyncio.sleep(1.0)
        await drive_load(sim, rate, calls, talk_ms, proc, Result(pbx))
    finally:
        if ticker:
            ticker.cancel()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(child.wait, 30)
            except subprocess.TimeoutExpired:
                child.kill()
        probe = json.loads(out.read_text()) if out.exists() else {}
        latencies = [x * 1000 for x in probe.get("latencies", [])]
        sent = from_pbx(getattr(sim, "bridge_sent", None), probe.get("written", {}))
        await sim.close()
        tmp.cleanup()
    return latencies, sent


async def run_paired(pbx: str, rate: float, concurrent: int, calls: int, dsn: str, repeats: int) -> Paired:
    """`repeats` pairs, order alternated (anchor first, then service first, ...); the FIRST service
    run also times the finalize drain, the others stop after the load."""
    pair = Paired(pbx)
    for i in range(repeats):
        order = ("anchor", "ours") if i % 2 == 0 else ("ours", "anchor")
        for who in order:
            pair.load.append(os.getloadavg()[0])
            if who == "anchor":
                latencies, sent = await run_anchor(pbx, rate, concurrent, calls)
                pair.anchor.append(latencies)
                pair.anchor_from_pbx.append(sent)
            else:
                r = await run_one(pbx, rate, concurrent, calls, dsn, drain=not pair.ours)
                if r.errors:
                    print(f"{pbx}: recorder errors: {r.errors[:3]}", file=sys.stderr)
                pair.ours.append(r)
    return pair


async def _sample(sim: Any, proc: psutil.Process, res: Result) -> None:
    while True:
        live = len(sim.channels) // 2
        res.peak_concurrent = max(res.peak_concurrent, live)
        res.rss_peak_mb = max(res.rss_peak_mb, proc.memory_info().rss / 2**20)
        await asyncio.sleep(0.25)


async def _until(pred: Any, limit: float) -> bool:
    end = time.monotonic() + limit
    while not pred():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def _until_async(pred: Any, limit: float) -> bool:
    end = time.monotonic() + limit
    while not await pred():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.2)
    return True


async def run(pbxes: list[str], rate: float, concurrent: int, calls: int, dsn: str) -> list[Result]:
    results = []
    for pbx in pbxes:
        r = await run_one(pbx, rate, concurrent, calls, dsn)
        if r.errors:
            print(f"{pbx}: recorder errors: {r.errors[:3]}", file=sys.stderr)
        if r.unmatched:
            print(f"{pbx}: {r.unmatched} recording commands without a matching bridge stamp", file=sys.stderr)
        results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pbx", nargs="+", default=["freeswitch", "asterisk"], choices=["freeswitch", "asterisk"])
    ap.add_argument("--rate", type=float, default=100.0, help="new calls per second")
    ap.add_argument("--concurrent", type=int, default=1000, help="calls up at once (sets the talk time)")
    ap.add_argument("--calls", type=int, default=0, help="calls in all (default: 2 x concurrent)")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server; a throw-away database is created")
    ap.add_argument(
        "--repeats", type=int, default=3, help="alternated service/anchor pairs per PBX (0: service once, no anchor)"
    )
    ap.add_argument("--quick", action="store_true", help="200 calls up at once, 400 in all")
    args = ap.parse_args(argv)
    concurrent = 200 if args.quick else args.concurrent
    calls = args.calls or 2 * concurrent
    if args.repeats <= 0:
        print_table(rows(asyncio.run(run(args.pbx, args.rate, concurrent, calls, args.dsn))))
        return 0

    async def paired() -> list[Paired]:
        return [await run_paired(p, args.rate, concurrent, calls, args.dsn, args.repeats) for p in args.pbx]

    print_table(paired_rows(asyncio.run(paired()), args.rate, concurrent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
