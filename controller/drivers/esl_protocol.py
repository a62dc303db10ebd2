"""FreeSWITCH Event Socket (inbound) on the asyncio loop: framing, replies in order, login.

The socket is read by the service's own event loop: a frame is cut from the bytes as they arrive, an
event's headers are parsed (values decoded only when read, `EventHeaders`), and the driver's handler
runs in the same callback — so the command a bridge event decides (`uuid_record … start`) is written
before the loop does anything else. An earlier driver ran greenswitch's gevent reader in a thread of
its own; waking the loop from that thread cost the slowest 1 % of recording starts 2-5 ms, and
greenswitch's whole-body decode most of the per-event cost (issue #15). greenswitch stays the bench's
anchor (lab/bench).

Framing (mod_event_socket): a header block ends with an empty line; `Content-Length` bytes of body
follow. Replies (`command/reply`, `api/response`) come in the order the commands went out, so each
command queues a future and each reply resolves the oldest one. A frame that cannot be parsed is
logged and skipped; it never stops the reader.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("callrec.freeswitch")

WRITE_BUFFER_HIGH = 1 << 20  # bytes queued for a PBX that does not read before the write pauses


class EslLinkLost(ConnectionError):
    """The connection ended; replies still awaited get this."""


def _header_lines(text: str) -> Iterator[tuple[str, str]]:
    """(name, value) of each `Name: value` line: the name is what comes before the first ": "; a line
    without ": " is no header."""
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if sep:
            yield name, value


def _headers(block: bytes) -> dict[str, str] | None:
    """The `Name: value` lines of a frame's header block; None if its first line is not one."""
    text = block.decode("utf-8", "replace")
    if ": " not in text.split("\n", 1)[0]:
        return None
    return {name: value.strip() for name, value in _header_lines(text)}


def decode_event_plain(body: str) -> dict[str, str]:
    """Every header of an `event plain` body (or its header part), each value URL-decoded: for the
    selftest's and the tests' own ESL connections, which keep whole events."""
    return {name: unquote(value) for name, value in _header_lines(body)}


# The driver's hot path cuts an event's lines with one regex instead of `_header_lines` (a Python
# loop over ~60 lines per event); its names are runs without ":" — FreeSWITCH's header names are.
_HEADER_LINE = re.compile(r"^([^\n:]+): ([^\n]*)", re.MULTILINE)


class EventHeaders(Mapping[str, str]):
    """An event's headers, each value URL-decoded when it is read. An event carries ~150 headers with
    hundreds of %-escapes and the translator reads a dozen of them: decoding them all (greenswitch
    does, with one `unquote` of the whole body) was most of the reader's cost (issue #15). Values
    are decoded one by one, so an encoded newline stays inside its value (greenswitch's whole-body
    decode splits it into a bogus line)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        value = self._raw[name]
        return unquote(value) if "%" in value else value

    def get(self, name: str, default: Any = None) -> Any:  # Mapping's own goes through a try/except
        value = self._raw.get(name)
        if value is None:
            return default
        return unquote(value) if "%" in value else value

    def __contains__(self, name: object) -> bool:  # without decoding the value (Mapping's reads it)
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"EventHeaders({dict(self)!r})"


def parse_event_plain(body: bytes) -> EventHeaders | None:
    """An `event plain` body → its headers; None if the first line is not a header."""
    text = body.decode("utf-8", "replace")
    if not _HEADER_LINE.match(text):
        return None
    return EventHeaders(dict(_HEADER_LINE.findall(text)))


class EslProtocol(asyncio.Protocol):
    """One inbound ESL connection. `on_event` gets the headers of each event, on the loop, in order."""

    def __init__(self, on_event: Callable[[Mapping[str, str]], None], *, write_timeout: float = 5.0) -> None:
        self.on_event = on_event
        self.write_timeout = write_timeout
        self.transport: asyncio.Transport | None = None
        # True once FreeSWITCH asks for the password, False if the link ends first
        self.auth_requested: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()  # → why it closed
        self.reason = ""  # set when we know why the link is going down (rejection, notice, stuck write)
        self._replies: deque[asyncio.Future[str]] = deque()
        self._buf = bytearray()
        self._frame: dict[str, str] | None = None  # headers of a frame whose body has not all arrived
        self._need = 0
        self._stuck: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while pos < end:
            if self._frame is not None:  # waiting for a body
                if end - pos < self._need:
                    break
                frame, body = self._frame, bytes(buf[pos : pos + self._need])
                pos += self._need
                self._frame, self._need = None, 0
                self._dispatch(frame, body)
                continue
            if buf[pos] == 10:  # stray empty line between frames
                pos += 1
                continue
            cut = buf.find(b"\n\n", pos)
            if cut < 0:
                break
            block = bytes(buf[pos:cut])
            pos = cut + 2
            headers = _headers(block)
            if headers is None:
                log.warning("bad ESL frame ignored: %r", block[:200])
                continue
            length = headers.get("Content-Length")
            if length is None:
                self._dispatch(headers, b"")
                continue
            try:
                self._need = int(length)
                if self._need < 0:
                    raise ValueError(length)
            except ValueError:
                log.warning("bad ESL frame ignored (Content-Length %r): %r", length, block[:200])
                self._need = 0
                continue
            self._frame = headers
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stuck is not None:
            self._stuck.cancel()
        reason = self.reason
        if not reason and self._frame is not None:
            reason = f"socket closed mid-frame ({len(self._buf)} of {self._need} body bytes)"
        elif not reason and self._buf.strip(b"\n"):
            reason = f"socket closed mid-frame (a header block cut off after {len(self._buf)} bytes)"
        if not reason:
            reason = f"connection lost: {exc}" if exc else "connection closed by FreeSWITCH"
        self.reason = reason
        waiting, self._replies = self._replies, deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(EslLinkLost(f"ESL link lost: {reason}"))
        if not self.auth_requested.done():
            self.auth_requested.set_result(False)
        if not self.closed.done():
            self.closed.set_result(reason)
        self.transport = None

    def pause_writing(self) -> None:
        """The PBX stopped reading: give it `write_timeout`, then cut the link (the driver reconnects)."""
        loop = asyncio.get_running_loop()
        self._stuck = loop.call_later(self.write_timeout, self.abort, "ESL socket not writable")

    def resume_writing(self) -> None:
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None

    # ---- commands ----
    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, command: str) -> asyncio.Future[str]:
        """Write `command` now; the future gets its reply (Reply-Text or the api body)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise EslLinkLost("not connected")
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._replies.append(fut)
        transport.write(command.encode() + b"\n\n")
        return fut

    def abort(self, reason: str = "") -> None:
        """Cut the connection at once (a stuck or unwanted link)."""
        if reason and not self.reason:
            self.reason = reason
        if self.transport is not None:
            self.transport.abort()

    # ---- frames ----
    def _dispatch(self, headers: dict[str, str], body: bytes) -> None:
        kind = headers.get("Content-Type", "")
        if kind == "text/event-plain":
            event = parse_event_plain(body)
            if event is None:
                log.warning("bad ESL event ignored: %r", body[:200])
                return
            try:
                self.on_event(event)
            except Exception:
                log.exception("ESL event handler failed on %s", event.get("Event-Name"))
        elif kind == "command/reply":
            self._reply(headers.get("Reply-Text", ""))
        elif kind == "api/response":
            self._reply(body.decode("utf-8", "replace"))
        elif kind == "auth/request":
            if not self.auth_requested.done():
                self.auth_requested.set_result(True)
        elif kind == "text/rude-rejection":
            self.reason = "rejected by FreeSWITCH: " + body.decode("utf-8", "replace").strip()
        elif kind == "text/disconnect-notice":
            if headers.get("Content-Disposition") != "linger":
                self.reason = self.reason or "FreeSWITCH sent a disconnect notice"

    def _reply(self, text: str) -> None:
        if not self._replies:
            log.debug("ignoring an ESL reply nobody waits for")
            return
        fut = self._replies.popleft()
        if not fut.done():  # one whose waiter gave up (timeout) still takes its reply, in order
            fut.set_result(text)


async def connect(
    host: str, port: int, password: str, on_event: Callable[[Mapping[str, str]], None], *, wait: float = 5.0
) -> EslProtocol:
    """Connect and log in; raises ConnectionError with the reason (refused, rejected, wrong password)."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: EslProtocol(on_event, write_timeout=wait), host, port), wait
    )
    try:
        try:
            asked = await asyncio.wait_for(asyncio.shield(proto.auth_requested), wait)
        except TimeoutError:
            raise ConnectionError("no auth/request from FreeSWITCH (is this an Event Socket port?)") from None
        if not asked:
            raise ConnectionError(proto.reason)
        reply = await asyncio.wait_for(proto.send(f"auth {password}"), wait)
        if not reply.startswith("+OK"):
            raise ConnectionError("authentication failed (wrong ESL password?)")
    except BaseException:
        proto.abort()
        raise
    return proto
