"""A LiveCallSource holding call views in memory, for tests of the API's own rules.

It follows the recorder's contract (controller/live.py) closely, including the agent-pause policy
check, so the API's scope/role logic can be exercised for every role without a PBX. End-to-end tests
use the real recorder over the ESL simulator instead.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from controller.live import Actor, CallNotFound, PauseRefused


class MemoryLive:
    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.queues: list[asyncio.Queue[dict[str, Any]]] = []
        self.actions: list[tuple[str, str, str]] = []

    def put(self, call: dict[str, Any]) -> None:
        self.calls[call["id"]] = call
        self._emit("call.updated", call)

    def end(self, call_id: str) -> None:
        call = self.calls.pop(call_id)
        self._emit("call.ended", call)

    def _emit(self, kind: str, call: dict[str, Any]) -> None:
        for q in self.queues:
            if q.full():
                q.get_nowait()
            q.put_nowait({"type": kind, "call": copy.deepcopy(call)})

    def live_calls(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self.calls.values()]

    def live_call(self, call_id: str) -> dict[str, Any] | None:
        c = self.calls.get(call_id)
        return copy.deepcopy(c) if c else None

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
        self.queues.append(q)
        return q

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self.queues:
            self.queues.remove(queue)

    async def pause(self, call_id: str, actor: Actor, *, reason: str = "", how: str = "api") -> dict[str, Any]:
        return self._set(call_id, actor, "paused")

    async def resume(self, call_id: str, actor: Actor, *, how: str = "api") -> dict[str, Any]:
        return self._set(call_id, actor, "recording")

    def _set(self, call_id: str, actor: Actor, state: str) -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is None:
            raise CallNotFound(call_id)
        rec = call["recording"]
        if actor.role == "agent":
            if call.get("agent") != actor.agent_ext:
                raise PauseRefused("scope", "not your call")
            if not rec["decision"]["settings"].get("agent_pause_allowed"):
                raise PauseRefused("policy", "agent pause is not allowed for this call's account or number")
        want_from = "recording" if state == "paused" else "paused"
        if rec["state"] != want_from:
            raise PauseRefused("state", f"recording is {rec['state']}")
        rec["state"] = state
        self.actions.append((call_id, state, actor.label))
        self._emit("call.updated", call)
        return copy.deepcopy(call)


def call_view(
    call_id: str,
    *,
    agent: str,
    ring_group: str = "",
    customer: str = "+15557654321",
    agent_pause_allowed: bool = False,
    state: str = "recording",
) -> dict[str, Any]:
    return {
        "id": call_id,
        "pbx": "fs1",
        "direction": "inbound",
        "customer_number": customer,
        "account_number": "+15551234567",
        "agent": agent,
        "ring_group": ring_group,
        "started_at": "2026-11-21T08:00:00+00:00",
        "answered_at": "2026-11-21T08:00:03+00:00",
        "recording": {
            "id": None,
            "state": state,
            "decision": {
                "record": True,
                "sources": {"record": "account"},
                "settings": {"agent_pause_allowed": agent_pause_allowed},
            },
        },
        "timeline": {
            "segments": [{"party": agent, "class": "internal", "start_ms": 0, "end_ms": None}],
            "pauses": [],
            "transfers": [],
            "stop": None,
        },
    }
