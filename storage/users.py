"""API users, their bearer tokens and how a token becomes a Principal.

Tokens are random, shown once, and stored only as SHA-256 hashes: a database leak gives no usable
token. A user's rights come from their role, read with the token on every request (one query), so
editing a role or a ring group changes what its users may do from their next request on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from controller.permissions import Principal, ScopeError, parse_scope
from storage import ring_groups as rg
from storage import roles
from storage.auth_notify import notify_auth_changed
from storage.roles import role_from_row

TOKEN_PREFIX = "crk_"
_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"
AGENT_EXT = re.compile(r"^[A-Za-z0-9_.+*#@\-]{0,64}$")


class UserError(ValueError):
    """A user cannot be created or changed as asked; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    agent_ext: str
    disabled: bool
    tokens: int = 0
    ring_groups: tuple[str, ...] = ()
    created_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "agent_ext": self.agent_ext,
            "ring_groups": list(self.ring_groups),
            "disabled": self.disabled,
            "active_tokens": self.tokens,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class Token:
    id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 100 or any(c.isspace() for c in name):
        raise UserError("name", "a non-empty name without spaces (at most 100 characters)")
    return name


def check_agent_ext(ext: Any) -> str:
    if not isinstance(ext, str) or not AGENT_EXT.match(ext):
        raise UserError("agent_ext", "an extension: letters, digits and _ . + * # @ - (at most 64), or empty")
    return ext


async def check_role(conn: _Conn, role_name: Any, agent_ext: str) -> roles.Role:
    """The role, which must exist; one about the user's own calls needs their extension."""
    if not isinstance(role_name, str):
        raise UserError("role", "a role name")
    role = await roles.get(conn, role_name)
    if role is None:
        names = ", ".join(r.name for r, _ in await roles.list_roles(conn))
        raise UserError("role", f"no role named {role_name!r} (roles: {names})")
    if role.uses_own_calls and not agent_ext:
        raise UserError(
            "agent_ext", f"role {role.name} grants rights on the user's own calls: give the extension they answer on"
        )
    return role


async def check_ring_groups(conn: _Conn, groups: Any) -> list[str]:
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise UserError("ring_groups", "a list of ring group ids")
    unknown = await rg.missing(conn, groups)
    if unknown:
        raise UserError("ring_groups", f"no ring group {unknown[0]!r} (create it first)")
    return sorted(set(groups))


async def add_user(
    conn: _Conn,
    name: str,
    role: str,
    *,
    agent_ext: str = "",
    listen_scope: str | None = None,
    download_scope: str | None = None,
    ring_groups: list[str] | None = None,
) -> tuple[User, str]:
    """Create a user and their first token; returns (user, token). The token is not stored.

    `listen_scope` / `download_scope` (the CLI's options) give the user a role like `role` with
    those scopes: an existing role that grants exactly that, or a new one.
    """
    check_name(name)
    check_agent_ext(agent_ext)
    token = new_token()
    async with transaction(conn) as c:
        base = await check_role(c, role, agent_ext)
        for fname, value in (("listen_scope", listen_scope), ("download_scope", download_scope)):
            try:
                parse_scope(value or "")
            except ScopeError as e:
                raise UserError(fname, str(e)) from None
        chosen = await roles.derived(c, base, listen_scope, download_scope)
        groups = await check_ring_groups(c, list(ring_groups or []))
        try:
            row = await c.fetchrow(
                "INSERT INTO users (name, role, agent_ext) VALUES ($1, $2, $3) RETURNING *",
                name,
                chosen.name,
                agent_ext,
            )
        except asyncpg.UniqueViolationError:
            raise UserError("name", f"a user named {name!r} already exists") from None
        await rg.set_groups_of(c, row["id"], groups)
        await c.execute("INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)", row["id"], hash_token(token))
    return _user(row, 1, tuple(groups)), token


_SELECT = (
    "SELECT u.*, (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND NOT t.revoked) AS tokens,"
    " ARRAY(SELECT m.ring_group_id FROM ring_group_members m WHERE m.user_id = u.id ORDER BY 1) AS groups"
    " FROM users u"
)


async def get_user(conn: _Conn, user_id: int, *, for_update: bool = False) -> User | None:
    if for_update:
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    row = await conn.fetchrow(_SELECT + " WHERE u.id = $1", user_id)
    return _user(row, row["tokens"], tuple(row["groups"])) if row else None


async def id_of(conn: _Conn, name: str) -> int | None:
    return await conn.fetchval("SELECT id FROM users WHERE name = $1", name)  # type: ignore[no-any-return]


async def ids_of(conn: _Conn, names: list[str]) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, id FROM users WHERE name = ANY($1::text[])", names)
    return {r["name"]: r["id"] for r in rows}


async def list_users(conn: _Conn) -> list[User]:
    rows = await conn.fetch(_SELECT + " ORDER BY u.name")
    return [_user(r, r["tokens"], tuple(r["groups"])) for r in rows]


async def update_user(conn: _Conn, user_id: int, *, role: str, agent_ext: str, disabled: bool) -> None:
    await conn.execute(
        "UPDATE users SET role = $2, agent_ext = $3, disabled = $4 WHERE id = $1", user_id, role, agent_ext, disabled
    )
    await notify_auth_changed(conn)


async def issue_token(conn: _Conn, name: str) -> str:
    """A further token for an existing, enabled user (e.g. to rotate)."""
    uid = await conn.fetchval("SELECT id FROM users WHERE name = $1 AND NOT disabled", name)
    if uid is None:
        raise UserError("name", f"no enabled user named {name!r}")
    return (await add_token(conn, uid))[1]


async def add_token(conn: _Conn, user_id: int) -> tuple[Token, str]:
    token = new_token()
    row = await conn.fetchrow(
        "INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2) RETURNING id, created_at, last_used_at, revoked",
        user_id,
        hash_token(token),
    )
    return _token(row), token


async def list_tokens(conn: _Conn, user_id: int) -> list[Token]:
    rows = await conn.fetch(
        "SELECT id, created_at, last_used_at, revoked FROM api_tokens WHERE user_id = $1 ORDER BY id", user_id
    )
    return [_token(r) for r in rows]


async def revoke_token(conn: _Conn, user_id: int, token_id: int) -> Token | None:
    """Revoke one token of the user; None when the user has no such token."""
    row = await conn.fetchrow(
        "UPDATE api_tokens SET revoked = true WHERE id = $1 AND user_id = $2"
        " RETURNING id, created_at, last_used_at, revoked",
        token_id,
        user_id,
    )
    if row:
        await notify_auth_changed(conn)
    return _token(row) if row else None


async def revoke_user(conn: _Conn, name: str) -> int:
    """Disable the user and revoke every token; returns how many tokens were revoked."""
    async with transaction(conn) as c:
        uid = await c.fetchval("UPDATE users SET disabled = true WHERE name = $1 RETURNING id", name)
        if uid is None:
            raise UserError("name", f"no user named {name!r}")
        status = await c.execute("UPDATE api_tokens SET revoked = true WHERE user_id = $1 AND NOT revoked", uid)
        await notify_auth_changed(c)
    return int(status.split()[-1])


async def authenticate(conn: _Conn, token: str) -> Principal | None:
    """The principal for a bearer token, or None (unknown, revoked, or user disabled).

    The role and ring groups are read in the same query, so the answer is always current. The API
    keeps answers for a few seconds (controller/api/auth_cache.py) and forgets them when a write
    calls `notify_auth_changed`, so an edit or a revocation still applies at once.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = await conn.fetchrow(
        "SELECT t.id AS token_id, t.last_used_at < now() - interval '60 seconds' OR t.last_used_at IS NULL AS stale,"
        " u.id, u.name AS user_name, u.agent_ext,"
        " ARRAY(SELECT m.ring_group_id FROM ring_group_members m WHERE m.user_id = u.id) AS groups,"
        f" {', '.join('r.' + c.strip() for c in roles.COLUMNS.split(','))}"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN roles r ON r.name = u.role"
        " WHERE t.token_hash = $1 AND NOT t.revoked AND NOT u.disabled",
        hash_token(token),
    )
    if row is None:
        return None
    if row["stale"]:  # at most one write a minute per token
        await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["token_id"])
    return Principal.resolve(row["id"], row["user_name"], row["agent_ext"], row["groups"], role_from_row(row))


def _user(r: asyncpg.Record, tokens: int, groups: tuple[str, ...] = ()) -> User:
    return User(r["id"], r["name"], r["role"], r["agent_ext"], r["disabled"], tokens, groups, r["created_at"])


def _token(r: asyncpg.Record) -> Token:
    return Token(r["id"], r["created_at"], r["last_used_at"], r["revoked"])


class transaction:
    """`async with` a transaction on a connection or on one acquired from a pool."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self._acquired: Any = None
        self._tx: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        c = self._conn
        if isinstance(c, asyncpg.Pool):
            self._acquired = c.acquire()
            c = await self._acquired.__aenter__()
        self._tx = c.transaction()
        await self._tx.__aenter__()
        return c

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._tx.__aexit__(*exc)
        finally:
            if self._acquired is not None:
                await self._acquired.__aexit__(*exc)


_transaction = transaction  # older name
