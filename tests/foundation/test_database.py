"""Migrations, policy storage and the audit log against the real PostgreSQL server."""

import asyncio

import asyncpg
import pytest

from controller.policy import PolicyError
from controller.settings_file import parse_settings
from storage import db, repo


async def test_concurrent_migrations_do_not_race(fresh_db: str) -> None:
    conns = [await db.connect(fresh_db) for _ in range(4)]
    try:
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        assert all(r == [] for r in results)  # fresh_db is already migrated: idempotent
        await conns[0].execute("DROP TABLE schema_migrations CASCADE")
        await conns[0].execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        applied = [r for r in results if r]
        assert len(applied) == 1 and applied[0][0] == "001_initial"  # exactly one instance applied it
        versions = await conns[0].fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in versions] == [m.version for m in db.migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_audit_log_is_append_only(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO audit_log (actor, action, target) VALUES ('alice', 'listen', 'rec-1')")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM audit_log")


POLICY = r"""
default_country = "US"
[accounts.main]
record_inbound = true
record_outbound = false
continue_on_external_transfer = false
[accounts.main.numbering]
internal = ["^[1-5]\\d{3}$"]
[accounts.main.numbers."+15551234567"]
record_inbound = false
"""


async def test_policy_round_trip_through_database(fresh_db: str) -> None:
    conn = await db.connect(fresh_db)
    try:
        ps = parse_settings(POLICY)
        await repo.save_policy_set(conn, ps)
        loaded = await repo.load_policy_set(conn)
        assert loaded == ps
        # re-import with the number removed drops it from the account
        await repo.save_policy_set(conn, parse_settings(POLICY.split("[accounts.main.numbers")[0]))
        assert (await repo.load_policy_set(conn)).numbers == {}
    finally:
        await conn.close()


async def test_number_owned_by_another_account_is_refused_and_nothing_written(fresh_db: str) -> None:
    conn = await db.connect(fresh_db)
    try:
        await repo.save_policy_set(conn, parse_settings(POLICY))
        other = parse_settings("[accounts.b]\nretention_days = 9\n[accounts.b.numbers.'+15551234567']\n")
        with pytest.raises(PolicyError, match="belongs to account 'main'"):
            await repo.save_policy_set(conn, other)
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE id = 'b'") == 0  # rolled back
    finally:
        await conn.close()


async def test_settings_and_override_api_functions(fresh_db: str) -> None:
    conn = await db.connect(fresh_db)
    try:
        s = await repo.put_account_settings(conn, "main", {"record_outbound": False})
        assert s.record_outbound is False and s.record_inbound is True
        with pytest.raises(PolicyError) as e:
            await repo.put_account_settings(conn, "main", {"retention_days": "long"})
        assert e.value.field == "retention_days"
        with pytest.raises(PolicyError, match="needs the account"):
            await repo.put_number_override(conn, "+15551234567", {"record_inbound": False})
        owner, ov = await repo.put_number_override(conn, "+15551234567", {"record_inbound": False}, "main")
        assert owner == "main" and ov.record_inbound is False
        ps = await repo.load_policy_set(conn)
        assert ps.resolve(direction="inbound", number="+15551234567").record is False
        assert await repo.delete_number_override(conn, "+15551234567") is True
        ps = await repo.load_policy_set(conn)
        assert ps.resolve(direction="inbound", number="+15551234567").record is True
    finally:
        await conn.close()
