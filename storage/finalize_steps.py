"""The steps of a finalize job, one method each: wait_closed → prepare → encrypt → manifest → upload →
commit → cleanup. Each returns the next step and the row updates that are committed with it (see
storage/finalize.py for the claim, the step journal, retries and the worker loops); a step is redone
after a crash, so each one overwrites what an interrupted run of it left (deterministic names).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from controller.config import Config, FinalizeConfig
from storage import account_keys, audio, crypto, encrypt_procs, manifest
from storage.backends.base import BackendError, object_keys
from storage.backends.locations import StorageLocations

log = logging.getLogger("storage.finalize")

STEPS = ("wait_closed", "prepare", "encrypt", "manifest", "upload", "commit", "cleanup")
WORK_DIR_NAME = ".callrec-work"

# Set per job task by the worker loop: called once the job's encryption is done (its CPU-heavy part),
# so the loop can claim its next job while this one is fsynced, uploaded and committed.
encryption_done: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "encryption_done", default=None
)


class PermanentError(Exception):
    """Retrying cannot help (bad config, unusable audio): fail the job with this reason now."""


class Reschedule(Exception):
    """Not an error: come back later (the PBX is still writing the file)."""

    def __init__(self, delay: float, why: str) -> None:
        super().__init__(why)
        self.delay = delay


def work_dir(config: Config) -> Path:
    """Intermediate files (joined WAV, ciphertext) live inside the spool: plaintext never leaves it."""
    return config.spool_dir / WORK_DIR_NAME


def ensure_signing_key(config: Config) -> Path:
    """The signing key; created (0600) on first use at the DEFAULT path only — a configured path that
    does not exist is an error, never silently replaced by a fresh key."""
    path = config.signing_key_path
    if not path.exists() and not config.encryption.signing_key_file:
        with contextlib.suppress(FileExistsError):
            crypto.generate_signing_key(path)
            log.warning("created signing key %s (configure encryption.signing_key_file to use your own)", path)
    return path


class FinalizeSteps:
    """The step methods of FinalizeWorker (which sets these attributes)."""

    pool: asyncpg.Pool
    config: Config
    fc: FinalizeConfig
    work: Path
    locations: StorageLocations

    async def _do(self, step: str, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        if row["state"] == "stored" and step not in ("commit", "cleanup"):
            return "cleanup", {}  # already stored (e.g. imported, or a duplicate job)
        fn = getattr(self, f"_step_{step}")
        return await fn(row)

    def _spool(self, row: asyncpg.Record) -> dict[str, Path]:
        return {k: Path(v) for k, v in (row["spool_files"] or {}).items() if v}

    def _audio_path(self, row: asyncpg.Record) -> Path:
        files = self._spool(row)
        if "stereo" in files and row["dual_channel"]:
            return files["stereo"]  # FreeSWITCH stereo is stored as is (after header repair)
        return self.work / f"{row['id']}.wav"

    def _legs(self, row: asyncpg.Record) -> tuple[Path | None, Path | None]:
        files = self._spool(row)
        c, a = files.get(audio.CUSTOMER_LEG), files.get(audio.AGENT_LEG)
        return (c if c and c.exists() else None), (a if a and a.exists() else None)

    def _audio_source(self, row: asyncpg.Record) -> Path | audio.JoinedWav:
        """What gets encrypted: the FreeSWITCH stereo file, Asterisk legs joined on the fly (no plaintext
        copy on disk), or a work file (mono mix of a stereo file; legs of different formats)."""
        if "stereo" in self._spool(row) or self._legs(row) == (None, None):
            return self._audio_path(row)
        try:
            plan = audio.plan_join(*self._legs(row), stereo=bool(row["dual_channel"]))
        except audio.AudioError as e:
            raise PermanentError(f"audio: {e}") from e
        return plan if plan is not None else self._audio_path(row)

    def _cipher_path(self, row: asyncpg.Record) -> Path:
        _, backend = self.locations.for_account(row["account_id"])
        return (backend.staging_dir() or self.work) / f"{row['id']}.wav.age"

    async def _step_wait_closed(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        if row["state"] in ("recording", "paused"):
            raise Reschedule(self.fc.poll_interval_seconds, "recording still open in the journal")
        files = self._spool(row)
        if not files:
            raise PermanentError("spool: the recording has no spool files in its journal row")
        present = {k: p for k, p in files.items() if p.exists()}
        if not present:
            raise PermanentError("spool: file(s) missing: " + ", ".join(str(p) for p in files.values()))
        newest = max(p.stat().st_mtime for p in present.values())
        age = time.time() - newest
        if age < self.fc.file_stable_seconds:
            raise Reschedule(self.fc.file_stable_seconds - age + 0.05, "PBX still writing the spool file")
        return "prepare", {}

    async def _step_prepare(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        files = self._spool(row)
        events: list[tuple[str, dict[str, Any]]] = []
        self.work.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = self._audio_path(row)

        def work() -> None:
            try:
                if "stereo" in files:
                    info = audio.repair_wav(files["stereo"])
                    if info.repaired:
                        events.append(("wav_repaired", {"file": str(files["stereo"])}))
                    if not row["dual_channel"]:
                        if info.channels == 1:
                            raise audio.AudioError(f"{files['stereo'].name}: mono spool file, expected stereo")
                        audio.mix_stereo_to_mono(files["stereo"], out)
                    return
                legs = {k: files.get(k) for k in (audio.CUSTOMER_LEG, audio.AGENT_LEG)}
                present = {k: p for k, p in legs.items() if p is not None and p.exists()}
                for k, p in legs.items():
                    if k not in present:
                        events.append(("leg_missing", {"leg": k, "file": str(p) if p else None}))
                for p in present.values():
                    if audio.repair_wav(p).repaired:
                        events.append(("wav_repaired", {"file": str(p)}))
                customer, agent = present.get(audio.CUSTOMER_LEG), present.get(audio.AGENT_LEG)
                if audio.plan_join(customer, agent, stereo=bool(row["dual_channel"])) is None:
                    audio.join_legs(customer, agent, out, stereo=bool(row["dual_channel"]))
                # else: the join is streamed into the encryptor at the next step
            except audio.AudioError as e:
                raise PermanentError(f"audio: {e}") from e

        await asyncio.to_thread(work)
        return "encrypt", {"_events": events} if events else {}

    async def _step_encrypt(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        try:  # the account's own recipients, else the global ones; never a fallback to other keys
            recipients = account_keys.recipients_for(self.config, row["account_id"])
        except crypto.EncryptionConfigError as e:  # waits in the spool; requeued when a key appears
            raise PermanentError(f"{account_keys.NO_RECIPIENT}: {e}") from e
        src = await asyncio.to_thread(self._audio_source, row)
        cipher = self._cipher_path(row)
        cipher.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if isinstance(src, audio.JoinedWav):
            info = src.info
        else:
            if not src.exists():
                return "prepare", {}  # work file lost (e.g. spool volume restored): redo it
            try:
                info = audio.inspect_wav(src)
            except audio.AudioError as e:
                raise PermanentError(f"audio: {e}") from e
        if self.fc.workers > 1:  # on worker processes: loops on threads would share one core (GIL)
            enc = await self._encrypt_on_process(src, cipher, tuple(str(r) for r in recipients))
            return "manifest", self._encrypted(enc, info)
        signal_free = encryption_done.get()
        loop = asyncio.get_running_loop()

        def encrypted() -> None:  # from the encrypting thread, before its fsync: the next job may start
            if signal_free is not None:
                loop.call_soon_threadsafe(signal_free)

        if isinstance(src, audio.JoinedWav):
            enc = await asyncio.to_thread(
                crypto.encrypt_chunks, src.chunks(), cipher, recipients, on_encrypted=encrypted
            )
        else:
            enc = await asyncio.to_thread(crypto.encrypt_file, src, cipher, recipients, on_encrypted=encrypted)
        return "manifest", self._encrypted(enc, info)

    async def _encrypt_on_process(
        self, src: Path | audio.JoinedWav, cipher: Path, recipients: tuple[str, ...]
    ) -> crypto.EncryptResult:
        """Encrypt on a worker process, then (here) fsync and rename: the same durable object."""
        part = cipher.with_name(cipher.name + ".part")
        before = await asyncio.to_thread(src.stat) if isinstance(src, Path) else None

        def unchanged() -> None:
            if isinstance(src, Path) and before is not None:
                after = src.stat()
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    raise OSError(f"{src} changed while it was being encrypted")

        enc = await encrypt_procs.encrypt_to_part(src, part, recipients, self.fc.workers)
        signal_free = encryption_done.get()
        if signal_free is not None:
            signal_free()  # the CPU work is done: the loop may claim its next job while this one syncs
        await asyncio.to_thread(crypto.commit_part, part, cipher, unchanged)
        return enc

    @staticmethod
    def _encrypted(enc: crypto.EncryptResult, info: audio.WavInfo) -> dict[str, Any]:
        return {
            "audio_sha256": enc.plain_sha256,
            "ciphertext_sha256": enc.cipher_sha256,
            "object_size": enc.cipher_size,
            "key_ids": list(enc.key_ids),
            "duration_ms": info.duration_ms,
        }

    async def _step_manifest(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        cipher = self._cipher_path(row)
        src = await asyncio.to_thread(self._audio_source, row)
        missing = isinstance(src, Path) and not src.exists()
        if not cipher.exists() or missing or not row["ciphertext_sha256"]:
            return "encrypt", {}
        own = account_keys.source_for(self.config, row["account_id"]).signing_key_file
        try:
            key = crypto.load_signing_key(Path(own) if own else ensure_signing_key(self.config))
        except crypto.KeyFileError as e:
            raise PermanentError(f"signing: {e}") from e
        info = src.info if isinstance(src, audio.JoinedWav) else audio.inspect_wav(src)
        plain_size = src.size if isinstance(src, audio.JoinedWav) else src.stat().st_size
        warnings = await self.pool.fetch(
            "SELECT kind, detail FROM recording_events WHERE recording_id = $1 AND actor = 'finalize'"
            " AND kind IN ('wav_repaired', 'leg_missing', 'orphaned') ORDER BY id",
            row["id"],
        )
        audio_key, _ = object_keys(str(row["id"]), row["started_at"])
        enc = crypto.EncryptResult(
            row["audio_sha256"], plain_size, row["ciphertext_sha256"], row["object_size"], tuple(row["key_ids"])
        )
        m = manifest.build(
            dict(row),
            pbx_call_id=row["pbx_call_id"] or "",
            audio={
                "format": "wav",
                "channels": info.channels,
                "rate": info.rate,
                "sample_width": info.sample_width,
                "duration_ms": info.duration_ms,
                "size": enc.plain_size,
                "sha256": enc.plain_sha256,
                "layout": "customer_left_agent_right" if info.channels == 2 else "mono_mix",
            },
            enc=enc,
            object_key=audio_key,
            signing_key_id=crypto.signing_key_id(key.public_key()),
            warnings=[f"{w['kind']}: {w['detail']}" for w in warnings],
        )
        return "upload", {
            "manifest": m,
            "manifest_signature": manifest.sign(m, key),
            "signing_key_id": m["signing_key_id"],
        }

    async def _step_upload(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        cipher = self._cipher_path(row)
        if not cipher.exists() or row["manifest"] is None:
            return "encrypt", {}
        audio_key, manifest_key = object_keys(str(row["id"]), row["started_at"])
        doc = manifest.document(row["manifest"], row["manifest_signature"])
        location, backend = self.locations.for_account(row["account_id"])
        # WORM store: locked until the recording's retention date, in the same write (a legal hold too)
        lock = {"retain_until": row["retention_until"], "legal_hold": bool(row["legal_hold"])} if backend.worm else {}

        def put() -> None:
            backend.put_file(audio_key, cipher, **lock)
            backend.put_bytes(manifest_key, doc, **lock)

        try:
            await asyncio.to_thread(put)
        except BackendError:
            raise
        except OSError as e:
            raise BackendError(e.errno or 5, f"storage write failed: {e}") from e
        return "commit", {
            "storage_location": location,
            "object_locked_until": row["retention_until"] if backend.worm else None,
        }

    async def _step_commit(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        audio_key, _ = object_keys(str(row["id"]), row["started_at"])
        backend = self.locations.get(row["storage_location"])  # where the upload step wrote it
        return "cleanup", {
            "state": "stored",
            "error": "",
            "object_uri": backend.uri(audio_key),
            "stored_at": datetime.now().astimezone(),
        }

    async def _step_cleanup(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        if row["state"] != "stored":
            return "wait_closed", {}  # never delete plaintext that is not safely stored

        def rm() -> None:
            for p in self._spool(row).values():
                p.unlink(missing_ok=True)
            for p in (self.work / f"{row['id']}.wav", self._cipher_path(row)):
                p.unlink(missing_ok=True)
                p.with_name(p.name + ".part").unlink(missing_ok=True)

        await asyncio.to_thread(rm)
        return "done", {}
