"""The whole service as `callrec run` composes it: both simulated PBXes over real TCP, the real
database, finalize to encrypted storage, the API. A call on each PBX ends up stored, playable and
visible in the API; /health reports every part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from pyrage import x25519

from controller.config import load_config
from controller.service import Service
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.esl_sim import EslSimulator
from storage import db, users


@dataclass
class Stack:
    service: Service
    fs: EslSimulator
    ast: AmiSimulator
    base: str
    token: str
    pool: asyncpg.Pool


def make_config(tmp: Path, dsn: str, fs: EslSimulator, ast: AmiSimulator, record_dir: str = ""):
    identity = x25519.Identity.generate()
    (tmp / "identity.txt").write_text(str(identity) + "\n")
    (tmp / "callrec.toml").write_text(
        f"""
state_dir = "{tmp / "state"}"
node_id = "test-node"
[database]
url = "{dsn}"
[[pbx]]
name = "fs1"
type = "freeswitch"
port = {fs.port}
password = "{fs.password}"
record_dir = "{record_dir}"
[[pbx]]
name = "ast1"
type = "asterisk"
port = {ast.port}
username = "{ast.username}"
secret = "{ast.secret}"
record_dir = "{record_dir}"
[encryption]
recipients = ["{identity.to_public()}"]
identity_file = "{tmp / "identity.txt"}"
[api]
port = 0
[finalize]
file_stable_seconds = 0.2
poll_interval_seconds = 0.5
"""
    )
    return load_config(tmp / "callrec.toml", env={})


@pytest.fixture(params=["same-path", "shared-mount"])
async def stack(request: pytest.FixtureRequest, fresh_db: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """`shared-mount`: the PBXes see the spool under another path (`record_dir`, here a symlink),
    as with an NFS mount on a separate PBX host; commands carry their path, the journal ours."""
    fs, ast = EslSimulator(), AmiSimulator()
    await fs.start()
    await ast.start()
    record_dir = ""
    if request.param == "shared-mount":
        (tmp_path / "state" / "spool").mkdir(parents=True)
        (tmp_path / "pbx-view").symlink_to(tmp_path / "state" / "spool")
        record_dir = str(tmp_path / "pbx-view")
    service = Service(make_config(tmp_path, fresh_db, fs, ast, record_dir), lease_ttl=1.0)
    await service.start()
    pool = await db.create_pool(fresh_db)
    _, token = await users.add_user(pool, "admin", "admin", download_scope="all")
    try:
        assert await fs.wait_connected(10), "service never subscribed to the ESL simulator"
        yield Stack(service, fs, ast, f"http://127.0.0.1:{service.api_port}", token, pool)
    finally:
        await service.close()
        await pool.close()
        await fs.close()
        await ast.close()


async def wait_for(pred: Callable[[], Awaitable[bool]], limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_calls_on_both_pbxes_are_recorded_stored_and_served(stack: Stack) -> None:
    await stack.fs.run(sc.get("inbound"))
    await stack.ast.play(sc.get("outbound"))

    async def both_stored() -> bool:
        rows = await stack.pool.fetch("SELECT pbx, state, error FROM recordings")
        assert not [r for r in rows if r["state"] == "failed"], rows
        return sorted((r["pbx"], r["state"]) for r in rows) == [("ast1", "stored"), ("fs1", "stored")]

    await wait_for(both_stored)
    spool = str(stack.service.config.spool_dir)
    for row in await stack.pool.fetch("SELECT spool_files FROM recordings"):
        assert all(p.startswith(spool + "/") for p in row["spool_files"].values())  # the journal: our view
    record_dir = stack.service.config.pbx[0].record_dir
    if record_dir:  # the PBX was told its own view of the same files
        assert any(f"start {record_dir}/" in c for c in stack.fs.commands)
        mixmon = [a for a in stack.ast.actions_seen if a.get("action") == ["MixMonitor"]]
        assert mixmon and f"r({record_dir}/" in mixmon[0]["options"][0]
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.base + "/api/v1/recordings", headers=headers) as r:
            assert r.status == 200
            recs = (await r.json())["recordings"]
        assert {x["direction"] for x in recs} == {"inbound", "outbound"}
        for rec in recs:
            async with http.get(f"{stack.base}/api/v1/recordings/{rec['id']}/audio", headers=headers) as r:
                assert r.status == 200
                body = await r.read()
                assert body[:4] == b"RIFF" and len(body) > 8000  # decrypted WAV, at least half a second
        async with http.get(stack.base + "/health") as r:
            health = await r.json()
            assert r.status == 200, health
            assert {"database", "pbx:fs1", "pbx:ast1", "finalize", "spool", "backend", "journal"} <= set(
                health["components"]
            )


async def test_health_turns_red_when_a_pbx_link_is_lost(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        await stack.fs.close()  # FreeSWITCH goes away

        async def unhealthy() -> bool:
            async with http.get(stack.base + "/health") as r:
                body = await r.json()
                return r.status == 503 and body["components"]["pbx:fs1"]["ok"] is False

        await wait_for(unhealthy, 10)


async def test_a_background_loop_that_fails_is_logged_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """finalize, leases, webhooks and policy refresh run as supervised loops: one that raises (or
    returns) is logged with its name and the reason and starts again, never silently gone."""
    service = Service(load_config(None, env={}))
    runs: list[float] = []
    third = asyncio.Event()

    async def flaky() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 3:
            third.set()
        if len(runs) < 3:
            raise ConnectionResetError("database went away")
        await asyncio.Event().wait()  # the third run stays up

    with caplog.at_level("ERROR", logger="callrec.service"):
        service._spawn(flaky, "finalize")
        async with asyncio.timeout(10):
            await third.wait()
    try:
        assert len(runs) == 3
        failures = [r for r in caplog.records if "finalize failed; starting it again" in r.getMessage()]
        assert len(failures) == 2 and "database went away" in (failures[0].exc_text or "")
        assert runs[2] - runs[1] >= runs[1] - runs[0] >= 0.9  # backing off: 1 s, then 2 s
    finally:
        await service.close()
