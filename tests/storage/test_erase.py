"""`callrec erase --number N`: GDPR erasure against a real database and local storage, run as a user runs it."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from controller.config import load_config
from controller.metrics import Metrics
from storage import audit
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, insert_recording, make_config, objects
from tests.storage.test_cli import callrec

CUSTOMER, OTHER = "+15550001111", "+15550002222"


def _conf(tmp: Path, dsn: str, keys: Keys) -> Path:
    p = tmp / "c.toml"
    p.write_text(
        f"""state_dir = "{tmp / "state"}"
[database]
url = "{dsn}"
[spool]
dir = "{tmp / "spool"}"
[storage]
path = "{tmp / "store"}"
[encryption]
recipients = ["{keys.recipient}"]
signing_key_file = "{keys.signing_key}"
"""
    )
    return p


async def _setup(dbpool: asyncpg.Pool, keys: Keys, tmp: Path) -> dict[str, str]:
    cfg = make_config(tmp, keys)
    ids = {}
    for name in ("a", "b", "held", "other"):
        ids[name] = (await insert_recording(dbpool, cfg, seconds=0.5))[0]
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    ids["open"] = (await insert_recording(dbpool, cfg, seconds=0.5, enqueue=False))[0]  # not finalized yet
    await dbpool.execute("UPDATE recordings SET legal_hold = true WHERE id = $1", ids["held"])
    await dbpool.execute("UPDATE recordings SET customer_number = $2 WHERE id = $1", ids["other"], OTHER)
    return ids


def _objects_of(cfg_path: Path, rid: str) -> list[str]:
    return [o for o in objects(load_config(cfg_path, env={})) if rid in o]


async def test_erase_removes_objects_and_rows_refuses_held_and_open_ones_and_audits(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path
) -> None:
    ids = await _setup(dbpool, keys, tmp_path)
    conf = _conf(tmp_path, fresh_db, keys)
    for name in ("a", "b", "held", "other"):
        assert len(_objects_of(conf, ids[name])) == 2  # audio + manifest

    # dry run, number in national format (normalized with the default country): nothing changes
    res = callrec("erase", "--number", "(555) 000-1111", "--dry-run", config=conf)
    assert res.returncode == 1, res.stdout + res.stderr  # refusals make the request incomplete
    assert f"would erase {ids['a']}" in res.stdout and f"would erase {ids['b']}" in res.stdout
    assert f"refused {ids['held']}: on legal hold" in res.stdout
    assert f"refused {ids['open']}: still in progress (state stopped)" in res.stdout
    assert ids["other"] not in res.stdout
    assert "+15550001111: would erase 2 recording(s), refused 2, errors 0 (dry run: nothing deleted)" in res.stdout
    assert await dbpool.fetchval("SELECT count(*) FROM recordings") == 5
    assert len(_objects_of(conf, ids["a"])) == 2
    assert await dbpool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.erase'") == 0

    res = callrec("erase", "--number", "+1 555 000 1111", "--request", "DSR-42", config=conf)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"erased {ids['a']}" in res.stdout and f"erased {ids['b']}" in res.stdout
    assert f"refused {ids['held']}: on legal hold" in res.stdout
    left = {str(r["id"]) for r in await dbpool.fetch("SELECT id FROM recordings")}
    assert left == {ids["held"], ids["other"], ids["open"]}
    assert _objects_of(conf, ids["a"]) == [] and _objects_of(conf, ids["b"]) == []
    assert len(_objects_of(conf, ids["held"])) == 2 and len(_objects_of(conf, ids["other"])) == 2

    entries = await dbpool.fetch("SELECT target, detail FROM audit_log WHERE action = 'recording.erase' ORDER BY id")
    assert sorted(e["target"] for e in entries) == sorted([ids["a"], ids["b"]])
    assert all(e["detail"]["reason"] == "erasure request" and e["detail"]["request"] == "DSR-42" for e in entries)
    async with dbpool.acquire() as conn:
        assert (await audit.verify_chain(conn)).ok

    # once the hold is lifted, the erasure completes
    await dbpool.execute("UPDATE recordings SET legal_hold = false WHERE id = $1", ids["held"])
    await dbpool.execute("DELETE FROM recordings WHERE id = $1", ids["open"])
    res = callrec("erase", "--number", CUSTOMER, config=conf)
    assert res.returncode == 0 and "erased 1 recording(s), refused 0" in res.stdout, res.stdout
    assert _objects_of(conf, ids["held"]) == []


async def test_erase_rejects_a_non_number(fresh_db: str, keys: Keys, tmp_path: Path) -> None:
    res = callrec("erase", "--number", "robert'); drop table", config=_conf(tmp_path, fresh_db, keys))
    assert res.returncode == 2 and "not a phone number" in res.stderr
