"""One active instance per PBX node: a lease row in PostgreSQL.

Several service instances may watch the same PBX for high availability; exactly one acts (sends
recording commands, journals) at a time. The holder renews its lease every `ttl/3` seconds; a standby
takes over when the lease has expired, i.e. within `ttl` of the active instance dying (kill -9, host
loss). Expiry is judged by the database clock only, so instances need no clock agreement.

While the database is unreachable the active instance keeps acting: a standby cannot take over
without the database either, and giving up the PBX link would lose every call of the outage. Only
in a network partition that hides the database from the active instance alone can two instances act
at once until the partition heals; the one that finds the lease taken then stands down. We prefer
that (a call possibly recorded twice, both copies journaled) to losing recordings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

_ACQUIRE = """
INSERT INTO pbx_leases (pbx, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (pbx) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
    WHERE pbx_leases.holder = EXCLUDED.holder OR pbx_leases.expires_at < now()
RETURNING holder
"""


async def try_acquire(pool: asyncpg.Pool, pbx: str, holder: str, ttl: float) -> bool:
    """Take or renew the lease for `pbx`; True when `holder` holds it afterwards."""
    return await pool.fetchval(_ACQUIRE, pbx, holder, float(ttl)) == holder


async def release(pool: asyncpg.Pool, pbx: str, holder: str) -> None:
    await pool.execute("DELETE FROM pbx_leases WHERE pbx = $1 AND holder = $2", pbx, holder)


async def current_holder(pool: asyncpg.Pool, pbx: str) -> str | None:
    return await pool.fetchval("SELECT holder FROM pbx_leases WHERE pbx = $1 AND expires_at >= now()", pbx)


class NodeLease:
    """Keeps trying to become (and stay) the active instance for one PBX node.

    `on_acquired` runs when this instance becomes active, `on_lost` when it stops being active (lease
    taken over after a stall, or the database unreachable for longer than the ttl).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        pbx: str,
        holder: str,
        *,
        ttl: float = 4.0,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        self.pool, self.pbx, self.holder, self.ttl = pool, pbx, holder, ttl
        self._on_acquired, self._on_lost = on_acquired, on_lost
        self.active = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        try:
            while True:
                try:
                    held = await try_acquire(self.pool, self.pbx, self.holder, self.ttl)
                    last_ok = loop.time()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    # Keep acting while the database is unreachable: no standby can take the lease
                    # without it either, and dropping the PBX link would lose every call placed during
                    # the outage. Once the database answers again, the lease decides (see module doc).
                    if loop.time() - last_ok >= self.ttl:
                        log.warning(
                            "lease %s: database unreachable for %.0f s (%s); still acting",
                            self.pbx,
                            loop.time() - last_ok,
                            e,
                        )
                    held = self.active
                if held and not self.active:
                    self.active = True
                    log.info("lease %s: %s is now the active instance", self.pbx, self.holder)
                    await self._on_acquired()
                elif not held and self.active:
                    self.active = False
                    log.warning("lease %s: %s lost the lease; standing by", self.pbx, self.holder)
                    await self._on_lost()
                await asyncio.sleep(self.ttl / 3 if self.active else self.ttl / 4)
        finally:
            if self.active:
                self.active = False
                try:
                    await release(self.pool, self.pbx, self.holder)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    pass
