"""The finalize job: spool WAV(s) → stereo/mono → repair → SHA-256 → age → signed manifest → store.

Idempotent and resumable: `finalize_jobs.step` records the last completed step, and each step's
results are committed together with the step change, so a crash between any two steps resumes at
the right one. Objects have deterministic keys (date shard + recording id), so a step that is redone
overwrites instead of adding a second object. Jobs are claimed with FOR UPDATE SKIP LOCKED plus a
lease, so several instances share one database without handling a recording twice. A claim is lost
only when its lease expired or its process is known to be gone (its `controller_members` row expired,
or it was an earlier process of this node that is no longer running); before each step the worker
checks that the job is still its own, so a worker that lost a claim stops before writing anything.

Failures: a transient one (store down, disk full, DB blip) is retried with capped exponential backoff
while the spool keeps the plaintext; a permanent one (bad recipients, unreadable audio, missing spool
file) fails the job with the reason at once — and nothing is ever stored unencrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import secrets
import signal
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from controller.config import Config
from controller.metrics import Metrics
from storage import account_keys, crypto, encrypt_procs, outbox
from storage.backends.base import Backend
from storage.backends.locations import StorageLocations, as_locations
from storage.finalize_steps import (  # noqa: F401 - STEPS, WORK_DIR_NAME, ensure_signing_key: public here too
    STEPS,
    WORK_DIR_NAME,
    FinalizeSteps,
    PermanentError,
    Reschedule,
    encryption_done,
    ensure_signing_key,
    work_dir,
)
from storage.listen import DB_DOWN, listen_forever

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "callrec_finalize"
REQUEUE_CHECK_SECONDS = 15.0  # how soon a recording waiting for a recipient notices a new key
TEST_HOOK_ENV = "CALLREC_TEST_FINALIZE_HOOK"  # tests only: "crash:after:upload", "fsize:before:upload:4096"
# A job claimed by a controller process whose member row (controller.lease) expired this long ago is
# taken over without waiting for the claim's own lease: the process is dead or cut off, and the
# before-step check stops it should it come back.
DEAD_MEMBER_GRACE_SECONDS = 10.0
# Finalize workers alive in THIS process: never "stale", whatever their node id (see release_stale_claims).
_LIVE: weakref.WeakSet[FinalizeWorker] = weakref.WeakSet()


class _LostClaim(Exception):
    """Our lease expired and another worker took the job over: stop without touching it."""


@dataclass
class FinalizeStatus:
    """For /health and metrics: is finalize keeping up, and why not."""

    backlog: int
    retrying: int
    failed: int
    oldest_pending_seconds: float
    last_error: str
    last_error_at: float | None
    config_error: str
    stored_total: int  # recordings this instance stored since it started: the value of the metrics
    # counter callrec_finalize_stored_total (one counter for all of the instance's finalize loops)
    no_recipient: dict[str, int] = field(default_factory=dict)  # account → recordings waiting in the spool

    @property
    def ok(self) -> bool:
        return not self.config_error and self.retrying == 0 and not self.no_recipient

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _hook(when: str, step: str) -> None:
    spec = os.environ.get(TEST_HOOK_ENV, "")
    if not spec:
        return
    parts = spec.split(":")
    if parts[1:3] != [when, step]:
        return
    if parts[0] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif parts[0] == "fsize":  # simulate a full disk: writes beyond N bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(parts[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


class FinalizeWorker(FinalizeSteps):
    """Claims and runs finalize jobs. `run()` until cancelled; `run_once()`/`drain()` for tests and CLI."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Config,
        metrics: Metrics | None = None,
        node_id: str = "",
        *,
        backend: Backend | StorageLocations | None = None,
    ) -> None:
        self.pool, self.config = pool, config
        self.metrics = metrics or Metrics()
        self.node_id = node_id or config.node_id or f"{os.uname().nodename}:{os.getpid()}"
        self.claim_token = f"{self.node_id}/{os.getpid()}/{secrets.token_hex(3)}"
        _LIVE.add(self)
        # Where recordings go: [storage], or the account's own store ([accounts.<id>.storage]).
        self.locations = as_locations(backend) if backend is not None else StorageLocations.from_config(config)
        self.backend = self.locations.default
        self.work = work_dir(config)
        self.fc = config.finalize
        self._wake = asyncio.Event()
        self._last_error = ""
        self._last_error_at: float | None = None
        m = self.metrics
        m.describe(
            "callrec_finalize_stored_total", "counter", "Recordings this instance finalized and stored since it started"
        )
        m.describe("callrec_finalize_failed_total", "counter", "Finalize jobs failed for good, by reason")
        m.describe("callrec_finalize_retries_total", "counter", "Finalize attempts that will be retried")
        m.describe("callrec_finalize_backlog", "gauge", "Finalize jobs pending or running")
        m.describe("callrec_finalize_failed", "gauge", "Finalize jobs in state failed")
        m.describe("callrec_finalize_config_error", "gauge", "1 when encryption config makes storing impossible")
        m.describe("callrec_finalize_no_recipient", "gauge", "Recordings in the spool: no usable recipient")
        self._no_recipient_accounts: set[str] = set()
        self._next_requeue = 0.0

    # ---- loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Process jobs until cancelled: wakes on NOTIFY callrec_finalize or every poll interval.
        A database that is down at start or goes down later only delays jobs: nothing here gives up."""
        delay = 0.5
        while True:
            try:
                await self.release_stale_claims()
                break
            except DB_DOWN as e:
                log.warning("finalize: releasing stale claims waits for the database (%s)", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if self.fc.workers > 1:  # encryption runs on worker processes: start them before the first job
            try:
                await asyncio.to_thread(encrypt_procs.prestart, self.fc.workers)
            except OSError as e:  # the first job tries again (and retries, if it fails too)
                log.warning("finalize: could not start the encryption processes yet: %s", e)
        tasks = [asyncio.create_task(self._loop(i)) for i in range(self.fc.workers)]
        tasks.append(asyncio.create_task(self._listen()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        """NOTIFY wake-ups on a connection of their own, set up again after a database outage (the
        poll interval covers the time without one; jobs that came meanwhile are looked for at once)."""
        await listen_forever(self.pool, NOTIFY_CHANNEL, self._on_notify, on_listening=self._wake.set)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self, n: int) -> None:
        """One worker: claims a job, runs it until its encryption is done, then claims the next one
        while the previous one finishes behind it (fsync, manifest, upload, commit, cleanup — disk and
        database waits). At most one such tail per worker, so the backlog stays bounded."""
        tail: asyncio.Task[None] | None = None
        try:
            while True:
                job = None
                try:
                    if n == 0 and time.monotonic() >= self._next_requeue:
                        self._next_requeue = time.monotonic() + REQUEUE_CHECK_SECONDS
                        await self.requeue_no_recipient()
                    job = await self._claim()
                    prev, tail = tail, (await self._start(job) if job is not None else None)
                    if prev is not None:
                        await prev
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    self._note_error(f"database: {e}")
                if job is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.fc.poll_interval_seconds)
                    self._wake.clear()
        finally:
            if tail is not None:
                tail.cancel()

    async def drain(self, *, max_jobs: int = 10_000) -> int:
        """Run due jobs until none is due; returns how many were handled (all of them finished)."""
        await self.requeue_no_recipient()
        n, tail = 0, None
        try:
            while n < max_jobs:
                job = await self._claim()
                if job is None:
                    if tail is None:
                        break
                    prev, tail = tail, None
                    await prev  # its outcome may make a job due again (e.g. redo an earlier step)
                    continue
                n += 1
                prev, tail = tail, await self._start(job)
                if prev is not None:
                    await prev
        finally:
            if tail is not None:
                await tail
        return n

    async def requeue_no_recipient(self) -> list[str]:
        """Recordings waiting in the spool for a recipient of their account go back to work as soon
        as the account has one (a key file written, `callrec keys rotate`, a fixed config)."""
        rows = await self.pool.fetch(
            "SELECT f.recording_id, r.account_id FROM finalize_jobs f JOIN recordings r ON r.id = f.recording_id"
            " WHERE f.state = 'failed' AND f.last_error LIKE $1",
            account_keys.NO_RECIPIENT + ":%",
        )
        usable: dict[str | None, bool] = {}
        ready = []
        for r in rows:
            acc = r["account_id"]
            if acc not in usable:
                try:
                    account_keys.recipients_for(self.config, acc)
                    usable[acc] = True
                except crypto.EncryptionConfigError:
                    usable[acc] = False
            if usable[acc]:
                ready.append(r["recording_id"])
        if not ready:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE finalize_jobs SET state = 'pending', attempts = 0, step = 'wait_closed', claimed_by = '',"
                " claimed_until = NULL, next_attempt_at = now(), last_error = '', updated_at = now()"
                " WHERE recording_id = ANY($1::uuid[]) AND state = 'failed'",
                ready,
            )
            await conn.execute(
                "UPDATE recordings SET state = 'stopped', error = '', updated_at = now()"
                " WHERE id = ANY($1::uuid[]) AND state = 'failed'",
                ready,
            )
        log.warning("%d recording(s) waiting for a recipient re-queued: a key is usable now", len(ready))
        return [str(x) for x in ready]

    async def release_stale_claims(self) -> int:
        """Claims left by an earlier process of this node (killed mid-job) are released at once.

        Only claims whose process is gone: not another worker of this process (before 1ece9fc the
        service ran one worker per finalize loop, all with this node id, and each one's start released
        the claims its siblings had just taken — the 'claim lost to another worker' warning of a
        draining backlog), nor a live controller process with the same node id (its member row has
        not expired). The node id is compared as a plain prefix (LIKE would treat _ and % in it as
        wildcards and release other nodes' claims)."""
        res = await self.pool.execute(
            "UPDATE finalize_jobs SET claimed_until = NULL, claimed_by = '', state = 'pending', updated_at = now()"
            " WHERE state = 'running' AND left(claimed_by, length($1) + 1) = $1 || '/'"
            " AND claimed_by <> ALL($2::text[])"
            " AND NOT EXISTS (SELECT 1 FROM controller_members m WHERE m.token = finalize_jobs.claimed_by"
            " AND m.expires_at > now())",
            self.node_id,
            [w.claim_token for w in list(_LIVE)],
        )
        return int(res.split()[-1])

    # ---- one job --------------------------------------------------------------------------------

    async def run_once(self) -> str | None:
        """Claim one due job and take it as far as it can go; returns its recording id or None."""
        job = await self._claim()
        if job is None:
            return None
        await self._run_job(job)
        return str(job["recording_id"])

    async def _start(self, job: asyncpg.Record) -> asyncio.Task[None]:
        """Run `job` until its CPU-heavy part is over (its encryption, or the whole job when it ends
        sooner) and return the task that finishes it. Durability is unchanged: that task still
        fsyncs the object before the row can say 'stored'."""
        cpu_free = asyncio.Event()

        async def run() -> None:
            encryption_done.set(cpu_free.set)  # this task's own context: only this job signals it
            await self._run_job(job)

        task = asyncio.create_task(run())
        waiter = asyncio.create_task(cpu_free.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        return task

    async def _claim(self) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            """
            WITH due AS (
                SELECT recording_id FROM finalize_jobs
                WHERE state IN ('pending', 'running') AND next_attempt_at <= now()
                  AND (claimed_until IS NULL OR claimed_until < now()
                       OR claimed_by IN (SELECT token FROM controller_members
                                         WHERE expires_at < now() - make_interval(secs => $3)))
                ORDER BY next_attempt_at
                FOR UPDATE SKIP LOCKED
                LIMIT 1)
            UPDATE finalize_jobs f
               SET state = 'running', claimed_by = $1, claimed_until = now() + make_interval(secs => $2),
                   updated_at = now()
              FROM due WHERE f.recording_id = due.recording_id
            RETURNING f.*
            """,
            self.claim_token,
            float(self.fc.lease_seconds),
            DEAD_MEMBER_GRACE_SECONDS,
        )

    async def _run_job(self, job: asyncpg.Record) -> None:
        """Take a claimed job as far as it can go (stored, rescheduled, retried or failed)."""
        rid = str(job["recording_id"])
        step = job["step"]
        try:
            while step != "done":
                row = await self._row(rid, step)
                if row is None:  # recording deleted meanwhile (purge/cascade): nothing to do
                    return
                if not row["claim_ok"]:  # taken over (see _claim): write nothing more
                    raise _LostClaim(rid)
                _hook("before", step)
                nxt, updates = await self._do(step, row)
                _hook("after", step)
                await self._advance(rid, step, nxt, updates)
                step = nxt
        except _LostClaim:
            log.warning("finalize %s: claim lost to another worker", rid)
        except Reschedule as r:
            await self.pool.execute(
                "UPDATE finalize_jobs SET state = 'pending', claimed_by = '', claimed_until = NULL,"
                " next_attempt_at = now() + make_interval(secs => $2), last_error = $3, updated_at = now()"
                " WHERE recording_id = $1 AND claimed_by = $4",
                job["recording_id"],
                r.delay,
                f"waiting: {r}",
                self.claim_token,
            )
        except PermanentError as e:
            await self._fail(job, step, str(e))
        except Exception as e:  # transient: store down, disk full, DB blip, ...
            await self._retry(job, step, f"{type(e).__name__}: {e}")
        await self._refresh_gauges()

    async def _row(self, rid: str, step: str) -> asyncpg.Record | None:
        """The recording, and whether the job is still ours at `step` (same round trip)."""
        return await self.pool.fetchrow(
            "SELECT r.*, c.pbx_call_id, coalesce(f.claimed_by = $2 AND f.step = $3, false) AS claim_ok"
            " FROM recordings r LEFT JOIN calls c ON c.id = r.call_id"
            " LEFT JOIN finalize_jobs f ON f.recording_id = r.id WHERE r.id = $1",
            rid,
            self.claim_token,
            step,
        )

    async def _advance(self, rid: str, step: str, nxt: str, updates: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if updates.get("_events"):
                for kind, detail in updates.pop("_events"):
                    await conn.execute(
                        "INSERT INTO recording_events (recording_id, kind, actor, detail)"
                        " VALUES ($1, $2, 'finalize', $3)",
                        rid,
                        kind,
                        detail,
                    )
            if updates:
                cols = list(updates)
                sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
                await conn.execute(
                    f"UPDATE recordings SET {sets}, updated_at = now() WHERE id = $1", rid, *updates.values()
                )
                if updates.get("state") == "stored":
                    await outbox.enqueue(conn, "recording.stored", rid)
            done = nxt == "done"
            res = await conn.execute(
                "UPDATE finalize_jobs SET step = $2, state = CASE WHEN $3 THEN 'done' ELSE state END,"
                " claimed_until = CASE WHEN $3 THEN NULL ELSE now() + make_interval(secs => $5) END,"
                " last_error = CASE WHEN $3 THEN '' ELSE last_error END, updated_at = now()"
                " WHERE recording_id = $1 AND claimed_by = $4 AND step = $6",
                rid,
                nxt,
                done,
                self.claim_token,
                float(self.fc.lease_seconds),
                step,
            )
            if res.split()[-1] != "1":  # our lease expired and someone else took the job: stop quietly
                raise _LostClaim(rid)
        if step == "commit":
            self.metrics.inc("callrec_finalize_stored_total")
            log.info("recording %s stored", rid)

    async def _retry(self, job: asyncpg.Record, step: str, error: str) -> None:
        attempts = job["attempts"] + 1
        self._note_error(f"{job['recording_id']} at {step}: {error}")
        if attempts >= self.fc.max_attempts:
            await self._fail(job, step, f"gave up after {attempts} attempts: {error}", attempts=attempts)
            return
        delay = min(self.fc.retry_base_seconds * 2 ** (attempts - 1), self.fc.retry_max_seconds)
        self.metrics.inc("callrec_finalize_retries_total", step=step)
        log.warning(
            "finalize %s failed at %s (attempt %d, retry in %.0fs): %s",
            job["recording_id"],
            step,
            attempts,
            delay,
            error,
        )
        await self.pool.execute(  # only while the claim is ours: never reset another worker's job
            "UPDATE finalize_jobs SET state = 'pending', attempts = $2, last_error = $3, claimed_by = '',"
            " claimed_until = NULL, next_attempt_at = now() + make_interval(secs => $4), updated_at = now()"
            " WHERE recording_id = $1 AND claimed_by = $5",
            job["recording_id"],
            attempts,
            f"{step}: {error}",
            float(delay),
            self.claim_token,
        )

    async def _fail(self, job: asyncpg.Record, step: str, error: str, *, attempts: int | None = None) -> None:
        self._note_error(f"{job['recording_id']} at {step}: {error}")
        reason = error.split(":", 1)[0] if ":" in error else step
        self.metrics.inc("callrec_finalize_failed_total", reason=reason)
        log.error("finalize %s FAILED at %s (spool files kept): %s", job["recording_id"], step, error)
        async with self.pool.acquire() as conn, conn.transaction():
            mine = await conn.execute(  # only while the claim is ours: a job another worker took is its own
                "UPDATE finalize_jobs SET state = 'failed', attempts = $2, last_error = $3, claimed_by = '',"
                " claimed_until = NULL, updated_at = now() WHERE recording_id = $1 AND claimed_by = $4",
                job["recording_id"],
                attempts if attempts is not None else job["attempts"] + 1,
                error,
                self.claim_token,
            )
            if mine.split()[-1] != "1":
                log.warning("finalize %s: not failed here, another worker holds the job now", job["recording_id"])
                return
            res = await conn.execute(
                "UPDATE recordings SET state = 'failed', error = $2, updated_at = now()"
                " WHERE id = $1 AND state <> 'stored'",
                job["recording_id"],
                error,
            )
            if res.endswith(" 1"):
                await outbox.enqueue(conn, "recording.failed", job["recording_id"])

    def _note_error(self, error: str) -> None:
        self._last_error, self._last_error_at = error, time.time()

    # ---- status ---------------------------------------------------------------------------------

    def config_error(self) -> str:
        try:
            account_keys.recipients_for(self.config, None)
        except crypto.EncryptionConfigError as e:
            return str(e)
        return ""

    async def status(self) -> FinalizeStatus:
        r = await self.pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'running')) AS backlog,"
            " count(*) FILTER (WHERE state IN ('pending', 'running') AND attempts > 0) AS retrying,"
            " count(*) FILTER (WHERE state = 'failed') AS failed,"
            " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state IN ('pending', 'running'))), 0)"
            " AS oldest FROM finalize_jobs"
        )
        st = FinalizeStatus(
            backlog=r["backlog"],
            retrying=r["retrying"],
            failed=r["failed"],
            oldest_pending_seconds=float(r["oldest"]),
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            config_error=self.config_error(),
            stored_total=int(self.metrics.get("callrec_finalize_stored_total")),
        )
        waiting = await self.pool.fetch(
            "SELECT coalesce(r.account_id, '') AS account, count(*) AS n FROM finalize_jobs f"
            " JOIN recordings r ON r.id = f.recording_id WHERE f.state = 'failed' AND f.last_error LIKE $1"
            " GROUP BY 1 ORDER BY 1",
            account_keys.NO_RECIPIENT + ":%",
        )
        st.no_recipient = {w["account"]: w["n"] for w in waiting}
        for acc in self._no_recipient_accounts - set(st.no_recipient):
            self.metrics.set("callrec_finalize_no_recipient", 0, account=acc)
        for acc, n in st.no_recipient.items():
            self.metrics.set("callrec_finalize_no_recipient", n, account=acc)
        self._no_recipient_accounts = set(st.no_recipient)
        self._set_gauges(st.backlog, st.failed, bool(st.config_error))
        return st

    async def _refresh_gauges(self) -> None:
        with contextlib.suppress(Exception):
            await self.status()

    def _set_gauges(self, backlog: int, failed: int, config_error: bool) -> None:
        self.metrics.set("callrec_finalize_backlog", backlog)
        self.metrics.set("callrec_finalize_failed", failed)
        self.metrics.set("callrec_finalize_config_error", 1 if config_error else 0)
