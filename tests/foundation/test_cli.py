"""The `callrec` CLI as an admin runs it, against the real PostgreSQL server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = r"""
default_country = "US"
[accounts.main]
record_inbound = true
record_outbound = false
continue_on_external_transfer = false
agent_pause_allowed = false
retention_days = 183
[accounts.main.numbering]
internal = ["^[1-5]\\d{3}$"]
ring_groups = ["^6\\d{2}$"]
private_extensions = ["^8\\d{4}$"]
[accounts.main.numbers."+15551234567"]
record_inbound = false
agent_pause_allowed = true
"""


def callrec(dsn: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLREC_DATABASE_URL": dsn, "CALLREC_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def imported(fresh_db: str, tmp_path: Path) -> str:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    r = callrec(fresh_db, tmp_path, "settings", "import", str(f))
    assert r.returncode == 0, r.stderr
    assert "imported 1 account(s) and 1 number(s)" in r.stdout
    return fresh_db


def explain(dsn: str, tmp_path: Path, *args: str) -> dict:
    r = callrec(dsn, tmp_path, "policy", "explain", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_explain_account_defaults(imported: str, tmp_path: Path) -> None:
    out = explain(imported, tmp_path, "--direction", "inbound", "--number", "+15559998888")
    assert out["record"] is True and out["sources"]["record"] == "account"
    out = explain(imported, tmp_path, "--direction", "outbound", "--number", "+15559998888")
    assert out["record"] is False and out["sources"]["record"] == "account"


def test_explain_number_override(imported: str, tmp_path: Path) -> None:
    out = explain(imported, tmp_path, "--direction", "inbound", "--number", "+1 (555) 123-4567")
    assert out["record"] is False
    assert out["sources"]["record"] == "number:+15551234567"
    assert out["settings"]["agent_pause_allowed"] is True


def test_explain_dialplan_override(imported: str, tmp_path: Path) -> None:
    out = explain(imported, tmp_path, "--direction", "inbound", "--number", "15551234567", "--dialplan", "force")
    assert out["record"] is True and out["sources"]["record"] == "dialplan"


@pytest.mark.parametrize(
    ("target", "cls", "stop"),
    [
        ("+15557654321", "external", True),
        ("2001", "internal", False),
        ("600", "ring_group", False),
        ("81234", "private_extension", False),
    ],
)
def test_explain_transfer(imported: str, tmp_path: Path, target: str, cls: str, stop: bool) -> None:
    out = explain(imported, tmp_path, "--direction", "inbound", "--number", "+15559998888", "--transfer-to", target)
    assert out["transfer"]["target_class"] == cls and out["transfer"]["stop_recording"] is stop


def test_malformed_number_exits_2_with_one_line(imported: str, tmp_path: Path) -> None:
    r = callrec(imported, tmp_path, "policy", "explain", "--direction", "inbound", "--number", "call-me-maybe")
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("callrec:")]
    assert errors == [
        "callrec: --number: not a phone number: 'call-me-maybe', nor an extension of the account's numbering plan"
    ]


def test_unknown_account_exits_2_naming_it_and_the_known_ones(imported: str, tmp_path: Path) -> None:
    r = callrec(
        imported,
        tmp_path,
        "policy",
        "explain",
        "--direction",
        "inbound",
        "--number",
        "+15559998888",
        "--account",
        "nosuch",
    )
    assert r.returncode == 2 and not r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("callrec:")]
    assert errors == ["callrec: --account: unknown account 'nosuch'; known: main"]
    out = explain(imported, tmp_path, "--direction", "inbound", "--number", "+15559998888", "--account", "main")
    assert out["account"] == "main"


def test_internal_call_takes_an_extension(imported: str, tmp_path: Path) -> None:
    out = explain(imported, tmp_path, "--direction", "internal", "--number", "2001")
    assert out["number"] == "2001" and out["record"] is False and out["sources"]["record"] == "direction:internal"
    out = explain(imported, tmp_path, "--direction", "internal", "--number", "2001", "--dialplan", "force")
    assert out["record"] is True and out["sources"]["record"] == "dialplan"


def test_export_then_import_is_a_round_trip(imported: str, tmp_path: Path) -> None:
    first = callrec(imported, tmp_path, "settings", "export")
    assert first.returncode == 0
    f = tmp_path / "exported.toml"
    f.write_text(first.stdout)
    assert callrec(imported, tmp_path, "settings", "import", str(f)).returncode == 0
    assert callrec(imported, tmp_path, "settings", "export").stdout == first.stdout


def test_import_validates_everything_before_writing(imported: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(POLICY.replace("retention_days = 183", "retention_days = 183\n[accounts.zzz]\nretention_days = 0"))
    r = callrec(imported, tmp_path, "settings", "import", str(bad))
    assert r.returncode == 2 and "accounts.zzz.retention_days" in r.stderr
    assert "zzz" not in callrec(imported, tmp_path, "settings", "export").stdout


def test_db_migrate_is_idempotent(fresh_db: str, tmp_path: Path) -> None:
    r = callrec(fresh_db, tmp_path, "db", "migrate")
    assert r.returncode == 0 and "up to date" in r.stdout
