"""Where recordings are stored: the installation's `[storage]` and each account's own store.

An account may keep its recordings in its own bucket, WebDAV folder or directory
(`[accounts.<id>.storage]`). Finalize writes a recording into its account's location and records the
location's name with the recording (`recordings.storage_location`), so playback, verify, export and
purge open the store that really holds it — even after the account's config has moved on, as long as
the old store is still configured somewhere (the object URI then decides).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage.backends.base import Backend, open_backend

DEFAULT = "default"


class UnknownLocation(ValueError):
    """A recording names a store that this installation no longer has configured."""


def account_location(account_id: str) -> str:
    return f"account:{account_id}"


class StorageLocations:
    """Named backends, opened on first use (an S3 client or WebDAV session per location, not per call)."""

    def __init__(self, default: Backend | tuple[Any, Path], accounts: Mapping[str, Any] | None = None) -> None:
        self._specs: dict[str, Any] = {DEFAULT: default}
        for account_id, storage in (accounts or {}).items():
            self._specs[account_location(account_id)] = storage
        self._opened: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self._default_path = default[1] if isinstance(default, tuple) else Path(".")

    @classmethod
    def from_config(cls, config: Any) -> StorageLocations:
        accounts = {
            aid: acct.storage for aid, acct in (getattr(config, "accounts", None) or {}).items() if acct.storage
        }
        return cls((config.storage, config.storage_path), accounts)

    @classmethod
    def single(cls, backend: Backend) -> StorageLocations:
        return cls(backend)

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> Backend:
        with self._lock:
            if name not in self._opened:
                spec = self._specs.get(name)
                if spec is None:
                    raise UnknownLocation(f"storage location {name!r} is not configured")
                if isinstance(spec, Backend):
                    self._opened[name] = spec
                elif isinstance(spec, tuple):
                    self._opened[name] = open_backend(spec[0], spec[1])
                else:
                    self._opened[name] = open_backend(spec, self._default_path)
            return self._opened[name]

    @property
    def default(self) -> Backend:
        return self.get(DEFAULT)

    def name_for_account(self, account_id: str | None) -> str:
        name = account_location(account_id) if account_id else DEFAULT
        return name if name in self._specs else DEFAULT

    def for_account(self, account_id: str | None) -> tuple[str, Backend]:
        """The location new recordings of `account_id` are written to."""
        name = self.name_for_account(account_id)
        return name, self.get(name)

    def for_row(self, row: Mapping[str, Any]) -> Backend:
        """The store holding a stored recording: the location it names, if that store accepts its URI;
        otherwise any configured store that does."""
        return self.locate(row.get("object_uri") or "", row.get("storage_location") or DEFAULT)[1]

    def locate(self, uri: str, preferred: str = DEFAULT) -> tuple[str, Backend]:
        order = [preferred] + [n for n in self._specs if n != preferred] if preferred in self._specs else self.names()
        for name in order:
            backend = self.get(name)
            try:
                backend.key_from_uri(uri)
            except ValueError:
                continue
            return name, backend
        raise UnknownLocation(
            f"{uri or 'the object'} (location {preferred!r}) is in none of the configured stores: "
            f"{', '.join(self.names())}"
        )


def as_locations(store: Backend | StorageLocations) -> StorageLocations:
    """Callers may pass one backend (tests, single-store tools) where locations are expected."""
    return store if isinstance(store, StorageLocations) else StorageLocations.single(store)
