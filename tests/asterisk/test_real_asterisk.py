"""Against a real Asterisk 20 (CALLREC_TEST_ASTERISK=host:port:user:secret, manager.conf and the
dialplan include of this repository loaded). Skipped here: no Asterisk is built in this workspace."""

from __future__ import annotations

import os

import pytest

from controller.drivers.asterisk import AsteriskDriver
from controller.events import LinkUp, Resync
from tests.asterisk.conftest import EventLog

TARGET = os.environ.get("CALLREC_TEST_ASTERISK", "")
pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(not TARGET, reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret"),
]


async def test_driver_logs_in_and_resyncs_on_real_asterisk() -> None:
    host, port, user, secret = TARGET.split(":", 3)
    d = AsteriskDriver("real", host, int(port), user, secret)
    log = EventLog(d)
    await d.start()
    try:
        await log.wait_for(LinkUp, within=10)
        resync = await log.wait_for(Resync, within=10)
        assert isinstance(resync.channels, tuple)
        assert d.connected
    finally:
        log.close()
        await d.close()
