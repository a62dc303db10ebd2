"""Scale-out drill on real processes: N controllers, 6 simulated PBX nodes, one PostgreSQL, one S3.

    .venv/bin/python -m lab.bench.scale_drill                      # 1, 2, 3 controllers, quick size
    .venv/bin/python -m lab.bench.scale_drill --full               # 3,000 concurrent at 100 calls/s
    .venv/bin/python -m lab.bench.scale_drill --controllers 3 --rate 50 --concurrent 1000

Each run: a fresh database on the PostgreSQL server (--dsn), a moto S3 server process with a fresh
bucket, the PBX nodes (3 FreeSWITCH over ESL + 3 Asterisk over AMI, lab.bench.scale_nodes) in a
process of their own, and N `callrec run` processes (python -m controller.cli), every one configured
with all six nodes, one shared spool and the bucket. The controllers start one after the other (each
join rebalances the nodes; the time until the leases match the rendezvous assignment is reported);
calls then arrive at `rate` per second, each talking `concurrent / rate` seconds, 1.5 x `concurrent`
calls in all: the first third ends (and is finalized by every controller) while the rest arrive, so
the load is at its steady peak when the last call is placed. With N >= 2 the controller driving the
most nodes is killed with SIGKILL at that moment, and the time until each of its nodes has a
controller connected again is measured at the PBX side.

Counted at the end: every call's customer leg must have exactly one recording row, stored, with one
audio object + one manifest in the bucket (lost = calls without a stored recording, duplicated = a
leg with more than one recording or an object no stored row names). Measured per controller with
psutil: CPU seconds, PostgreSQL connections (its TCP sockets to the server; pg_stat_activity gives
the total), and which controller finalized how many recordings. Prints one table per run and one
growth table; asserts nothing (tests/drills/test_scale_drill.py checks a small run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from pyrage import x25519

from controller.assignment import Member, assign
from lab.bench.load_bench import DEFAULT_DSN, _with_database
from lab.bench.scale_report import Run, print_growth, print_run

ROOT = Path(__file__).resolve().parents[2]
QUICK = {"rate": 20.0, "concurrent": 300}
FULL = {"rate": 100.0, "concurrent": 3000}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """moto's S3 server as a process of its own (as the S3 tests run it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket="callrec")

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        )

    def keys(self) -> list[str]:
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket="callrec"):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def stop(self) -> None:
        self.proc.terminate()  # our own child, by its pid
        self.proc.wait(10)


def write_config(base: Path, name: str, dsn: str, nodes: dict[str, int], moto: Moto, recipient: str) -> Path:
    pbx = ""
    for node, port in nodes.items():
        if node.startswith("fs"):
            pbx += f'[[pbx]]\nname = "{node}"\ntype = "freeswitch"\nport = {port}\npassword = "ClueCon-lab"\n'
        else:
            pbx += (
                f'[[pbx]]\nname = "{node}"\ntype = "asterisk"\nport = {port}\nusername = "callrec"\n'
                'secret = "callrec-secret"\n'
            )
    cfg = base / f"{name}.toml"
    cfg.write_text(
        f'state_dir = "{base / name}"\nnode_id = "{name}"\nlog_level = "warning"\n'
        f'[database]\nurl = "{dsn}"\n{pbx}'
        f'[spool]\ndir = "{base / "spool"}"\n'
        f'[storage]\nbackend = "s3"\nendpoint = "{moto.endpoint}"\nbucket = "callrec"\naccess_key = "k"\n'
        'secret_key = "s"\nprefix = "rec"\n'
        f'[encryption]\nrecipients = ["{recipient}"]\n'
        "[api]\nenabled = false\n"
        "[finalize]\nfile_stable_seconds = 0.5\npoll_interval_seconds = 1.0\n"
    )
    return cfg


class Controller:
    def __init__(self, name: str, config: Path, log: Path) -> None:
        self.name = name
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", "--config", str(config), "run"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.ps = psutil.Process(self.proc.pid)
        self.cpu0 = 0.0
        self.cpu_load = 0.0
        self.pg_peak = 0
        self.killed_at: float | None = None

    def cpu(self) -> float:
        try:
            t = self.ps.cpu_times()
            return t.user + t.system
        except psutil.NoSuchProcess:
            return self.cpu_load + self.cpu0

    def pg_connections(self, pg_port: int) -> int:
        try:
            return sum(
                1
                for c in self.ps.net_connections(kind="tcp")
                if c.raddr and c.raddr.port == pg_port and c.status == psutil.CONN_ESTABLISHED
            )
        except psutil.NoSuchProcess:
            return 0

    def kill9(self) -> None:
        self.killed_at = time.time()
        self.cpu_load = self.cpu() - self.cpu0
        os.kill(self.proc.pid, signal.SIGKILL)  # our own child, by its pid
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Nodes:
    """The scale_nodes process: its status lines are read in the background."""

    def __init__(self, args: list[str], log: Path) -> None:
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lab.bench.scale_nodes", *args],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )
        self.status: dict[str, Any] = {}
        self.done = False
        self.ps = psutil.Process(self.proc.pid)

    async def ports(self) -> dict[str, int]:
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        return dict(json.loads(line)["nodes"])

    async def follow(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                return
            msg = json.loads(line)
            if msg.get("done"):
                self.done = True
            else:
                self.status = msg

    def send(self, what: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()


async def until(pred: Any, limit: float, poll: float = 0.2) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r = pred()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return time.monotonic() - t0
        await asyncio.sleep(poll)
    return None


async def leases(conn: asyncpg.Pool) -> dict[str, str]:
    rows = await conn.fetch("SELECT pbx, holder FROM pbx_leases WHERE expires_at > now()")
    return {r["pbx"]: r["holder"] for r in rows}


async def run_once(n: int, ns: argparse.Namespace) -> Run:
    run = Run(controllers=n, rate=ns.rate, concurrent=ns.concurrent, calls=ns.calls or int(ns.concurrent * 1.5))
    talk_ms = int(ns.concurrent / ns.rate * 1000)
    name = f"callrec_scale_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ns.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(ns.dsn, name)
    pg_port = int(dsn.rsplit(":", 1)[1].split("/")[0]) if ":" in dsn.split("@")[-1] else 5432
    base = Path(tempfile.mkdtemp(prefix="callrec-scale-"))
    moto = Moto()
    nodes = Nodes(
        [
            "--fs",
            str(ns.fs),
            "--ast",
            str(ns.ast),
            "--rate",
            str(ns.rate),
            "--talk-ms",
            str(talk_ms),
            "--calls",
            str(run.calls),
            "--out",
            str(base / "nodes.json"),
        ],
        base / "nodes.log",
    )
    ctls: list[Controller] = []
    conn: asyncpg.Pool | None = None
    follower: asyncio.Task[None] | None = None
    run.load_before = os.getloadavg()
    try:
        ports = await nodes.ports()
        follower = asyncio.create_task(nodes.follow())
        recipient = str(x25519.Identity.generate().to_public())
        names = [f"ctl-{i}" for i in range(1, n + 1)]
        configs = [write_config(base, c, dsn, ports, moto, recipient) for c in names]
        for i, cname in enumerate(names):  # one after the other: each join rebalances
            ctls.append(Controller(cname, configs[i], base / f"{cname}.log"))
            if conn is None:
                conn = await _connect_when_migrated(dsn)
            want = assign([Member(c, frozenset(ports)) for c in names[: i + 1]])
            db_conn = conn
            took = await until(lambda want=want, db_conn=db_conn: _settled(db_conn, nodes, want), 60)
            run.joins.append(took)
        run.spread = dict(await leases(conn))
        for c in ctls:
            c.cpu0 = c.cpu()
        t_go = time.time()
        nodes.send("go")
        sampler = asyncio.create_task(_sample(ctls, conn, name, pg_port, run, nodes))
        victim: Controller | None = None
        if n >= 2 and not ns.no_kill:
            await until(lambda: nodes.status.get("placed", 0) >= run.calls, 3600, poll=0.05)
            owned = await leases(conn)
            victim = max(ctls, key=lambda c: sum(1 for h in owned.values() if h == c.name))
            run.victim_nodes = sorted(node for node, h in owned.items() if h == victim.name)
            run.live_at_kill = nodes.status.get("live", 0)
            run.load_at_kill = os.getloadavg()
            victim.kill9()
            run.victim = victim.name
            survivors = {c.name for c in ctls if c is not victim}
            lease_t = await until(lambda: _all_held_by(conn, run.victim_nodes, survivors), 120, poll=0.05)
            run.lease_takeover_s = lease_t
        await until(lambda: nodes.done, 3600 + 10 * talk_ms / 1000)
        run.placing_s = time.time() - t_go
        run.load_peak = max(run.load_peak, os.getloadavg(), key=lambda x: x[0])
        # every recording finalized (stored or failed) and no job left running
        run.drain_s = await until(lambda: _finished(conn), ns.drain_limit, poll=0.5)
        sampler.cancel()
        for c in ctls:
            if c.killed_at is None:
                c.cpu_load = c.cpu() - c.cpu0
        await _count(run, conn, moto, base / "nodes.json", ctls)
        run.load_after = os.getloadavg()
    finally:
        for c in ctls:
            c.stop()
        if nodes.proc.poll() is None:
            with_stdin = nodes.proc.stdin
            if with_stdin is not None:
                try:
                    nodes.send("stop")
                except (BrokenPipeError, ValueError):
                    pass
            try:
                nodes.proc.wait(30)
            except subprocess.TimeoutExpired:
                nodes.proc.kill()
        if follower is not None:
            follower.cancel()
        moto.stop()
        if conn is not None:
            await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if not ns.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}", file=sys.stderr)
    return run


async def _connect_when_migrated(dsn: str) -> asyncpg.Pool:
    """A small pool of the drill's own (sampler and checks run concurrently) once the schema is there."""
    for _ in range(600):
        try:
            conn = await asyncpg.connect(dsn)
            try:
                ready = await conn.fetchval("SELECT to_regclass('controller_members') IS NOT NULL")
            finally:
                await conn.close()
            if ready:
                pool = await asyncpg.create_pool(
                    dsn, min_size=1, max_size=3, server_settings={"application_name": "scale-drill"}
                )
                assert pool is not None
                return pool
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the controllers never migrated the database")


async def _settled(conn: asyncpg.Pool, nodes: Nodes, want: dict[str, str]) -> bool:
    links = nodes.status.get("links", {})
    return await leases(conn) == want and all(links.get(node) == 1 for node in want)


async def _all_held_by(conn: asyncpg.Pool, nodes: list[str], who: set[str]) -> bool:
    now = await leases(conn)
    return all(now.get(node) in who for node in nodes)


async def _finished(conn: asyncpg.Pool) -> bool:
    r = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE state IN ('recording', 'paused', 'stopped', 'orphaned')) AS open,"
        " (SELECT count(*) FROM finalize_jobs WHERE state IN ('pending', 'running')) AS jobs FROM recordings"
    )
    return r["open"] == 0 and r["jobs"] == 0


async def _sample(ctls: list[Controller], conn: asyncpg.Pool, db: str, pg_port: int, run: Run, nodes: Nodes) -> None:
    while True:
        for c in ctls:
            if c.killed_at is None:
                c.pg_peak = max(c.pg_peak, c.pg_connections(pg_port))
        total = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'scale-drill'", db
        )
        run.pg_total_peak = max(run.pg_total_peak, int(total))
        run.live_peak = max(run.live_peak, nodes.status.get("live", 0))
        run.load_peak = max(run.load_peak, os.getloadavg(), key=lambda x: x[0])
        await asyncio.sleep(0.5)


async def _count(run: Run, conn: asyncpg.Pool, moto: Moto, out: Path, ctls: list[Controller]) -> None:
    data = json.loads(await asyncio.to_thread(out.read_text))
    # a leg id is unique per PBX only (Asterisk uniqueids of two nodes can be equal): key by (node, leg)
    legs = [(c["node"], c["leg"]) for c in data["calls"]]
    run.placed, run.ended = data["placed"], len(legs)
    run.sim_errors = data["errors"]
    rows = await conn.fetch("SELECT id, pbx, customer_leg, state, error, started_at FROM recordings")
    per_leg: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["pbx"], r["customer_leg"])
        per_leg[key] = per_leg.get(key, 0) + 1
    stored = {str(r["id"]) for r in rows if r["state"] == "stored"}
    stored_legs = {(r["pbx"], r["customer_leg"]) for r in rows if r["state"] == "stored"}
    run.recordings = len(rows)
    run.states = {}
    for r in rows:
        run.states[r["state"]] = run.states.get(r["state"], 0) + 1
    jobs = await conn.fetch("SELECT state, count(*) AS n FROM finalize_jobs GROUP BY 1")
    run.jobs = {j["state"]: j["n"] for j in jobs}
    run.stored = len(stored)
    run.failed = [f"{r['customer_leg']}: {r['error']}" for r in rows if r["state"] == "failed"][:5]
    run.lost = sum(1 for leg in legs if leg not in stored_legs)
    run.duplicated = sum(n - 1 for n in per_leg.values() if n > 1)
    keys = moto.keys()
    audio = [k for k in keys if k.endswith(".wav.age")]
    ids = [Path(k).name.removesuffix(".wav.age") for k in audio]
    run.objects = len(audio)
    run.manifests = sum(1 for k in keys if k.endswith(".manifest.json"))
    run.objects_unknown = sum(1 for i in ids if i not in stored)
    run.objects_duplicated = len(ids) - len(set(ids))
    # recording starts journaled per second, up to the kill (calls bridged during a takeover start
    # when the survivor resyncs, which would stretch the interval) or over the whole run
    victim = next((c for c in ctls if c.killed_at is not None), None)
    until_ts = datetime.fromtimestamp(victim.killed_at, UTC) if victim and victim.killed_at else None
    starts = await conn.fetchrow(
        "SELECT min(started_at) AS a, max(started_at) AS b, count(*) AS n FROM recordings"
        " WHERE $1::timestamptz IS NULL OR started_at < $1",
        until_ts,
    )
    if starts["n"] > 1:
        run.start_rate = (starts["n"] - 1) / max((starts["b"] - starts["a"]).total_seconds(), 1e-9)
    run.placed_rate = data["placed"] / max(data["placing_s"], 1e-9)
    by = await conn.fetch(
        "SELECT split_part(claimed_by, '/', 1) AS who, count(*) AS n FROM finalize_jobs WHERE state = 'done' GROUP BY 1"
    )
    run.finalized_by = {r["who"]: r["n"] for r in by}
    run.cpu = {c.name: c.cpu_load for c in ctls}
    run.pg = {c.name: c.pg_peak for c in ctls}
    run.placing_wall = data["placing_s"]
    # takeover at the PBX side: the victim's nodes, from its kill to the first controller connected again
    if victim is not None:
        for node in run.victim_nodes:
            hist = data["history"][node]
            back = [t for t, n in hist if t > victim.killed_at and n >= 1]
            run.takeover[node] = (back[0] - victim.killed_at) if back else None
    run.max_links = {node: max((n for _, n in h), default=0) for node, h in data["history"].items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controllers", type=int, nargs="+", default=[1, 2, 3], help="runs, e.g. 1 2 3")
    ap.add_argument("--full", action="store_true", help="3,000 concurrent calls at 100 calls/s")
    ap.add_argument("--rate", type=float, default=None, help="new calls per second (default: quick 20)")
    ap.add_argument("--concurrent", type=int, default=None, help="calls up at once (default: quick 300)")
    ap.add_argument("--calls", type=int, default=0, help="calls in all (default: 1.5 x concurrent)")
    ap.add_argument("--fs", type=int, default=3)
    ap.add_argument("--ast", type=int, default=3)
    ap.add_argument("--no-kill", action="store_true", help="do not kill a controller at the peak")
    ap.add_argument("--drain-limit", type=float, default=600.0)
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs, spool)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server; a throw-away database is created")
    ns = ap.parse_args(argv)
    size = FULL if ns.full else QUICK
    ns.rate = ns.rate or size["rate"]
    ns.concurrent = ns.concurrent or size["concurrent"]
    runs = []
    for n in ns.controllers:
        r = asyncio.run(run_once(n, ns))
        print_run(r)
        runs.append(r)
    if len(runs) > 1:
        print_growth(runs)
    if ns.json:
        ns.json.write_text(json.dumps([r.as_dict() for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
