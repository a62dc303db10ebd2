"""`callrec selftest` stopped from outside (SIGTERM: `timeout`, a CI job's end, `kill`) still leaves
nothing behind: the embedded PostgreSQL is stopped and its directory, the temporary keys and the
private spool sub-directory on the PBX are removed, as at the end of a normal run."""

# ruff: noqa: ASYNC240 - small local files in tests
from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
from pathlib import Path

from tests.selftest.conftest import ESL_PASSWORD, start_selftest


async def test_sigterm_during_the_calls_cleans_up_and_exits_2(esl_sim, record_dir: Path) -> None:
    private_tmp = Path(tempfile.mkdtemp(prefix="callrec-test-tmp-"))
    private_tmp.chmod(0o1777)  # sticky and open like /tmp: the embedded PostgreSQL runs initdb as its own user
    try:
        proc = await start_selftest(
            "--freeswitch", f"127.0.0.1:{esl_sim.port}", "--password", ESL_PASSWORD, tmpdir=private_tmp
        )
        try:
            deadline = time.monotonic() + 90
            # the database is up and the calls are being placed: the moment an impatient admin presses stop
            while not any(c.startswith("originate ") for c in esl_sim.commands):
                assert proc.returncode is None, "the selftest ended before it placed a call"
                assert time.monotonic() < deadline, "no call placed within 90 s"
                await asyncio.sleep(0.05)
            assert list(private_tmp.glob("callrec-selftest-*/pgdata")), "the embedded database is not running"
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        left_behind = list(private_tmp.glob("callrec-selftest-*"))
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    assert proc.returncode == 2, (proc.returncode, out.decode()[-2000:], err.decode()[-2000:])
    assert "terminated" in err.decode()
    assert left_behind == []  # keys + embedded database (stopped, then deleted)
    assert list(record_dir.iterdir()) == []  # the private spool sub-directory on the PBX
