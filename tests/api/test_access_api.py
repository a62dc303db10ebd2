"""Roles, users and ring groups over real HTTP on a world of their own (these tests edit built-in roles).

What an administrator does in the admin page, through the documented routes: a role edit changes what
its users may do at their next request (same token), every change is validated with the field named,
audited with the old and new value, and the last administrator cannot lock everyone out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import db
from tests.api.conftest import World, add_test_users, own_database, serve_world


@pytest.fixture(scope="module")
async def aw(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with own_database(server_dsn, "callrec_access") as dsn:
        conn = await db.connect(dsn)
        await db.migrate(conn)
        await conn.close()
        async with serve_world(dsn, Path(tmp_path_factory.mktemp("access")), add_test_users) as w:
            yield w


async def _json(w: World, method: str, path: str, user: str = "admin", **kw: Any) -> tuple[int, Any]:
    r = await w.request(method, path, user, **kw)
    body = await r.json() if r.content_type == "application/json" else None
    return r.status, body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _audit(w: World, target: str) -> list[dict[str, Any]]:
    status, body = await _json(w, "GET", f"/api/v1/audit?target={target}")
    assert status == 200
    return list(reversed(body["entries"]))


async def test_supervisor_hears_only_their_ring_groups_and_downloads_once_granted(aw: World) -> None:
    """The issue's acceptance path, API-level: listen=ring_group, download granted later, same token."""
    status, body = await _json(aw, "PUT", "/api/v1/roles/supervisor", json={"listen": "ring_group"})
    assert status == 200 and body["listen"] == "ring_group" and body["download"] == "none"
    status, created = await _json(aw, "POST", "/api/v1/users", json={"name": "sue", "role": "supervisor"})
    assert status == 201
    token, sue = created["token"], created["user"]
    status, _ = await _json(
        aw, "POST", "/api/v1/ring-groups", json={"id": "sales", "name": "Sales", "members": [sue["id"]]}
    )
    assert status == 201

    async def get(path: str) -> int:
        r = await aw.request("GET", path, headers=_bearer(token))
        await r.read()
        return r.status

    rec = aw.recordings
    assert await get(f"/api/v1/recordings/{rec['sales']}/audio") == 200  # came through sales
    assert await get(f"/api/v1/recordings/{rec['support']}/audio") == 404  # not hers: not even visible
    assert await get(f"/api/v1/recordings/{rec['direct']}/audio") == 404
    assert await get(f"/api/v1/recordings/{rec['sales']}/audio?download=1") == 403  # no role downloads by default
    r = await aw.request("GET", "/api/v1/recordings?limit=100", headers=_bearer(token))
    rows = {x["id"]: x["permissions"] for x in (await r.json())["recordings"]}
    assert rows == {
        rec["sales"]: {"listen": True, "download": False},
        rec["live"]: {"listen": True, "download": False},
    }

    status, _ = await _json(aw, "PUT", "/api/v1/roles/supervisor", json={"download": "ring_group"})
    assert status == 200
    assert await get(f"/api/v1/recordings/{rec['sales']}/audio?download=1") == 200  # no new login
    assert await get(f"/api/v1/recordings/{rec['support']}/audio?download=1") == 404
    r = await aw.request("GET", f"/api/v1/recordings/{rec['sales']}", headers=_bearer(token))
    assert (await r.json())["permissions"] == {"listen": True, "download": True}

    # leaving the ring group takes the calls away at once
    status, _ = await _json(aw, "DELETE", f"/api/v1/ring-groups/sales/members/{sue['id']}")
    assert status == 200
    assert await get(f"/api/v1/recordings/{rec['sales']}/audio") == 404

    entries = await _audit(aw, "role:supervisor")
    assert [e["action"] for e in entries] == ["role.update", "role.update"]
    assert entries[-1]["actor"] == "user:admin"
    assert (
        entries[-1]["detail"]["old"]["download"] == "none" and entries[-1]["detail"]["new"]["download"] == "ring_group"
    )
    await _json(aw, "PUT", "/api/v1/roles/supervisor", json={"listen": "all", "download": "none"})


async def test_roles_are_validated_naming_the_field_and_deletable_only_when_unused(aw: World) -> None:
    cases = [
        ({"name": "qa", "listen": "team:x"}, "listen"),
        ({"name": "qa", "rights": ["audit", "bogus"]}, "rights"),
        ({"name": "qa", "pause": "all,agent"}, "pause"),
        ({"name": "has space"}, "name"),
        ({"name": "qa", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        status, err = await _json(aw, "POST", "/api/v1/roles", json=body)
        assert status == 422 and err["error"]["field"] == field, (body, err)
    status, err = await _json(
        aw, "POST", "/api/v1/roles", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and err["error"]["code"] == "invalid_json"

    status, qa = await _json(aw, "POST", "/api/v1/roles", json={"name": "qa", "description": "Quality"})
    assert status == 201
    assert (qa["listen"], qa["download"], qa["view"], qa["pause"], qa["rights"]) == ("all", "none", "none", "none", [])
    assert (await _json(aw, "POST", "/api/v1/roles", json={"name": "qa"}))[0] == 409
    status, qa = await _json(aw, "PUT", "/api/v1/roles/qa", json={"rights": ["audit"], "download": "agent:2002"})
    assert status == 200 and qa["rights"] == ["audit"] and qa["download"] == "agent:2002"
    assert (await _json(aw, "PUT", "/api/v1/roles/qa", json={"name": "qa2"}))[1]["error"]["field"] == "name"

    status, created = await _json(aw, "POST", "/api/v1/users", json={"name": "quinn", "role": "qa"})
    assert status == 201
    status, err = await _json(aw, "DELETE", "/api/v1/roles/qa")
    assert status == 409 and err["error"]["users"] == 1
    status, err = await _json(aw, "DELETE", "/api/v1/roles/agent")
    assert status == 409 and "built-in" in err["error"]["message"]
    status, _ = await _json(aw, "PUT", f"/api/v1/users/{created['user']['id']}", json={"role": "supervisor"})
    assert status == 200
    assert (await _json(aw, "DELETE", "/api/v1/roles/qa"))[0] == 204
    assert (await _json(aw, "GET", "/api/v1/roles/qa"))[0] == 404
    assert [e["action"] for e in await _audit(aw, "role:qa")] == ["role.create", "role.update", "role.delete"]

    status, listing = await _json(aw, "GET", "/api/v1/roles")
    names = [r["name"] for r in listing["roles"]]
    assert names[:3] == ["admin", "agent", "supervisor"] and "qa" not in names  # built-in first


async def test_users_tokens_shown_once_revocable_and_disable(aw: World) -> None:
    status, err = await _json(aw, "POST", "/api/v1/users", json={"name": "al", "role": "agent"})
    assert status == 422 and err["error"]["field"] == "agent_ext"  # the agent role is about own calls
    status, err = await _json(aw, "POST", "/api/v1/users", json={"name": "al", "role": "nope"})
    assert status == 422 and err["error"]["field"] == "role"
    status, err = await _json(
        aw, "POST", "/api/v1/users", json={"name": "al", "role": "agent", "agent_ext": "2001", "ring_groups": ["ghost"]}
    )
    assert status == 422 and err["error"]["field"] == "ring_groups"
    status, created = await _json(
        aw, "POST", "/api/v1/users", json={"name": "al", "role": "agent", "agent_ext": "2001"}
    )
    assert status == 201
    uid, first = created["user"]["id"], created["token"]
    assert (await _json(aw, "POST", "/api/v1/users", json={"name": "al", "role": "agent", "agent_ext": "1"}))[0] == 409

    me = await aw.request("GET", "/api/v1/me", headers=_bearer(first))
    assert (await me.json())["listen_scope"] == "all"  # the built-in agent listens to all by default
    status, detail = await _json(aw, "GET", f"/api/v1/users/{uid}")
    assert status == 200 and len(detail["tokens"]) == 1 and first not in str(detail)
    status, listing = await _json(aw, "GET", "/api/v1/users")
    assert first not in str(listing) and "al" in {u["name"] for u in listing["users"]}

    status, second = await _json(aw, "POST", f"/api/v1/users/{uid}/tokens")
    assert status == 201 and second["token"].startswith("crk_")
    status, _ = await _json(aw, "DELETE", f"/api/v1/users/{uid}/tokens/{detail['tokens'][0]['id']}")
    assert status == 200
    assert (await aw.request("GET", "/api/v1/me", headers=_bearer(first))).status == 401
    assert (await aw.request("GET", "/api/v1/me", headers=_bearer(second["token"]))).status == 200
    assert (await _json(aw, "DELETE", f"/api/v1/users/{uid}/tokens/999999"))[0] == 404

    status, user = await _json(aw, "PUT", f"/api/v1/users/{uid}", json={"disabled": True})
    assert status == 200 and user["disabled"] is True
    assert (await aw.request("GET", "/api/v1/me", headers=_bearer(second["token"]))).status == 401
    status, _ = await _json(aw, "PUT", f"/api/v1/users/{uid}", json={"disabled": False})
    assert (await aw.request("GET", "/api/v1/me", headers=_bearer(second["token"]))).status == 200
    for body, field in (({"agent_ext": "a b"}, "agent_ext"), ({"disabled": "yes"}, "disabled"), ({"shoe": 1}, "shoe")):
        status, err = await _json(aw, "PUT", f"/api/v1/users/{uid}", json=body)
        assert status == 422 and err["error"]["field"] == field
    assert (await _json(aw, "GET", "/api/v1/users/0"))[0] == 404
    assert (await _json(aw, "GET", "/api/v1/users/abc"))[0] == 404
    actions = [e["action"] for e in await _audit(aw, "user:al")]
    assert actions == ["user.create", "user.token_issue", "user.token_revoke", "user.update", "user.update"]


async def test_ring_groups_and_members(aw: World) -> None:
    uid = (await _json(aw, "POST", "/api/v1/users", json={"name": "rita", "role": "supervisor"}))[1]["user"]["id"]
    for body, field in (
        ({"id": "bad id"}, "id"),
        ({"id": "x", "members": [99999]}, "members"),
        ({"id": "x", "members": "1"}, "members"),
    ):
        status, err = await _json(aw, "POST", "/api/v1/ring-groups", json=body)
        assert status == 422 and err["error"]["field"] == field, body
    status, g = await _json(aw, "POST", "/api/v1/ring-groups", json={"id": "600", "name": "Support line"})
    assert status == 201 and g == {"id": "600", "name": "Support line", "members": []}
    assert (await _json(aw, "POST", "/api/v1/ring-groups", json={"id": "600"}))[0] == 409
    status, g = await _json(aw, "PUT", f"/api/v1/ring-groups/600/members/{uid}")
    assert status == 200 and [m["name"] for m in g["members"]] == ["rita"]
    status, user = await _json(aw, "GET", f"/api/v1/users/{uid}")
    assert user["ring_groups"] == ["600"]
    status, g = await _json(aw, "PUT", "/api/v1/ring-groups/600", json={"name": "Support", "members": []})
    assert status == 200 and g["members"] == [] and g["name"] == "Support"
    status, user = await _json(aw, "PUT", f"/api/v1/users/{uid}", json={"ring_groups": ["600"]})
    assert status == 200 and user["ring_groups"] == ["600"]
    assert (await _json(aw, "DELETE", "/api/v1/ring-groups/600"))[0] == 204
    assert (await _json(aw, "GET", f"/api/v1/users/{uid}"))[1]["ring_groups"] == []
    assert (await _json(aw, "GET", "/api/v1/ring-groups/600"))[0] == 404
    actions = [e["action"] for e in await _audit(aw, "ring_group:600")]
    assert actions == ["ring_group.create", "ring_group.member_add", "ring_group.update", "ring_group.delete"]


async def test_nobody_can_remove_the_last_administrator(aw: World) -> None:
    """admin, admin_nodl and admin_default hold users+roles through three roles; taking the rights from
    all three would leave nobody able to give them back."""
    keep = ["view_settings", "settings", "users", "roles", "audit"]
    roles = {u: (await _json(aw, "GET", "/api/v1/me", u))[1]["role"] for u in ("admin", "admin_nodl", "admin_default")}
    assert len(set(roles.values())) == 3
    assert (await _json(aw, "PUT", f"/api/v1/roles/{roles['admin_default']}", json={"rights": ["audit"]}))[0] == 200
    assert (await _json(aw, "PUT", f"/api/v1/roles/{roles['admin_nodl']}", json={"rights": []}))[0] == 200
    status, err = await _json(aw, "PUT", f"/api/v1/roles/{roles['admin']}", json={"rights": ["users"]})
    assert status == 409 and "nobody could undo it" in err["error"]["message"]
    admin_id = (await _json(aw, "GET", "/api/v1/me"))[1]["id"]
    assert (await _json(aw, "PUT", f"/api/v1/users/{admin_id}", json={"disabled": True}))[0] == 409
    assert (await _json(aw, "GET", "/api/v1/roles"))[0] == 200  # still an administrator
    for who in ("admin_default", "admin_nodl"):
        assert (await _json(aw, "PUT", f"/api/v1/roles/{roles[who]}", json={"rights": keep}))[0] == 200


async def test_pause_scope_none_refuses_even_visible_calls(aw: World) -> None:
    """A role may see live calls without the right to pause them: 403 with reason scope, nothing paused."""
    status, _ = await _json(aw, "POST", "/api/v1/roles", json={"name": "watcher", "view": "all", "listen": "none"})
    assert status == 201
    token = (await _json(aw, "POST", "/api/v1/users", json={"name": "wanda", "role": "watcher"}))[1]["token"]
    r = await aw.request("GET", "/api/v1/calls/call_sales", headers=_bearer(token))
    assert r.status == 200
    r = await aw.request("POST", "/api/v1/calls/call_sales/recording/pause", headers=_bearer(token))
    err = (await r.json())["error"]
    assert r.status == 403 and err["code"] == "pause_refused" and err["reason"] == "scope"
    assert aw.live.calls["call_sales"]["recording"]["state"] == "recording"
    assert (await _json(aw, "PUT", "/api/v1/roles/watcher", json={"pause": "ring_group:sales"}))[0] == 200
    r = await aw.request("POST", "/api/v1/calls/call_sales/recording/pause", headers=_bearer(token))
    assert r.status == 200 and aw.live.calls["call_sales"]["recording"]["state"] == "paused"
    r = await aw.request("POST", "/api/v1/calls/call_sales/recording/resume", headers=_bearer(token))
    assert r.status == 200


async def test_two_admins_editing_the_same_role_or_user_the_second_gets_409(aw: World) -> None:
    """Optimistic concurrency: a save made on what someone else already changed is refused, never merged."""
    r = await aw.request("GET", "/api/v1/roles/agent", "admin")
    loaded = await r.json()
    assert r.headers["ETag"] == f'"{loaded["version"]}"'
    first = await aw.request(
        "PUT",
        "/api/v1/roles/agent",
        "admin_default",
        json={**loaded, "description": "first", "version": loaded["version"]},
    )
    assert first.status == 200, await first.text()
    second = await aw.request(
        "PUT", "/api/v1/roles/agent", "admin", json={"download": "agent"}, headers={"If-Match": r.headers["ETag"]}
    )
    err = (await second.json())["error"]
    assert second.status == 409 and err["current"]["description"] == "first" and err["current"]["download"] == "none"
    fresh = await aw.request(
        "PUT", "/api/v1/roles/agent", "admin", json={"description": "", "version": err["current"]["version"]}
    )
    assert fresh.status == 200

    uid = (await (await aw.request("GET", "/api/v1/me", "sup_none")).json())["id"]
    user = await (await aw.request("GET", f"/api/v1/users/{uid}", "admin")).json()
    ok = await aw.request(
        "PUT", f"/api/v1/users/{uid}", "admin", json={"agent_ext": "5555", "version": user["version"]}
    )
    assert ok.status == 200
    stale = await aw.request(
        "PUT", f"/api/v1/users/{uid}", "admin", json={"disabled": True, "version": user["version"]}
    )
    assert stale.status == 409 and (await stale.json())["error"]["current"]["agent_ext"] == "5555"
    assert (await aw.request("GET", "/api/v1/me", "sup_none")).status == 200  # the stale disable did not happen
