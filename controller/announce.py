"""The consent announcement: what the CUSTOMER hears when recording starts (a beep, the account's
prompt file, or a beep at the start and every interval), again after a resume when asked, so
two-party-consent jurisdictions are covered. Each one that played is in the recording's timeline
(`announcements`: when, what, why) and so in its signed manifest, and journaled as an event.

Played to the customer's leg only (FreeSWITCH `uuid_broadcast … aleg` on the customer leg; Asterisk
the hidden code's Gosub on the customer's channel), so the customer hears it and the recording, which
holds what is sent to the customer, shows it on the agent's side. The decision what to play is pure
(`controller.features.announcement_for`); this module does the I/O and the periodic timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from controller.drivers.base import PbxCommandError, PbxUnavailable
from controller.features import announcement_for
from controller.tones import TONES
from storage import journal

if TYPE_CHECKING:
    from controller.calls import Call
    from controller.recorder_node import _Node

log = logging.getLogger("callrec.recorder")


class Announcer:
    """Mixed into `controller.recorder.Recorder`."""

    if TYPE_CHECKING:
        _journal: Callable[..., Awaitable[Any]]

    _announce_tasks: dict[str, asyncio.Task[None]]

    def _init_announcer(self) -> None:
        self._announce_tasks = {}

    def _start_announcements(self, node: _Node, call: Call, *, adopted: bool = False) -> None:
        """The recording of `call` just started: announce it, and keep beeping when periodic. A
        recording `adopted` after a restart was announced already: only the periodic beeps go on."""
        rec = call.recording
        if rec is None or announcement_for(rec.decision.settings, "periodic" if adopted else "start") is None:
            return
        task = asyncio.get_running_loop().create_task(self._announcements(node, call, rec.id, first=not adopted))
        self._announce_tasks[call.id] = task

        def forget(t: asyncio.Task[None], cid: str = call.id) -> None:
            if self._announce_tasks.get(cid) is t:
                del self._announce_tasks[cid]

        task.add_done_callback(forget)

    async def _announcements(self, node: _Node, call: Call, rec_id: str, *, first: bool = True) -> None:
        if first:
            await self._announce(node, call, "start")
        rec = call.recording
        if rec is None or announcement_for(rec.decision.settings, "periodic") is None:
            return
        every = rec.decision.settings.announcement_interval_seconds
        while True:
            await asyncio.sleep(every)
            rec = call.recording
            if rec is None or rec.id != rec_id or rec.stopping:
                return
            if not rec.timeline.paused:  # nothing is recorded while paused: nothing to announce
                await self._announce(node, call, "periodic")

    async def _announce(self, node: _Node, call: Call, why: str) -> None:
        rec = call.recording
        if rec is None or rec.stopping or call.customer_leg is None:
            return
        settings = rec.decision.settings
        what = announcement_for(settings, why)
        if what is None:
            return
        try:
            if what == "prompt":
                await node.driver.play_prompt(call.customer_leg, settings.announcement_prompt)
            else:
                await node.driver.play_tone(call.customer_leg, TONES["announce"])
        except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
            log.warning("%s: announcement (%s) on call %s did not play: %s", node.driver.name, why, call.id, e)
            return
        wall = time.time()
        entry = {"at_ms": rec.timeline.offset(wall), "kind": what, "why": why}
        if what == "prompt":
            entry["prompt"] = settings.announcement_prompt
        rec.timeline.announcements.append(entry)
        await self._journal(
            f"announcement on recording {rec.id}",
            journal.record_event,
            rec.id,
            "announcement",
            wall=wall,
            offset_ms=entry["at_ms"],
            actor="system",
            detail=entry,
            timeline=rec.timeline.as_dict(),
        )

    def _forget_announcements(self, call: Call) -> None:
        task = self._announce_tasks.pop(call.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()


__all__ = ["Announcer"]
