"""A serialized mirror of the live calls: one encoded body per (version, scope), and the SSE fan-out.

With 1,000 live calls, building and JSON-encoding every view on every request dominated the API's
latency; later, joining 742 KB of pre-encoded fragments per request still cost more than sending
them. So:

- Each call's JSON is encoded once per change (`_Entry`), with a short digest of it.
- `view(scope)` returns the `{"calls": [...]}` body of one scope (a user's resolved view scope; users
  with equal scopes share it), built once per `version` of the index — N requests of the same scope
  between two changes cost one join. Its strong ETag is a digest of the calls' digests in order, so it
  changes exactly when that scope's body does (a change elsewhere leaves it, and its 304s, alone).
  A gzip copy is made on first demand and kept with the body.
- The index subscribes to the recorder's change queue once and applies pending changes before every
  answer, so it is never staler than the recorder. If that queue ever filled up (changes may have
  been dropped) it rebuilds from a fresh snapshot.
- SSE clients subscribe HERE, not to the recorder: a change is encoded once and handed to every
  subscriber whose scope covers the call. A subscriber that falls behind is not fed partial history:
  its queue is cleared and it is told to send a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.live import LiveCallSource
from controller.permissions import Scope, call_parties

log = logging.getLogger(__name__)

GZIP_LEVEL = 1
"""742 KB of live calls → 27 KB in ~3 ms (level 6: 19 KB in ~5 ms); made once per version and scope."""
BODY_CACHE_SCOPES = 256
SUBSCRIBER_QUEUE = 1000


@dataclass(frozen=True)
class _Entry:
    groups: frozenset[str]
    agents: frozenset[str]
    json: bytes
    digest: bytes


def _entry(view: dict[str, Any]) -> _Entry:
    groups, agents = call_parties(view)
    encoded = dumps(view).encode()
    return _Entry(frozenset(groups), frozenset(agents), encoded, hashlib.blake2b(encoded, digest_size=16).digest())


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


@dataclass
class Body:
    """One scope's `{"calls": [...]}` at one version of the index, with its strong ETag."""

    body: bytes
    etag: str
    _gzip: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, entries: Iterable[_Entry]) -> Body:
        parts, digest = [], hashlib.blake2b(digest_size=16)
        for e in entries:
            parts.append(e.json)
            digest.update(e.digest)
        return cls(b'{"calls":[' + b",".join(parts) + b"]}", f'"{digest.hexdigest()}"')

    @property
    def gzip_etag(self) -> str:
        """The ETag of the gzip representation (a different byte sequence needs a different strong tag)."""
        return self.etag[:-1] + '-gz"'

    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
        return self._gzip


@dataclass(eq=False)  # identity: kept in a set
class Subscriber:
    """One SSE stream: its scope (may be narrowed while open) and its queue of encoded events.

    Queue items are (groups, agents, event bytes); `b""` events are wake-ups (see `wake`).
    """

    scope: Scope
    queue: asyncio.Queue[tuple[frozenset[str], frozenset[str], bytes]] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    resync: bool = False
    """True when events were dropped (queue full, index rebuilt): send a fresh snapshot first."""

    def offer(self, entry: _Entry, event: bytes) -> None:
        if not self.scope.covers(entry.groups, entry.agents):
            return
        if self.queue.full():
            self.resync_now()
            return
        self.queue.put_nowait((entry.groups, entry.agents, event))

    def resync_now(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.resync = True
        self.wake()

    def wake(self) -> None:
        """Make the stream's handler look at its state (resync, token re-check) now."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((frozenset(), frozenset(), b""))


class LiveIndex:
    def __init__(self, live: LiveCallSource) -> None:
        self.live = live
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.calls: dict[str, _Entry] = {}
        self.version = 0
        self.subscribers: set[Subscriber] = set()
        self._bodies: dict[Scope, Body] = {}
        self._bodies_version = -1
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Apply changes as they come (so SSE subscribers get them), not only when a request asks."""
        if self._task is None:
            self.refresh()
            self._task = asyncio.get_running_loop().create_task(self._consume(), name="callrec-live-index")

    async def _consume(self) -> None:
        assert self.queue is not None
        while True:
            change = await self.queue.get()
            try:
                if 0 < self.queue.maxsize <= self.queue.qsize() + 1:  # it was full: changes may have been dropped
                    self._rebuild()
                else:
                    self._apply(change)
                    self.refresh()
            except Exception:  # one bad view must not stop the live list and every SSE stream
                log.exception("live-call index: change not applied, rebuilding from the recorder")
                self._rebuild()

    def refresh(self) -> None:
        if self.queue is None:
            self.queue = self.live.subscribe()
            self._rebuild()
        elif self.queue.empty():  # the usual case on a request: nothing new
            return
        elif self.queue.full():
            self._rebuild()
        else:
            while True:
                try:
                    change = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self._apply(change)

    def _apply(self, change: dict[str, Any]) -> None:
        call = change.get("call") or {}
        if "id" not in call:
            return
        kind = "call.ended" if change.get("type") == "call.ended" else "call.updated"
        entry = _entry(call)
        if kind == "call.ended":
            self.calls.pop(call["id"], None)
        else:
            self.calls[call["id"]] = entry
        self.version += 1
        if self.subscribers:
            event = b'event: %s\ndata: {"type":"%s","call":%s}\n\n' % (kind.encode(), kind.encode(), entry.json)
            for sub in self.subscribers:
                sub.offer(entry, event)

    def _rebuild(self) -> None:
        assert self.queue is not None
        while not self.queue.empty():  # everything queued so far is in the snapshot below
            self.queue.get_nowait()
        self.calls = {view["id"]: _entry(view) for view in self.live.live_calls()}
        self.version += 1
        for sub in self.subscribers:
            sub.resync_now()

    def view(self, scope: Scope) -> Body:
        """The current body for `scope`; built at most once per version of the index."""
        self.refresh()
        if self._bodies_version != self.version:
            self._bodies.clear()
            self._bodies_version = self.version
        body = self._bodies.get(scope)
        if body is None:
            if scope.all:
                body = Body.of(self.calls.values())
            else:
                body = Body.of(e for e in self.calls.values() if scope.covers(e.groups, e.agents))
            if len(self._bodies) >= BODY_CACHE_SCOPES:
                del self._bodies[next(iter(self._bodies))]
            self._bodies[scope] = body
        return body

    def calls_json(self, scope: Scope) -> bytes:
        """`{"calls":[...]}` with the calls inside `scope`, already encoded."""
        return self.view(scope).body

    def snapshot_event(self, scope: Scope) -> bytes:
        return b"event: snapshot\ndata: " + self.view(scope).body + b"\n\n"

    def subscribe(self, scope: Scope) -> Subscriber:
        self.refresh()
        sub = Subscriber(scope)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.queue is not None:
            self.live.unsubscribe(self.queue)
            self.queue = None
