"""Starting a recording: the policy's decision on an answered call, the recording registered with
the state machine, its PBX start command, and its journal row — mixed into
`controller.recorder.Recorder`.

Apart from the event path (recorder.py) because it is its own concern: the one place a recording
begins, whether at the bridge (`_decide_now`, then `_decide` in the call's chain), on the agent's
request (`_register_start`, from pause_control) or for a call found live at a resync (resync).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from controller.drivers.base import PbxCommandError, PbxUnavailable, RecordingRequest, SpoolFiles, StartInDoubt
from controller.ids import new_id
from controller.numbering import InvalidNumber
from controller.policy import PolicyDecision, PolicySet
from controller.recorder_node import _Node, _open_once
from storage import journal

if TYPE_CHECKING:
    from controller.calls import Call
    from controller.metrics import Metrics

log = logging.getLogger("callrec.recorder")


class RecordingStarter:
    """Mixed into `controller.recorder.Recorder` (which provides the attributes declared below)."""

    if TYPE_CHECKING:
        metrics: Metrics
        spool_dir: str
        _policy: Callable[[], PolicySet]
        _journal: Callable[..., Awaitable[Any]]

        def _notify(self, node: _Node, call: Call, *, ended: bool = False) -> None: ...
        def _start_announcements(self, node: _Node, call: Call, *, adopted: bool = False) -> None: ...

    def _resolve(self, node: _Node, call: Call) -> PolicyDecision:
        ps = self._policy()
        number = call.account_number or None
        try:
            return ps.resolve(
                direction=call.direction, number=number, dialplan=call.record_override, account=call.account
            )
        except InvalidNumber:
            return ps.resolve(
                direction=call.direction, number=None, dialplan=call.record_override, account=call.account
            )

    def _decide_now(self, node: _Node, call: Call, wall: float) -> None:
        """Resolve policy and, when it says record, register the recording with the state machine
        at once (pure and fast), so a hangup or transfer that follows is seen against it."""
        if call.consultation_of is not None:
            # the agent's consultation belongs to the customer call it was made from (its policy)
            decision = (node.decisions.get(call.consultation_of) or self._resolve(node, call)).for_consultation()
        else:
            decision = self._resolve(node, call)
        node.decisions[call.id] = decision
        call.account = decision.account_id
        if decision.record and call.customer_leg is not None:
            self._register_start(node, call, decision, wall)

    def _register_start(self, node: _Node, call: Call, decision: PolicyDecision, wall: float) -> str:
        """A recording of `call` begins now (at the bridge, or when the agent asks for it): registered
        with the state machine, its PBX command sent; the journal row follows in the call's chain
        (`Decide`). Returns the recording id."""
        rec_id = new_id()
        node.tracker.recording_started(call, rec_id, decision, wall)
        node.started[rec_id] = asyncio.Event()
        node.files_known[rec_id] = asyncio.Event()
        begin = getattr(node.driver, "begin_recording", None)
        if begin is not None:
            # The command goes to the PBX now, in the step that handled the bridge event, ahead of
            # the journal writes and other calls' work queued on the loop (issue #15). The journal
            # row follows in the call's chain, as before: a crash in between leaves a recording
            # running on the PBX that the restart's resync adopts (Asterisk, by its tags) or
            # starts again (FreeSWITCH), as it did when the command went out from the chain.
            node.pending_starts[rec_id] = begin(self._request(call, rec_id))
        return rec_id

    async def _decide(self, node: _Node, call: Call) -> None:
        rec = call.recording
        decision = node.decisions[call.id]
        if rec is None or rec.id not in node.started:
            self.metrics.inc("callrec_calls_not_recorded_total", pbx=node.driver.name, direction=call.direction.value)
            if not decision.record:
                why = decision.record_reason()
            elif call.customer_leg is None:
                why = "the policy says record, but the call has no customer leg to record"
            else:
                why = "the policy says record, but no recording was started for it"
            log.info("%s: %s call %s not recorded: %s", node.driver.name, call.direction.value, call.id, why)
            self._notify(node, call)
            return
        rec_id = rec.id
        wall = rec.timeline.start_wall
        req = self._request(call, rec_id)
        ready = node.started[rec_id]
        error = ""
        pending = node.pending_starts.pop(rec_id, None)
        try:
            files = await (pending if pending is not None else node.driver.start_recording(req))
        except StartInDoubt as e:
            # Journaled as running into the files the command named (the PBX may have started it);
            # the resync after the reconnect starts it again, idempotently, if the call is still up.
            files = e.files
            node.starts_in_doubt[rec_id] = dataclasses.replace(req, files=files)
            log.warning(
                "%s: the link dropped while recording %s of call %s was starting (%s); "
                "it is started again when the link is back",
                node.driver.name,
                rec_id,
                call.id,
                e,
            )
        except (PbxCommandError, PbxUnavailable, TimeoutError) as e:
            error = str(e) or type(e).__name__
            files = SpoolFiles()
        if not error:
            node.files[rec_id] = files  # a transfer mute or a stop may go to the PBX before the journal row
        known = node.files_known.pop(rec_id, None)
        if known is not None:
            known.set()
        call_row, rec_row = self._rows(node, call, decision, rec_id, files, wall)
        call_id = await self._journal(f"start of recording {rec_id}", _open_once, call_row, rec_row)
        if call_id != call.id:
            node.tracker.adopt(call, call_id, rec_id, decision, rec.timeline.as_dict(), wall)
            call.recording = rec
        if error:
            log.error("%s: recording of call %s failed to start: %s", node.driver.name, call.id, error)
            await self._journal(
                f"failure of recording {rec_id}", journal.fail_recording, rec_id, wall=time.time(), error=error
            )
            self.metrics.inc("callrec_recordings_failed_total", pbx=node.driver.name)
            call.recording = None
        else:
            self.metrics.inc("callrec_recordings_started_total", pbx=node.driver.name, direction=call.direction.value)
            self._start_announcements(node, call)
        ready.set()
        self._notify(node, call)

    def _request(self, call: Call, rec_id: str) -> RecordingRequest:
        assert call.customer_leg is not None
        return RecordingRequest(
            recording_id=rec_id,
            call_id=call.id,
            customer_leg=call.customer_leg,
            spool_dir=self.spool_dir,  # the controller's view; the driver maps it to the PBX's record_dir
        )

    def _rows(
        self, node: _Node, call: Call, decision: PolicyDecision, rec_id: str, files: SpoolFiles, wall: float
    ) -> tuple[journal.CallRow, journal.RecordingRow]:
        call_row = journal.CallRow(
            id=call.id,
            pbx=node.driver.name,
            pbx_call_id=call.customer_leg or call.first_leg,
            account_id=decision.account_id,
            direction=call.direction.value,
            customer_number=call.customer_number,
            account_number=decision.number or call.account_number,
            agent=call.agent,
            ring_group=call.ring_group,
            started_wall=call.started_wall,
            answered_wall=call.answered_wall,
        )
        assert call.recording is not None
        rec_row = journal.RecordingRow(
            id=rec_id,
            pbx=node.driver.name,
            pbx_kind=node.driver.kind,
            customer_leg=call.customer_leg or "",
            account_id=decision.account_id,
            direction=call.direction.value,
            customer_number=call.customer_number,
            account_number=decision.number or call.account_number,
            agent=call.agent,
            policy=decision.as_dict(),
            dual_channel=decision.settings.dual_channel,
            spool_files=files.as_dict(),
            timeline=call.recording.timeline.as_dict(),
            started_wall=wall,
            retention_days=decision.settings.retention_days,
        )
        return call_row, rec_row
