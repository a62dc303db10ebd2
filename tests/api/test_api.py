"""Behaviour of each resource over real HTTP: playback with Range, audit trail, SSE, settings
validation, search and pagination, health, errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

from tests.api.conftest import World, insert_recording, reset_live
from tests.api.live_source import call_view


async def test_audio_range_requests_return_the_exact_bytes(world: World) -> None:
    rid, wav = world.recordings["sales"], world.wavs["sales"]
    total = len(wav)
    cases = {
        "bytes=0-43": (0, 43),
        "bytes=1000-70000": (1000, 70000),
        f"bytes={total - 10}-": (total - 10, total - 1),
        "bytes=-100": (total - 100, total - 1),
        f"bytes=5000-{total + 999}": (5000, total - 1),
    }
    for header, (start, end) in cases.items():
        r = await world.request("GET", f"/api/v1/recordings/{rid}/audio", "admin", headers={"Range": header})
        assert r.status == 206, header
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{total}"
        assert await r.read() == wav[start : end + 1]
    r = await world.request("GET", f"/api/v1/recordings/{rid}/audio", "admin", headers={"Range": f"bytes={total}-"})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{total}"
    full = await world.request("GET", f"/api/v1/recordings/{rid}/audio", "admin")
    assert full.status == 200 and full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Disposition"].startswith("inline")
    dl = await world.request("GET", f"/api/v1/recordings/{rid}/audio?download=1", "admin")
    assert dl.headers["Content-Disposition"].startswith("attachment")
    assert await dl.read() == wav


async def test_every_listen_and_download_is_audited_with_who_what_where(world: World) -> None:
    rid = world.recordings["support"]
    before = await world.pool.fetchval("SELECT coalesce(max(id), 0) FROM audit_log")
    await world.request("GET", f"/api/v1/recordings/{rid}/audio", "sup_mixed", headers={"Range": "bytes=0-99"})
    await world.request("GET", f"/api/v1/recordings/{rid}/audio?download=1", "sup_mixed")
    await world.request("GET", f"/api/v1/recordings/{world.recordings['sales']}/audio?download=1", "sup_mixed")  # 403
    r = await world.request("GET", f"/api/v1/audit?target=recording:{rid}", "admin")
    entries = [e for e in (await r.json())["entries"] if e["id"] > before]
    assert [(e["actor"], e["action"]) for e in reversed(entries)] == [
        ("user:sup_mixed", "recording.listen"),
        ("user:sup_mixed", "recording.download"),
    ]
    assert all(e["remote"] == "127.0.0.1" and e["at"] for e in entries)
    assert entries[-1]["detail"]["range"] == "bytes=0-99"
    # refused attempts wrote nothing
    assert await world.pool.fetchval("SELECT count(*) FROM audit_log WHERE id > $1", before) == 2


async def test_audit_log_cannot_be_rewritten(world: World) -> None:
    import asyncpg
    import pytest

    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await world.pool.execute("DELETE FROM audit_log")


async def test_pause_is_journaled_with_who_did_it(world: World) -> None:
    reset_live(world.live)
    r = await world.request("POST", "/api/v1/calls/call_support/recording/pause", "sup_mixed")
    assert r.status == 200
    assert world.live.actions[-1] == ("call_support", "paused", "user:sup_mixed")
    again = await world.request("POST", "/api/v1/calls/call_support/recording/pause", "sup_mixed")
    assert again.status == 409 and (await again.json())["error"]["reason"] == "state"
    rows = await world.pool.fetch("SELECT actor, action FROM audit_log WHERE target = 'call:call_support'")
    assert ("user:sup_mixed", "call.pause") in [(x["actor"], x["action"]) for x in rows]


async def test_sse_streams_snapshot_then_changes_in_scope_only(world: World) -> None:
    reset_live(world.live)
    assert world.session is not None
    async with world.session.get(world.base + "/api/v1/events", headers=world.headers("sup_sales")) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")

        async def next_event() -> tuple[str, dict]:
            event, data = "", ""
            while True:
                line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and event:
                    return event, json.loads(data)

        kind, snap = await next_event()
        assert kind == "snapshot" and [c["id"] for c in snap["calls"]] == ["call_sales"]
        world.live.put(call_view("call_other", agent="2009", ring_group="support"))  # out of scope
        world.live.put(call_view("call_new", agent="2010", ring_group="sales"))
        kind, change = await next_event()
        assert kind == "call.updated" and change["call"]["id"] == "call_new"
        world.live.end("call_new")
        kind, change = await next_event()
        assert kind == "call.ended" and change["call"]["id"] == "call_new"
    world.live.end("call_other")


async def test_cookie_session_for_page_reads_but_never_for_writes(world: World) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # unsafe = IP host
        r = await s.post(world.base + "/api/v1/session", headers=world.headers("admin"))
        assert r.status == 200
        assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        assert (await s.get(world.base + "/api/v1/me")).status == 200
        reset_live(world.live)
        assert (await s.post(world.base + "/api/v1/calls/call_sales/recording/pause")).status == 401
        assert world.live.calls["call_sales"]["recording"]["state"] == "recording"


async def test_settings_validation_names_the_field(world: World) -> None:
    r = await world.request("PUT", "/api/v1/accounts/acme/settings", "admin", json={"retention_days": 0})
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["field"] == "retention_days" and "1 to 36500" in err["message"]
    r = await world.request("PUT", "/api/v1/accounts/acme/settings", "admin", json={"record_inbund": True})
    assert r.status == 422 and (await r.json())["error"]["field"] == "record_inbund"
    r = await world.request("PUT", "/api/v1/accounts/acme/settings", "admin", data=b"{nope")
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
    r = await world.request("GET", "/api/v1/accounts/acme/settings", "admin")
    assert r.status == 404  # nothing half-written
    r = await world.request("PUT", "/api/v1/accounts/acme/settings", "admin", json={"record_outbound": False})
    assert r.status == 200
    settings = (await (await world.request("GET", "/api/v1/accounts/acme/settings", "admin")).json())["settings"]
    assert settings["record_outbound"] is False and settings["retention_days"] == 183


async def test_number_override_roundtrip_and_inheritance(world: World) -> None:
    await world.request("PUT", "/api/v1/accounts/acme/settings", "admin", json={"retention_days": 90})
    path = "/api/v1/numbers/" + "(555) 000-1234".replace(" ", "%20") + "/override"  # national form
    r = await world.request("PUT", path, "admin", json={"override": {"record_inbound": False}})
    assert r.status == 422 and (await r.json())["error"]["field"] == "account"  # a new number needs its account
    r = await world.request("PUT", path, "admin", json={"account": "acme", "override": {"record_inbound": False}})
    assert r.status == 200
    body = await r.json()
    assert body["number"] == "+15550001234"
    assert body["effective"]["record_inbound"] is False and body["sources"]["record_inbound"] == "number:+15550001234"
    assert body["effective"]["retention_days"] == 90 and body["sources"]["retention_days"] == "account"
    r = await world.request("PUT", path, "admin", json={"override": {"retention_days": "long"}})
    assert r.status == 422 and (await r.json())["error"]["field"] == "retention_days"
    r = await world.request("GET", "/api/v1/numbers/%2B15550001234/override", "sup_sales")
    assert (await r.json())["override"] == {"record_inbound": False}
    assert (await world.request("DELETE", "/api/v1/numbers/%2B15550001234/override", "admin")).status == 204
    r = await world.request("GET", "/api/v1/numbers/%2B15550001234/override", "admin")
    assert (await r.json())["override"] == {}
    r = await world.request("GET", "/api/v1/numbers/not-a-number/override", "admin")
    assert r.status == 400 and (await r.json())["error"]["field"] == "number"


async def test_search_filters_and_keyset_pages(world: World) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    ids = []
    for i in range(25):
        ids.append(
            await insert_recording(
                world.pool,
                state="stored" if i % 2 else "failed",
                agents=["2001"] if i % 3 else ["2002"],
                ring_groups=["sales"],
                started_at=t0 + timedelta(minutes=i),
                customer=f"+1555700{i:04d}",
                direction="outbound" if i % 5 == 0 else "inbound",
            )
        )
    window = "from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"
    seen: list[str] = []
    cursor = ""
    while True:
        r = await world.request("GET", f"/api/v1/recordings?{window}&limit=7{cursor}", "admin")
        body = await r.json()
        seen += [x["id"] for x in body["recordings"]]
        if not body["next_cursor"]:
            break
        cursor = "&cursor=" + body["next_cursor"]
    assert seen == list(reversed(ids))  # newest first, no gaps, no repeats

    async def ids_for(query: str, user: str = "admin") -> set[str]:
        r = await world.request("GET", f"/api/v1/recordings?{window}&limit=500&{query}", user)
        assert r.status == 200, await r.text()
        return {x["id"] for x in (await r.json())["recordings"]}

    assert await ids_for("agent=2002") == {ids[i] for i in range(25) if i % 3 == 0}
    assert await ids_for("state=failed&direction=outbound") == {ids[i] for i in range(25) if i % 2 == 0 and i % 5 == 0}
    assert await ids_for("number=555-700-0007") == {ids[7]}  # national form finds the E.164 row
    assert await ids_for("", "agent_2001") == {ids[i] for i in range(25) if i % 3}
    await world.pool.execute("DELETE FROM recordings WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids])


async def test_bad_input_is_a_json_4xx_never_a_500(world: World) -> None:
    cases = [
        ("GET", "/api/v1/recordings?from=yesterday", 400),
        ("GET", "/api/v1/recordings?limit=0", 400),
        ("GET", "/api/v1/recordings?limit=abc", 400),
        ("GET", "/api/v1/recordings?direction=sideways", 400),
        ("GET", "/api/v1/recordings?cursor=%%%", 400),
        ("GET", "/api/v1/recordings?cursor=bm90IGpzb24", 400),
        ("GET", "/api/v1/recordings/not-a-uuid", 404),
        ("GET", f"/api/v1/recordings/{world.recordings['sales']}/audio?download=maybe", 400),
        ("GET", f"/api/v1/recordings/{world.recordings['sales']}/waveform?buckets=1", 400),
        ("GET", "/api/v1/audit?before=-1", 400),
        ("GET", "/api/v1/no-such-route", 404),
        ("PATCH", "/api/v1/calls", 405),
        ("PUT", "/api/v1/accounts/bad%20id/settings", 400),
        ("PUT", "/api/v1/accounts/main/settings", 422),
    ]
    for method, path, status in cases:
        kw = {"data": b"[1, 2]"} if method == "PUT" else {}
        r = await world.request(method, path, "admin", **kw)
        assert r.status == status, (method, path, r.status, await r.text())
        err = (await r.json())["error"]
        assert err["code"] and err["message"]


async def test_health_is_503_naming_the_failing_component(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from controller.api import create_app, start_api
    from controller.config import Config, SpoolConfig

    def link_down() -> dict:
        return {"ok": False, "error": "ESL connection refused"}

    cfg = Config(state_dir=str(tmp_path), spool=SpoolConfig(dir=str(tmp_path / "missing")))
    runner, port = await start_api(create_app(cfg, world.pool, None, None, {"pbx:fs1": link_down}), "127.0.0.1", 0)
    try:
        assert world.session is not None
        async with world.session.get(f"http://127.0.0.1:{port}/health") as r:
            body = await r.json()
        assert r.status == 503 and body["status"] == "failing"
        assert body["components"]["database"]["ok"] is True
        assert body["components"]["pbx:fs1"] == {"ok": False, "error": "ESL connection refused"}
        assert body["components"]["spool"]["ok"] is False
        async with world.session.get(f"http://127.0.0.1:{port}/api/v1/calls", headers=world.headers("admin")) as r:
            assert r.status == 503 and (await r.json())["error"]["code"] == "live_unavailable"
    finally:
        await runner.cleanup()
    ok = await world.request("GET", "/health")
    assert ok.status == 200


async def test_detail_explains_policy_and_timeline(world: World) -> None:
    r = await world.request("GET", f"/api/v1/recordings/{world.recordings['sales']}", "sup_sales")
    body = await r.json()
    assert body["policy"]["sources"]["record"] == "account"
    assert body["timeline"]["pauses"] == [{"start_ms": 1000, "end_ms": 1500, "by": "agent:2001"}]
    assert [e["kind"] for e in body["events"]] == ["start", "pause", "resume"]
    assert body["manifest_verification"]["status"] == "no_manifest"  # test rows carry no manifest
    live = await world.request("GET", f"/api/v1/recordings/{world.recordings['live']}", "sup_sales")
    assert (await live.json())["manifest_verification"]["status"] == "not_stored"
    assert "object_uri" not in body  # storage layout is for admins only


async def test_metrics_expose_live_calls_and_states(world: World) -> None:
    reset_live(world.live)
    r = await world.request("GET", "/metrics")
    text = await r.text()
    assert f"callrec_calls_live {len(world.live.calls)}" in text
    assert 'callrec_recordings{state="stored"}' in text
    assert 'callrec_api_requests_total{route="/metrics"' in text or "callrec_api_requests_total" in text


async def test_wrong_key_or_missing_object_is_a_clear_error_not_a_500(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyrage

    from tests.api.conftest import write_call_wav

    other = pyrage.x25519.Identity.generate()
    obj = world.config.storage_path / "2026" / "11" / "21" / "other-key.wav.age"
    obj.write_bytes(pyrage.encrypt(write_call_wav(tmp_path / "x.wav"), [other.to_public()]))
    t = datetime(2024, 1, 1, tzinfo=UTC)
    wrong = await insert_recording(
        world.pool, state="stored", agents=["2001"], ring_groups=[], started_at=t, object_uri=obj.as_uri()
    )
    gone = await insert_recording(
        world.pool, state="stored", agents=["2001"], ring_groups=[], started_at=t,
        object_uri=(obj.parent / "missing.wav.age").as_uri(),
    )  # fmt: skip
    r = await world.request("GET", f"/api/v1/recordings/{wrong}/audio", "admin")
    assert r.status == 502 and (await r.json())["error"]["code"] == "decrypt_failed"
    r = await world.request("GET", f"/api/v1/recordings/{gone}/audio", "admin")
    assert r.status == 503 and (await r.json())["error"]["code"] == "object_missing"
    await world.pool.execute("DELETE FROM recordings WHERE id = ANY($1::uuid[])", [uuid.UUID(wrong), uuid.UUID(gone)])


async def test_live_list_stays_exact_when_changes_overflow_the_queue(world: World) -> None:
    reset_live(world.live)
    await world.request("GET", "/api/v1/calls", "admin")
    burst = [f"burst-{i}" for i in range(150)]  # more changes than the subscriber queue holds
    for cid in burst:
        world.live.put(call_view(cid, agent="2001", ring_group="sales"))
    for cid in burst[:40]:
        world.live.end(cid)
    r = await world.request("GET", "/api/v1/calls", "sup_sales")
    assert {c["id"] for c in (await r.json())["calls"]} == {"call_sales", *burst[40:]}
    for cid in burst[40:]:
        world.live.end(cid)
    r = await world.request("GET", "/api/v1/calls", "admin")
    assert {c["id"] for c in (await r.json())["calls"]} == {"call_sales", "call_support", "call_direct"}
