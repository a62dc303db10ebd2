"""Principals of recently seen bearer tokens, so an API request costs no database round trip.

Measured (lab/bench/api_bench.py): checking the token in PostgreSQL on every request — one query
plus the pool's reset query when the connection goes back — was the largest per-request cost of
`GET /api/v1/calls`, larger than encoding or sending 742 KB, and it is paid by every route.

Every request is still checked: its token is looked up here, and an entry is only as old as the last
change to users, tokens, roles or ring-group memberships. What keeps that true:

- Every write that can revoke or narrow a token notifies `callrec_auth` at commit
  (storage/auth_notify.py), from this instance, another instance, or the CLI; this cache listens on a
  connection of its own and forgets everything on each notification.
- A write request answered by this instance (POST/PUT/PATCH/DELETE under /api/) clears the cache
  before its response leaves (auth.py), so its own client never races the notification.
- Entries are used only while the listening connection is up; without it (not yet connected, lost,
  PostgreSQL restarting) every request goes to the database as before. Entries also expire after
  `ttl` seconds, which bounds what a notification lost inside PostgreSQL could cost.
- Unknown or revoked tokens are never cached: a new token works at once, a bad one is re-checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from controller.permissions import Principal
from storage import users
from storage.auth_notify import AUTH_CHANNEL
from storage.listen import listen_forever

log = logging.getLogger(__name__)

TTL_SECONDS = 5.0
RECONNECT_SECONDS = 2.0
MAX_ENTRIES = 10_000
MIN_POOL_FOR_LISTENER = 4
"""The listener holds one pool connection for good; a smaller pool keeps all of them for queries."""


class AuthCache:
    def __init__(self, pool: asyncpg.Pool, *, ttl: float = TTL_SECONDS) -> None:
        self.pool = pool
        self.ttl = ttl
        self.generation = 0
        """Bumped whenever cached principals are dropped; open SSE streams re-check their token then."""
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def active(self) -> bool:
        """True while notifications arrive, i.e. while cached principals may be used."""
        return self._listening

    async def authenticate(self, token: str) -> Principal | None:
        if not self._listening:
            return await users.authenticate(self.pool, token)
        key = users.hash_token(token)
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        generation = self.generation
        principal = await users.authenticate(self.pool, token)
        # a change notified while the query ran may not be in its answer: then do not keep it
        if principal is not None and self._listening and generation == self.generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (principal, now)
        return principal

    def invalidate(self) -> None:
        self._entries.clear()
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next invalidation."""
        await self._changed.wait()

    def start(self) -> None:
        if self.pool.get_max_size() < MIN_POOL_FOR_LISTENER:
            log.info("token cache off: database.pool_max < %d (every request checks PostgreSQL)", MIN_POOL_FOR_LISTENER)
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="callrec-auth-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, *_: Any) -> None:
        self.invalidate()

    def _listening_again(self) -> None:
        self.invalidate()  # a change may have slipped by while not listening
        self._listening = True

    def _lost(self) -> None:
        self._listening = False
        self.invalidate()

    async def _run(self) -> None:
        """Hold a pool connection that LISTENs on `callrec_auth`; without it, no cached principal is used."""
        await listen_forever(
            self.pool,
            AUTH_CHANNEL,
            self._notified,
            on_listening=self._listening_again,
            on_lost=self._lost,
            max_delay=RECONNECT_SECONDS,
        )
