"""Restart safety: what the recorder does with a node's Resync (all live channels, sent by the
driver after every LinkUp) — mixed into `controller.recorder.Recorder`.

It adopts recordings the journal still has open for that node whose customer leg is alive (the same
row, timeline continued — never a second row), closes the ones whose leg is gone ('link_lost'),
repeats starts whose command died with the link (`_restart_in_doubt`), and, when the journal is
down, resyncs again once it is back (`_resync_later`). Apart from the call path (recorder.py) because
it is its own concern: reconciling the journal with the PBX after a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from controller.drivers.base import PbxCommandError, PbxUnavailable, SpoolFiles
from controller.events import Direction, Resync
from controller.policy import AccountSettings, PolicyDecision, PolicySet
from controller.recorder_node import JOURNAL_DOWN, _Node
from storage import journal

if TYPE_CHECKING:
    from controller.calls import Action, Call
    from controller.metrics import Metrics

log = logging.getLogger("callrec.recorder")


class Resyncer:
    """Mixed into `controller.recorder.Recorder` (which provides the attributes declared below)."""

    if TYPE_CHECKING:
        pool: asyncpg.Pool
        metrics: Metrics
        _policy: Callable[[], PolicySet]
        _journal: Callable[..., Awaitable[Any]]

        async def _act(self, node: _Node, action: Action) -> None: ...
        def _chain(self, node: _Node, action: Action) -> None: ...
        def _decide_now(self, node: _Node, call: Call, wall: float) -> None: ...
        async def _decide(self, node: _Node, call: Call) -> None: ...
        def _notify(self, node: _Node, call: Call, *, ended: bool = False) -> None: ...
        def _resume_secure_pause(self, node: _Node, call: Call) -> None: ...
        def _start_announcements(self, node: _Node, call: Call, *, adopted: bool = False) -> None: ...

    async def _resync(self, node: _Node, ev: Resync) -> None:
        tracker = node.tracker
        wall = ev.wall
        live = {c.leg: c for c in ev.channels}
        gone, fresh = tracker.resync(ev.channels, wall, node.known_at_link_up)
        try:
            for call in gone:
                log.info("%s: call %s ended while the link was down", node.driver.name, call.id)
                if call.recording and not call.recording.stopping:
                    for action in tracker.stop(call, "link_lost", wall):
                        await self._act(node, action)
                await journal.end_call(self.pool, call.id, wall=wall, reason="link_lost")
                tracker.end(call, "link_lost")
                self._notify(node, call, ended=True)
            tracked = {c.recording.id for c in tracker.calls.values() if c.recording}
            for row in await journal.open_recordings(self.pool, node.driver.name):
                rec_id = str(row["id"])
                if rec_id in tracked:
                    continue
                leg = row["customer_leg"]
                if leg in live:
                    self._adopt(node, row, live, wall)
                    log.info("%s: adopted running recording %s on leg %s", node.driver.name, rec_id, leg)
                else:
                    timeline = dict(row["timeline"] or {})
                    start = float(row["started_epoch"])
                    at = max(0, round((wall - start) * 1000))
                    for seg in timeline.get("segments") or []:
                        if seg.get("end_ms") is None:
                            seg["end_ms"] = at
                    for p in timeline.get("pauses") or []:
                        if p.get("end_ms") is None:
                            p["end_ms"] = at
                    timeline["stop"] = {"at_ms": at, "reason": "link_lost"}
                    await journal.stop_recording(self.pool, rec_id, wall=wall, reason="link_lost", timeline=timeline)
                    if row["call_id"]:
                        await journal.end_call(self.pool, str(row["call_id"]), wall=wall, reason="link_lost")
                    log.info("%s: closed recording %s whose leg %s is gone", node.driver.name, rec_id, leg)
            for leg in await journal.legs_with_ended_recordings(self.pool, node.driver.name, list(live)):
                ended = tracker.call_for_leg(leg)
                if ended is not None and ended.recording is None:
                    ended.decided = True  # its recording already ended (e.g. at an external transfer): keep it so
        except JOURNAL_DOWN as e:
            # Adoption needs the journal: without it a live call cannot be told apart from one we
            # already record (a second recording) or one whose recording the rule stopped. Resync
            # again, in full, as soon as the database answers.
            log.warning("%s: resync needs the journal (%s); resyncing again when it is back", node.driver.name, e)
            self._resync_later(node)
            return
        await self._restart_in_doubt(node, live, wall)
        for call in fresh:
            if call.decided or call.ended:
                continue
            decide = tracker.decide_from_resync(call, wall)
            if decide is not None:
                self._decide_now(node, decide.call, wall)
                await self._decide(node, decide.call)

    async def _restart_in_doubt(self, node: _Node, live: dict[str, Any], wall: float) -> None:
        """Starts that died with the link: the call still up → start again into the same files (the
        driver reuses a recording the PBX already runs, so never two); the call gone → it was closed
        above as link_lost, and finalize stores the file if the PBX had started it or fails it visibly."""
        for rec_id, req in list(node.starts_in_doubt.items()):
            call = node.tracker.call_for_leg(req.customer_leg)
            rec = call.recording if call is not None else None
            if call is None or rec is None or rec.id != rec_id or req.customer_leg not in live:
                del node.starts_in_doubt[rec_id]
                continue
            try:
                files = await node.driver.start_recording(req)
            except PbxUnavailable:
                continue  # the link died again: the next resync tries again
            except (PbxCommandError, TimeoutError) as e:
                del node.starts_in_doubt[rec_id]
                error = f"start repeated after a lost PBX link failed: {e}"
                log.error("%s: recording %s of call %s: %s", node.driver.name, rec_id, call.id, error)
                await self._journal(
                    f"failure of recording {rec_id}", journal.fail_recording, rec_id, wall=time.time(), error=error
                )
                self.metrics.inc("callrec_recordings_failed_total", pbx=node.driver.name)
                node.files.pop(rec_id, None)
                node.started.pop(rec_id, None)
                call.recording = None
                self._notify(node, call)
                continue
            del node.starts_in_doubt[rec_id]
            node.files[rec_id] = files
            at_ms = max(0, round((wall - rec.timeline.start_wall) * 1000))
            await self._journal(
                f"restart of recording {rec_id}",
                journal.record_event,
                rec_id,
                "start_repeated",
                wall=wall,
                offset_ms=at_ms,
                actor="controller",
                detail={"at_ms": at_ms, "reason": "the PBX link dropped while the recording was starting"},
                timeline=rec.timeline.as_dict(),
            )
            log.info("%s: recording %s of call %s runs after the reconnect", node.driver.name, rec_id, call.id)

    def _resync_later(self, node: _Node) -> None:
        """Wait for the database, then cut the node's link: the reconnect brings a fresh Resync."""
        if node.resync_waiter is not None and not node.resync_waiter.done():
            return

        async def wait_then_reconnect() -> None:
            await self._journal(f"resync of {node.driver.name}", lambda pool: pool.fetchval("SELECT 1"))
            log.info("%s: journal is back; reconnecting to resync", node.driver.name)
            node.driver.drop_link()

        node.resync_waiter = asyncio.create_task(wait_then_reconnect(), name=f"resync-later-{node.driver.name}")

    def _adopt(self, node: _Node, row: asyncpg.Record, live: dict[str, Any], wall: float) -> None:
        tracker = node.tracker
        leg = row["customer_leg"]
        call = tracker.call_for_leg(leg)
        if call is None:
            return
        policy = dict(row["policy"] or {})
        ps = self._policy()
        acct = ps.accounts.get(row["account_id"] or "")
        settings = AccountSettings(**{**AccountSettings().as_dict(), **(policy.get("settings") or {})})
        decision = PolicyDecision(
            account_id=row["account_id"] or node.account,
            direction=Direction(row["direction"]),
            number=row["account_number"] or None,
            record=True,
            settings=settings,
            sources=dict(policy.get("sources") or {}),
            numbering=acct.numbering if acct else tracker.numbering,
        )
        call.customer_leg = leg
        call.agent_leg = live[leg].bridged_to
        call.direction = Direction(row["direction"])
        call.account = decision.account_id
        call.account_number = row["account_number"]
        call.customer_number = row["customer_number"]
        call.agent = row["agent"]
        call.agents = list(row["agents"] or [])
        call.ring_group = row["call_ring_group"] or ""
        if row["call_started_at"] is not None:
            call.started_wall = row["call_started_at"].timestamp()
        if row["call_answered_at"] is not None:
            call.answered_wall = row["call_answered_at"].timestamp()
        call_id = str(row["call_id"]) if row["call_id"] else call.id
        tracker.adopt(call, call_id, str(row["id"]), decision, dict(row["timeline"] or {}), float(row["started_epoch"]))
        node.files[str(row["id"])] = SpoolFiles.from_dict(dict(row["spool_files"] or {}))
        node.decisions[call.id] = decision
        # a transfer mute the previous controller left on is the state machine's again (lifted or
        # turned into a stop by the usual rules); a bridge made meanwhile is judged now
        for action in tracker.restore_after_adoption(call, wall):
            self._chain(node, action)
        self._resume_secure_pause(node, call)
        self._start_announcements(node, call, adopted=True)
        self._notify(node, call)
