"""baresip's ctrl_tcp protocol: netstring-framed JSON commands out, responses and call events in.

A command is `<len>:{"command":"dial","params":"sip:2001@127.0.0.1:5080","token":"t1"},`; baresip
answers `{"response":true,"ok":true,"data":"...","token":"t1"}` and, on the same connection and at
any time, sends call events `{"event":true,"class":"call","type":"CALL_ESTABLISHED",...}`. TCP cuts
frames anywhere and packs several into one read (a response and the event it caused often arrive
together), so every decoded message is kept: events in arrival order, responses by token.
ctrl_tcp serves ONE client at a time (a new connection replaces the old one).

Standard library only (it runs in the softphone container).
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque


class PhoneError(RuntimeError):
    """A phone is not set up, not running, or refused a command."""


def netstring(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return str(len(body)).encode() + b":" + body + b","


class NetstringDecoder:
    """Bytes in (cut anywhere), whole JSON messages out."""

    def __init__(self, who: str = "baresip") -> None:
        self.who = who
        self.buf = b""

    def feed(self, chunk: bytes) -> list[dict]:
        self.buf += chunk
        out = []
        while True:
            colon = self.buf.find(b":")
            if colon < 0:
                if len(self.buf) > 10 or (self.buf and not self.buf.isdigit()):
                    raise PhoneError(f"{self.who}: bad netstring: {self.buf[:40]!r}")
                return out
            length = self.buf[:colon]
            if not length.isdigit():
                raise PhoneError(f"{self.who}: bad netstring: {self.buf[:40]!r}")
            end = colon + 1 + int(length)
            if len(self.buf) < end + 1:
                return out
            if self.buf[end : end + 1] != b",":
                raise PhoneError(f"{self.who}: netstring not closed by ',': {self.buf[:40]!r}")
            body, self.buf = self.buf[colon + 1 : end], self.buf[end + 1 :]
            out.append(json.loads(body))


class Phone:
    """One ctrl_tcp connection to one baresip phone."""

    def __init__(self, user: str, host: str, port: int, timeout: float = 5.0) -> None:
        self.user = user
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = NetstringDecoder(user)
        self.events: deque[dict] = deque()  # call events not yet consumed by wait_event
        self._responses: dict[str, dict] = {}
        self._token = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pump(self, deadline: float) -> None:
        """Read once (until `deadline`) and file every message the read completed."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise PhoneError(f"{self.user}: baresip closed the control connection")
        for m in self.decoder.feed(chunk):
            if m.get("response") and "token" in m:
                self._responses[str(m["token"])] = m
            elif m.get("event"):
                self.events.append(m)

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a baresip command (menu module) and return its output; raise if baresip says not ok.

        Events that arrive before, with or after the response stay queued for `wait_event`.
        """
        self._token += 1
        token = f"{self.user}-{self._token}"
        msg = {"command": command, "token": token}
        if params:
            msg["params"] = params
        self.sock.sendall(netstring(msg))
        deadline = time.monotonic() + timeout
        while token not in self._responses:
            if time.monotonic() >= deadline:
                raise PhoneError(f"{self.user}: no response to {command!r} within {timeout} s")
            self._pump(deadline)
        m = self._responses.pop(token)
        self._responses.clear()  # answers to earlier commands that timed out: nobody waits for them
        if not m.get("ok", False):
            raise PhoneError(f"{self.user}: {command} {params} failed: {m.get('data', '')}")
        return str(m.get("data", ""))

    def wait_event(self, types: tuple[str, ...], timeout: float = 10.0) -> dict:
        """The next call event of one of `types`; earlier events of other types are consumed."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                ev = self.events.popleft()
                if ev.get("type") in types:
                    return ev
            if time.monotonic() >= deadline:
                raise PhoneError(f"{self.user}: no {'/'.join(types)} within {timeout} s")
            self._pump(deadline)
