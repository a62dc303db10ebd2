"""Ring groups in the settings file: parsed with errors naming where, and `callrec settings import` /
`export` round-trip them (members by user name) against a real database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from controller.policy import PolicyError
from controller.settings_file import RingGroupSpec, dump_settings, parse_settings_file
from storage import users

FILE = """
default_country = "US"
[accounts.main]
retention_days = 90
[ring_groups.sales]
name = "Sales"
members = ["bob", "alice"]
[ring_groups."600"]
name = "Support line"
"""


def test_ring_groups_parse_and_round_trip() -> None:
    ps, groups = parse_settings_file(FILE)
    assert groups == {
        "sales": RingGroupSpec("sales", "Sales", ("alice", "bob")),
        "600": RingGroupSpec("600", "Support line", ()),
    }
    text = dump_settings(ps, list(groups.values()))
    assert parse_settings_file(text) == (ps, groups)
    assert parse_settings_file("[accounts.main]\n")[1] is None  # no table: ring groups are left alone


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[ring_groups.'bad id']\n", "ring_groups.bad id"),
        ("[ring_groups.sales]\nmembers = 'alice'\n", "ring_groups.sales.members"),
        ("[ring_groups.sales]\ncolour = 'red'\n", "ring_groups.sales.colour"),
        ("[ring_groups.sales]\nname = 3\n", "ring_groups.sales.name"),
        ("ring_groups = 1\n", "ring_groups"),
    ],
)
def test_ring_group_errors_name_where(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_settings_file(text)
    assert where in str(e.value)


async def _cli(dsn: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "CALLREC_DATABASE_URL": dsn, "CALLREC_STATE_DIR": str(tmp_path / "state")}
    env.pop("CALLREC_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "settings", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_import_export_round_trip_with_members(cli_db: tuple[str, asyncpg.Pool], tmp_path: Path) -> None:
    dsn, pool = cli_db
    for name in ("alice", "bob"):
        await users.add_user(pool, name, "supervisor")
    f = tmp_path / "settings.toml"
    f.write_text(FILE)
    code, out, err = await _cli(dsn, tmp_path, "import", str(f))
    assert code == 0, err
    assert "imported 2 ring group(s)" in out
    alice = await pool.fetchval("SELECT id FROM users WHERE name = 'alice'")
    rows = await pool.fetch("SELECT ring_group_id FROM ring_group_members WHERE user_id = $1", alice)
    assert [r["ring_group_id"] for r in rows] == ["sales"]

    code, exported, err = await _cli(dsn, tmp_path, "export")
    assert code == 0, err
    assert parse_settings_file(exported)[1] == parse_settings_file(FILE)[1]
    (tmp_path / "again.toml").write_text(exported)
    code, _, err = await _cli(dsn, tmp_path, "import", str(tmp_path / "again.toml"))
    assert code == 0, err
    code, again, _ = await _cli(dsn, tmp_path, "export")
    assert again == exported  # export -> import -> export is stable

    audit = await pool.fetch("SELECT action, target FROM audit_log WHERE action = 'ring_group.import' ORDER BY id")
    assert {a["target"] for a in audit} == {"ring_group:sales", "ring_group:600"}  # the no-op re-import adds none

    # an unknown member: exit 2 naming it, and nothing of the file written
    bad = FILE.replace('["bob", "alice"]', '["bob", "carol"]').replace("retention_days = 90", "retention_days = 45")
    (tmp_path / "bad.toml").write_text(bad)
    code, _, err = await _cli(dsn, tmp_path, "import", str(tmp_path / "bad.toml"))
    assert code == 2 and "ring_groups.sales.members" in err and "carol" in err
    assert await pool.fetchval("SELECT retention_days FROM accounts WHERE id = 'main'") == 90
    code, after, _ = await _cli(dsn, tmp_path, "export")
    assert after == exported
