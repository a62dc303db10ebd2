"""Administrators' changes to the recording policy: account settings, number overrides, numbering plans.

Each write is validated, checked against the version the administrator loaded (optimistic
concurrency: two admins editing the same thing — the second save gets a `Conflict` carrying the
current values instead of silently overwriting), written, and audited with who / old / new, all in
one transaction. The version is a hash of the content, so any writer (API, `callrec settings
import`) moves it. Writes to these tables notify `callrec_policy` (migration 006), so running
recorders pick them up for their next decision without a restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from controller.numbering import InvalidPattern, NumberingPlan, dial_string
from controller.policy import (
    SETTING_FIELDS,
    AccountSettings,
    NumberOverride,
    PolicyError,
    override_from_dict,
    settings_from_dict,
)
from storage import audit, repo

PLAN_KEYS = {"internal": "internal", "ring_groups": "ring_group", "private_extensions": "private_extension"}
MAX_PATTERNS = 200
MAX_PATTERN_LEN = 200


class Conflict(Exception):
    """The resource changed since the caller read it; `current` is what it is now."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__("changed since you loaded it")
        self.current = current


@dataclass(frozen=True)
class Actor:
    name: str
    remote: str = ""

    @property
    def label(self) -> str:
        return f"user:{self.name}"


def version_of(content: Any) -> str:
    """A short, stable hash of `content` (the ETag and the `version` field)."""
    raw = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def _check(version: str | None, current: dict[str, Any]) -> None:
    if version is not None and version != current["version"]:
        raise Conflict(current)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in {**old, **new} if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


# --- account settings -------------------------------------------------------------------------


def settings_view(account: str, s: AccountSettings) -> dict[str, Any]:
    """Effective values, the product defaults, and for each field whether the account changed it."""
    values, defaults = s.as_dict(), AccountSettings().as_dict()
    return {
        "account": account,
        "settings": values,
        "defaults": defaults,
        "sources": {f: "account" if values[f] != defaults[f] else "default" for f in SETTING_FIELDS},
        "version": version_of(values),
    }


async def get_settings(conn: asyncpg.Connection | asyncpg.Pool, account: str) -> dict[str, Any] | None:
    s = await repo.get_account_settings(conn, account)
    return settings_view(account, s) if s is not None else None


async def put_settings(
    pool: asyncpg.Pool, account: str, changes: dict[str, Any], *, version: str | None, actor: Actor
) -> dict[str, Any]:
    """Apply any subset of the settings (creating the account with defaults if new)."""
    async with pool.acquire() as c, c.transaction():
        await c.execute("INSERT INTO accounts (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", account)
        await c.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account)
        current = await repo.get_account_settings(c, account) or AccountSettings()
        _check(version, settings_view(account, current))
        updated = settings_from_dict(changes, base=current)
        await repo.put_account_settings(c, account, updated.as_dict())
        old, new = _diff(current.as_dict(), updated.as_dict())
        await audit.record(
            c,
            actor=actor.label,
            action="settings.update",
            target=f"account:{account}",
            remote=actor.remote,
            detail={"old": old, "new": new},
        )
    return settings_view(account, updated)


# --- numbers and their overrides ----------------------------------------------------------------


def number_view(number: str, account: str, ov: NumberOverride, base: AccountSettings | None) -> dict[str, Any]:
    """The override (only the fields it sets) and, per field, the effective value and its source."""
    base = base or AccountSettings()
    effective, sources = {}, {}
    for f in SETTING_FIELDS:
        value = getattr(ov, f)
        effective[f] = value if value is not None else getattr(base, f)
        sources[f] = f"number:{number}" if value is not None else "account"
    return {
        "number": number,
        "account": account,
        "override": ov.as_dict(),
        "effective": effective,
        "sources": sources,
        "version": version_of({"account": account, "override": ov.as_dict()}),
    }


async def get_number(conn: asyncpg.Connection | asyncpg.Pool, number: str) -> dict[str, Any] | None:
    found = await repo.get_number_override(conn, number)
    if found is None:
        return None
    account, ov = found
    return number_view(number, account, ov, await repo.get_account_settings(conn, account))


async def list_numbers(conn: asyncpg.Connection | asyncpg.Pool, account: str) -> list[dict[str, Any]]:
    base = await repo.get_account_settings(conn, account)
    rows = await conn.fetch("SELECT number, override FROM numbers WHERE account_id = $1 ORDER BY number", account)
    return [number_view(r["number"], account, override_from_dict(r["override"]), base) for r in rows]


async def put_number(
    pool: asyncpg.Pool,
    number: str,
    override: dict[str, Any],
    account: str | None,
    *,
    version: str | None,
    actor: Actor,
) -> dict[str, Any]:
    """Replace a number's override (fields absent or null inherit); a new number needs its account."""
    async with pool.acquire() as c, c.transaction():
        await c.execute("SELECT 1 FROM numbers WHERE number = $1 FOR UPDATE", number)
        before = await get_number(c, number)
        if before is not None:
            _check(version, before)
        elif version is not None:
            raise Conflict({"number": number, "version": None})
        await repo.put_number_override(c, number, override, account)
        after = await get_number(c, number)
        assert after is not None
        old, new = _diff(before["override"] if before else {}, after["override"])
        await audit.record(
            c,
            actor=actor.label,
            action="number_override.update" if before else "number.create",
            target=f"number:{number}",
            remote=actor.remote,
            detail={"account": after["account"], "old": old, "new": new},
        )
    return after


async def clear_number(pool: asyncpg.Pool, number: str, *, version: str | None, actor: Actor) -> bool:
    """Clear a number's override (it stays with its account and inherits everything)."""
    async with pool.acquire() as c, c.transaction():
        await c.execute("SELECT 1 FROM numbers WHERE number = $1 FOR UPDATE", number)
        before = await get_number(c, number)
        if before is None:
            return False
        _check(version, before)
        await repo.delete_number_override(c, number)
        await audit.record(
            c,
            actor=actor.label,
            action="number_override.delete",
            target=f"number:{number}",
            remote=actor.remote,
            detail={"account": before["account"], "old": before["override"], "new": {}},
        )
    return True


# --- numbering plan -----------------------------------------------------------------------------


def plan_view(account: str, plan: NumberingPlan, *, is_default: bool) -> dict[str, Any]:
    return {"account": account, "plan": plan.as_dict, "is_default": is_default, "version": version_of(plan.as_dict)}


async def get_plan(conn: asyncpg.Connection | asyncpg.Pool, account: str) -> dict[str, Any] | None:
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account) is None:
        return None
    rows = await conn.fetch(
        "SELECT class, pattern FROM numbering_patterns WHERE account_id = $1 ORDER BY class, position", account
    )
    by_class: dict[str, list[str]] = {}
    for r in rows:
        by_class.setdefault(r["class"], []).append(r["pattern"])
    if not rows:
        return plan_view(account, NumberingPlan(), is_default=True)
    plan = NumberingPlan(**{attr: tuple(by_class.get(cls, ())) for attr, cls in PLAN_KEYS.items()})
    return plan_view(account, plan, is_default=False)


def _storable(text: str) -> bool:
    """PostgreSQL text holds no NUL and only valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def parse_plan(body: dict[str, Any]) -> NumberingPlan:
    """A plan from JSON; every error names the list and index (`ring_groups[2]`)."""
    for key in body:
        if key not in PLAN_KEYS:
            raise PolicyError(key, f"unknown list (known: {', '.join(PLAN_KEYS)})")
    lists: dict[str, tuple[str, ...]] = {}
    for key in PLAN_KEYS:
        value = body.get(key, [])
        if not isinstance(value, list):
            raise PolicyError(key, "must be a list of regular expressions")
        if len(value) > MAX_PATTERNS:
            raise PolicyError(key, f"at most {MAX_PATTERNS} patterns")
        for i, p in enumerate(value):
            if not isinstance(p, str) or not p.strip() or len(p) > MAX_PATTERN_LEN or not _storable(p):
                raise PolicyError(
                    f"{key}[{i}]", f"a non-empty regular expression of at most {MAX_PATTERN_LEN} characters"
                )
            try:
                NumberingPlan(internal=(p,))
            except InvalidPattern as e:
                raise PolicyError(f"{key}[{i}]", str(e).split(" does not compile: ", 1)[-1]) from None
        lists[key] = tuple(value)
    return NumberingPlan(**lists)


async def put_plan(
    pool: asyncpg.Pool, account: str, body: dict[str, Any], *, version: str | None, actor: Actor
) -> dict[str, Any] | None:
    """Replace the account's numbering plan; None when there is no such account. All lists empty =
    back to the default plan (2 to 5 digit internal extensions)."""
    plan = parse_plan(body)
    async with pool.acquire() as c, c.transaction():
        if await c.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account) is None:
            return None
        before = await get_plan(c, account)
        assert before is not None
        _check(version, before)
        await c.execute("DELETE FROM numbering_patterns WHERE account_id = $1", account)
        await c.executemany(
            "INSERT INTO numbering_patterns (account_id, class, position, pattern) VALUES ($1, $2, $3, $4)",
            [(account, cls, i, p) for attr, cls in PLAN_KEYS.items() for i, p in enumerate(getattr(plan, attr))],
        )
        after = await get_plan(c, account)
        assert after is not None
        old, new = _diff(before["plan"], after["plan"])
        await audit.record(
            c,
            actor=actor.label,
            action="numbering.update",
            target=f"account:{account}",
            remote=actor.remote,
            detail={"old": old, "new": new},
        )
    return after


def classify(plan: dict[str, Any], number: str) -> dict[str, Any]:
    """Which class a dialled string falls in under `plan` (a plan view's `plan`), and why."""
    p = NumberingPlan(**{k: tuple(v) for k, v in plan.items()})
    cls, pattern = p.match(number)
    return {
        "number": number,
        "dial_string": dial_string(number),
        "class": cls.value,
        "matched_pattern": pattern,
        "stops_recording_when_rule_off": cls.value == "external",
    }
