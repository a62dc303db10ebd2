"""The API under test: a real database, real users and tokens, age-encrypted recordings on disk,
served on a real TCP port and called over HTTP."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pyrage
import pytest

from controller.api import create_app, start_api
from controller.config import Config, EncryptionConfig, SpoolConfig, StorageConfig
from controller.metrics import Metrics
from lab.tones import WavWriter
from storage import db, repo, users
from tests.api.live_source import MemoryLive, call_view

CUSTOMER_HZ, AGENT_HZ = 440, 880

# name -> (role, agent_ext, listen scope, download scope)
USERS: dict[str, tuple[str, str, str, str]] = {
    "admin": ("admin", "", "all", "all"),
    "admin_nodl": ("admin", "", "none", "none"),
    "sup_sales": ("supervisor", "", "ring_group:sales", "none"),
    "sup_sales_dl": ("supervisor", "", "ring_group:sales", "ring_group:sales"),
    "sup_mixed": ("supervisor", "", "all", "agent:2002"),
    "sup_dl_only": ("supervisor", "", "none", "ring_group:support"),
    "sup_none": ("supervisor", "", "none", "none"),
    "sup_default": ("supervisor", "", "all", "none"),
    "admin_default": ("admin", "", "all", "none"),
    "agent_2001": ("agent", "2001", "all", "none"),
    "agent_2002_dl": ("agent", "2002", "none", "all"),
    "agent_2003_ring": ("agent", "2003", "ring_group:sales", "none"),
}


@dataclass
class World:
    base: str
    pool: asyncpg.Pool
    live: MemoryLive
    config: Config
    tokens: dict[str, str] = field(default_factory=dict)
    recordings: dict[str, str] = field(default_factory=dict)  # label -> id
    wavs: dict[str, bytes] = field(default_factory=dict)  # label -> plaintext WAV
    session: aiohttp.ClientSession | None = None

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    async def request(self, method: str, path: str, user: str | None = None, **kw: Any) -> aiohttp.ClientResponse:
        assert self.session is not None
        headers = {**self.headers(user), **kw.pop("headers", {})}
        resp = await self.session.request(method, self.base + path, headers=headers, **kw)
        await resp.read()
        return resp


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


@pytest.fixture(scope="session")
async def api_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database of the API tests' own, so their rows never meet other areas' tests."""
    name = f"callrec_api_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = _with_database(server_dsn, name)
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    yield dsn
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def write_call_wav(path: Path, seconds: float = 3.0, pause: tuple[float, float] = (1.0, 1.5)) -> bytes:
    """Stereo test call: customer 440 Hz left, agent 880 Hz right, silence during the pause."""
    w = WavWriter(path, channels=2)
    w.write((CUSTOMER_HZ, AGENT_HZ), pause[0] * 1000)
    w.write((None, None), (pause[1] - pause[0]) * 1000)
    w.write((CUSTOMER_HZ, AGENT_HZ), (seconds - pause[1]) * 1000)
    w.close()
    return path.read_bytes()


async def insert_recording(
    pool: asyncpg.Pool,
    *,
    state: str,
    agents: list[str],
    ring_groups: list[str],
    started_at: datetime,
    customer: str = "+15557654321",
    direction: str = "inbound",
    object_uri: str | None = None,
    duration_ms: int | None = None,
) -> str:
    rec_id = uuid.uuid4()
    timeline = {
        "segments": [{"party": agents[0] if agents else "", "class": "internal", "start_ms": 0, "end_ms": None}],
        "pauses": [{"start_ms": 1000, "end_ms": 1500, "by": f"agent:{agents[0]}" if agents else "pbx"}],
        "transfers": [
            {"at_ms": 2500, "kind": "blind", "target": "2005", "target_class": "internal", "stopped_recording": False}
        ],
        "stop": {"at_ms": duration_ms, "reason": "hangup"} if duration_ms else None,
    }
    policy = {
        "record": True,
        "account": "main",
        "direction": direction,
        "number": "+15551234567",
        "sources": {"record": "account", "record_inbound": "account"},
        "settings": {"record_inbound": True, "agent_pause_allowed": True},
    }
    await pool.execute(
        "INSERT INTO recordings (id, pbx, pbx_kind, account_id, direction, customer_number, account_number, agent,"
        " agents, ring_groups, state, policy, timeline, started_at, stopped_at, duration_ms, object_uri,"
        " retention_until, stored_at)"
        " VALUES ($1, 'fs1', 'freeswitch', 'main', $2, $3, '+15551234567', $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13, $10::timestamptz + interval '183 days', $14)",
        rec_id,
        direction,
        customer,
        agents[0] if agents else "",
        agents,
        ring_groups,
        state,
        policy,
        timeline,
        started_at,
        started_at + timedelta(milliseconds=duration_ms) if duration_ms else None,
        duration_ms,
        object_uri,
        started_at + timedelta(seconds=10) if state == "stored" else None,
    )
    await pool.execute(
        "INSERT INTO recording_events (recording_id, kind, offset_ms, actor) VALUES ($1, 'start', 0, 'policy'),"
        " ($1, 'pause', 1000, $2), ($1, 'resume', 1500, $2)",
        rec_id,
        f"agent:{agents[0]}" if agents else "pbx",
    )
    return str(rec_id)


LIVE_CALLS = {
    "call_sales": dict(agent="2001", ring_group="sales", agent_pause_allowed=True),
    "call_support": dict(agent="2002", ring_group="support", agent_pause_allowed=False),
    "call_direct": dict(agent="2003", ring_group="", agent_pause_allowed=False),
}


def reset_live(live: MemoryLive) -> None:
    for cid, kw in LIVE_CALLS.items():
        live.put(call_view(cid, **kw))  # type: ignore[arg-type]


UserMaker = Callable[[asyncpg.Pool], Awaitable[dict[str, str]]]


async def add_test_users(pool: asyncpg.Pool) -> dict[str, str]:
    """USERS through today's code (their scopes become roles), plus a revoked admin; name -> token.

    An agent's scopes used to mean "within my own calls"; today that is the scope term `agent`.
    """
    tokens = {}
    for name, (role, ext, listen, download) in USERS.items():
        if role == "agent":
            listen, download = ("none" if s == "none" else "agent" for s in (listen, download))
        _, tokens[name] = await users.add_user(
            pool, name, role, agent_ext=ext, listen_scope=listen, download_scope=download
        )
    _, tokens["revoked"] = await users.add_user(pool, "revoked", "admin", download_scope="all")
    await users.revoke_user(pool, "revoked")
    return tokens


@contextlib.asynccontextmanager
async def serve_world(dsn: str, tmp: Path, make_users: UserMaker) -> AsyncIterator[World]:
    """The API on a real port over `dsn`, with the users `make_users` creates and four recordings."""
    identity = pyrage.x25519.Identity.generate()
    (tmp / "identity.txt").write_text(f"# test identity\n{identity}\n")
    (tmp / "spool").mkdir()
    config = Config(
        state_dir=str(tmp),
        spool=SpoolConfig(dir=str(tmp / "spool")),
        storage=StorageConfig(path=str(tmp / "recordings")),
        encryption=EncryptionConfig(recipients=(str(identity.to_public()),), identity_file=str(tmp / "identity.txt")),
    )
    pool = await db.create_pool(dsn, min_size=1, max_size=10)
    await repo.put_account_settings(pool, "main", {"agent_pause_allowed": False})
    live = MemoryLive()
    reset_live(live)
    app = create_app(config, pool, live, Metrics(), {"pbx:fs1": lambda: {"ok": True, "connected": True}})
    runner, port = await start_api(app, "127.0.0.1", 0)
    w = World(f"http://127.0.0.1:{port}", pool, live, config)
    w.tokens.update(await make_users(pool))

    store = config.storage_path / "2026" / "11" / "21"
    store.mkdir(parents=True)
    t0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    specs = {
        "sales": (["2001"], ["sales"], "stored"),
        "support": (["2002"], ["support"], "stored"),
        "direct": (["2003"], [], "stored"),
        "live": (["2001"], ["sales"], "recording"),
    }
    for i, (label, (agents, groups, state)) in enumerate(specs.items()):
        uri = None
        if state == "stored":
            plain = write_call_wav(tmp / f"{label}.wav")
            w.wavs[label] = plain
            obj = store / f"{label}.wav.age"
            obj.write_bytes(pyrage.encrypt(plain, [identity.to_public()]))
            (tmp / f"{label}.wav").unlink()  # plaintext never outlives the test spool
            uri = obj.as_uri()
        w.recordings[label] = await insert_recording(
            pool,
            state=state,
            agents=agents,
            ring_groups=groups,
            started_at=t0 + timedelta(minutes=i),
            object_uri=uri,
            duration_ms=3000 if state == "stored" else None,
        )
    try:
        async with aiohttp.ClientSession() as session:
            w.session = session
            yield w
    finally:
        await runner.cleanup()
        await pool.close()


@contextlib.asynccontextmanager
async def own_database(server_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A throw-away database (not migrated), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield _with_database(server_dsn, name)
    finally:
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def scratch_world(server_dsn: str, tmp_path: Path) -> AsyncIterator[World]:
    """A world of its own for tests that change users, roles or tokens at random (schemathesis)."""
    async with own_database(server_dsn, "callrec_scratch") as dsn:
        conn = await db.connect(dsn)
        await db.migrate(conn)
        await conn.close()
        async with serve_world(dsn, tmp_path, add_test_users) as w:
            yield w


@pytest.fixture(scope="session")
async def world(api_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with serve_world(api_dsn, tmp_path_factory.mktemp("api"), add_test_users) as w:
        yield w
