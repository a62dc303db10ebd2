"""Long CLI commands under cron or in a CI log: no progress bar noise, one summary line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from tests.foundation.conftest import CliKeys, run_cli, store_recordings, write_config

N = 12


def _assert_quiet(stderr: str) -> None:
    assert "%|" not in stderr and "\r" not in stderr, f"progress bar written to a pipe:\n{stderr[:500]}"
    assert not stderr.strip(), f"unexpected stderr: {stderr[:500]}"


async def test_export_import_purge_print_no_progress_to_a_pipe(
    cli_db: tuple[str, asyncpg.Pool], second_cli_db: tuple[str, asyncpg.Pool], cli_keys: CliKeys, tmp_path: Path
) -> None:
    dsn, pool = cli_db
    conf = write_config(tmp_path / "a.toml", dsn, tmp_path / "a", cli_keys)
    await store_recordings(pool, conf, N)
    day = datetime.now(UTC).date().isoformat()
    tar = tmp_path / "backup.tar"

    res = run_cli("--log-level", "warning", "export", "--from", day, "--to", day, "-o", str(tar), config=conf)
    assert res.returncode == 0, res.stderr
    _assert_quiet(res.stderr)
    assert res.stdout.splitlines() == [f"{tar}: {N} recording(s), still encrypted, with signed manifests"]

    other = write_config(tmp_path / "b.toml", second_cli_db[0], tmp_path / "b", cli_keys)
    res = run_cli("--log-level", "warning", "import-archive", str(tar), config=other)
    assert res.returncode == 0, res.stdout + res.stderr
    _assert_quiet(res.stderr)
    assert res.stdout.splitlines() == [f"imported {N}, already present 0, conflicts 0, rejected 0"]

    await pool.execute("UPDATE recordings SET retention_until = now() - interval '1 day'")
    res = run_cli("--log-level", "warning", "purge", config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    _assert_quiet(res.stderr)
    assert res.stdout.splitlines() == [f"purged {N} recording(s); 0 kept by legal hold; 0 error(s)"]
