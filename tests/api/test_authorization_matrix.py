"""Every role, scope and route: allowed requests succeed, the rest get 403 — or 404 where a 403 would
tell the caller that a recording or call they may not see exists.

The expectations are written out per user (not derived from the code under test).
"""

from __future__ import annotations

import pytest

from tests.api.conftest import USERS, World, reset_live

ALL_RECS = {"sales", "support", "direct", "live"}
STORED = {"sales", "support", "direct"}

# user -> (recordings visible, may listen, may download)
RECORDINGS: dict[str, tuple[set[str], set[str], set[str]]] = {
    "admin": (ALL_RECS, ALL_RECS, ALL_RECS),
    "admin_nodl": (ALL_RECS, set(), set()),
    "sup_sales": ({"sales", "live"}, {"sales", "live"}, set()),
    "sup_sales_dl": ({"sales", "live"}, {"sales", "live"}, {"sales", "live"}),
    "sup_mixed": (ALL_RECS, ALL_RECS, {"support"}),
    "sup_dl_only": ({"support"}, set(), {"support"}),
    "sup_none": (set(), set(), set()),
    "agent_2001": ({"sales", "live"}, {"sales", "live"}, set()),
    "agent_2002_dl": ({"support"}, set(), {"support"}),
    "agent_2003_ring": ({"direct"}, {"direct"}, set()),
}
ALL_CALLS = {"call_sales", "call_support", "call_direct"}
# user -> (live calls visible, calls the user may pause)
CALLS: dict[str, tuple[set[str], set[str]]] = {
    "admin": (ALL_CALLS, ALL_CALLS),
    "admin_nodl": (ALL_CALLS, ALL_CALLS),
    "sup_sales": ({"call_sales"}, {"call_sales"}),
    "sup_sales_dl": ({"call_sales"}, {"call_sales"}),
    "sup_mixed": (ALL_CALLS, ALL_CALLS),
    "sup_dl_only": ({"call_support"}, {"call_support"}),
    "sup_none": (set(), set()),
    "agent_2001": ({"call_sales"}, {"call_sales"}),  # own call, account allows agent pause on it
    "agent_2002_dl": ({"call_support"}, set()),  # own call, but agent pause is off for it
    "agent_2003_ring": ({"call_direct"}, set()),
}
ADMIN_ONLY_WRITE = {"admin", "admin_nodl"}
SETTINGS_READERS = {u for u, spec in USERS.items() if spec[0] in ("admin", "supervisor")}


def test_table_covers_every_user() -> None:
    assert set(RECORDINGS) == set(USERS) == set(CALLS)


@pytest.mark.parametrize("user", sorted(USERS))
async def test_recordings_search_returns_exactly_the_scope(world: World, user: str) -> None:
    r = await world.request("GET", "/api/v1/recordings?limit=500", user)
    assert r.status == 200
    body = await r.json()
    got = {label for label, rid in world.recordings.items() if rid in {x["id"] for x in body["recordings"]}}
    visible, listen, download = RECORDINGS[user]
    assert got == visible
    for row in body["recordings"]:
        label = next(k for k, v in world.recordings.items() if v == row["id"])
        assert row["permissions"] == {"listen": label in listen, "download": label in download}


@pytest.mark.parametrize("user", sorted(USERS))
async def test_recording_detail_audio_waveform(world: World, user: str) -> None:
    visible, listen, download = RECORDINGS[user]
    for label, rid in world.recordings.items():
        detail = await world.request("GET", f"/api/v1/recordings/{rid}", user)
        assert detail.status == (200 if label in visible else 404), (label, detail.status)

        for query, allowed in (("", listen), ("?download=1", download)):
            r = await world.request("GET", f"/api/v1/recordings/{rid}/audio{query}", user)
            if label not in visible:
                expected = 404
            elif label not in allowed:
                expected = 403
            elif label not in STORED:
                expected = 409
            else:
                expected = 200
            assert r.status == expected, (label, query, r.status, await r.text())
            if expected == 200:
                assert await r.read() == world.wavs[label]
            else:
                assert (await r.json())["error"]["code"]

        wf = await world.request("GET", f"/api/v1/recordings/{rid}/waveform", user)
        expected = 404 if label not in visible else 403 if label not in listen else 409 if label not in STORED else 200
        assert wf.status == expected, (label, wf.status)


async def test_not_found_is_indistinguishable_from_out_of_scope(world: World) -> None:
    """sup_sales asking for the support recording gets the same answer as for a random id."""
    hidden = await world.request("GET", f"/api/v1/recordings/{world.recordings['support']}", "sup_sales")
    missing = await world.request("GET", "/api/v1/recordings/00000000-0000-4000-8000-000000000000", "sup_sales")
    assert hidden.status == missing.status == 404
    assert await hidden.json() == await missing.json()


@pytest.mark.parametrize("user", sorted(USERS))
async def test_live_calls_and_pause(world: World, user: str) -> None:
    visible, pausable = CALLS[user]
    reset_live(world.live)
    r = await world.request("GET", "/api/v1/calls", user)
    assert r.status == 200
    assert {c["id"] for c in (await r.json())["calls"]} == visible
    for cid in sorted(ALL_CALLS):
        one = await world.request("GET", f"/api/v1/calls/{cid}", user)
        assert one.status == (200 if cid in visible else 404)
        p = await world.request("POST", f"/api/v1/calls/{cid}/recording/pause", user)
        if cid not in visible:
            assert p.status == 404
        elif cid in pausable:
            assert p.status == 200, await p.text()
            assert (await p.json())["recording"]["state"] == "paused"
            assert world.live.calls[cid]["recording"]["state"] == "paused"
            back = await world.request("POST", f"/api/v1/calls/{cid}/recording/resume", user)
            assert back.status == 200
            assert world.live.calls[cid]["recording"]["state"] == "recording"
        else:
            assert p.status == 403
            err = (await p.json())["error"]
            assert err["code"] == "pause_refused" and err["reason"] == "policy"
            assert world.live.calls[cid]["recording"]["state"] == "recording"


@pytest.mark.parametrize("user", sorted(USERS))
async def test_settings_and_audit_roles(world: World, user: str) -> None:
    can_read, can_write = user in SETTINGS_READERS, user in ADMIN_ONLY_WRITE
    r = await world.request("GET", "/api/v1/accounts/main/settings", user)
    assert r.status == (200 if can_read else 403)
    r = await world.request("PUT", "/api/v1/accounts/main/settings", user, json={"retention_days": 200})
    assert r.status == (200 if can_write else 403)
    number = "/api/v1/numbers/%2B15551230001/override"
    r = await world.request("PUT", number, user, json={"account": "main", "override": {"record_inbound": False}})
    assert r.status == (200 if can_write else 403)
    if not can_write:  # let readers see one
        await world.request("PUT", number, "admin", json={"account": "main", "override": {"record_inbound": False}})
    r = await world.request("GET", number, user)
    assert r.status == (200 if can_read else 403)
    r = await world.request("DELETE", number, user)
    assert r.status == (204 if can_write else 403)
    r = await world.request("GET", "/api/v1/audit", user)
    assert r.status == (200 if USERS[user][0] == "admin" else 403)


@pytest.mark.parametrize("user", sorted(USERS))
async def test_admin_console_routes_roles(world: World, user: str) -> None:
    """Numbers, numbering plan, classify and the "why" box: admins and supervisors read, only admins
    write; everyone signed in may read the share-link limits, only admins change them."""
    can_read, can_write = user in SETTINGS_READERS, user in ADMIN_ONLY_WRITE
    for path in (
        "/api/v1/accounts/main/numbers",
        "/api/v1/accounts/main/numbering",
        "/api/v1/accounts/main/numbering/classify?number=2001",
        "/api/v1/policy/explain?direction=inbound&number=%2B15557000100&transfer_to=%2B15557654321",
    ):
        r = await world.request("GET", path, user)
        assert r.status == (200 if can_read else 403), (path, r.status)
    plan = (await (await world.request("GET", "/api/v1/accounts/main/numbering", "admin")).json())["plan"]
    r = await world.request("PUT", "/api/v1/accounts/main/numbering", user, json=plan)
    assert r.status == (200 if can_write else 403)
    limits = await world.request("GET", "/api/v1/sharing", user)
    assert limits.status == 200
    body = await limits.json()
    r = await world.request(
        "PUT", "/api/v1/sharing", user, json={"default_hours": body["default_hours"], "max_hours": body["max_hours"]}
    )
    assert r.status == (200 if can_write else 403)


@pytest.mark.parametrize("user", sorted(USERS))
async def test_share_links_follow_listen_and_download_scopes(world: World, user: str) -> None:
    """A user creates a link only for a recording they may listen to (404 where they cannot see it);
    a link that allows downloads needs download permission; links are listed and revoked by their
    creator (or an admin)."""
    visible, listen, download = RECORDINGS[user]
    for label in sorted(STORED):
        base = f"/api/v1/recordings/{world.recordings[label]}/shares"
        r = await world.request("POST", base, user, json={})
        expected = 404 if label not in visible else 403 if label not in listen else 201
        assert r.status == expected, (label, r.status)
        r_dl = await world.request("POST", base, user, json={"allow_download": True})
        expected_dl = 404 if label not in visible else 403 if label not in listen or label not in download else 201
        assert r_dl.status == expected_dl, (label, r_dl.status)
        listed = await world.request("GET", base, user)
        expected_list = 404 if label not in visible else 200 if label in listen or USERS[user][0] == "admin" else 403
        assert listed.status == expected_list, (label, listed.status)
        if expected == 201:
            share = await r.json()
            assert share["id"] in {s["id"] for s in (await listed.json())["shares"]}
            other = "sup_none" if user != "sup_none" else "agent_2001"
            assert (await world.request("DELETE", f"{base}/{share['id']}", other)).status == 404
            assert (await world.request("DELETE", f"{base}/{share['id']}", user)).status == 200


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/accounts/main/numbers"),
        ("GET", "/api/v1/accounts/main/numbering"),
        ("PUT", "/api/v1/accounts/main/numbering"),
        ("GET", "/api/v1/accounts/main/numbering/classify?number=2001"),
        ("GET", "/api/v1/policy/explain?direction=inbound&number=2001"),
        ("GET", "/api/v1/sharing"),
        ("PUT", "/api/v1/sharing"),
        ("GET", "/api/v1/recordings/00000000-0000-4000-8000-000000000000/shares"),
        ("POST", "/api/v1/recordings/00000000-0000-4000-8000-000000000000/shares"),
        ("DELETE", "/api/v1/recordings/00000000-0000-4000-8000-000000000000/shares/1"),
        ("GET", "/api/v1/calls"),
        ("GET", "/api/v1/calls/call_sales"),
        ("POST", "/api/v1/calls/call_sales/recording/pause"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/recordings"),
        ("GET", "/api/v1/recordings/00000000-0000-4000-8000-000000000000"),
        ("GET", "/api/v1/recordings/00000000-0000-4000-8000-000000000000/audio"),
        ("GET", "/api/v1/accounts/main/settings"),
        ("PUT", "/api/v1/accounts/main/settings"),
        ("GET", "/api/v1/numbers/%2B15551230001/override"),
        ("DELETE", "/api/v1/numbers/%2B15551230001/override"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/me"),
    ],
)
@pytest.mark.parametrize("who", ["nobody", "garbage", "revoked"])
async def test_no_valid_token_is_401(world: World, method: str, path: str, who: str) -> None:
    headers = {
        "nobody": {},
        "garbage": {"Authorization": "Bearer crk_not-a-token"},
        "revoked": world.headers("revoked"),
    }
    r = await world.request(method, path, headers=headers[who])
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
