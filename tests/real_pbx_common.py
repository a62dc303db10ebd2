"""What the FreeSWITCH and Asterisk real-PBX harnesses share: a throw-away storage config, waiting,
finalizing a recording until it is stored, and reading the stored audio back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
from pyrage import x25519

from controller.config import Config, EncryptionConfig, FinalizeConfig, SpoolConfig, StorageConfig
from lab.pbx_turn import pbx_turn
from lab.tones import TARGET_HZ, channel_timeline, read_wav, tone_frames
from storage import crypto
from storage.finalize import FinalizeWorker
from storage.playback import decrypted_audio_file


@contextlib.contextmanager
def one_run_at_a_time(target: str) -> Iterator[None]:
    """Hold the PBX `target` ("host:port[:credentials]") for this process until the block ends.

    Real-PBX tests of several checkouts run against the same PBX on one machine, with the same test
    numbers; a controller of one run then records (and stops, and mutes) the other run's calls — seen
    on a shared Asterisk as two MixMonitors on one channel and a wrong stop reason (lab.pbx_turn).
    """
    host, port = target.split(":")[:2]
    with pbx_turn(host, port):
        yield


def make_config(tmp: Path, node_id: str) -> Config:
    """Fresh keys, a spool and a local store under `tmp`, finalize tuned for tests."""
    identity = x25519.Identity.generate()
    (tmp / "identity.txt").write_text(str(identity) + "\n")
    crypto.generate_signing_key(tmp / "signing.key")
    spool = tmp / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    return Config(
        state_dir=str(tmp / "state"),
        node_id=node_id,
        spool=SpoolConfig(dir=str(spool)),
        storage=StorageConfig(backend="local", path=str(tmp / "store")),
        encryption=EncryptionConfig(
            recipients=(str(identity.to_public()),),
            signing_key_file=str(tmp / "signing.key"),
            identity_file=str(tmp / "identity.txt"),
        ),
        finalize=FinalizeConfig(workers=1, file_stable_seconds=0.5, poll_interval_seconds=0.2, retry_base_seconds=0.2),
    )


async def wait_for(cond: Callable[[], Any], within: float = 20.0) -> Any:
    """Poll `cond` (sync or async) until it returns something truthy; returns that."""
    async with asyncio.timeout(within):
        while True:
            r = cond()
            if asyncio.iscoroutine(r):
                r = await r
            if r:
                return r
            await asyncio.sleep(0.05)


async def finalize_stored(pool: asyncpg.Pool, config: Config, rec_id: Any, within: float) -> asyncpg.Record:
    """Wait until the journal closed the recording, then run finalize until it is stored."""

    async def closed() -> bool:
        st = await pool.fetchval("SELECT state FROM recordings WHERE id = $1", rec_id)
        return st not in ("recording", "paused")

    await wait_for(closed, within)
    worker = FinalizeWorker(pool, config, node_id=config.node_id)

    async def stored() -> bool:
        await pool.execute("UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1", rec_id)
        await worker.drain()
        row = await pool.fetchrow("SELECT state, error FROM recordings WHERE id = $1", rec_id)
        assert row["state"] != "failed", row["error"]
        return bool(row["state"] == "stored")

    await wait_for(stored, within)
    return await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", rec_id)


async def stored_timeline(config: Config, row: asyncpg.Record) -> list[tuple[float | None, ...]]:
    """The stored object decrypted with the identity, as (left, right) dominant Hz per 250 ms."""
    async with decrypted_audio_file(config, dict(row)) as path:
        return channel_timeline(path, 250)


async def stored_target_frames(config: Config, row: asyncpg.Record) -> list[bool]:
    """Per 20 ms frame of the stored (decrypted) recording: does either channel carry the transfer
    target's 660 Hz? (issue #13 §1: not one frame of an external party with the rule off)"""
    async with decrypted_audio_file(config, dict(row)) as path:
        _, _, frames = read_wav(path)
    return [any(f) for f in tone_frames(frames, TARGET_HZ, 20)]
