"""Benchmark: GET /api/v1/calls with 1,000 live calls, each figure next to its anchor measured in the
same run — a bare aiohttp handler sending the SAME bytes (what aiohttp, the kernel and the client cost
by themselves), so what is left is callrec's own per-request cost (auth, scope, ETag, middlewares).

Two kinds of figure (issue #15, rows 5-6):
- latency: p99 at a fixed 200 req/s, open-loop (a slow server shows up as latency, not as a lower
  rate), from a Python aiohttp client in this process; goal p99 <= 1.5x the anchor's;
- saturation: requests/s with 10 connections as fast as they go (`wrk -t1 -c10` when installed —
  Debian: apt-get install wrk — else a Python aiohttp closed loop, named in the output); goal >= 0.8x.
Each figure is the median (range in brackets) of `--repeats` rounds (>= 3); within a round callrec and
the anchor take turns in 1-second slices (A B B A A B ...), so on a shared machine both meet the same
background load. The 1-minute load average during the row is printed with it, and so is the server
process's CPU time per request (psutil, user + system), which a busy machine disturbs far less than
wall-clock figures.

The server (callrec's app and the anchor app, on two ports) runs in a child process, so the load
generator does not share its event loop. Needs PostgreSQL (tokens live there): CALLREC_TEST_DATABASE_URL
or the local server at 127.0.0.1:5432; a throw-away database is created and dropped.

    .venv/bin/python -m lab.bench.api_bench [--calls 1000] [--rate 200] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psutil
from aiohttp import web

SERVER_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
LATENCY_GOAL = 1.5  # callrec p99 <= 1.5x the anchor's
SATURATION_GOAL = 0.8  # callrec req/s >= 0.8x the anchor's


class StaticLive:
    """A LiveCallSource with N calls shaped like the recorder's views."""

    def __init__(self, n: int) -> None:
        self.calls = {f"call-{i:05d}": _view(i) for i in range(n)}

    def live_calls(self) -> list[dict[str, Any]]:
        return list(self.calls.values())

    def live_call(self, call_id: str) -> dict[str, Any] | None:
        return self.calls.get(call_id)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        return asyncio.Queue()

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        pass

    async def pause(self, call_id: str, actor: Any, **_: Any) -> dict[str, Any]:
        raise NotImplementedError

    resume = pause


def _view(i: int) -> dict[str, Any]:
    agent = str(2000 + i % 200)
    return {
        "id": f"call-{i:05d}",
        "pbx": "fs1",
        "direction": "inbound" if i % 3 else "outbound",
        "customer_number": f"+1555{i:07d}",
        "account_number": "+15551234567",
        "agent": agent,
        "ring_group": ("sales", "support", "billing")[i % 3],
        "started_at": "2026-11-21T08:00:00+00:00",
        "answered_at": "2026-11-21T08:00:04+00:00",
        "recording": {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "state": "paused" if i % 10 == 0 else "recording",
            "decision": {
                "record": True,
                "sources": {
                    "record": "account",
                    "record_inbound": "account",
                    "agent_pause_allowed": "number:+15551234567",
                },
                "settings": {
                    "record_inbound": True,
                    "record_outbound": True,
                    "continue_on_external_transfer": True,
                    "agent_pause_allowed": True,
                    "dual_channel": True,
                    "retention_days": 183,
                },
            },
        },
        "timeline": {
            "segments": [{"party": agent, "class": "internal", "start_ms": 0, "end_ms": None}],
            "pauses": [{"start_ms": 5000, "end_ms": 9000, "by": f"agent:{agent}"}] if i % 10 == 0 else [],
            "transfers": [],
            "stop": None,
        },
    }


# ---------------------------------------------------------------- server (child process)


async def serve(dsn: str, calls: int) -> None:
    """callrec's app and the anchor app; the anchor serves, per path, the exact bytes callrec sent."""
    from controller.api import create_app, start_api
    from controller.config import Config
    from storage import db, users

    pool = await db.create_pool(dsn, min_size=2, max_size=10)
    _, admin = await users.add_user(pool, "bench-admin", "admin")
    _, sup = await users.add_user(pool, "bench-sales", "supervisor", listen_scope="ring_group:sales")
    app = create_app(Config(state_dir="/tmp/callrec-bench"), pool, StaticLive(calls))
    runner, port = await start_api(app, "127.0.0.1", 0)

    bodies: dict[str, tuple[bytes, dict[str, str]]] = {}
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for name, token, enc in (("admin", admin, "identity"), ("sup", sup, "identity"), ("admin-gz", admin, "gzip")):
            headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": enc}
            async with s.get(f"http://127.0.0.1:{port}/api/v1/calls", headers=headers) as r:
                keep = {k: r.headers[k] for k in ("Content-Encoding", "ETag") if k in r.headers}
                bodies[name] = (await r.read(), keep)

    async def same_bytes(request: web.Request) -> web.Response:
        body, headers = bodies[request.match_info["name"]]
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def not_modified(_: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": bodies["admin"][1].get("ETag", '"x"')})

    anchor = web.Application()
    anchor.router.add_get("/same/{name}", same_bytes)
    anchor.router.add_get("/304", not_modified)
    anchor_runner = web.AppRunner(anchor, access_log=None)
    await anchor_runner.setup()
    site = web.TCPSite(anchor_runner, "127.0.0.1", 0)
    await site.start()
    anchor_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    info = {
        "port": port,
        "anchor_port": anchor_port,
        "admin": admin,
        "sup": sup,
        "bytes": {k: len(v[0]) for k, v in bodies.items()},
        "etag": bodies["admin"][1].get("ETag", ""),
    }
    print(json.dumps(info), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await runner.cleanup()
    await anchor_runner.cleanup()
    await pool.close()


# ---------------------------------------------------------------- load generators (parent)


async def fixed_rate(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[list[float], int]:
    """Open-loop: request i is sent at start + i/rate whatever happened to the others.
    Returns the latencies (ms) and the number of errors."""
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            async with session.get(url, headers=headers) as r:
                await r.read()
                if r.status not in (200, 304):
                    errors += 1
                    return
        except aiohttp.ClientError:
            errors += 1
            return
        latencies.append((time.perf_counter() - t0) * 1000)

    n = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, errors


WRK = shutil.which("wrk")


async def saturate(url: str, headers: dict[str, str], seconds: float, connections: int = 10) -> tuple[int, float, int]:
    """Requests done with `connections` connections kept busy for `seconds`: wrk when installed, else
    Python. Returns (requests, elapsed seconds, errors)."""
    if WRK:
        cmd = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out = (await proc.communicate())[0].decode()
        m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        if m is None:
            return 0, seconds, 1
        elapsed = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
        return int(m.group(1)), elapsed, int(bad.group(1)) if bad else 0
    done = errors = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                async with s.get(url, headers=headers) as r:
                    await r.read()
                    done += 1
                    errors += r.status not in (200, 304)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
    return done, time.perf_counter() - start, errors


# ---------------------------------------------------------------- pairs, alternated


@dataclass
class Pair:
    label: str
    kind: str  # "latency" | "saturation"
    callrec: tuple[str, dict[str, str]]
    anchor: tuple[str, dict[str, str]]
    goal: float | None
    size: int
    runs: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"callrec": [], "anchor": []})
    loads: list[float] = field(default_factory=list)

    def metric(self, side: str) -> list[float]:
        key = "p99" if self.kind == "latency" else "rps"
        return [r[key] for r in self.runs[side]]


def _cpu(server: psutil.Process) -> float:
    t = server.cpu_times()
    return float(t.user + t.system)


async def measure(
    pair: Pair, repeats: int, rate: float, seconds: float, sat_seconds: float, server: psutil.Process
) -> None:
    """`repeats` rounds; in each, callrec and the anchor take turns in 1-second slices (A B B A A B ...),
    so both meet the same background load; a round's figure pools its slices (p99 of all latencies,
    or all requests / all time)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200), auto_decompress=False) as session:
        for side in ("callrec", "anchor"):  # warm-up: connections, caches
            url, headers = getattr(pair, side)
            if pair.kind == "latency":
                await fixed_rate(session, url, headers, rate, 0.2)
            else:
                await saturate(url, headers, 1)
        slices = max(1, round(seconds if pair.kind == "latency" else sat_seconds))
        for _ in range(repeats):
            samples: dict[str, list[float]] = {"callrec": [], "anchor": []}
            totals = {"callrec": [0, 0.0], "anchor": [0, 0.0]}
            errors = {"callrec": 0, "anchor": 0}
            cpu = {"callrec": 0.0, "anchor": 0.0}
            count = {"callrec": 0, "anchor": 0}
            for i in range(slices):
                pair.loads.append(os.getloadavg()[0])
                for side in ("callrec", "anchor") if i % 2 == 0 else ("anchor", "callrec"):
                    url, headers = getattr(pair, side)
                    cpu0 = _cpu(server)
                    if pair.kind == "latency":
                        lat, err = await fixed_rate(session, url, headers, rate, 1.0)
                        samples[side] += lat
                        done = len(lat)
                    else:
                        done, elapsed, err = await saturate(url, headers, 1.0)
                        totals[side][0] += done
                        totals[side][1] += elapsed
                    cpu[side] += _cpu(server) - cpu0
                    count[side] += done
                    errors[side] += err
            for side in ("callrec", "anchor"):
                if pair.kind == "latency":
                    lat = samples[side]
                    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
                    result = {"p50": q[49], "p99": q[98]}
                else:
                    n, t = totals[side]
                    result = {"rps": n / t if t else 0.0}
                per_request = cpu[side] / count[side] * 1e6 if count[side] else 0.0
                pair.runs[side].append({**result, "errors": float(errors[side]), "cpu_us": per_request})


def _fmt(values: list[float], kind: str) -> str:
    unit = " ms" if kind == "latency" else "/s"
    med = statistics.median(values)
    if kind == "latency":
        return f"{med:.2f}{unit} ({min(values):.2f}-{max(values):.2f})"
    return f"{med:,.0f}{unit} ({min(values):,.0f}-{max(values):,.0f})"


def report(pairs: list[Pair], args: argparse.Namespace) -> None:
    gen = "wrk -t1 -c10" if WRK else "Python aiohttp closed loop, 10 connections (wrk not installed)"
    print(
        f"\nAPI benchmark: {args.calls} live calls; latency = p99 at {args.rate:g} req/s open-loop for"
        f" {args.seconds:g} s; saturation = {gen} for {args.sat_seconds:g} s; median of {args.repeats}"
        " alternated runs (range); anchor = bare aiohttp sending the same bytes"
    )
    py, arch = platform.python_version(), platform.machine()
    print(f"Python {py}, aiohttp {aiohttp.__version__}, {arch}, {os.cpu_count()} CPUs\n")
    head = f"{'figure':<52} {'anchor':>26} {'callrec':>26} {'ratio':>6} {'goal':>8} {'met':>4} {'load 1m':>10}"
    print(head)
    print("-" * len(head))
    for p in pairs:
        a, c = p.metric("anchor"), p.metric("callrec")
        ratio = statistics.median(c) / statistics.median(a) if statistics.median(a) else float("nan")
        if p.goal is None:
            goal, met = "", ""
        elif p.kind == "latency":
            goal, met = f"<={p.goal:g}x", "yes" if ratio <= p.goal else "NO"
        else:
            goal, met = f">={p.goal:g}x", "yes" if ratio >= p.goal else "NO"
        errors = sum(r["errors"] for side in p.runs.values() for r in side)
        label = p.label + (f" [{int(errors)} errors]" if errors else "")
        load = f"{min(p.loads):.1f}-{max(p.loads):.1f}"
        print(f"{label:<52} {_fmt(a, p.kind):>26} {_fmt(c, p.kind):>26} {ratio:>5.2f}x {goal:>8} {met:>4} {load:>10}")
        cpu = {side: statistics.median(r["cpu_us"] for r in p.runs[side]) for side in ("anchor", "callrec")}
        extra = f"  server CPU per request: anchor {cpu['anchor']:.0f} us, callrec {cpu['callrec']:.0f} us"
        if p.kind == "latency":
            p50 = {side: statistics.median(r["p50"] for r in p.runs[side]) for side in ("anchor", "callrec")}
            extra += f"; p50 anchor {p50['anchor']:.2f} ms, callrec {p50['callrec']:.2f} ms"
        print(extra)
    print(
        "\nratio = callrec / anchor (latency: lower is better; saturation: higher is better). Bytes per response:"
        + ", ".join(f" {p.label.split(',')[0]} {p.size:,}" for p in pairs if p.kind == "saturation")
    )


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="per latency run")
    ap.add_argument("--sat-seconds", type=float, default=5.0, help="per saturation run")
    ap.add_argument("--repeats", type=int, default=3, help="alternated callrec/anchor runs per figure (>= 3)")
    ap.add_argument("--only", choices=("admin", "all"), default="all", help="admin = the two goal rows only")
    ap.add_argument("--serve", metavar="DSN", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        await serve(args.serve, args.calls)
        return 0
    args.sat_seconds = min(args.sat_seconds, args.seconds)

    from storage import db

    name = f"callrec_bench_{secrets.token_hex(4)}"
    admin_conn = await asyncpg.connect(SERVER_DSN)
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(SERVER_DSN)._replace(path="/" + name))
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lab.bench.api_bench", "--serve", dsn, "--calls", str(args.calls),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        info = json.loads(await child.stdout.readline())
        base, anchor = f"http://127.0.0.1:{info['port']}", f"http://127.0.0.1:{info['anchor_port']}"
        calls = base + "/api/v1/calls"
        plain = {"Accept-Encoding": "identity"}
        admin = {"Authorization": f"Bearer {info['admin']}", **plain}
        sup = {"Authorization": f"Bearer {info['sup']}", **plain}
        size = info["bytes"]
        n = args.calls
        pairs = [
            Pair(f"GET /api/v1/calls admin, {n} calls, p99 @ {args.rate:g}/s", "latency",
                 (calls, admin), (anchor + "/same/admin", plain), LATENCY_GOAL, size["admin"]),
            Pair(f"GET /api/v1/calls admin, {n} calls, saturation", "saturation",
                 (calls, admin), (anchor + "/same/admin", plain), SATURATION_GOAL, size["admin"]),
        ]  # fmt: skip
        if args.only == "all":
            pairs += [
                Pair(f"supervisor (1 ring group), p99 @ {args.rate:g}/s", "latency",
                     (calls, sup), (anchor + "/same/sup", plain), None, size["sup"]),
                Pair("supervisor (1 ring group), saturation", "saturation",
                     (calls, sup), (anchor + "/same/sup", plain), None, size["sup"]),
                Pair("admin, gzip accepted, saturation", "saturation",
                     (calls, {**admin, "Accept-Encoding": "gzip"}), (anchor + "/same/admin-gz", plain), None,
                     size["admin-gz"]),
                Pair("admin, If-None-Match current (304), saturation", "saturation",
                     (calls, {**admin, "If-None-Match": info["etag"]}), (anchor + "/304", plain), None, 0),
            ]  # fmt: skip
        server = psutil.Process(child.pid)
        for pair in pairs:
            await measure(pair, args.repeats, args.rate, args.seconds, args.sat_seconds, server)
        child.stdin.close()
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.close()
    report(pairs, args)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
