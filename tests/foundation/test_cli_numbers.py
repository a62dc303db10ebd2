"""A number given to the CLI is read the same way as the API reads it, however it is spelled."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from storage import archive
from tests.foundation.conftest import CliKeys, run_cli, store_recordings, write_config

SPELLINGS = ["+15551230062", "15551230062", "+1 (555) 123-0062", "555.123.0062"]


def _exported_ids(tar: Path) -> set[str]:
    with tarfile.open(tar) as t:
        f = t.extractfile(archive.INDEX)
        assert f is not None
        return {r["id"] for r in json.load(f)["recordings"]}


@pytest.fixture
async def numbers_store(cli_db: tuple[str, asyncpg.Pool], cli_keys: CliKeys, tmp_path: Path) -> tuple[Path, dict]:
    dsn, pool = cli_db
    conf = write_config(tmp_path / "callrec.toml", dsn, tmp_path, cli_keys)
    ids = {
        # the customer as the trunk presented it, E.164 or not; the account number is always E.164
        "customer_e164": await store_recordings(pool, conf, 1, customer_number="+15551230062"),
        "customer_raw": await store_recordings(pool, conf, 1, customer_number="15551230062"),
        "account": await store_recordings(pool, conf, 1, account_number="+15551230062"),
        "other": await store_recordings(pool, conf, 1),
    }
    return conf, {k: set(v) for k, v in ids.items()}


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_export_number_matches_every_spelling(
    numbers_store: tuple[Path, dict], tmp_path: Path, spelling: str
) -> None:
    conf, ids = numbers_store
    day = datetime.now(UTC).date().isoformat()
    tar = tmp_path / "n.tar"
    res = run_cli("export", "--from", day, "--to", day, "--number", spelling, "-o", str(tar), config=conf)
    assert res.returncode == 0, res.stderr
    assert _exported_ids(tar) == ids["customer_e164"] | ids["customer_raw"] | ids["account"]


async def test_verify_empty_archive_and_missing_member_say_so(numbers_store: tuple[Path, dict], tmp_path: Path) -> None:
    conf, _ = numbers_store
    tar = tmp_path / "empty.tar"
    res = run_cli("export", "--from", "2001-01-01", "--to", "2001-01-02", "-o", str(tar), config=conf)
    assert res.returncode == 0, res.stderr
    res = run_cli("verify", str(tar), config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == f"{tar}: the archive holds no recordings; nothing to verify"
    assert "not found" not in res.stdout + res.stderr
    res = run_cli("verify", f"{tar}:0b9a5c1e-0000-4000-8000-000000000000", config=conf)
    assert res.returncode == 1
    assert res.stderr.strip() == f"callrec: recording 0b9a5c1e-0000-4000-8000-000000000000 is not in {tar}"


async def test_erase_finds_the_customer_however_the_trunk_presented_the_number(
    numbers_store: tuple[Path, dict],
) -> None:
    conf, ids = numbers_store
    res = run_cli("erase", "--number", "+1 (555) 123-0062", "--dry-run", config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    listed = {line.split()[-1] for line in res.stdout.splitlines() if line.startswith("would erase ")}
    assert listed == ids["customer_e164"] | ids["customer_raw"]  # the account number is not the customer
