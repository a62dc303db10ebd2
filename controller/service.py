"""The running service: database, finalize, PBX links, recorder, retention, API.

This module only composes the parts; each owns its logic. `Service.start()` brings them up in
dependency order (storage before PBX links, so a recording that starts has somewhere to go) and
`Service.close()` takes them down in reverse. Each PBX node is driven only while this instance holds
its lease (controller.lease): several instances share the nodes of a deployment, spread over them and
taken over when one leaves or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from controller.api.app import create_app, start_api
from controller.config import Config, PbxConfig
from controller.drivers.asterisk import AsteriskDriver
from controller.drivers.base import PbxDriver
from controller.drivers.freeswitch import FreeSwitchDriver
from controller.lease import LeaseManager, NodeHooks
from controller.metrics import Metrics
from controller.policy import PolicySet
from controller.recorder import Recorder
from storage import db, repo
from storage.backup import BackupScheduler
from storage.finalize import FinalizeWorker
from storage.listen import DB_DOWN, listen_forever
from storage.retention import RetentionScheduler
from storage.sweep import startup_sweep
from storage.webhook_delivery import WebhookWorker

log = logging.getLogger("callrec.service")

POLICY_REFRESH_SECONDS = 3.0


def make_driver(pbx: PbxConfig, config: Config) -> PbxDriver:
    if pbx.type == "freeswitch":
        spool = str(config.spool_dir)
        return FreeSwitchDriver(
            pbx.name, pbx.host, pbx.effective_port, pbx.password, record_dir=pbx.record_dir or spool, spool_dir=spool
        )
    return AsteriskDriver.from_config(pbx)


class PolicyCache:
    """The latest PolicySet, kept in memory so the recorder never waits on the database at bridge
    time. A change is seen by the next decision: every write to the policy tables notifies
    `callrec_policy` at commit (migration 006) and the cache reloads at once; a periodic reload every
    POLICY_REFRESH_SECONDS covers notifications lost while the listening connection was down."""

    CHANNEL = "callrec_policy"

    def __init__(self, pool: asyncpg.Pool, *, listen_dsn: str = "") -> None:
        """`listen_dsn`: listen on a connection of its own (the pool stays whole); without it the
        listener holds one of the pool's connections, as the service does today."""
        self.pool = pool
        self.listen_dsn = listen_dsn
        self.current = PolicySet()
        self.loads = 0
        self._changed = asyncio.Event()

    async def refresh(self) -> None:
        self.current = await repo.load_policy_set(self.pool)
        self.loads += 1

    def _notified(self, *_: Any) -> None:
        self._changed.set()

    async def run(self) -> None:
        """Reload on every notification (and every POLICY_REFRESH_SECONDS) until cancelled."""
        listener = asyncio.create_task(
            listen_forever(
                self.pool,
                self.CHANNEL,
                self._notified,
                on_listening=self._changed.set,  # a change may have slipped by while not listening
                dsn=self.listen_dsn,
            )
        )
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), POLICY_REFRESH_SECONDS)
                self._changed.clear()
                try:
                    await self.refresh()
                except DB_DOWN as e:
                    log.warning("policy refresh failed, keeping the previous policy: %s", e)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def __call__(self) -> PolicySet:
        return self.current


class Service:
    def __init__(self, config: Config, *, lease_ttl: float = 4.0) -> None:
        self.config = config
        self.node_id = config.node_id or f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = Metrics()
        self.lease_ttl = lease_ttl
        self.pool: asyncpg.Pool | None = None
        self.journal_pool: asyncpg.Pool | None = None
        self.policy: PolicyCache | None = None
        self.finalizer: FinalizeWorker | None = None
        self.recorder: Recorder | None = None
        self.drivers: dict[str, PbxDriver] = {}
        self.leases: LeaseManager | None = None
        self.api_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._retention: RetentionScheduler | None = None
        self._backup: BackupScheduler | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._closing = False

    # ---- lifecycle ----
    async def start(self) -> None:
        cfg = self.config
        for d in (cfg.spool_dir, cfg.storage_path):
            d.mkdir(parents=True, exist_ok=True, mode=0o750)
        dsn = await db.resolve_dsn(cfg.database.url, cfg.pgdata_dir)
        self.pool = pool = await db.create_pool(dsn, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))

        self.policy = PolicyCache(pool)
        await self.policy.refresh()
        self._spawn(self.policy.run, "policy-refresh")

        # One worker: it runs cfg.finalize.workers concurrent job loops itself.
        self.finalizer = FinalizeWorker(pool, cfg, self.metrics, self.node_id)
        await startup_sweep(pool, cfg, self.finalizer)  # logs its own summary
        self._spawn(self.finalizer.run, "finalize")
        self._retention = RetentionScheduler(pool, cfg, self.metrics, backend=self.finalizer.locations)
        self._retention.start()
        if cfg.backup.schedule:
            self._backup = BackupScheduler(
                pool, cfg, self.metrics, node=self.node_id, locations=self.finalizer.locations
            )
            self._backup.start()
        # Webhooks go out from the outbox in a task of their own: a slow receiver never holds up recording.
        self._spawn(
            WebhookWorker(pool, cfg.webhooks, self.metrics, self.node_id, public_url=cfg.api.public_url).run, "webhooks"
        )

        self.drivers = {p.name: make_driver(p, cfg) for p in cfg.pbx}
        nodes = {p.name: p for p in cfg.pbx}
        # the recorder's per-call journal writes get connections of their own (see Recorder)
        self.journal_pool = await db.create_pool(dsn, min_size=1, max_size=4, reset=False)
        self.recorder = Recorder(
            pool,
            list(self.drivers.values()),
            self.policy,
            spool_dir=str(cfg.spool_dir),
            metrics=self.metrics,
            nodes=nodes,
            journal_pool=self.journal_pool,
        )
        await self.recorder.start()
        self.leases = LeaseManager(
            pool,
            name=self.node_id,
            token=self.finalizer.claim_token,  # finalize claims of this process die with its member row
            nodes={
                name: NodeHooks(driver.start, self._stand_down(name, driver)) for name, driver in self.drivers.items()
            },
            ttl=self.lease_ttl,
        )
        self._spawn(self.leases.run, "leases")

        if cfg.api.enabled:
            app = create_app(cfg, pool, self.recorder, self.metrics, self._health_checks())
            self._runner, self.api_port = await start_api(app, cfg.api.bind, cfg.api.port)
            log.info("API on http://%s:%d/", cfg.api.bind, self.api_port)
        # What exists now (modules, config, caches: ~60k objects) lives as long as the process: out of
        # the collector's reach, a full collection no longer walks it — 60-120 ms of loop stall each,
        # and a bridge event arriving meanwhile waits that long for its recording to start. (Collected
        # first, so no garbage is frozen.)
        gc.collect()
        gc.freeze()
        log.info("callrec %s ready: %d PBX node(s)", self.node_id, len(self.drivers))

    def _stand_down(self, name: str, driver: PbxDriver) -> Callable[[], Awaitable[None]]:
        """Another instance drives `name` now: close the link (no more commands, no more journal
        writes for it from here), then let the recorder forget the node's calls."""

        async def stand_down() -> None:
            await driver.close()
            # Not while stopping: the recorder closes anyway, and waiting for its queued journal writes
            # (a database outage) would hold the shutdown up once per node.
            if self.recorder is not None and not self._closing:
                await self.recorder.release_node(name)

        return stand_down

    def _health_checks(self) -> dict[str, Callable[[], Any]]:
        checks: dict[str, Callable[[], Any]] = {}
        for name, driver in self.drivers.items():
            checks[f"pbx:{name}"] = self._pbx_check(name, driver)
        checks["finalize"] = self._finalize_check
        checks["backend"] = self._backend_check
        checks["journal"] = self._journal_check
        return checks

    def _journal_check(self) -> dict[str, Any]:
        """Journal writes the recorder holds back while the database is unreachable (retried in order)."""
        waiting = self.recorder.journal_waiting if self.recorder else 0
        return {"ok": waiting == 0, "waiting": waiting}

    async def _backend_check(self) -> dict[str, Any]:
        """Every store answers ([storage] and each account's own: S3 bucket reachable, WebDAV folder
        listable, local directory writable); a failing one is named with the reason."""
        assert self.finalizer is not None
        locations = self.finalizer.locations
        failing: dict[str, str] = {}
        for name in locations.names():
            try:
                await asyncio.to_thread(locations.get(name).check)
            except (OSError, ValueError) as e:
                failing[name] = str(e)
        out: dict[str, Any] = {"ok": not failing, "backend": self.config.storage.backend}
        if len(locations.names()) > 1:
            out["locations"] = locations.names()
        if failing:
            out["failing"] = failing
            out["error"] = "; ".join(f"{name}: {why}" for name, why in failing.items())
        return out

    def _pbx_check(self, name: str, driver: PbxDriver) -> Callable[[], dict[str, Any]]:
        def check() -> dict[str, Any]:
            active = bool(self.leases and self.leases.is_active(name))
            # A standby instance is healthy without a link: another instance is driving this node.
            return {"ok": driver.connected or not active, "connected": driver.connected, "active": active}

        return check

    async def _finalize_check(self) -> dict[str, Any]:
        assert self.finalizer is not None
        return (await self.finalizer.status()).as_dict()

    def _spawn(self, run: Callable[[], Awaitable[Any]], name: str) -> None:
        """A background loop of the service, supervised: if it ever ends or raises, that is logged
        with the reason and it starts again (backing off), so finalize, leases, webhooks or policy
        refresh never stop silently while the service looks up."""

        async def supervised() -> None:
            delay = 1.0
            me = asyncio.current_task()
            while True:
                started = asyncio.get_running_loop().time()
                try:
                    await run()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError from None  # stopping: whatever it raised on the way out
                    log.exception("%s failed; starting it again in %.0f s", name, delay)
                else:
                    if me is not None and me.cancelling():
                        return  # it ended because the service stops
                    log.error("%s stopped by itself; starting it again in %.0f s", name, delay)
                if asyncio.get_running_loop().time() - started > 60:
                    delay = 1.0  # it ran a good while: not a crash loop
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    async def close(self) -> None:
        self._closing = True
        if self._runner is not None:
            await self._runner.cleanup()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.recorder is not None:
            await self.recorder.close()
        for d in self.drivers.values():
            with contextlib.suppress(Exception):
                await d.close()
        if self._retention is not None:
            self._retention.shutdown()
        if self._backup is not None:
            self._backup.shutdown()
        if self.journal_pool is not None:
            await db.close_pool(self.journal_pool)
        if self.pool is not None:
            await db.close_pool(self.pool)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start, wait for stop(), close."""
        try:
            await self.start()
            await self._stop.wait()
            log.info("stopping")
        finally:
            await self.close()


def run_forever(config: Config) -> int:
    """Run the service until SIGINT/SIGTERM; returns the exit code."""

    async def main() -> None:
        service = Service(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(main())
    return 0
