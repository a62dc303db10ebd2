"""The simulator's call-control API, used the way a controller or an admin script would: a blind
transfer by `uuid_transfer`, `originate`, `show channels as json`, errors for unknown channels."""

from __future__ import annotations

import json

import pytest

from controller.drivers.base import PbxCommandError
from lab import scenarios as sc
from lab.esl_sim import CallHandle
from lab.tones import channel_timeline

from .conftest import Harness


async def test_uuid_transfer_of_a_recorded_call_to_an_external_number(harness: Harness) -> None:
    driver = harness.driver
    assert driver is not None
    scenario = sc.get("inbound")
    handle = CallHandle(harness.sim, scenario)
    for step in scenario.steps[:3]:
        await handle.do(step, None, True)
    await handle.do(sc.Talk(1000), None, False)
    cust = handle.customer
    assert (await driver.api(f"uuid_transfer {cust.uuid} +15557654321 XML public")).startswith("+OK")
    await harness.wait(lambda: handle.legs["target"].bridged_to == cust.uuid if "target" in handle.legs else False)
    await handle.do(sc.Talk(1000), None, False)
    await handle.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    rec = (await harness.recordings())[0]
    tl = rec["timeline"]
    assert [(s["party"], s["class"]) for s in tl["segments"]] == [("2001", "internal"), ("+15557654321", "external")]
    assert [(t["kind"], t["target"]) for t in tl["transfers"]] == [("blind", "+15557654321")]
    rights = [r for _, r in channel_timeline(rec["spool_files"]["stereo"]) if r is not None]
    assert rights[0] == 880.0 and rights[-1] == 660.0


async def test_uuid_bridge_of_a_recorded_call_to_a_consulted_agent_is_an_attended_transfer(harness: Harness) -> None:
    """A CTI client completes a warm transfer: a second leg to agent 2003 (the consultation), then
    uuid_bridge joins the customer to it and the first agent is hung up. The timeline calls it an
    attended transfer to 2003 (real capture S4's shape), and 2003 is on the right from then on."""
    driver = harness.driver
    assert driver is not None
    scenario = sc.get("inbound")
    handle = CallHandle(harness.sim, scenario)
    for step in scenario.steps[:3]:
        await handle.do(step, None, True)
    await handle.do(sc.Talk(1000), None, False)
    consult = (await driver.api("originate {origination_caller_id_number=2001}sofia/internal/2003 &park()")).split()[1]
    harness.sim.channels[consult].tone = sc.TARGET_INTERNAL.tone_hz
    cust = handle.customer
    assert (await driver.api(f"uuid_bridge {cust.uuid} {consult}")).startswith("+OK")
    await handle.do(sc.Talk(1000), None, False)
    await handle.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    rec = (await harness.recordings())[0]
    tl = rec["timeline"]
    assert [(t["kind"], t["target"]) for t in tl["transfers"]] == [("attended", "2003")]
    assert [s["party"] for s in tl["segments"]] == ["2001", "2003"]
    rights = [r for _, r in channel_timeline(rec["spool_files"]["stereo"]) if r is not None]
    assert rights[0] == 880.0 and rights[-1] == 660.0


async def test_originate_show_channels_and_unknown_channel(harness: Harness) -> None:
    driver = harness.driver
    assert driver is not None
    reply = await driver.api(
        "originate {origination_caller_id_number=+15557000100}sofia/gateway/trunk/+15551239999 &park()"
    )
    uuid = reply.split()[1]
    rows = json.loads(await driver.api("show channels as json"))["rows"]
    assert [(r["uuid"], r["dest"], r["callstate"]) for r in rows] == [(uuid, "+15551239999", "ACTIVE")]
    live = await driver.live_channels()
    assert [c.leg for c in live] == [uuid] and live[0].answered
    with pytest.raises(PbxCommandError, match="No such channel"):
        await driver.api("uuid_record no-such-uuid start /tmp/x.wav")
