"""`callrec users`: the token is printed once, stored hashed, works on the API, and revoke ends it."""

from __future__ import annotations

import asyncio
import os
import sys

from storage.users import hash_token
from tests.api.conftest import World


async def _cli(api_dsn: str, tmp_path, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "CALLREC_DATABASE_URL": api_dsn, "CALLREC_STATE_DIR": str(tmp_path)}
    env.pop("CALLREC_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "users", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_users_add_list_revoke(world: World, api_dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = await _cli(
        api_dsn, tmp_path, "add", "carol", "--role", "supervisor", "--listen-scope", "ring_group:sales"
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("crk_") and "shown once" in err
    stored = await world.pool.fetchval(
        "SELECT t.token_hash FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = 'carol'"
    )
    assert stored == hash_token(token) and token not in stored

    r = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    me = await r.json()
    # permissions live on roles: the scopes given pick a role like supervisor with that listen scope
    assert me["role"] == "supervisor-listen-ring_group_sales-download-none"
    assert me["listen_scope"] == "ring_group:sales" and me["download_scope"] == "none"
    assert "view_settings" in me["rights"] and "users" not in me["rights"]

    code, out, _ = await _cli(api_dsn, tmp_path, "list")
    assert code == 0 and "carol" in out and token not in out

    code, _, err = await _cli(api_dsn, tmp_path, "add", "dave", "--role", "agent")
    assert code == 2 and "agent_ext" in err
    code, _, err = await _cli(api_dsn, tmp_path, "add", "erin", "--role", "supervisor", "--download-scope", "team:x")
    assert code == 2 and "download_scope" in err
    code, _, err = await _cli(api_dsn, tmp_path, "add", "carol", "--role", "admin")
    assert code == 2 and "already exists" in err

    code, _, err = await _cli(api_dsn, tmp_path, "revoke", "carol")
    assert code == 0 and "1 token(s) revoked" in err
    r = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401


async def test_roles_cli_add_set_delete(world: World, api_dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = await _cli(api_dsn, tmp_path, "add", "quinn", "--role", "supervisor")
    assert code == 0, err
    token = out.strip()

    async def me() -> dict:  # type: ignore[type-arg]
        r = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        return await r.json()  # type: ignore[no-any-return]

    code, out, err = await _roles(api_dsn, tmp_path, "add", "qa", "--listen", "ring_group", "--rights", "audit")
    assert code == 0, err
    assert '"listen": "ring_group"' in out and '"download": "none"' in out
    code, _, err = await _roles(api_dsn, tmp_path, "add", "qa2", "--download", "team:x")
    assert code == 2 and "download" in err
    code, _, err = await _roles(api_dsn, tmp_path, "set", "qa", "--rights", "audit,bogus")
    assert code == 2 and "rights" in err and "bogus" in err

    await world.pool.execute("UPDATE users SET role = 'qa' WHERE name = 'quinn'")
    assert (await me())["rights"] == ["audit"]
    code, _, err = await _roles(api_dsn, tmp_path, "set", "qa", "--download", "all")
    assert code == 0, err
    assert (await me())["download_scope"] == "all"  # the same token, no new login
    code, _, err = await _roles(api_dsn, tmp_path, "delete", "qa")
    assert code == 2 and "1 user(s) have the role qa" in err
    code, out, _ = await _roles(api_dsn, tmp_path, "list")
    assert code == 0 and "qa" in out and "supervisor" in out
    entries = await world.pool.fetch("SELECT actor, action FROM audit_log WHERE target = 'role:qa' ORDER BY id")
    assert [e["action"] for e in entries] == ["role.create", "role.update"]
    assert all(e["actor"].startswith("cli") for e in entries)


async def _roles(api_dsn: str, tmp_path, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "CALLREC_DATABASE_URL": api_dsn, "CALLREC_STATE_DIR": str(tmp_path)}
    env.pop("CALLREC_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "roles", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()
