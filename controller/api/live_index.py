"""A serialized mirror of the live calls, so `GET /api/v1/calls` costs a filter and a join.

With 1,000 live calls, building and JSON-encoding every view on every request would dominate the
API's latency. The index subscribes to the recorder's change queue like an SSE client and applies
pending changes (each carries the full call view) before answering, so it is never staler than the
recorder itself. If the queue ever filled up (changes may have been dropped) it rebuilds from a
fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from controller.live import LiveCallSource
from controller.permissions import Scope, call_parties


@dataclass(frozen=True)
class _Entry:
    groups: frozenset[str]
    agents: frozenset[str]
    json: bytes


def _entry(view: dict[str, Any]) -> _Entry:
    groups, agents = call_parties(view)
    return _Entry(frozenset(groups), frozenset(agents), dumps(view).encode())


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


class LiveIndex:
    def __init__(self, live: LiveCallSource) -> None:
        self.live = live
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.calls: dict[str, _Entry] = {}

    def refresh(self) -> None:
        if self.queue is None:
            self.queue = self.live.subscribe()
            self._rebuild()
        elif self.queue.full():
            self._rebuild()
        else:
            while True:
                try:
                    change = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                call = change.get("call") or {}
                if "id" not in call:
                    continue
                if change.get("type") == "call.ended":
                    self.calls.pop(call["id"], None)
                else:
                    self.calls[call["id"]] = _entry(call)

    def _rebuild(self) -> None:
        assert self.queue is not None
        while not self.queue.empty():  # everything queued so far is in the snapshot below
            self.queue.get_nowait()
        self.calls = {view["id"]: _entry(view) for view in self.live.live_calls()}

    def calls_json(self, scope: Scope) -> bytes:
        """`{"calls": [...]}` with the calls inside `scope`, already encoded."""
        self.refresh()
        if scope.all:
            parts = [e.json for e in self.calls.values()]
        else:
            parts = [e.json for e in self.calls.values() if scope.covers(e.groups, e.agents)]
        return b'{"calls":[' + b",".join(parts) + b"]}"

    def close(self) -> None:
        if self.queue is not None:
            self.live.unsubscribe(self.queue)
            self.queue = None
