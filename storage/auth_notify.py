"""One notification for every change that can alter what a bearer token is allowed to do.

The API keeps the principal of each recently seen token in memory (controller/api/auth_cache.py) so
a request costs no database round trip. Every write that can revoke or narrow a token — a token
revoked, a user disabled or edited, a role changed or deleted, a ring-group membership changed —
calls `notify_auth_changed` on the connection (inside the writer's transaction, so PostgreSQL
delivers it at commit, to every instance, including the CLI's changes).
"""

from __future__ import annotations

from typing import Any

AUTH_CHANNEL = "callrec_auth"


async def notify_auth_changed(conn: Any) -> None:
    """Tell every listening API instance to forget the principals it holds (delivered at commit)."""
    await conn.execute("SELECT pg_notify($1, '')", AUTH_CHANNEL)
