"""The live view of the calls: the read side of `controller.live.LiveCallSource` (`live_calls`,
`live_call`, and change notifications through `subscribe` / `unsubscribe`) — mixed into
`controller.recorder.Recorder`.

Apart from the call path (recorder.py) because it only renders the trackers' state for the API and
fans it out to subscribers; it never changes a call.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controller.live import CallNotFound
from controller.recorder_node import _Node

if TYPE_CHECKING:
    from controller.calls import Call


def _iso(wall: float | None) -> str | None:
    return datetime.fromtimestamp(wall, UTC).isoformat() if wall else None


class LiveView:
    """Mixed into `controller.recorder.Recorder` (which provides the attributes declared below)."""

    if TYPE_CHECKING:
        nodes: dict[str, _Node]

    _subscribers: set[asyncio.Queue[dict[str, Any]]]

    def _init_live_view(self) -> None:
        self._subscribers = set()

    def _find(self, call_id: str) -> tuple[_Node, Call]:
        for node in self.nodes.values():
            call = node.tracker.call(call_id)
            if call is not None and not call.ended:
                return node, call
        raise CallNotFound(f"no live call {call_id}")

    def _view(self, node: _Node, call: Call) -> dict[str, Any]:
        rec = call.recording
        decision = rec.decision if rec else node.decisions.get(call.id)
        if rec is None:
            state = "not_recording"
        elif rec.stopping:
            state = "stopped"
        elif rec.timeline.paused:
            state = "paused"
        else:
            state = "recording"
        return {
            "id": call.id,
            "pbx": node.driver.name,
            "direction": call.direction.value,
            "customer_number": call.customer_number,
            "account_number": call.account_number,
            "agent": call.agent,
            "agents": list(call.agents),
            "ring_group": call.ring_group,
            "started_at": _iso(call.started_wall),
            "answered_at": _iso(call.answered_wall),
            "recording": {
                "id": rec.id if rec else None,
                "state": state,
                "decision": (
                    {
                        "record": decision.record,
                        "sources": dict(decision.sources),
                        "settings": decision.settings.as_dict(),
                    }
                    if decision
                    else None
                ),
            },
            "timeline": rec.timeline.as_dict() if rec else None,
        }

    def live_calls(self) -> list[dict[str, Any]]:
        """Calls on the PBX, plus ended ones whose journal writes are still in flight (a call leaves
        this list only once its end is journaled)."""
        out: list[dict[str, Any]] = []
        for node in self.nodes.values():
            calls = {id(c): c for c in node.tracker.live_calls()}
            calls.update(node.chain_calls)
            out.extend(self._view(node, c) for c in calls.values() if c.decided)
        return out

    def live_call(self, call_id: str) -> dict[str, Any] | None:
        try:
            node, call = self._find(call_id)
        except CallNotFound:
            return None
        return self._view(node, call)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def _notify(self, node: _Node, call: Call, *, ended: bool = False) -> None:
        if not self._subscribers:
            return
        msg = {"type": "call.ended" if ended else "call.updated", "call": self._view(node, call)}
        for q in self._subscribers:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(msg)
