"""Share links: someone without an account may play one recording until the link expires or is revoked.

The token is random, shown once to its creator, and stored only as a SHA-256 hash. Every use of a
link (page open, listen, download) is written to the audit log with the link, its creator and the
remote address. How long a link may live is an administrator's setting (`app_settings`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from storage import audit
from storage.policy_admin import Actor, Conflict, version_of

TOKEN_PREFIX = "crs_"
DEFAULT_HOURS_KEY = "share_default_hours"
MAX_HOURS_KEY = "share_max_hours"
DEFAULT_HOURS, MAX_HOURS = 24, 168
HOURS_LIMIT = 24 * 366
_Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


class ShareError(ValueError):
    """A share cannot be created or limits changed as asked; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ShareGone(Exception):
    """The link existed but has expired or was revoked."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Share:
    id: int
    recording_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    allow_download: bool
    revoked_at: datetime | None
    revoked_by: str
    opens: int
    last_opened_at: datetime | None
    now: datetime

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= self.now else "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recording_id": self.recording_id,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "allow_download": self.allow_download,
            "status": self.status,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "opens": self.opens,
            "last_opened_at": self.last_opened_at.isoformat() if self.last_opened_at else None,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_SELECT = "SELECT s.*, now() AS now FROM recording_shares s"


def _share(r: asyncpg.Record) -> Share:
    return Share(
        r["id"],
        str(r["recording_id"]),
        r["created_by"],
        r["created_at"],
        r["expires_at"],
        r["allow_download"],
        r["revoked_at"],
        r["revoked_by"],
        r["opens"],
        r["last_opened_at"],
        r["now"],
    )


# --- limits (admin setting) ----------------------------------------------------------------------


async def get_limits(conn: _Conn) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT key, value FROM app_settings WHERE key = ANY($1::text[])", [DEFAULT_HOURS_KEY, MAX_HOURS_KEY]
    )
    found = {r["key"]: r["value"] for r in rows}
    limits = {
        "default_hours": int(found.get(DEFAULT_HOURS_KEY, DEFAULT_HOURS)),
        "max_hours": int(found.get(MAX_HOURS_KEY, MAX_HOURS)),
    }
    return {**limits, "version": version_of(limits)}


def _hours(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= HOURS_LIMIT:
        raise ShareError(field, f"a whole number of hours from 1 to {HOURS_LIMIT}, got {value!r}")
    return value


async def put_limits(
    pool: asyncpg.Pool, changes: dict[str, Any], *, version: str | None, actor: Actor
) -> dict[str, Any]:
    for key in changes:
        if key not in ("default_hours", "max_hours"):
            raise ShareError(key, "unknown setting (known: default_hours, max_hours)")
    async with pool.acquire() as c, c.transaction():
        await c.execute("LOCK TABLE recording_shares IN SHARE ROW EXCLUSIVE MODE")  # serializes limit edits
        before = await get_limits(c)
        if version is not None and version != before["version"]:
            raise Conflict(before)
        new = {k: _hours(k, changes.get(k, before[k])) for k in ("default_hours", "max_hours")}
        if new["default_hours"] > new["max_hours"]:
            raise ShareError("default_hours", f"cannot exceed max_hours ({new['max_hours']})")
        for key, db_key in (("default_hours", DEFAULT_HOURS_KEY), ("max_hours", MAX_HOURS_KEY)):
            await c.execute(
                "INSERT INTO app_settings (key, value) VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                db_key,
                new[key],
            )
        after = await get_limits(c)
        await audit.record(
            c,
            actor=actor.label,
            action="sharing.update",
            target="sharing",
            remote=actor.remote,
            detail={"old": {k: before[k] for k in new}, "new": new},
        )
    return after


# --- links ----------------------------------------------------------------------------------------


async def create(
    pool: asyncpg.Pool,
    recording_id: uuid.UUID,
    *,
    hours: int | None,
    allow_download: bool,
    actor: Actor,
) -> tuple[Share, str]:
    """A new link; returns (share, token). The token is not stored and cannot be shown again."""
    limits = await get_limits(pool)
    hours = limits["default_hours"] if hours is None else _hours("expires_in_hours", hours)
    if hours > limits["max_hours"]:
        raise ShareError("expires_in_hours", f"at most {limits['max_hours']} hours (the administrator's limit)")
    async with pool.acquire() as c, c.transaction():
        return await issue(c, recording_id, lifetime=timedelta(hours=hours), allow_download=allow_download, actor=actor)


async def issue(
    conn: asyncpg.Connection,
    recording_id: uuid.UUID,
    *,
    lifetime: timedelta,
    allow_download: bool,
    actor: Actor,
    detail: dict[str, Any] | None = None,
) -> tuple[Share, str]:
    """Insert a link and its `share.create` audit entry inside the caller's transaction; returns
    (share, token). No limit check: `create` applies the administrator's limits to users' links,
    other callers (webhook download links) bound their own lifetime."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO recording_shares (recording_id, token_hash, created_by, expires_at, allow_download)"
        " VALUES ($1, $2, $3, now() + $4::interval, $5) RETURNING *, now() AS now",
        recording_id,
        hash_token(token),
        actor.name,
        lifetime,
        allow_download,
    )
    share = _share(row)
    await audit.record(
        conn,
        actor=actor.label,
        action="share.create",
        target=f"recording:{recording_id}",
        remote=actor.remote,
        detail={
            "share": share.id,
            "expires_at": share.expires_at.isoformat(),
            "allow_download": allow_download,
            **(detail or {}),
        },
    )
    return share, token


async def list_for(conn: _Conn, recording_id: uuid.UUID, *, created_by: str | None = None) -> list[Share]:
    if created_by is None:
        rows = await conn.fetch(_SELECT + " WHERE recording_id = $1 ORDER BY created_at DESC, id DESC", recording_id)
    else:
        rows = await conn.fetch(
            _SELECT + " WHERE recording_id = $1 AND created_by = $2 ORDER BY created_at DESC, id DESC",
            recording_id,
            created_by,
        )
    return [_share(r) for r in rows]


async def get(conn: _Conn, recording_id: uuid.UUID, share_id: int) -> Share | None:
    r = await conn.fetchrow(_SELECT + " WHERE recording_id = $1 AND id = $2", recording_id, share_id)
    return _share(r) if r else None


async def revoke(pool: asyncpg.Pool, share: Share, *, actor: Actor, detail: dict[str, Any] | None = None) -> Share:
    """Revoke a link (idempotent: revoking twice keeps the first revocation)."""
    async with pool.acquire() as c, c.transaction():
        row = await c.fetchrow(
            "UPDATE recording_shares SET revoked_at = coalesce(revoked_at, now()),"
            " revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END"
            " WHERE id = $1 RETURNING *, now() AS now",
            share.id,
            actor.name,
        )
        await audit.record(
            c,
            actor=actor.label,
            action="share.revoke",
            target=f"recording:{share.recording_id}",
            remote=actor.remote,
            detail={"share": share.id, "created_by": share.created_by, **(detail or {})},
        )
    return _share(row)


async def revoke_created_by(
    conn: asyncpg.Connection, created_by: str, *, actor: str, revoked_by: str, remote: str = "", reason: str = ""
) -> list[int]:
    """Revoke every active link `created_by` made (e.g. a webhook's links when its receiver changes), one
    `share.revoke` audit entry each, inside the caller's transaction; returns the share ids."""
    rows = await conn.fetch(
        "UPDATE recording_shares SET revoked_at = now(), revoked_by = $2"
        " WHERE created_by = $1 AND revoked_at IS NULL AND expires_at > now() RETURNING id, recording_id",
        created_by,
        revoked_by,
    )
    for r in rows:
        await audit.record(
            conn,
            actor=actor,
            action="share.revoke",
            target=f"recording:{r['recording_id']}",
            remote=remote,
            detail={"share": r["id"], "created_by": created_by, "reason": reason},
        )
    return [int(r["id"]) for r in rows]


async def use(conn: _Conn, token: str, *, action: str | None, remote: str = "", user_agent: str = "") -> Share | None:
    """Look a token up for `action` (open / listen / download; None = just look) and audit the use.

    None: no such link (or not a token at all). Raises ShareGone when it expired or was revoked —
    that attempt is audited too."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    if action is None:
        row = await conn.fetchrow(_SELECT + " WHERE token_hash = $1", hash_token(token))
        if row is None:
            return None
        share = _share(row)
        if share.status != "active":
            raise ShareGone(share.status)
        return share
    row = await conn.fetchrow(
        "UPDATE recording_shares SET"
        " opens = opens + CASE WHEN $2 AND revoked_at IS NULL AND expires_at > now() THEN 1 ELSE 0 END,"
        " last_opened_at = CASE WHEN revoked_at IS NULL AND expires_at > now() THEN now() ELSE last_opened_at END"
        " WHERE token_hash = $1 RETURNING *, now() AS now",
        hash_token(token),
        action == "open",
    )
    if row is None:
        return None
    share = _share(row)
    await audit.record(
        conn,
        actor=f"share:{share.id}",
        action=f"share.{action}" if share.status == "active" else f"share.{action}_refused",
        target=f"recording:{share.recording_id}",
        remote=remote,
        detail={"created_by": share.created_by, "status": share.status, "user_agent": user_agent[:200]},
    )
    if share.status != "active":
        raise ShareGone(share.status)
    return share
