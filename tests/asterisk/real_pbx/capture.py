"""Raw AMI transcript of what a given AMI user receives, in the fixture format (`##### <<< RECV <utc>
+<sec> <n> bytes` + the byte-exact block), so real-PBX behaviour can be replayed in the default suite.

    async with Capture(host, port, user, secret) as cap: ... ; cap.write(Path("X.ami.log"))

Used by the real-PBX tests (CALLREC_TEST_ASTERISK_CAPTURE=<dir> keeps one transcript per test).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path


class Capture:
    """Log in as `user` and keep every byte received, block by block (one AMI message per block)."""

    def __init__(self, host: str, port: int, user: str, secret: str, events: str = "call,user") -> None:
        self.host, self.port, self.user, self.secret, self.events = host, port, user, secret, events
        self.blocks: list[tuple[str, float, bytes]] = []  # (direction, monotonic, bytes)
        self._t0 = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Capture:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        banner = await self.reader.readline()
        self.blocks.append(("<<< RECV", time.monotonic(), banner))
        login = (
            f"Action: Login\r\nActionID: login-1\r\nUsername: {self.user}\r\nSecret: {self.secret}\r\n"
            f"Events: {self.events}\r\n\r\n"
        ).encode()
        self.writer.write(login)
        self.blocks.append((">>> SENT", time.monotonic(), login.replace(self.secret.encode(), b"<secret>")))
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            try:
                block = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            self.blocks.append(("<<< RECV", time.monotonic(), block))

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.3)
        if self._task:
            self._task.cancel()
        self.writer.close()

    def note(self, text: str) -> None:
        self.blocks.append(("--- NOTE", time.monotonic(), text.encode()))

    def write(self, path: Path) -> None:
        out = bytearray()
        for direction, t, data in self.blocks:
            stamp = datetime.fromtimestamp(time.time() - (time.monotonic() - t), UTC).isoformat().replace("+00:00", "Z")
            if direction == "--- NOTE":
                out += f"##### --- NOTE {stamp} +{t - self._t0:.6f} ".encode() + data + b"\n"
            else:
                out += f"##### {direction} {stamp} +{t - self._t0:.6f} {len(data)} bytes\n".encode() + data
        path.write_bytes(bytes(out))
