"""The AMI wire format as Asterisk 20 writes it: the banner line, `Key: value` blocks ended by an empty
line (CRLF), `Privilege`/`Timestamp` on events, and each client's `Events:` class filter."""

from __future__ import annotations

import asyncio
import time

BANNER = "Asterisk Call Manager/9.0.0"
EOL = "\r\n"
PRIVILEGE = {
    "FullyBooted": "system",
    "VarSet": "dialplan",
    "Newexten": "dialplan",
    "UserEvent": "user",
}

Headers = list[tuple[str, str]]
Action = dict[str, list[str]]


def parse_action(text: str) -> Action:
    """An action block → lower-cased header name → its values (headers like Variable repeat)."""
    out: Action = {}
    for line in text.split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def get(a: Action, key: str) -> str:
    """The first value of header `key` ("" when absent)."""
    v = a.get(key.lower())
    return v[0] if v else ""


def event_headers(name: str, body: Headers) -> tuple[str, Headers]:
    """(event class, the event's full header list) — the class decides which sessions receive it."""
    cls = PRIVILEGE.get(name, "call")
    h = [("Event", name), ("Privilege", f"{cls},all")]
    if name != "FullyBooted":
        h.append(("Timestamp", f"{time.time():.6f}"))
    return cls, h + body


def encode(headers: Headers) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in headers) + EOL).encode()


class Session:
    """One AMI client connection: logged in or not, and which event classes it asked for."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.authenticated = False
        self.events: set[str] | None = None  # None = all; empty = none

    def wants(self, privilege: str) -> bool:
        if not self.authenticated:
            return False
        if self.events is None:
            return True
        return privilege in self.events

    def send(self, headers: Headers) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(encode(headers))

    def set_events(self, value: str) -> None:
        v = value.strip().lower()
        if v in ("on", "yes", "true", "all", ""):
            self.events = None
        elif v in ("off", "no", "false"):
            self.events = set()
        else:
            self.events = {x.strip() for x in v.split(",") if x.strip()}
