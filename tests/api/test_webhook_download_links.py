"""Download links in `recording.stored` webhook events, over real HTTP end to end: the API serving
age-encrypted recordings, the delivery worker POSTing to a real aiohttp receiver (verified with the
shipped verifier), and an anonymous client following the link it received."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from controller.config import WebhooksConfig
from controller.metrics import Metrics
from storage import outbox
from storage.webhook_delivery import WebhookWorker
from tests.api.conftest import World
from tests.service.test_webhooks import Receiver, free_port


async def _endpoint(world: World, receiver: Receiver, user: str = "admin", **fields: Any) -> int:
    body = {"account": "main", "url": receiver.url, "events": ["recording.stored"], **fields}
    r = await world.request("POST", "/api/v1/webhooks", user, json=body)
    made = await r.json()
    assert r.status == 201, made
    receiver.secret = made["secret"]
    return int(made["id"])


async def _stored_event(world: World, label: str) -> str:
    """recording.stored into the outbox the way finalize writes it: inside the change's transaction."""
    async with world.pool.acquire() as conn, conn.transaction():
        event_id = await outbox.enqueue(conn, "recording.stored", world.recordings[label])
    assert event_id is not None
    return event_id


def _worker(world: World, public_url: str, **wc: Any) -> WebhookWorker:
    return WebhookWorker(world.pool, WebhooksConfig(**wc), Metrics(), "test", public_url=public_url)


async def _shares(world: World, label: str, user: str = "admin") -> list[dict[str, Any]]:
    r = await world.request("GET", f"/api/v1/recordings/{world.recordings[label]}/shares", user)
    assert r.status == 200
    return list((await r.json())["shares"])


async def test_stored_event_carries_a_working_short_lived_revocable_link(
    scratch_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = scratch_world
    caplog.set_level(logging.DEBUG)
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        wid = await _endpoint(world, receiver, download_link=True)
        event_id = await _stored_event(world, "sales")
        worker = _worker(world, world.base + "/")  # a trailing slash is fine
        try:
            before = datetime.now(UTC)
            assert await worker.drain() == 1
        finally:
            await worker.close()

        assert receiver.rejected == 0 and list(receiver.events) == [event_id]  # signed over the link too
        data = receiver.events[event_id]["data"]
        url = data["download_url"]
        assert url.startswith(world.base + "/share/crs_") and url.endswith("/audio?download=1")
        token = url.removeprefix(world.base + "/share/").split("/")[0]
        expires = datetime.fromisoformat(data["download_expires_at"])
        assert timedelta(minutes=14) < expires - before < timedelta(minutes=16)  # the 15 min default

        async with aiohttp.ClientSession() as anon:  # no token, no cookie: the link alone
            got = await anon.get(url)
            assert got.status == 200 and got.headers["Content-Disposition"].startswith("attachment")
            assert await got.read() == world.wavs["sales"]  # the decrypted audio, as share links serve it

        # the token is nowhere at rest: not in the outbox (its payload keeps null), only its hash in shares
        stored = await world.pool.fetchval("SELECT payload::text FROM webhook_outbox WHERE event_id = $1", event_id)
        assert token not in stored and '"download_url": null' in stored
        assert not await world.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE detail::text LIKE '%' || $1 || '%'", token
        )

        # admins see it with the recording's share links; a supervisor sees only their own links
        (link,) = await _shares(world, "sales")
        assert link["created_by"] == f"webhook #{wid}" and link["allow_download"] and link["status"] == "active"
        assert link["opens"] == 0 and datetime.fromisoformat(link["expires_at"]) == expires
        assert await _shares(world, "sales", "sup_mixed") == []
        made = await world.pool.fetchrow(
            "SELECT actor, detail FROM audit_log WHERE action = 'share.create' AND detail->>'share' = $1",
            str(link["id"]),
        )
        assert made["actor"] == f"webhook:{wid}" and made["detail"]["event_id"] == event_id
        downloads = await world.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor = $1 AND action = 'share.download'", f"share:{link['id']}"
        )
        assert downloads == 1

        # after its lifetime the link is refused
        await world.pool.execute(
            "UPDATE recording_shares SET created_at = now() - interval '20 minutes',"
            " expires_at = now() - interval '1 second' WHERE id = $1",
            link["id"],
        )
        async with aiohttp.ClientSession() as anon:
            assert (await anon.get(url)).status == 410

        # a redelivery mints a fresh link; an admin revokes it where share links are revoked
        (row,) = await world.pool.fetch("SELECT id FROM webhook_outbox WHERE event_id = $1", event_id)
        r = await world.request("POST", f"/api/v1/webhooks/{wid}/deliveries/{row['id']}/redeliver", "admin")
        assert r.status == 200
        worker = _worker(world, world.base)
        try:
            assert await worker.drain() == 1
        finally:
            await worker.close()
        again = [p for p in receiver.posts if p["verified"]][-1]
        url2 = json.loads(again["body"])["data"]["download_url"]
        assert url2 != url and url2.startswith(world.base + "/share/crs_")
        fresh = next(s for s in await _shares(world, "sales") if s["status"] == "active")
        path = f"/api/v1/recordings/{world.recordings['sales']}/shares/{fresh['id']}"
        assert (await world.request("DELETE", path, "admin")).status == 200
        async with aiohttp.ClientSession() as anon:
            gone = await anon.get(url2)
            assert gone.status == 410 and (await gone.json())["error"]["link"] == "revoked"
        for t in (token, url2.removeprefix(world.base + "/share/").split("/")[0]):
            assert t not in caplog.text
    finally:
        await receiver.stop()


async def test_no_link_without_public_url_opt_in_or_stored_audio(scratch_world: World) -> None:
    world = scratch_world
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        opted = await _endpoint(world, receiver, download_link=True)
        await _stored_event(world, "sales")
        worker = _worker(world, "")  # no [api] public_url: nobody knows where the API is reached
        try:
            assert await worker.drain() == 1
        finally:
            await worker.close()
        assert [e["data"]["download_url"] for e in receiver.events.values()] == [None]

        r = await world.request("PUT", f"/api/v1/webhooks/{opted}", "admin", json={"download_link": False})
        assert r.status == 200 and (await r.json())["download_link"] is False
        await _stored_event(world, "support")  # public_url set, but the endpoint does not want links
        worker = _worker(world, world.base)
        try:
            assert await worker.drain() == 1
            # opted in again, and an event whose recording is no longer stored when it goes out (purged,
            # erased; here it was stored when the event was written and is back to 'recording')
            r = await world.request("PUT", f"/api/v1/webhooks/{opted}", "admin", json={"download_link": True})
            assert r.status == 200
            live = world.recordings["live"]
            await world.pool.execute("UPDATE recordings SET state = 'stored' WHERE id = $1", live)
            await _stored_event(world, "live")
            await world.pool.execute("UPDATE recordings SET state = 'recording' WHERE id = $1", live)
            assert await worker.drain() == 1
        finally:
            await worker.close()
        assert len(receiver.events) == 3
        assert all(e["data"]["download_url"] is None for e in receiver.events.values())
        assert all(e["data"]["download_expires_at"] is None for e in receiver.events.values())
        assert not await world.pool.fetchval("SELECT count(*) FROM recording_shares")
    finally:
        await receiver.stop()


async def test_a_link_that_reached_nobody_is_revoked(scratch_world: World) -> None:
    """Receiver down (connection refused): the attempt's link never left the service, so it is revoked;
    a receiver that answers 500 did get the body, so its link stays until it expires."""
    world = scratch_world
    down = Receiver(free_port())  # never started
    wid = await _endpoint(world, down, download_link=True)
    await _stored_event(world, "direct")
    worker = _worker(world, world.base, backoff_base_seconds=0.01)
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.close()
    (link,) = await _shares(world, "direct")
    assert link["status"] == "revoked" and link["revoked_by"] == f"webhook #{wid}"
    row = await world.pool.fetchrow("SELECT state, last_error FROM webhook_outbox")
    assert row["state"] == "pending" and "Connect" in row["last_error"]

    failing = Receiver(free_port(), status=500)
    await failing.start()
    try:
        r = await world.request("PUT", f"/api/v1/webhooks/{wid}", "admin", json={"url": failing.url})
        assert r.status == 200
        failing.secret = down.secret
        await world.pool.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
        worker = _worker(world, world.base)
        try:
            assert await worker.run_once() == 1
        finally:
            await worker.close()
        assert len(failing.posts) == 1
        statuses = sorted(s["status"] for s in await _shares(world, "direct"))
        assert statuses == ["active", "revoked"]
    finally:
        await failing.stop()


async def test_only_who_may_download_everything_turns_links_on(scratch_world: World) -> None:
    """An endpoint with download_link hands every stored recording of its account to its receiver: an
    admin whose role may not download them all can neither turn it on nor point such an endpoint elsewhere."""
    world = scratch_world
    hook = {"account": "main", "url": "http://127.0.0.1:9/hook", "events": ["recording.stored"]}
    r = await world.request("POST", "/api/v1/webhooks", "admin_default", json={**hook, "download_link": True})
    assert r.status == 403 and "download" in (await r.json())["error"]["message"]
    r = await world.request("POST", "/api/v1/webhooks", "admin_default", json=hook)
    made = await r.json()
    assert r.status == 201 and made["download_link"] is False
    path = f"/api/v1/webhooks/{made['id']}"
    assert (await world.request("PUT", path, "admin_default", json={"download_link": True})).status == 403
    r = await world.request("PUT", path, "admin", json={"download_link": True})
    assert r.status == 200 and (await r.json())["download_link"] is True
    assert (await world.request("PUT", path, "admin_default", json={"url": "http://127.0.0.1:8/x"})).status == 403
    r = await world.request("PUT", path, "admin_default", json={"description": "crm", "url": hook["url"]})
    assert r.status == 200  # same url, other fields: allowed
    assert (await world.request("PUT", path, "admin_default", json={"download_link": False})).status == 200
    r = await world.request("PUT", path, "admin", json={"download_link": "yes"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "download_link"
    changed = await world.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'webhook.update' AND target = $1"
        " AND (detail->'new'->>'download_link')::boolean",
        f"webhook:{made['id']}",
    )
    assert changed == 2  # turned on by admin, kept on through the description change


async def test_links_are_cut_when_the_endpoint_stops_receiving_them(scratch_world: World) -> None:
    """Turning download links off, pointing the endpoint elsewhere or deleting it revokes the links it
    still holds: a receiver that is no longer trusted keeps none."""
    world = scratch_world
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        wid = await _endpoint(world, receiver, download_link=True)
        urls = []
        for label, change in (("sales", {"download_link": False}), ("support", {"url": receiver.url + "?v=2"})):
            await _stored_event(world, label)
            worker = _worker(world, world.base)
            try:
                assert await worker.drain() == 1
            finally:
                await worker.close()
            url = json.loads(receiver.posts[-1]["body"])["data"]["download_url"]
            async with aiohttp.ClientSession() as anon:
                assert (await anon.get(url, headers={"Range": "bytes=0-9"})).status == 206  # works until...
            r = await world.request("PUT", f"/api/v1/webhooks/{wid}", "admin", json=change)
            assert r.status == 200
            async with aiohttp.ClientSession() as anon:
                assert (await anon.get(url)).status == 410
            (link,) = await _shares(world, label)
            assert link["status"] == "revoked" and link["revoked_by"] == "admin"
            urls.append(url)
            r = await world.request("PUT", f"/api/v1/webhooks/{wid}", "admin", json={"download_link": True})
            assert r.status == 200

        await _stored_event(world, "direct")
        worker = _worker(world, world.base)
        try:
            assert await worker.drain() == 1
        finally:
            await worker.close()
        url = json.loads(receiver.posts[-1]["body"])["data"]["download_url"]
        assert (await world.request("DELETE", f"/api/v1/webhooks/{wid}", "admin")).status == 204
        async with aiohttp.ClientSession() as anon:
            assert (await anon.get(url)).status == 410
        reasons = await world.pool.fetch(
            "SELECT detail->>'reason' AS reason FROM audit_log WHERE action = 'share.revoke' AND actor = 'user:admin'"
            " ORDER BY id"
        )
        assert [r["reason"] for r in reasons] == ["webhook changed", "webhook changed", "webhook deleted"]
    finally:
        await receiver.stop()
