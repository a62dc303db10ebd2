"""Against a REAL Asterisk 20: every scenario of the issue through the real chain (AsteriskDriver →
Recorder → PostgreSQL journal → FinalizeWorker joining rx/tx → stored age object), checked by FFT on the
decrypted stereo file: customer 440 Hz LEFT, agent 880 Hz RIGHT, transfer target 660 Hz RIGHT.

Needs (skipped otherwise):
  CALLREC_TEST_ASTERISK=host:port:user:secret   the driver's AMI user — the one of asterisk_conf/manager.conf
  CALLREC_TEST_ASTERISK_LAB=user:secret          optional: a user allowed to Originate/BlindTransfer/Atxfer
                                                 (defaults to the driver's user)
and, in that Asterisk's extensions.conf, `#include` of dialplan/asterisk/callrec.conf (the shipped hook)
and tests/asterisk/real_pbx/callrec-test.conf (tone phones and routes). The PBX must be able to write
the test's spool (a temporary directory on the same host), as it does when it runs as root.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from controller.drivers.ami_protocol import header
from controller.drivers.asterisk import AsteriskDriver
from controller.events import LinkUp, Resync
from controller.live import Actor
from storage import db
from tests.asterisk.conftest import EventLog
from tests.asterisk.real_pbx.capture import Capture
from tests.asterisk.real_pbx.harness import (
    AGENT,
    AGENT2,
    CUSTOMER,
    DID,
    DID_EXTEN_HOOK,
    DID_EXTEN_PLAIN,
    EXTERNAL,
    TARGET,
    Chain,
    LabAmi,
    make_config,
    target,
)
from tests.real_pbx_common import one_run_at_a_time, stored_target_frames

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret (see the module docstring)",
    ),
]

RINGBACK = {440.0, 480.0}  # US ringback Asterisk plays to the customer while a transfer target rings


@pytest.fixture(autouse=True)
def pbx_turn() -> Iterator[None]:
    """One test at a time on this Asterisk, whichever checkout runs it (see one_run_at_a_time)."""
    with one_run_at_a_time(TARGET):
        yield


@pytest.fixture(autouse=True)
async def transcript(request: pytest.FixtureRequest, pbx_turn: None) -> AsyncIterator[None]:
    """CALLREC_TEST_ASTERISK_CAPTURE=<dir>: keep what the driver's AMI user received during each test
    (fixture format) — the raw material of the replay tests in the default suite."""
    out = os.environ.get("CALLREC_TEST_ASTERISK_CAPTURE", "")
    if not out:
        yield
        return
    async with Capture(*target()) as cap:
        cap.note(f"test {request.node.name}")
        yield
        await asyncio.sleep(1)
    os.makedirs(out, exist_ok=True)
    await asyncio.to_thread(cap.write, Path(out) / f"{request.node.name}.ami.log")


@pytest.fixture
async def lab() -> AsyncIterator[LabAmi]:
    client = LabAmi()
    await client.connect()
    yield client
    await client.wait_test_calls_gone()
    client.close()


@pytest.fixture
async def chain(fresh_db: str, tmp_path: Path) -> AsyncIterator[Chain]:
    pool = await db.create_pool(fresh_db, min_size=1, max_size=6)
    c = Chain(pool, make_config(tmp_path), "ast-real-" + secrets.token_hex(3))
    try:
        yield c
    finally:
        await c.stop_controller()
        await pool.close()


def lefts(tl: list[tuple[float | None, ...]]) -> set[float | None]:
    return {row[0] for row in tl}


def rights(tl: list[tuple[float | None, ...]]) -> list[float | None]:
    """Right-channel tones in order, consecutive repeats collapsed."""
    out: list[float | None] = []
    for row in tl:
        if not out or out[-1] != row[1]:
            out.append(row[1])
    return out


async def events_of(pool: asyncpg.Pool, rec_id: object) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM recording_events WHERE recording_id = $1 ORDER BY id", rec_id)
    return [r["kind"] for r in rows]


# ---- link ----------------------------------------------------------------------------------------


async def test_driver_logs_in_and_resyncs_on_real_asterisk() -> None:
    host, port, user, secret = target()
    d = AsteriskDriver("real", host, port, user, secret)
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


# ---- calls ---------------------------------------------------------------------------------------


async def test_inbound_with_hook_customer_hangs_up(chain: Chain, lab: LabAmi) -> None:
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=6)
    rec = await chain.wait_recording()
    assert rec["customer_leg"] == cust
    row = await chain.finalize(rec["id"])
    assert row["direction"] == "inbound"
    assert row["account_number"] == DID  # from the hook
    assert row["customer_number"] == CUSTOMER
    assert row["agent"] == AGENT
    assert row["stop_reason"] == "hangup"
    assert row["policy"]["sources"]  # resolved, with where each value came from
    assert await events_of(chain.pool, rec["id"]) == ["start", "stop"]
    tl = await chain.stored_timeline(row)
    assert lefts(tl) == {440.0}, "customer must be LEFT for the whole recording"
    assert rights(tl) == [880.0], "agent must be RIGHT for the whole recording"
    assert 4000 <= len(tl) * 250 <= 7000  # bridged part of a 6 s call (agent rings 1 s)


async def test_inbound_without_hook_is_inferred_and_agent_hangs_up(chain: Chain, lab: LabAmi) -> None:
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_PLAIN, cust_secs=30, agent_secs=4)
    rec = await chain.wait_recording()
    assert rec["customer_leg"] == cust
    await lab.gone(cust)  # the agent hung up, the customer's Dial() ended
    row = await chain.finalize(rec["id"])
    assert row["direction"] == "inbound"
    assert row["customer_number"] == CUSTOMER
    assert row["account_number"] == DID  # the dialled DID (the route's extension), in E.164
    assert row["agent"] == AGENT
    assert row["stop_reason"] == "hangup"
    tl = await chain.stored_timeline(row)
    assert lefts(tl) == {440.0}
    assert rights(tl) == [880.0]
    assert len(tl) * 250 <= 6000  # ended with the agent (4 s), not with the customer (30 s)


async def test_outbound_with_hook_records_the_dialled_customer(chain: Chain, lab: LabAmi) -> None:
    await chain.start_controller()
    agent = await lab.outbound(EXTERNAL, cust_secs=5)
    rec = await chain.wait_recording()
    assert rec["customer_leg"] != agent  # the dialled external leg is the customer's
    row = await chain.finalize(rec["id"])
    assert row["direction"] == "outbound"
    assert row["customer_number"] == EXTERNAL
    assert row["account_number"] == DID
    assert row["agent"] == AGENT
    tl = await chain.stored_timeline(row)
    assert lefts(tl) == {440.0}
    assert rights(tl) == [880.0]


async def test_pause_is_silence_in_the_stored_timeline(chain: Chain, lab: LabAmi) -> None:
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    await lab.inbound(DID_EXTEN_HOOK, cust_secs=9)
    rec = await chain.wait_recording()
    await asyncio.sleep(2)
    call = chain.live_call()
    assert chain.recorder is not None
    await chain.recorder.pause(call["id"], Actor("alice", "agent", AGENT))
    await asyncio.sleep(2)
    await chain.recorder.resume(call["id"], Actor("alice", "agent", AGENT))
    row = await chain.finalize(rec["id"])
    pauses = row["timeline"]["pauses"]
    assert len(pauses) == 1 and pauses[0]["by"] == f"agent:{AGENT}"
    assert await events_of(chain.pool, rec["id"]) == ["start", "pause", "resume", "stop"]
    tl = await chain.stored_timeline(row)
    # talk, then silence on BOTH channels, then talk again: the timeline is kept, nothing cut
    assert [row for i, row in enumerate(tl) if i == 0 or tl[i - 1] != row] == [
        (440.0, 880.0),
        (None, None),
        (440.0, 880.0),
    ] or _with_edges(tl)
    silent_ms = sum(250 for r in tl if r == (None, None))
    assert 1500 <= silent_ms <= 2500
    start, end = pauses[0]["start_ms"], pauses[0]["end_ms"]
    assert 1500 <= end - start <= 2500
    first_silent = next(i for i, r in enumerate(tl) if r == (None, None)) * 250
    assert abs(first_silent - start) <= 500  # the journal's pause offset matches the audio


def _with_edges(tl: list[tuple[float | None, ...]]) -> bool:
    """Same shape, allowing one mixed 250 ms window at each edge of the pause."""
    collapsed = [r for i, r in enumerate(tl) if i == 0 or tl[i - 1] != r]
    core = [r for r in collapsed if r in ((440.0, 880.0), (None, None))]
    return core == [(440.0, 880.0), (None, None), (440.0, 880.0)] and len(collapsed) - len(core) <= 2


async def _blind_transfer(chain: Chain, lab: LabAmi, *, continue_on_external: bool) -> tuple[asyncpg.Record, list]:
    chain.settings = {"continue_on_external_transfer": continue_on_external}
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=10)
    rec = await chain.wait_recording()
    agent_channel = lab.dialed_channel(cust, "Local/2001@")
    await asyncio.sleep(2.5)
    await lab.checked(
        {"Action": "BlindTransfer", "Channel": agent_channel, "Exten": EXTERNAL, "Context": "callrec-test-internal"}
    )
    row = await chain.finalize(rec["id"])
    return row, await chain.stored_timeline(row)


async def test_blind_transfer_to_external_stops_when_rule_says_so(chain: Chain, lab: LabAmi) -> None:
    row, tl = await _blind_transfer(chain, lab, continue_on_external=False)
    assert row["stop_reason"] == "external_transfer"
    (xfer,) = row["timeline"]["transfers"]
    assert (xfer["kind"], xfer["target"], xfer["target_class"], xfer["stopped_recording"]) == (
        "blind",
        EXTERNAL,
        "external",
        True,
    )
    assert lefts(tl) == {440.0}
    assert rights(tl) == [880.0], "nothing of the external party may be recorded"
    assert len(tl) * 250 <= 3500  # the file ends at the transfer (2.5 s), not with the call (10 s)


async def test_blind_transfer_to_external_records_on_when_allowed(chain: Chain, lab: LabAmi) -> None:
    row, tl = await _blind_transfer(chain, lab, continue_on_external=True)
    assert row["stop_reason"] == "hangup"
    (xfer,) = row["timeline"]["transfers"]
    assert (xfer["kind"], xfer["target"], xfer["target_class"], xfer["stopped_recording"]) == (
        "blind",
        EXTERNAL,
        "external",
        False,
    )
    segs = row["timeline"]["segments"]
    assert [s["party"] for s in segs] == [AGENT, EXTERNAL]
    seq = [r for r in rights(tl) if r is not None and r not in RINGBACK]
    assert seq == [880.0, 660.0], rights(tl)
    assert lefts(tl) <= {440.0, None}  # (a Local customer channel is silent while the target rings)
    assert len(tl) * 250 >= 7000


async def _redirect(chain: Chain, lab: LabAmi, *, continue_on_external: bool) -> tuple[asyncpg.Record, list[bool]]:
    """A CTI application moves the customer's channel to an external number with AMI Redirect: Asterisk
    sends no transfer event, only BridgeLeave, the agent's hangup and the customer's new Dial."""
    chain.settings = {"continue_on_external_transfer": continue_on_external}
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=10)
    rec = await chain.wait_recording()
    created = await lab.wait_event(lambda m: header(m, "Event") == "Newchannel" and header(m, "Uniqueid") == cust)
    await asyncio.sleep(2.5)
    await lab.checked(
        {
            "Action": "Redirect",
            "Channel": header(created, "Channel"),
            "Exten": EXTERNAL,
            "Context": "callrec-test-internal",
            "Priority": "1",
        }
    )
    row = await chain.finalize(rec["id"])
    return row, await stored_target_frames(chain.config, row)


async def test_redirect_to_external_records_no_frame_of_it_when_rule_is_off(chain: Chain, lab: LabAmi) -> None:
    row, target_frames = await _redirect(chain, lab, continue_on_external=False)
    assert row["stop_reason"] == "external_transfer"
    assert not any(target_frames), f"external party in 20 ms frames {[i for i, f in enumerate(target_frames) if f]}"
    (mute,) = [p for p in row["timeline"]["pauses"] if p.get("kind") == "transfer_mute"]
    assert (mute["outcome"], mute["next_party"], mute["next_class"]) == ("stopped", EXTERNAL, "external")
    assert "transfer_mute" in await events_of(chain.pool, row["id"])


async def test_redirect_to_external_records_it_from_its_first_frame_when_allowed(chain: Chain, lab: LabAmi) -> None:
    row, target_frames = await _redirect(chain, lab, continue_on_external=True)
    assert row["stop_reason"] == "hangup"
    tl = row["timeline"]
    (mute,) = [p for p in tl["pauses"] if p.get("kind") == "transfer_mute"]
    segs = tl["segments"]
    assert [s["party"] for s in segs] == [AGENT, EXTERNAL]
    # the mute was lifted at the customer's Dial, before the target answered (1 s of ringing)
    assert mute["outcome"] == "unmuted" and mute["end_ms"] < segs[1]["start_ms"], (mute, segs)
    first = target_frames.index(True)
    talk = target_frames[first : first + 150]  # 3 s of the target after it answered
    gaps = [i for i, f in enumerate(talk) if not f]
    assert len(talk) == 150 and not [g for g in gaps if g < 10], f"its first word (200 ms) is cut: {gaps}"
    assert len(gaps) <= 3, f"frames without the target after its first ({first}): {gaps}"  # media jitter only
    assert abs(first * 20 - segs[1]["start_ms"]) <= 200, (first * 20, segs[1]["start_ms"])


async def test_attended_transfer_to_second_agent(chain: Chain, lab: LabAmi) -> None:
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=12)
    rec = await chain.wait_recording()
    agent_channel = lab.dialed_channel(cust, "Local/2001@")
    await asyncio.sleep(2)
    await lab.checked(
        {"Action": "Atxfer", "Channel": agent_channel, "Exten": AGENT2, "Context": "callrec-test-internal"}
    )
    # consultation answered: the second agent's phone is bridged with the first agent
    await lab.wait_event(
        lambda m: m.get("Event") == "BridgeEnter" and str(m.get("Channel", "")).startswith(f"Local/{AGENT2}@"),
        within=10,
    )
    await asyncio.sleep(1)
    await lab.checked({"Action": "Hangup", "Channel": agent_channel})  # the first agent completes the transfer
    row = await chain.finalize(rec["id"])
    assert row["stop_reason"] == "hangup"
    xfers = row["timeline"]["transfers"]
    assert [(x["kind"], x["target_class"], x["stopped_recording"]) for x in xfers] == [("attended", "internal", False)]
    assert xfers[0]["target"] == AGENT2
    assert [s["party"] for s in row["timeline"]["segments"]] == [AGENT, AGENT2]
    tl = await chain.stored_timeline(row)
    seq = [r for r in rights(tl) if r is not None]
    assert seq[0] == 880.0 and seq[-1] == 660.0, rights(tl)
    assert lefts(tl) <= {440.0, None}


async def test_controller_restart_mid_call_adopts_the_recording_once(chain: Chain, lab: LabAmi) -> None:
    await chain.start_controller()
    await lab.inbound(DID_EXTEN_HOOK, cust_secs=9)
    rec = await chain.wait_recording()
    await asyncio.sleep(2)
    await chain.stop_controller()  # the PBX keeps recording
    await asyncio.sleep(1)
    await chain.start_controller()
    await chain.wait(lambda: chain.recorder is not None and chain.recorder.live_calls(), 10)
    row = await chain.finalize(rec["id"])
    assert len(await chain.recordings()) == 1, "adopted, not recorded twice"
    assert row["stop_reason"] == "hangup"
    tl = await chain.stored_timeline(row)
    assert lefts(tl) == {440.0}
    assert rights(tl) == [880.0]
    assert len(tl) * 250 >= 7000  # one continuous file across the restart


# ---- the agent's phone codes (asterisk_conf/features.conf + the hook's [callrec-feature]) ------------
# Needs asterisk_conf/features.conf in the PBX's features.conf. The agent's side "dials" *1 / *2 with
# AMI PlayDTMF "Receive: true" on the agent's PBX-side channel (DTMF as if its phone sent it), so the
# bridge matches the applicationmap code the hook offered that channel through b(callrec-agent^s^1).

DID_EXTEN_CODES = "7000150"  # callrec-test-inbound: the hook, then Dial agent 2001 with b(callrec-agent^s^1)


async def dial(lab: LabAmi, channel: str, digits: str) -> None:
    for d in digits:
        await lab.checked({"Action": "PlayDTMF", "Channel": channel, "Digit": d, "Duration": "120", "Receive": "true"})
        await asyncio.sleep(0.2)


async def test_agent_star1_star2_pause_and_resume_on_a_real_asterisk(chain: Chain, lab: LabAmi) -> None:
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    uid = await lab.inbound(DID_EXTEN_CODES, cust_secs=10)
    rec = await chain.wait_recording()
    await lab.wait_bridged(uid)
    agent = lab.dialed_channel(uid, "Local/2001@")
    await asyncio.sleep(2)
    await dial(lab, agent, "*1")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "paused", 5)
    await asyncio.sleep(2.5)  # (the Gosub has played the confirmation to the agent's channel by now)
    await dial(lab, agent, "*2")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "recording", 5)
    row = await chain.finalize(rec["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["by"], pause["how"], pause["resumed_how"]) == (f"agent:{AGENT}", "phone", "phone")
    assert await events_of(chain.pool, rec["id"]) == ["start", "pause", "resume", "stop"]
    tl = await chain.stored_timeline(row)
    start, end = pause["start_ms"] // 250 + 2, pause["end_ms"] // 250 - 1
    assert end - start >= 4 and all(r == (None, None) for r in tl[start:end]), tl
    assert (440.0, 880.0) in tl[end + 2 :]
    assert not any(1400.0 in r for r in tl), "the confirmation tone must not be recorded"


async def test_agent_star1_refused_where_agent_pause_is_not_allowed_on_a_real_asterisk(
    chain: Chain, lab: LabAmi
) -> None:
    chain.settings = {"agent_pause_allowed": False}
    await chain.start_controller()
    uid = await lab.inbound(DID_EXTEN_CODES, cust_secs=6)
    rec = await chain.wait_recording()
    await lab.wait_bridged(uid)
    await asyncio.sleep(1.5)
    agent = lab.dialed_channel(uid, "Local/2001@")
    await dial(lab, agent, "*1")

    async def answer() -> str:
        reply = await lab.action({"Action": "Getvar", "Channel": agent, "Variable": "CALLREC_FEATURE_RESULT"})
        return header(reply, "Value")

    assert await chain.wait(answer, 5) == "refused"  # the Gosub got the answer and played the refusal
    row = await chain.finalize(rec["id"])
    assert row["timeline"]["pauses"] == []


async def test_secure_pause_warns_through_the_hidden_code_and_resumes_on_a_real_asterisk(
    chain: Chain, lab: LabAmi
) -> None:
    """pause_max_seconds = 3 with a 1 s warning lead: the driver plays the warning to the agent's
    channel only (Setvar CALLREC_TONE + PlayDTMF Receive of the hidden code D, whose Gosub plays it),
    then the recording resumes by itself."""
    chain.settings = {"agent_pause_allowed": True, "pause_max_seconds": 3}
    await chain.start_controller()
    assert chain.recorder is not None
    chain.recorder.warning_lead_s = 1.0
    uid = await lab.inbound(DID_EXTEN_CODES, cust_secs=9)
    rec = await chain.wait_recording()
    await lab.wait_bridged(uid)
    agent = lab.dialed_channel(uid, "Local/2001@")
    await asyncio.sleep(1.5)
    await dial(lab, agent, "*1")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "paused", 5)

    async def warned() -> bool:
        reply = await lab.action({"Action": "Getvar", "Channel": agent, "Variable": "CALLREC_TONE"})
        return header(reply, "Value").startswith("!1800/")

    await chain.wait(warned, 5)
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "recording", 5)
    row = await chain.finalize(rec["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["resumed_by"], pause["resumed_how"]) == ("system", "auto_resume")
    assert 2500 <= pause["end_ms"] - pause["start_ms"] <= 4500
    tl = await chain.stored_timeline(row)
    assert not any(1800.0 in r for r in tl), "the warning must not be recorded"
    assert (440.0, 880.0) in tl[pause["end_ms"] // 250 + 2 :]


async def test_announcement_beep_reaches_the_customer_at_the_start_on_a_real_asterisk(
    chain: Chain, lab: LabAmi
) -> None:
    """announcement = beep: the hidden code D "received" on the customer's channel (its DYNAMIC_FEATURES
    from the hook) runs the Gosub that plays the beep there; MixMonitor's t() on that channel holds
    what the customer was sent, so the stored file has the 1000 Hz beep at the start, right side."""
    chain.settings = {"announcement": "beep"}
    await chain.start_controller()
    await lab.inbound(DID_EXTEN_CODES, cust_secs=5)
    rec = await chain.wait_recording()
    row = await chain.finalize(rec["id"])
    (ann,) = row["timeline"]["announcements"]
    assert (ann["kind"], ann["why"]) == ("beep", "start") and ann["at_ms"] < 1000
    tl = await chain.stored_timeline(row)
    assert any(r[1] == 1000.0 for r in tl[:6]), tl[:8]
    assert not any(r[0] == 1000.0 for r in tl)


async def test_agent_star3_records_on_demand_on_a_real_asterisk(chain: Chain, lab: LabAmi) -> None:
    """record_inbound off, agent_record_on_demand on: nothing is recorded until the agent's *3; from
    then on MixMonitor records the call, the decision's source naming the agent."""
    chain.settings = {"record_inbound": False, "agent_record_on_demand": True}
    await chain.start_controller()
    uid = await lab.inbound(DID_EXTEN_CODES, cust_secs=7)
    await lab.wait_bridged(uid)
    await asyncio.sleep(2)
    assert await chain.recordings() == []
    await dial(lab, lab.dialed_channel(uid, "Local/2001@"), "*3")
    rec = await chain.wait_recording()
    row = await chain.finalize(rec["id"])
    assert row["policy"]["sources"]["record"].startswith("on_demand:")
    tl = await chain.stored_timeline(row)
    assert len(tl) * 250 <= 5500  # from the code on, not from the answer
    assert 440.0 in {r[0] for r in tl} and 880.0 in {r[1] for r in tl}


async def test_agent_star1_on_an_outbound_call_on_a_real_asterisk(chain: Chain, lab: LabAmi) -> None:
    """Outbound, the agent's channel runs the hook itself (the route's channel, ChannelId of the
    Originate), which offers it the codes (DYNAMIC_FEATURES); *1 on it pauses the customer's MixMonitor."""
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    uid = await lab.outbound(EXTERNAL, cust_secs=6)
    rec = await chain.wait_recording()
    created = await lab.wait_event(lambda m: header(m, "Event") == "Newchannel" and header(m, "Uniqueid") == uid)
    await asyncio.sleep(1.5)
    await dial(lab, header(created, "Channel"), "*1")
    await chain.wait(lambda: chain.live_call()["recording"]["state"] == "paused", 5)
    row = await chain.finalize(rec["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["by"], pause["how"]) == (f"agent:{AGENT}", "phone")
