"""GET /api/v1/calls under load: per-scope cached bodies with strong ETags (304 when unchanged), gzip
when the client accepts it, and the token cache that must never let a revoked token through.

All over real HTTP against an API on a database of its own (these tests add users, ring groups and
revoke tokens) and, for the multi-instance cases, a second API instance on the same PostgreSQL, as a
second `callrec run` would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from controller.api import create_app, start_api
from controller.api.auth_cache import AuthCache
from controller.api.state import STATE
from storage import db, users
from tests.api.conftest import World, add_test_users, own_database, reset_live, serve_world
from tests.api.live_source import call_view

IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
async def cache_dsn(server_dsn: str) -> AsyncIterator[str]:
    async with own_database(server_dsn, "callrec_livecache") as dsn:
        conn = await db.connect(dsn)
        await db.migrate(conn)
        await conn.close()
        yield dsn


@pytest.fixture(scope="module")
async def world(cache_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with serve_world(cache_dsn, Path(tmp_path_factory.mktemp("livecache")), add_test_users) as w:
        yield w


async def _get(world: World, user: str, **headers: str) -> aiohttp.ClientResponse:
    return await world.request("GET", "/api/v1/calls", user, headers={**IDENTITY, **headers})


def _ids(body: bytes) -> set[str]:
    return {c["id"] for c in json.loads(body)["calls"]}


async def test_unchanged_view_is_a_304_and_a_change_a_new_etag(world: World) -> None:
    reset_live(world.live)
    first = await _get(world, "admin")
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"
    again = await _get(world, "admin", **{"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b"" and again.headers["ETag"] == etag
    assert (await _get(world, "admin", **{"If-None-Match": f'"nope", W/{etag}'})).status == 304  # weak comparison

    world.live.put(call_view("etag_new", agent="2009", ring_group="support"))
    try:
        changed = await _get(world, "admin", **{"If-None-Match": etag})
        assert changed.status == 200 and changed.headers["ETag"] != etag
        assert "etag_new" in _ids(await changed.read())
    finally:
        world.live.end("etag_new")
    back = await _get(world, "admin", **{"If-None-Match": etag})
    assert back.status == 304  # same calls again: same bytes, same tag


async def test_a_change_outside_my_scope_keeps_my_etag(world: World) -> None:
    reset_live(world.live)
    mine = await _get(world, "sup_sales")
    world.live.put(call_view("elsewhere", agent="2009", ring_group="support"))
    try:
        assert (await _get(world, "sup_sales", **{"If-None-Match": mine.headers["ETag"]})).status == 304
        assert "elsewhere" in _ids(await (await _get(world, "admin")).read())
    finally:
        world.live.end("elsewhere")


async def test_a_cached_body_of_one_scope_is_never_served_to_another(world: World) -> None:
    reset_live(world.live)
    for cid, group in (("scope_s1", "sales"), ("scope_u1", "support")):
        world.live.put(call_view(cid, agent="2010", ring_group=group))
    try:
        bodies: dict[str, tuple[set[str], str]] = {}
        for _ in range(3):  # alternate, so each request finds the other scope's body in the cache
            for user in ("admin", "sup_sales", "agent_2002_dl", "sup_sales_dl"):
                r = await _get(world, user)
                ids = _ids(await r.read())
                assert bodies.setdefault(user, (ids, r.headers["ETag"])) == (ids, r.headers["ETag"])
        assert bodies["admin"][0] >= {"call_sales", "call_support", "call_direct", "scope_s1", "scope_u1"}
        assert bodies["sup_sales"][0] == {"call_sales", "scope_s1"}
        assert bodies["sup_sales_dl"][0] == {"call_sales", "scope_s1"}  # same scope, same body
        assert bodies["agent_2002_dl"][0] == {"call_support"}  # own calls only
        # another scope's tag is not a validator for mine: the full body comes back
        r = await _get(world, "sup_sales", **{"If-None-Match": bodies["admin"][1]})
        assert r.status == 200 and _ids(await r.read()) == {"call_sales", "scope_s1"}
    finally:
        world.live.end("scope_s1")
        world.live.end("scope_u1")


async def test_gzip_when_accepted_with_its_own_etag(world: World) -> None:
    reset_live(world.live)
    for i in range(40):  # a body worth compressing
        world.live.put(call_view(f"gz_{i}", agent="2001", ring_group="sales"))
    try:
        plain = await _get(world, "admin")
        plain_body = await plain.read()
        assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
        async with aiohttp.ClientSession(auto_decompress=False) as raw:
            headers = {**world.headers("admin"), "Accept-Encoding": "gzip, deflate"}
            async with raw.get(world.base + "/api/v1/calls", headers=headers) as r:
                packed = await r.read()
                assert r.headers["Content-Encoding"] == "gzip" and r.headers["ETag"] != plain.headers["ETag"]
                assert len(packed) < len(plain_body) / 4 and gzip.decompress(packed) == plain_body
                gz_etag = r.headers["ETag"]
            async with raw.get(world.base + "/api/v1/calls", headers={**headers, "If-None-Match": gz_etag}) as r:
                assert r.status == 304
            refused = {**world.headers("admin"), "Accept-Encoding": "gzip;q=0, identity"}
            async with raw.get(world.base + "/api/v1/calls", headers=refused) as r:
                assert "Content-Encoding" not in r.headers and await r.read() == plain_body
    finally:
        for i in range(40):
            world.live.end(f"gz_{i}")


@contextlib.asynccontextmanager
async def second_instance(world: World, ttl: float) -> AsyncIterator[tuple[str, AuthCache]]:
    """Another API instance on the same database, its token cache keeping entries for `ttl` s."""
    app = create_app(world.config, world.pool, world.live)
    cache = AuthCache(world.pool, ttl=ttl)
    app[STATE].auth_cache = cache
    runner, port = await start_api(app, "127.0.0.1", 0)
    try:
        for _ in range(200):  # until it listens (a hang guard, not a timing assertion)
            if cache.active:
                break
            await asyncio.sleep(0.02)
        assert cache.active
        yield f"http://127.0.0.1:{port}", cache
    finally:
        await runner.cleanup()


async def _status(world: World, base: str, token: str, path: str = "/api/v1/me") -> int:
    assert world.session is not None
    async with world.session.get(base + path, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def _generation_moves(cache: AuthCache, before: int) -> None:
    async with asyncio.timeout(10):  # a hang guard: without the notification it never moves
        while cache.generation == before:
            await cache.changed()


async def test_a_token_revoked_elsewhere_stops_working_at_once(world: World, cache_dsn: str) -> None:
    """Revoked by another instance's API, or by the CLI on a connection of its own: this instance has
    the principal cached for an hour, and still refuses the token as soon as PostgreSQL tells it."""
    _, via_api = await users.add_user(world.pool, "cache_api_victim", "supervisor")
    _, via_cli = await users.add_user(world.pool, "cache_cli_victim", "supervisor")
    async with second_instance(world, ttl=3600) as (base, cache):
        assert await _status(world, base, via_api) == 200 and await _status(world, base, via_cli) == 200
        uid = await users.id_of(world.pool, "cache_api_victim")
        tokens = await users.list_tokens(world.pool, uid)  # type: ignore[arg-type]
        before = cache.generation
        r = await world.request("DELETE", f"/api/v1/users/{uid}/tokens/{tokens[0].id}", "admin")
        assert r.status == 200  # revoked through the OTHER instance (the session's API)
        await _generation_moves(cache, before)
        assert await _status(world, base, via_api) == 401

        before = cache.generation
        conn = await asyncpg.connect(cache_dsn)
        try:
            await users.revoke_user(conn, "cache_cli_victim")  # as `callrec users revoke` does
        finally:
            await conn.close()
        await _generation_moves(cache, before)
        assert await _status(world, base, via_cli) == 401


async def test_without_its_listener_the_cache_is_bypassed(world: World) -> None:
    """If the notification connection is lost, no cached principal is used: even a revocation that
    notifies nobody (a hand-written UPDATE) applies to the next request."""
    _, token = await users.add_user(world.pool, "cache_listener_victim", "supervisor")
    async with second_instance(world, ttl=3600) as (base, cache):
        assert await _status(world, base, token) == 200  # cached now
        await world.pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%callrec_auth%'"
        )
        async with asyncio.timeout(10):
            while cache.active:
                await cache.changed()
        assert await _status(world, base, token) == 200  # checked in PostgreSQL, and not kept
        await world.pool.execute(
            "UPDATE api_tokens SET revoked = true WHERE user_id = (SELECT id FROM users WHERE name = $1)",
            "cache_listener_victim",
        )
        assert await _status(world, base, token) == 401


async def _sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    event = ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode()
        if not line:
            return
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


async def test_an_open_event_stream_ends_when_its_token_is_revoked(world: World) -> None:
    reset_live(world.live)
    _, token = await users.add_user(world.pool, "sse_victim", "supervisor", listen_scope="ring_group:sales")
    uid = await users.id_of(world.pool, "sse_victim")
    assert world.session is not None
    headers = {"Authorization": f"Bearer {token}"}
    async with world.session.get(world.base + "/api/v1/events", headers=headers) as resp:
        events = _sse_events(resp)
        kind, snap = await anext(events)
        assert kind == "snapshot" and {c["id"] for c in snap["calls"]} == {"call_sales"}
        tokens = await users.list_tokens(world.pool, uid)  # type: ignore[arg-type]
        r = await world.request("DELETE", f"/api/v1/users/{uid}/tokens/{tokens[0].id}", "admin")
        assert r.status == 200
        world.live.put(call_view("after_revoke", agent="2001", ring_group="sales"))
        try:
            rest = [e async for e in events]
        finally:
            world.live.end("after_revoke")
    assert [k for k, _ in rest] == ["revoked"]  # and nothing about the call placed after it


async def test_an_event_stream_follows_a_narrowed_scope(world: World) -> None:
    """A supervisor removed from a ring group stops receiving its calls on the open stream."""
    reset_live(world.live)
    await world.pool.execute(
        "INSERT INTO ring_groups (id, name) VALUES ('narrow', 'Narrow'), ('sales', 'Sales') ON CONFLICT DO NOTHING"
    )
    _, token = await users.add_user(
        world.pool, "sse_narrow", "supervisor", listen_scope="ring_group", ring_groups=["narrow", "sales"]
    )
    uid = await users.id_of(world.pool, "sse_narrow")
    assert world.session is not None
    async with world.session.get(world.base + "/api/v1/events", headers={"Authorization": f"Bearer {token}"}) as resp:
        events = _sse_events(resp)
        kind, snap = await anext(events)
        assert kind == "snapshot"
        r = await world.request("DELETE", f"/api/v1/ring-groups/narrow/members/{uid}", "admin")
        assert r.status == 200
        kind, snap = await anext(events)  # a fresh snapshot in the new scope
        assert kind == "snapshot" and {c["id"] for c in snap["calls"]} == {"call_sales"}
        world.live.put(call_view("narrow_call", agent="2011", ring_group="narrow"))
        world.live.put(call_view("sales_call", agent="2012", ring_group="sales"))
        try:
            kind, change = await anext(events)
        finally:
            world.live.end("narrow_call")
            world.live.end("sales_call")
    assert (kind, change["call"]["id"]) == ("call.updated", "sales_call")
