"""A PBX link that dies while a recording's start command is in flight must not lose the recording:
whether the PBX ran the command (only the reply was lost) or never got it, the call ends up recorded
once, by one PBX recorder, from the reconnect at the latest — on both PBXes.

The service is a real process; the simulators cut their TCP connections at the start command (before
or after running it) while the call goes on, as a drop right after an answer does on a loaded machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.config import load_config
from lab.ami_sim import AmiSimulator
from lab.esl_sim import EslSimulator
from lab.tones import AGENT_HZ, CUSTOMER_HZ, channel_timeline
from storage.playback import decrypted_audio_file
from tests.drills.conftest import (
    ServiceDir,
    all_finished,
    call_scenario,
    check_stored_once,
    spawn,
    stop,
    until,
    write_config,
)
from tests.drills.mixed_calls import ami_connected

TALK_MS = 4000  # talk after the cut


class _EslCutAtStart(EslSimulator):
    """Cuts every ESL connection at the first `uuid_record … start`, before running it or after."""

    def __init__(self, *, run_first: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.run_first = run_first
        self.cut = False

    def api(self, cmd: str) -> str:
        if cmd.startswith("uuid_record ") and " start " in cmd and not self.cut:
            self.cut = True
            reply = super().api(cmd) if self.run_first else "-ERR link cut\n"
            if not self.run_first:
                self.commands.append(cmd)
            self.drop_connections()
            return reply
        return super().api(cmd)


class _AmiCutAtStart(AmiSimulator):
    """Cuts every AMI connection at the first MixMonitor action, before running it or after."""

    def __init__(self, *, run_first: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.run_first = run_first
        self.cut = False
        self.started: dict[str, int] = {}  # channel → MixMonitors really started on it

    async def _action_mixmonitor(self, s: Any, a: dict[str, list[str]], aid: str) -> None:
        if not self.cut:
            self.cut = True
            self.drop_connections()  # the reply, if any, goes to a dead connection
            if not self.run_first:
                return
        await super()._action_mixmonitor(s, a, aid)
        channel = a.get("channel", [""])[0]
        self.started[channel] = self.started.get(channel, 0) + 1


async def _stored_audio(svc: ServiceDir, conn: asyncpg.Connection) -> list[tuple[float | None, ...]]:
    row = await conn.fetchrow("SELECT * FROM recordings")
    config = load_config(svc.config)
    async with decrypted_audio_file(config, dict(row)) as path:
        return channel_timeline(path, 250)


def _assert_call_recorded(windows: list[tuple[float | None, ...]]) -> None:
    """Customer left, agent right, for most of the talk that followed the reconnect."""
    both = [w for w in windows if w[0] == CUSTOMER_HZ and w[1] == AGENT_HZ]
    assert len(both) * 250 >= TALK_MS // 2, f"only {len(both) * 250} ms of the call in the file: {windows[:12]}"


@pytest.mark.parametrize("run_first", [False, True], ids=["never-ran", "reply-lost"])
async def test_esl_drop_while_the_recording_starts_still_records_the_call_once(
    tmp_path: Path, fresh_db: str, run_first: bool
) -> None:
    sim = _EslCutAtStart(run_first=run_first, time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, fresh_db, node_id="drill-cut-start", fs_port=sim.port)
    conn = await asyncpg.connect(fresh_db)
    proc = await asyncio.to_thread(spawn, svc)
    try:
        assert await sim.wait_connected(30)
        handle = await sim.run(call_scenario(TALK_MS), settle=False)
        assert sim.cut, "the recording's start command never came"
        await until(lambda: all_finished(conn, 1), 60, "the recording finalized")
        await check_stored_once(conn, [handle.customer.uuid], svc)
        _assert_call_recorded(await _stored_audio(svc, conn))
        starts = [c for c in sim.commands if c.startswith("uuid_record ") and " start " in c]
        assert len(starts) == 2, starts  # the first died with the link; the repeat names the same file
        assert starts[0].split()[3] == starts[1].split()[3], "the repeat must record into the same path"
        kinds = await conn.fetch("SELECT kind FROM recording_events ORDER BY id")
        assert "start_repeated" in [k["kind"] for k in kinds], "the timeline must show the repeated start"
    finally:
        await asyncio.to_thread(stop, proc)
        await conn.close()
        await sim.close()


@pytest.mark.parametrize("run_first", [False, True], ids=["never-ran", "reply-lost"])
async def test_ami_drop_while_the_recording_starts_still_records_the_call_once(
    tmp_path: Path, fresh_db: str, run_first: bool
) -> None:
    sim = _AmiCutAtStart(run_first=run_first, time_scale=1.0)
    await sim.start()
    svc = write_config(tmp_path, fresh_db, node_id="drill-ami-cut-start", ami_port=sim.port)
    conn = await asyncpg.connect(fresh_db)
    proc = await asyncio.to_thread(spawn, svc)
    try:
        assert await ami_connected(sim, 30), "the service never logged in to the AMI simulator"
        played = await sim.play(call_scenario(TALK_MS), settle=False)
        assert sim.cut, "the recording's MixMonitor never came"
        await until(lambda: all_finished(conn, 1), 60, "the recording finalized")
        await check_stored_once(conn, [played.customer.uniqueid], svc)
        _assert_call_recorded(await _stored_audio(svc, conn))
        assert list(sim.started.values()) == [1], f"MixMonitors started per channel: {sim.started}"
    finally:
        await asyncio.to_thread(stop, proc)
        await conn.close()
        await sim.close()
