"""Every role, scope and route: allowed requests succeed, the rest get 403 — or 404 where a 403 would
tell the caller that a recording or call they may not see exists.

The expectations are written out per user (not derived from the code under test). They are the rights
users had when permissions lived on each user, and they are checked twice: on users created by
today's code, and on users created with the pre-roles schema (migrations 001-002 and the old code's
inserts) then upgraded by the roles migration — an upgrade changes nobody's rights.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from storage import db
from storage.users import hash_token
from tests.api.conftest import USERS, World, own_database, reset_live, serve_world

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
    "sup_default": (ALL_RECS, ALL_RECS, set()),
    "admin_default": (ALL_RECS, ALL_RECS, set()),
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
    "sup_default": (ALL_CALLS, ALL_CALLS),
    "admin_default": (ALL_CALLS, ALL_CALLS),
    "agent_2001": ({"call_sales"}, {"call_sales"}),  # own call, account allows agent pause on it
    "agent_2002_dl": ({"call_support"}, set()),  # own call, but agent pause is off for it
    "agent_2003_ring": ({"call_direct"}, set()),
}
ADMIN_ONLY_WRITE = {"admin", "admin_nodl", "admin_default"}
SETTINGS_READERS = {u for u, spec in USERS.items() if spec[0] in ("admin", "supervisor")}


LEGACY_MIGRATIONS = 2  # the schema before roles: 001_initial, 002_recordings_customer_leg


async def _legacy_users(dsn: str) -> dict[str, str]:
    """Apply only the pre-roles migrations, insert USERS exactly as the old code did, then upgrade."""
    conn = await db.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for m in db.migrations():
            if m.version <= LEGACY_MIGRATIONS:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
                    )
        tokens = {}
        old = {**USERS, "revoked": ("admin", "", "all", "all")}
        for name, (role, ext, listen, download) in old.items():
            uid = await conn.fetchval(
                "INSERT INTO users (name, role, agent_ext, listen_scope, download_scope)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                name, role, ext, listen, download,
            )  # fmt: skip
            tokens[name] = "crk_" + secrets.token_urlsafe(32)
            await conn.execute(
                "INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)", uid, hash_token(tokens[name])
            )
        await conn.execute("UPDATE users SET disabled = true WHERE name = 'revoked'")
        await conn.execute(
            "UPDATE api_tokens SET revoked = true WHERE user_id = (SELECT id FROM users WHERE name = 'revoked')"
        )
        applied = await db.migrate(conn)
        assert "003_roles_ring_groups" in applied
    finally:
        await conn.close()
    return tokens


@pytest.fixture(scope="session")
async def migrated_world(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with own_database(server_dsn, "callrec_legacy") as dsn:
        tokens = await _legacy_users(dsn)

        async def keep(pool: asyncpg.Pool) -> dict[str, str]:
            return tokens

        async with serve_world(dsn, Path(tmp_path_factory.mktemp("legacy")), keep) as w:
            yield w


@pytest.fixture(params=["current", "migrated"])
def any_world(request: pytest.FixtureRequest) -> World:
    """The matrix runs on users made by today's code and on users upgraded from the old schema."""
    return request.getfixturevalue("world" if request.param == "current" else "migrated_world")  # type: ignore[no-any-return]


def test_table_covers_every_user() -> None:
    assert set(RECORDINGS) == set(USERS) == set(CALLS)


async def test_upgrade_assigns_builtin_or_generated_roles(migrated_world: World) -> None:
    """Users whose rights equal a built-in role's defaults get it; others a role named after their rights."""
    rows = await migrated_world.pool.fetch("SELECT name, role FROM users")
    got = {r["name"]: r["role"] for r in rows}
    assert got["sup_default"] == "supervisor" and got["admin_default"] == "admin"
    assert got["sup_sales"] == "supervisor-listen-ring_group_sales-download-none"
    assert got["agent_2001"] == got["agent_2003_ring"] == "agent-listen-agent-download-none"
    assert got["agent_2002_dl"] == "agent-listen-none-download-agent"
    cols = {r["column_name"] for r in await migrated_world.pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")}  # fmt: skip
    assert not cols & {"listen_scope", "download_scope"}  # permissions live on roles only


@pytest.mark.parametrize("user", sorted(USERS))
async def test_recordings_search_returns_exactly_the_scope(any_world: World, user: str) -> None:
    r = await any_world.request("GET", "/api/v1/recordings?limit=500", user)
    assert r.status == 200
    body = await r.json()
    got = {label for label, rid in any_world.recordings.items() if rid in {x["id"] for x in body["recordings"]}}
    visible, listen, download = RECORDINGS[user]
    assert got == visible
    for row in body["recordings"]:
        label = next(k for k, v in any_world.recordings.items() if v == row["id"])
        assert row["permissions"] == {"listen": label in listen, "download": label in download}


@pytest.mark.parametrize("user", sorted(USERS))
async def test_recording_detail_audio_waveform(any_world: World, user: str) -> None:
    visible, listen, download = RECORDINGS[user]
    for label, rid in any_world.recordings.items():
        detail = await any_world.request("GET", f"/api/v1/recordings/{rid}", user)
        assert detail.status == (200 if label in visible else 404), (label, detail.status)

        for query, allowed in (("", listen), ("?download=1", download)):
            r = await any_world.request("GET", f"/api/v1/recordings/{rid}/audio{query}", user)
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
                assert await r.read() == any_world.wavs[label]
            else:
                assert (await r.json())["error"]["code"]

        wf = await any_world.request("GET", f"/api/v1/recordings/{rid}/waveform", user)
        expected = 404 if label not in visible else 403 if label not in listen else 409 if label not in STORED else 200
        assert wf.status == expected, (label, wf.status)


async def test_not_found_is_indistinguishable_from_out_of_scope(world: World) -> None:
    """sup_sales asking for the support recording gets the same answer as for a random id."""
    hidden = await world.request("GET", f"/api/v1/recordings/{world.recordings['support']}", "sup_sales")
    missing = await world.request("GET", "/api/v1/recordings/00000000-0000-4000-8000-000000000000", "sup_sales")
    assert hidden.status == missing.status == 404
    assert await hidden.json() == await missing.json()


@pytest.mark.parametrize("user", sorted(USERS))
async def test_live_calls_and_pause(any_world: World, user: str) -> None:
    visible, pausable = CALLS[user]
    reset_live(any_world.live)
    r = await any_world.request("GET", "/api/v1/calls", user)
    assert r.status == 200
    assert {c["id"] for c in (await r.json())["calls"]} == visible
    for cid in sorted(ALL_CALLS):
        one = await any_world.request("GET", f"/api/v1/calls/{cid}", user)
        assert one.status == (200 if cid in visible else 404)
        p = await any_world.request("POST", f"/api/v1/calls/{cid}/recording/pause", user)
        if cid not in visible:
            assert p.status == 404
        elif cid in pausable:
            assert p.status == 200, await p.text()
            assert (await p.json())["recording"]["state"] == "paused"
            assert any_world.live.calls[cid]["recording"]["state"] == "paused"
            back = await any_world.request("POST", f"/api/v1/calls/{cid}/recording/resume", user)
            assert back.status == 200
            assert any_world.live.calls[cid]["recording"]["state"] == "recording"
        else:
            assert p.status == 403
            err = (await p.json())["error"]
            assert err["code"] == "pause_refused" and err["reason"] == "policy"
            assert any_world.live.calls[cid]["recording"]["state"] == "recording"


@pytest.mark.parametrize("user", sorted(USERS))
async def test_settings_and_audit_roles(any_world: World, user: str) -> None:
    can_read, can_write = user in SETTINGS_READERS, user in ADMIN_ONLY_WRITE
    r = await any_world.request("GET", "/api/v1/accounts/main/settings", user)
    assert r.status == (200 if can_read else 403)
    r = await any_world.request("PUT", "/api/v1/accounts/main/settings", user, json={"retention_days": 200})
    assert r.status == (200 if can_write else 403)
    number = "/api/v1/numbers/%2B15551230001/override"
    r = await any_world.request("PUT", number, user, json={"account": "main", "override": {"record_inbound": False}})
    assert r.status == (200 if can_write else 403)
    if not can_write:  # let readers see one
        await any_world.request("PUT", number, "admin", json={"account": "main", "override": {"record_inbound": False}})
    r = await any_world.request("GET", number, user)
    assert r.status == (200 if can_read else 403)
    r = await any_world.request("DELETE", number, user)
    assert r.status == (204 if can_write else 403)
    r = await any_world.request("GET", "/api/v1/audit", user)
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
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/1"),
        ("PUT", "/api/v1/webhooks/1"),
        ("DELETE", "/api/v1/webhooks/1"),
        ("POST", "/api/v1/webhooks/1/secret"),
        ("GET", "/api/v1/webhooks/1/deliveries?state=dead"),
        ("POST", "/api/v1/webhooks/1/deliveries/1/redeliver"),
    ],
)
@pytest.mark.parametrize("who", ["nobody", "garbage", "revoked"])
async def test_no_valid_token_is_401(any_world: World, method: str, path: str, who: str) -> None:
    headers = {
        "nobody": {},
        "garbage": {"Authorization": "Bearer crk_not-a-token"},
        "revoked": any_world.headers("revoked"),
    }
    r = await any_world.request(method, path, headers=headers[who])
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


# --- admin rights by the access routes (roles, users, ring groups), settings and audit -----------------

# role name -> rights, for users whose role grants exactly one right (or none)
RIGHTS_ONLY = {
    "r_users": ["users"],
    "r_roles": ["roles"],
    "r_audit": ["audit"],
    "r_settings": ["settings"],
    "r_view_settings": ["view_settings"],
    "r_nothing": [],
}
ALL_RIGHTS = {"view_settings", "settings", "users", "roles", "audit"}
# user -> the rights their role grants (admins had everything; supervisors could read settings)
RIGHTS: dict[str, set[str]] = {
    **{u: ALL_RIGHTS for u, spec in USERS.items() if spec[0] == "admin"},
    **{u: {"view_settings"} for u, spec in USERS.items() if spec[0] == "supervisor"},
    **{u: set() for u, spec in USERS.items() if spec[0] == "agent"},
    **{f"u_{r}": set(rights) for r, rights in RIGHTS_ONLY.items()},
}


@pytest.fixture(scope="session")
async def rights_world(world: World) -> World:
    """The shared world plus one user per single-right role."""
    for role, rights in RIGHTS_ONLY.items():
        r = await world.request("POST", "/api/v1/roles", "admin", json={"name": role, "rights": rights})
        assert r.status == 201, await r.text()
        r = await world.request("POST", "/api/v1/users", "admin", json={"name": f"u_{role}", "role": role})
        assert r.status == 201, await r.text()
        world.tokens[f"u_{role}"] = (await r.json())["token"]
    return world


def test_rights_table_covers_every_user() -> None:
    assert set(RIGHTS) == set(USERS) | {f"u_{r}" for r in RIGHTS_ONLY}


@pytest.mark.parametrize("user", sorted(RIGHTS))
async def test_access_routes_need_their_right(rights_world: World, user: str) -> None:
    w, rights = rights_world, RIGHTS[user]

    async def call(method: str, path: str, right: str | tuple[str, ...], ok: int, **kw: object) -> object:
        r = await w.request(method, path, user, **kw)
        needed = (right,) if isinstance(right, str) else right
        allowed = bool(rights.intersection(needed))
        assert r.status == (ok if allowed else 403), (method, path, r.status, await r.text())
        return await r.json() if r.status != 204 else None

    # roles: a role of the user's own to create, read, change and delete
    role = f"tmp-{user}"
    await call("GET", "/api/v1/roles", "roles", 200)
    await call("POST", "/api/v1/roles", "roles", 201, json={"name": role})
    target = role if "roles" in rights else "supervisor"  # forbidden callers aim at a real role
    await call("GET", f"/api/v1/roles/{target}", "roles", 200)
    await call("PUT", f"/api/v1/roles/{target}", "roles", 200, json={"description": "matrix"})
    await call("DELETE", f"/api/v1/roles/{target}", "roles", 204)

    # users: create, read, change, issue and revoke a token
    await call("GET", "/api/v1/users", "users", 200)
    created = await call("POST", "/api/v1/users", "users", 201, json={"name": f"tmp-{user}", "role": "supervisor"})
    uid = created["user"]["id"] if isinstance(created, dict) and "user" in created else 1  # type: ignore[index]
    await call("GET", f"/api/v1/users/{uid}", "users", 200)
    await call("PUT", f"/api/v1/users/{uid}", "users", 200, json={"agent_ext": "7777"})
    tok = await call("POST", f"/api/v1/users/{uid}/tokens", "users", 201)
    tid = tok["id"] if isinstance(tok, dict) and "id" in tok else 1  # type: ignore[index]
    await call("DELETE", f"/api/v1/users/{uid}/tokens/{tid}", "users", 200)

    # ring groups (membership is access, so the users right)
    gid = f"rg-{user}".replace("_", "-")
    await call("GET", "/api/v1/ring-groups", "users", 200)
    await call("POST", "/api/v1/ring-groups", "users", 201, json={"id": gid})
    target_group = gid if "users" in rights else "sales-x"
    await call("GET", f"/api/v1/ring-groups/{target_group}", "users", 200)
    await call("PUT", f"/api/v1/ring-groups/{target_group}", "users", 200, json={"name": "matrix"})
    await call("PUT", f"/api/v1/ring-groups/{target_group}/members/{uid}", "users", 200)
    await call("DELETE", f"/api/v1/ring-groups/{target_group}/members/{uid}", "users", 200)
    await call("DELETE", f"/api/v1/ring-groups/{target_group}", "users", 204)

    # settings and audit by right
    await call("GET", "/api/v1/accounts/main/settings", ("view_settings", "settings"), 200)
    await call("PUT", "/api/v1/accounts/main/settings", "settings", 200, json={"retention_days": 200})
    await call("GET", "/api/v1/audit", "audit", 200)

    # webhooks (admin-only: the settings right), a throw-away endpoint of the user's own
    hook = {"account": "main", "url": "http://127.0.0.1:9/hook", "events": ["recording.stored"]}
    made = await call("POST", "/api/v1/webhooks", "settings", 201, json=hook)
    wid = made["id"] if isinstance(made, dict) and "id" in made else 1  # type: ignore[index]
    await call("GET", "/api/v1/webhooks", "settings", 200)
    await call("GET", f"/api/v1/webhooks/{wid}", "settings", 200)
    await call("PUT", f"/api/v1/webhooks/{wid}", "settings", 200, json={"enabled": False})
    await call("POST", f"/api/v1/webhooks/{wid}/secret", "settings", 200)
    await call("GET", f"/api/v1/webhooks/{wid}/deliveries?state=dead", "settings", 200)
    if "settings" in rights:  # no delivery exists: redeliver answers 404 to those allowed, 403 to the rest
        r = await w.request("POST", f"/api/v1/webhooks/{wid}/deliveries/1/redeliver", user)
        assert r.status == 404, await r.text()
    else:
        await call("POST", f"/api/v1/webhooks/{wid}/deliveries/1/redeliver", "settings", 200)
    await call("DELETE", f"/api/v1/webhooks/{wid}", "settings", 204)

    if "roles" not in rights:  # the forbidden calls changed nothing
        r = await w.request("GET", "/api/v1/roles/supervisor", "admin")
        assert (await r.json())["description"] != "matrix"
