"""`callrec lab` stops cleanly on SIGINT and SIGTERM, also when started in the background.

A shell starts a background job (`callrec lab &`) with SIGINT ignored; the lab installs its own
handlers, so both signals stop it. Stopping means: the process exits, its embedded PostgreSQL is
stopped (no server left running on the lab's data directory), and the temporary state directory it
created (~95 MB) is removed — a `--state-dir` the user gave is kept. Its stderr, a pipe here as in a
service log, carries no status line (`\r` redraws are for terminals only).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

STOP_TIMEOUT = 30  # generous: "a few seconds" on an idle machine, the suite shares a busy one


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's 0700 temp root: run as root, the embedded PostgreSQL drops to its own
    system user, which must be able to reach the lab's state directory."""
    d = Path(tempfile.mkdtemp(prefix="callrec-lab-stop-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def postgres_serving(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and any(str(pgdata) in arg for arg in cmdline):
            found.append(proc)
    return found


def start_in_background(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path, list[str], threading.Thread]:
    """The lab as `callrec lab &` starts it (SIGINT ignored); returns it once its page is up, with
    its state directory, its stderr lines so far (the rest keep arriving in the list) and the thread
    reading them (done at end of output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}
    env["TMPDIR"] = str(tmp_path)  # a temporary state dir lands here, so the test can look for it
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "--log-level", "warning", "lab", "--port", "0", *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what `&` does
    )
    lines: list[str] = []
    up = threading.Event()
    state: list[Path] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"callrec lab is running \(state in (.+)\)", line)
            if m:
                state.append(Path(m.group(1)))
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not up.wait(0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("callrec lab did not come up:\n" + "".join(lines)[-6000:])
    return proc, state[0], lines, reader


@pytest.mark.parametrize(
    ("sig", "keep"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["sigint-temp-dir", "sigterm-temp-dir", "sigterm-state-dir"],
)
def test_lab_stops_its_database_and_removes_only_its_own_temp_dir(
    tmp_path: Path, sig: signal.Signals, keep: bool
) -> None:
    given = tmp_path / "state"
    proc, state_dir, lines, reader = start_in_background(tmp_path, *(["--state-dir", str(given)] if keep else []))
    try:
        assert state_dir == (given if keep else state_dir)
        if not keep:
            assert state_dir.parent == tmp_path and state_dir.name.startswith("callrec-lab-")
        pgdata = state_dir / "pgdata"
        assert postgres_serving(pgdata), "the lab's embedded PostgreSQL should be running"
        time.sleep(3)  # the first calls are in flight (one starts at once, then one every ~2 s)
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"callrec lab ignored {sig.name}:\n" + "".join(lines)[-4000:])
        reader.join(10)
        output = "".join(lines)
        assert rc == 0, output[-4000:]
        assert "\r" not in output and "\033[" not in output, "status line drawn into a pipe"
        assert "stopping" in lines[-1], output[-4000:]
        assert postgres_serving(pgdata) == [], "embedded PostgreSQL left running"
        if keep:
            assert (state_dir / "callrec.toml").exists() and (pgdata / "PG_VERSION").exists()
        else:
            assert not state_dir.exists(), "temporary state dir left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pg in postgres_serving(state_dir / "pgdata"):
            pg.kill()
