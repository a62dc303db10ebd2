"""The demo works from a plain install of the package, the way an administrator installs it:
`python -m venv` + `pip install callrec` (no extras, no test tools, nothing from tests/), then
`callrec lab --calls 2 --json` places its calls and stores their recordings.

A runtime import that only an extra provides (numpy once was: only the test extra installed it)
makes this fail, where the suite's own venv, which has every extra, would not notice.
Building the venv takes one to three minutes, so this runs with `-m slow`; the default suite has the
quick guard of the same rule (tests/lab/test_runtime_imports.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ("pyproject.toml", "README.md", "controller", "storage", "lab")  # what the sdist needs


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's 0700 temp root: run as root, the embedded PostgreSQL drops to its own
    system user, which must be able to reach the lab's state directory (a temp dir under TMPDIR)."""
    d = Path(tempfile.mkdtemp(prefix="callrec-plain-install-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_callrec_lab_runs_from_the_package_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLREC_", "PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-4000:]

    # Run from an empty directory: nothing importable but what pip installed.
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    env["TMPDIR"] = str(work)  # the lab's own temp state dir lands here and goes with the test
    r = subprocess.run(
        [str(venv / "bin" / "callrec"), "--log-level", "warning", "lab", "--calls", "2", "--json", "--port", "0"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-6000:]
    doc = json.loads(r.stdout)
    assert doc["ok"] is True, doc["problems"]
    assert len(doc["calls"]) == 2
    assert [rec["state"] for c in doc["calls"] for rec in c["recordings"]] == ["stored", "stored"]
