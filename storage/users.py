"""API users and their bearer tokens.

Tokens are random, shown once, and stored only as SHA-256 hashes: a database leak gives no usable
token. Scopes are validated here so a bad `--listen-scope` never reaches the table.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from controller.api.scopes import ROLES, Principal, ScopeError, parse_scope

TOKEN_PREFIX = "crk_"
_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


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
    listen_scope: str
    download_scope: str
    disabled: bool
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "agent_ext": self.agent_ext,
            "listen_scope": self.listen_scope,
            "download_scope": self.download_scope,
            "disabled": self.disabled,
            "active_tokens": self.tokens,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check(name: str, role: str, agent_ext: str, listen_scope: str, download_scope: str) -> tuple[str, str]:
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise UserError("name", "a non-empty name without spaces (at most 100 characters)")
    if role not in ROLES:
        raise UserError("role", f"one of {', '.join(ROLES)}, got {role!r}")
    if role == "agent" and not agent_ext:
        raise UserError("agent_ext", "an agent needs the extension they answer calls on (--agent-ext)")
    scopes = []
    for field, value in (("listen_scope", listen_scope), ("download_scope", download_scope)):
        try:
            scopes.append(str(parse_scope(value)))
        except ScopeError as e:
            raise UserError(field, str(e)) from None
    return scopes[0], scopes[1]


async def add_user(
    conn: _Conn,
    name: str,
    role: str,
    *,
    agent_ext: str = "",
    listen_scope: str = "all",
    download_scope: str = "none",
) -> tuple[User, str]:
    """Create a user and their first token; returns (user, token). The token is not stored."""
    listen, download = _check(name, role, agent_ext, listen_scope, download_scope)
    token = new_token()
    async with _transaction(conn) as c:
        try:
            row = await c.fetchrow(
                "INSERT INTO users (name, role, agent_ext, listen_scope, download_scope)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING *",
                name,
                role,
                agent_ext,
                listen,
                download,
            )
        except asyncpg.UniqueViolationError:
            raise UserError("name", f"a user named {name!r} already exists") from None
        await c.execute("INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)", row["id"], hash_token(token))
    return _user(row, 1), token


async def issue_token(conn: _Conn, name: str) -> str:
    """A further token for an existing, enabled user (e.g. to rotate)."""
    token = new_token()
    uid = await conn.fetchval("SELECT id FROM users WHERE name = $1 AND NOT disabled", name)
    if uid is None:
        raise UserError("name", f"no enabled user named {name!r}")
    await conn.execute("INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)", uid, hash_token(token))
    return token


async def revoke_user(conn: _Conn, name: str) -> int:
    """Disable the user and revoke every token; returns how many tokens were revoked."""
    async with _transaction(conn) as c:
        uid = await c.fetchval("UPDATE users SET disabled = true WHERE name = $1 RETURNING id", name)
        if uid is None:
            raise UserError("name", f"no user named {name!r}")
        status = await c.execute("UPDATE api_tokens SET revoked = true WHERE user_id = $1 AND NOT revoked", uid)
    return int(status.split()[-1])


async def list_users(conn: _Conn) -> list[User]:
    rows = await conn.fetch(
        "SELECT u.*, (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND NOT t.revoked) AS tokens"
        " FROM users u ORDER BY u.name"
    )
    return [_user(r, r["tokens"]) for r in rows]


async def authenticate(conn: _Conn, token: str) -> Principal | None:
    """The principal for a bearer token, or None (unknown, revoked, or user disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = await conn.fetchrow(
        "SELECT t.id AS token_id, t.last_used_at < now() - interval '60 seconds' OR t.last_used_at IS NULL AS stale,"
        " u.id, u.name, u.role, u.agent_ext, u.listen_scope, u.download_scope"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = $1 AND NOT t.revoked AND NOT u.disabled",
        hash_token(token),
    )
    if row is None:
        return None
    if row["stale"]:  # at most one write a minute per token
        await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["token_id"])
    return Principal.build(
        row["id"], row["name"], row["role"], row["agent_ext"], row["listen_scope"], row["download_scope"]
    )


def _user(r: asyncpg.Record, tokens: int) -> User:
    return User(
        r["id"], r["name"], r["role"], r["agent_ext"], r["listen_scope"], r["download_scope"], r["disabled"], tokens
    )


class _transaction:
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
