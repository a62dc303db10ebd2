"""`python3 lab/run.py` and `python3 tests/run.py` share one venv: alternating them installs nothing.

The stamp in the venv records the pyproject.toml it was installed from and the extras installed; a
venv with the test extra satisfies the demo (no extras), and a refresh keeps the extras it had.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from lab import bootstrap
from lab.bootstrap import extras_to_install, make_stamp, parse_extras

HASH = "a" * 64
NONE: frozenset[str] = frozenset()
TEST = frozenset({"test"})


def test_a_venv_installed_for_the_tests_satisfies_the_demo() -> None:
    assert extras_to_install(make_stamp(HASH, TEST), HASH, NONE) is None
    assert extras_to_install(make_stamp(HASH, TEST), HASH, TEST) is None


def test_the_demo_venv_gains_the_test_extra_once() -> None:
    install = extras_to_install(make_stamp(HASH, NONE), HASH, TEST)
    assert install == TEST
    assert extras_to_install(make_stamp(HASH, install), HASH, NONE) is None  # then the demo again: nothing


def test_a_changed_pyproject_reinstalls_and_keeps_the_extras_the_venv_had() -> None:
    assert extras_to_install(make_stamp(HASH, TEST), "b" * 64, NONE) == TEST
    assert extras_to_install(make_stamp(HASH, frozenset({"s3"})), "b" * 64, TEST) == {"s3", "test"}


@pytest.mark.parametrize("stamp", [None, "", HASH, "not json", "[1, 2]", '{"extras": ["test"]}'])
def test_a_missing_or_foreign_stamp_installs_what_is_asked(stamp: str | None) -> None:
    assert extras_to_install(stamp, HASH, TEST) == TEST


def test_extras_are_spelled_as_pip_takes_them() -> None:
    assert parse_extras("") == NONE
    assert parse_extras("test, s3") == {"test", "s3"}


@pytest.mark.slow
def test_ensure_venv_alternating_extras_installs_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A real venv (takes a minute or more): installed with the s3 extra, then asked for no extras
    (the demo) and for s3 again (the tests' role here; the test extra itself is slow to install)."""
    venv = tmp_path / "venv"
    python = bootstrap.ensure_venv("s3", venv)
    out, err = capfd.readouterr()
    assert "installing callrec" in err
    assert out == "", "stdout is the demo's (its --json document): bootstrap and pip report on stderr"
    subprocess.run([str(python), "-c", "import boto3, numpy, controller.cli, lab.demo"], check=True)
    want = hashlib.sha256((bootstrap.ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert (venv / bootstrap.STAMP_NAME).read_text() == make_stamp(want, frozenset({"s3"}))
    for extras in ("", "s3", ""):
        assert bootstrap.ensure_venv(extras, venv) == python
        out, err = capfd.readouterr()
        assert out == "" and "installing" not in err and "creating" not in err, (extras, out, err)
