"""Policy storage: accounts, numbering plans, numbers and their overrides.

Loads a `controller.policy.PolicySet` (what the recorder and `policy explain` resolve against) and
writes settings for the CLI import and the API. Every write validates first, then writes in one
transaction, so a bad value never leaves half a change behind.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from controller.numbering import NumberingPlan
from controller.policy import (
    SETTING_FIELDS,
    Account,
    AccountSettings,
    NumberOverride,
    PolicyError,
    PolicySet,
    override_from_dict,
    settings_from_dict,
)

DEFAULT_COUNTRY_KEY = "default_country"
_CLASS_FIELDS = (("internal", "internal"), ("ring_group", "ring_groups"), ("private_extension", "private_extensions"))
_Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def load_policy_set(conn: _Conn) -> PolicySet:
    """Everything `PolicySet.resolve()` needs, in three queries."""
    country = await conn.fetchval("SELECT value FROM app_settings WHERE key = $1", DEFAULT_COUNTRY_KEY)
    patterns: dict[str, dict[str, list[str]]] = {}
    for r in await conn.fetch("SELECT account_id, class, pattern FROM numbering_patterns ORDER BY position"):
        patterns.setdefault(r["account_id"], {}).setdefault(r["class"], []).append(r["pattern"])
    accounts: dict[str, Account] = {}
    for r in await conn.fetch("SELECT * FROM accounts"):
        settings = AccountSettings(**{f: r[f] for f in SETTING_FIELDS})
        plan = _plan_from(patterns.get(r["id"]))
        accounts[r["id"]] = Account(r["id"], settings, plan)
    numbers = {
        r["number"]: (r["account_id"], override_from_dict(r["override"]))
        for r in await conn.fetch("SELECT number, account_id, override FROM numbers")
    }
    return PolicySet(accounts=accounts, numbers=numbers, default_country=country or "US")


def _plan_from(by_class: dict[str, list[str]] | None) -> NumberingPlan:
    if by_class is None:
        return NumberingPlan()
    return NumberingPlan(**{attr: tuple(by_class.get(cls, ())) for cls, attr in _CLASS_FIELDS})


async def save_policy_set(conn: asyncpg.Connection, ps: PolicySet) -> None:
    """Write every account of `ps` (settings, numbering plan, its numbers) in one transaction.

    Accounts not in `ps` are left alone; an account's numbers are replaced by those in `ps`. A number
    already owned by an account outside `ps` is an error naming both accounts.
    """
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT number, account_id FROM numbers WHERE number = ANY($1::text[])", list(ps.numbers)
        )
        for r in rows:
            wanted = ps.numbers[r["number"]][0]
            if r["account_id"] != wanted and r["account_id"] not in ps.accounts:
                raise PolicyError(
                    f"numbers.{r['number']}",
                    f"belongs to account {r['account_id']!r}; it cannot also belong to {wanted!r}",
                )
        await conn.execute(
            "INSERT INTO app_settings (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            DEFAULT_COUNTRY_KEY,
            ps.default_country,
        )
        for acct in ps.accounts.values():
            await _upsert_account(conn, acct.id, acct.settings)
            await conn.execute("DELETE FROM numbering_patterns WHERE account_id = $1", acct.id)
            await conn.executemany(
                "INSERT INTO numbering_patterns (account_id, class, position, pattern) VALUES ($1, $2, $3, $4)",
                [
                    (acct.id, cls, i, p)
                    for cls, attr in _CLASS_FIELDS
                    for i, p in enumerate(getattr(acct.numbering, attr))
                ],
            )
            await conn.execute(
                "DELETE FROM numbers WHERE account_id = $1 AND NOT (number = ANY($2::text[]))",
                acct.id,
                [n for n, (a, _) in ps.numbers.items() if a == acct.id],
            )
        await conn.executemany(
            "INSERT INTO numbers (number, account_id, override) VALUES ($1, $2, $3)"
            " ON CONFLICT (number) DO UPDATE SET account_id = EXCLUDED.account_id,"
            " override = EXCLUDED.override, updated_at = now()",
            [(n, a, ov.as_dict()) for n, (a, ov) in ps.numbers.items()],
        )


async def _upsert_account(conn: _Conn, account_id: str, s: AccountSettings) -> None:
    columns = ", ".join(SETTING_FIELDS)
    params = ", ".join(f"${i + 2}" for i in range(len(SETTING_FIELDS)))
    updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in SETTING_FIELDS)
    await conn.execute(
        f"INSERT INTO accounts (id, {columns}) VALUES ($1, {params})"
        f" ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()",
        account_id,
        *(getattr(s, f) for f in SETTING_FIELDS),
    )


# --- single-record reads and writes (API, CLI) ------------------------------------------------


async def get_account_settings(conn: _Conn, account_id: str) -> AccountSettings | None:
    r = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
    return AccountSettings(**{f: r[f] for f in SETTING_FIELDS}) if r else None


async def put_account_settings(conn: _Conn, account_id: str, changes: dict[str, Any]) -> AccountSettings:
    """Apply `changes` (any subset of the settings) to the account, creating it with defaults if new."""
    current = await get_account_settings(conn, account_id) or AccountSettings()
    updated = settings_from_dict(changes, base=current)
    await _upsert_account(conn, account_id, updated)
    return updated


async def get_number_override(conn: _Conn, number: str) -> tuple[str, NumberOverride] | None:
    r = await conn.fetchrow("SELECT account_id, override FROM numbers WHERE number = $1", number)
    return (r["account_id"], override_from_dict(r["override"])) if r else None


async def put_number_override(
    conn: _Conn, number: str, override: dict[str, Any], account_id: str | None = None
) -> tuple[str, NumberOverride]:
    """Set the override of an E.164 number (replacing the previous one). A new number needs its account."""
    ov = override_from_dict(override)
    existing = await get_number_override(conn, number)
    if existing is None and not account_id:
        raise PolicyError("account", "a number not yet known needs the account it belongs to")
    if existing is not None and account_id and account_id != existing[0]:
        raise PolicyError("account", f"{number} belongs to account {existing[0]!r}, not {account_id!r}")
    owner = existing[0] if existing else account_id
    assert owner is not None
    if existing is None and await get_account_settings(conn, owner) is None:
        raise PolicyError("account", f"no account {owner!r}")
    await conn.execute(
        "INSERT INTO numbers (number, account_id, override) VALUES ($1, $2, $3)"
        " ON CONFLICT (number) DO UPDATE SET override = EXCLUDED.override, updated_at = now()",
        number,
        owner,
        ov.as_dict(),
    )
    return owner, ov


async def delete_number_override(conn: _Conn, number: str) -> bool:
    """Clear a number's override (the number stays with its account, inheriting everything)."""
    status = await conn.execute(
        "UPDATE numbers SET override = '{}'::jsonb, updated_at = now() WHERE number = $1", number
    )
    return status.endswith(" 1")
