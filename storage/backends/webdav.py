"""WebDAV storage (Genesys GIR, Nextcloud, Apache mod_dav, IIS, ...) through aiohttp's client.

Uploads are atomic: the object is PUT under a temporary name in its collection (`.<name>.partial`,
deterministic so a retry after a crash overwrites the leftover), its size is checked, then it is
MOVEd onto the final name, so a reader never sees a half-written object. Every request is retried
with capped exponential backoff on connection errors and 5xx/429 answers; what is still failing is
raised as a `BackendError` naming the server's status (507 Insufficient Storage → "out of space"),
and finalize keeps the recording in the spool and retries it later.

The backend interface is synchronous (callers run it in a thread); the requests run on one shared
private event loop thread, where each backend keeps a pooled `aiohttp.ClientSession`.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import errno
import io
import logging
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from storage.backends.base import Backend, BackendError, ObjectMissing

log = logging.getLogger(__name__)

T = TypeVar("T")
PARTIAL_SUFFIX = ".partial"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20
_DAV = "{DAV:}"
_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/></d:prop></d:propfind>'
)


_open_sessions: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


class _LoopThread:
    """One daemon thread running an asyncio loop for every WebDAV backend of the process."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="callrec-webdav", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def close_sessions(cls) -> None:
        """At exit: close pooled connections cleanly (no 'unclosed session' noise, no half-open sockets)."""
        inst = cls._instance
        if inst is None or not inst.thread.is_alive():
            return

        async def close_all() -> None:
            for s in list(_open_sessions):
                await s.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), inst.loop).result(5)

    def run(self, coro: Awaitable[T]) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("WebDAV backend called from its own loop thread")
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result()


atexit.register(_LoopThread.close_sessions)


def _reason(status: int, reason: str | None) -> str:
    text = f"{status} {reason or ''}".strip()
    if status == 507:
        return text + " (the WebDAV server is out of space or over quota)"
    if status in (401, 403):
        return text + " (check storage.username / storage.password and the server's permissions)"
    return text


class WebDAVBackend(Backend):
    name = "webdav"

    def __init__(
        self,
        *,
        url: str,
        username: str = "",
        password: str = "",
        verify_tls: bool = True,
        base_path: str = "",
        attempts: int = 5,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"storage.url must be an http:// or https:// WebDAV URL, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("storage.url must not carry credentials: set storage.username / storage.password")
        root = parts.path.rstrip("/")
        base = "/".join(quote(seg) for seg in base_path.strip("/").split("/") if seg)
        self.base_url = f"{parts.scheme}://{parts.netloc}{root}/" + (base + "/" if base else "")
        self._root_url = f"{parts.scheme}://{parts.netloc}{root}/"
        self._base_segments = [seg for seg in base_path.strip("/").split("/") if seg]
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"} if username else {}
        self._verify_tls = verify_tls
        self.attempts = max(1, attempts)
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._collections: set[str] = set()  # collections known to exist (MKCOL done)
        self._loop = _LoopThread.get()

    # ---- naming ---------------------------------------------------------------------------------

    def _url(self, key: str) -> str:
        if key.startswith("/") or any(seg in ("..", ".") for seg in key.split("/")):
            raise ValueError(f"object key escapes the storage root: {key!r}")
        return self.base_url + quote(key)

    def uri(self, key: str) -> str:
        return self._url(key)

    def key_from_uri(self, uri: str) -> str:
        if not uri.startswith(self.base_url):
            raise ValueError(f"not an object URI under {self.base_url}: {uri}")
        return unquote(uri[len(self.base_url) :])

    @staticmethod
    def _partial_key(key: str) -> str:
        p = PurePosixPath(key)
        return str(p.with_name(f".{p.name}{PARTIAL_SUFFIX}"))

    # ---- HTTP plumbing --------------------------------------------------------------------------

    async def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=True if self._verify_tls else False, limit=8)
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=connector, auto_decompress=False
            )
            _open_sessions.add(self._session)
        return self._session

    def _delay(self, attempt: int) -> float:
        return min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        handle: Callable[[aiohttp.ClientResponse], Awaitable[T]] | None = None,
        missing_ok: bool = False,
    ) -> tuple[int, T | None]:
        """One request with retries. Returns (status, handle(response) or None). A status outside `ok`
        is an error naming it (404 → ObjectMissing unless `missing_ok`)."""
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                sess = await self._sess()
                data = body() if body is not None else None
                try:
                    async with sess.request(method, url, headers=headers, data=data, allow_redirects=False) as resp:
                        if resp.status in ok:
                            return resp.status, (await handle(resp) if handle else None)
                        if resp.status == 404 and missing_ok:
                            return 404, None
                        text = _reason(resp.status, resp.reason)
                        if resp.status == 404:
                            raise ObjectMissing(errno.ENOENT, f"webdav {method} {url}: {text}")
                        if resp.status not in RETRY_STATUSES:
                            raise BackendError(_errno_for(resp.status), f"webdav {method} {url}: {text}")
                        last = text
                finally:
                    if isinstance(data, io.IOBase):
                        data.close()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt < self.attempts:
                delay = self._delay(attempt)
                log.warning("webdav %s %s failed (%s); retry %d in %.2fs", method, url, last, attempt, delay)
                await asyncio.sleep(delay)
        raise BackendError(
            errno.ECONNREFUSED if "Connect" in last else errno.EIO,
            f"webdav {method} {url}: {last} (gave up after {self.attempts} attempts)",
        )

    def _run(self, coro: Awaitable[T]) -> T:
        return self._loop.run(coro)

    async def _mkcol_chain(self, segments: list[str]) -> None:
        """Create every collection from the URL root down to `segments` (existing ones answer 405)."""
        url = self._root_url
        for seg in segments:
            url += quote(seg) + "/"
            if url in self._collections:
                continue
            # 405: already exists; 301: some servers redirect the slash-less form of an existing one
            await self._request("MKCOL", url, ok=(200, 201, 204, 301, 405))
            self._collections.add(url)

    async def _ensure_parent(self, key: str) -> None:
        await self._mkcol_chain(self._base_segments + key.split("/")[:-1])

    # ---- writes ---------------------------------------------------------------------------------

    async def _put(self, key: str, body: Callable[[], Any], size: int) -> None:
        await self._ensure_parent(key)
        tmp = self._url(self._partial_key(key))
        final = self._url(key)
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        await self._request("PUT", tmp, ok=(200, 201, 204), headers=headers, body=body)
        got = await self._head_size(tmp)
        if got != size:  # a proxy or server that truncated the body: never MOVE it into place
            raise BackendError(errno.EIO, f"webdav PUT {tmp}: server holds {got} bytes, sent {size}")
        status, _ = await self._request(
            "MOVE", tmp, ok=(201, 204), headers={"Destination": final, "Overwrite": "T"}, missing_ok=True
        )
        if status == 404:  # a retried MOVE whose first try went through (the answer was lost)
            if await self._head_size(final, missing_ok=True) != size:
                raise BackendError(errno.EIO, f"webdav MOVE {tmp} -> {final}: temporary object vanished")

    def put_file(self, key: str, src: Path, *, retain_until: datetime | None = None, legal_hold: bool = False) -> None:
        size = src.stat().st_size
        self._run(self._put(key, lambda: open(src, "rb"), size))

    def put_bytes(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> None:
        self._run(self._put(key, lambda: data, len(data)))

    def delete(self, key: str) -> None:
        self._run(self._request("DELETE", self._url(key), ok=(200, 202, 204), missing_ok=True))

    # ---- reads ----------------------------------------------------------------------------------

    async def _head_size(self, url: str, *, missing_ok: bool = False) -> int | None:
        async def length(resp: aiohttp.ClientResponse) -> int:
            if resp.content_length is None:
                raise BackendError(errno.EIO, f"webdav HEAD {url}: no Content-Length")
            return resp.content_length

        status, n = await self._request("HEAD", url, ok=(200,), handle=length, missing_ok=missing_ok)
        return None if status == 404 else n

    def exists(self, key: str) -> bool:
        return self._run(self._head_size(self._url(key), missing_ok=True)) is not None

    def size(self, key: str) -> int:
        n = self._run(self._head_size(self._url(key)))
        assert n is not None
        return n

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of the object with an HTTP Range request."""
        if length <= 0:
            return b""
        url = self._url(key)

        async def body(resp: aiohttp.ClientResponse) -> bytes:
            data = await resp.read()
            return data if resp.status == 206 else data[start : start + length]  # server ignored Range

        rng = {"Range": f"bytes={start}-{start + length - 1}"}
        _, data = self._run(self._request("GET", url, ok=(200, 206), headers=rng, handle=body))
        assert data is not None
        return data

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        reader = _RangeReader(self, self._url(key))
        reader.open()
        return reader  # type: ignore[return-value]

    def get_file(self, key: str, dst: Path, chunk: int = _CHUNK) -> None:
        with self.open_read(key) as f, open(dst, "wb") as out:
            while b := f.read(chunk):
                out.write(b)

    # ---- listing --------------------------------------------------------------------------------

    async def _propfind(self, url: str) -> list[tuple[str, bool]]:
        """Direct members of a collection: (absolute path, is_collection)."""

        async def parse(resp: aiohttp.ClientResponse) -> list[tuple[str, bool]]:
            root = ET.fromstring(await resp.read())
            out = []
            for r in root.iter(f"{_DAV}response"):
                href = r.findtext(f"{_DAV}href") or ""
                is_col = r.find(f".//{_DAV}resourcetype/{_DAV}collection") is not None
                out.append((unquote(urlsplit(href).path), is_col))
            return out

        headers = {"Depth": "1", "Content-Type": "application/xml"}
        status, found = await self._request(
            "PROPFIND", url, ok=(207,), headers=headers, body=lambda: _PROPFIND_BODY, handle=parse, missing_ok=True
        )
        return [] if status == 404 or found is None else found

    async def _walk(self, prefix: str) -> list[str]:
        base_path = unquote(urlsplit(self.base_url).path)
        start = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        todo, keys = [start], []
        while todo:
            rel = todo.pop()
            col = self.base_url + quote(rel)
            for path, is_col in await self._propfind(col):
                if not path.startswith(base_path):
                    continue
                member = path[len(base_path) :]
                if member.rstrip("/") == rel.rstrip("/"):
                    continue  # the collection itself
                if is_col:
                    sub = member.rstrip("/") + "/"
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        todo.append(sub)
                elif member.startswith(prefix) and not _is_partial(member):
                    keys.append(member)
        return sorted(keys)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        yield from self._run(self._walk(prefix))

    def check(self) -> None:
        async def probe() -> None:
            await self._mkcol_chain(self._base_segments)
            headers = {"Depth": "0", "Content-Type": "application/xml"}
            await self._request("PROPFIND", self.base_url, ok=(207,), headers=headers, body=lambda: _PROPFIND_BODY)

        self._run(probe())

    def close(self) -> None:
        if self._session is not None:
            self._run(self._session.close())
            self._session = None

    def __del__(self) -> None:
        s = self._session
        if s is not None and not s.closed and self._loop.thread.is_alive():
            self._loop.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(s.close()))


_shared: dict[tuple[str, str, str, bool, str], WebDAVBackend] = {}
_shared_lock = threading.Lock()


def shared_backend(*, url: str, username: str, password: str, verify_tls: bool, base_path: str) -> WebDAVBackend:
    """One backend (one pooled session) per configured store, however often the config opens it."""
    k = (url, username, password, verify_tls, base_path)
    with _shared_lock:
        if k not in _shared:
            _shared[k] = WebDAVBackend(
                url=url, username=username, password=password, verify_tls=verify_tls, base_path=base_path
            )
        return _shared[k]


def _is_partial(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def _errno_for(status: int) -> int:
    return {401: errno.EACCES, 403: errno.EACCES, 507: errno.ENOSPC, 413: errno.EFBIG}.get(status, errno.EIO)


class _RangeReader(io.RawIOBase):
    """A readable stream of one object. A connection that breaks mid-body is resumed with a Range
    request from the current offset (If-Range on the ETag, so a replaced object is never spliced)."""

    def __init__(self, backend: WebDAVBackend, url: str) -> None:
        self.b, self.url = backend, url
        self.pos = 0
        self.etag: str | None = None
        self._resp: aiohttp.ClientResponse | None = None
        self._resumes = 0

    async def _open_at(self, offset: int) -> None:
        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.etag:
                headers["If-Range"] = self.etag

        sess = await self.b._sess()
        last = ""
        for attempt in range(1, self.b.attempts + 1):
            try:
                resp = await sess.get(self.url, headers=headers, allow_redirects=False)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status == 404:
                    resp.release()
                    raise ObjectMissing(errno.ENOENT, f"webdav GET {self.url}: 404 Not Found")
                if resp.status == 200 and offset:
                    resp.release()
                    raise BackendError(errno.EIO, f"webdav GET {self.url}: object changed while it was read")
                if resp.status in ((206,) if offset else (200,)):
                    self.etag = self.etag or resp.headers.get("ETag")
                    self._resp = resp
                    return
                text = _reason(resp.status, resp.reason)
                resp.release()
                if resp.status not in RETRY_STATUSES:
                    raise BackendError(_errno_for(resp.status), f"webdav GET {self.url}: {text}")
                last = text
            if attempt < self.b.attempts:
                await asyncio.sleep(self.b._delay(attempt))
        raise BackendError(errno.EIO, f"webdav GET {self.url}: {last} (gave up after {self.b.attempts} attempts)")

    def open(self) -> None:
        self.b._run(self._open_at(0))

    async def _read(self, n: int) -> bytes:
        while True:
            assert self._resp is not None
            try:
                return await self._resp.content.read(n)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
                self._resp.release()
                self._resumes += 1
                if self._resumes > self.b.attempts:
                    raise BackendError(errno.EIO, f"webdav GET {self.url}: {e} (gave up resuming)") from e
                await asyncio.sleep(self.b._delay(self._resumes))
                await self._open_at(self.pos)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._resp is None:
            return b""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        data = self.b._run(self._read(n))
        self.pos += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._resp is not None:
            resp, self._resp = self._resp, None

            async def release() -> None:
                resp.release()

            self.b._run(release())
        super().close()

    def __enter__(self) -> _RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
