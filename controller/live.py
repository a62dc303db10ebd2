"""What the API needs from the recorder: live calls, change notifications, pause/resume.

The recorder implements `LiveCallSource`; the API depends only on this protocol, so either side can
change inside without touching the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol


class CallNotFound(LookupError):
    """No live call with that id (or not visible to the caller)."""


class PauseRefused(PermissionError):
    """Pause/resume not allowed: `reason` is 'policy' (agent pause disabled for this call's account or
    number), 'scope' (not the caller's call), 'state' (not recording / already paused) or 'input' (a
    bad reason code)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Actor:
    """Who asks: a user of the API (role admin|supervisor|agent, agent extension if any)."""

    name: str
    role: str
    agent_ext: str = ""

    @property
    def label(self) -> str:
        return f"agent:{self.agent_ext}" if self.role == "agent" and self.agent_ext else f"user:{self.name}"


class LiveCallSource(Protocol):
    def live_calls(self) -> list[dict[str, Any]]:
        """JSON-ready views of every live call: id, pbx, direction, customer_number, account_number,
        agent, ring_group, started_at, answered_at (ISO 8601), recording: {id, state
        ('recording'|'paused'|'not_recording'|'stopped'), decision: {record, sources, settings}},
        timeline (the recording timeline so far)."""
        ...

    def live_call(self, call_id: str) -> dict[str, Any] | None: ...

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of changes {"type": "call.updated"|"call.ended", "call": {...view...}}; bounded,
        oldest dropped when a slow consumer falls behind."""
        ...

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...

    async def pause(self, call_id: str, actor: Actor, *, reason: str = "", how: str = "api") -> dict[str, Any]:
        """Pause (mask) the call's recording; raises CallNotFound or PauseRefused. An agent may pause
        only their own call and only when policy allows agent pause; supervisors and admins always
        may (the API checks their scope before calling). `reason` (an optional short code) and `how`
        (api | page | phone) are kept with the pause. Returns the updated call view."""
        ...

    async def resume(self, call_id: str, actor: Actor, *, how: str = "api") -> dict[str, Any]: ...
