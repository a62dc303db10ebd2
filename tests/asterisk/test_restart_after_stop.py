"""A controller restarted after the external-transfer rule stopped a recording must not record the
customer and the external party from the resync on. The call still carries our hook's variables
(inbound, the DID), so without the journal a fresh controller would decide it again — and record a
conversation the rule said not to record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lab import scenarios as sc

from . import test_e2e
from .test_e2e import Harness, policy_for

harness = test_e2e.harness  # the e2e harness fixture: simulator over TCP, driver, recorder, database


async def test_restart_after_external_transfer_stop_does_not_record_again(harness: Harness) -> None:
    base = sc.get("blind_transfer_external_stop")
    steps = list(base.steps)
    hangup = steps.index(sc.Hangup("customer"))
    steps[hangup:hangup] = [sc.ControllerRestart(), sc.Talk(2000)]  # the customer talks on with the external party
    scenario = replace(base, name="restart_after_stop", steps=tuple(steps))
    harness.policy = policy_for(base.settings)
    restarted: list[int] = []

    async def on_step(step: Any) -> None:
        if isinstance(step, sc.ControllerRestart):
            await harness.stop_controller()  # no cleanup: as if killed
            await harness.start_controller()  # connects and resyncs the customer + external party
            assert harness.driver is not None
            await harness.wait(lambda: harness.driver is not None and harness.driver.connects > 0)
            restarted.append(1)
        else:
            await harness.on_step(step)

    await harness.sim.play(scenario, on_step)
    await harness.settle()
    assert restarted
    rows = await harness.pool.fetch("SELECT * FROM recordings WHERE pbx = $1", harness.pbx)
    assert len(rows) == 1, [dict(r) for r in rows]  # no second recording started at the resync
    assert rows[0]["stop_reason"] == "external_transfer"
