"""age encryption (pyrage, streaming) to X25519 recipients, and Ed25519 manifest signatures.

The recording service holds only PUBLIC age recipients; decryption needs the identity file, which
lives only where playback or `callrec decrypt` runs. Key ids are recipient fingerprints so rows say
which key can open them and keys can rotate (old recordings keep their old key id).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyrage import x25519

from storage import streamhash


class EncryptionConfigError(ValueError):
    """The configured recipients cannot be used: nothing must be stored (and never in plaintext)."""


class KeyFileError(ValueError):
    """An identity or signing key file is missing, unreadable or malformed."""


class WrongKeyError(ValueError):
    """The identity given is not one of the recipients the file was encrypted to."""


class CorruptCiphertext(ValueError):
    """The age file fails authentication or parsing: its bytes were altered or truncated."""


def key_id(recipient: str) -> str:
    """Stable fingerprint of an age recipient: what rows store in `key_ids`."""
    return "age:" + hashlib.sha256(recipient.strip().encode()).hexdigest()[:16]


def parse_recipients(values: tuple[str, ...] | list[str]) -> list[x25519.Recipient]:
    """Parse every configured recipient; any bad one is an error (we never encrypt to a subset)."""
    if not values:
        raise EncryptionConfigError("encryption: no recipients configured (encryption.recipients is empty)")
    out = []
    for v in values:
        try:
            out.append(x25519.Recipient.from_str(v.strip()))
        except (pyrage.RecipientError, ValueError) as e:
            shown = v if len(v) < 80 else v[:77] + "..."
            raise EncryptionConfigError(f"encryption: invalid age recipient {shown!r}: {e}") from None
    return out


def load_identities(path: str | Path) -> list[x25519.Identity]:
    """The X25519 identities of an age identity file (as `age-keygen` writes it)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise KeyFileError(f"identity file {p}: {e.strerror or e}") from None
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                ids.append(x25519.Identity.from_str(line))
            except (pyrage.IdentityError, ValueError) as e:
                raise KeyFileError(f"identity file {p}: not an age X25519 identity ({e})") from None
    if not ids:
        raise KeyFileError(f"identity file {p}: contains no identity")
    return ids


def identity_key_ids(identities: list[x25519.Identity]) -> list[str]:
    return [key_id(str(i.to_public())) for i in identities]


class _HashingWriter:
    def __init__(self, f: BinaryIO) -> None:
        self.f, self.h, self.size = f, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


@dataclass(frozen=True)
class EncryptResult:
    plain_sha256: str
    plain_size: int
    cipher_sha256: str
    cipher_size: int
    key_ids: tuple[str, ...]


def encrypt_file(
    src: Path, dst: Path, recipients: list[x25519.Recipient], *, on_encrypted: Callable[[], None] | None = None
) -> EncryptResult:
    """Encrypt `src` into `dst` (streaming, constant memory), with SHA-256 of plaintext and ciphertext.

    One pass: each block is read once, hashed on a side thread as it enters the encryptor, and each
    ciphertext write is hashed on another side thread as it leaves (see storage/streamhash.py) — no
    file is read twice. Written to `dst.part`, fsynced, then renamed: `dst` only ever exists durable
    and complete. `on_encrypted` is called once the CPU work is done, before the fsync, so the caller
    can start its next job while the disk catches up. The source must not change meanwhile (checked).
    """
    before = src.stat()

    def check() -> None:
        after = src.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise OSError(f"{src} changed while it was being encrypted")

    with open(src, "rb", buffering=0) as fin:
        return _encrypt(streamhash.file_chunks(fin), dst, recipients, check, on_encrypted)


def encrypt_chunks(
    chunks: Iterator[bytes],
    dst: Path,
    recipients: list[x25519.Recipient],
    *,
    on_encrypted: Callable[[], None] | None = None,
) -> EncryptResult:
    """Encrypt a stream of plaintext chunks (e.g. legs joined on the fly); hashed like `encrypt_file`."""
    return _encrypt(chunks, dst, recipients, lambda: None, on_encrypted)


def _encrypt(
    chunks: Iterator[bytes],
    dst: Path,
    recipients: list[x25519.Recipient],
    check: Callable[[], None],
    on_encrypted: Callable[[], None] | None = None,
) -> EncryptResult:
    part = dst.with_name(dst.name + ".part")
    enc = encrypt_to_part(chunks, part, recipients)
    if on_encrypted is not None:
        on_encrypted()
    commit_part(part, dst, check)
    return enc


def encrypt_to_part(chunks: Iterator[bytes], part: Path, recipients: list[x25519.Recipient]) -> EncryptResult:
    """Encrypt into `part` (not yet durable: see `commit_part`), hashing plaintext and ciphertext in
    the same pass; on any error `part` is removed."""
    plain, cipher = streamhash.SideHash("plain"), streamhash.SideHash("cipher")
    try:
        reader = io.BufferedReader(streamhash.HashingSource(chunks, plain), buffer_size=streamhash.BATCH)
        with open(part, "wb", buffering=0) as fout:
            sink = streamhash.HashingSink(fout, cipher)  # type: ignore[arg-type]
            pyrage.encrypt_io(reader, sink, recipients)
            sink.flush()
        plain_sha, cipher_sha = plain.result(), cipher.result()
    except BaseException:
        plain.close()
        cipher.close()
        part.unlink(missing_ok=True)
        raise
    return EncryptResult(plain_sha, plain.size, cipher_sha, cipher.size, tuple(key_id(str(x)) for x in recipients))


def commit_part(part: Path, dst: Path, check: Callable[[], None] = lambda: None) -> None:
    """fsync `part`, run `check` (e.g. the source did not change), rename it to `dst`: `dst` only ever
    exists durable and complete. On any error `part` is removed."""
    try:
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        check()
        os.replace(part, dst)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: list[x25519.Identity]) -> str:
    """Decrypt `src` into `dst`; returns the SHA-256 of the plaintext written."""
    w = _HashingWriter(dst)
    try:
        pyrage.decrypt_io(src, w, identities)
    except pyrage.DecryptError as e:
        if "no matching keys" in str(e).lower() or "no identity matched" in str(e).lower():
            raise WrongKeyError(f"none of identities {identity_key_ids(identities)} can open this file") from None
        raise CorruptCiphertext(str(e).splitlines()[0]) from None
    except OSError as e:
        if e.errno is not None:  # a real I/O error of the reader or writer
            raise
        raise CorruptCiphertext(str(e).splitlines()[0]) from None  # pyrage's STREAM authentication failure
    return w.h.hexdigest()


def rewrap(
    src: BinaryIO, dst: Path, identities: list[x25519.Identity], recipients: list[x25519.Recipient]
) -> EncryptResult:
    """Re-encrypt an age stream to new recipients: decrypt → OS pipe → encrypt, so the plaintext only
    ever exists in memory (a pipe buffer), never on disk. Returns the new ciphertext's result with
    the plaintext's SHA-256 (compare it with the manifest before using the new file)."""
    r_fd, w_fd = os.pipe()
    pipe_w = os.fdopen(w_fd, "wb")
    size = 0

    class _Counting:
        def write(self, b: bytes) -> int:
            nonlocal size
            size += len(b)
            return pipe_w.write(b)

        def flush(self) -> None:
            pipe_w.flush()

    def decrypt() -> str:
        with pipe_w:  # closing the pipe ends the encryptor's input
            return decrypt_stream(src, _Counting(), identities)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="callrec-rewrap") as ex:
        done = ex.submit(decrypt)

        def decrypted() -> None:  # before the rename: a failed decryption never leaves a truncated `dst`
            done.result()

        with os.fdopen(r_fd, "rb") as reader:  # closed on any error: a blocked writer gets EPIPE
            enc = _encrypt(streamhash.file_chunks(reader), dst, recipients, decrypted)
        return EncryptResult(done.result(), size, enc.cipher_sha256, enc.cipher_size, enc.key_ids)


# ---- Ed25519 signing ---------------------------------------------------------------------------


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """Create a PKCS#8 PEM Ed25519 key, mode 0600 from the first byte (never world-readable)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_secret_file(path, pem)
    return key


def write_secret_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"signing key {p}: {e.strerror or e}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise KeyFileError(f"signing key {p}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {p}: not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM public key file, or derived from a PEM private key file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"signing key {p}: {e.strerror or e}") from None
    if b"PRIVATE KEY" in data:
        return load_signing_key(p).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise KeyFileError(f"public key {p}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key {p}: not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signing_key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


def signature_valid(key: Ed25519PublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True
