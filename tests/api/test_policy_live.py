"""A running call keeps the decision it was recorded under: an administrator switches off
"continue recording on external transfer" for the number while a call on it is in progress; that
call's external transfer still follows the customer (its recording's "why" says so), and the next
call on the number stops at its external transfer. Real chain: ESL simulator → FreeSWITCH driver →
recorder following the database's policy (PolicyCache) → journal; the change goes through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import scenarios as sc
from tests.api.conftest import World

pytest.importorskip("lab.esl_sim")
from tests.api.real_stack import real_stack

DID = "+15557000100"


def _call_with_admin_change() -> sc.Scenario:
    """An external blind transfer; at the supervisor's pause mid-call the admin changes the rule."""
    base = sc.get("blind_transfer_external_continue")
    steps = (
        sc.PlaceCall("inbound"),
        sc.Ring(),
        sc.Answer(),
        sc.Talk(1000),
        sc.Pause("supervisor"),
        sc.Talk(500),
        sc.Resume("supervisor"),
        sc.Talk(1000),
        sc.Transfer(kind="blind"),
        sc.Talk(1000),
        sc.Hangup("customer"),
    )
    return sc.Scenario("admin_changes_rule_mid_call", base.description, steps, base.expect, parties=base.parties)


async def _rec(world: World, pbx: str) -> Any:
    return await world.pool.fetchrow(
        "SELECT id, state, stop_reason, policy, timeline FROM recordings WHERE pbx = $1"
        " ORDER BY started_at DESC LIMIT 1",
        pbx,
    )


async def test_running_call_keeps_its_decision_next_call_gets_the_new_rule(world: World, tmp_path: Path) -> None:
    from controller.live import Actor

    await world.pool.execute("DELETE FROM numbers WHERE number = $1", DID)
    await world.pool.execute("DELETE FROM numbering_patterns WHERE account_id = 'main'")
    settings = {"continue_on_external_transfer": True, "record_inbound": True, "agent_pause_allowed": False}
    async with real_stack(world, tmp_path, settings, policy_from_db=True) as stack:
        assert stack.policy is not None
        try:

            async def on_step(step: Any, _handle: Any) -> None:
                calls = stack.recorder.live_calls()
                assert len(calls) == 1
                sue = Actor("sue", "supervisor")
                if isinstance(step, sc.Pause):
                    r = await world.request(
                        "PUT",
                        f"/api/v1/numbers/{DID.replace('+', '%2B')}/override",
                        "admin",
                        json={"account": "main", "override": {"continue_on_external_transfer": False}},
                    )
                    assert r.status == 200
                    await stack.wait(lambda: DID in stack.policy.current.numbers, within_s=10)
                    await stack.recorder.pause(calls[0]["id"], sue)
                else:
                    await stack.recorder.resume(calls[0]["id"], sue)

            await stack.sim.run(_call_with_admin_change(), on_step=on_step)
            await stack.wait(lambda: _ended(world, stack.pbx), within_s=15)
            during = await _rec(world, stack.pbx)
            assert during["stop_reason"] == "hangup"  # followed the customer: the decision it started with
            assert during["policy"]["sources"]["continue_on_external_transfer"] == "account"
            assert [t["stopped_recording"] for t in during["timeline"]["transfers"]] == [False]
            why = await (await world.request("GET", f"/api/v1/recordings/{during['id']}", "admin")).json()
            assert why["policy"]["settings"]["continue_on_external_transfer"] is True

            await stack.play("blind_transfer_external_stop", lambda *_: _noop())
            await stack.wait(lambda: _ended(world, stack.pbx, after=during["id"]), within_s=15)
            after = await _rec(world, stack.pbx)
            assert after["stop_reason"] == "external_transfer"
            assert after["policy"]["sources"]["continue_on_external_transfer"] == f"number:{DID}"
        finally:
            await world.pool.execute("DELETE FROM recordings WHERE pbx = $1", stack.pbx)
            await world.pool.execute("DELETE FROM calls WHERE pbx = $1", stack.pbx)


async def _noop() -> None:
    return None


async def _ended(world: World, pbx: str, after: Any = None) -> bool:
    row = await _rec(world, pbx)
    return row is not None and row["id"] != after and row["state"] in ("stopped", "stored")
