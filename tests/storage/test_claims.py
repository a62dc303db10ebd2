"""Finalize claims: a claim is lost only when its lease expired or its process is gone, never to a
sibling or a live process of the same node; a worker that lost a claim writes nothing more.

The 'claim lost to another worker' warning seen while 4,000 Asterisk recordings drained: the service
then ran one FinalizeWorker per finalize loop, all with the same node id, and each worker's start
released every claim of that node id but its own — including the ones its sibling had just taken.
The sibling then found its job gone at the next step. These tests rebuild that condition (two
workers of one node id, one of them mid-job) and check that nothing is released, nothing is lost and
nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.config import Config
from controller.metrics import Metrics
from storage.finalize import DEAD_MEMBER_GRACE_SECONDS, FinalizeWorker
from tests.storage.conftest import Keys, age_decrypt, insert_recording, make_config, objects
from tests.storage.test_crash_resume import run_worker


class PausingWorker(FinalizeWorker):
    """Stops after committing `pause_after` until `gate` is set (a slow step, a stalled process)."""

    def __init__(self, *a: Any, pause_after: str, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.pause_after = pause_after
        self.paused = asyncio.Event()
        self.gate = asyncio.Event()
        self.uploads = 0

    async def _advance(self, rid: str, step: str, nxt: str, updates: dict[str, Any]) -> None:
        await super()._advance(rid, step, nxt, updates)
        if step == self.pause_after:
            self.paused.set()
            await self.gate.wait()

    async def _step_upload(self, row: asyncpg.Record) -> tuple[str, dict[str, Any]]:
        self.uploads += 1
        return await super()._step_upload(row)


async def stored_once(pool: asyncpg.Pool, cfg: Config, keys: Keys, rids: list[str], tmp: Path) -> None:
    """Each recording: stored, job done, exactly one audio object + one manifest, and the object is
    the one the journal describes (same ciphertext hash, decrypts with the age CLI)."""
    store = objects(cfg)
    assert len(store) == 2 * len(rids), store
    for rid in rids:
        row = await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
        assert row["state"] == "stored", (row["state"], row["error"])
        assert await pool.fetchval("SELECT state FROM finalize_jobs WHERE recording_id = $1", rid) == "done"
        audio = [o for o in store if o.endswith(f"{rid}.wav.age")]
        assert len(audio) == 1, store
        enc = Path(cfg.storage.path) / audio[0]
        assert hashlib.sha256(enc.read_bytes()).hexdigest() == row["ciphertext_sha256"]
        res = age_decrypt(keys.identity_file, enc, tmp / f"{rid}.wav")
        assert res.returncode == 0, res.stderr


def lost_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "claim lost" in r.getMessage()]


async def test_a_second_worker_of_the_same_node_does_not_take_a_running_job(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = make_config(tmp_path, keys)
    rids = [(await insert_recording(dbpool, cfg, layout="asterisk", seconds=1.0))[0] for _ in range(4)]
    a = PausingWorker(dbpool, cfg, Metrics(), "node-1", pause_after="manifest")
    first = asyncio.create_task(a.run_once())
    await asyncio.wait_for(a.paused.wait(), 30)  # a holds one job, half done (lease 600 s, far from expiry)

    b = FinalizeWorker(dbpool, cfg, Metrics(), "node-1")  # a sibling starting: release, then drain
    assert await b.release_stale_claims() == 0, "the sibling released a live claim"
    assert await b.drain() == 3
    a.gate.set()
    assert await first in rids
    assert a.metrics.get("callrec_finalize_stored_total") == 1 and a.uploads == 1
    assert b.metrics.get("callrec_finalize_stored_total") == 3
    assert lost_warnings(caplog) == []
    await stored_once(dbpool, cfg, keys, rids, tmp_path)


async def test_another_process_of_the_same_node_id_leaves_a_live_controllers_claims_alone(
    dbpool: asyncpg.Pool, fresh_db: str, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The claimant is a live controller (its member row is current): a process started with the same
    node id (a second `callrec run` from the same config, a restart overlapping the old one) runs its
    startup sweep and drains, and must not take the job."""
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, layout="asterisk", seconds=1.0)
    a = PausingWorker(dbpool, cfg, Metrics(), cfg.node_id, pause_after="encrypt")
    await dbpool.execute(
        "INSERT INTO controller_members (token, name, expires_at) VALUES ($1, $2, now() + interval '1 hour')",
        a.claim_token,
        cfg.node_id,
    )
    first = asyncio.create_task(a.run_once())
    await asyncio.wait_for(a.paused.wait(), 30)
    code, out = await asyncio.to_thread(run_worker, fresh_db, tmp_path, keys)
    assert code == 0, out
    assert out["sweep"]["released_claims"] == 0 and out["handled"] == 0, out
    a.gate.set()
    assert await first == rid
    assert lost_warnings(caplog) == []
    await stored_once(dbpool, cfg, keys, [rid], tmp_path)


async def test_a_dead_controllers_job_is_taken_over_and_the_stalled_worker_writes_nothing_more(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A controller stops heartbeating (killed, or stalled) mid-job: after its member row expired
    (+ grace) another instance takes the job without waiting 600 s for the claim to expire, and if
    the stalled worker wakes up it stops before its next step (no second upload)."""
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, layout="asterisk", seconds=1.0)
    a = PausingWorker(dbpool, cfg, Metrics(), "ctl-a", pause_after="manifest")
    await dbpool.execute(
        "INSERT INTO controller_members (token, name, expires_at) VALUES ($1, 'ctl-a', now() + interval '1 hour')",
        a.claim_token,
    )
    first = asyncio.create_task(a.run_once())
    await asyncio.wait_for(a.paused.wait(), 30)
    b = FinalizeWorker(dbpool, cfg, Metrics(), "ctl-b")
    assert await b.drain() == 0, "a live controller's job was taken"
    await dbpool.execute(  # ctl-a's heartbeat stopped long enough ago
        "UPDATE controller_members SET expires_at = now() - make_interval(secs => $2) WHERE token = $1",
        a.claim_token,
        DEAD_MEMBER_GRACE_SECONDS + 1,
    )
    assert await b.drain() == 1
    a.gate.set()
    assert await first == rid
    assert a.uploads == 0, "the worker that lost its claim still uploaded"
    assert b.metrics.get("callrec_finalize_stored_total") == 1
    assert a.metrics.get("callrec_finalize_stored_total") == 0
    assert len(lost_warnings(caplog)) == 1
    await stored_once(dbpool, cfg, keys, [rid], tmp_path)
