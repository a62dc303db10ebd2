"""High availability: exactly one instance acts for a PBX node; a standby takes over on expiry."""

import asyncio

import asyncpg

from controller.lease import NodeLease, current_holder, try_acquire


async def test_only_one_holder_at_a_time(pool: asyncpg.Pool) -> None:
    results = await asyncio.gather(*(try_acquire(pool, "fs-a", f"inst{i}", 5.0) for i in range(8)))
    assert sum(results) == 1
    winner = f"inst{results.index(True)}"
    assert await current_holder(pool, "fs-a") == winner
    assert await try_acquire(pool, "fs-a", winner, 5.0) is True  # renew
    assert await try_acquire(pool, "fs-a", "other", 5.0) is False


async def test_standby_takes_over_after_expiry(pool: asyncpg.Pool) -> None:
    assert await try_acquire(pool, "fs-b", "dead", 0.3)  # holder dies: never renews
    assert await try_acquire(pool, "fs-b", "standby", 0.3) is False
    await asyncio.sleep(0.4)
    assert await try_acquire(pool, "fs-b", "standby", 0.3) is True


async def test_node_lease_callbacks_follow_who_is_active(pool: asyncpg.Pool) -> None:
    events: list[str] = []

    def make(name: str) -> NodeLease:
        async def acquired() -> None:
            events.append(f"{name}+")

        async def lost() -> None:
            events.append(f"{name}-")

        return NodeLease(pool, "fs-c", name, ttl=0.6, on_acquired=acquired, on_lost=lost)

    a, b = make("a"), make("b")
    ta = asyncio.create_task(a.run())
    await asyncio.sleep(0.2)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)
    assert a.active and not b.active and events == ["a+"]
    ta.cancel()  # graceful stop releases the lease: b takes over quickly
    await asyncio.gather(ta, return_exceptions=True)
    for _ in range(40):
        if b.active:
            break
        await asyncio.sleep(0.05)
    assert b.active and events == ["a+", "b+"]
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)
    assert await current_holder(pool, "fs-c") is None


async def test_active_instance_keeps_acting_while_the_database_is_unreachable(db_dsn: str) -> None:
    """A database outage must not drop the PBX link (calls of the outage would be lost)."""
    from storage import db

    own = await db.create_pool(db_dsn, min_size=1, max_size=2)
    lost: list[str] = []

    async def acquired() -> None:
        pass

    async def on_lost() -> None:
        lost.append("lost")

    lease = NodeLease(own, "fs-d", "solo", ttl=0.3, on_acquired=acquired, on_lost=on_lost)
    task = asyncio.create_task(lease.run())
    for _ in range(40):
        if lease.active:
            break
        await asyncio.sleep(0.05)
    assert lease.active
    own.terminate()  # every query now fails as with a dead server
    await asyncio.sleep(1.0)  # more than 3 ttl without the database
    assert lease.active and lost == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
