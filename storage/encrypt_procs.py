"""Encryption on worker processes, so finalize workers use as many cores as there are workers.

pyrage holds the GIL while it encrypts (it lets go only inside the file reads and writes it calls
back into). Finalize loops on threads of one process therefore take turns on one core — measured:
two 60-minute encryptions on two threads take as long as one after the other — and every encryption
makes the service's event loop (PBX links, API) wait for the GIL. In a worker process neither happens.

The workers are plain child processes (`python -m storage.encrypt_worker`), started on first use and
shared by every FinalizeWorker of this process, one request at a time each over their stdin/stdout
(length-prefixed pickles; both ends are this program). Nothing else of the service is copied into
them: no threads, sockets or event loop, and no re-import of the service's main module (the trouble
with multiprocessing's spawn). A worker exits when its stdin closes, so they go with the service —
also when it is killed with -9.

A worker only writes `<object>.part` and returns the hashes; the caller fsyncs and renames it
(`crypto.commit_part`), so what makes an object durable and 'stored' is unchanged.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from storage import audio, crypto

_HEADER = struct.Struct("<Q")


def send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message, or None at end of stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storage.encrypt_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def call(self, request: tuple[Any, ...]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            send(self.proc.stdin, request)
            reply = receive(self.proc.stdout)
        except (OSError, ValueError) as e:
            reply = None
            why = str(e)
        else:
            why = "no reply"
        if reply is None:
            raise OSError(errno.EIO, f"encryption process died ({why}, exit status {self.proc.poll()})")
        return reply

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the worker exits at end of input

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_cond = threading.Condition()
_idle: list[_Worker] = []
_started = 0  # workers alive (idle or busy)


def _acquire(processes: int) -> _Worker:
    global _started
    with _cond:
        while True:
            while _idle and _idle[-1].proc.poll() is not None:  # died while idle (OOM killer, kill)
                _idle.pop()
                _started -= 1
            if _idle or _started < processes:
                break
            _cond.wait()
        if _idle:
            return _idle.pop()
        _started += 1
    try:
        return _Worker()
    except BaseException:
        with _cond:
            _started -= 1
            _cond.notify()
        raise


def _release(worker: _Worker, healthy: bool) -> None:
    global _started
    with _cond:
        if healthy:
            _idle.append(worker)
        else:
            _started -= 1
        _cond.notify()
    if not healthy:
        worker.kill()


@atexit.register
def _close_idle() -> None:
    with _cond:
        for w in _idle:
            w.close()
        _idle.clear()


def prestart(processes: int) -> None:
    """Start the worker processes now and wait until each has imported what it needs, so the first
    recording does not wait for them (blocks this thread: call it with asyncio.to_thread)."""
    workers: list[_Worker] = []
    try:
        while len(workers) < processes:
            with _cond:
                if _started >= processes and not _idle:
                    break  # the rest are busy: they exist already
            workers.append(_acquire(processes))
        for w in workers:
            w.call(("ping",))
    finally:
        for w in workers:
            _release(w, w.proc.poll() is None)


def encrypt_to_part_sync(
    src: Path | audio.JoinedWav, part: Path, recipients: tuple[str, ...], processes: int
) -> crypto.EncryptResult:
    """`crypto.encrypt_to_part` on one of at most `processes` worker processes (blocks this thread)."""
    worker = _acquire(processes)
    healthy = False
    try:
        reply = worker.call((src, part, recipients))
        healthy = True
    finally:
        _release(worker, healthy)
    if reply[0] == "ok":
        result: crypto.EncryptResult = reply[1]
        return result
    raise OSError(reply[1], reply[2])


async def encrypt_to_part(
    src: Path | audio.JoinedWav, part: Path, recipients: tuple[str, ...], processes: int
) -> crypto.EncryptResult:
    return await asyncio.to_thread(encrypt_to_part_sync, src, part, recipients, processes)
