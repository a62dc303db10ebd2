"""Ring groups and their members. Membership changes a member's `ring_group` scope at once."""

from __future__ import annotations

from typing import Any

import asyncpg

from controller.access.audit import Who, log
from controller.access.errors import Conflict, Invalid, NotFound
from controller.permissions import RING_GROUP_ID
from storage import ring_groups as repo
from storage.ring_groups import RingGroup
from storage.users import get_user, transaction

KEYS = ("id", "name", "members")


def _name(data: dict[str, Any], default: str = "") -> str:
    name = data.get("name", default)
    if not isinstance(name, str) or len(name) > 200:
        raise Invalid("name", "a string of at most 200 characters")
    return name


async def _members(conn: asyncpg.Connection, raw: Any) -> list[int]:
    if not isinstance(raw, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and 0 < m < 2**63 for m in raw
    ):
        raise Invalid("members", "a list of user ids")
    ids = sorted(set(raw))
    found = {r["id"] for r in await conn.fetch("SELECT id FROM users WHERE id = ANY($1::bigint[])", ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid("members", f"no user with id {missing[0]}")
    return ids


def _known(data: dict[str, Any]) -> None:
    for k in sorted(data):
        if k not in KEYS:
            raise Invalid(k, f"unknown field (expected {', '.join(KEYS)})")


async def list_groups(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [g.as_dict() for g in await repo.list_groups(pool)]


async def _group(conn: asyncpg.Connection | asyncpg.Pool, group_id: str) -> RingGroup:
    g = await repo.get(conn, group_id)
    if g is None:
        raise NotFound("ring group")
    return g


async def get_group(pool: asyncpg.Pool, group_id: str) -> dict[str, Any]:
    return (await _group(pool, group_id)).as_dict()


async def create_group(pool: asyncpg.Pool, who: Who, data: dict[str, Any]) -> dict[str, Any]:
    _known(data)
    gid = data.get("id")
    if not isinstance(gid, str) or not RING_GROUP_ID.match(gid):
        raise Invalid("id", "the ring group id the dialplan sets: letters, digits, _ . + @ - (at most 100)")
    name = _name(data)
    async with transaction(pool) as c:
        members = await _members(c, data.get("members", []))
        if not await repo.insert(c, gid, name):
            raise Conflict(f"a ring group {gid!r} exists already")
        await repo.set_members(c, gid, members)
        new = await _group(c, gid)
        await log(c, who, "ring_group.create", f"ring_group:{gid}", new=new.as_dict())
    return new.as_dict()


async def update_group(pool: asyncpg.Pool, who: Who, group_id: str, data: dict[str, Any]) -> dict[str, Any]:
    _known(data)
    async with transaction(pool) as c:
        await c.execute("SELECT 1 FROM ring_groups WHERE id = $1 FOR UPDATE", group_id)
        old = await _group(c, group_id)
        if "id" in data and data["id"] != group_id:
            raise Invalid("id", "a ring group cannot be renamed (its id is what the dialplan sets)")
        await repo.rename(c, group_id, _name(data, old.name))
        if "members" in data:
            await repo.set_members(c, group_id, await _members(c, data["members"]))
        new = await _group(c, group_id)
        await log(c, who, "ring_group.update", f"ring_group:{group_id}", old=old.as_dict(), new=new.as_dict())
    return new.as_dict()


async def delete_group(pool: asyncpg.Pool, who: Who, group_id: str) -> None:
    async with transaction(pool) as c:
        old = await _group(c, group_id)
        if not await repo.delete(c, group_id):
            raise NotFound("ring group")
        await log(c, who, "ring_group.delete", f"ring_group:{group_id}", old=old.as_dict())


async def add_member(pool: asyncpg.Pool, who: Who, group_id: str, user_id: int) -> dict[str, Any]:
    async with transaction(pool) as c:
        await _group(c, group_id)
        user = await get_user(c, user_id)
        if user is None:
            raise NotFound("user")
        if await repo.add_member(c, group_id, user_id):
            await log(c, who, "ring_group.member_add", f"ring_group:{group_id}", new={"user": user.name})
        return (await _group(c, group_id)).as_dict()


async def remove_member(pool: asyncpg.Pool, who: Who, group_id: str, user_id: int) -> dict[str, Any]:
    async with transaction(pool) as c:
        await _group(c, group_id)
        user = await get_user(c, user_id)
        if user is None or not await repo.remove_member(c, group_id, user_id):
            raise NotFound("member")
        await log(c, who, "ring_group.member_remove", f"ring_group:{group_id}", old={"user": user.name})
        return (await _group(c, group_id)).as_dict()
