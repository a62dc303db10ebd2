"""A tiny SIP registrar over UDP on a port the OS picks: what the default suite's phones register to.

It challenges every REGISTER with digest auth (RFC 3261 §22, MD5, no qop), checks the answer against
the lab passwords and records the contact, so a test sees that the phones registered where they were
told, with the right credentials, and never at a real PBX. Anything else it answers 405.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Registrar:
    passwords: dict[str, str]
    host: str = "127.0.0.1"
    realm: str = "callrec-test"
    contacts: dict[str, str] = field(default_factory=dict)  # user -> Contact of its last good REGISTER
    refused: list[str] = field(default_factory=list)  # users whose digest was wrong

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.port: int = self.sock.getsockname()[1]
        self.nonce = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Registrar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.handle(data.decode(errors="replace"))
            if reply:
                self.sock.sendto(reply.encode(), peer)

    def handle(self, message: str) -> str | None:
        head = message.split("\r\n\r\n", 1)[0].split("\r\n")
        method = head[0].split(" ", 1)[0]
        if head[0].startswith("SIP/2.0") or method == "ACK":
            return None
        headers: dict[str, list[str]] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if method != "REGISTER":
            return self._response(headers, "405 Method Not Allowed", ["Allow: REGISTER"])
        user = re.search(r"sip:([^@;>]+)@", headers["to"][0])
        auth = headers.get("authorization") or headers.get("proxy-authorization")
        if not user or not auth:
            challenge = f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5'
            return self._response(headers, "401 Unauthorized", [challenge])
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[0]))
        name = user.group(1)
        ha1 = _md5(f"{params.get('username')}:{self.realm}:{self.passwords.get(name, '')}")
        expected = _md5(f"{ha1}:{self.nonce}:{_md5('REGISTER:' + params.get('uri', ''))}")
        if params.get("username") != name or params.get("response") != expected:
            self.refused.append(name)
            return self._response(headers, "403 Forbidden", [])
        contact = headers.get("contact", headers.get("m", [""]))[0]
        self.contacts[name] = contact
        return self._response(headers, "200 OK", [f"Contact: {contact};expires=120"])

    def _response(self, headers: dict[str, list[str]], status: str, extra: list[str]) -> str:
        to = headers.get("to", headers.get("t", [""]))[0]
        if ";tag=" not in to:
            to += ";tag=reg"
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for v in headers.get("via", headers.get("v", []))]
        lines += [
            f"From: {headers.get('from', headers.get('f', ['']))[0]}",
            f"To: {to}",
            f"Call-ID: {headers.get('call-id', headers.get('i', ['']))[0]}",
            f"CSeq: {headers.get('cseq', [''])[0]}",
            *extra,
            "Content-Length: 0",
        ]
        return "\r\n".join(lines) + "\r\n\r\n"
