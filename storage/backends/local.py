"""Local directory backend (the default): date-sharded files, written atomically with fsync + rename,
files 0640 and directories 0750."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from storage.backends.base import Backend, BackendError, ObjectMissing

_COPY_CHUNK = 1 << 20
# Manifests carry customer numbers: objects are never world-readable (a backup group may read them).
FILE_MODE = 0o640
DIR_MODE = 0o750


class LocalBackend(Backend):
    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"object key escapes the storage root: {key!r}")
        return p

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_from_uri(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise ValueError(f"not a local object URI: {uri}")
        return Path(unquote(parts.path)).relative_to(self.root.resolve()).as_posix()

    def _partial(self, final: Path) -> Path:
        # Deterministic name: a retry after a crash overwrites the leftover instead of adding another.
        return final.with_name("." + final.name + ".partial")

    def _mkdirs(self, d: Path) -> None:
        """Create `d` and its missing parents 0750 (Path.mkdir applies `mode` to the last one only)."""
        missing = []
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            with contextlib.suppress(FileExistsError):
                m.mkdir(mode=DIR_MODE)

    def _write(self, key: str, fill) -> None:  # type: ignore[no-untyped-def]
        final = self._path(key)
        part = self._partial(final)
        try:
            self._mkdirs(final.parent)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # a leftover partial from a crash keeps its old mode otherwise
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, final)
            _fsync_dir(final.parent)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise BackendError(e.errno or errno.EIO, f"local store {self.root}: cannot write {key}: {e}") from e

    def staging_dir(self) -> Path:
        return self.root / ".staging"

    def put_file(self, key: str, src: Path, *, retain_until: datetime | None = None, legal_hold: bool = False) -> None:
        """Hard-link `src` into place when it is on the store's filesystem (no copy), else copy it."""
        final = self._path(key)
        part = self._partial(final)
        try:
            self._mkdirs(final.parent)
            part.unlink(missing_ok=True)
            os.link(src, part)
            os.chmod(part, FILE_MODE)
        except OSError:
            part.unlink(missing_ok=True)
        else:
            try:
                fd = os.open(part, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(part, final)
                # rename(2) is a no-op when both names already link the same inode (a redone upload)
                part.unlink(missing_ok=True)
                _fsync_dir(final.parent)
                return
            except OSError as e:
                part.unlink(missing_ok=True)
                raise BackendError(e.errno or errno.EIO, f"local store {self.root}: cannot write {key}: {e}") from e

        def fill(out: BinaryIO) -> None:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, _COPY_CHUNK)

        self._write(key, fill)

    def put_bytes(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> None:
        self._write(key, lambda out: out.write(data))

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(errno.ENOENT, f"no object {key} in {self.root}") from None
        except OSError as e:
            raise BackendError(e.errno or errno.EIO, f"local store {self.root}: cannot read {key}: {e}") from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(errno.ENOENT, f"no object {key} in {self.root}") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise BackendError(e.errno or errno.EIO, f"local store {self.root}: cannot delete {key}: {e}") from e

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        for dirpath, _, files in os.walk(self.root):
            for name in sorted(files):
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def check(self) -> None:
        try:
            self._mkdirs(self.root)
        except OSError as e:
            raise BackendError(e.errno or errno.EIO, f"local store {self.root}: {e}") from e
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BackendError(errno.EACCES, f"local store {self.root}: not writable")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
