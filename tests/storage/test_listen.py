"""A held LISTEN gives its connection back however it ends, and comes back after the server drops it.

The first test is the shutdown hang of the demo and of CI: a listener cancelled a second time while
it cleaned up kept its pool connection, and `Pool.close()` then waited forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.db import close_pool, create_pool
from storage.listen import listen_forever

CHANNEL = "callrec_test_listen"


@pytest.fixture
async def small_pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_db, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        pool.terminate()


async def _wait(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), 20)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within 20 s") from None


async def test_cancelled_twice_while_stopping_the_connection_still_goes_back(small_pool: asyncpg.Pool) -> None:
    # the second cancel lands 0-8 event-loop turns, then 1-20 ms, into the clean-up
    for second_cancel_after in [*range(9), 0.001, 0.003, 0.01, 0.02]:
        listening = asyncio.Event()
        task = asyncio.create_task(listen_forever(small_pool, CHANNEL, lambda *_: None, on_listening=listening.set))
        await _wait(listening, "listening")
        task.cancel()  # what gather() does to its children when its own task is cancelled ...
        if isinstance(second_cancel_after, float):
            await asyncio.sleep(second_cancel_after)
        for _ in range(second_cancel_after if isinstance(second_cancel_after, int) else 0):
            await asyncio.sleep(0)
        task.cancel()  # ... and then the caller's own clean-up cancels them again
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(100):
            if small_pool.get_idle_size() == small_pool.get_size():
                break
            await asyncio.sleep(0.05)
        assert small_pool.get_idle_size() == small_pool.get_size(), (
            f"a connection is still held after the listener ended (second cancel after {second_cancel_after})"
        )
    try:
        await asyncio.wait_for(small_pool.close(), 20)
    except TimeoutError:
        raise AssertionError("Pool.close() waited for a connection the listener never gave back") from None


async def test_notifications_arrive_again_after_the_server_drops_the_listener(
    small_pool: asyncpg.Pool, fresh_db: str
) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()
    listening = asyncio.Event()
    times_listening = 0
    lost = 0

    def on_listening() -> None:
        nonlocal times_listening
        times_listening += 1
        listening.set()

    def on_lost() -> None:
        nonlocal lost
        lost += 1

    task = asyncio.create_task(
        listen_forever(
            small_pool,
            CHANNEL,
            lambda _c, _p, _ch, payload: got.put_nowait(payload),
            on_listening=on_listening,
            on_lost=on_lost,
            max_delay=0.5,
        )
    )
    admin = await asyncpg.connect(fresh_db)
    try:
        await _wait(listening, "listening")
        await admin.execute(f"NOTIFY {CHANNEL}, 'one'")
        assert await asyncio.wait_for(got.get(), 20) == "one"

        listening.clear()
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'"
        )
        assert killed == 1, "the listening backend was not found"
        await _wait(listening, "listening again after the server dropped the connection")
        assert (times_listening, lost) == (2, 1)
        await admin.execute(f"NOTIFY {CHANNEL}, 'two'")
        assert await asyncio.wait_for(got.get(), 20) == "two"
    finally:
        await admin.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert lost == 2, "the end of listening was not reported"


async def test_a_pool_with_a_connection_never_given_back_still_closes(fresh_db: str) -> None:
    """Shutdown does not hang on a connection asyncpg still counts as in use (Service.close uses this)."""
    pool = await create_pool(fresh_db, min_size=1, max_size=2)
    await pool.acquire()  # never released, as by a holder cancelled mid-acquire
    await asyncio.wait_for(close_pool(pool, wait=0.5), 20)
    assert pool.is_closing()
