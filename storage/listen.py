"""A PostgreSQL LISTEN held for the life of a task, set up again after every loss.

Three parts of the service wait for notifications this way (finalize wake-ups, policy changes, the
token cache). Each used to hold a pool connection by hand, and one of them leaked it: a second
cancellation, while its clean-up awaited UNLISTEN, skipped the release, and `Pool.close()` then
waited forever at shutdown. Here the connection goes back through `Pool.release()`, which is
shielded from cancellation and resets the session (UNLISTEN *, listeners dropped), so no path out of
a listener keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

DB_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What a lost or unreachable database raises."""

CHECK_SECONDS = 30.0
"""How often a held connection is also checked by hand, should a termination callback be missed."""


@contextlib.asynccontextmanager
async def listening(
    pool: asyncpg.Pool, channel: str, on_notify: Callable[..., Any], *, dsn: str = ""
) -> AsyncIterator[asyncpg.Connection]:
    """A connection that LISTENs on `channel` while the block runs: one of `pool`'s, or a connection
    of its own to `dsn` (the pool stays whole). Given back even if the block is cancelled twice."""
    conn = await (asyncpg.connect(dsn) if dsn else pool.acquire())
    try:
        await conn.add_listener(channel, on_notify)
        yield conn
    finally:
        try:
            if not conn.is_closed():
                await conn.remove_listener(channel, on_notify)
        except DB_DOWN:
            pass
        finally:  # runs even when a cancellation lands in the UNLISTEN above
            if dsn:
                await asyncio.shield(conn.close(timeout=5))
            else:
                await pool.release(conn)  # shielded by asyncpg; its reset also runs UNLISTEN *


async def wait_lost(conn: asyncpg.Connection) -> None:
    """Return when `conn` is closed (by the server, the network or PostgreSQL going down)."""
    lost = asyncio.Event()

    def on_lost(_conn: Any) -> None:
        lost.set()

    conn.add_termination_listener(on_lost)
    try:
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), CHECK_SECONDS)
    finally:
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(on_lost)


async def listen_forever(
    pool: asyncpg.Pool,
    channel: str,
    on_notify: Callable[..., Any],
    *,
    on_listening: Callable[[], None] = lambda: None,
    on_lost: Callable[[], None] = lambda: None,
    dsn: str = "",
    max_delay: float = 10.0,
) -> None:
    """LISTEN on `channel` until cancelled. `on_listening` runs each time the LISTEN is (again) in
    place, so a caller can catch up on what it may have missed; `on_lost` each time it is not."""
    delay = 0.5
    while True:
        try:
            async with listening(pool, channel, on_notify, dsn=dsn) as conn:
                delay = 0.5
                on_listening()
                try:
                    await wait_lost(conn)
                finally:
                    on_lost()
            log.warning("the connection listening on %s was lost; listening again", channel)
        except DB_DOWN as e:
            log.warning("cannot listen on %s (%s); trying again in %.1f s", channel, e, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
