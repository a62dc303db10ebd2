"""The webhook worker: claims due outbox rows (FOR UPDATE SKIP LOCKED, so any number of instances
share the work), POSTs them signed, and records the outcome.

Order per recording: only the oldest pending row of an (endpoint, recording) pair is claimable, so a
recording's events reach an endpoint in the order they happened, and a retry holds back the ones
after it. At-least-once: a row is marked delivered only after a 2xx; a crash between the receiver's
2xx and that update sends it again with the same event id (Callrec-Event-Id) — receivers dedupe on it.
A row that fails past its retry period goes `dead`; the API lists dead rows and can redeliver them.

A `recording.stored` event to an endpoint with `download_link` gets a fresh share link per attempt
when `[api] public_url` is set (storage/webhook_links.py); the link is in the body sent, never in the
outbox row or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from controller.config import WebhooksConfig
from controller.metrics import Metrics
from storage import webhook_links
from storage.shares import Share
from storage.webhook_signature import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger(__name__)

_CLAIM = """
WITH c AS (
    SELECT o.id FROM webhook_outbox o JOIN webhook_endpoints e ON e.id = o.endpoint_id AND e.enabled
    WHERE o.state = 'pending' AND o.next_attempt_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM webhook_outbox p
          WHERE p.state = 'pending' AND p.endpoint_id = o.endpoint_id AND p.recording_id = o.recording_id
            AND p.id < o.id)
    ORDER BY o.next_attempt_at, o.id
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE webhook_outbox w
SET claimed_by = $2, claimed_until = now() + make_interval(secs => $3), attempts = w.attempts + 1,
    retry_until = COALESCE(w.retry_until, now() + make_interval(secs => $4))
FROM c, webhook_endpoints e
WHERE w.id = c.id AND e.id = w.endpoint_id
RETURNING w.id, w.event_id, w.event_type, w.endpoint_id, w.recording_id, w.payload, w.attempts, w.retry_until,
          e.url, e.secret, e.download_link
"""


def body_of(payload: Any) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class WebhookWorker:
    def __init__(
        self, pool: asyncpg.Pool, config: WebhooksConfig, metrics: Metrics, node_id: str, *, public_url: str = ""
    ) -> None:
        self.pool, self.wc, self.metrics, self.node_id = pool, config, metrics, node_id
        self.public_url = public_url  # [api] public_url: unset → no download links
        self._session: aiohttp.ClientSession | None = None
        metrics.describe("callrec_webhook_deliveries_total", "counter", "Webhook POSTs by outcome")
        metrics.describe("callrec_webhook_dead_total", "counter", "Webhook events given up after the retry period")

    async def run(self) -> None:
        """Until cancelled: deliver what is due, sleep a poll interval when nothing is."""
        try:
            while True:
                try:
                    n = await self.run_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    log.warning("webhook delivery: database unavailable (%s); retrying", e)
                    n = 0
                except Exception:  # the task must outlive any one bad batch; the rows stay pending
                    log.exception("webhook delivery: unexpected error; retrying")
                    n = 0
                if n < self.wc.concurrency:
                    await asyncio.sleep(self.wc.poll_interval_seconds)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many were attempted."""
        rows = await self.pool.fetch(
            _CLAIM,
            self.wc.concurrency,
            self.node_id,
            float(self.wc.timeout_seconds * 2 + 5),
            float(self.wc.retry_period_hours * 3600),
        )
        if rows:
            done = [d for d in await asyncio.gather(*(self._deliver(r) for r in rows)) if d is not None]
            if done:  # one UPDATE for the batch's successes: the common case costs one round trip
                await self.pool.execute(
                    "UPDATE webhook_outbox o SET state = 'delivered', delivered_at = now(), last_status = d.status,"
                    " last_error = '', claimed_by = '', claimed_until = NULL"
                    " FROM unnest($1::bigint[], $2::int[]) AS d(id, status) WHERE o.id = d.id",
                    [i for i, _ in done],
                    [st for _, st in done],
                )
                self.metrics.inc("callrec_webhook_deliveries_total", len(done), outcome="delivered")
        return len(rows)

    async def drain(self, max_rounds: int = 1000) -> int:
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            if n == 0:
                break
            total += n
        return total

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.wc.timeout_seconds))
        return self._session

    async def _payload(self, row: asyncpg.Record) -> tuple[Any, Share | None]:
        """The body to send: the stored payload, plus a download link minted for this attempt when the
        endpoint opted in and the service knows its public address."""
        payload = row["payload"]
        if not (row["download_link"] and self.public_url and row["event_type"] == webhook_links.EVENT):
            return payload, None
        minted = await webhook_links.mint(
            self.pool,
            row["recording_id"],
            endpoint_id=row["endpoint_id"],
            event_id=str(row["event_id"]),
            minutes=self.wc.download_link_minutes,
        )
        if minted is None:  # purged or erased since: nothing left to download
            return payload, None
        share, token = minted
        return webhook_links.with_link(payload, webhook_links.link_url(self.public_url, token), share.expires_at), share

    async def _deliver(self, row: asyncpg.Record) -> tuple[int, int] | None:
        status: int | None = None
        try:
            payload, share = await self._payload(row)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            await self._failed(row, None, f"download link not minted ({type(e).__name__}); nothing sent")
            return None
        body = body_of(payload)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "callrec-webhooks/1",
            EVENT_ID_HEADER: str(row["event_id"]),
            EVENT_TYPE_HEADER: row["event_type"],
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(row["secret"], ts, body),
        }
        try:
            async with self._client().post(row["url"], data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.content.read(4096)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if share is not None and isinstance(e, aiohttp.ClientConnectorError):
                # no connection, so no byte of the body left: the link reached nobody
                try:
                    await webhook_links.withdraw(self.pool, share, row["endpoint_id"])
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e2:  # it expires anyway
                    log.warning("webhook: share %s not withdrawn (%s)", share.id, type(e2).__name__)
        if not error:
            assert status is not None
            return int(row["id"]), status  # marked delivered with the rest of the batch
        await self._failed(row, status, error)
        return None

    async def _failed(self, row: asyncpg.Record, status: int | None, error: str) -> None:
        self.metrics.inc("callrec_webhook_deliveries_total", outcome="failed")
        delay = min(self.wc.backoff_base_seconds * 2 ** (row["attempts"] - 1), self.wc.backoff_max_seconds)
        dead = await self.pool.fetchval(
            "UPDATE webhook_outbox SET last_status = $2, last_error = $3, claimed_by = '', claimed_until = NULL,"
            " state = CASE WHEN now() + make_interval(secs => $4) > retry_until THEN 'dead' ELSE 'pending' END,"
            " next_attempt_at = now() + make_interval(secs => $4)"
            " WHERE id = $1 RETURNING state = 'dead'",
            row["id"],
            status,
            error[:500],
            float(delay),
        )
        host = urlsplit(row["url"]).hostname or "?"  # never the full URL: it may carry a token
        if dead:
            self.metrics.inc("callrec_webhook_dead_total")
            log.error(
                "webhook %s event %s to endpoint %s (%s) is dead after %d attempts: %s",
                row["event_type"],
                row["event_id"],
                row["endpoint_id"],
                host,
                row["attempts"],
                error,
            )
        else:
            log.warning(
                "webhook %s event %s to endpoint %s (%s) failed (attempt %d, retry in %.0fs): %s",
                row["event_type"],
                row["event_id"],
                row["endpoint_id"],
                host,
                row["attempts"],
                delay,
                error,
            )
        return None
