"""Random ids (UUID version 4) for calls and recordings, without a system call per id.

`uuid.uuid4()` reads 16 bytes with `os.urandom`, a system call per id (which also releases the GIL:
with another thread busy, the event loop then waited up to the interpreter's switch interval to get it
back) once for every call and again for its recording, on the way to the recording's start command
(profiled under call load, issue #15). Here the kernel's randomness is read 4 KiB at a time (256 ids),
so the same quality of ids costs one system call per 256.
"""

from __future__ import annotations

import os
import threading
import uuid

_BATCH = 16 * 256
_lock = threading.Lock()  # ids are made on the event loop, but nothing forbids another thread
_buf = b""
_pos = 0


def new_id() -> str:
    """A random UUID (version 4, RFC 4122 variant), as its canonical string."""
    global _buf, _pos
    with _lock:
        if _pos + 16 > len(_buf):
            _buf, _pos = os.urandom(_BATCH), 0
        raw = _buf[_pos : _pos + 16]
        _pos += 16
    return str(uuid.UUID(bytes=raw, version=4))
