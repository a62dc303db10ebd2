"""`callrec lab`: the whole product on one machine, with nothing installed but the package.

Embedded PostgreSQL, fresh keys, the ESL (FreeSWITCH) and AMI (Asterisk) simulators, the real
service (drivers, recorder, finalize, API) and a stream of varied calls on both simulated PBXes:
inbound, outbound, agent pauses, internal and external transfers with the external-transfer rule on
and off, a number whose override says "do not record", an unanswered call. Each call gets its own
customer number, so every recording in the page can be traced back to the call that made it.

Per-scenario account settings are expressed the way an admin would: per-number overrides on the DIDs
the scenarios dial (e.g. the "pause" DID allows agent pause, the "no-continue" DID stops recording on
an external transfer).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyrage import x25519

from controller.config import Config, load_config
from controller.live import Actor
from controller.policy import Account, NumberOverride, PolicySet
from controller.service import Service
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.esl_sim import EslSimulator
from lab.status_line import StatusLine
from storage import db, repo, users

ESL_PASSWORD = "lab-esl-" + os.urandom(4).hex()
AMI_SECRET = "lab-ami-" + os.urandom(4).hex()

# The DIDs the lab's calls use, each with the per-number override a scenario needs.
DID_DEFAULT = sc.DID
DID_PAUSE = "+15557000102"  # agent_pause_allowed
DID_NO_CONTINUE = "+15557000103"  # continue_on_external_transfer = false
DID_NOT_RECORDED = "+15557000199"  # record_inbound = record_outbound = false

OVERRIDES: dict[str, NumberOverride] = {
    DID_DEFAULT: NumberOverride(),
    DID_PAUSE: NumberOverride(agent_pause_allowed=True),
    DID_NO_CONTINUE: NumberOverride(continue_on_external_transfer=False),
    DID_NOT_RECORDED: NumberOverride(record_inbound=False, record_outbound=False),
}

# (scenario, DID) in the order the mix cycles through them.
MIX: tuple[tuple[str, str], ...] = (
    ("inbound", DID_DEFAULT),
    ("outbound", DID_DEFAULT),
    ("pause_resume", DID_PAUSE),
    ("blind_transfer_internal", DID_DEFAULT),
    ("blind_transfer_external_stop", DID_NO_CONTINUE),
    ("attended_transfer_external_continue", DID_DEFAULT),
    ("inbound", DID_NOT_RECORDED),
    ("inbound_agent_hangs_up", DID_DEFAULT),
    ("attended_transfer_internal", DID_DEFAULT),
    ("unanswered", DID_DEFAULT),
    ("blind_transfer_external_continue_pbx", DID_DEFAULT),
    ("outbound_customer_hangs_up", DID_DEFAULT),
)
AGENTS = ("2001", "2003", "2005", "2007")
PBXES = ("fs-lab", "ast-lab")


def mix_entry(n: int) -> tuple[str, str, str]:
    """Call `n` of the stream: (scenario, DID, PBX). Each entry of MIX is played twice in a row, on
    the simulated FreeSWITCH and then on the simulated Asterisk, so every scenario is shown on both
    PBXes (`--calls 2 * len(MIX)` covers them all)."""
    name, did = MIX[(n // len(PBXES)) % len(MIX)]
    return name, did, PBXES[n % len(PBXES)]


@dataclass
class PlacedCall:
    n: int
    scenario: str
    pbx: str
    did: str
    customer: str
    agent: str
    expect_recorded: bool
    direction: str
    error: str = ""
    done: bool = False


@dataclass
class Lab:
    config: Config
    service: Service
    fs: EslSimulator
    ast: AmiSimulator
    identity_file: Path
    admin_token: str
    calls: list[PlacedCall] = field(default_factory=list)

    @property
    def page_url(self) -> str:
        return f"http://{self.config.api.bind}:{self.service.api_port}/"


def variant(name: str, did: str, customer: str, agent: str) -> sc.Scenario:
    """The shared scenario with this call's DID, customer number and agent."""
    base = sc.get(name)
    steps = tuple(replace(s, did=did) if isinstance(s, sc.PlaceCall) else s for s in base.steps)
    parties = dict(base.parties)
    parties["customer"] = replace(parties["customer"], number=customer)
    parties["agent"] = replace(parties["agent"], number=agent, name=f"Agent {agent}")
    return replace(base, steps=steps, parties=parties)


def lab_policy() -> PolicySet:
    main = sc.ACCOUNT_ID
    return PolicySet(accounts={main: Account(main)}, numbers={n: (main, ov) for n, ov in OVERRIDES.items()})


def prepare_keys(state_dir: Path) -> tuple[Path, str]:
    """A fresh age identity (0600) for this lab; the service gets only its public recipient."""
    keys = state_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity_file = keys / "identity.txt"
    if not identity_file.exists():
        identity = x25519.Identity.generate()
        fd = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# public key: {identity.to_public()}\n{identity}\n")
    recipient = identity_file.read_text().split("public key: ", 1)[1].split()[0]
    return identity_file, recipient


async def start_lab(state_dir: Path, *, api_port: int, time_scale: float, bind: str = "127.0.0.1") -> Lab:
    """Both simulators and the service, configured for each other; what started is closed again
    when a later step fails or a signal cancels the start."""
    identity_file, recipient = prepare_keys(state_dir)
    fs = EslSimulator(password=ESL_PASSWORD, time_scale=time_scale, settle_timeout=10)
    ast = AmiSimulator(username="callrec", secret=AMI_SECRET, time_scale=time_scale, settle_timeout=10)
    service: Service | None = None
    try:
        await fs.start()
        await ast.start()
        config = write_config(state_dir, fs.port, ast.port, recipient, identity_file, api_port, bind)
        service = Service(config, lease_ttl=2.0)
        await service.start()
        assert service.pool is not None and service.policy is not None
        async with service.pool.acquire() as conn:
            await repo.save_policy_set(conn, lab_policy())
            await conn.execute("DELETE FROM users WHERE name = 'lab-admin'")
            _, token = await users.add_user(conn, "lab-admin", "admin", listen_scope="all", download_scope="all")
        await service.policy.refresh()
        await asyncio.wait_for(fs.wait_connected(20), 25)
    except BaseException:
        await close_parts(service, fs, ast)
        raise
    return Lab(config, service, fs, ast, identity_file, token)


def write_config(
    state_dir: Path, fs_port: int, ast_port: int, recipient: str, identity_file: Path, api_port: int, bind: str
) -> Config:
    db_url = os.environ.get("CALLREC_DATABASE_URL", "")
    toml = f"""# written by `callrec lab`
state_dir = {json.dumps(str(state_dir))}
node_id = "lab"
[database]
url = {json.dumps(db_url)}
[[pbx]]
name = "fs-lab"
type = "freeswitch"
port = {fs_port}
password = {json.dumps(ESL_PASSWORD)}
inbound_contexts = ["public"]
[[pbx]]
name = "ast-lab"
type = "asterisk"
port = {ast_port}
username = "callrec"
secret = {json.dumps(AMI_SECRET)}
inbound_contexts = ["from-trunk"]
[encryption]
recipients = [{json.dumps(recipient)}]
identity_file = {json.dumps(str(identity_file))}
[api]
bind = {json.dumps(bind)}
port = {api_port}
[finalize]
file_stable_seconds = 0.5
poll_interval_seconds = 1.0
"""
    # It holds the PBX passwords: owner-only, like any config with secrets.
    fd = os.open(state_dir / "callrec.toml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(toml)
    return load_config(state_dir / "callrec.toml", env={})


async def place(lab: Lab, n: int) -> PlacedCall:
    """Place call number `n` of the mix (see `mix_entry`) and play it to the end."""
    name, did, pbx = mix_entry(n)
    customer = f"+1555123{n % 10000:04d}"
    agent = AGENTS[n % len(AGENTS)]
    scenario = variant(name, did, customer, agent)
    not_recorded = did == DID_NOT_RECORDED
    call = PlacedCall(
        n, name, pbx, did, customer, agent, scenario.expect.recorded and not not_recorded, scenario.direction
    )
    lab.calls.append(call)

    async def controller_step(step: Any, *_: Any) -> None:
        if isinstance(step, sc.Pause | sc.Resume):
            await pause_or_resume(lab, call, step)

    try:
        if pbx == "fs-lab":
            await lab.fs.run(scenario, on_step=controller_step)
        else:
            await lab.ast.play(scenario, on_step=controller_step)
    except Exception as e:  # a failed simulated call is reported, never hidden
        call.error = f"{type(e).__name__}: {e}"
    call.done = True
    return call


async def pause_or_resume(lab: Lab, call: PlacedCall, step: sc.Pause | sc.Resume) -> None:
    recorder = lab.service.recorder
    assert recorder is not None
    for view in recorder.live_calls():
        if view["pbx"] == call.pbx and view["customer_number"] == call.customer:
            actor = (
                Actor(f"agent-{call.agent}", "agent", call.agent) if step.by == "agent" else Actor("lab", "supervisor")
            )
            if isinstance(step, sc.Pause):
                await recorder.pause(view["id"], actor)
            else:
                await recorder.resume(view["id"], actor)
            return


async def call_report(lab: Lab) -> list[dict[str, Any]]:
    """Per placed call: the journal's view of it (recordings with state, object, duration, timeline)."""
    pool = lab.service.pool
    assert pool is not None
    out = []
    for c in lab.calls:
        rows = await pool.fetch(
            "SELECT r.id, r.state, r.error, r.object_uri, r.duration_ms, r.timeline, r.direction,"
            " r.stop_reason, c.id AS call_id FROM recordings r JOIN calls c ON c.id = r.call_id"
            " WHERE r.pbx = $1 AND r.customer_number = $2 ORDER BY r.started_at",
            c.pbx,
            c.customer,
        )
        call_id = await pool.fetchval(
            "SELECT id FROM calls WHERE pbx = $1 AND customer_number = $2 ORDER BY started_at LIMIT 1",
            c.pbx,
            c.customer,
        )
        out.append(
            {
                "id": str(call_id) if call_id else None,
                "n": c.n,
                "scenario": c.scenario,
                "pbx": c.pbx,
                "direction": c.direction,
                "numbers": {"customer": c.customer, "account": c.did, "agent": c.agent},
                "expect_recorded": c.expect_recorded,
                "error": c.error,
                "recordings": [
                    {
                        "id": str(r["id"]),
                        "state": r["state"],
                        "error": r["error"],
                        "object": r["object_uri"],
                        "duration_ms": r["duration_ms"],
                        "stop_reason": r["stop_reason"],
                        "timeline": r["timeline"],
                    }
                    for r in rows
                ],
            }
        )
    return out


def problems(report: list[dict[str, Any]]) -> list[str]:
    """What makes `callrec lab --calls N` fail: a call that errored, a recording that is missing,
    failed, or recorded against policy."""
    found = []
    for c in report:
        recs = c["recordings"]
        tag = f"call {c['n']} ({c['scenario']} on {c['pbx']}, {c['numbers']['customer']})"
        if c["error"]:
            found.append(f"{tag}: simulator error {c['error']}")
        if c["expect_recorded"] and not recs:
            found.append(f"{tag}: recording missing")
        if not c["expect_recorded"] and recs:
            found.append(f"{tag}: recorded although policy says not to")
        found += [
            f"{tag}: recording {r['id']} {r['state']} {r['error']}".rstrip() for r in recs if r["state"] != "stored"
        ]
    return found


def by_scenario(report: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per scenario, per PBX: calls placed, calls that should be recorded, recordings stored, and
    calls with a problem — the demo's coverage at a glance."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for c in report:
        row = out.setdefault(c["scenario"], {}).setdefault(
            c["pbx"], {"calls": 0, "expect_recorded": 0, "stored": 0, "problems": 0}
        )
        row["calls"] += 1
        row["expect_recorded"] += int(c["expect_recorded"])
        row["stored"] += sum(1 for r in c["recordings"] if r["state"] == "stored")
        row["problems"] += int(bool(problems([c])))
    return out


async def wait_finalized(lab: Lab, limit: float, progress: Callable[[str], None]) -> bool:
    """Until every recording is stored or failed and no call is live (or `limit` seconds pass)."""
    pool, recorder = lab.service.pool, lab.service.recorder
    assert pool is not None and recorder is not None
    end = time.monotonic() + limit
    while time.monotonic() < end:
        open_ = await pool.fetchval("SELECT count(*) FROM recordings WHERE state NOT IN ('stored', 'failed')")
        live = len(recorder.live_calls())
        progress(f"waiting for finalize: {open_} recording(s) open, {live} call(s) live")
        if open_ == 0 and live == 0:
            return True
        await asyncio.sleep(0.5)
    return False


async def run_batch(lab: Lab, count: int, concurrency: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    done = itertools.count(1)

    async def one(n: int) -> None:
        async with sem:
            await place(lab, n)
        progress(f"placed {next(done)}/{count} calls")

    await asyncio.gather(*(one(n) for n in range(count)))
    await wait_finalized(lab, 120, progress)
    return await call_report(lab)


async def run_forever(lab: Lab, interval: float, concurrency: int, progress: Callable[[str], None]) -> None:
    """A steady stream of calls until cancelled (Ctrl-C, SIGTERM); the calls in flight are cancelled too."""
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[Any]] = set()
    pool, recorder = lab.service.pool, lab.service.recorder
    assert pool is not None and recorder is not None
    try:
        for n in itertools.count():
            await slots.acquire()
            t = asyncio.create_task(place(lab, n))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            t.add_done_callback(lambda _t: slots.release())
            stored = await pool.fetchval("SELECT count(*) FROM recordings WHERE state = 'stored'")
            progress(f"calls placed: {n + 1}  live: {len(recorder.live_calls())}  stored recordings: {stored}")
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def close_parts(service: Service | None, *sims: EslSimulator | AmiSimulator) -> None:
    if service is not None:
        await service.close()
    for sim in sims:
        with contextlib.suppress(Exception):
            await sim.close()


async def close_lab(lab: Lab) -> None:
    await close_parts(lab.service, lab.fs, lab.ast)


async def main(args: Any, state_dir: Path, temporary: bool = False) -> int:
    """The lab until its calls are done (--calls) or SIGINT/SIGTERM (installed here: a background
    `callrec lab &` starts with SIGINT ignored). Exit code: 0 when stopped by a signal in live mode."""
    quiet = args.json
    status = StatusLine(sys.stderr)
    progress = (lambda _text: None) if quiet else status.show
    body = asyncio.current_task()
    assert body is not None
    stopped_by: list[signal.Signals] = []
    closing = False

    def on_signal(sig: signal.Signals) -> None:
        if not stopped_by and not closing:  # a signal while stopping changes nothing
            stopped_by.append(sig)
            body.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    batch = args.calls is not None
    lab: Lab | None = None
    with status.above_logs():
        try:
            # real time in both modes: the controller stamps timeline marks with its own clock, so only
            # then do transfer and pause marks land where the waveform changes
            lab = await start_lab(state_dir, api_port=args.port, time_scale=1.0, bind=args.bind)
            if batch:
                return await report_batch(lab, args, state_dir, temporary, progress, status)
            print(
                f"callrec lab is running (state in {state_dir})\n\n"
                f"  page:        {lab.page_url}#token={lab.admin_token}\n"
                f"  admin token: {lab.admin_token}\n"
                f"  decrypt:     callrec --config {state_dir / 'callrec.toml'} decrypt RECORDING_ID -o out.wav\n\n"
                "Calls are placed on a simulated FreeSWITCH and a simulated Asterisk. Ctrl-C stops.\n"
                + (
                    "The state directory is temporary: it is removed when the lab stops (--state-dir DIR keeps one).\n"
                    if temporary
                    else ""
                ),
                file=sys.stderr,
            )
            await run_forever(lab, args.interval, args.concurrency, progress)
            return 0
        except asyncio.CancelledError:
            if not stopped_by:
                raise
            body.uncancel()
            return 128 + stopped_by[0] if batch else 0
        finally:
            closing = True
            status.finish()
            if not quiet:
                print(f"stopping{f' ({stopped_by[0].name})' if stopped_by else ''}", file=sys.stderr)
            if lab is not None:
                await close_lab(lab)


async def report_batch(
    lab: Lab, args: Any, state_dir: Path, temporary: bool, progress: Callable[[str], None], status: StatusLine
) -> int:
    report = await run_batch(lab, args.calls, args.concurrency, progress)
    found = problems(report)
    doc = {
        "state_dir": str(state_dir),
        "state_kept": not temporary,
        "identity_file": str(lab.identity_file),
        "page_url": lab.page_url,
        "admin_token": lab.admin_token,
        "ok": not found,
        "problems": found,
        "scenarios": by_scenario(report),
        "calls": report,
    }
    status.finish()
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        stored = sum(1 for c in report for r in c["recordings"] if r["state"] == "stored")
        print(f"{len(report)} calls, {stored} recordings stored; problems: {found or 'none'}")
        if temporary:
            print(f"the temporary state directory {state_dir} is removed on exit (--state-dir DIR keeps one)")
    return 0 if not found else 1


def run(args: Any) -> int:
    """Run the lab; afterwards stop its embedded PostgreSQL and remove the state directory when the
    lab created it (a --state-dir the user gave is kept)."""
    temporary = not args.state_dir
    state_dir = Path(tempfile.mkdtemp(prefix="callrec-lab-")) if temporary else Path(args.state_dir)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are installed
            return asyncio.run(main(args, state_dir, temporary))
        return 0
    finally:
        db.stop_embedded(state_dir / "pgdata")
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)
