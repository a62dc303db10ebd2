"""What `callrec lab --calls N` writes at log level info, piped (a CI log, `2> lab.log`): one line per
log record and readable sentences — the startup sweep's summary once, without its prefix twice; a
call that is not recorded says which rule decided, not a Python dict; no status-line escapes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.demo import DID_NOT_RECORDED, mix_entry

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's 0700 temp root (the embedded PostgreSQL runs as its own user under root)."""
    d = Path(tempfile.mkdtemp(prefix="callrec-lab-logs-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_demo_log_lines_are_whole_and_readable(tmp_path: Path) -> None:
    calls = next(n for n in range(200) if mix_entry(n)[1] == DID_NOT_RECORDED) + 1  # up to a not-recorded call
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}
    args = ["--calls", str(calls), "--port", "0", "--state-dir", str(tmp_path / "lab")]
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--log-level", "info", "lab", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-6000:]
    assert f"{calls} calls" in r.stdout
    err = r.stderr
    assert "\r" not in err and "\033[" not in err, "status line drawn into a pipe"
    lines = err.splitlines()
    records = [line for line in lines if LOG_LINE.match(line)]
    for line in records:  # nothing glued after a record: one timestamp per line
        assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", line)) == 1, line

    sweep = [line for line in records if "startup sweep" in line]
    assert len(sweep) == 1 and sweep[0].count("startup sweep:") == 1, sweep

    not_recorded = [line for line in records if "not recorded" in line]
    assert not_recorded, "the not-recorded call of the mix should be logged"
    assert all("{" not in line and "'" not in line for line in not_recorded), not_recorded
    expected = re.compile(
        rf"inbound call \S+ not recorded: number {re.escape(DID_NOT_RECORDED)} sets record_inbound = false$"
    )
    assert any(expected.search(line) for line in not_recorded), not_recorded
