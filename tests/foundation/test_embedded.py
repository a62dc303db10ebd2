"""No DSN configured → the service starts embedded PostgreSQL in its state directory."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def test_embedded_postgres_boots_and_migrates() -> None:
    # Outside pytest's 0700 temp root: as root, the embedded server runs as its own system user.
    tmp_path = Path(tempfile.mkdtemp(prefix="callrec-embedded-test-"))
    try:
        _boot_and_migrate(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _boot_and_migrate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}
    env["CALLREC_STATE_DIR"] = str(tmp_path / "state")
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "applied: 001_initial" in r.stdout
    assert (tmp_path / "state" / "pgdata" / "PG_VERSION").exists()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "policy",
            "explain",
            "--direction",
            "inbound",
            "--number",
            "+15551230000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert '"record": true' in r.stdout
