"""Create or refresh the project's virtual environment, using only the standard library.

Both quick-start commands (`python3 lab/run.py`, `python3 tests/run.py`) call `ensure_venv()` first,
so a fresh machine with nothing but python3 gets everything it needs. They share one venv: the stamp
records the pyproject.toml it was installed from and the extras installed, so a venv installed for
the tests (extra "test") already satisfies the demo (no extras) and alternating the two commands
installs nothing. It is reinstalled only when pyproject.toml changed or an extra is missing, and
then keeps the extras it had.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CALLREC_VENV", ROOT / ".venv"))
STAMP_NAME = ".callrec-installed"


def _python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def parse_extras(extras: str) -> frozenset[str]:
    """ "test,s3" → {"test", "s3"} (the spelling pip takes between the brackets)."""
    return frozenset(e.strip() for e in extras.split(",") if e.strip())


def extras_to_install(stamp: str | None, pyproject_hash: str, wanted: frozenset[str]) -> frozenset[str] | None:
    """None when the venv the stamp describes already has what is wanted; otherwise the extras to
    install: the wanted ones plus every one installed before (even from an older pyproject.toml),
    so a test venv stays a test venv when the demo refreshes it."""
    try:
        recorded = json.loads(stamp) if stamp else {}
    except ValueError:  # an older stamp format: nothing known about it
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    installed = frozenset(recorded.get("extras") or ())
    if recorded.get("pyproject") == pyproject_hash and wanted <= installed:
        return None
    return wanted | installed


def make_stamp(pyproject_hash: str, extras: frozenset[str]) -> str:
    return json.dumps({"pyproject": pyproject_hash, "extras": sorted(extras)})


def ensure_venv(extras: str = "", venv_dir: Path | None = None) -> Path:
    """The venv's python, with callrec (and `extras`, e.g. "test") installed in editable mode."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under any python3 before the venv exists
        sys.exit(f"callrec needs Python >= 3.11, this is {sys.version.split()[0]}")
    venv_dir = venv_dir or VENV
    python, stamp_file = _python(venv_dir), venv_dir / STAMP_NAME
    pyproject_hash = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = stamp_file.read_text() if python.exists() and stamp_file.exists() else None
    install = extras_to_install(stamp, pyproject_hash, parse_extras(extras))
    if install is None:
        return python
    if not python.exists():
        print(f"creating virtual environment in {venv_dir}", file=sys.stderr, flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(venv_dir)
        except (subprocess.CalledProcessError, OSError) as e:
            shutil.rmtree(venv_dir, ignore_errors=True)
            sys.exit(f"could not create a virtual environment ({e}); on Debian: apt-get install python3-venv")
    print("installing callrec and its dependencies (first run takes a minute or two)", file=sys.stderr, flush=True)
    target = f"{ROOT}[{','.join(sorted(install))}]" if install else str(ROOT)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # stdout belongs to the command that follows (`lab/run.py --calls N --json` prints one JSON document)
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, "-e", target], check=True, stdout=sys.stderr)
    stamp_file.write_text(make_stamp(pyproject_hash, install))
    return python


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
