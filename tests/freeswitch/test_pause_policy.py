"""Who may pause: an agent only on their own call and only when policy allows agent pause; a
supervisor always. Every pause is journaled with who and when; refusals change nothing."""

from __future__ import annotations

import pytest

from controller.live import Actor, CallNotFound, PauseRefused
from lab import scenarios as sc
from lab.esl_sim import CallHandle

from .conftest import Harness, policy_for


async def _live_call(h: Harness, settings: dict[str, bool]) -> tuple[CallHandle, str]:
    h.policy = policy_for(settings)
    handle = CallHandle(h.sim, sc.get("inbound"))
    for step in sc.get("inbound").steps[:3]:
        await handle.do(step, None, True)
    await h.wait(lambda: bool(h.recorder and h.recorder.live_calls()))
    assert h.recorder is not None
    return handle, h.recorder.live_calls()[0]["id"]


async def test_agent_pause_refused_by_policy_but_supervisor_may(harness: Harness) -> None:
    handle, call_id = await _live_call(harness, {"agent_pause_allowed": False})
    rec = harness.recorder
    assert rec is not None
    with pytest.raises(PauseRefused) as e:
        await rec.pause(call_id, Actor("alice", "agent", "2001"))
    assert e.value.reason == "policy"
    assert not [c for c in harness.sim.commands if " mask " in c]
    view = await rec.pause(call_id, Actor("sue", "supervisor"))
    assert view["recording"]["state"] == "paused"
    assert [c.split()[2] for c in harness.sim.commands if c.startswith("uuid_record")][-1] == "mask"
    with pytest.raises(PauseRefused) as e:
        await rec.pause(call_id, Actor("sue", "supervisor"))
    assert e.value.reason == "state"
    await handle.do(sc.Talk(500), None, False)
    view = await rec.resume(call_id, Actor("sue", "supervisor"))
    assert view["recording"]["state"] == "recording"
    assert view["timeline"]["pauses"][0]["by"] == "user:sue"
    await handle.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    row = (await harness.recordings())[0]
    events = [(e["kind"], e["actor"]) for e in await harness.events(row["id"])]
    assert ("pause", "user:sue") in events and ("resume", "user:sue") in events
    assert row["timeline"]["pauses"][0]["end_ms"] is not None


async def test_agent_may_not_pause_someone_elses_call(harness: Harness) -> None:
    handle, call_id = await _live_call(harness, {"agent_pause_allowed": True})
    assert harness.recorder is not None
    with pytest.raises(PauseRefused) as e:
        await harness.recorder.pause(call_id, Actor("bob", "agent", "2002"))
    assert e.value.reason == "scope"
    view = await harness.recorder.pause(call_id, Actor("alice", "agent", "2001"))
    assert view["recording"]["state"] == "paused"
    with pytest.raises(CallNotFound):
        await harness.recorder.pause("no-such-call", Actor("sue", "supervisor"))
    await handle.do(sc.Hangup("agent"), None, False)
    await harness.settle()
    row = (await harness.recordings())[0]
    # paused until the end: the open pause is closed at the stop
    assert row["timeline"]["pauses"][0]["end_ms"] == row["timeline"]["stop"]["at_ms"]


async def test_live_view_and_change_notifications(harness: Harness) -> None:
    assert harness.recorder is not None
    q = harness.recorder.subscribe()
    handle, call_id = await _live_call(harness, {})
    view = harness.recorder.live_call(call_id)
    assert view is not None
    assert view["direction"] == "inbound" and view["customer_number"] == sc.CUSTOMER_NUMBER
    assert view["account_number"] == sc.DID and view["agent"] == sc.AGENT_EXT
    assert view["recording"]["decision"]["sources"]["record"] == "account"
    await handle.do(sc.Hangup("customer"), None, False)
    await harness.settle()
    seen = []
    while not q.empty():
        seen.append(q.get_nowait())
    assert seen[-1]["type"] == "call.ended" and seen[-1]["call"]["id"] == call_id
    harness.recorder.unsubscribe(q)
    assert harness.recorder.live_call(call_id) is None
