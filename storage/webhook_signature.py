"""The webhook signature scheme, signer and verifier in one place (receivers may import `verify`).

    Callrec-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    Callrec-Timestamp: <unix seconds>

Signing the timestamp with the body lets a receiver refuse replays older than its tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Callrec-Signature"
TIMESTAMP_HEADER = "Callrec-Timestamp"
EVENT_ID_HEADER = "Callrec-Event-Id"
EVENT_TYPE_HEADER = "Callrec-Event"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, body: bytes, timestamp: str, signature: str, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """True when `signature` (the Callrec-Signature header) signs `body` at `timestamp` (the
    Callrec-Timestamp header) with `secret`, and the timestamp is within `tolerance` seconds."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    return any(
        hmac.compare_digest(expected, "v1=" + part.strip().removeprefix("v1="))
        for part in signature.split(",")
        if part.strip().startswith("v1=")
    )
