"""Drills: the store fails under the running service (disk full; S3 server down) → the plaintext
stays in the spool, /health turns 503 naming finalize, /metrics counts the failed attempts, nothing
half-written is marked stored; once the store is back every recording is stored once, on its own.

Disk full: the local backend on a 2 MB tmpfs the drill mounts and fills. S3 down: the S3 backend on a
moto server process that is stopped and started again (empty, as a restored store would be: the
bucket is created again). The service is a real process; calls come from the ESL simulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from controller.config import StorageConfig
from lab.drills.tmpfs import can_mount, fill, small_tmpfs
from lab.esl_sim import EslSimulator
from storage.backends.base import Backend, open_backend
from tests.drills.conftest import ServiceDir, check_stored_once, spawn, states, stop, until, write_config
from tests.drills.mixed_calls import plain_call, play_esl
from tests.storage.conftest import MotoServer


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _storage_toml(s: StorageConfig) -> str:
    keys = ("backend", "path", "endpoint", "bucket", "region", "access_key", "secret_key", "prefix")
    return "[storage]\n" + "".join(f'{k} = "{getattr(s, k)}"\n' for k in keys if getattr(s, k))


async def _drill(
    tmp_path: Path,
    dsn: str,
    storage: StorageConfig,
    *,
    what: str,
    break_store: Callable[[], None],
    heal_store: Callable[[], None],
    calls: int,
) -> None:
    sim = EslSimulator(time_scale=1.0)
    await sim.start()
    svc: ServiceDir = write_config(
        tmp_path, dsn, node_id="drill-store", fs_port=sim.port, extra="max_attempts = 1000\n" + _storage_toml(storage)
    )
    conn = await asyncpg.connect(dsn)
    proc = await asyncio.to_thread(spawn, svc)
    base = f"http://127.0.0.1:{svc.api_port}"
    try:
        async with aiohttp.ClientSession() as http:
            assert await sim.wait_connected(30), "the service never subscribed to the ESL simulator"
            await asyncio.to_thread(break_store)
            print(f"\nstorage drill: injected {what}; placing {calls} calls")
            played = await asyncio.gather(*(play_esl(sim, plain_call(1000)) for _ in range(calls)))
            legs = [p.leg for p in played]

            async def alarmed() -> bool:
                try:
                    status, body = await _get(http, base + "/health")
                except aiohttp.ClientError:
                    return False
                fin = body["components"]["finalize"]
                st = await states(conn)
                return status == 503 and not fin["ok"] and fin["retrying"] >= calls and st.get("stopped") == calls

            await until(alarmed, 60, "/health 503 with every recording's finalize retrying")
            _, health = await _get(http, base + "/health")
            _, metrics = await _get(http, base + "/metrics")
            retries = _metric_sum(metrics, "callrec_finalize_retries_total")
            st = await states(conn)
            spool_wavs = [p for p in svc.spool.rglob("*.wav") if p.parent.name != ".work"]
            backend = open_backend(storage, svc.store)
            objects = await asyncio.to_thread(_objects, backend)
            fin = health["components"]["finalize"]
            print(
                f"storage drill: during the outage /health 503, finalize ok={fin['ok']} retrying={fin['retrying']} "
                f"last_error={fin['last_error'][:120]!r}; backend={health['components']['backend']}; "
                f"/metrics callrec_finalize_retries_total={retries:g}; "
                f"recordings {st}; {len(spool_wavs)} plaintext WAVs kept in the spool; "
                f"{len(objects)} objects in the store"
            )
            assert "stored" not in st and "failed" not in st, st
            if storage.backend == "s3":  # an unreachable bucket is named by /health itself
                assert health["components"]["backend"]["ok"] is False, health["components"]["backend"]
            assert retries > 0, "the failed attempts are not counted in /metrics"
            assert len(spool_wavs) == calls, "plaintext spool files missing while the store is down"
            assert not objects, f"objects in the store while it was failing: {objects[:3]}"

            await asyncio.to_thread(heal_store)
            healed = time.monotonic()

            async def all_stored() -> bool:
                return (await states(conn)) == {"stored": calls}

            await until(all_stored, 120, "every recording stored after the store came back")
            took = time.monotonic() - healed
            counts = await check_stored_once(conn, legs, svc)
            bad = await _verify_objects(conn, backend)
            await until(lambda: _healthy(http, base), 30, "/health 200 again")
            print(
                f"storage drill: store back → all stored in {took:.1f} s, /health 200; counted {counts['calls']} "
                f"calls, {counts['recordings']} recordings, {counts['stored']} stored, 0 duplicates, 0 plaintext "
                f"left; {len(bad)} objects whose size/SHA-256 differ from the journal"
            )
            assert not bad, f"stored objects that do not match their journal row: {bad[:3]}"
    finally:
        await asyncio.to_thread(stop, proc)
        await conn.close()
        await sim.close()


def _objects(backend: Backend) -> list[str]:
    try:
        return [k for k in backend.list_keys() if not k.startswith((".staging", "filler"))]
    except Exception:  # the store is down: it holds nothing we could read
        return []


async def _healthy(http: aiohttp.ClientSession, base: str) -> bool:
    status, _ = await _get(http, base + "/health")
    return status == 200


async def _verify_objects(conn: asyncpg.Connection, backend: Backend) -> list[str]:
    """Each stored object is whole: its size and SHA-256 are the ones the journal recorded."""
    bad = []
    for r in await conn.fetch("SELECT id, object_uri, object_size, ciphertext_sha256 FROM recordings"):
        key = backend.key_from_uri(r["object_uri"])
        data = await asyncio.to_thread(backend.get_bytes, key)
        if len(data) != r["object_size"] or hashlib.sha256(data).hexdigest() != r["ciphertext_sha256"]:
            bad.append(str(r["id"]))
    return bad


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")
async def test_store_disk_full_keeps_plaintext_in_spool_then_stores_alone(tmp_path: Path, fresh_db: str) -> None:
    with small_tmpfs("2m") as mnt:
        store = mnt / "recordings"
        store.mkdir()
        filler: list[Path] = []
        await _drill(
            tmp_path,
            fresh_db,
            StorageConfig(backend="local", path=str(store)),
            what="a full disk under the store (2 MB tmpfs filled to ENOSPC)",
            break_store=lambda: filler.append(fill(mnt)),
            heal_store=lambda: filler[0].unlink(),
            calls=6,
        )


async def test_s3_server_down_keeps_plaintext_in_spool_then_stores_alone(tmp_path: Path, fresh_db: str) -> None:
    moto = MotoServer()
    moto.start()
    try:
        moto.create_bucket("recs")

        def back() -> None:
            moto.start()
            moto.create_bucket("recs")

        await _drill(
            tmp_path,
            fresh_db,
            moto.storage("recs"),
            what="the S3 server process stopped (moto, SIGTERM)",
            break_store=moto.stop,
            heal_store=back,
            calls=6,
        )
    finally:
        moto.stop()
