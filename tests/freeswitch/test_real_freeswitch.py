"""Against a real FreeSWITCH 1.10 (skipped unless CALLREC_TEST_FREESWITCH=host:port:password).

Needs on that FreeSWITCH: our include `dialplan/freeswitch/callrec.xml` loaded in context `default`,
an extension `CALLREC_TEST_FREESWITCH_AGENT` (default 2001) in `default` that answers and plays
tone_stream://%(60000,0,880) (the agent), and a spool directory it can write, shared with this
host at the same path (CALLREC_TEST_FREESWITCH_SPOOL, default /tmp/callrec-fs-spool).
"""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg
import pytest

from controller.drivers.freeswitch import FreeSwitchDriver
from controller.policy import PolicySet
from controller.recorder import Recorder
from lab.tones import channel_timeline

TARGET = os.environ.get("CALLREC_TEST_FREESWITCH", "")
pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(not TARGET, reason="no real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password"),
]


async def test_inbound_loopback_call_is_recorded_customer_left(pool: asyncpg.Pool) -> None:
    host, port, password = TARGET.split(":", 2)
    agent = os.environ.get("CALLREC_TEST_FREESWITCH_AGENT", "2001")
    spool = os.environ.get("CALLREC_TEST_FREESWITCH_SPOOL", "/tmp/callrec-fs-spool")
    pbx = "realfs-" + secrets.token_hex(3)
    driver = FreeSwitchDriver(pbx, host, int(port), password, record_dir=spool)
    recorder = Recorder(pool, [driver], PolicySet(), spool_dir=spool)
    await driver.start()
    await recorder.start()
    try:
        for _ in range(100):
            if driver.connected:
                break
            await asyncio.sleep(0.1)
        assert driver.connected, "could not connect and authenticate to the real FreeSWITCH"
        reply = await driver.api(
            "originate {origination_caller_id_number=+15551230001,callrec_direction=inbound,"
            f"callrec_account_number=+15557000100}}loopback/{agent}/default &playback(tone_stream://%(6000,0,440))"
        )
        assert reply.startswith("+OK"), reply
        for _ in range(300):
            row = await pool.fetchrow("SELECT * FROM recordings WHERE pbx = $1", pbx)
            if row is not None and row["state"] == "stopped":
                break
            await asyncio.sleep(0.1)
        assert row is not None and row["state"] == "stopped", "no finished recording within 30 s"
        assert row["direction"] == "inbound" and row["customer_number"] == "+15551230001"
        timeline = channel_timeline(row["spool_files"]["stereo"])
        assert {left for left, _ in timeline if left} == {440.0}
        assert 880.0 in {right for _, right in timeline}
    finally:
        await recorder.close()
        await driver.close()
