"""SHA-256 of the bytes that stream through the encryptor, computed in the same pass (no re-read).

Why side threads: pyrage's `encrypt_io` holds the GIL while it encrypts and drops it only inside the
file reads and writes it calls back into; hashlib drops the GIL while it hashes a block. So a hash
fed from those callbacks and run on its own thread overlaps the encryption on a second core instead of
adding to it, and neither the plaintext nor the ciphertext is ever read a second time. The hashes are
fed in stream order and bounded (`DEPTH` batches in flight), so memory stays constant whatever the
length of the call.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

BATCH = 1 << 20  # bytes handed to a hash thread at once (one hand-off per MiB, not per 64 KiB write)
DEPTH = 4  # batches in flight per hash thread: at most ~4 MiB held while hashing falls behind


class SideHash:
    """SHA-256 of a byte stream, computed on a thread of its own; `feed()` in order, then `result()`."""

    def __init__(self, name: str) -> None:
        self._h = hashlib.sha256()
        self._q: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(DEPTH)
        self._error: BaseException | None = None
        self.size = 0
        self._t = threading.Thread(target=self._run, name=f"callrec-sha256-{name}", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (batch := self._q.get()) is not None:
            try:
                for b in batch:
                    self._h.update(b)
            except BaseException as e:  # pragma: no cover - hashlib does not fail on bytes
                self._error = e
            finally:
                self._room.release()

    def feed(self, batch: list[bytes]) -> None:
        """Queue `batch` (immutable bytes: never a buffer that will be reused) for hashing."""
        if batch:
            self._room.acquire()
            self.size += sum(len(b) for b in batch)
            self._q.put(batch)

    def result(self) -> str:
        """Wait for everything fed so far; the hex digest."""
        self.close()
        if self._error is not None:
            raise self._error
        return self._h.hexdigest()

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()


class HashingSource(io.RawIOBase):
    """A raw stream over plaintext chunks that hashes each chunk as it passes (wrap it in a
    BufferedReader with a large buffer: pyrage's 8 KiB reads are then served in C)."""

    def __init__(self, chunks: Iterator[bytes], hasher: SideHash) -> None:
        self._it, self._buf, self._hasher = chunks, memoryview(b""), hasher

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            nxt = next(self._it, None)
            if nxt is None:
                return 0
            nxt = bytes(nxt)
            self._hasher.feed([nxt])
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def file_chunks(f: BinaryIO, size: int = BATCH) -> Iterator[bytes]:
    """A file's bytes in fresh `size` blocks (each a new bytes object a hash thread may keep)."""
    while b := f.read(size):
        yield b


class HashingSink:
    """What pyrage writes the ciphertext to: passes each write to the file and to a hash thread
    (pyrage hands over fresh bytes objects, so they are queued without a copy)."""

    def __init__(self, f: BinaryIO, hasher: SideHash) -> None:
        self._f, self._hasher = f, hasher
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, b: bytes) -> int:
        b = bytes(b)  # no-op for bytes; a copy only if given a reusable buffer
        self._pending.append(b)
        self._pending_size += len(b)
        if self._pending_size >= BATCH:
            self._hand_over()
        view = memoryview(b)
        while view:  # a raw file may write less than asked
            n = self._f.write(view)
            view = view[n or 0 :]
        return len(b)

    def _hand_over(self) -> None:
        self._hasher.feed(self._pending)
        self._pending, self._pending_size = [], 0

    def flush(self) -> None:
        self._hand_over()
        self._f.flush()
