"""The driver against the AMI simulator over real TCP: translation, MixMonitor r()/t() files with the
customer on our `tx` leg, pause as silence, stop, resync after a dropped link, a restarted controller
adopting a running recording, and one clear error for bad credentials."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from controller.drivers.asterisk import AsteriskDriver
from controller.drivers.base import PbxCommandError, RecordingRequest
from controller.events import (
    Bridged,
    ChannelCreated,
    ChannelHungUp,
    LinkDown,
    LinkUp,
    PolicyHint,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    RecordingStopped,
    Resync,
)
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.tones import channel_timeline, read_wav
from tests.asterisk.conftest import EventLog


def tones(path: str) -> list[float | None]:
    """Dominant frequency per 250 ms window of a mono leg file, consecutive repeats collapsed."""
    out: list[float | None] = []
    for (hz,) in channel_timeline(path):
        if not out or out[-1] != hz:
            out.append(hz)
    return out


async def record_on_answer(sim: AmiSimulator, driver: AsteriskDriver, evlog: EventLog, spool: Path, rid: str):  # type: ignore[no-untyped-def]
    """A harness that plays the controller's part: start recording the customer when bridged."""
    state: dict = {}

    async def on_step(step: sc.Step) -> None:
        if isinstance(step, sc.Answer):
            b = await evlog.wait_for(Bridged)
            created = {c.leg: c for c in evlog.of(ChannelCreated)}
            cust = next(leg for leg in (b.leg_a, b.leg_b) if created[leg].channel_name.startswith("SIP/trunk"))
            state["leg"] = cust
            state["files"] = await driver.start_recording(
                RecordingRequest(rid, created[cust].call_id, cust, str(spool))
            )
            await evlog.wait_for(RecordingStarted)
        elif isinstance(step, sc.Pause):
            await driver.pause_recording(state["leg"], state["files"])
            await evlog.wait_for(RecordingPaused)
        elif isinstance(step, sc.Resume):
            await driver.resume_recording(state["leg"], state["files"])
            await evlog.wait_for(RecordingResumed)

    return state, on_step


async def test_inbound_call_translated_and_recorded_customer_on_tx(
    sim: AmiSimulator, driver: AsteriskDriver, evlog: EventLog, tmp_path: Path
) -> None:
    await evlog.wait_for(Resync)
    state, on_step = await record_on_answer(sim, driver, evlog, tmp_path, "rec-in")
    await sim.play(sc.get("pause_resume"), on_step, settle=False)
    await evlog.wait_for(RecordingStopped)
    hint = evlog.of(PolicyHint)[0]
    assert hint.values == {"account": "main", "account_number": sc.DID, "direction": "inbound"}
    assert hint.leg == state["leg"]
    started = evlog.of(RecordingStarted)[0]
    assert (started.leg, started.recording_id) == (state["leg"], "rec-in")
    stopped = evlog.of(RecordingStopped)[0]
    assert (stopped.cause, stopped.recording_id) == ("hangup", "rec-in")
    files = state["files"]
    assert files.rx.endswith("rec-in-rx.wav") and files.tx.endswith("rec-in-tx.wav")
    assert Path(files.rx).is_relative_to(tmp_path)
    # rx = Asterisk's r(): what the customer channel sends (440); tx = t(): what it is sent (agent 880);
    # the pause is silence on both
    assert tones(files.rx) == [440, None, 440]
    assert tones(files.tx) == [880, None, 880]
    rate, ch, frames = read_wav(files.tx)
    assert (rate, ch) == (8000, 1) and len(frames) == len(read_wav(files.rx)[2])  # legs stay sample-aligned


async def test_blind_transfer_by_phone_and_explicit_stop(
    sim: AmiSimulator, driver: AsteriskDriver, evlog: EventLog, tmp_path: Path
) -> None:
    await evlog.wait_for(Resync)
    state, on_step = await record_on_answer(sim, driver, evlog, tmp_path, "rec-bt")
    scenario = sc.get("blind_transfer_external_continue")

    async def steps(step: sc.Step) -> None:
        await on_step(step)
        if isinstance(step, sc.Transfer):
            await driver.stop_recording(state["leg"], state["files"])  # as the stop-on-external rule does
            await evlog.wait_for(RecordingStopped)

    await sim.play(scenario, steps, settle=False)
    from controller.events import Transferred

    (t,) = evlog.of(Transferred)
    assert (t.leg, t.target, t.kind.value) == (state["leg"], sc.EXTERNAL_TARGET, "blind")
    stops = evlog.of(RecordingStopped)
    assert [s.cause for s in stops] == ["stop"]  # no second stop at hangup: the recording was already over
    assert [hz for hz in tones(state["files"].tx) if hz] == [880]  # the external party (660) never recorded
    await evlog.wait_for(ChannelHungUp, lambda e: e.leg == state["leg"])
    # after a stop the channel no longer claims a recording (a resync would not adopt it)
    assert not sim.recording_channels()


async def test_commands_on_unknown_channel_fail_clearly(
    driver: AsteriskDriver, evlog: EventLog, tmp_path: Path
) -> None:
    await evlog.wait_for(Resync)
    with pytest.raises(PbxCommandError, match="no live channel"):
        await driver.start_recording(RecordingRequest("r", "c", "9.9", str(tmp_path)))


async def test_link_drop_resyncs_and_recording_continues(
    sim: AmiSimulator, driver: AsteriskDriver, evlog: EventLog, tmp_path: Path
) -> None:
    await evlog.wait_for(Resync)
    state, on_step = await record_on_answer(sim, driver, evlog, tmp_path, "rec-ld")

    async def steps(step: sc.Step) -> None:
        await on_step(step)
        if isinstance(step, sc.LinkDrop):
            await evlog.wait_for(LinkDown)
            resync = await evlog.wait_for(Resync, lambda r: r is not evlog.of(Resync)[0])
            (live,) = [c for c in resync.channels if c.leg == state["leg"]]
            assert live.recording_paths == (state["files"].rx, state["files"].tx)
            assert live.bridged_to and live.answered

    await sim.play(sc.get("link_drop"), steps, settle=False)
    stopped = await evlog.wait_for(RecordingStopped)
    assert stopped.recording_id == "rec-ld"  # still known after the reconnect
    assert driver.connects == 2
    assert tones(state["files"].rx) == [440]


async def test_restarted_controller_adopts_running_recording_and_can_pause_it(
    sim: AmiSimulator, driver: AsteriskDriver, evlog: EventLog, tmp_path: Path
) -> None:
    await evlog.wait_for(Resync)
    state, on_step = await record_on_answer(sim, driver, evlog, tmp_path, "rec-rs")
    holder: dict = {}

    async def steps(step: sc.Step) -> None:
        await on_step(step)
        if isinstance(step, sc.ControllerRestart):
            await driver.close()  # the old controller is gone
            fresh = AsteriskDriver("ast1", "127.0.0.1", sim.port, sim.username, sim.secret, backoff_initial=0.05)
            holder["d"] = fresh
            log2 = EventLog(fresh)
            holder["log"] = log2
            await fresh.start()
            resync = await log2.wait_for(Resync)
            (live,) = [c for c in resync.channels if c.leg == state["leg"]]
            assert live.variables["callrec_recording"] == "rec-rs"
            await fresh.pause_recording(state["leg"], state["files"])  # uses the adopted MixMonitorID
            paused = await log2.wait_for(RecordingPaused)
            assert paused.recording_id == "rec-rs"
            await fresh.resume_recording(state["leg"], state["files"])

    try:
        await sim.play(sc.get("controller_restart"), steps, settle=False)
        stopped = await holder["log"].wait_for(RecordingStopped)
        assert stopped.recording_id == "rec-rs"
        assert len(sim.actions_seen) and sum(1 for a in sim.actions_seen if a["action"] == ["MixMonitor"]) == 1
    finally:
        holder["log"].close()
        await holder["d"].close()


async def test_bad_credentials_one_clear_error_then_retry(sim: AmiSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="controller.drivers.asterisk")
    d = AsteriskDriver("ast1", "127.0.0.1", sim.port, sim.username, "wrong", backoff_initial=0.02, backoff_max=0.05)
    log = EventLog(d)
    await d.start()
    try:
        async with asyncio.timeout(5):
            while sim.logins_refused < 4:  # noqa: ASYNC110 - polling a counter of the real server
                await asyncio.sleep(0.01)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "login as 'callrec' refused" in errors[0].getMessage() and "wrong" not in errors[0].getMessage()
        assert not d.connected and not log.of(LinkUp)
        sim.secret = "wrong"  # the admin fixes manager.conf: the retry loop gets in
        await log.wait_for(LinkUp)
        assert any("link up again" in r.getMessage() for r in caplog.records)
    finally:
        log.close()
        await d.close()


async def test_unreachable_pbx_retries_until_it_appears(caplog: pytest.LogCaptureFixture) -> None:
    probe = AmiSimulator()
    await probe.start()
    port = probe.port
    await probe.close()
    d = AsteriskDriver("ast1", "127.0.0.1", port, "callrec", "callrec-secret", backoff_initial=0.02, backoff_max=0.1)
    log = EventLog(d)
    await d.start()
    try:
        await asyncio.sleep(0.3)
        assert not d.connected
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
        sim = AmiSimulator(port=port)
        await sim.start()
        try:
            await log.wait_for(Resync)
            assert d.connected
        finally:
            await sim.close()
    finally:
        log.close()
        await d.close()


async def test_drop_link_reconnects_and_resyncs(driver: AsteriskDriver, evlog: EventLog) -> None:
    """The recorder cuts the link on purpose (to resync once the journal is back): the driver logs in
    again and sends a fresh Resync."""
    first = await evlog.wait_for(Resync)
    driver.drop_link()
    await evlog.wait_for(LinkDown)
    await evlog.wait_for(Resync, lambda r: r is not first)
    assert driver.connects == 2
