"""Webhooks end to end: the whole service (both simulated PBXes over TCP, real PostgreSQL, finalize,
API) POSTing to a real aiohttp receiver on an OS-picked port, verified with the shipped verifier."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from controller.config import load_config
from controller.live import Actor
from controller.service import Service
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.esl_sim import EslSimulator
from lab.journal_sample import inbound_start
from storage import db, journal, users
from storage.webhook_signature import verify
from tests.service.test_service import make_config

ALL = [
    "recording.started",
    "recording.paused",
    "recording.resumed",
    "recording.stored",
    "recording.failed",
    "recording.purged",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A CRM-like receiver: verifies each POST with the documented verifier, dedupes on the event id."""

    port: int
    secret: str = ""
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)  # every request, as received
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> body, after dedupe
    rejected: int = 0
    _runner: web.AppRunner | None = None

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        ok = verify(self.secret, body, h.get("Callrec-Timestamp", ""), h.get("Callrec-Signature", ""))
        self.posts.append({"headers": dict(h), "body": body, "verified": ok})
        if not ok:
            self.rejected += 1
            return web.Response(status=401)
        if self.status >= 300:
            return web.Response(status=self.status)
        self.events.setdefault(h["Callrec-Event-Id"], json.loads(body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


FAST = """
[webhooks]
poll_interval_seconds = 0.1
backoff_base_seconds = 0.2
backoff_max_seconds = 0.5
timeout_seconds = 2
"""


@dataclass
class Env:
    tmp: Path
    dsn: str
    fs: EslSimulator
    ast: AmiSimulator
    pool: asyncpg.Pool
    token: str
    webhooks_toml: str
    service: Service | None = None

    async def start_service(self) -> Service:
        cfg_path = self.tmp / "callrec.toml"
        if not cfg_path.exists():
            make_config(self.tmp, self.dsn, self.fs, self.ast)
            cfg_path.write_text(cfg_path.read_text() + self.webhooks_toml)
        self.service = Service(load_config(cfg_path, env={}), lease_ttl=1.0)
        await self.service.start()
        assert await self.fs.wait_connected(10)
        return self.service

    @property
    def base(self) -> str:
        assert self.service is not None
        return f"http://127.0.0.1:{self.service.api_port}"

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.request(
                method, self.base + path, headers={"Authorization": f"Bearer {self.token}"}, **kw
            ) as r:
                return r.status, (await r.json() if r.status != 204 else None)


async def _env(fresh_db: str, tmp_path: Path, toml: str) -> AsyncIterator[Env]:
    fs, ast = EslSimulator(), AmiSimulator()
    await fs.start()
    await ast.start()
    pool = await db.create_pool(fresh_db)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    _, token = await users.add_user(pool, "admin", "admin", download_scope="all")
    env = Env(tmp_path, fresh_db, fs, ast, pool, token, toml)
    try:
        yield env
    finally:
        if env.service is not None:
            await env.service.close()
        await pool.close()
        await fs.close()
        await ast.close()


@pytest.fixture
async def env(fresh_db: str, tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(fresh_db, tmp_path, FAST):
        yield e


@pytest.fixture
async def short_env(fresh_db: str, tmp_path: Path) -> AsyncIterator[Env]:
    """Events die after ~2 seconds of failures."""
    async for e in _env(fresh_db, tmp_path, FAST + "retry_period_hours = 0.0006\n"):
        yield e


async def wait_for(pred: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while not await pred():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.1)


async def _create_endpoint(env: Env, url: str) -> tuple[int, str]:
    status, hook = await env.api("POST", "/api/v1/webhooks", json={"account": "main", "url": url, "events": ALL})
    assert status == 201, hook
    assert hook["secret"].startswith("whsec_")
    status, shown = await env.api("GET", f"/api/v1/webhooks/{hook['id']}")
    assert status == 200 and "secret" not in shown  # shown once, at creation
    return hook["id"], hook["secret"]


async def _states(pool: asyncpg.Pool) -> list[str]:
    return [r["state"] for r in await pool.fetch("SELECT state FROM webhook_outbox ORDER BY id")]


async def test_receiver_down_across_a_restart_gets_every_event_once_in_order(env: Env, tmp_path: Path) -> None:
    """Receiver down while calls are recorded, stored and the service restarts → once it is up, every
    event arrives signed, each event id once after dedupe, in order per recording; a purge follows."""
    receiver = Receiver(free_port())
    service = await env.start_service()
    _, receiver.secret = await _create_endpoint(env, receiver.url)

    async def agent_step(step: Any, handle: Any) -> None:
        assert service.recorder is not None
        (call,) = service.recorder.live_calls()
        actor = Actor("sue", "supervisor")
        if isinstance(step, sc.Pause):
            await service.recorder.pause(call["id"], actor)
        elif isinstance(step, sc.Resume):
            await service.recorder.resume(call["id"], actor)

    await env.fs.run(sc.get("pause_resume"), on_step=agent_step)
    await env.ast.play(sc.get("outbound"))

    async def both_stored() -> bool:
        rows = await env.pool.fetch("SELECT state FROM recordings")
        return len(rows) == 2 and all(r["state"] == "stored" for r in rows)

    await wait_for(both_stored)

    async def tried() -> bool:
        return bool(
            await env.pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE attempts > 0 AND last_error <> ''")
        )

    await wait_for(tried)  # the service tried and failed: connection refused
    assert set(await _states(env.pool)) == {"pending"}

    await service.close()  # restart with undelivered events in the outbox
    env.service = service = await env.start_service()
    await receiver.start()
    try:

        async def all_delivered() -> bool:
            return set(await _states(env.pool)) == {"delivered"}

        await wait_for(all_delivered)
        rows = await env.pool.fetch("SELECT event_id, event_type, recording_id FROM webhook_outbox ORDER BY id")
        assert len(rows) == 6  # fs: started, paused, resumed, stored; asterisk: started, stored
        assert all(p["verified"] for p in receiver.posts) and receiver.rejected == 0
        assert set(receiver.events) == {str(r["event_id"]) for r in rows}  # each event id, after dedupe
        by_rec: dict[str, list[str]] = {}
        for p in receiver.posts:  # arrival order
            ev = json.loads(p["body"])
            seq = by_rec.setdefault(ev["data"]["recording_id"], [])
            if not seq or seq[-1] != ev["type"]:  # a redelivered duplicate is allowed, a reorder is not
                seq.append(ev["type"])
        recs = {r["pbx"]: r for r in await env.pool.fetch("SELECT * FROM recordings")}
        assert by_rec[str(recs["fs1"]["id"])] == [
            "recording.started",
            "recording.paused",
            "recording.resumed",
            "recording.stored",
        ]
        assert by_rec[str(recs["ast1"]["id"])] == ["recording.started", "recording.stored"]

        stored = next(
            e
            for e in receiver.events.values()
            if e["type"] == "recording.stored" and e["data"]["recording_id"] == str(recs["fs1"]["id"])
        )
        data = stored["data"]
        assert data["manifest"]["audio_sha256"] == recs["fs1"]["audio_sha256"]
        assert data["duration_ms"] == recs["fs1"]["duration_ms"] > 0
        assert data["parties"]["customer_number"] == recs["fs1"]["customer_number"] != ""
        assert data["download_url"] is None
        paused = next(e for e in receiver.events.values() if e["type"] == "recording.paused")
        assert paused["data"]["pause"]["by"] == "sue" or "sue" in json.dumps(paused["data"]["pause"])

        # retention purge of the asterisk recording → recording.purged, after its stored event
        await env.pool.execute(
            "UPDATE recordings SET retention_until = now() - interval '1 day' WHERE id = $1", recs["ast1"]["id"]
        )
        assert service._retention is not None
        await service._retention.run_now()

        async def purged() -> bool:
            return any(e["type"] == "recording.purged" for e in receiver.events.values())

        await wait_for(purged)
        last = json.loads(receiver.posts[-1]["body"])
        assert last["type"] == "recording.purged" and last["data"]["recording_id"] == str(recs["ast1"]["id"])
    finally:
        await receiver.stop()


def test_the_documented_verifier_rejects_tampering() -> None:
    """The scheme in the README, through the function receivers import."""
    from storage.webhook_signature import sign

    secret, body, ts = "whsec_test", b'{"id":"x","type":"recording.stored"}', int(time.time())
    good = sign(secret, ts, body)
    assert verify(secret, body, str(ts), good)
    assert not verify(secret, body + b" ", str(ts), good)  # body changed
    assert not verify("whsec_other", body, str(ts), good)  # wrong secret
    assert not verify(secret, body, str(ts + 1), good)  # timestamp changed
    assert not verify(secret, body, str(ts - 3600), sign(secret, ts - 3600, body))  # replayed an hour later
    assert not verify(secret, body, "soon", good) and not verify(secret, body, str(ts), "")


async def test_dead_letter_after_the_retry_period_then_redeliver(short_env: Env) -> None:
    """A receiver that keeps failing: events go dead after the retry period, the API lists them, a
    forged signature is refused by the receiver, and redeliver sends the same event id again."""
    env = short_env
    receiver = Receiver(free_port(), status=500)
    await receiver.start()
    try:
        await env.start_service()
        wid, receiver.secret = await _create_endpoint(env, receiver.url)
        # a start the PBX refused: the journal's own writes, as the recorder makes them
        rid, now = str(uuid.uuid4()), time.time()
        call, rec = inbound_start("fs1", "leg-x", rid, now)
        await journal.open_recording(env.pool, call, rec)
        await journal.fail_recording(env.pool, rid, wall=now, error="-ERR no such channel")

        async def dead() -> bool:
            return await _states(env.pool) == ["dead", "dead"]

        await wait_for(dead)
        status, page = await env.api("GET", f"/api/v1/webhooks/{wid}/deliveries?state=dead")
        assert status == 200
        listed = page["deliveries"]
        assert [d["event_type"] for d in listed] == ["recording.failed", "recording.started"]  # newest first
        assert all(d["attempts"] >= 2 and d["last_status"] == 500 for d in listed)
        assert listed[0]["payload"]["data"]["error"] == "-ERR no such channel"
        assert receiver.rejected == 0 and not receiver.events

        # a forged request: right body, signature made with another secret → refused
        body = receiver.posts[0]["body"]
        forged_ts = str(int(time.time()))
        from storage.webhook_signature import sign

        async with aiohttp.ClientSession() as http:
            async with http.post(
                receiver.url,
                data=body,
                headers={
                    "Callrec-Timestamp": forged_ts,
                    "Callrec-Signature": sign("whsec_guess", int(forged_ts), body),
                    "Callrec-Event-Id": str(uuid.uuid4()),
                },
            ) as r:
                assert r.status == 401
        assert receiver.rejected == 1

        receiver.status = 200
        for d in reversed(listed):  # oldest first, as an operator would
            status, again = await env.api("POST", f"/api/v1/webhooks/{wid}/deliveries/{d['id']}/redeliver")
            assert status == 200 and again["state"] == "pending" and again["event_id"] == d["event_id"]

        async def delivered() -> bool:
            return await _states(env.pool) == ["delivered", "delivered"]

        await wait_for(delivered)
        assert set(receiver.events) == {d["event_id"] for d in listed}
        status, page = await env.api("GET", f"/api/v1/webhooks/{wid}/deliveries?state=dead")
        assert status == 200 and page["deliveries"] == []
        status, err = await env.api("GET", f"/api/v1/webhooks/{wid}/deliveries?state=lost")
        assert status == 422 and err["error"]["field"] == "state"
    finally:
        await receiver.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://x/h", "events": ["recording.stored"]}, "account"),
        ({"account": "main", "url": "ftp://x/h", "events": ["recording.stored"]}, "url"),
        ({"account": "main", "url": "http://[::1/h", "events": ["recording.stored"]}, "url"),
        ({"account": "main", "url": "http://x/\x00", "events": ["recording.stored"]}, "url"),
        ({"account": "main", "url": "http://x/h", "events": []}, "events"),
        ({"account": "main", "url": "http://x/h", "events": ["recording.deleted"]}, "events"),
        ({"account": "main", "url": "http://x/h", "events": ["recording.stored"], "secret": "mine"}, "secret"),
        (
            {"account": "main", "url": "http://x/h", "events": ["recording.stored"], "description": "a\x00"},
            "description",
        ),
    ],
)
def test_bad_endpoint_fields_are_named(body: dict[str, Any], field: str) -> None:
    from controller.access.errors import Invalid
    from controller.webhooks import _validate

    with pytest.raises(Invalid) as e:
        _validate(body, creating=True)
    assert e.value.field == field


async def test_the_delivery_task_outlives_a_lost_database(fresh_db: str) -> None:
    """The pool goes away under the worker (database restart, pool closed): the task keeps running
    and delivers again on the next round instead of dying silently with events left in the outbox."""
    from controller.config import WebhooksConfig
    from controller.metrics import Metrics
    from storage.webhook_delivery import WebhookWorker

    pool = await db.create_pool(fresh_db)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    worker = WebhookWorker(pool, WebhooksConfig(poll_interval_seconds=0.05), Metrics(), "t")
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    await pool.close()  # every claim now fails with "pool is closed"
    await asyncio.sleep(0.3)
    assert not task.done(), task.exception() if task.done() else None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
