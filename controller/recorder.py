"""Recording orchestration: PBX events → call state machine → policy → driver commands + journal.

One `Recorder` serves every configured PBX node: per node a `CallTracker` (pure) and one task that
consumes the node driver's events in order. It implements `controller.live.LiveCallSource` for the
API (live calls, change notifications, pause/resume).

Restart safety: after every LinkUp the driver sends a Resync (all live channels). The recorder then
adopts recordings the journal still has open for that node whose customer leg is alive (the same
row, timeline continued — never a second row) and closes the ones whose leg is gone ('link_lost').

This module is the call path (events → decisions → commands → journal). Its other concerns are
mixins, each in its own module: `controller.pause_control` (pause, resume, phone codes),
`controller.announce` (consent announcements), `controller.recording_start` (policy decision,
start command and journal row of a recording), `controller.resync` (resync and adoption after a
restart or a lost link) and `controller.live_view` (the live view for the API); the per-node state
and the journal primitives they share are in `controller.recorder_node`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from controller.announce import Announcer
from controller.calls import Action, Call, Changed, Decide, Ended, Mute, Stop, Unmute
from controller.config import PbxConfig
from controller.drivers.base import (
    PbxCommandError,
    PbxDriver,
    PbxUnavailable,
)
from controller.events import AnyEvent, ChannelHungUp, FeatureCode, LinkDown, LinkUp, Resync
from controller.live_view import LiveView
from controller.metrics import Metrics
from controller.numbering import NumberingPlan
from controller.pause_control import PauseControl
from controller.policy import PolicySet
from controller.recorder_node import JOURNAL_DOWN, _Node
from controller.recording_start import RecordingStarter
from controller.resync import Resyncer
from storage import journal

log = logging.getLogger("callrec.recorder")

PolicyProvider = Callable[[], PolicySet]


class Recorder(RecordingStarter, PauseControl, Announcer, Resyncer, LiveView):
    def __init__(
        self,
        pool: asyncpg.Pool,
        drivers: Sequence[PbxDriver],
        policy: PolicyProvider | PolicySet,
        *,
        spool_dir: str,
        metrics: Metrics | None = None,
        nodes: Mapping[str, PbxConfig] | None = None,
        journal_retry_max: float = 5.0,
        journal_backlog_max: int = 10_000,
        journal_pool: asyncpg.Pool | None = None,
    ) -> None:
        """`journal_pool`: where the per-call journal writes go (the service gives them a small pool
        of their own whose connections skip the reset query on release: one round trip per write, and
        never queued behind API or finalize work for a connection); default `pool`."""
        self.pool = pool
        self.journal_pool = journal_pool or pool
        self.journal_retry_max = journal_retry_max
        self.journal_backlog_max = journal_backlog_max
        self.journal_waiting = 0  # journal writes held back by a database outage (one per call at most)
        self._closing = False
        self._policy = policy if callable(policy) else (lambda: policy)
        self.spool_dir = spool_dir
        self.metrics = metrics or Metrics()
        self.nodes: dict[str, _Node] = {}
        for d in drivers:
            cfg = (nodes or {}).get(d.name)
            acct = self._policy().accounts.get(cfg.account if cfg else "main")
            self.nodes[d.name] = _Node(d, cfg, acct.numbering if acct else NumberingPlan())
        self.errors: list[str] = []
        self._init_pause_control()
        self._init_announcer()
        self._init_live_view()
        for name, kind, text in (
            ("callrec_recordings_started_total", "counter", "Recordings started"),
            ("callrec_recordings_stopped_total", "counter", "Recordings stopped, by reason"),
            ("callrec_recordings_failed_total", "counter", "Recordings the PBX refused to start"),
            ("callrec_calls_not_recorded_total", "counter", "Answered calls policy did not record"),
            ("callrec_live_calls", "gauge", "Live calls per PBX node"),
            ("callrec_journal_waiting", "gauge", "Journal writes waiting for the database to come back"),
        ):
            self.metrics.describe(name, kind, text)

    # ---- lifecycle ----
    async def start(self) -> None:
        """Start consuming events of every node (call after the drivers' `start()`)."""
        for node in self.nodes.values():
            if node.task is None:
                node.task = asyncio.create_task(self._consume(node), name=f"recorder-{node.driver.name}")
                set_sink = getattr(node.driver, "set_sink", None)
                if set_sink is not None:
                    set_sink(functools.partial(self.offer, node.driver.name))

    async def close(self) -> None:
        """Stop consuming. Running recordings are NOT stopped: the PBX keeps writing and the next
        controller adopts them (a restart must not cut calls' recordings)."""
        self._closing = True
        for node in self.nodes.values():
            set_sink = getattr(node.driver, "set_sink", None)
            if set_sink is not None:
                set_sink(None)
            if node.task:
                node.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await node.task
                node.task = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), 5)
        # secure-pause timers and periodic announcements: the next controller re-arms them on adoption
        for timer in [*self._pause_timers.values(), *self._announce_tasks.values()]:
            timer.cancel()
        for node in self.nodes.values():
            for task in [*node.chains.values(), *node.commands.values()]:
                task.cancel()
            node.sent.clear()
            for pending in node.pending_starts.values():  # replies nobody will read now
                close = getattr(pending, "close", None)
                if close is not None:
                    close()
            node.pending_starts.clear()

    async def _consume(self, node: _Node) -> None:
        async for ev in node.driver.events():
            node.busy = True
            try:
                await self.handle(node.driver.name, ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let one bad event stop the node
                log.exception("%s: error handling %s", node.driver.name, type(ev).__name__)
                self.errors.append(f"{type(ev).__name__}: {e!r}")
            finally:
                node.busy = False

    def offer(self, pbx: str, ev: AnyEvent) -> bool:
        """Handle `ev` NOW, inside the driver's own callback (the one that parsed the frame), when
        that keeps event order: the node's consumer task is parked with nothing in hand (the driver
        offers only when nothing is queued) and the event needs no waiting (not a Resync). False:
        the driver queues it for the consumer as usual. Saves the loop iteration(s) between a bridge
        event and its recording's start command — what a bare PBX client does in its handler."""
        node = self.nodes.get(pbx)
        if node is None or node.busy or node.task is None or self._closing or isinstance(ev, Resync):
            return False
        try:
            self._handle_now(node, ev)
        except Exception as e:  # as in _consume: one bad event never stops the node
            log.exception("%s: error handling %s", pbx, type(ev).__name__)
            self.errors.append(f"{type(ev).__name__}: {e!r}")
        return True

    # ---- event handling ----
    async def handle(self, pbx: str, ev: AnyEvent) -> None:
        """One event: the state machine runs at once, in event order; the I/O it causes (PBX commands,
        journal writes) runs in a chain per call, so calls proceed concurrently but each call's
        actions stay in order."""
        node = self.nodes[pbx]
        if isinstance(ev, Resync):
            await self.drain(pbx)
            gone = node.hung_up_before_resync or set()
            node.hung_up_before_resync = None
            if gone:
                ev = dataclasses.replace(ev, channels=tuple(c for c in ev.channels if c.leg not in gone))
            await self._resync(node, ev)
            return
        self._handle_now(node, ev)

    def _handle_now(self, node: _Node, ev: AnyEvent) -> None:
        """Every event but Resync: no waiting (the I/O goes to the call's chain)."""
        if isinstance(ev, LinkUp):
            node.known_at_link_up = set(node.tracker.legs)
            node.hung_up_before_resync = set()
            return
        if isinstance(ev, ChannelHungUp) and node.hung_up_before_resync is not None:
            node.hung_up_before_resync.add(ev.leg)
        if isinstance(ev, LinkDown):
            return
        if isinstance(ev, FeatureCode):
            self._on_feature(node, ev)
            return
        acct = self._policy().accounts.get(node.account)
        if acct is not None and node.tracker.numbering is not acct.numbering:
            node.tracker.numbering = acct.numbering  # an edited numbering plan applies from the next event
        for action in node.tracker.handle(ev):
            if isinstance(action, Decide):
                self._decide_now(node, action.call, ev.wall)
                self._notify(node, action.call)  # the view changed (recording state): API and SSE see it now
            self._chain(node, action)
        if self._resume_due:
            self._retry_due_resumes(node)

    def _send_early(self, node: _Node, action: Mute | Unmute | Stop) -> None:
        """Send the PBX side of a transfer mute, its lift or a stop as soon as the call's earlier
        commands are done — not behind the journal writes queued before it in the call's chain (each
        a round trip to the database, retried for as long as it is down): a slow or unreachable
        database must neither keep an external party in the recording nor the party that is back
        muted. Before its recording's start command is answered (its files are known then) it also
        waits for that, or for the chain queued so far should the start fail. The action's journal
        write stays in the chain, after the command."""
        call = action.call
        rec = call.recording
        if rec is None:
            return
        key = id(call)
        prev = node.commands.get(key)
        starting = rec.id not in node.files
        ready = node.files_known.get(rec.id) if starting else None
        tail = node.chains.get(key) if starting else None

        async def run() -> None:
            if prev is not None:
                await asyncio.wait([prev])  # its errors are its own (logged where it ran)
            if ready is not None and not ready.is_set():
                waiter = asyncio.ensure_future(ready.wait())
                try:
                    await asyncio.wait([waiter, *([tail] if tail else [])], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            elif ready is None and tail is not None:
                await asyncio.wait([tail])
            if isinstance(action, Stop):
                await self._stop_command(node, call, action.reason)
            else:
                await self._mute_command(node, action)

        task = asyncio.get_running_loop().create_task(run())
        node.commands[key] = task
        node.sent[id(action)] = task

        def done(t: asyncio.Task[None]) -> None:
            if node.commands.get(key) is t:
                del node.commands[key]

        task.add_done_callback(done)

    async def _sent(self, node: _Node, action: Action) -> bool:
        """Wait for the command `_send_early` sent for `action`; False when it sent none."""
        task = node.sent.pop(id(action), None)
        if task is None:
            return False
        await asyncio.wait([task])
        return True

    def _chain(self, node: _Node, action: Action) -> None:
        if isinstance(action, Mute | Unmute | Stop):
            self._send_early(node, action)
        key = id(action.call)
        prev = node.chains.get(key)

        async def run() -> None:
            if prev is not None:
                with contextlib.suppress(Exception):
                    await prev
            try:
                await self._act(node, action)
            except Exception as e:
                log.exception("%s: error in %s for call %s", node.driver.name, type(action).__name__, action.call.id)
                self.errors.append(f"{type(action).__name__}: {e!r}")
            finally:
                if node.chains.get(key) is task:
                    del node.chains[key]
                    node.chain_calls.pop(key, None)

        task = asyncio.get_running_loop().create_task(run())
        node.chains[key] = task
        node.chain_calls[key] = action.call

    async def release_node(self, pbx: str, *, wait: float = 10.0) -> None:
        """This instance stopped driving `pbx` (its lease went to another instance; the link is closed):
        finish the journal writes already queued for it, then forget its calls. The new owner adopts
        them from the journal and the PBX; a stale copy kept here would, if the node ever came back
        to this instance, be journaled as calls lost while the link was down."""
        node = self.nodes[pbx]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(pbx), wait)
        for call in node.tracker.live_calls():
            self._notify(node, call, ended=True)
        node.tracker = node.new_tracker(node.tracker.numbering)
        node.files.clear()
        node.decisions.clear()
        node.started.clear()
        node.files_known.clear()
        node.sent.clear()
        node.known_at_link_up = set()
        self.metrics.set("callrec_live_calls", 0, pbx=pbx)

    async def drain(self, pbx: str | None = None) -> None:
        """Wait until every queued action (of one node, or all) is done, phone codes included."""
        await self.drain_features()
        for node in [self.nodes[pbx]] if pbx else list(self.nodes.values()):
            while node.chains:
                await asyncio.gather(*list(node.chains.values()), return_exceptions=True)

    async def _journal(self, what: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One journal write that survives a database outage: retried with capped exponential backoff
        until the database is back, so a recording that started while it was down still gets its row
        (and its transfers, stop and finalize job) — in order, since each call's writes run in its
        chain. Memory stays bounded: at most one waiting write per call, and past
        `journal_backlog_max` waiting calls a write fails at once (logged with what it was; the spool
        sweep at the next start adopts such a file)."""
        delay, waiting = 0.2, False
        try:
            while True:
                try:
                    return await write(self.journal_pool, *args, **kwargs)
                except JOURNAL_DOWN as e:
                    if self._closing:
                        raise
                    if not waiting:
                        if self.journal_waiting >= self.journal_backlog_max:
                            log.error("journal unavailable, %d writes waiting: %s dropped", self.journal_waiting, what)
                            raise
                        waiting = True
                        self.journal_waiting += 1
                        self.metrics.set("callrec_journal_waiting", self.journal_waiting)
                        log.warning(
                            "journal unavailable (%s: %s): %s waits for the database", type(e).__name__, e, what
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.journal_retry_max)
        finally:
            if waiting:
                self.journal_waiting -= 1
                self.metrics.set("callrec_journal_waiting", self.journal_waiting)

    async def _act(self, node: _Node, action: Action) -> None:
        if isinstance(action, Decide):
            await self._decide(node, action.call)
        elif isinstance(action, Stop):
            if not await self._sent(node, action):
                await self._stop_command(node, action.call, action.reason)
            await self._stop(node, action.call, action.reason)
        elif isinstance(action, (Mute, Unmute)):
            if not await self._sent(node, action):
                await self._mute_command(node, action)
            await self._transfer_mute(node, action)
        elif isinstance(action, Changed):
            call = action.call
            rec = call.recording
            if rec is None:
                return
            detail = dict(action.detail)
            await self._journal(
                f"{action.kind} of recording {rec.id}",
                journal.record_event,
                rec.id,
                action.kind,
                wall=action.wall,
                offset_ms=int(detail.get("at_ms", detail.get("start_ms", 0)) or 0),
                actor="pbx",
                detail=detail,
                timeline=rec.timeline.as_dict(),
                agents=list(call.agents),
            )
            self._notify(node, call)
        elif isinstance(action, Ended):
            await self._journal(
                f"end of call {action.call.id}",
                journal.end_call,
                action.call.id,
                wall=time.time(),
                reason=action.call.end_reason,
            )
            node.decisions.pop(action.call.id, None)
            self._notify(node, action.call, ended=True)
        self.metrics.set("callrec_live_calls", node.tracker.live_count, pbx=node.driver.name)

    async def _mute_command(self, node: _Node, action: Mute | Unmute) -> None:
        """Mask / unmask the recording for a transfer whose next party is not classified yet: the PBX
        command (every millisecond counts: the next party may answer); `_transfer_mute` journals it.
        Skipped once the recording stops: a stop needs no mute, and an unmute must never follow it."""
        call, mute = action.call, isinstance(action, Mute)
        rec = call.recording
        if rec is None:
            return
        files = node.files.get(rec.id)
        if not rec.stopping and files is not None and call.customer_leg:
            try:
                if mute:
                    await node.driver.pause_recording(call.customer_leg, files)
                else:
                    await node.driver.resume_recording(call.customer_leg, files)
            except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
                # the customer's channel hung up meanwhile (the agent hung up first): nothing to mask
                gone = call.ended or rec.stopping
                (log.debug if gone else log.warning)(
                    "%s: transfer %s of recording %s: %s", node.driver.name, "mute" if mute else "unmute", rec.id, e
                )

    async def _transfer_mute(self, node: _Node, action: Mute | Unmute) -> None:
        """Journal a transfer mute or its lift (after its PBX command, `_mute_command`)."""
        call, mute = action.call, isinstance(action, Mute)
        rec = call.recording
        if rec is None:
            return
        detail = dict(action.entry)
        await self._journal(
            f"transfer {'mute' if mute else 'unmute'} of recording {rec.id}",
            journal.record_event,
            rec.id,
            "transfer_mute" if mute else "transfer_unmute",
            wall=action.wall,
            offset_ms=int(detail["start_ms"] if mute else detail["end_ms"]),
            actor="transfer",
            detail=detail,
            timeline=rec.timeline.as_dict(),
            state=None if rec.stopping else ("paused" if rec.timeline.paused else "recording"),
        )
        self._notify(node, call)

    async def _stop_command(self, node: _Node, call: Call, reason: str) -> None:
        """The PBX side of a stop (none when the call ended: the recording ended with it); `_stop`
        journals it."""
        rec = call.recording
        if rec is None:
            return
        self._forget_pause_state(call)
        self._forget_announcements(call)
        files = node.files.get(rec.id)
        if reason not in ("hangup", "link_lost") and files and call.customer_leg:
            try:
                await node.driver.stop_recording(call.customer_leg, files)
            except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
                log.warning("%s: stop of recording %s: %s", node.driver.name, rec.id, e)

    async def _stop(self, node: _Node, call: Call, reason: str) -> None:
        """Journal a stop (after its PBX command, `_stop_command`)."""
        rec = call.recording
        if rec is None:
            return
        wall = time.time()
        closed = await self._journal(
            f"stop of recording {rec.id}",
            journal.stop_recording,
            rec.id,
            wall=wall,
            reason=reason,
            timeline=rec.timeline.as_dict(),
        )
        if closed:
            self.metrics.inc("callrec_recordings_stopped_total", pbx=node.driver.name, reason=reason)
        node.files.pop(rec.id, None)
        node.started.pop(rec.id, None)
        self._notify(node, call)
