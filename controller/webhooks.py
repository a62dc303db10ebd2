"""Webhook endpoints as an administrator edits them: validation naming the field, audit entries with
old and new values (never the secret), and the dead-letter actions. HTTP lives in api/webhooks.py."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from controller.access.audit import Who, log
from controller.access.errors import Forbidden, Invalid, NotFound
from storage import shares
from storage import webhooks as repo
from storage.outbox import EVENTS
from storage.users import transaction
from storage.webhook_links import actor_for

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
FIELDS = ("account", "url", "events", "description", "enabled", "download_link")
STATES = ("pending", "delivered", "dead")


def _validate(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    for k in sorted(data):
        if k not in FIELDS:
            raise Invalid(k, f"unknown field (expected {', '.join(FIELDS)})")
    if creating:
        for k in ("account", "url", "events"):
            if k not in data:
                raise Invalid(k, "required")
    out: dict[str, Any] = {}
    if "account" in data:
        if not isinstance(data["account"], str) or not ACCOUNT_ID.match(data["account"]):
            raise Invalid("account", "an account id: letters, digits, . _ - (at most 100)")
        out["account"] = data["account"]
    if "url" in data:
        url = data["url"]
        try:
            parts = urlsplit(url) if isinstance(url, str) and url.isprintable() else None
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        if (
            parts is None
            or len(url) > 2000
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c.isspace() for c in url)
        ):
            raise Invalid("url", "an http:// or https:// URL of at most 2000 characters")
        out["url"] = url
    if "events" in data:
        ev = data["events"]
        if not isinstance(ev, list) or not ev or not all(isinstance(e, str) for e in ev):
            raise Invalid("events", f"a non-empty list of {', '.join(EVENTS)}")
        bad = [e for e in ev if e not in EVENTS]
        if bad:
            raise Invalid("events", f"unknown event {bad[0]!r} (expected some of {', '.join(EVENTS)})")
        if len(set(ev)) != len(ev):
            raise Invalid("events", "an event is listed twice")
        out["events"] = [e for e in EVENTS if e in ev]
    if "description" in data:
        if not isinstance(data["description"], str) or len(data["description"]) > 500 or "\x00" in data["description"]:
            raise Invalid("description", "a string of at most 500 characters")
        out["description"] = data["description"]
    for k in ("enabled", "download_link"):
        if k in data:
            if not isinstance(data[k], bool):
                raise Invalid(k, "true or false")
            out[k] = data[k]
    return out


# What decides where a download link goes: changing any of them on an endpoint that sends links hands
# every stored recording of the account to a receiver, so it takes someone who may download them all.
_LINK_FIELDS = ("account", "url", "download_link")


def _check_link_grant(old: dict[str, Any] | None, fields: dict[str, Any], may_download_all: bool) -> None:
    links = fields.get("download_link", bool(old and old["download_link"]))
    changed = old is None or any(k in fields and fields[k] != old[k] for k in _LINK_FIELDS)
    if links and changed and not may_download_all:
        raise Forbidden(
            "download_link: an endpoint that receives download links gets every stored recording of its account;"
            " only a role whose download scope is `all` may turn it on or point it elsewhere"
        )


async def list_endpoints(pool: asyncpg.Pool, account: str | None) -> list[dict[str, Any]]:
    return [repo.endpoint_view(r) for r in await repo.list_endpoints(pool, account)]


async def get_endpoint(pool: asyncpg.Pool, endpoint_id: int) -> dict[str, Any]:
    row = await repo.get(pool, endpoint_id)
    if row is None:
        raise NotFound("webhook")
    return repo.endpoint_view(row)


async def _cut_links(conn: asyncpg.Connection, who: Who, old: dict[str, Any], new: dict[str, Any] | None) -> None:
    """An endpoint that stops receiving links (turned off, pointed elsewhere, deleted): its links still
    active are revoked, so a receiver that is no longer trusted keeps none."""
    if not old["download_link"]:
        return
    if new is not None and new["download_link"] and all(new[k] == old[k] for k in _LINK_FIELDS):
        return
    await shares.revoke_created_by(
        conn,
        actor_for(old["id"]).name,
        actor=who.actor,
        revoked_by=who.actor.removeprefix("user:"),
        remote=who.remote,
        reason="webhook deleted" if new is None else "webhook changed",
    )


async def create_endpoint(
    pool: asyncpg.Pool, who: Who, data: dict[str, Any], *, may_download_all: bool = False
) -> dict[str, Any]:
    """The new endpoint with its `secret` — the only time the secret is shown. `may_download_all`: the
    caller's download scope is `all` (needed for `download_link`)."""
    fields = _validate(data, creating=True)
    _check_link_grant(None, fields, may_download_all)
    async with transaction(pool) as conn:
        row, secret = await repo.create(conn, fields)
        view = repo.endpoint_view(row)
        await log(conn, who, "webhook.create", f"webhook:{row['id']}", new=view)
    return {**view, "secret": secret}


async def update_endpoint(
    pool: asyncpg.Pool, who: Who, endpoint_id: int, data: dict[str, Any], *, may_download_all: bool = False
) -> dict[str, Any]:
    fields = _validate(data, creating=False)
    async with transaction(pool) as conn:
        old = await repo.get(conn, endpoint_id, lock=True)
        if old is None:
            raise NotFound("webhook")
        _check_link_grant(repo.endpoint_view(old), fields, may_download_all)
        if not fields:
            return repo.endpoint_view(old)
        view = repo.endpoint_view(await repo.update(conn, endpoint_id, fields))
        await log(conn, who, "webhook.update", f"webhook:{endpoint_id}", old=repo.endpoint_view(old), new=view)
        await _cut_links(conn, who, repo.endpoint_view(old), view)
    return view


async def rotate_secret(pool: asyncpg.Pool, who: Who, endpoint_id: int) -> dict[str, Any]:
    async with transaction(pool) as conn:
        if await repo.get(conn, endpoint_id, lock=True) is None:
            raise NotFound("webhook")
        secret = await repo.rotate_secret(conn, endpoint_id)
        await log(conn, who, "webhook.secret", f"webhook:{endpoint_id}")
    return {"id": endpoint_id, "secret": secret}


async def delete_endpoint(pool: asyncpg.Pool, who: Who, endpoint_id: int) -> None:
    async with transaction(pool) as conn:
        old = await repo.get(conn, endpoint_id, lock=True)
        if old is None:
            raise NotFound("webhook")
        await repo.delete(conn, endpoint_id)
        await log(conn, who, "webhook.delete", f"webhook:{endpoint_id}", old=repo.endpoint_view(old))
        await _cut_links(conn, who, repo.endpoint_view(old), None)


async def deliveries(
    pool: asyncpg.Pool, endpoint_id: int, state: str | None, before: int | None, limit: int
) -> dict[str, Any]:
    if state is not None and state not in STATES:
        raise Invalid("state", f"one of {', '.join(STATES)}")
    if await repo.get(pool, endpoint_id) is None:
        raise NotFound("webhook")
    rows = await repo.deliveries(pool, endpoint_id, state, before, limit)
    return {
        "deliveries": [repo.delivery_view(r) for r in rows],
        "next_before": rows[-1]["id"] if len(rows) == limit else None,
    }


async def redeliver(pool: asyncpg.Pool, who: Who, endpoint_id: int, delivery_id: int) -> dict[str, Any]:
    async with transaction(pool) as conn:
        row = await repo.redeliver(conn, endpoint_id, delivery_id)
        if row is None:
            raise NotFound("delivery")
        await log(
            conn,
            who,
            "webhook.redeliver",
            f"webhook:{endpoint_id}",
            delivery=delivery_id,
            event_id=str(row["event_id"]),
        )
    return repo.delivery_view(row)
