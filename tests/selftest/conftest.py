"""Fixtures for `callrec selftest`: the selftest-aware simulators and a way to run the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.selftest_pbx import SelftestAmiSimulator, SelftestEslSimulator

ROOT = Path(__file__).resolve().parents[2]
ESL_PASSWORD = "selftest-esl-pw"
AMI_USER, AMI_SECRET = "selftest-admin", "selftest-ami-secret"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def failed(self) -> set[str]:
        return {f"{c['call']}: {c['check']}" for c in self.doc["checks"] if not c["ok"]}


async def start_selftest(*args: str, tmpdir: Path | None = None) -> asyncio.subprocess.Process:
    """Start `callrec selftest ...` as a subprocess (the event loop keeps serving the simulators meanwhile).
    With `tmpdir`, its temp files go there (TMPDIR), so a test can see what it left behind even while
    other selftests run on the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_") or k.startswith("CALLREC_TEST_")}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller.cli",
        "selftest",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_selftest(*args: str, limit: float = 150, tmpdir: Path | None = None) -> Result:
    """`callrec selftest ...` to its end (see start_selftest)."""
    proc = await start_selftest(*args, tmpdir=tmpdir)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pbx-recordings"
    d.mkdir()
    return d


@pytest.fixture
async def esl_sim(record_dir: Path) -> AsyncIterator[SelftestEslSimulator]:
    sim = SelftestEslSimulator(password=ESL_PASSWORD, recordings_dir=str(record_dir))
    await sim.start()
    yield sim
    await sim.close()


@pytest.fixture
async def ami_sim() -> AsyncIterator[SelftestAmiSimulator]:
    sim = SelftestAmiSimulator(username=AMI_USER, secret=AMI_SECRET)
    await sim.start()
    yield sim
    await sim.close()
