"""Decrypted playback: age → WAV stream, HTTP Range, and waveform peaks for the player.

Audio is decrypted on the fly and never written to disk. The age format cannot be entered in the
middle without its payload key, so a Range request decrypts from the start and discards bytes
before the range (constant memory; cost grows with the offset, which is fine for call-length WAVs).
The total size comes from the WAV header (RIFF size), so the first bytes answer `Content-Range`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import threading
from array import array
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import pyrage
from aiohttp import web

from controller.api.errors import ApiError
from controller.config import Config

AudioOpener = Callable[[Mapping[str, Any]], AsyncIterator[bytes]]
"""Given a stored recording row (object_uri, ...), yields its decrypted WAV bytes in order."""

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Stopped(Exception):
    pass


def load_identities(identity_file: str | Path) -> list[pyrage.x25519.Identity]:
    """The X25519 identities in an age identity file (comment lines ignored)."""
    idents = []
    for line in Path(identity_file).read_text().splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            idents.append(pyrage.x25519.Identity.from_str(line))
    if not idents:
        raise ValueError(f"{identity_file}: no AGE-SECRET-KEY- line")
    return idents


async def decrypt_stream(
    open_reader: Callable[[], AbstractContextManager[BinaryIO]], identities: list[Any], *, depth: int = 32
) -> AsyncIterator[bytes]:
    """Decrypt an age stream in a worker thread, yielding plaintext with bounded buffering.

    Closing the generator early (client gone, range served) stops the thread promptly.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    class Writer:
        def write(self, data: bytes) -> int:
            if stop.is_set():
                raise _Stopped
            put(bytes(data))
            return len(data)

        def flush(self) -> None:
            pass

    def work() -> None:
        try:
            with open_reader() as reader:
                pyrage.decrypt_io(reader, Writer(), identities)
            put(None)
        except _Stopped:
            pass
        except BaseException as e:  # reported to the consumer
            if not stop.is_set():
                put(e)

    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not task.done():  # unblock a writer waiting on a full queue
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.005)


def object_path(uri: str) -> Path:
    """Local path of a `file://` URI or a bare absolute path (the local backend)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and uri.startswith("/"):
        return Path(uri)
    raise ApiError(503, "playback_unavailable", f"no reader for stored objects of scheme {parts.scheme!r}")


def backend_age_opener(config: Config) -> AudioOpener:
    """Playback from the store that holds each recording ([storage] or its account's own; local, S3 or
    WebDAV) with `encryption.identity_file`."""
    identity_file = config.encryption.identity_file
    locations: Any = None  # the stores, opened once on first playback

    def opener(rec: Mapping[str, Any]) -> AsyncIterator[bytes]:
        nonlocal locations
        if not identity_file:
            raise ApiError(503, "playback_unavailable", "no encryption.identity_file configured for playback")
        try:
            identities = load_identities(identity_file)
        except (OSError, ValueError) as e:
            raise ApiError(503, "playback_unavailable", f"cannot read the playback identity file: {e}") from None
        uri = rec.get("object_uri") or ""
        try:
            from storage.backends.locations import StorageLocations

            locations = locations or StorageLocations.from_config(config)
            backend = locations.for_row(rec)
            key = backend.key_from_uri(uri)
        except ImportError:  # storage backends not installed: local files only
            path = object_path(uri)
            return decrypt_stream(lambda: open(path, "rb"), identities)
        except ValueError as e:
            raise ApiError(503, "object_missing", f"the stored object is not in the configured backend: {e}") from None
        if not backend.exists(key):
            raise ApiError(503, "object_missing", "the stored audio object is missing from the backend")
        return decrypt_stream(lambda: backend.open_read(key), identities)

    return opener


class WavStream:
    """A decrypted WAV: its header fields read from the first bytes, then the rest on demand."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.head = b""
        self.total = 0
        self.channels = 0
        self.rate = 0
        self.bits = 0
        self.data_offset = 0
        self.data_size = 0

    async def open(self) -> WavStream:
        try:
            async for chunk in self._chunks:
                self.head += chunk
                if self._parse():
                    return self
                if len(self.head) > 1 << 20:
                    break
        except ApiError:
            raise
        except pyrage.DecryptError as e:
            raise ApiError(
                502, "decrypt_failed", f"the playback identity cannot decrypt this recording ({e})"
            ) from None
        except OSError as e:
            raise ApiError(503, "object_unreadable", f"the stored audio cannot be read: {e}") from None
        raise ApiError(502, "corrupt_audio", "the stored audio is not a readable WAV file")

    def _parse(self) -> bool:
        h = self.head
        if len(h) < 12:
            return False
        if h[:4] != b"RIFF" or h[8:12] != b"WAVE":
            raise ApiError(502, "corrupt_audio", "the stored audio is not a WAV file")
        self.total = struct.unpack_from("<I", h, 4)[0] + 8
        pos = 12
        while pos + 8 <= len(h):
            cid, size = h[pos : pos + 4], struct.unpack_from("<I", h, pos + 4)[0]
            if cid == b"fmt ":
                if pos + 8 + 16 > len(h):
                    return False
                _, self.channels, self.rate, _, _, self.bits = struct.unpack_from("<HHIIHH", h, pos + 8)
            elif cid == b"data":
                self.data_offset, self.data_size = pos + 8, size
                return bool(self.channels)
            pos += 8 + size + (size & 1)
        return False

    async def bytes_from(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext bytes [start, end] (inclusive), decrypting and discarding what comes before."""
        pos = 0
        for chunk in self._iter_all():
            async for piece in chunk:
                nxt = pos + len(piece)
                if nxt > start and pos <= end:
                    yield piece[max(0, start - pos) : end + 1 - pos]
                pos = nxt
                if pos > end:
                    return

    def _iter_all(self) -> list[AsyncIterator[bytes]]:
        async def head() -> AsyncIterator[bytes]:
            yield self.head

        return [head(), self._chunks]

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def parse_range(header: str, total: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single `bytes=` range; None = whole file; raises 416 if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # RFC 9110: an unparseable Range is ignored (multi-range too)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        if start >= total or end < start:
            raise ApiError(416, "range_not_satisfiable", f"range outside 0-{total - 1}", total=total)
        return start, end
    suffix = int(m.group(2))
    if suffix == 0:
        raise ApiError(416, "range_not_satisfiable", "empty suffix range", total=total)
    return max(0, total - suffix), total - 1


async def serve_wav(request: web.Request, wav: WavStream, *, filename: str, download: bool) -> web.StreamResponse:
    total = wav.total
    try:
        rng = parse_range(request.headers.get("Range", ""), total)
    except ApiError as e:
        e.extra = {}
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{total}"}) from None
    start, end = rng if rng else (0, total - 1)
    resp = web.StreamResponse(status=206 if rng else 200)
    resp.headers["Content-Type"] = "audio/wav"
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Disposition"] = f'{"attachment" if download else "inline"}; filename="{filename}"'
    if rng:
        resp.headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    resp.content_length = end - start + 1
    await resp.prepare(request)
    if request.method != "HEAD":
        async for piece in wav.bytes_from(start, end):
            await resp.write(piece)
    await resp.write_eof()
    return resp


async def peaks(wav: WavStream, buckets: int) -> dict[str, Any]:
    """Per-channel peak amplitude (0..1) in `buckets` equal slices: the player's waveform picture."""
    if wav.bits != 16 or wav.channels not in (1, 2):
        raise ApiError(409, "unsupported_audio", "waveform needs 16-bit mono or stereo PCM")
    ch = wav.channels
    frame_bytes = 2 * ch
    frames = wav.data_size // frame_bytes
    per = max(1, -(-frames // buckets))
    out = [[0] * buckets for _ in range(ch)]
    carry = b""
    frame = 0
    end = wav.data_offset + frames * frame_bytes - 1
    if frames:
        async for piece in wav.bytes_from(wav.data_offset, end):
            data = carry + piece
            usable = len(data) - len(data) % frame_bytes
            carry = data[usable:]
            samples = array("h")
            samples.frombytes(data[:usable])
            n = usable // frame_bytes
            i = 0
            while i < n:
                b = (frame + i) // per
                take = min(n - i, (b + 1) * per - (frame + i))
                for c in range(ch):
                    seg = samples[(i * ch) + c : (i + take) * ch : ch]
                    peak = max(max(seg), -min(seg))
                    if b < buckets and peak > out[c][b]:
                        out[c][b] = peak
                i += take
            frame += n
    duration_ms = frames * 1000 // wav.rate if wav.rate else 0
    return {
        "channels": ch,
        "rate": wav.rate,
        "duration_ms": duration_ms,
        "buckets": buckets,
        "peaks": [[round(v / 32768, 4) for v in lane] for lane in out],
    }
