"""Users: list, read, create (token shown once), change role / extension / ring groups / disabled,
issue and revoke tokens."""

from __future__ import annotations

from typing import Any

import asyncpg

from controller.access.audit import Who, log, version_of
from controller.access.errors import Conflict, Invalid, NotFound
from controller.access.roles import keep_an_administrator
from storage import roles as roles_repo
from storage import users as repo
from storage.ring_groups import set_groups_of
from storage.users import User, UserError, transaction

CREATE_KEYS = ("name", "role", "agent_ext", "ring_groups")
UPDATE_KEYS = ("role", "agent_ext", "ring_groups", "disabled")


def _invalid(e: UserError) -> Invalid:
    return Invalid(e.field, str(e).split(": ", 1)[1])


def _known(data: dict[str, Any], keys: tuple[str, ...], read_only: tuple[str, ...] = ()) -> None:
    for k in sorted(data):
        if k in read_only:
            continue
        if k not in keys:
            raise Invalid(k, f"unknown field (expected {', '.join(keys)})")


def view(user: User) -> dict[str, Any]:
    d = user.as_dict()
    return {**d, "version": version_of({k: d[k] for k in ("role", "agent_ext", "ring_groups", "disabled")})}


async def list_users(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [view(u) for u in await repo.list_users(pool)]


async def _user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, *, for_update: bool = False) -> User:
    user = await repo.get_user(conn, user_id, for_update=for_update)
    if user is None:
        raise NotFound("user")
    return user


async def get_user(pool: asyncpg.Pool, user_id: int) -> dict[str, Any]:
    user = await _user(pool, user_id)
    return {**view(user), "tokens": [t.as_dict() for t in await repo.list_tokens(pool, user_id)]}


async def create_user(pool: asyncpg.Pool, who: Who, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Create the user and their first token; the token is returned here and never again."""
    _known(data, CREATE_KEYS)
    if "name" not in data:
        raise Invalid("name", "required")
    if "role" not in data:
        raise Invalid("role", "required")
    groups = data.get("ring_groups", [])
    async with transaction(pool) as c:
        try:
            user, token = await repo.add_user(
                c, data["name"], data["role"], agent_ext=data.get("agent_ext", ""), ring_groups=groups
            )
        except UserError as e:
            raise (Conflict(str(e)) if "already exists" in str(e) else _invalid(e)) from None
        await log(c, who, "user.create", f"user:{user.name}", new=user.as_dict())
    return view(user), token


async def update_user(
    pool: asyncpg.Pool, who: Who, user_id: int, data: dict[str, Any], *, version: str | None = None
) -> dict[str, Any]:
    """Change a user; with `version` (what the editor loaded) a user changed meanwhile is a Conflict."""
    _known(data, UPDATE_KEYS, read_only=("id", "name", "active_tokens", "created_at", "tokens"))
    async with transaction(pool) as c:
        old = await _user(c, user_id, for_update=True)
        if version is not None and version != view(old)["version"]:
            raise Conflict("someone changed this user since you loaded them; here they are now", current=view(old))
        if "name" in data and data["name"] != old.name:
            raise Invalid("name", "a user cannot be renamed")
        role = data.get("role", old.role)
        ext = data.get("agent_ext", old.agent_ext)
        disabled = data.get("disabled", old.disabled)
        if not isinstance(disabled, bool):
            raise Invalid("disabled", "true or false")
        try:
            repo.check_agent_ext(ext)
            await repo.check_role(c, role, ext)
            groups = await repo.check_ring_groups(c, data.get("ring_groups", list(old.ring_groups)))
        except UserError as e:
            raise _invalid(e) from None
        admins = await roles_repo.administrators(c)
        await repo.update_user(c, user_id, role=role, agent_ext=ext, disabled=disabled)
        await set_groups_of(c, user_id, groups)
        await keep_an_administrator(c, admins)
        new = await _user(c, user_id)
        await log(c, who, "user.update", f"user:{old.name}", old=old.as_dict(), new=new.as_dict())
    return view(new)


async def issue_token(pool: asyncpg.Pool, who: Who, user_id: int) -> dict[str, Any]:
    """A further token for the user (shown once in the answer, stored hashed)."""
    async with transaction(pool) as c:
        user = await _user(c, user_id, for_update=True)
        if user.disabled:
            raise Conflict(f"user {user.name} is disabled: enable them first")
        tok, token = await repo.add_token(c, user_id)
        await log(c, who, "user.token_issue", f"user:{user.name}", new={"token_id": tok.id})
    return {**tok.as_dict(), "token": token}


async def revoke_token(pool: asyncpg.Pool, who: Who, user_id: int, token_id: int) -> dict[str, Any]:
    async with transaction(pool) as c:
        user = await _user(c, user_id, for_update=True)
        tok = await repo.revoke_token(c, user_id, token_id)
        if tok is None:
            raise NotFound("token")
        await log(c, who, "user.token_revoke", f"user:{user.name}", old={"token_id": token_id})
    return tok.as_dict()
