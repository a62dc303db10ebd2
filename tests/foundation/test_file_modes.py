"""Secrets and customer data on disk: who may read what (real files, os.stat)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from lab import demo
from tests.foundation.conftest import ROOT, CliKeys, run_cli, store_recordings, write_config


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _as_unprivileged_user(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """`callrec ARGS` as a user who is not root (nobody, when the tests run as root)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if os.geteuid() != 0:
        return subprocess.run(
            [sys.executable, "-m", "controller.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    # Our venv's interpreter may live under root's home; the system one of the same version can load
    # the venv's packages.
    system = Path("/usr/bin/python3")
    probe = subprocess.run(
        [str(system), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.skip("no system python of this version to run the CLI as an unprivileged user")
    env["PYTHONPATH"] = f"{ROOT}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"
    return subprocess.run(
        [str(system), "-m", "controller.cli", *args],
        cwd=ROOT,
        env=env,
        user=65534,
        group=65534,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_generate_needs_dir_unless_root(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    res = _as_unprivileged_user(["keys", "generate"], home)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "keys generate needs --dir DIR" in res.stderr
    assert not list(home.rglob("*")), "nothing may be written anywhere"


def test_keys_generate_says_where_it_wrote(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    res = subprocess.run(
        [sys.executable, "-m", "controller.cli", "keys", "generate", "--dir", str(d)],
        cwd=ROOT,
        env={**os.environ, "CALLREC_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"# Keys written to {d} (mode 0600)")
    assert {p.name: _mode(p) for p in d.iterdir()} == dict.fromkeys(
        ("identity.txt", "recipient.txt", "signing.key", "signing.pub"), 0o600
    )


async def test_stored_objects_and_manifests_are_not_world_readable(
    cli_db: tuple[str, asyncpg.Pool], cli_keys: CliKeys, tmp_path: Path
) -> None:
    dsn, pool = cli_db
    conf = write_config(tmp_path / "callrec.toml", dsn, tmp_path, cli_keys)
    old = os.umask(0o022)  # the usual umask: files would be 0644, directories 0755
    try:
        await store_recordings(pool, conf, 2)
    finally:
        os.umask(old)
    store = tmp_path / "store"
    files = [p for p in store.rglob("*") if p.is_file()]
    manifests = [p for p in files if p.name.endswith(".manifest.json")]
    assert len(manifests) == 2 and len(files) >= 4
    for p in files:
        assert _mode(p) == 0o640, f"{p.relative_to(store)} is {_mode(p):04o}"
    for p in [d for d in store.rglob("*") if d.is_dir() and d.name != ".staging"]:
        assert _mode(p) == 0o750, f"{p.relative_to(store)}/ is {_mode(p):04o}"

    # and an export archive (manifests inside) is written 0640 as well
    day = datetime.now(UTC).date().isoformat()
    tar = tmp_path / "backup.tar"
    old = os.umask(0o022)
    try:
        res = run_cli("export", "--from", day, "--to", day, "-o", str(tar), config=conf)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr
    assert _mode(tar) == 0o640


def test_lab_config_with_pbx_secrets_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ident, recipient = demo.prepare_keys(tmp_path)
        (tmp_path / "callrec.toml").write_text("# left by an older lab run\n")  # 0644: must not stay so
        demo.write_config(tmp_path, 8021, 5038, recipient, ident, 0, "127.0.0.1")
    finally:
        os.umask(old)
    conf = tmp_path / "callrec.toml"
    assert _mode(conf) == 0o600
    assert demo.ESL_PASSWORD in conf.read_text()
