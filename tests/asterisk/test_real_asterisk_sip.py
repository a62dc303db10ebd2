"""Against a REAL Asterisk 20 with REAL SIP phones (baresip, lab/softphone/phones.py, chan_sip on
127.0.0.1:5060): the agent's phone keys the phone codes as RFC 4733 telephone-events, through the real
chain (AsteriskDriver → Recorder → journal → FinalizeWorker → stored file), checked by FFT.

Needs CALLREC_TEST_ASTERISK (see test_real_asterisk.py), `baresip` (Debian baresip-core), and on that
Asterisk the lab's SIP users 1001/2001/3001/9001 in a context that routes 1001 → 2001/3001 through our
hook (Gosub(callrec-policy,s,1(inbound,<DID>,main)), Dial(SIP/<agent>,30,b(callrec-agent^s^1))) and
asterisk_conf/features.conf included in features.conf (fixtures asterisk §2, S7/S8).
Phones: 1001 customer 440 Hz, 2001 agent 880 Hz (auto-answer), 3001 second agent 1000 Hz.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import db
from storage.playback import decrypted_audio_file
from tests.asterisk.real_pbx.harness import TARGET, Chain, make_config
from tests.real_pbx_common import one_run_at_a_time
from tests.real_phone_codes import (
    assert_confirm_not_on_customer,
    assert_confirmed_twice,
    assert_paused_by_phone,
    assert_silent_over,
)
from tests.real_phones import Phones

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(not TARGET, reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret"),
    pytest.mark.skipif(not shutil.which("baresip"), reason="needs baresip (apt-get install baresip-core)"),
]


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phones]:
    with Phones.running(tmp_path_factory.mktemp("phones"), "asterisk") as p:
        yield p


@pytest.fixture(autouse=True)
def pbx_turn() -> Iterator[None]:
    """One test at a time on this Asterisk, whichever checkout runs it (see one_run_at_a_time)."""
    with one_run_at_a_time(TARGET):
        yield


@pytest.fixture
async def chain(fresh_db: str, tmp_path: Path) -> AsyncIterator[Chain]:
    pool = await db.create_pool(fresh_db, min_size=1, max_size=6)
    c = Chain(pool, make_config(tmp_path), "ast-sip-" + secrets.token_hex(3))
    try:
        yield c
    finally:
        await c.stop_controller()
        await pool.close()


async def test_sip_agent_phone_codes_pause_and_resume(chain: Chain, phones: Phones) -> None:
    """Issue #14 from a real softphone: the agent's baresip keys *1, 2 s later *2 (RFC 4733). The
    applicationmap matches them on the agent's channel, its Gosub emits CallrecFeature and plays the
    confirmation there; the file is silent over the pause the timeline lists; the confirmation reaches
    the agent's phone (baresip's sndfile dump) and never the customer's channel of the file."""
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    phones.clear()
    await phones.run(phones.dial, "1001", "2001")
    await phones.run(phones.established, "2001", "1001")
    rec = await chain.wait_recording()
    await asyncio.sleep(2)
    await phones.run(phones.send_code, "2001", "*1")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "paused", 5)
    await asyncio.sleep(2)
    await phones.run(phones.send_code, "2001", "*2")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "recording", 5)
    await asyncio.sleep(2.5)
    await phones.run(phones.hangup, "1001")
    customer_events = await phones.run(phones.events_until_closed, "1001")
    row = await chain.finalize(rec["id"])
    start, end = assert_paused_by_phone(row["timeline"], "2001")
    async with decrypted_audio_file(chain.config, dict(row)) as stereo:
        assert_silent_over(stereo, start, end)
        on_right = assert_confirm_not_on_customer(stereo)
    assert on_right == [], on_right  # the Gosub plays it on the agent's channel, outside the bridge's mix
    assert_confirmed_twice(phones.heard("2001"))
    # Asterisk consumes a code's digits as it matches them: none reaches the customer's phone (a '*'
    # followed by a digit that is no code, e.g. *4, does reach it: baresip reports CALL_DTMF_START)
    assert [e for e in customer_events if "DTMF" in str(e.get("type"))] == [], customer_events
