"""The real FreeSWITCH wire bytes, replayed over TCP through the greenswitch driver (frames split
across reads as on the real socket, and split again at random points), give the call timelines the
capture notes describe."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.calls import CallTracker, Decide, Stop
from controller.drivers.freeswitch import FreeSwitchDriver
from controller.events import AnyEvent, Bridged, ChannelHungUp, Direction, HoldChanged, Resync, Transferred
from controller.numbering import NumberingPlan
from controller.policy import Account, AccountSettings, PolicySet

from .eslcap import FIXTURES, LOOPBACK_FIXTURES, read_capture

# the lab's numbers: 2001 / 3001 agents; 1001 customer and 9001 "PSTN" are the external parties
PLAN = NumberingPlan(internal=(r"^[23]\d{3}$",))


class ReplayServer:
    """Speaks the handshake with the driver, then sends the captured RX records in their original
    chunks (optionally re-split into random pieces)."""

    def __init__(self, name: str, *, resplit: bool, where: Path = FIXTURES) -> None:
        self.records = [r for r in read_capture(name, where) if r.kind == "RX"]
        self.resplit = resplit
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recs = list(self.records)
        writer.write(recs.pop(0).data)  # auth/request
        await reader.readuntil(b"\n\n")  # auth
        writer.write(recs.pop(0).data)  # +OK accepted
        await reader.readuntil(b"\n\n")  # event plain ...
        writer.write(recs.pop(0).data)  # +OK event listener enabled
        for _ in range(2):  # show channels / show calls as json: nothing live yet
            await reader.readuntil(b"\n\n")
            body = b'{"row_count":0}'
            writer.write(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
        await writer.drain()
        rng = random.Random(7)
        for rec in recs:
            pieces = [rec.data]
            if self.resplit and len(rec.data) > 2:
                cuts = sorted(rng.sample(range(1, len(rec.data)), min(3, len(rec.data) - 1)))
                pieces = [rec.data[i:j] for i, j in zip([0, *cuts], [*cuts, len(rec.data)], strict=True)]
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)
        self.done.set()
        await reader.read()  # until the driver hangs up
        writer.close()

    async def close(self) -> None:
        if self.server:
            self.server.close()


async def replay(name: str, resplit: bool = False, where: Path = FIXTURES) -> list[AnyEvent]:
    server = ReplayServer(name, resplit=resplit, where=where)
    await server.start()
    driver = FreeSwitchDriver("fs-replay", "127.0.0.1", server.port, "ClueCon", record_dir="/tmp")
    await driver.start()
    out: list[AnyEvent] = []

    async def collect(it: AsyncIterator[AnyEvent]) -> None:
        async for ev in it:
            out.append(ev)

    task = asyncio.create_task(collect(driver.events()))
    try:
        await asyncio.wait_for(server.done.wait(), 20)
        n = -1
        while n != len(out):  # until the driver has delivered everything
            n = len(out)
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await driver.close()
        await server.close()
    return out


def run_tracker(
    events: list[AnyEvent], settings: AccountSettings | None = None, plan: NumberingPlan = PLAN
) -> tuple[CallTracker, list]:
    """Feed the events to the call state machine, 'starting' a recording on each Decide."""
    tracker = CallTracker("fs-replay", numbering=plan)
    ps = PolicySet(accounts={"main": Account("main", settings or AccountSettings(), plan)})
    actions = []
    for ev in events:
        if isinstance(ev, Resync):
            continue
        for act in tracker.handle(ev):
            actions.append(act)
            if isinstance(act, Decide):
                decision = ps.resolve(direction=act.call.direction, number=None)
                if decision.record:
                    tracker.recording_started(act.call, "rec-1", decision, ev.wall)
    return tracker, actions


@pytest.mark.parametrize("resplit", [False, True])
async def test_sip1_inbound_customer_is_the_inbound_leg(resplit: bool) -> None:
    events = await replay("SIP1_inbound_stereo", resplit)
    bridged = [e for e in events if isinstance(e, Bridged)]
    assert [(e.leg_a[:8], e.leg_b[:8]) for e in bridged] == [("70857007", "f9deae4d")]
    _, actions = run_tracker(events)
    decide = next(a for a in actions if isinstance(a, Decide))
    call = decide.call
    assert call.direction is Direction.INBOUND
    assert call.customer_leg and call.customer_leg.startswith("70857007")
    assert (call.customer_number, call.agent) == ("1001", "2001")
    stops = [a for a in actions if isinstance(a, Stop)]
    assert [s.reason for s in stops] == ["hangup"]
    tl = call.recording.timeline.as_dict()
    assert [s["party"] for s in tl["segments"]] == ["2001"] and tl["transfers"] == []


async def test_sip5_outbound_customer_is_the_outbound_leg() -> None:
    _, actions = run_tracker(await replay("SIP5_outbound"))
    call = next(a for a in actions if isinstance(a, Decide)).call
    assert call.direction is Direction.OUTBOUND
    assert call.customer_leg and call.customer_leg.startswith("7b2b5c1e")  # B', the customer-facing leg
    assert call.agent == "2001" and call.customer_number == "9001"
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]


async def test_sip6a_agent_hangs_up_first_ends_the_recording() -> None:
    _, actions = run_tracker(await replay("SIP6a_agent_hangs_up_first"))
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]


async def test_sip6b_unanswered_call_is_never_decided() -> None:
    events = await replay("SIP6b_unanswered_cancel")
    assert any(isinstance(e, ChannelHungUp) for e in events)
    _, actions = run_tracker(events)
    assert not any(isinstance(a, Decide) for a in actions)


@pytest.mark.parametrize("name", ["REFER1_blind_external", "SIP3_blind_xfer_external"])
async def test_blind_transfer_to_external_keeps_recording_with_a_new_segment(name: str) -> None:
    events = await replay(name, resplit=True)
    transfers = [e for e in events if isinstance(e, Transferred)]
    assert transfers and {t.kind.value for t in transfers} == {"blind"}
    _, actions = run_tracker(events)
    call = next(a for a in actions if isinstance(a, Decide)).call
    tl = call.recording.timeline.as_dict()
    assert [(s["party"], s["class"]) for s in tl["segments"]] == [("2001", "internal"), ("9001", "external")]
    assert [(t["kind"], t["target_class"], t["stopped_recording"]) for t in tl["transfers"]] == [
        ("blind", "external", False)
    ]
    assert tl["stop"]["reason"] == "hangup"


async def test_refer_blind_external_with_rule_off_stops_at_the_transfer() -> None:
    events = await replay("REFER1_blind_external")
    _, actions = run_tracker(events, AccountSettings(continue_on_external_transfer=False))
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["external_transfer"]
    call = next(a for a in actions if isinstance(a, Decide)).call
    tl = call.recording.timeline.as_dict()
    assert [s["party"] for s in tl["segments"]] == ["2001"]
    assert tl["transfers"][0]["target"] == "9001" and tl["stop"]["reason"] == "external_transfer"


async def test_s4_warm_transfer_completed_by_uuid_bridge_is_labelled_attended() -> None:
    """Real capture S4: the agent consults agent 2003 on a second call, then a CTI client joins the
    customer to 2003 with uuid_bridge. The customer's leg unbridges from the agent (its
    transfer_history already names uuid_br) and is bridged to 2003: a warm transfer, and the
    timeline says so (it said "blind")."""
    events = await replay("S4_attended_transfer", where=LOOPBACK_FIXTURES)
    customer = "b410f8dd-145e-47d3-84f6-8d1a2e94aba5"
    transfers = [e for e in events if isinstance(e, Transferred)]
    assert [(t.leg, t.kind.value) for t in transfers] == [(customer, "attended")]
    # the S4 lab's phones are loopback endpoints "agentphone_<ext>"
    plan = NumberingPlan(internal=(r"^(agentphone_)?[23]\d{3}$",))
    _, actions = run_tracker(events, plan=plan)
    call = next(a.call for a in actions if isinstance(a, Decide) and a.call.customer_leg == customer)
    tl = call.recording.timeline.as_dict()
    assert [(t["kind"], t["target"]) for t in tl["transfers"]] == [("attended", "agentphone_2003")]
    assert [s["party"] for s in tl["segments"]] == ["agentphone_2001", "agentphone_2003"]


async def test_s4_hold_of_the_agent_leg_is_seen() -> None:
    """Real capture S4: `uuid_hold` of the agent leg sends CHANNEL_HOLD on that leg (the agent's
    loopback leg bridged to the customer) — the signal that makes the agent's next call a consultation."""
    events = await replay("S4_attended_transfer", where=LOOPBACK_FIXTURES)
    holds = [(e.leg, e.held) for e in events if isinstance(e, HoldChanged)]
    assert holds == [("fcb2ebd4-69a0-4310-9680-92f4a229d07e", True)]
