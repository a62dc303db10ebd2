"""Create or refresh the project's virtual environment, using only the standard library.

Both quick-start commands (`python3 lab/run.py`, `python3 tests/run.py`) call `ensure_venv()` first,
so a fresh machine with nothing but python3 gets everything it needs. The venv is reinstalled only
when pyproject.toml changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CALLREC_VENV", ROOT / ".venv"))
STAMP = VENV / ".callrec-installed"


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(extras: str = "") -> Path:
    """The venv's python, with callrec (and `extras`, e.g. "test") installed in editable mode."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under any python3 before the venv exists
        sys.exit(f"callrec needs Python >= 3.11, this is {sys.version.split()[0]}")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if _python().exists() and STAMP.exists() and STAMP.read_text().strip() == want:
        return _python()
    if not _python().exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (subprocess.CalledProcessError, OSError) as e:
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(f"could not create a virtual environment ({e}); on Debian: apt-get install python3-venv")
    print("installing callrec and its dependencies (first run takes a minute)", flush=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    pip = [str(_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", target], check=True)
    STAMP.write_text(want)
    return _python()


def missing_debian_packages(packages: dict[str, str]) -> list[str]:
    """Packages (name → the command it provides) whose command is not on PATH."""
    return [pkg for pkg, cmd in packages.items() if shutil.which(cmd) is None]


def install_debian_packages(packages: dict[str, str]) -> None:
    """Install missing Debian packages when we can (root with apt-get); otherwise say which are missing."""
    missing = missing_debian_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"note: Debian packages not installed: {' '.join(missing)} (tests that need them will skip)")
        return
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=False, env=env)
