"""A small tmpfs the drill mounts itself (root only) so the store's disk can really fill up."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_tmpfs(size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on a fresh directory; unmounted and removed on exit."""
    mnt = Path(tempfile.mkdtemp(prefix="callrec-drill-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def fill(directory: Path, name: str = "filler.bin") -> Path:
    """Write zeros into `directory/name` until the filesystem is full (ENOSPC); returns the file."""
    path = directory / name
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    chunk = chunk[: max(1, len(chunk) // 2)]
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return path


def can_mount() -> bool:
    """Root (or CAP_SYS_ADMIN) is needed to mount; drills that need it skip otherwise."""
    return os.geteuid() == 0
