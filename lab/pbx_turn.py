"""One user of a real PBX at a time on this machine: the real-PBX tests of several checkouts and the
real-PBX bench place calls with the same test numbers, and a controller of one run would record (stop,
mute) the other's calls. An flock per PBX, keyed by host and port only (never the credentials)."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def pbx_turn(host: str, port: int | str) -> Iterator[None]:
    """Hold the PBX at host:port for this process until the block ends (others wait their turn)."""
    path = Path(tempfile.gettempdir()) / f"callrec-real-pbx-{host}_{port}.lock"
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
