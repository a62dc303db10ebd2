"""The Event Socket server: TCP connections, `auth`, `event plain …` subscriptions, `api`/`bgapi`
(answered by the simulator's `api()`), `exit`, and event fan-out to the subscribers that asked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid as uuidlib
from collections.abc import Callable

from lab.esl import protocol as wire
from lab.esl.protocol import Connection


class EslServer:
    def __init__(
        self, *, password: str = "ClueCon-lab", host: str = "127.0.0.1", port: int = 0, settle_timeout: float = 5.0
    ) -> None:
        self.password, self.host, self.port = password, host, port
        self.conns: set[Connection] = set()
        self.server: asyncio.base_events.Server | None = None
        self._seq = itertools.count(1000)
        self.commands: list[str] = []  # every api/bgapi command received (for tests)
        self.sent_events: list[dict[str, str]] = []  # kept only when record_events is on
        self.record_events = False
        self._changed = asyncio.Event()
        self.refuse_auth = False
        # benches only: A leg → perf_counter() when its CHANNEL_BRIDGE went to the subscribers' sockets
        self.bridge_sent: dict[str, float] | None = None
        self.settle_timeout = settle_timeout

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop_connections()
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    def drop_connections(self) -> None:
        """Cut every ESL connection abruptly (the calls go on)."""
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                c.writer.transport.abort()
        self.conns.clear()

    async def wait_connected(self, limit: float = 5.0) -> bool:
        """Wait until a client subscribed to events (the controller is listening)."""
        return await self._wait(lambda: any(c.events for c in self.conns), limit)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        self.conns.add(conn)
        conn.send(b"Content-Type: auth/request\n\n")
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = raw.decode("utf-8", "replace").strip("\n").split("\n")
                if not lines or not lines[0]:
                    continue
                if not await self._command(conn, lines[0].strip(), lines[1:]):
                    break
                await writer.drain()
        finally:
            self.conns.discard(conn)
            with contextlib.suppress(Exception):
                writer.close()

    async def _command(self, conn: Connection, line: str, extra: list[str]) -> bool:
        if not conn.authed:
            if line.startswith("auth "):
                if line[5:] == self.password and not self.refuse_auth:
                    conn.authed = True
                    conn.reply("+OK accepted")
                    return True
                conn.reply("-ERR invalid")
                conn.send(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
                await conn.writer.drain()
                return False
            conn.reply("-ERR command not found")
            return True
        if line.startswith("event "):
            words = line.split()[1:]
            if words and words[0] in ("plain", "json", "xml"):
                words = words[1:]
            for w in words:
                if w == "ALL":
                    conn.all_events = True
                elif "::" in w:
                    conn.subclasses.add(w)
                else:
                    conn.events.add(w)
            conn.reply("+OK event listener enabled plain")
            self._changed.set()
            return True
        if line in ("exit", "quit"):
            conn.reply("+OK bye")
            conn.send(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
            return False
        if line.startswith("noevents"):
            conn.events.clear()
            conn.all_events = False
            conn.reply("+OK no longer listening for events")
            return True
        if line.startswith("api "):
            conn.api_response(self.api(line[4:].strip()))
            return True
        if line.startswith("bgapi "):
            job = str(uuidlib.uuid4())
            conn.send(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n".encode())
            result = self.api(line[6:].strip())
            self._publish(
                "BACKGROUND_JOB", None, {"Job-UUID": job, "Job-Command": line[6:].split(" ", 1)[0]}, body=result
            )
            return True
        conn.reply("-ERR command not found")
        return True

    def api(self, cmd: str) -> str:
        """The reply to `api <cmd>` (the simulator answers)."""
        raise NotImplementedError

    def _publish(
        self,
        name: str,
        chan: dict[str, str] | None,
        extra: dict[str, str] | None = None,
        subclass: str = "",
        body: str = "",
    ) -> None:
        """Send event `name` to its subscribers: the common headers, the Bridge-* extras, the channel's
        headers (`chan`), the other extras, then the extra `variable_*` ones — the real order."""
        h = wire.event_base(name, subclass, next(self._seq), int(time.time() * 1_000_000))
        head_extra = {k: v for k, v in (extra or {}).items() if not k.startswith("variable_")}
        tail_extra = {k: v for k, v in (extra or {}).items() if k.startswith("variable_")}
        h.update({k: v for k, v in head_extra.items() if k.startswith("Bridge-")})
        if chan is not None:
            h.update(chan)
        h.update({k: v for k, v in head_extra.items() if not k.startswith("Bridge-")})
        h.update(tail_extra)
        if self.record_events:
            self.sent_events.append(dict(h))
        targets = [c for c in self.conns if c.wants(name, subclass)]
        if not targets:
            return
        frame = wire.event_frame(h, body)
        for c in targets:
            c.send(frame)
        if self.bridge_sent is not None and name == "CHANNEL_BRIDGE":
            self.bridge_sent[h.get("Bridge-A-Unique-ID", "")] = time.perf_counter()

    async def _wait(self, cond: Callable[[], bool], limit: float | None = None) -> bool:
        deadline = time.monotonic() + (self.settle_timeout if limit is None else limit)
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
        return True
