"""Against a REAL FreeSWITCH with REAL SIP phones (baresip, lab/softphone/phones.py): the production call
shapes — sofia legs, and transfers the agent's own phone makes with SIP REFER (no transfer event; the
signals are the agent leg's hangup and the customer leg's next bridge) — through the real chain
(FreeSwitchDriver → Recorder → journal → FinalizeWorker → stored file), checked by FFT.

Needs CALLREC_TEST_FREESWITCH (see test_real_freeswitch.py), `baresip` (Debian baresip-core), and on
that FreeSWITCH the lab's SIP profile on 127.0.0.1:5080 with users 1001/2001/3001/9001 and a context
routing 2001/3001/9001 to those users with our hook included (fixtures freeswitch-sip NOTES §2).
Phones: 1001 customer 440 Hz, 2001 agent 880 Hz (auto-answer), 3001 second agent 1000 Hz
(auto-answer), 9001 external party 660 Hz (answers after ringing).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.numbering import NumberingPlan
from controller.policy import Account, PolicySet, settings_from_dict
from storage import db
from storage.playback import decrypted_audio_file
from tests.freeswitch.real_pbx.harness import Chain, LabEsl, make_config
from tests.real_pbx_common import one_run_at_a_time, stored_target_frames
from tests.real_phone_codes import (
    assert_confirm_not_on_customer,
    assert_confirmed_twice,
    assert_paused_by_phone,
    assert_silent_over,
)
from tests.real_phones import Phones

TARGET = os.environ.get("CALLREC_TEST_FREESWITCH", "")
pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(not TARGET, reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password"),
    pytest.mark.skipif(not shutil.which("baresip"), reason="needs baresip (apt-get install baresip-core)"),
]
PLAN = NumberingPlan(internal=(r"^[23]\d{3}$",))  # 1001 (customer) and 9001 (PSTN stand-in) are external


def target() -> tuple[str, int, str]:
    host, port, password = TARGET.split(":", 2)
    return host, int(port), password


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phones]:
    with Phones.running(tmp_path_factory.mktemp("phones")) as p:
        yield p


@pytest.fixture(autouse=True)
def pbx_turn() -> Iterator[None]:
    """One test at a time on this FreeSWITCH, whichever checkout runs it (see one_run_at_a_time)."""
    with one_run_at_a_time(TARGET):
        yield


@pytest.fixture
async def lab() -> AsyncIterator[LabEsl]:
    client = LabEsl(*target())
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def chain(fresh_db: str, tmp_path: Path) -> AsyncIterator[Chain]:
    pool = await db.create_pool(fresh_db, min_size=1, max_size=6)
    c = Chain(pool, make_config(tmp_path), "fs-sip-" + secrets.token_hex(3), target())
    try:
        yield c
    finally:
        await c.stop_controller()
        await pool.close()


def use_policy(chain: Chain, **settings: Any) -> None:
    chain.policy_set = PolicySet(accounts={"main": Account("main", settings_from_dict(settings), PLAN)})


async def customer_leg(lab: LabEsl, caller: str) -> str:
    """The sofia leg the PBX bridged for the call placed by `caller` (the Bridge-A of its first bridge)."""
    h = await lab.wait_event(
        lambda e: (
            e.get("Event-Name") == "CHANNEL_BRIDGE"
            and e.get("Caller-Caller-ID-Number") == caller
            and e.get("Channel-Name", "").startswith("sofia/")
        ),
        20,
    )
    return h["Bridge-A-Unique-ID"]


def collapse(seq: list[float | None]) -> list[float]:
    """Tones in order: consecutive repeats, one-window blips and silence dropped."""
    out: list[float] = []
    for i, x in enumerate(seq):
        steady = i + 1 == len(seq) or seq[i + 1] == x
        if x is not None and steady and (not out or out[-1] != x):
            out.append(x)
    return out


async def test_sip_inbound_customer_left_agent_right(chain: Chain, lab: LabEsl, phones: Phones) -> None:
    use_policy(chain)
    await chain.start_controller()
    phones.clear()
    await phones.run(phones.dial, "1001", "2001")
    await phones.run(phones.established, "2001", "1001")
    cust = await customer_leg(lab, "1001")
    row = await chain.recording_of(cust)
    assert (row["direction"], row["customer_number"], row["agent"]) == ("inbound", "1001", "2001")
    await asyncio.sleep(3)
    await phones.run(phones.hangup, "1001")
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    tl = await chain.stored_timeline(row)
    assert collapse([r[0] for r in tl]) == [440.0] and collapse([r[1] for r in tl]) == [880.0]


async def test_sip_outbound_customer_left_agent_right(chain: Chain, lab: LabEsl, phones: Phones) -> None:
    use_policy(chain)
    await chain.start_controller()
    phones.clear()
    await phones.run(phones.dial, "2001", "9001")
    await phones.run(phones.ring_then_accept, "9001")
    await phones.run(phones.established, "2001", "9001")
    h = await lab.wait_event(
        lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE" and e.get("Caller-Caller-ID-Number") == "2001", 20
    )
    cust = h["Bridge-B-Unique-ID"]  # outbound: the customer-facing (outbound sofia) leg
    row = await chain.recording_of(cust)
    assert (row["direction"], row["customer_number"], row["agent"]) == ("outbound", "9001", "2001")
    await asyncio.sleep(3)
    await phones.run(phones.hangup, "2001")
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    tl = await chain.stored_timeline(row)
    assert collapse([r[0] for r in tl]) == [660.0] and collapse([r[1] for r in tl]) == [880.0]


async def refer(chain: Chain, lab: LabEsl, phones: Phones, to: str, **settings: Any) -> tuple[Any, list]:
    use_policy(chain, **settings)
    await chain.start_controller()
    phones.clear()
    await phones.run(phones.dial, "1001", "2001")
    await phones.run(phones.established, "2001", "1001")
    cust = await customer_leg(lab, "1001")
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    await phones.run(phones.transfer, "2001", to)  # the agent's phone sends REFER
    if to == "9001":
        await phones.run(phones.ring_then_accept, "9001")
    await phones.run(phones.established, to)
    await asyncio.sleep(3)
    await phones.run(phones.hangup, "1001")
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    return row, await chain.stored_timeline(row)


async def test_sip_refer_blind_to_external_rule_off_ends_at_the_transfer(
    chain: Chain, lab: LabEsl, phones: Phones
) -> None:
    row, tl = await refer(chain, lab, phones, "9001", continue_on_external_transfer=False)
    assert row["stop_reason"] == "external_transfer"
    t = row["timeline"]
    assert [(x["kind"], x["target"], x["target_class"], x["stopped_recording"]) for x in t["transfers"]] == [
        ("blind", "9001", "external", True)
    ]
    assert collapse([r[1] for r in tl]) == [880.0]
    assert len(tl) * 250 <= t["transfers"][0]["at_ms"] + 1000
    target_frames = await stored_target_frames(chain.config, row)  # issue #13 §1: not one 20 ms frame
    assert not any(target_frames), [i for i, f in enumerate(target_frames) if f]


async def test_sip_refer_blind_to_external_rule_on_records_on(chain: Chain, lab: LabEsl, phones: Phones) -> None:
    row, tl = await refer(chain, lab, phones, "9001", continue_on_external_transfer=True)
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    assert [(s["party"], s["class"]) for s in t["segments"]] == [("2001", "internal"), ("9001", "external")]
    assert collapse([r[1] for r in tl]) == [880.0, 660.0]
    assert collapse([r[0] for r in tl]) == [440.0]


async def test_sip_refer_blind_to_internal_continues(chain: Chain, lab: LabEsl, phones: Phones) -> None:
    row, tl = await refer(chain, lab, phones, "3001", continue_on_external_transfer=False)
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    assert [(s["party"], s["class"]) for s in t["segments"]] == [("2001", "internal"), ("3001", "internal")]
    assert [(x["kind"], x["target"], x["stopped_recording"]) for x in t["transfers"]] == [("blind", "3001", False)]
    assert collapse([r[1] for r in tl]) == [880.0, 1000.0]


async def test_sip_agent_phone_codes_pause_and_resume(chain: Chain, lab: LabEsl, phones: Phones) -> None:
    """Issue #14 from a real softphone: the agent's baresip keys *1, 2 s later *2 (RFC 4733
    telephone-events). The hook's bind_meta_app on the agent's leg fires callrec::feature; the file is
    silent over the pause the timeline lists; the confirmation reaches the agent's phone (what it
    decoded, baresip's sndfile dump) and never the file; the customer's phone receives no digit."""
    use_policy(chain, agent_pause_allowed=True)
    await chain.start_controller()
    phones.clear()
    await phones.run(phones.dial, "1001", "2001")
    await phones.run(phones.established, "2001", "1001")
    cust = await customer_leg(lab, "1001")
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    await phones.run(phones.send_code, "2001", "*1")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "paused", 5)
    await asyncio.sleep(2)
    await phones.run(phones.send_code, "2001", "*2")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "recording", 5)
    await asyncio.sleep(2.5)
    await phones.run(phones.hangup, "1001")
    await lab.gone(cust)
    customer_events = await phones.run(phones.events_until_closed, "1001")
    row = await chain.finalize(row["id"])
    start, end = assert_paused_by_phone(row["timeline"], "2001")
    async with decrypted_audio_file(chain.config, dict(row)) as stereo:
        assert_silent_over(stereo, start, end)
        on_right = assert_confirm_not_on_customer(stereo)
    assert on_right == [], on_right  # played to the agent's leg only: not in what the customer hears
    assert_confirmed_twice(phones.heard("2001"))
    # FreeSWITCH swallows the meta digits (bind_meta_app): none reaches the customer's phone (nor does
    # a '*' followed by a digit that is no code; the customer's own digits do reach the agent's phone)
    assert [e for e in customer_events if "DTMF" in str(e.get("type"))] == [], customer_events
