"""The audit log is tamper-evident: a hash chain computed in the database, checked by
`callrec verify --audit`, which names the first broken entry. Real PostgreSQL; the tampering is done
the way an attacker with database rights would: switch the append-only trigger off and edit rows."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import pytest

from storage import audit, db
from tests.conftest import _drop, _with_database
from tests.storage.test_cli import callrec


async def _entries(pool: asyncpg.Pool, n: int) -> list[int]:
    return [await audit.record(pool, actor=f"user{i}", action="recording.listen", target=f"rec-{i}") for i in range(n)]


async def _as_attacker(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def _conf(tmp: Path, dsn: str) -> Path:
    p = tmp / "c.toml"
    p.write_text(f'state_dir = "{tmp / "state"}"\n[database]\nurl = "{dsn}"\n')
    return p


async def test_untouched_chain_verifies(dbpool: asyncpg.Pool, fresh_db: str, tmp_path: Path) -> None:
    await _entries(dbpool, 5)
    res = callrec("verify", "--audit", config=_conf(tmp_path, fresh_db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "audit log: OK, 5 entries chained" in res.stdout


@pytest.mark.parametrize("column", ["actor", "detail", "at"])
async def test_field_edited_in_sql_is_named(dbpool: asyncpg.Pool, fresh_db: str, tmp_path: Path, column: str) -> None:
    ids = await _entries(dbpool, 6)
    change = {
        "actor": "actor = 'someone-else'",
        "detail": 'detail = \'{"note": "forged"}\'::jsonb',
        "at": "at = at - interval '1 day'",
    }[column]
    await _as_attacker(dbpool, f"UPDATE audit_log SET {change} WHERE id = $1", ids[3])
    res = callrec("verify", "--audit", config=_conf(tmp_path, fresh_db))
    assert res.returncode == 1
    assert f"first broken entry: entry id {ids[3]} (seq 4): its content no longer matches its hash" in res.stdout


async def test_edit_with_recomputed_hash_is_caught_at_the_next_link(dbpool: asyncpg.Pool) -> None:
    ids = await _entries(dbpool, 4)
    await _as_attacker(
        dbpool,
        "UPDATE audit_log SET actor = 'x', hash = audit_entry_hash(id, seq, prev_hash, at, 'x', action, target,"
        " remote, detail) WHERE id = $1",
        ids[1],
    )
    async with dbpool.acquire() as conn:
        report = await audit.verify_chain(conn)
    assert not report.ok and report.broken_id == ids[2]
    assert f"link to the previous entry (id {ids[1]}) does not match" in report.broken


async def test_deleted_entry_is_named(dbpool: asyncpg.Pool, fresh_db: str, tmp_path: Path) -> None:
    ids = await _entries(dbpool, 5)
    await _as_attacker(dbpool, "DELETE FROM audit_log WHERE id = $1", ids[2])
    res = callrec("verify", "--audit", config=_conf(tmp_path, fresh_db))
    assert res.returncode == 1
    assert f"entry id {ids[3]} (seq 4): the entries seq 3 after entry id {ids[1]} are missing (deleted)" in res.stdout


async def test_deleted_newest_entry_is_noticed(dbpool: asyncpg.Pool) -> None:
    ids = await _entries(dbpool, 3)
    await _as_attacker(dbpool, "DELETE FROM audit_log WHERE id = $1", ids[2])
    async with dbpool.acquire() as conn:
        report = await audit.verify_chain(conn)
    assert not report.ok and "the newest entries were deleted" in report.broken


async def test_concurrent_inserts_keep_one_valid_chain(fresh_db: str) -> None:
    """Many connections appending at once, some inside longer transactions: one gapless chain."""
    pool = await db.create_pool(fresh_db, min_size=8, max_size=8)
    try:

        async def writer(w: int) -> None:
            for i in range(25):
                if i % 5 == 0:
                    async with pool.acquire() as conn, conn.transaction():
                        await audit.record(conn, actor=f"w{w}", action="a", target=f"{i}")
                        await asyncio.sleep(0.001)
                        await audit.record(conn, actor=f"w{w}", action="b", target=f"{i}")
                else:
                    await audit.record(pool, actor=f"w{w}", action="a", target=f"{i}")

        await asyncio.gather(*(writer(w) for w in range(8)))
        async with pool.acquire() as conn:
            report = await audit.verify_chain(conn)
            seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM audit_log ORDER BY seq")]
        assert report.ok, report.broken
        assert report.entries == 8 * 30 == len(seqs)
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        await pool.close()


async def test_entries_written_before_the_migration_are_chained(server_dsn: str) -> None:
    """Migration 004 chains the audit entries an existing installation already has."""
    name = f"callrec_t_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await db.connect(_with_database(server_dsn, name))
    try:
        for m in db.migrations():
            if m.version < 4:
                await conn.execute(m.sql)
        for i in range(3):
            await conn.execute("INSERT INTO audit_log (actor, action, target) VALUES ('old', 'x', $1)", str(i))
        await conn.execute(next(m for m in db.migrations() if m.version == 4).sql)
        report = await audit.verify_chain(conn)
        assert report.ok and report.entries == 3, report.broken
        await audit.record(conn, actor="new", action="y")
        report = await audit.verify_chain(conn)
        assert report.ok and report.entries == 4, report.broken
    finally:
        await conn.close()
        await _drop(server_dsn, name)
