"""The AMI server: TCP sessions, Login/Ping/Logoff, dispatch of every other action to the
`_action_<name>` method of the simulator, and event fan-out honouring each session's filter."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from lab.ami import protocol as wire
from lab.ami.protocol import Action, Headers, Session


class AmiServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "callrec",
        secret: str = "callrec-secret",
    ) -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.sessions: set[Session] = set()
        self.actions_seen: list[Action] = []
        self.logins_refused = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_connections(self) -> None:
        """Cut every AMI connection abruptly (the calls go on)."""
        for s in list(self.sessions):
            with contextlib.suppress(Exception):
                s.writer.transport.abort()
        self.sessions.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = Session(reader, writer)
        self.sessions.add(s)
        writer.write((wire.BANNER + wire.EOL).encode())
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = wire.parse_action(raw.decode("utf-8", "replace"))
                if action:
                    self.actions_seen.append(action)
                    await self._dispatch(s, action)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.sessions.discard(s)
            with contextlib.suppress(Exception):
                writer.close()

    def _respond(
        self, s: Session, aid: str, ok: bool, message: str = "", extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        h = [("Response", "Success" if ok else "Error")]
        if aid:
            h.append(("ActionID", aid))
        if message:
            h.append(("Message", message))
        s.send(h + list(extra))

    async def _dispatch(self, s: Session, a: Action) -> None:
        name = wire.get(a, "Action").lower()
        aid = wire.get(a, "ActionID")
        if name == "login":
            if wire.get(a, "Username") == self.username and wire.get(a, "Secret") == self.secret:
                s.authenticated = True
                s.set_events(wire.get(a, "Events") or "on")
                self._respond(s, aid, True, "Authentication accepted")
                self._event_to(s, "FullyBooted", [("Uptime", "473"), ("LastReload", "473"), ("Status", "Fully Booted")])
            else:
                self.logins_refused += 1
                self._respond(s, aid, False, "Authentication failed")
                await s.writer.drain()
                s.writer.close()
            return
        if name == "ping":
            s.send([("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
            return
        if name == "logoff":
            s.send([("Response", "Goodbye"), ("ActionID", aid), ("Message", "Thanks for all the fish.")])
            await s.writer.drain()
            s.writer.close()
            return
        if not s.authenticated:
            self._respond(s, aid, False, "Permission denied")
            return
        handler = getattr(self, "_action_" + name, None)
        if handler is None:
            self._respond(s, aid, False, "Invalid/unknown command")
            return
        await handler(s, a, aid)

    def _event_to(self, s: Session, name: str, body: Headers) -> None:
        cls, h = wire.event_headers(name, body)
        if s.wants(cls):
            s.send(h)

    def event(self, name: str, body: Headers) -> None:
        cls, h = wire.event_headers(name, body)
        for s in list(self.sessions):
            if s.wants(cls):
                s.send(h)
