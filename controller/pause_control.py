"""Pause, resume, secure pause and the agent's phone codes: the recorder's part that acts on a live
recording at someone's request (API, page, phone code) or by itself (a secure pause's limit).

Every pause records who (`by`), how (`how`: api | page | phone | auto_resume) and why (`reason`, an
optional code the caller gives) and its span in the timeline, which the journal, the manifest and the
API carry. The decision on a phone code is pure (`controller.features.decide`); this module does the
I/O it implies: the PBX command, the journal write, the tone on the agent's leg only, and the timers
of a secure pause (a warning tone 10 s before the limit, then an automatic resume).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from controller.calls import Decide
from controller.drivers.base import PbxCommandError, PbxUnavailable
from controller.events import FeatureCode
from controller.features import decide, secure_pause_schedule
from controller.live import Actor, PauseRefused
from controller.tones import TONES
from storage import journal

if TYPE_CHECKING:
    from controller.calls import Action, Call
    from controller.policy import PolicyDecision
    from controller.recorder_node import _Node

log = logging.getLogger("callrec.recorder")

HOW = ("api", "page", "phone", "auto_resume")
REASON_MAX = 64  # a reason is a short code (e.g. "pci", "personal"), not prose


def clean_reason(reason: str | None) -> str:
    """A pause reason code as stored: stripped; PauseRefused('input') when too long or not printable."""
    r = (reason or "").strip()
    if len(r) > REASON_MAX or not r.isprintable():
        raise PauseRefused("input", f"reason must be a printable code of at most {REASON_MAX} characters")
    return r


class PauseControl:
    """Mixed into `controller.recorder.Recorder` (which provides the attributes declared below)."""

    if TYPE_CHECKING:
        nodes: dict[str, _Node]
        _journal: Callable[..., Awaitable[Any]]

        def _find(self, call_id: str) -> tuple[_Node, Call]: ...
        def _notify(self, node: _Node, call: Call, *, ended: bool = False) -> None: ...
        def _view(self, node: _Node, call: Call) -> dict[str, Any]: ...
        def _register_start(self, node: _Node, call: Call, decision: PolicyDecision, wall: float) -> str: ...
        def _chain(self, node: _Node, action: Action) -> None: ...
        async def _announce(self, node: _Node, call: Call, why: str) -> None: ...

    _pause_locks: dict[str, asyncio.Lock]
    _pause_timers: dict[str, asyncio.Task[None]]
    _resume_due: dict[str, str]
    _feature_tasks: set[asyncio.Task[None]]
    warning_lead_s: float = 10.0  # the warning tone comes this long before a secure pause ends

    def _init_pause_control(self) -> None:
        self._pause_locks = {}
        self._pause_timers = {}
        # call id → recording id: a secure pause whose automatic resume came while the customer's next
        # party was not known (refused then): resumed as soon as that hold ends (`_retry_due_resumes`)
        self._resume_due = {}
        self._feature_tasks = set()

    # ---- API / page ----
    async def pause(self, call_id: str, actor: Actor, *, reason: str = "", how: str = "api") -> dict[str, Any]:
        return await self._pause_resume(call_id, actor, pause=True, reason=reason, how=how)

    async def resume(self, call_id: str, actor: Actor, *, how: str = "api") -> dict[str, Any]:
        return await self._pause_resume(call_id, actor, pause=False, how=how)

    async def _pause_resume(
        self, call_id: str, actor: Actor, *, pause: bool, reason: str = "", how: str = "api"
    ) -> dict[str, Any]:
        node, call = self._find(call_id)
        rec = call.recording
        if actor.role == "agent":
            if not actor.agent_ext or (actor.agent_ext != call.agent and actor.agent_ext not in call.agents[-1:]):
                raise PauseRefused("scope", "agents may pause only their own calls")
            if rec is not None and not rec.decision.settings.agent_pause_allowed:
                raise PauseRefused("policy", "agent pause is not allowed for this call's account or number")
        await self._apply_pause(node, call, pause=pause, by=actor.label, how=how, reason=clean_reason(reason))
        return self._view(node, call)

    # ---- the one place a pause or resume happens ----
    async def _apply_pause(self, node: _Node, call: Call, *, pause: bool, by: str, how: str, reason: str = "") -> None:
        """Mask/unmask on the PBX, then the timeline entry, the journal and the secure-pause timers.
        One at a time per call, so an agent's code, the page and an automatic resume never race."""
        if call.recording is None or call.recording.stopping:  # (no lock kept for calls never recorded)
            raise PauseRefused("state", "the call is not being recorded")
        lock = self._pause_locks.setdefault(call.id, asyncio.Lock())
        async with lock:
            rec = call.recording
            if rec is None or rec.stopping:
                raise PauseRefused("state", "the call is not being recorded")
            ready = node.started.get(rec.id)
            if ready is not None and not ready.is_set():
                await asyncio.wait_for(ready.wait(), 10)  # the start is still being journaled
            if rec.timeline.transfer_muted or (not pause and call.silence_held):
                raise PauseRefused("state", "muted until the customer's next party is known (transfer)")
            if pause == rec.timeline.paused:
                raise PauseRefused("state", "already paused" if pause else "not paused")
            files = node.files.get(rec.id)
            if files is None or call.customer_leg is None:
                raise PauseRefused("state", "the recording's files are unknown")
            # The span listed is one the file is silent over: a pause starts once the PBX confirmed
            # the mute, a resume when the unmute was sent — the PBX may apply it before its answer
            # comes back (a real Asterisk under load: the customer back in the file 100 ms before the
            # answer), and a timeline listing silence over recorded audio would mislead an auditor.
            sent = time.time()
            try:
                if pause:
                    await node.driver.pause_recording(call.customer_leg, files)
                else:
                    await node.driver.resume_recording(call.customer_leg, files)
            except PbxUnavailable as e:
                raise PauseRefused("state", f"PBX not reachable: {e}") from e
            wall = time.time() if pause else sent
            if pause:
                entry = node.tracker.pause(call, by, wall)
                entry["how"] = how
                if reason:
                    entry["reason"] = reason
            else:
                entry = node.tracker.resume(call, by, wall)
                entry["resumed_how"] = how
            await self._journal(
                f"{'pause' if pause else 'resume'} of recording {rec.id}",
                journal.record_event,
                rec.id,
                "pause" if pause else "resume",
                wall=wall,
                offset_ms=int(entry["start_ms"] if pause else entry["end_ms"]),
                actor=by,
                detail=dict(entry),
                timeline=rec.timeline.as_dict(),
                state="paused" if pause else "recording",
            )
            self._arm_secure_pause(node, call, rec.id, rec.decision.settings.pause_max_seconds if pause else 0)
        self._notify(node, call)
        if not pause:
            await self._announce(node, call, "resume")  # when announcement_after_resume asks for it

    # ---- secure pause ----
    def _arm_secure_pause(self, node: _Node, call: Call, rec_id: str, limit_s: int, elapsed_s: float = 0.0) -> None:
        """(Re)arm the call's secure-pause timer, `elapsed_s` of the limit already gone; a limit of 0
        (no secure pause, or a resume) only disarms it."""
        self._disarm_pause_timer(call.id)
        schedule = secure_pause_schedule(limit_s, self.warning_lead_s)
        if schedule is not None:
            warn_at, resume_at = (max(0.0, t - elapsed_s) for t in schedule)
            self._start_pause_timer(node, call, rec_id, warn_at, resume_at, warn=True)

    def _disarm_pause_timer(self, call_id: str) -> None:
        old = self._pause_timers.pop(call_id, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()

    def _start_pause_timer(
        self, node: _Node, call: Call, rec_id: str, warn_at: float, resume_at: float, *, warn: bool
    ) -> None:
        self._disarm_pause_timer(call.id)
        task = asyncio.get_running_loop().create_task(self._secure_pause(node, call, rec_id, warn_at, resume_at, warn))
        self._pause_timers[call.id] = task

        def forget(t: asyncio.Task[None], cid: str = call.id) -> None:
            if self._pause_timers.get(cid) is t:
                del self._pause_timers[cid]

        task.add_done_callback(forget)

    async def _secure_pause(
        self, node: _Node, call: Call, rec_id: str, warn_at: float, resume_at: float, warn: bool
    ) -> None:
        await asyncio.sleep(warn_at)
        if call.recording is None or call.recording.id != rec_id or not call.recording.timeline.paused:
            return
        if call.agent_leg and warn:
            try:
                await node.driver.play_tone(call.agent_leg, TONES["warning"])
            except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
                log.warning("%s: secure pause warning tone on call %s: %s", node.driver.name, call.id, e)
        await asyncio.sleep(resume_at - warn_at)
        try:
            await self._apply_pause(node, call, pause=False, by="system", how="auto_resume")
            log.info("%s: secure pause of call %s ended by itself after %.0f s", node.driver.name, call.id, resume_at)
        except PauseRefused:
            rec = call.recording
            if rec is not None and rec.id == rec_id and not rec.stopping and rec.timeline.paused and call.silence_held:
                # a transfer holds the silence (the next party not known yet): the limit is kept, the
                # resume comes once that hold ends — never a pause left on for the rest of the call
                self._resume_due[call.id] = rec_id
                log.info("%s: secure pause of call %s ends when the transfer's hold does", node.driver.name, call.id)

    def _retry_due_resumes(self, node: _Node) -> None:
        """After each event: a secure pause whose time is up and whose hold (see `_secure_pause`) has
        ended is resumed now."""
        for cid, rec_id in list(self._resume_due.items()):
            call = node.tracker.call(cid)
            if call is None:
                continue  # another node's call, or ended (forgotten with its pause state)
            rec = call.recording
            if rec is None or rec.id != rec_id or rec.stopping or not rec.timeline.paused:
                del self._resume_due[cid]
                continue
            if call.silence_held or rec.timeline.transfer_muted:
                continue
            del self._resume_due[cid]
            self._start_pause_timer(node, call, rec_id, 0.0, 0.0, warn=False)  # the resume, at once (warned already)

    def _resume_secure_pause(self, node: _Node, call: Call) -> None:
        """A recording adopted after a restart while paused: its secure-pause limit still holds, counted
        from when the pause began (the timeline has it), so a pause that outlived the old controller
        still ends by itself — at once when its time is already up."""
        rec = call.recording
        if rec is None or not rec.timeline.paused or rec.timeline.transfer_muted:
            return
        started = rec.timeline.start_wall + rec.timeline.pauses[-1]["start_ms"] / 1000
        elapsed = max(0.0, time.time() - started)
        self._arm_secure_pause(node, call, rec.id, rec.decision.settings.pause_max_seconds, elapsed)

    def _forget_pause_state(self, call: Call) -> None:
        """The call's recording stopped: no timer may act on it any more."""
        task = self._pause_timers.pop(call.id, None)
        if task is not None:
            task.cancel()
        self._pause_locks.pop(call.id, None)
        self._resume_due.pop(call.id, None)

    # ---- phone codes ----
    def _on_feature(self, node: _Node, ev: FeatureCode) -> None:
        """A code dialled on a phone: decided and answered in a task of its own (a PBX command and a
        journal write), so the node's event stream goes on meanwhile."""
        call = node.tracker.call_for_leg(ev.leg)
        task = asyncio.get_running_loop().create_task(self._feature(node, call, ev))
        self._feature_tasks.add(task)
        task.add_done_callback(self._feature_tasks.discard)

    async def _feature(self, node: _Node, call: Call | None, ev: FeatureCode) -> None:
        decision = node.decisions.get(call.id) if call is not None else None
        verdict = decide(ev.code, call, ev.leg, decision)
        accepted, why = verdict.accepted, verdict.reason
        if accepted and call is not None:
            by = f"agent:{call.agent}" if call.agent else f"phone:{ev.leg}"
            try:
                if verdict.action in ("pause", "resume"):
                    await self._apply_pause(node, call, pause=verdict.action == "pause", by=by, how="phone")
                else:
                    await self._record_on_demand(node, call, by)
            except PauseRefused as e:  # the state changed meanwhile, or the PBX said no
                accepted, why = False, str(e)
        where = f"call {call.id}" if call is not None else f"leg {ev.leg}"
        if accepted:
            log.info("%s: phone code %s on %s done", node.driver.name, ev.code, where)
        else:
            log.info("%s: phone code %s on %s refused: %s", node.driver.name, ev.code, where, why)
        try:
            await node.driver.feature_reply(ev.leg, accepted)
        except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
            log.warning("%s: answer to phone code %s on %s: %s", node.driver.name, ev.code, where, e)

    async def _record_on_demand(self, node: _Node, call: Call, by: str) -> None:
        """Start recording a call its policy did not record, from this moment: the decision becomes
        `record` with the source `on_demand:<who>` (in the journal's policy, the manifest and the
        API's "why"), the timeline starts now, and the start runs in the call's chain like one at
        the bridge. PauseRefused when the PBX did not start it (the agent hears the refusal)."""
        decision = node.decisions.get(call.id)
        if decision is None or call.customer_leg is None:
            raise PauseRefused("state", "the call has no customer leg to record")
        wanted = replace(decision, record=True, sources={**decision.sources, "record": f"on_demand:{by}"})
        node.decisions[call.id] = wanted
        rec_id = self._register_start(node, call, wanted, time.time())
        self._chain(node, Decide(call))
        task = node.chains.get(id(call))
        if task is not None:
            await task
        if call.recording is None or call.recording.id != rec_id or rec_id not in node.files:
            raise PauseRefused("state", "the PBX did not start the recording")

    async def drain_features(self) -> None:
        """Wait for phone codes being answered (tests, shutdown)."""
        while self._feature_tasks:
            await asyncio.gather(*list(self._feature_tasks), return_exceptions=True)


__all__ = ["HOW", "PauseControl", "clean_reason"]
