"""Roles: list, read, create, change, delete. A change applies from the users' next request on."""

from __future__ import annotations

from typing import Any

import asyncpg

from controller.access.audit import Who, log, version_of
from controller.access.errors import Conflict, Invalid, NotFound
from controller.permissions import Role, RoleError, role_from_dict
from storage import roles as repo
from storage.users import transaction


def view(role: Role, users: int) -> dict[str, Any]:
    return {**role.as_dict(), "users": users, "version": version_of(role.as_dict())}


async def list_roles(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [view(r, n) for r, n in await repo.list_roles(pool)]


async def get_role(pool: asyncpg.Pool, name: str) -> dict[str, Any]:
    role = await repo.get(pool, name)
    if role is None:
        raise NotFound("role")
    return view(role, await repo.user_count(pool, name))


def _validated(data: dict[str, Any], base: Role | None = None) -> Role:
    data = {k: v for k, v in data.items() if k != "users"}  # read-only: a client may send back what it got
    try:
        return role_from_dict(data, base)
    except RoleError as e:
        raise Invalid(e.field, str(e).split(": ", 1)[1]) from None


async def create_role(pool: asyncpg.Pool, who: Who, data: dict[str, Any]) -> dict[str, Any]:
    role = _validated(data)
    async with transaction(pool) as c:
        if not await repo.insert(c, role):
            raise Conflict(f"a role named {role.name!r} exists already")
        await log(c, who, "role.create", f"role:{role.name}", new=role.as_dict())
    return view(role, 0)


async def update_role(
    pool: asyncpg.Pool, who: Who, name: str, data: dict[str, Any], *, version: str | None = None
) -> dict[str, Any]:
    """Change a role; with `version` (what the editor loaded) a role changed meanwhile is a Conflict."""
    async with transaction(pool) as c:
        old = await repo.get(c, name, for_update=True)
        if old is None:
            raise NotFound("role")
        if version is not None and version != version_of(old.as_dict()):
            current = view(old, await repo.user_count(c, name))
            raise Conflict("someone changed this role since you loaded it; here it is now", current=current)
        new = _validated(data, old)
        admins = await repo.administrators(c)
        await repo.update(c, new)
        await keep_an_administrator(c, admins)
        await log(c, who, "role.update", f"role:{name}", old=old.as_dict(), new=new.as_dict())
        users = await repo.user_count(c, name)
    return view(new, users)


async def delete_role(pool: asyncpg.Pool, who: Who, name: str) -> None:
    async with transaction(pool) as c:
        old = await repo.get(c, name, for_update=True)
        if old is None:
            raise NotFound("role")
        if old.builtin:
            raise Conflict(f"{name} is a built-in role: change its rights instead of deleting it")
        users = await repo.user_count(c, name)
        if users:
            raise Conflict(f"{users} user(s) have the role {name}: give them another role first", users=users)
        try:
            await repo.delete(c, name)
        except asyncpg.ForeignKeyViolationError:  # a user got the role meanwhile
            raise Conflict(f"users have the role {name}: give them another role first") from None
        await log(c, who, "role.delete", f"role:{name}", old=old.as_dict())


async def keep_an_administrator(conn: asyncpg.Connection, before: int) -> None:
    """Refuse a change after which no enabled user could manage users and roles (nobody could undo it)."""
    if before and await repo.administrators(conn) == 0:
        raise Conflict(
            "after this change no enabled user would hold both the users and roles rights; nobody could undo it"
        )
