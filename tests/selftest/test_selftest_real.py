"""`callrec selftest` against REAL PBXes (skipped unless they are configured).

  CALLREC_TEST_FREESWITCH=host:port:password      FreeSWITCH ESL; its recordings_dir must be visible here
  CALLREC_TEST_ASTERISK=host:port:user:secret     Asterisk AMI
  CALLREC_TEST_ASTERISK_LAB=user:secret           optional: an AMI user allowed to originate (the selftest
                                                  needs write=originate; the least-privilege callrec user
                                                  of asterisk_conf/manager.conf cannot)

The PBX must have our hook and the selftest dialplan installed (dialplan/SELFTEST.md). For Asterisk
the recordings go to a temporary directory of this test (the PBX must run on this host and be able
to write it, e.g. as root), or to CALLREC_TEST_ASTERISK_RECORD_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.selftest import PLANS
from tests.real_pbx_common import one_run_at_a_time
from tests.selftest.conftest import run_selftest

FREESWITCH = os.environ.get("CALLREC_TEST_FREESWITCH", "")
ASTERISK = os.environ.get("CALLREC_TEST_ASTERISK", "")
ASTERISK_LAB = os.environ.get("CALLREC_TEST_ASTERISK_LAB", "")


def _assert_all_passed(doc: dict, raw: str) -> None:
    assert doc["ok"] is True, "\n".join(doc["failed_checks"]) + "\n" + raw[-3000:]
    assert {c["call"] for c in doc["checks"]} == {p.name for p in PLANS}
    assert all(c["ok"] for c in doc["checks"])
    for call in doc["calls"]:
        assert [r["state"] for r in call["recordings"]] == ["stored"], call["name"]


@pytest.mark.real_freeswitch
@pytest.mark.skipif(not FREESWITCH, reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password")
async def test_selftest_passes_on_real_freeswitch() -> None:
    host, port, password = FREESWITCH.split(":", 2)
    with one_run_at_a_time(FREESWITCH):
        res = await run_selftest("--freeswitch", f"{host}:{port}", "--password", password, "--json")
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]
    _assert_all_passed(res.doc, res.stdout)


@pytest.mark.real_asterisk
@pytest.mark.skipif(not ASTERISK, reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret")
async def test_selftest_passes_on_real_asterisk(tmp_path: Path) -> None:
    host, port, user, secret = ASTERISK.split(":", 3)
    if ASTERISK_LAB:
        user, secret = ASTERISK_LAB.split(":", 1)
    record_dir = os.environ.get("CALLREC_TEST_ASTERISK_RECORD_DIR") or str(tmp_path)
    os.chmod(record_dir, 0o777)
    with one_run_at_a_time(ASTERISK):
        res = await run_selftest(
            "--asterisk", f"{host}:{port}", "--username", user, "--secret", secret, "--record-dir", record_dir, "--json"
        )
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]
    _assert_all_passed(res.doc, res.stdout)
