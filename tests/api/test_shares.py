"""Share links over real HTTP: who may create them, what the link reaches (one recording's audio,
nothing else), that every use is audited with the remote address, and 410 after revocation or expiry.
The anonymous browser side is in test_admin_page_browser.py."""

from __future__ import annotations

import aiohttp

from tests.api.conftest import World


async def _create(world: World, user: str, label: str, **body: object) -> aiohttp.ClientResponse:
    return await world.request("POST", f"/api/v1/recordings/{world.recordings[label]}/shares", user, json=body)


async def test_share_link_plays_one_recording_is_audited_and_revocable(world: World) -> None:
    r = await _create(world, "sup_mixed", "sales")
    assert r.status == 201, await r.text()
    share = await r.json()
    token, url = share["token"], share["url"]
    assert url == f"/share/{token}" and share["allow_download"] is False and share["status"] == "active"
    stored = await world.pool.fetchval("SELECT token_hash FROM recording_shares WHERE id = $1", share["id"])
    assert token not in stored  # only the hash is kept

    async with aiohttp.ClientSession() as anon:  # no token, no cookie
        page = await anon.get(world.base + url)
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        assert (
            page.headers["Referrer-Policy"] == "no-referrer"
            and "default-src 'none'" in page.headers["Content-Security-Policy"]
        )
        info = await (await anon.get(world.base + url + "/info")).json()
        assert info["allow_download"] is False and info["shared_by"] == "sup_mixed"
        assert "customer_number" not in info and "id" not in info
        audio = await anon.get(world.base + url + "/audio", headers={"Range": "bytes=0-99"})
        assert audio.status == 206 and await audio.read() == world.wavs["sales"][:100]
        full = await anon.get(world.base + url + "/audio")
        assert await full.read() == world.wavs["sales"]
        dl = await anon.get(world.base + url + "/audio?download=1")
        assert dl.status == 403  # listen-only link
        # the share token is not an API token
        api = await anon.get(world.base + "/api/v1/recordings", headers={"Authorization": f"Bearer {token}"})
        assert api.status == 401

    entries = await world.pool.fetch(
        "SELECT actor, action, remote, detail FROM audit_log WHERE actor = $1 ORDER BY id", f"share:{share['id']}"
    )
    assert [e["action"] for e in entries] == ["share.open", "share.listen", "share.listen"]
    assert all(e["remote"] == "127.0.0.1" and e["detail"]["created_by"] == "sup_mixed" for e in entries)
    created = await world.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'share.create' AND actor = 'user:sup_mixed'"
        " AND detail->>'share' = $1",
        str(share["id"]),
    )
    assert created == 1

    listed = await (
        await world.request("GET", f"/api/v1/recordings/{world.recordings['sales']}/shares", "sup_mixed")
    ).json()
    mine = next(s for s in listed["shares"] if s["id"] == share["id"])
    assert mine["opens"] == 1 and mine["last_opened_at"] and "token" not in mine
    others = await world.request("GET", f"/api/v1/recordings/{world.recordings['sales']}/shares", "sup_sales")
    assert share["id"] not in {s["id"] for s in (await others.json())["shares"]}  # not their link

    path = f"/api/v1/recordings/{world.recordings['sales']}/shares/{share['id']}"
    assert (await world.request("DELETE", path, "sup_sales")).status == 404  # someone else's link
    r = await world.request("DELETE", path, "sup_mixed")
    assert r.status == 200 and (await r.json())["status"] == "revoked"
    async with aiohttp.ClientSession() as anon:
        page = await anon.get(world.base + url)
        assert page.status == 410 and "revoked" in await page.text()
        assert (await anon.get(world.base + url + "/audio")).status == 410
        assert (await anon.get(world.base + url + "/info")).status == 410
        assert (await anon.get(world.base + "/share/crs_unknown")).status == 404
    refused = await world.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE actor = $1 AND action = 'share.open_refused'", f"share:{share['id']}"
    )
    assert refused == 1


async def test_expired_link_is_gone(world: World) -> None:
    share = await (await _create(world, "admin", "support", expires_in_hours=1, allow_download=True)).json()
    async with aiohttp.ClientSession() as anon:
        dl = await anon.get(world.base + share["url"] + "/audio?download=1")
        assert dl.status == 200 and dl.headers["Content-Disposition"].startswith("attachment")
        await world.pool.execute(
            "UPDATE recording_shares SET created_at = now() - interval '2 hours',"
            " expires_at = now() - interval '1 second' WHERE id = $1",
            share["id"],
        )
        page = await anon.get(world.base + share["url"])
        assert page.status == 410 and "expired" in await page.text()
        assert (await anon.get(world.base + share["url"] + "/audio")).status == 410


async def test_who_may_share_what(world: World) -> None:
    assert (await _create(world, "sup_sales", "support")).status == 404  # cannot even see it
    assert (await _create(world, "sup_dl_only", "support")).status == 403  # sees it, may not listen
    r = await _create(world, "agent_2001", "sales", allow_download=True)
    assert r.status == 403  # may listen, not download: the link cannot allow more
    assert (await _create(world, "agent_2001", "sales")).status == 201
    assert (await _create(world, "admin", "live")).status == 409  # not stored yet
    limits = await (await world.request("GET", "/api/v1/sharing", "admin")).json()
    r = await _create(world, "admin", "sales", expires_in_hours=limits["max_hours"] + 1)
    assert r.status == 422 and (await r.json())["error"]["field"] == "expires_in_hours"
    r = await _create(world, "admin", "sales", everyone=True)
    assert r.status == 422 and (await r.json())["error"]["field"] == "everyone"
    default = await (await _create(world, "admin", "sales")).json()
    created = await world.pool.fetchrow(
        "SELECT expires_at - created_at AS life FROM recording_shares WHERE id = $1", default["id"]
    )
    assert created["life"].total_seconds() == limits["default_hours"] * 3600
