"""PBX node leases in PostgreSQL: exactly one instance drives a node, nodes spread over instances.

Several service instances share the PBX nodes of a deployment. Each instance heartbeats a row in
`controller_members` (migration 010); the nodes are spread over the live rows by rendezvous hashing
(controller.assignment, pure), and a lease row per node in `pbx_leases` says who actually drives it.
The holder renews its leases every round (ttl/4); when an instance joins, the nodes it should now
drive are handed over cleanly (the old holder closes its PBX link first, then releases the lease, and
the new owner takes it at its next round); when an instance leaves (stop) it closes its links and
releases at once; when one dies (kill -9, host loss) its leases and its member row expire `ttl` after
its last round. A survivor does not wait for its next regular round then: each round reads how many
seconds the other members' rows and the leases have left, and the next round is brought forward to
the first expiry that gives this instance something to do (`assignment.next_change`). So the
survivors take a dead instance's nodes right as its rows expire, i.e. within ttl of the death (ttl
minus the time since its last round) + the PBX login. Expiry is judged by the database clock only
(seconds left are computed in SQL, and only ever compared with the local clock as durations), so
instances need no clock agreement.

Every database call of the loop is bounded (`within`): a round or a stop never hangs on a stuck
connection, and stopping the loop (task cancel) always stops it.

While the database is unreachable the active instance keeps acting: a standby cannot take over
without the database either, and giving up the PBX link would lose every call of the outage. Only
in a network partition that hides the database from the active instance alone can two instances act
at once until the partition heals; the one that finds the lease taken then stands down (closes its
PBX link, so its journal writes for that node stop) at its first round with the database back. We
prefer that (a call possibly recorded twice, both copies journaled) to losing recordings.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from controller.assignment import Member, next_change, orphaned_nodes, owner, plan

T = TypeVar("T")

log = logging.getLogger(__name__)

_ACQUIRE = """
INSERT INTO pbx_leases (pbx, holder, expires_at)
SELECT node, $2, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS node
ON CONFLICT (pbx) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
    epoch = pbx_leases.epoch + CASE WHEN pbx_leases.holder = EXCLUDED.holder THEN 0 ELSE 1 END
    WHERE pbx_leases.holder = EXCLUDED.holder OR pbx_leases.expires_at < now()
RETURNING pbx
"""


async def try_acquire(pool: asyncpg.Pool, pbx: str, holder: str, ttl: float) -> bool:
    """Take or renew the lease for `pbx`; True when `holder` holds it afterwards."""
    return pbx in await acquire_many(pool, [pbx], holder, ttl)


async def acquire_many(pool: asyncpg.Pool, nodes: list[str], holder: str, ttl: float) -> set[str]:
    """Take or renew the leases of `nodes` in one statement; returns the ones `holder` holds now."""
    if not nodes:
        return set()
    return {r["pbx"] for r in await pool.fetch(_ACQUIRE, nodes, holder, float(ttl))}


async def release(pool: asyncpg.Pool, pbx: str, holder: str) -> None:
    """Give the lease up now. The row stays (expired) so peers can tell how long a node has been free."""
    await pool.execute(
        "UPDATE pbx_leases SET expires_at = now() - interval '1 millisecond' WHERE pbx = $1 AND holder = $2",
        pbx,
        holder,
    )


# a stopping instance: its leases released and its member row expired, in one round trip
_LEAVE = """
WITH released AS (
    UPDATE pbx_leases SET expires_at = now() - interval '1 millisecond'
    WHERE pbx = ANY($1::text[]) AND holder = $2 AND expires_at > now()
)
UPDATE controller_members SET expires_at = now() - interval '1 millisecond' WHERE token = $3
"""


async def current_holder(pool: asyncpg.Pool, pbx: str) -> str | None:
    return await pool.fetchval("SELECT holder FROM pbx_leases WHERE pbx = $1 AND expires_at > now()", pbx)


@dataclass(frozen=True)
class NodeHooks:
    """What to do when this instance starts / stops driving a node (open / close the PBX link)."""

    on_acquired: Callable[[], Awaitable[None]]
    on_lost: Callable[[], Awaitable[None]]


_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
WAKE_MARGIN = 0.05  # s after an expiry before the round that acts on it (the database must see it passed)
_left_behind: set[asyncio.Task[Any]] = set()


async def within(work: Coroutine[Any, Any, T], seconds: float) -> T:
    """`work`'s result, or TimeoutError after `seconds`. Unlike asyncio.wait_for (Python 3.11), a cancel
    of the caller is never swallowed when `work` finishes in the same moment (wait_for then returns the
    result and the caller goes on as if never cancelled: a stopped lease loop would run forever), and
    the caller never waits for the clean-up of the abandoned work (asyncpg cancelling a query sends a
    cancel request over a new connection and resets the old one, which over a dead network takes as
    long as TCP gives up): on timeout or cancel `work` is cancelled and finishes in the background."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        _leave_behind(task)
        raise
    if not done:
        _leave_behind(task)
        raise TimeoutError(f"no answer from the database within {seconds:.1f} s")
    return task.result()


def _leave_behind(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _left_behind.add(task)  # referenced until done (a pending task only weakly referenced may be collected)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _left_behind.discard(task)
    if not task.cancelled() and task.exception() is not None:  # retrieved: no "never retrieved" noise
        log.debug("abandoned database call ended with %r", task.exception())


@dataclass(frozen=True)
class Reading:
    """What a round read, with the seconds each row had left by the database clock."""

    members: list[tuple[str, Member, float]]  # live member rows: token, member, seconds left
    leases: dict[str, tuple[str, float]]  # node -> (holder, seconds left; negative: expired that long ago)


class LeaseManager:
    """This instance's membership heartbeat and the leases of the PBX nodes it can drive.

    `name` is the instance's node_id (lease holder, hashing key); `token` identifies this process (its
    finalize claim token: a finalize job claimed by a process whose member row expired is taken over
    by the others, storage.finalize). `nodes` maps each configured PBX node to its hooks.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        name: str,
        token: str,
        nodes: Mapping[str, NodeHooks],
        ttl: float = 4.0,
    ) -> None:
        self.pool, self.name, self.token, self.ttl = pool, name, token, ttl
        self.nodes = dict(nodes)
        self.active: set[str] = set()
        self.members: list[Member] = []  # the live members seen at the last round
        self.rounds = 0
        self._last_ok: float | None = None
        self._duplicate_warned = False
        self._wake_at: float | None = None  # loop time of the next round when an expiry comes first

    def is_active(self, node: str) -> bool:
        return node in self.active

    async def run(self) -> None:
        """Rounds every ttl/4 (sooner when an expiry calls for it) until cancelled; then stand down
        cleanly (links closed, leases released)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.round()
                await asyncio.sleep(self.pause(loop.time()))
        finally:
            await self.leave()

    def pause(self, now: float) -> float:
        """Seconds until the next round: ttl/4, or less when a member row or lease runs out before that."""
        period = self.ttl / 4
        if self._wake_at is None:
            return period
        return min(period, max(0.0, self._wake_at - now))

    async def round(self) -> None:
        """Heartbeat, read the live members and the leases, then hand over / take / renew."""
        loop = asyncio.get_running_loop()
        self._wake_at = None
        try:
            # a round never hangs on a stuck connection longer than a ttl (its leases would expire)
            seen = await within(self._heartbeat(), self.ttl)
        except _DB_ERRORS as e:
            self._unreachable(loop.time(), e)
            return
        # The seconds left were computed by the database before this moment: counting them from here
        # can only make a wake-up late (by the query's round trip), never early.
        read_at = loop.time()
        members = [m for _, m, _ in seen.members]
        self.members = members
        step = plan(self.name, self.nodes, members, self.active, orphaned=orphaned_nodes(seen.leases, self.ttl))
        for node in step.release:
            await self._hand_over(node, members)
        try:
            held = await within(acquire_many(self.pool, list(step.acquire), self.name, self.ttl), self.ttl)
        except _DB_ERRORS as e:
            self._unreachable(loop.time(), e)
            return
        self._last_ok = loop.time()
        self.rounds += 1
        for node in sorted(self.active - held):  # taken by another instance while we could not renew
            self.active.discard(node)
            log.warning("lease %s: %s lost the lease; closing its PBX link", node, self.name)
            await self._call(node, "on_lost")
        for node in sorted(held - self.active):
            self.active.add(node)
            log.info("lease %s: %s now drives this node", node, self.name)
            await self._call(node, "on_acquired")
        lives = [(m, math.inf if token == self.token else left) for token, m, left in seen.members]
        wake = next_change(
            self.name, self.nodes, lives, seen.leases, self.active, ttl=self.ttl, within=self.ttl / 4, after=WAKE_MARGIN
        )
        self._wake_at = None if wake is None else read_at + wake

    async def _heartbeat(self) -> Reading:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO controller_members (token, name, nodes, expires_at)"
                " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
                " ON CONFLICT (token) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at,"
                " nodes = EXCLUDED.nodes",
                self.token,
                self.name,
                sorted(self.nodes),
                float(self.ttl),
            )
            # seconds left by the database clock, in the statement that judges liveness
            rows = await conn.fetch(
                "SELECT token, name, nodes, extract(epoch FROM expires_at - now())::float8 AS left_s"
                " FROM controller_members WHERE expires_at > now() ORDER BY started_at"
            )
            leases = await conn.fetch(
                "SELECT pbx, holder, extract(epoch FROM expires_at - now())::float8 AS left_s"
                " FROM pbx_leases WHERE pbx = ANY($1::text[])",
                sorted(self.nodes),
            )
            if self.rounds % 200 == 0:  # rows of processes gone for a day are of no use any more
                await conn.execute("DELETE FROM controller_members WHERE expires_at < now() - interval '1 day'")
        twins = [r["token"] for r in rows if r["name"] == self.name and r["token"] != self.token]
        if twins and not self._duplicate_warned:
            self._duplicate_warned = True
            log.error("another live instance uses node_id %r (%s): give each instance its own", self.name, twins[0])
        return Reading(
            [(r["token"], Member(r["name"], frozenset(r["nodes"])), r["left_s"]) for r in rows],
            {r["pbx"]: (r["holder"], r["left_s"]) for r in leases},
        )

    async def _hand_over(self, node: str, members: list[Member]) -> None:
        """Close our link to `node` first, then release the lease: the new owner never overlaps us."""
        self.active.discard(node)
        log.info("lease %s: %s hands this node over to %s", node, self.name, owner(node, members))
        await self._call(node, "on_lost")
        try:
            await within(release(self.pool, node, self.name), self.ttl)
        except _DB_ERRORS as e:  # the lease then expires by itself within ttl
            log.warning("lease %s: release failed (%s); it expires within %.0f s", node, e, self.ttl)

    async def _call(self, node: str, hook: str) -> None:
        try:
            await getattr(self.nodes[node], hook)()
        except Exception:  # a hook failing must not stop the lease loop (other nodes depend on it)
            log.exception("lease %s: %s failed", node, hook)

    def _unreachable(self, now: float, e: BaseException) -> None:
        # Keep acting while the database is unreachable: no standby can take the lease without it
        # either, and dropping the PBX link would lose every call placed during the outage. Once the
        # database answers again, the lease decides (see module doc).
        if self._last_ok is not None and now - self._last_ok >= self.ttl:
            log.warning(
                "leases of %s: database unreachable for %.0f s (%s); still driving %s",
                self.name,
                now - self._last_ok,
                e,
                ", ".join(sorted(self.active)) or "no node",
            )

    async def leave(self) -> None:
        """Stop: close the links, then release the leases and expire the member row in one statement
        (at most a ttl: a stop never hangs on the database), so peers take over at their next round
        instead of after ttl."""
        gone = sorted(self.active)
        for node in gone:
            self.active.discard(node)
            await self._call(node, "on_lost")
        try:
            await within(self.pool.execute(_LEAVE, gone, self.name, self.token), self.ttl)
        except _DB_ERRORS as e:  # the leases and the row expire by themselves within ttl
            log.warning("leases of %s: not released at stop (%s); they expire within %.0f s", self.name, e, self.ttl)
