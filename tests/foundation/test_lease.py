"""Per-node leases spread over live instances, on a real PostgreSQL.

Several LeaseManagers (one per "instance") run in this process against the same database; each node's
hooks stand for the PBX link (on_acquired = connect, on_lost = disconnect). A shared Links record says
who is connected to which node, and flags any moment where two instances are connected at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable

import asyncpg

from controller.assignment import Member, assign
from controller.lease import LeaseManager, NodeHooks, current_holder, try_acquire, within
from storage import db
from tests.freeswitch.test_journal_outage import Relay, via

TTL = 0.8


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


class Links:
    """Who is 'connected' to each node, as the lease hooks say; overlaps are recorded, not raised."""

    def __init__(self) -> None:
        self.up: dict[str, set[str]] = {}
        self.overlaps: list[tuple[str, set[str]]] = []
        self.events: list[str] = []

    def hooks(self, who: str, node: str) -> NodeHooks:
        async def connect() -> None:
            others = self.up.setdefault(node, set())
            if others:
                self.overlaps.append((node, set(others) | {who}))
            others.add(who)
            self.events.append(f"{who}+{node}")

        async def disconnect() -> None:
            self.up.setdefault(node, set()).discard(who)
            self.events.append(f"{who}-{node}")

        return NodeHooks(connect, disconnect)

    def owners(self) -> dict[str, str]:
        out = {}
        for node, who in self.up.items():
            assert len(who) <= 1, f"{node} driven by {who}"
            if who:
                out[node] = next(iter(who))
        return out


class Instance:
    def __init__(self, pool: asyncpg.Pool, name: str, nodes: list[str], links: Links) -> None:
        self.name = name
        self.manager = LeaseManager(
            pool,
            name=name,
            token=f"{name}/{secrets.token_hex(3)}",
            nodes={n: links.hooks(name, n) for n in nodes},
            ttl=TTL,
        )
        self.task = asyncio.create_task(self.manager.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(pred: Callable[[], bool], limit: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < limit, f"not reached within {limit} s: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def expected(names: list[str], nodes: list[str]) -> dict[str, str]:
    return assign([Member(n, frozenset(nodes)) for n in names])


async def test_join_rebalances_leave_and_kill_hand_the_nodes_to_the_survivors(pool: asyncpg.Pool, db_dsn: str) -> None:
    while True:  # names of this run (the session database is shared) that give each instance a node
        tag = secrets.token_hex(3)
        nodes = [f"{tag}-fs{i}" for i in range(1, 4)] + [f"{tag}-ast{i}" for i in range(1, 4)]
        names = [f"{tag}-ctl-a", f"{tag}-ctl-b", f"{tag}-ctl-c"]
        if len(set(expected(names, nodes).values())) == 3:
            break
    links = Links()
    a = Instance(pool, names[0], nodes, links)
    await until(lambda: links.owners() == dict.fromkeys(nodes, names[0]), 10, "a alone drives every node")

    # join: b and c take their share (rendezvous), a hands those over first
    b_pool = await db.create_pool(db_dsn, min_size=1, max_size=2)
    b = Instance(b_pool, names[1], nodes, links)
    c = Instance(pool, names[2], nodes, links)
    three = expected(names, nodes)
    assert len(set(three.values())) == 3, "the drill's names must spread the nodes over all three"
    await until(lambda: links.owners() == three, 10, "nodes spread over a, b, c")
    rows = {
        r["pbx"]: r["holder"] for r in await pool.fetch("SELECT pbx, holder FROM pbx_leases WHERE pbx = ANY($1)", nodes)
    }
    assert rows == three, "the lease rows say the same as the links"

    # leave (graceful stop): c's nodes go to a and b, without waiting for c's leases to expire
    await c.stop()
    two = expected(names[:2], nodes)
    await until(lambda: links.owners() == two, 10, "c's nodes taken over after it left")

    # kill (no release): b's pool dies under it, so nothing is released; its nodes move to a only
    # once b's leases have expired in the database
    b_nodes = [n for n, who in two.items() if who == names[1]]
    b_pool.terminate()
    await b.stop()  # its hooks ran (a killed process's links die with it); the rows stay
    await until(lambda: links.owners() == dict.fromkeys(nodes, names[0]), 10, "b's nodes taken over after its death")
    for node in b_nodes:
        row = await pool.fetchrow("SELECT holder, epoch FROM pbx_leases WHERE pbx = $1", node)
        assert row["holder"] == names[0] and row["epoch"] >= 2  # a → b → a
    assert links.overlaps == [], f"two instances drove a node at once: {links.overlaps}"
    await a.stop()
    assert links.owners() == {}
    assert [await current_holder(pool, n) for n in nodes] == [None] * len(nodes), "a stop releases at once"


async def test_a_partitioned_holder_stands_down_as_soon_as_it_sees_the_lease_taken(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    """The holder cut off from the database keeps its link (a database outage must not lose calls);
    a peer takes the node once the lease expired; when the partition heals, the old holder finds the
    lease taken and disconnects at its first round — the database never shows two holders."""
    while True:  # names for which b, not a, is the node's rendezvous owner (so b keeps it after the heal)
        tag = secrets.token_hex(3)
        node = f"{tag}-fs1"
        if expected([f"{tag}-a", f"{tag}-b"], [node]) == {node: f"{tag}-b"}:
            break
    relay = Relay(*_host_port(db_dsn))
    await relay.start()
    a_pool = await db.create_pool(via(db_dsn, relay.port), min_size=1, max_size=2)
    links = Links()
    a = Instance(a_pool, f"{tag}-a", [node], links)
    try:
        await until(lambda: links.owners() == {node: f"{tag}-a"}, 10, "a drives the node")
        relay.cut()
        b = Instance(pool, f"{tag}-b", [node], links)
        await until(lambda: f"{tag}-b" in links.up.get(node, set()), 10, "b takes the node after a's lease expired")
        assert f"{tag}-a" in links.up[node], "a kept its link through the outage (by design)"
        assert await current_holder(pool, node) == f"{tag}-b"
        relay.restore()
        await until(lambda: links.up[node] == {f"{tag}-b"}, 10, "a stands down once it sees the lease taken")
        assert links.events[-1] == f"{tag}-a-{node}"
        assert a.manager.active == set()
        await b.stop()
    finally:
        await a.stop()
        with contextlib.suppress(Exception):
            await db.close_pool(a_pool)  # its connections went through the cut relay
        await relay.close()


async def test_the_active_instance_keeps_acting_while_the_database_is_unreachable(db_dsn: str) -> None:
    """A database outage must not drop the PBX link (calls of the outage would be lost)."""
    own = await db.create_pool(db_dsn, min_size=1, max_size=2)
    links = Links()
    node = f"{secrets.token_hex(3)}-fs-d"
    solo = Instance(own, "solo", [node], links)
    await until(lambda: links.owners() == {node: "solo"}, 10, "solo drives the node")
    own.terminate()  # every query now fails as with a dead server
    await asyncio.sleep(4 * TTL)
    assert links.owners() == {node: "solo"} and solo.manager.is_active(node)
    solo.task.cancel()
    await asyncio.gather(solo.task, return_exceptions=True)


async def test_a_survivor_takes_a_dead_members_node_as_its_rows_expire_not_at_its_next_round(
    pool: asyncpg.Pool,
) -> None:
    """The survivor's regular round comes every 30 s here (ttl 120 s); the dead member's rows run out
    1.5 s after its last round. The survivor still takes the node right then: its round is brought
    forward to that expiry, read from the database."""
    while True:  # names for which the dead member, not the survivor, owns the node while both live
        tag = secrets.token_hex(3)
        node, dead, survivor = f"{tag}-fs1", f"{tag}-dead", f"{tag}-survivor"
        if expected([dead, survivor], [node]) == {node: dead}:
            break
    links = Links()
    corpse = LeaseManager(pool, name=dead, token=f"{dead}/1", nodes={node: links.hooks(dead, node)}, ttl=1.5)
    await corpse.round()  # its last round (member row + lease for 1.5 s); then kill -9: no leave()
    assert corpse.is_active(node) and await current_holder(pool, node) == dead
    links.up[node].discard(dead)  # its PBX link died with it
    s = LeaseManager(pool, name=survivor, token=f"{survivor}/1", nodes={node: links.hooks(survivor, node)}, ttl=120)
    task = asyncio.create_task(s.run())
    try:
        await until(lambda: s.rounds >= 1, 10, "the survivor's first round")
        assert not s.is_active(node), "the dead member's lease still ran at the first round"
        await until(lambda: s.is_active(node), 20, "taken soon after the expiry, long before the next round (30 s)")
        assert s.rounds == 2, "taken by one round brought forward to the expiry"
        row = await pool.fetchrow("SELECT holder, epoch FROM pbx_leases WHERE pbx = $1", node)
        assert (row["holder"], row["epoch"]) == (survivor, 1)
        assert links.owners() == {node: survivor} and links.overlaps == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_within_never_swallows_a_cancel_that_comes_as_the_work_finishes() -> None:
    """asyncio.wait_for (Python 3.11) returns the result instead of raising when the caller is
    cancelled right as the work finishes: the caller goes on as if never stopped."""

    async def work() -> int:
        await asyncio.sleep(0)
        return 1

    async def caller() -> None:
        await within(work(), 10)
        await asyncio.sleep(30)  # a loop's next step: reached only if the cancel was swallowed

    for steps in range(12):  # the cancel comes after 0, 1, ... loop steps: before, at and after the finish
        task = asyncio.create_task(caller())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled(), f"a cancel after {steps} loop steps did not stop the caller"


async def test_stopping_the_lease_loop_stops_it_even_as_a_database_call_of_its_round_finishes(
    pool: asyncpg.Pool,
) -> None:
    """The lease loop is cancelled at the very moment its round's first database call finishes (the
    race behind a stop that once hung this module until the pytest timeout): it still stops, and
    stands down (its member row expired)."""
    links = Links()
    node = f"{secrets.token_hex(3)}-fs-stop"
    m = LeaseManager(pool, name=f"{node}-ctl", token=f"{node}/1", nodes={node: links.hooks("m", node)}, ttl=TTL)
    before = asyncio.all_tasks()
    run = asyncio.create_task(m.run())
    for _ in range(100_000):  # the round's database calls run as tasks of their own
        if calls := asyncio.all_tasks() - before - {run}:
            break
        await asyncio.sleep(0)
    assert calls, "the round started no database call"
    for call in calls:
        call.add_done_callback(lambda _: run.cancel())
    done, _ = await asyncio.wait({run}, timeout=10)
    if not done:
        run.cancel()
        await asyncio.wait({run}, timeout=10)
    assert done, "the lease loop went on after it was stopped"
    alive = await pool.fetchval(
        "SELECT count(*) FROM controller_members WHERE token = $1 AND expires_at > now()", m.token
    )
    assert alive == 0, "it stood down (member row expired)"


def _host_port(dsn: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    u = urlsplit(dsn)
    return u.hostname or "127.0.0.1", u.port or 5432
