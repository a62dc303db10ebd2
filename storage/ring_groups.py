"""Ring groups and their members (users), the data the `ring_group` scope stands on.

A ring group's id is the value the dialplan hook sets as `ring_group` for calls that come through
it, so it is what `recordings.ring_groups` holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg

from controller.policy import PolicyError
from controller.settings_file import RingGroupSpec
from storage.auth_notify import notify_auth_changed

_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    agent_ext: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "agent_ext": self.agent_ext}


@dataclass(frozen=True)
class RingGroup:
    id: str
    name: str = ""
    members: tuple[Member, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "members": [m.as_dict() for m in self.members]}


_SELECT = (
    "SELECT g.id, g.name, COALESCE(json_agg(json_build_object('id', u.id, 'name', u.name, 'agent_ext', u.agent_ext)"
    " ORDER BY u.name) FILTER (WHERE u.id IS NOT NULL), '[]') AS members"
    " FROM ring_groups g LEFT JOIN ring_group_members m ON m.ring_group_id = g.id"
    " LEFT JOIN users u ON u.id = m.user_id"
)


def _group(r: Any) -> RingGroup:
    members = r["members"]
    if isinstance(members, str):  # a connection without the json codec
        members = json.loads(members)
    return RingGroup(r["id"], r["name"], tuple(Member(m["id"], m["name"], m["agent_ext"]) for m in members))


async def list_groups(conn: _Conn) -> list[RingGroup]:
    return [_group(r) for r in await conn.fetch(_SELECT + " GROUP BY g.id ORDER BY g.id")]


async def get(conn: _Conn, group_id: str) -> RingGroup | None:
    r = await conn.fetchrow(_SELECT + " WHERE g.id = $1 GROUP BY g.id", group_id)
    return _group(r) if r else None


async def insert(conn: _Conn, group_id: str, name: str) -> bool:
    status = await conn.execute(
        "INSERT INTO ring_groups (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", group_id, name
    )
    return status.endswith(" 1")


async def upsert(conn: _Conn, group_id: str, name: str) -> None:
    await conn.execute(
        "INSERT INTO ring_groups (id, name) VALUES ($1, $2)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()",
        group_id,
        name,
    )


async def rename(conn: _Conn, group_id: str, name: str) -> None:
    await conn.execute("UPDATE ring_groups SET name = $2, updated_at = now() WHERE id = $1", group_id, name)


async def delete(conn: _Conn, group_id: str) -> bool:
    deleted = (await conn.execute("DELETE FROM ring_groups WHERE id = $1", group_id)).endswith(" 1")
    if deleted:
        await notify_auth_changed(conn)
    return deleted


async def set_members(conn: _Conn, group_id: str, user_ids: list[int]) -> None:
    await conn.execute(
        "DELETE FROM ring_group_members WHERE ring_group_id = $1 AND NOT (user_id = ANY($2::bigint[]))",
        group_id,
        user_ids,
    )
    await conn.execute(
        "INSERT INTO ring_group_members (ring_group_id, user_id) SELECT $1, unnest($2::bigint[])"
        " ON CONFLICT DO NOTHING",
        group_id,
        user_ids,
    )
    await notify_auth_changed(conn)


async def add_member(conn: _Conn, group_id: str, user_id: int) -> bool:
    status = await conn.execute(
        "INSERT INTO ring_group_members (ring_group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        group_id,
        user_id,
    )
    if status.endswith(" 1"):
        await notify_auth_changed(conn)
    return status.endswith(" 1")


async def remove_member(conn: _Conn, group_id: str, user_id: int) -> bool:
    status = await conn.execute(
        "DELETE FROM ring_group_members WHERE ring_group_id = $1 AND user_id = $2", group_id, user_id
    )
    if status.endswith(" 1"):
        await notify_auth_changed(conn)
    return status.endswith(" 1")


async def groups_of(conn: _Conn, user_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT ring_group_id FROM ring_group_members WHERE user_id = $1 ORDER BY ring_group_id", user_id
    )
    return [r["ring_group_id"] for r in rows]


async def set_groups_of(conn: _Conn, user_id: int, group_ids: list[str]) -> None:
    await conn.execute(
        "DELETE FROM ring_group_members WHERE user_id = $1 AND NOT (ring_group_id = ANY($2::text[]))",
        user_id,
        group_ids,
    )
    await conn.execute(
        "INSERT INTO ring_group_members (ring_group_id, user_id) SELECT unnest($2::text[]), $1 ON CONFLICT DO NOTHING",
        user_id,
        group_ids,
    )
    await notify_auth_changed(conn)


async def missing(conn: _Conn, group_ids: list[str]) -> list[str]:
    """The ids among `group_ids` that are not ring groups."""
    found = {r["id"] for r in await conn.fetch("SELECT id FROM ring_groups WHERE id = ANY($1::text[])", group_ids)}
    return [g for g in group_ids if g not in found]


# --- the settings file (callrec settings import / export) --------------------------------------


async def load_specs(conn: _Conn) -> list[RingGroupSpec]:
    return [RingGroupSpec(g.id, g.name, tuple(m.name for m in g.members)) for g in await list_groups(conn)]


async def save_specs(
    conn: asyncpg.Connection, specs: dict[str, RingGroupSpec]
) -> list[tuple[RingGroup | None, RingGroup]]:
    """Create or update the file's ring groups and replace their members (others are left alone).

    Members are user names; an unknown one is an error naming it. Returns (old, new) per changed group.
    """
    names = sorted({m for g in specs.values() for m in g.members})
    ids = {
        r["name"]: r["id"] for r in await conn.fetch("SELECT name, id FROM users WHERE name = ANY($1::text[])", names)
    }
    changed = []
    for gid, spec in sorted(specs.items()):
        unknown = [m for m in spec.members if m not in ids]
        if unknown:
            raise PolicyError(f"ring_groups.{gid}.members", f"no user named {unknown[0]!r} (add users first)")
        old = await get(conn, gid)
        await upsert(conn, gid, spec.name)
        await set_members(conn, gid, sorted(ids[m] for m in spec.members))
        new = await get(conn, gid)
        assert new is not None
        if old != new:
            changed.append((old, new))
    return changed
