"""Drill harness: the service as a real process (`python -m controller.cli --config … run`) against the
simulators over TCP, a real PostgreSQL, and the counts every drill checks (exactly one stored
recording per recorded call, no plaintext left in the spool)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pyrage import x25519

from lab import scenarios as sc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call_scenario(talk_ms: int) -> sc.Scenario:
    """An inbound call that talks `talk_ms` (real ms at time_scale 1), recorded, ended by the customer."""
    return sc.Scenario(
        "drill_inbound",
        "inbound call for drills",
        (sc.PlaceCall("inbound"), sc.Ring(100), sc.Answer(), sc.Talk(talk_ms), sc.Hangup("customer")),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
    )


@dataclass
class ServiceDir:
    base: Path
    config: Path
    api_port: int

    @property
    def spool(self) -> Path:
        return self.base / "state" / "spool"

    @property
    def store(self) -> Path:
        return self.base / "state" / "recordings"


def write_config(
    base: Path,
    dsn: str,
    *,
    node_id: str,
    fs_port: int | None = None,
    ami_port: int | None = None,
    state_dir: Path | None = None,
    extra: str = "",
) -> ServiceDir:
    base.mkdir(parents=True, exist_ok=True)
    ident = base / "identity.txt"
    if not ident.exists():
        ident.write_text(str(x25519.Identity.generate()) + "\n")
        ident.chmod(0o600)  # `callrec run` refuses a private key others can read
    identity = x25519.Identity.from_str(ident.read_text().strip())
    nodes = ""
    if fs_port is not None:
        nodes += f'[[pbx]]\nname = "fs1"\ntype = "freeswitch"\nport = {fs_port}\npassword = "ClueCon-lab"\n'
    if ami_port is not None:
        nodes += (
            f'[[pbx]]\nname = "ast1"\ntype = "asterisk"\nport = {ami_port}\nusername = "callrec"\n'
            'secret = "callrec-secret"\n'
        )
    api_port = free_port()
    cfg = base / f"callrec-{node_id}.toml"
    cfg.write_text(
        f'state_dir = "{state_dir or base / "state"}"\nnode_id = "{node_id}"\n'
        f'[database]\nurl = "{dsn}"\n{nodes}'
        f'[encryption]\nrecipients = ["{identity.to_public()}"]\nidentity_file = "{ident}"\n'
        f"[api]\nport = {api_port}\n"
        "[finalize]\nfile_stable_seconds = 0.3\npoll_interval_seconds = 0.5\nretry_base_seconds = 0.5\n"
        "retry_max_seconds = 2.0\n" + extra
    )
    return ServiceDir(base, cfg, api_port)


def spawn(svc: ServiceDir, log_name: str = "service") -> subprocess.Popen[bytes]:
    log = (svc.base / f"{log_name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "--config", str(svc.config), "run"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def until(pred: Callable[[], Awaitable[bool] | bool], limit: float, what: str) -> float:
    """Wait for `pred`; returns the seconds it took. Fails the drill with `what` if it never holds."""
    t0 = time.monotonic()
    while True:
        r = pred()
        if asyncio.iscoroutine(r) or isinstance(r, Awaitable):
            r = await r
        if r:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < limit, f"drill: {what} not reached within {limit:.0f} s"
        await asyncio.sleep(0.1)


async def states(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await conn.fetch("SELECT state, count(*) AS n FROM recordings GROUP BY 1")}


async def all_finished(conn: asyncpg.Connection, expected: int) -> bool:
    st = await states(conn)
    return sum(st.values()) >= expected and set(st) <= {"stored", "failed"}


async def check_stored_once(conn: asyncpg.Connection, legs: list[str], svc: ServiceDir) -> dict[str, int]:
    """Every recorded call's customer leg has exactly ONE recording, stored with an object; no plaintext
    is left in the spool. Returns the counts the drill prints."""
    rows = await conn.fetch("SELECT customer_leg, state, error, object_uri FROM recordings")
    per_leg: dict[str, int] = {}
    for r in rows:
        per_leg[r["customer_leg"]] = per_leg.get(r["customer_leg"], 0) + 1
    failed = [(r["customer_leg"], r["error"]) for r in rows if r["state"] != "stored"]
    assert not failed, f"recordings not stored: {failed[:5]}"
    missing = [leg for leg in legs if leg not in per_leg]
    twice = {leg: n for leg, n in per_leg.items() if n > 1}
    assert not missing, f"{len(missing)} calls have no recording: {missing[:5]}"
    assert not twice, f"calls recorded more than once: {twice}"
    assert all(r["object_uri"] for r in rows), "a stored recording without an object"

    def plaintext() -> list[Path]:
        return [p for p in svc.spool.rglob("*.wav")] if svc.spool.exists() else []

    # The row says `stored` before the job's cleanup step deletes the spool files, so give cleanup a
    # bounded moment (a loaded machine) before calling what is left behind a leak.
    with contextlib.suppress(AssertionError):
        await until(lambda: not plaintext(), 30, "spool cleanup")
    left = plaintext()
    assert not left, f"plaintext left in the spool: {left[:3]}"
    return {"calls": len(legs), "recordings": len(rows), "stored": len(rows) - len(failed), "duplicates": 0}
