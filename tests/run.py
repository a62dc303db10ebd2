#!/usr/bin/env python3
"""Run the whole test suite: `python3 tests/run.py [pytest args]`.

Creates/refreshes .venv with the test extras, installs the Debian tools the tests drive for real
(`age`, headless `chromium`, `baresip`) when it can, then runs ruff, mypy (controller/, storage/)
and pytest. Without a PostgreSQL server at 127.0.0.1:5432 (or CALLREC_TEST_DATABASE_URL) the tests
use the embedded PostgreSQL wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))
from bootstrap import ensure_venv, install_debian_packages  # noqa: E402

DEBIAN_PACKAGES = {"age": "age", "chromium": "chromium", "baresip-core": "baresip"}
CHECKS = (["ruff", "check", "."], ["mypy", "controller", "storage"])  # before pytest; README's Quick start names them


def main() -> int:
    python = ensure_venv("test")
    install_debian_packages(DEBIAN_PACKAGES)
    os.chdir(ROOT)
    for check in CHECKS:
        lint = subprocess.run([str(python), "-m", *check])
        if lint.returncode != 0:
            print(f"{check[0]} found problems (see above)", file=sys.stderr)
            return lint.returncode
    return subprocess.run([str(python), "-m", "pytest", *sys.argv[1:]]).returncode


if __name__ == "__main__":
    sys.exit(main())
