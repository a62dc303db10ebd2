"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...) through boto3.

boto3 is the reference S3 client: its transfer manager does multipart uploads (parts retried on their
own, the object appears only when the upload completes, so a failed upload never leaves a partial
object) and it speaks to any endpoint. It is imported lazily so local-only installs never load it.
"""

from __future__ import annotations

import base64
import errno
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from storage.backends.base import Backend, BackendError, LockState, ObjectLocked, ObjectMissing

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
MAX_SINGLE_PUT = 5 * 1024**3  # S3's limit for one PUT (WORM objects are written in one request)
OBJECT_LOCK_MODES = ("compliance", "governance")


class S3Backend(Backend):
    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str = "",
        region: str = "us-east-1",
        access_key: str = "",
        secret_key: str = "",
        prefix: str = "",
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunk: int = MULTIPART_CHUNK,
        object_lock: str = "",
    ) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config as BotoConfig
        except ImportError:  # pragma: no cover - depends on the install
            raise BackendError(errno.ENOPKG, "storage.backend = s3 needs boto3: pip install 'callrec[s3]'") from None
        if not bucket:
            raise ValueError("storage.bucket is required for the s3 backend")
        if object_lock and object_lock.lower() not in OBJECT_LOCK_MODES:
            raise ValueError(f"storage.object_lock must be one of {', '.join(OBJECT_LOCK_MODES)}, not {object_lock!r}")
        self.object_lock = object_lock.upper()
        self.worm = bool(object_lock)
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=BotoConfig(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Older S3-compatible servers reject the newer default CRC checksum headers.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if endpoint else None,
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunk, max_concurrency=4
        )

    def _key(self, key: str) -> str:
        # MinIO and others normalise paths: "../" in a key could leave the configured prefix.
        if key.startswith("/") or any(seg in ("..", ".") for seg in key.split("/")):
            raise ValueError(f"object key escapes the storage prefix: {key!r}")
        return self.prefix + key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def key_from_uri(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or parts.netloc != self.bucket:
            raise ValueError(f"not an object URI of bucket {self.bucket}: {uri}")
        full = parts.path.lstrip("/")
        if not full.startswith(self.prefix):
            raise ValueError(f"object URI outside prefix {self.prefix!r}: {uri}")
        return full[len(self.prefix) :]

    def _fail(self, action: str, key: str, e: Exception) -> BackendError:
        code = _error_code(e)
        if code in ("404", "NoSuchKey", "NotFound"):
            return ObjectMissing(errno.ENOENT, f"s3://{self.bucket}/{self._key(key)}: no such object")
        return BackendError(errno.EIO, f"s3 {action} s3://{self.bucket}/{self._key(key)} failed: {e}")

    def _lock_args(self, retain_until: datetime | None, legal_hold: bool) -> dict[str, Any]:
        if not self.worm or retain_until is None:
            return {}
        args: dict[str, Any] = {
            "ObjectLockMode": self.object_lock,
            "ObjectLockRetainUntilDate": retain_until.astimezone(UTC),
        }
        if legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def put_file(self, key: str, src: Path, *, retain_until: datetime | None = None, legal_hold: bool = False) -> None:
        lock = self._lock_args(retain_until, legal_hold)
        try:
            if lock:
                self._put_locked(key, src, lock)
            else:
                self._client.upload_file(str(src), self.bucket, self._key(key), Config=self._transfer)
        except BackendError:
            raise
        except Exception as e:
            raise self._fail("upload", key, e) from e

    def _put_locked(self, key: str, src: Path, lock: dict[str, Any]) -> None:
        """S3 accepts Object Lock parameters only with an integrity header: Content-MD5, which every
        S3-compatible store understands, over one PUT (the lock is part of the write, never a second
        request that a crash could skip)."""
        size = src.stat().st_size
        if size > MAX_SINGLE_PUT:
            raise BackendError(errno.EFBIG, f"s3 upload {self.uri(key)}: {size} bytes exceed one WORM PUT (5 GiB)")
        md5 = hashlib.md5(usedforsecurity=False)
        with open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                md5.update(chunk)
        with open(src, "rb") as f:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=f,
                ContentLength=size,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                **lock,
            )

    def put_bytes(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> None:
        lock = self._lock_args(retain_until, legal_hold)
        if lock:
            lock["ContentMD5"] = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **lock)
        except Exception as e:
            raise self._fail("put", key, e) from e

    def lock_state(self, key: str) -> LockState | None:
        if not self.worm:
            return None
        head = self._head(key)
        return LockState(
            mode=str(head.get("ObjectLockMode") or ""),
            retain_until=head.get("ObjectLockRetainUntilDate"),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def set_legal_hold(self, key: str, on: bool) -> None:
        if not self.worm:
            return
        try:
            self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=self._key(key), LegalHold={"Status": "ON" if on else "OFF"}
            )
        except Exception as e:
            raise self._fail("legal hold", key, e) from e

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as e:
            raise self._fail("get", key, e) from e

        @contextmanager
        def ctx() -> Iterator[BinaryIO]:
            try:
                yield body
            finally:
                body.close()

        return ctx()

    def get_file(self, key: str, dst: Path, chunk: int = 1 << 20) -> None:
        try:
            self._client.download_file(self.bucket, self._key(key), str(dst), Config=self._transfer)
        except Exception as e:
            raise self._fail("download", key, e) from e

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            raise self._fail("head", key, e) from e

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectMissing:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def delete(self, key: str) -> None:
        """Unversioned bucket: delete the object. Object Lock bucket (always versioned): delete every
        version — a plain DELETE would only add a delete marker and keep the data. A version still
        locked is refused by the store: ObjectLocked."""
        if self.worm:
            self._delete_versions(key)
            return
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            err = self._fail("delete", key, e)
            if not isinstance(err, ObjectMissing):
                raise err from e

    def _delete_versions(self, key: str) -> None:
        full = self._key(key)
        try:
            versions = [
                v["VersionId"]
                for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full)
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                if v["Key"] == full
            ]
        except Exception as e:
            raise self._fail("list versions", key, e) from e
        for vid in versions:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=vid)
            except Exception as e:
                if _error_code(e) in ("AccessDenied", "InvalidRequest"):
                    raise ObjectLocked(
                        errno.EPERM, f"s3 delete {self.uri(key)} version {vid} refused by the store (locked): {e}"
                    ) from e
                err = self._fail("delete", key, e)
                if not isinstance(err, ObjectMissing):
                    raise err from e

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]
        except Exception as e:
            raise self._fail("list", prefix, e) from e

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise BackendError(errno.EIO, f"s3 bucket {self.bucket} not reachable: {e}") from e
        if self.worm:
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
                enabled = conf.get("ObjectLockEnabled") == "Enabled"
            except Exception as e:
                if _error_code(e) != "ObjectLockConfigurationNotFoundError":
                    raise BackendError(errno.EIO, f"s3 bucket {self.bucket}: cannot read its Object Lock: {e}") from e
                enabled = False
            if not enabled:
                raise BackendError(
                    errno.EINVAL,
                    f"s3 bucket {self.bucket} has no Object Lock but storage.object_lock = "
                    f"{self.object_lock.lower()!r}: create the bucket with Object Lock enabled",
                )


def _error_code(e: Exception) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""
