"""Roles: named permission sets (rows of `roles`), read fresh on every request so an edit applies at once."""

from __future__ import annotations

import re
from typing import Any, TypeAlias

import asyncpg

from controller.permissions import RIGHTS, Role, parse_scope
from storage.auth_notify import notify_auth_changed

_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"
COLUMNS = "name, description, builtin, view_scope, listen_scope, download_scope, pause_scope, rights"


def role_from_row(r: Any, prefix: str = "") -> Role:
    return Role(
        name=r[f"{prefix}name"],
        description=r[f"{prefix}description"],
        view=parse_scope(r[f"{prefix}view_scope"]),
        listen=parse_scope(r[f"{prefix}listen_scope"]),
        download=parse_scope(r[f"{prefix}download_scope"]),
        pause=parse_scope(r[f"{prefix}pause_scope"]),
        rights=frozenset(r[f"{prefix}rights"]),
        builtin=r[f"{prefix}builtin"],
    )


def _values(role: Role) -> tuple[Any, ...]:
    return (
        role.name,
        role.description,
        str(role.view),
        str(role.listen),
        str(role.download),
        str(role.pause),
        [r for r in RIGHTS if r in role.rights],
    )


async def get(conn: _Conn, name: str, *, for_update: bool = False) -> Role | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM roles WHERE name = $1" + (" FOR UPDATE" if for_update else ""), name
    )
    return role_from_row(row) if row else None


async def list_roles(conn: _Conn) -> list[tuple[Role, int]]:
    """Every role with how many users have it, built-in roles first."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, (SELECT count(*) FROM users u WHERE u.role = r.name) AS users"
        " FROM roles r ORDER BY NOT builtin, name"
    )
    return [(role_from_row(r), r["users"]) for r in rows]


async def user_count(conn: _Conn, name: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users WHERE role = $1", name))


async def insert(conn: _Conn, role: Role) -> bool:
    """False when a role of that name exists already."""
    status = await conn.execute(
        "INSERT INTO roles (name, description, view_scope, listen_scope, download_scope, pause_scope, rights)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
        *_values(role),
    )
    return status.endswith(" 1")


async def update(conn: _Conn, role: Role) -> None:
    await conn.execute(
        "UPDATE roles SET description = $2, view_scope = $3, listen_scope = $4, download_scope = $5,"
        " pause_scope = $6, rights = $7, updated_at = now() WHERE name = $1",
        *_values(role),
    )
    await notify_auth_changed(conn)


async def delete(conn: _Conn, name: str) -> None:
    await conn.execute("DELETE FROM roles WHERE name = $1", name)
    await notify_auth_changed(conn)


async def administrators(conn: _Conn) -> int:
    """Enabled users whose role may manage both users and roles (so someone can always fix access)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM users u JOIN roles r ON r.name = u.role"
            " WHERE NOT u.disabled AND r.rights @> ARRAY['users', 'roles']::text[]"
        )
    )


def _slug(scope: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", scope).strip("_") or "none"


async def derived(conn: asyncpg.Connection, base: Role, listen: str | None, download: str | None) -> Role:
    """`base` with other listen/download scopes: an existing role granting exactly that, else a new one.

    Keeps `callrec users add --role R --listen-scope S` meaningful now that permissions live on roles.
    """
    want = Role(
        name=base.name,
        description=base.description,
        view=base.view,
        listen=parse_scope(listen) if listen is not None else base.listen,
        download=parse_scope(download) if download is not None else base.download,
        pause=base.pause,
        rights=base.rights,
    )
    if want.same_rights(base):
        return base
    candidates = [r for r, _ in await list_roles(conn) if r.same_rights(want)]
    if candidates:
        return candidates[0]
    stem = f"{base.name}-listen-{_slug(str(want.listen))}-download-{_slug(str(want.download))}"[:90]
    name, n = stem, 1
    while True:
        role = Role(
            name=name,
            description=f"Like {base.name}, with listen={want.listen}, download={want.download}",
            view=want.view,
            listen=want.listen,
            download=want.download,
            pause=want.pause,
            rights=want.rights,
        )
        if await insert(conn, role):
            return role
        n += 1
        name = f"{stem}-{n}"
