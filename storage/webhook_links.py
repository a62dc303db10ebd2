"""Download links in `recording.stored` webhook events: an ordinary share link (storage/shares.py),
minted for one delivery attempt of an endpoint that opted in (`webhook_endpoints.download_link`).

Minted when the event is POSTed, not when it is enqueued: a receiver that was down for hours still gets
a link with its full lifetime, and the token never rests in the outbox (the stored payload keeps
`download_url: null`; only the POST body carries the link). The link is a download-only share of that
one recording: created by `webhook #<endpoint id>` (a name no user can have: user names have no
spaces), audited as `share.create` by `webhook:<endpoint id>` with the event id, listed with the
recording's other share links and revocable there. A link whose POST never left the service (the
connection failed) is revoked at once. The token is never logged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage import shares
from storage.policy_admin import Actor

EVENT = "recording.stored"


@dataclass(frozen=True)
class WebhookActor(Actor):
    """The delivery worker acting for one endpoint; `name` is the links' creator as listed."""

    endpoint_id: int = 0

    @property
    def label(self) -> str:
        return f"webhook:{self.endpoint_id}"


def actor_for(endpoint_id: int) -> WebhookActor:
    return WebhookActor(f"webhook #{endpoint_id}", endpoint_id=endpoint_id)


def link_url(public_url: str, token: str) -> str:
    """The share link's audio as a download: GET needs no other credentials."""
    return f"{public_url.rstrip('/')}/share/{token}/audio?download=1"


def with_link(payload: dict[str, Any], url: str, expires_at: datetime) -> dict[str, Any]:
    """A copy of the outbox payload with the link in `data` (the stored payload is left as it is)."""
    data = {**payload["data"], "download_url": url, "download_expires_at": expires_at.astimezone(UTC).isoformat()}
    return {**payload, "data": data}


def lifetime(minutes: int, max_hours: int) -> timedelta:
    """The configured lifetime, never longer than the administrator's limit for share links."""
    return min(timedelta(minutes=minutes), timedelta(hours=max_hours))


async def mint(
    pool: asyncpg.Pool, recording_id: str, *, endpoint_id: int, event_id: str, minutes: int
) -> tuple[shares.Share, str] | None:
    """A download link of the recording for one delivery attempt; None when the recording is no longer
    stored (purged or erased since the event was written): the event then goes out with no link."""
    try:
        rid = uuid.UUID(recording_id)
    except ValueError:
        return None
    async with pool.acquire() as c, c.transaction():
        # FOR SHARE: a purge running now waits for this link (and then deletes it with the recording)
        state = await c.fetchval("SELECT state FROM recordings WHERE id = $1 FOR SHARE", rid)
        if state != "stored":
            return None
        limits = await shares.get_limits(c)
        return await shares.issue(
            c,
            rid,
            lifetime=lifetime(minutes, limits["max_hours"]),
            allow_download=True,
            actor=actor_for(endpoint_id),
            detail={"webhook": endpoint_id, "event_id": event_id},
        )


async def withdraw(pool: asyncpg.Pool, share: shares.Share, endpoint_id: int) -> None:
    """Revoke a link whose POST never reached the receiver (audited as `share.revoke`)."""
    await shares.revoke(pool, share, actor=actor_for(endpoint_id), detail={"reason": "not delivered"})
