"""AMI framing on top of panoramisk: bytes in → `panoramisk.message.Message`, actions out → futures.

panoramisk's `AMIProtocol` parses frames and matches replies to actions by ActionID; we reuse it but
feed it through an incremental UTF-8 decoder (panoramisk decodes every read on its own, so a
multi-byte character split across two reads would be lost) and give it a small "factory" that hands
events to our driver instead of panoramisk's `Manager`, whose reconnect loop replays queued actions
after a reconnect — a replayed MixMonitor would start a second recording.

Helpers here normalise the two shapes panoramisk produces for a header: a `str`, or a `list` when the
header repeats (`ChanVariable`, UserEvent body keys that clash with the channel snapshot).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

log = logging.getLogger(__name__)

Headers = Mapping[str, Any]


def header(msg: Headers, key: str, default: str = "") -> str:
    """One header as a string; the FIRST value when it repeated (snapshot headers come first)."""
    v = msg.get(key)
    if v is None:
        return default
    if isinstance(v, list):
        return str(v[0]) if v else default
    return str(v)


def header_last(msg: Headers, key: str, default: str = "") -> str:
    """The LAST value of a repeated header: a UserEvent body key that clashed with the snapshot."""
    v = msg.get(key)
    if v is None:
        return default
    if isinstance(v, list):
        return str(v[-1]) if v else default
    return str(v)


def header_list(msg: Headers, key: str) -> list[str]:
    v = msg.get(key)
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def chan_variables(msg: Headers, prefix: str = "") -> dict[str, str]:
    """`ChanVariable: NAME=value` lines (or `<prefix>ChanVariable:` in multi-channel events) as a dict
    with lower-case names. Empty values are kept out: Asterisk lists every configured name, set or not."""
    out: dict[str, str] = {}
    for item in header_list(msg, prefix + "ChanVariable"):
        name, sep, value = item.partition("=")
        if sep and value:
            out[name.strip().lower()] = value
    return out


def number(value: str) -> str:
    """Caller-ID style value, with Asterisk's `<unknown>` placeholder turned into ''."""
    return "" if value in ("<unknown>", "") else value


class AmiLinkLost(ConnectionError):
    pass


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with an incremental decoder and our own event sink."""

    closed: bool  # set by panoramisk's connection_made

    def __init__(self, on_event: Callable[[Message], None], on_lost: Callable[[Exception | None], None]) -> None:
        super().__init__()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._sink = _Sink(on_event, on_lost)
        self.banner: str | None = None
        self.banner_seen: asyncio.Future[str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self._sink
        self.encoding = "utf-8"
        self.log = log
        self.banner_seen = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if not text:
            return
        if self.banner is None:
            buf = (self.queue.popleft() if self.queue else "") + text
            line, eol, rest = buf.partition("\r\n")
            if not eol:
                self.queue.append(buf)
                return
            self.banner = line.strip()
            self.version = self.banner.partition("/")[2]
            if self.banner_seen is not None and not self.banner_seen.done():
                self.banner_seen.set_result(self.banner)
            text = rest
            if not text:
                return
        if self.queue:
            text = self.queue.popleft() + text
        frames = text.split("\r\n\r\n")
        self.queue.append(frames.pop(-1))
        for frame in frames:
            message = Message.from_line(frame.strip("\r\n"))
            if message is None:
                if frame.strip():
                    log.warning("AMI: ignoring a frame without Event/Response header: %r", frame[:200])
                continue
            try:
                self.handle_message(message)
            except Exception as e:  # e.g. a repeated Event/Response/ActionID header (a list, not a str)
                log.warning("AMI: ignoring a malformed frame (%s: %s): %r", type(e).__name__, e, frame[:200])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            for action in list(self.responses.values()):
                if not action.future.done():
                    action.future.set_exception(AmiLinkLost(f"AMI link lost before the reply to {action['action']}"))
            self.responses.clear()
        self._sink.connection_lost(exc)

    def close(self) -> None:
        if not self.closed:
            self.transport.close()


class _Sink:
    """What panoramisk's protocol calls its `factory`: dispatch events, report the lost link."""

    forgetable_actions: tuple[str, ...] = ("ping", "login")

    def __init__(self, on_event: Callable[[Message], None], on_lost: Callable[[Exception | None], None]) -> None:
        self.awaiting_actions: deque[Any] = deque()  # panoramisk requeues here; we never replay
        self._on_event = on_event
        self._on_lost = on_lost
        self._lost = False

    def dispatch(self, message: Message) -> None:
        self._on_event(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            self._on_lost(exc)
