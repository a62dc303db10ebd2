"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...) through boto3.

boto3 is the reference S3 client: its transfer manager does multipart uploads (parts retried on their
own, the object appears only when the upload completes, so a failed upload never leaves a partial
object) and it speaks to any endpoint. It is imported lazily so local-only installs never load it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from storage.backends.base import Backend, BackendError, ObjectMissing

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024


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
    ) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config as BotoConfig
        except ImportError:  # pragma: no cover - depends on the install
            raise BackendError(errno.ENOPKG, "storage.backend = s3 needs boto3: pip install 'callrec[s3]'") from None
        if not bucket:
            raise ValueError("storage.bucket is required for the s3 backend")
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

    def put_file(self, key: str, src: Path) -> None:
        try:
            self._client.upload_file(str(src), self.bucket, self._key(key), Config=self._transfer)
        except Exception as e:
            raise self._fail("upload", key, e) from e

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as e:
            raise self._fail("put", key, e) from e

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
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
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


def _error_code(e: Exception) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""
