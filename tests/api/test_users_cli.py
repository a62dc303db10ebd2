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
    assert me["role"] == "supervisor" and me["listen_scope"] == "ring_group:sales" and me["download_scope"] == "none"

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
