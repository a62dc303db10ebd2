"""A real WebDAV server process for the tests: wsgidav (filesystem provider) served by cheroot.

    python -m tests.storage.webdav_server ROOT CONTROL PORT USER PASSWORD

A small WSGI middleware in front of wsgidav reads the CONTROL directory on every PUT, so a test can
change the server's behaviour without restarting it:
    CONTROL/quota      bytes the store may hold: a PUT that would exceed it gets 507 Insufficient Storage
    CONTROL/put_rate   bytes per second a PUT body is read at (a slow link, to kill the server mid-upload)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _used(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _control(control: Path, name: str) -> int | None:
    try:
        return int((control / name).read_text().strip())
    except (OSError, ValueError):
        return None


class _SlowInput:
    def __init__(self, inner: Any, rate: int) -> None:
        self.inner, self.rate = inner, rate

    def read(self, n: int = -1) -> bytes:
        step = min(n if n and n > 0 else 65536, 65536)
        data = self.inner.read(step)
        time.sleep(len(data) / self.rate)
        return data

    def readline(self, *a: Any) -> bytes:
        return self.inner.readline(*a)


def quota_middleware(app: Callable[..., Iterable[bytes]], root: Path, control: Path) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            quota = _control(control, "quota")
            if quota is not None and _used(root) + length > quota:
                body = environ["wsgi.input"]
                left = length
                while left > 0 and (chunk := body.read(min(left, 65536))):  # drain: the client is sending
                    left -= len(chunk)
                msg = b"quota exceeded"
                start_response("507 Insufficient Storage", [("Content-Type", "text/plain"), ("Content-Length", "14")])
                return [msg]
            rate = _control(control, "put_rate")
            if rate:
                environ["wsgi.input"] = _SlowInput(environ["wsgi.input"], rate)
        return app(environ, start_response)

    return wrapped


def main() -> None:
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    root, control, port, user, password = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6]
    root.mkdir(parents=True, exist_ok=True)
    control.mkdir(parents=True, exist_ok=True)
    config = {
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {"/dav": str(root)},
        "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "verbose": 1,
        "logging": {"enable": False},
        "property_manager": True,
        "lock_storage": True,
    }
    app = quota_middleware(WsgiDAVApp(config), root, control)
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=8)
    (control / "pid").write_text(str(os.getpid()))
    server.start()


if __name__ == "__main__":
    main()
