"""Against a REAL FreeSWITCH 1.10: every scenario of the issue through the real chain (FreeSwitchDriver →
Recorder → PostgreSQL journal → FinalizeWorker → stored age object), checked by FFT on the decrypted
stereo file: customer 440 Hz LEFT, agent 880 Hz RIGHT, transfer target 660 Hz RIGHT.

Needs (skipped otherwise):
  CALLREC_TEST_FREESWITCH=host:port:password   the ESL of a FreeSWITCH on THIS host (it writes the
                                               test's spool, a temporary directory, as it does as root)
and in that FreeSWITCH the test routes tests/freeswitch/real_pbx/callrec_test.xml (which include our
shipped hook dialplan/freeswitch/callrec.xml; install notes at its top), then `reloadxml`.
CALLREC_TEST_FREESWITCH_CAPTURE=<dir> keeps each test's ESL transcript (fixture format).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from controller.drivers.freeswitch import FreeSwitchDriver
from controller.events import LinkUp, Resync
from controller.live import Actor
from controller.policy import Account, NumberOverride, PolicySet, settings_from_dict
from controller.tones import TONES
from storage import db
from tests.freeswitch.real_pbx.harness import (
    ACCOUNT_NUMBER,
    AGENT,
    AGENT2,
    CUSTOMER,
    DID,
    DID_NO_ANSWER,
    EXTERNAL,
    OUTBOUND_CUSTOMER,
    PHONES,
    ROUTES,
    Chain,
    LabEsl,
    make_config,
)
from tests.real_pbx_common import one_run_at_a_time, stored_target_frames

TARGET = os.environ.get("CALLREC_TEST_FREESWITCH", "")
pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password (see the module docstring)",
    ),
]


def target() -> tuple[str, int, str]:
    host, port, password = TARGET.split(":", 2)
    return host, int(port), password


@pytest.fixture(autouse=True)
def pbx_turn() -> Iterator[None]:
    """One test at a time on this FreeSWITCH, whichever checkout runs it (see one_run_at_a_time)."""
    with one_run_at_a_time(TARGET):
        yield


@pytest.fixture
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[LabEsl]:
    client = LabEsl(*target(), title=f"{request.node.name}: real FreeSWITCH, loopback test routes")
    await client.connect()
    yield client
    await asyncio.sleep(0.5)
    await client.close()
    out = os.environ.get("CALLREC_TEST_FREESWITCH_CAPTURE", "")
    if out:
        os.makedirs(out, exist_ok=True)
        client.write_transcript(Path(out) / f"{re.sub(r'[^A-Za-z0-9_]', '_', request.node.name)}.esl.log")


@pytest.fixture
async def chain(fresh_db: str, tmp_path: Path) -> AsyncIterator[Chain]:
    pool = await db.create_pool(fresh_db, min_size=1, max_size=6)
    c = Chain(pool, make_config(tmp_path), "fs-real-" + secrets.token_hex(3), target())
    try:
        yield c
    finally:
        await c.stop_controller()
        await pool.close()


def lefts(tl: list[tuple[float | None, ...]]) -> set[float | None]:
    return {row[0] for row in tl}


def rights(tl: list[tuple[float | None, ...]]) -> list[float | None]:
    """Right-channel tones in order, consecutive repeats and one-window blips collapsed."""
    out: list[float | None] = []
    for i, row in enumerate(tl):
        steady = (i + 1 < len(tl) and tl[i + 1][1] == row[1]) or i + 1 == len(tl)
        if steady and (not out or out[-1] != row[1]):
            out.append(row[1])
    return out


def tones(seq: list[float | None]) -> list[float]:
    return [x for x in seq if x is not None]


async def events_of(pool: asyncpg.Pool, rec_id: object) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM recording_events WHERE recording_id = $1 ORDER BY id", rec_id)
    return [r["kind"] for r in rows]


async def inbound_call(lab: LabEsl, did: str = DID) -> tuple[str, str, str]:
    """The customer (440 Hz) calls the DID and agent 2001 (880 Hz) answers: (customer leg, agent leg,
    customer handset)."""
    tag, handset = await lab.originate(did, CUSTOMER, 440)
    bridge = await lab.bridge_of(tag)
    return bridge["Bridge-A-Unique-ID"], bridge["Bridge-B-Unique-ID"], handset


# ---- link ----------------------------------------------------------------------------------------


async def test_driver_connects_subscribes_and_resyncs() -> None:
    host, port, password = target()
    d = FreeSwitchDriver("real", host, port, password, record_dir="/tmp")
    await d.start()
    got: list[object] = []

    async def collect() -> None:
        async for ev in d.events():
            got.append(ev)
            if isinstance(ev, Resync):
                return

    try:
        await asyncio.wait_for(collect(), 10)
        assert isinstance(got[0], LinkUp) and isinstance(got[-1], Resync)
        assert "UP" in await d.api("status")
    finally:
        await d.close()


async def test_wrong_password_is_refused_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    host, port, _ = target()
    d = FreeSwitchDriver("real-badpw", host, port, "not-the-password", record_dir="/tmp", backoff_initial=0.2)
    await d.start()
    try:
        await asyncio.sleep(1.0)
        assert not d.connected
    finally:
        await d.close()
    assert any("authentication failed" in r.getMessage() for r in caplog.records)


# ---- calls ---------------------------------------------------------------------------------------


async def test_inbound_customer_left_agent_right(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    cust, _agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    assert (row["direction"], row["customer_number"], row["account_number"], row["agent"]) == (
        "inbound",
        CUSTOMER,
        DID,
        AGENT,
    )
    await asyncio.sleep(4)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "hangup"
    tl = await chain.stored_timeline(row)
    assert tones(list(lefts(tl))) == [440.0]
    assert tones(rights(tl)) == [880.0]
    assert len(tl) >= 12  # at least 3 s of the ~4 s bridged
    assert await events_of(chain.pool, row["id"]) == ["start", "stop"]


async def test_outbound_customer_left_agent_right(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    tag, handset = await lab.originate(OUTBOUND_CUSTOMER, AGENT, 880)
    bridge = await lab.bridge_of(tag)
    cust = bridge["Bridge-B-Unique-ID"]  # outbound: the customer-facing leg is Bridge-B
    row = await chain.recording_of(cust)
    assert (row["direction"], row["customer_number"], row["account_number"], row["agent"]) == (
        "outbound",
        OUTBOUND_CUSTOMER,
        ACCOUNT_NUMBER,
        AGENT,
    )
    await asyncio.sleep(4)
    await lab.hangup(handset)  # the agent hangs up
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    tl = await chain.stored_timeline(row)
    assert tones(list(lefts(tl))) == [440.0]
    assert tones(rights(tl)) == [880.0]


async def test_pause_masks_both_channels_and_keeps_the_timeline(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    cust, _, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    assert chain.recorder is not None
    call_id = chain.live_call(cust)["id"]
    await chain.recorder.pause(call_id, Actor("sue", "supervisor"))
    await asyncio.sleep(2.5)
    await chain.recorder.resume(call_id, Actor("sue", "supervisor"))
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    timeline = row["timeline"]
    (pause,) = timeline["pauses"]
    assert pause["by"] == "user:sue" and pause["end_ms"] - pause["start_ms"] >= 2000
    tl = await chain.stored_timeline(row)
    start, end = pause["start_ms"] // 250 + 2, pause["end_ms"] // 250 - 1  # windows well inside the pause
    assert end - start >= 4
    assert all(r == (None, None) for r in tl[start:end]), tl[start:end]
    assert 440.0 in {r[0] for r in tl[end + 3 :]} and 880.0 in {r[1] for r in tl[end + 3 :]}  # resumed
    assert len(tl) * 250 >= pause["end_ms"] + 1000  # silence kept in place: the timeline is not cut
    assert await events_of(chain.pool, row["id"]) == ["start", "pause", "resume", "stop"]


async def blind_transfer(chain: Chain, lab: LabEsl, to: str, **settings: object) -> tuple[asyncpg.Record, list]:
    chain.settings = dict(settings)
    await chain.start_controller()
    cust, _, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    lab.note(f"STEP uuid_transfer customer leg to {to}")
    await lab.api(f"uuid_transfer {cust} {to} XML {ROUTES}")
    await asyncio.sleep(4)  # the target rings 1 s, then talks
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    return row, await chain.stored_timeline(row)


async def test_blind_transfer_to_internal_continues_with_the_new_agent_right(chain: Chain, lab: LabEsl) -> None:
    row, tl = await blind_transfer(chain, lab, AGENT2, continue_on_external_transfer=False)
    assert row["stop_reason"] == "hangup"
    assert tones(rights(tl)) == [880.0, 660.0]
    assert tones(list(lefts(tl))) == [440.0]
    t = row["timeline"]
    assert [(s["party"], s["class"]) for s in t["segments"]] == [(AGENT, "internal"), (AGENT2, "internal")]
    assert [(x["kind"], x["target"], x["target_class"], x["stopped_recording"]) for x in t["transfers"]] == [
        ("blind", AGENT2, "internal", False)
    ]
    assert AGENT2 in row["agents"]


async def test_blind_transfer_to_external_rule_off_ends_the_file_at_the_transfer(chain: Chain, lab: LabEsl) -> None:
    row, tl = await blind_transfer(chain, lab, EXTERNAL, continue_on_external_transfer=False)
    assert row["stop_reason"] == "external_transfer"
    t = row["timeline"]
    (xfer,) = t["transfers"]
    assert (xfer["kind"], xfer["target"], xfer["target_class"], xfer["stopped_recording"]) == (
        "blind",
        EXTERNAL,
        "external",
        True,
    )
    assert [s["party"] for s in t["segments"]] == [AGENT]
    assert 660.0 not in {r[1] for r in tl}
    assert tones(rights(tl)) == [880.0]
    assert len(tl) * 250 <= xfer["at_ms"] + 1000  # the file ends at the transfer


async def test_blind_transfer_to_external_rule_on_keeps_recording(chain: Chain, lab: LabEsl) -> None:
    row, tl = await blind_transfer(chain, lab, EXTERNAL, continue_on_external_transfer=True)
    assert row["stop_reason"] == "hangup"
    assert tones(rights(tl)) == [880.0, 660.0]
    t = row["timeline"]
    assert [(s["party"], s["class"]) for s in t["segments"]] == [(AGENT, "internal"), (EXTERNAL, "external")]
    assert [x["stopped_recording"] for x in t["transfers"]] == [False]


async def inline_transfer(chain: Chain, lab: LabEsl, continue_rule: bool) -> tuple[asyncpg.Record, list[bool]]:
    """Another ESL client moves the customer's leg with an INLINE dialplan that bridges the external
    number: the leg's transfer_history holds applications, not a number, so nothing names the target
    until the customer's leg dials it (CHANNEL_CREATE of the new leg, originator = the customer leg)."""
    chain.settings = {"continue_on_external_transfer": continue_rule}
    await chain.start_controller()
    cust, _, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    lab.note("STEP uuid_transfer customer leg, inline bridge to the external number")
    await lab.api(f"uuid_transfer {cust} bridge:loopback/{EXTERNAL}/{PHONES}/XML inline")
    await asyncio.sleep(4)  # the target rings 1 s, then talks
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    return row, await stored_target_frames(chain.config, row)


async def test_inline_transfer_to_external_rule_off_records_no_frame_of_it(chain: Chain, lab: LabEsl) -> None:
    row, target_frames = await inline_transfer(chain, lab, continue_rule=False)
    assert row["stop_reason"] == "external_transfer"
    assert not any(target_frames), f"external party in 20 ms frames {[i for i, f in enumerate(target_frames) if f]}"
    (mute,) = [p for p in row["timeline"]["pauses"] if p.get("kind") == "transfer_mute"]
    assert (mute["outcome"], mute["next_party"], mute["next_class"]) == ("stopped", EXTERNAL, "external")


async def test_inline_transfer_to_external_rule_on_has_it_from_its_first_frame(chain: Chain, lab: LabEsl) -> None:
    row, target_frames = await inline_transfer(chain, lab, continue_rule=True)
    assert row["stop_reason"] == "hangup"
    tl = row["timeline"]
    (mute,) = [p for p in tl["pauses"] if p.get("kind") == "transfer_mute"]
    segs = tl["segments"]
    assert [s["party"] for s in segs] == [AGENT, EXTERNAL]
    assert mute["outcome"] == "unmuted" and mute["end_ms"] < segs[1]["start_ms"], (mute, segs)
    first = target_frames.index(True)
    talk = target_frames[first : first + 100]  # 2 s of the target after it answered
    gaps = [i for i, f in enumerate(talk) if not f]
    assert len(talk) == 100 and not [g for g in gaps if g < 10], f"its first word (200 ms) is cut: {gaps}"
    assert len(gaps) <= 3, f"frames without the target after its first ({first}): {gaps}"  # media jitter only
    # every 20 ms of the target's segment (bridge → hangup) is in the file, give or take 200 ms. (Not
    # WHERE: FreeSWITCH writes no samples while the unbridged customer leg waits for the bridge, so
    # file time runs behind the journal's wall-clock offsets by about the ring time.)
    expected = (segs[1]["end_ms"] - segs[1]["start_ms"]) // 20
    assert sum(target_frames) >= expected - 10, (sum(target_frames), expected)


async def test_attended_transfer_with_att_xfer(chain: Chain, lab: LabEsl) -> None:
    """The agent consults 3001 with the native att_xfer app and completes with its hangup key; the
    customer leg then becomes Bridge-B of the new bridge (fixtures NOTES S4b)."""
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    await lab.api(f"uuid_setvar {agent} attxfer_hangup_key *")
    await lab.att_xfer(agent, AGENT2)
    await lab.wait_event(
        lambda h: h.get("Event-Name") == "CHANNEL_BRIDGE" and agent in (h.get("Bridge-A-Unique-ID"),), 10
    )
    await asyncio.sleep(2)
    lab.note("STEP agent presses the att_xfer hangup key")
    await lab.api(f"uuid_recv_dtmf {agent} *")
    await lab.wait_event(lambda h: h.get("Event-Name") == "CHANNEL_BRIDGE" and cust == h.get("Bridge-B-Unique-ID"), 10)
    await asyncio.sleep(2.5)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    t = row["timeline"]
    assert [(s["party"], s["class"]) for s in t["segments"]] == [(AGENT, "internal"), (AGENT2, "internal")]
    assert [(x["kind"], x["target"], x["stopped_recording"]) for x in t["transfers"]] == [("attended", AGENT2, False)]
    tl = await chain.stored_timeline(row)
    assert tones(rights(tl)) == [880.0, 660.0]
    assert tones(list(lefts(tl))) == [440.0]


async def test_agent_hangs_up_first(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    cust, agent, _handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    lab.note("STEP the agent hangs up")
    await lab.hangup(agent)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "hangup" and row["timeline"]["stop"]["reason"] == "hangup"
    tl = await chain.stored_timeline(row)
    assert tones(list(lefts(tl))) == [440.0] and tones(rights(tl)) == [880.0]
    assert len(tl) * 250 < 6000  # ended with the agent (the customer's handset would talk for 40 s)


async def test_unanswered_call_is_not_recorded(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    tag, _ = await lab.originate(DID_NO_ANSWER, CUSTOMER, 440)
    created = await lab.wait_event(
        lambda h: (
            h.get("Event-Name") == "CHANNEL_CREATE"
            and h.get("variable_lab_tag") == tag
            and h.get("Call-Direction") == "inbound"
        )
    )
    leg = created["Unique-ID"]
    await lab.gone(leg, 15)
    assert chain.recorder is not None
    await chain.recorder.drain()
    await asyncio.sleep(0.5)
    assert await chain.recordings_of(leg) == []
    n = await chain.pool.fetchval("SELECT count(*) FROM recordings WHERE pbx = $1", chain.pbx)
    assert n == 0


async def test_controller_restart_mid_call_adopts_the_recording_once(chain: Chain, lab: LabEsl) -> None:
    await chain.start_controller()
    cust, _, handset = await inbound_call(lab)
    first = await chain.recording_of(cust)
    await asyncio.sleep(2)
    await chain.stop_controller()  # no stop sent: FreeSWITCH keeps writing
    await asyncio.sleep(1.5)
    await chain.start_controller()
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "recording", 10)
    assert chain.live_call(cust)["recording"]["id"] == str(first["id"])
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(first["id"])
    assert len(await chain.recordings_of(cust)) == 1
    assert row["stop_reason"] == "hangup"
    assert [s["party"] for s in row["timeline"]["segments"]] == [AGENT]
    tl = await chain.stored_timeline(row)
    assert tones(list(lefts(tl))) == [440.0] and tones(rights(tl)) == [880.0]
    assert len(tl) * 250 >= row["duration_ms"] - 1000  # one file across the restart, nothing cut
    assert (await events_of(chain.pool, row["id"])).count("start") == 1


# ---- the agent's phone codes (the shipped hook's bind_meta_app) ----------------------------------
# The agent's side "dials" *1 / *2 with uuid_recv_dtmf and a leading "~": DTMF processed as if the
# agent's phone sent it (without "~" FreeSWITCH marks queued digits skip-process and no binding sees
# them). The recorder masks / unmasks, the confirmation tone goes to the agent's leg only, and the
# stored file is silent over the pause and free of the tone.


async def test_agent_star1_star2_pause_and_resume_on_a_real_freeswitch(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "paused", within=5)
    await asyncio.sleep(2.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*2")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "recording", within=5)
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["how"], pause["resumed_how"]) == ("phone", "phone") and pause["by"] == "agent:2001"
    assert pause["end_ms"] - pause["start_ms"] >= 2000
    assert await events_of(chain.pool, row["id"]) == ["start", "pause", "resume", "stop"]
    tl = await chain.stored_timeline(row)
    start, end = pause["start_ms"] // 250 + 2, pause["end_ms"] // 250 - 1
    assert all(r == (None, None) for r in tl[start:end]), tl[start:end]
    assert 440.0 in {r[0] for r in tl[end + 3 :]} and 880.0 in {r[1] for r in tl[end + 3 :]}
    assert not any(float(TONES["confirm"].hz) in r for r in tl), "the confirmation tone must not be recorded"


async def test_agent_star1_refused_where_agent_pause_is_not_allowed(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"agent_pause_allowed": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(1.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await asyncio.sleep(2)
    assert chain.live_call(cust)["recording"]["state"] == "recording"
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["timeline"]["pauses"] == []
    tl = await chain.stored_timeline(row)
    assert all(r[0] == 440.0 for r in tl[1:-1]) and not any(float(TONES["refuse"].hz) in r for r in tl)


async def test_secure_pause_warns_the_agent_and_resumes_on_a_real_freeswitch(chain: Chain, lab: LabEsl) -> None:
    """pause_max_seconds = 3 with a 1 s warning lead: the warning (uuid_broadcast … aleg) reaches the
    agent's leg only, then the recording resumes by itself; neither tone is in the stored file."""
    chain.settings = {"agent_pause_allowed": True, "pause_max_seconds": 3}
    await chain.start_controller()
    assert chain.recorder is not None
    chain.recorder.warning_lead_s = 1.0
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(1.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "paused", within=5)
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "recording", within=6)
    await asyncio.sleep(2)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["resumed_by"], pause["resumed_how"]) == ("system", "auto_resume")
    assert 2500 <= pause["end_ms"] - pause["start_ms"] <= 4500
    tl = await chain.stored_timeline(row)
    assert not any(float(TONES["warning"].hz) in r or float(TONES["confirm"].hz) in r for r in tl)
    assert 440.0 in {r[0] for r in tl[pause["end_ms"] // 250 + 2 :]}


async def test_announcement_beep_reaches_the_customer_at_the_start_on_a_real_freeswitch(
    chain: Chain, lab: LabEsl
) -> None:
    """announcement = beep: uuid_broadcast … aleg on the CUSTOMER leg as the recording starts; the
    stored file holds what the customer was sent (right channel): the 1000 Hz beep at the start, and
    the timeline says it played."""
    chain.settings = {"announcement": "beep"}
    await chain.start_controller()
    cust, _, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    (ann,) = row["timeline"]["announcements"]
    assert (ann["kind"], ann["why"]) == ("beep", "start") and ann["at_ms"] < 1000
    tl = await chain.stored_timeline(row)
    beep = float(TONES["announce"].hz)
    assert any(r[1] == beep for r in tl[:6]), tl[:8]  # within the first 1.5 s, on the side sent to the customer
    assert not any(r[0] == beep for r in tl)  # never as the customer's own voice


NOTHING = {"record_inbound": False, "record_outbound": False}


async def test_agent_star3_records_on_demand_on_a_real_freeswitch(chain: Chain, lab: LabEsl) -> None:
    """record_inbound off, agent_record_on_demand on: nothing is recorded until the agent's *3; from
    then on the call is, both parties in place, the decision's source naming the agent."""
    chain.policy_set = PolicySet(  # nothing records by policy, not even this test's DID
        accounts={"main": Account("main", settings_from_dict({**NOTHING, "agent_record_on_demand": True}))},
        numbers={DID: ("main", NumberOverride(record_inbound=False))},
    )
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    await asyncio.sleep(2)
    assert await chain.recordings_of(cust) == []
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*3")
    row = await chain.recording_of(cust)
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["policy"]["sources"]["record"].startswith("on_demand:")
    tl = await chain.stored_timeline(row)
    assert 2500 <= len(tl) * 250 <= 4500  # from the code on, not from the answer
    assert 440.0 in {r[0] for r in tl} and 880.0 in {r[1] for r in tl}


async def test_agent_star1_on_an_outbound_call_on_a_real_freeswitch(chain: Chain, lab: LabEsl) -> None:
    """Outbound, the agent is the A leg: the hook binds the codes on side a, and *1 from the agent's
    leg (Bridge-A) pauses the recording on the customer's leg (Bridge-B)."""
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    tag, handset = await lab.originate(OUTBOUND_CUSTOMER, AGENT, 880)
    bridge = await lab.bridge_of(tag)
    agent, cust = bridge["Bridge-A-Unique-ID"], bridge["Bridge-B-Unique-ID"]
    row = await chain.recording_of(cust)
    await asyncio.sleep(1.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "paused", within=5)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["by"], pause["how"]) == (f"agent:{AGENT}", "phone")
