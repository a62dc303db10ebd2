"""A controller killed between its Setvar tags and its MixMonitor leaves the customer channel tagged
with a recording that never ran. The controller taking over must start a MixMonitor, not 're-use'
the tag: re-using it stored nothing (the tagged files were never written) — found by the scale-out
drill (kill -9 at the peak: 1 of 1,500 Asterisk calls failed with 'spool: file(s) missing').
Only a MixMonitor that set its i() variable surely runs."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from controller.drivers.ami_translate import VAR_FILES, VAR_MIXMON, VAR_RECORDING
from controller.drivers.asterisk import AsteriskDriver
from controller.drivers.base import RecordingRequest
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator


async def test_a_tag_without_a_running_mixmonitor_is_not_reused(tmp_path: Path) -> None:
    sim = AmiSimulator(time_scale=1.0)
    await sim.start()
    scen = sc.Scenario(
        "long_inbound",
        "inbound call that talks long",
        (sc.PlaceCall("inbound"), sc.Ring(50), sc.Answer(), sc.Talk(30_000), sc.Hangup("customer")),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
    )
    call = asyncio.create_task(sim.play(scen, settle=False))
    driver: AsteriskDriver | None = None
    try:
        async with asyncio.timeout(10):
            while not [c for c in sim.channels.values() if c.name.startswith("SIP/trunk") and c.state == 6]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        customer = next(c for c in sim.channels.values() if c.name.startswith("SIP/trunk"))
        old = str(uuid.uuid4())  # what the killed controller had tagged before it died
        stale = (tmp_path / f"{old}-rx.wav", tmp_path / f"{old}-tx.wav")
        sim.set_var(customer, VAR_RECORDING, old)
        sim.set_var(customer, VAR_FILES, f"{stale[0]}|{stale[1]}")
        assert VAR_MIXMON not in customer.variables and not customer.monitors

        driver = AsteriskDriver("ast1", "127.0.0.1", sim.port, sim.username, sim.secret, backoff_initial=0.05)
        await driver.start()  # the survivor: connects and resyncs (reads the tags)
        async with asyncio.timeout(10):
            while not driver.translator.recordings.get(customer.uniqueid):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        new = str(uuid.uuid4())
        files = await driver.begin_recording(RecordingRequest(new, str(uuid.uuid4()), customer.uniqueid, str(tmp_path)))
        assert customer.monitors, "no MixMonitor runs on the call: the stale tag was re-used"
        assert files.rx and new in files.rx and await asyncio.to_thread(Path(files.rx).exists), files
    finally:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        if driver is not None:
            await driver.close()
        await sim.close()
