"""`callrec recordings list|show`: an admin on the PBX host finds recordings without curl."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.foundation.conftest import CliKeys, run_cli, store_recordings, write_config


@pytest.fixture
async def store(cli_db: tuple[str, asyncpg.Pool], cli_keys: CliKeys, tmp_path: Path) -> tuple[Path, dict]:
    dsn, pool = cli_db
    conf = write_config(tmp_path / "callrec.toml", dsn, tmp_path, cli_keys)
    ids = {
        "in_2001": (await store_recordings(pool, conf, 1, customer_number="15551230062"))[0],
        "out_2002": (
            await store_recordings(
                pool, conf, 1, direction="outbound", agent="2002", agents=["2002"], customer_number="+15557770000"
            )
        )[0],
        "old": (await store_recordings(pool, conf, 1))[0],
    }
    await pool.execute("UPDATE recordings SET started_at = started_at - interval '40 days' WHERE id = $1", ids["old"])
    await pool.execute("UPDATE recordings SET legal_hold = true WHERE id = $1", ids["out_2002"])
    return conf, ids


def _json_ids(conf: Path, *args: str) -> list[str]:
    res = run_cli("recordings", "list", "--json", *args, config=conf)
    assert res.returncode == 0, res.stderr
    return [r["id"] for r in json.loads(res.stdout)["recordings"]]


async def test_list_filters_like_the_api(store: tuple[Path, dict]) -> None:
    conf, ids = store
    assert set(_json_ids(conf)) == set(ids.values())
    assert _json_ids(conf, "--number", "+1 (555) 123-0062") == [ids["in_2001"]]  # stored as 15551230062
    assert _json_ids(conf, "--agent", "2002") == [ids["out_2002"]]
    assert _json_ids(conf, "--direction", "outbound") == [ids["out_2002"]]
    assert set(_json_ids(conf, "--direction", "inbound", "--state", "stored")) == {ids["in_2001"], ids["old"]}
    assert _json_ids(conf, "--state", "failed") == []
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    assert set(_json_ids(conf, "--from", week_ago)) == {ids["in_2001"], ids["out_2002"]}
    assert _json_ids(conf, "--to", week_ago) == [ids["old"]]

    # pages: --limit and the cursor it prints
    res = run_cli("recordings", "list", "--json", "--limit", "2", config=conf)
    page = json.loads(res.stdout)
    assert len(page["recordings"]) == 2 and page["next_cursor"]
    rest = _json_ids(conf, "--limit", "2", "--cursor", page["next_cursor"])
    assert {r["id"] for r in page["recordings"]} | set(rest) == set(ids.values())


async def test_list_prints_a_compact_table(store: tuple[Path, dict]) -> None:
    conf, ids = store
    res = run_cli("recordings", "list", "--direction", "outbound", config=conf)
    assert res.returncode == 0, res.stderr
    header, row, footer = res.stdout.splitlines()
    assert header.split() == ["STARTED", "(UTC)", "DUR", "DIRECTION", "CUSTOMER", "NUMBER", "AGENTS", "STATE", "ID"]
    assert row.split()[3:] == ["outbound", "+15557770000", "+15551234567", "2002", "stored", "(hold)", ids["out_2002"]]
    assert footer == "1 recording(s)"
    res = run_cli("recordings", "list", "--agent", "9999", config=conf)
    assert res.returncode == 0 and res.stdout.strip() == "no recordings match"
    res = run_cli("recordings", "list", "--direction", "sideways", config=conf)
    assert res.returncode == 2 and "invalid choice: 'sideways'" in res.stderr


async def test_show_prints_metadata_timeline_and_policy(store: tuple[Path, dict]) -> None:
    conf, ids = store
    rid = ids["in_2001"]
    res = run_cli("recordings", "show", rid, config=conf)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert text.splitlines()[0] == f"recording {rid}"
    for line in (
        "  state         stored at ",
        "  direction     inbound",
        "  account       main, number +15551234567",
        "  customer      15551230062",
        "  agents        2001",
        "  channels      stereo: customer left, agent right",
        "timeline",
        "     0.0s  2001 (internal)",
        "     1.0s  paused by agent:2001, resumed at 1.5s",
        "     3.0s  stop: hangup",
        "policy decision",
        "  record                        true  (from account)",
        "  retention_days                183\n",
    ):
        assert line in text, f"{line!r} missing from:\n{text}"

    res = run_cli("recordings", "show", rid, "--json", config=conf)
    doc = json.loads(res.stdout)
    assert doc["id"] == rid and doc["policy"]["record"] is True and doc["timeline"]["pauses"]

    res = run_cli("recordings", "show", "0b9a5c1e-0000-4000-8000-000000000000", config=conf)
    assert res.returncode == 1 and "no recording 0b9a5c1e-0000-4000-8000-000000000000" in res.stderr
    res = run_cli("recordings", "show", "not-an-id", config=conf)
    assert res.returncode == 2 and "is not a recording id" in res.stderr
