"""ESL events per second: our FreeSWITCH driver + recorder next to greenswitch's raw parse rate.

    .venv/bin/python -m lab.bench.esl_events_bench [--calls 2000] [--dsn postgresql://...]

One byte stream is captured from the ESL simulator (a real TCP subscription with the driver's own
`event plain …` filter, every shared scenario played over and over) and fed, from memory, to:

1. greenswitch alone: its `receive_events` parser and event dispatch to a handler that only counts;
2. our driver + the recorder's decisions: the driver's reader on the asyncio loop (framing and
   greenswitch's header parser, controller.drivers.esl_protocol) fed in 64 KiB pieces as a socket
   delivers them, `Translator`, and the recorder's pure call state machine (`CallTracker`) plus
   policy resolution for every answered call, offered as the driver's sink — everything the
   recorder does at bridge time except the PBX command and the journal write;
3. the same driver into the real `Recorder` with its PostgreSQL journal (PBX commands answer at once):
   the rate the journal allows on one node.

Rate = ESL events in the stream / wall seconds until the last one is handled. 1 and 2 run as
alternated pairs (median of the per-pair ratios). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from controller.calls import CallTracker, Decide
from controller.drivers.esl_protocol import EslProtocol
from controller.drivers.freeswitch import SUBSCRIBED, FreeSwitchDriver, Translator
from controller.events import AnyEvent
from controller.policy import PolicySet
from lab import scenarios as sc
from lab.esl_sim import EslSimulator

CHUNK = 1 << 16  # what one socket read gives the loop under load
DEFAULT_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SKIPPED = ("link_drop", "controller_restart")


async def capture(calls: int) -> bytes:
    """The bytes FreeSWITCH (simulated) sends a subscriber while `calls` calls happen."""
    sim = EslSimulator()
    await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    await reader.readuntil(b"\n\n")
    writer.write(f"auth {sim.password}\n\n".encode())
    await reader.readuntil(b"\n\n")
    writer.write(f"event plain {SUBSCRIBED}\n\n".encode())
    await reader.readuntil(b"\n\n")
    chunks: list[bytes] = []

    async def pump() -> None:
        while data := await reader.read(1 << 16):
            chunks.append(data)

    task = asyncio.create_task(pump())
    names = [n for n in sc.SCENARIOS if n not in SKIPPED]
    for i in range(calls):
        scen = sc.get(names[i % len(names)])
        await sim.run(scen, settle=False)
    await asyncio.sleep(0.5)
    writer.close()
    await sim.close()
    task.cancel()
    return b"".join(chunks)


class _NullSock:
    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass


def _feed(conn: Any, stream: bytes) -> None:
    """Run a greenswitch connection's reader over `stream`, then dispatch every queued event as
    greenswitch's `process_events` does (handlers registered for '*')."""
    conn.sock, conn.sock_file, conn.connected, conn._run = _NullSock(), io.BytesIO(stream), True, True
    conn.receive_events()
    q = conn._esl_event_queue
    handlers = conn.event_handlers.get("*", [])
    while not q.empty():
        ev = q.get_nowait()
        for h in handlers:
            conn._safe_exec_handler(h, ev)


def _in_gevent_thread(fn: Callable[[], None]) -> threading.Thread:
    def main() -> None:
        import gevent

        gevent.get_hub()
        fn()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    return t


def bench_raw(stream: bytes) -> tuple[int, float]:
    import greenswitch

    conn = greenswitch.InboundESL("127.0.0.1", 0, "")
    count = [0]

    def counted(ev: Any) -> None:
        count[0] += 1

    conn.register_handle("*", counted)
    t0 = time.perf_counter()
    _in_gevent_thread(lambda: _feed(conn, stream)).join()
    return count[0], time.perf_counter() - t0


async def expected_events(stream: bytes) -> int:
    """How many normalized events the stream translates into (so the consumer knows when it is done)."""
    tr = Translator("fs1")
    n = [0]
    proto = EslProtocol(lambda h: n.__setitem__(0, n[0] + len(tr(h))))
    for i in range(0, len(stream), CHUNK):
        proto.data_received(stream[i : i + CHUNK])
    return n[0]


async def _feed_loop(driver: FreeSwitchDriver, stream: bytes) -> None:
    """The stream into the driver's protocol as socket reads would hand it over: one piece per loop
    iteration, so what the driver's sink schedules runs between them."""
    proto = EslProtocol(driver._on_event)
    for i in range(0, len(stream), CHUNK):
        proto.data_received(stream[i : i + CHUNK])
        await asyncio.sleep(0)


async def bench_driver(stream: bytes, expected: int, consume: Callable[[AnyEvent], Any]) -> float:
    """Our driver's reader + translation on the loop; `consume` takes each event as the driver's sink."""
    driver = FreeSwitchDriver("fs1", "127.0.0.1", 0, "", record_dir=tempfile.gettempdir())
    seen = [0]

    def sink(ev: AnyEvent) -> bool:
        consume(ev)
        seen[0] += 1
        return True

    driver.set_sink(sink)
    t0 = time.perf_counter()
    await _feed_loop(driver, stream)
    elapsed = time.perf_counter() - t0
    assert seen[0] == expected, (seen[0], expected)
    return elapsed


def tracker_consumer() -> Callable[[AnyEvent], None]:
    tracker = CallTracker("fs1", inbound_contexts=("public",))
    policy = PolicySet()
    n = [0]

    def consume(ev: AnyEvent) -> None:
        for action in tracker.handle(ev):
            if isinstance(action, Decide):
                call = action.call
                decision = policy.resolve(
                    direction=call.direction, number=None, dialplan=call.record_override, account=call.account
                )
                if decision.record and call.customer_leg:
                    n[0] += 1
                    tracker.recording_started(call, f"rec-{n[0]}", decision, time.time())

    return consume


class _InstantPbx(FreeSwitchDriver):
    """Every command answered at once with +OK (the journal is what this row measures)."""

    def api_begin(self, command: str) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        fut.set_result("+OK\n")
        return fut


async def bench_recorder(stream: bytes, expected: int, dsn: str) -> float | None:
    import asyncpg

    from controller.recorder import Recorder
    from storage import db

    name = f"callrec_bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as e:
        print(f"no PostgreSQL at {dsn} ({e}): recorder row skipped", file=sys.stderr)
        return None
    await admin.execute(f'CREATE DATABASE "{name}"')
    target = urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    pool = await db.create_pool(target)
    try:
        async with pool.acquire() as c:
            await db.migrate(c)
        driver = _InstantPbx("fs1", "127.0.0.1", 0, "", record_dir=tempfile.gettempdir())
        driver._connected = True
        rec = Recorder(pool, [driver], PolicySet(), spool_dir=tempfile.gettempdir())
        done = asyncio.Event()
        seen = [0]
        handle = rec._handle_now  # every event of the stream passes here (inline or from the queue)

        def counted(node: Any, ev: AnyEvent) -> None:
            handle(node, ev)
            seen[0] += 1
            if seen[0] >= expected:
                done.set()

        rec._handle_now = counted  # type: ignore[method-assign]
        t0 = time.perf_counter()
        await rec.start()
        await _feed_loop(driver, stream)
        await asyncio.wait_for(done.wait(), 900)
        elapsed = time.perf_counter() - t0
        await rec.close()
        if rec.errors:
            print(f"recorder errors: {rec.errors[:3]}", file=sys.stderr)
        return elapsed
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(calls: int, dsn: str, with_db: bool, pairs: int = 5) -> list[tuple[str, str, str]]:
    """`pairs` alternated (raw, ours) timings of the same stream; the ratio is the median of the
    per-pair ratios, so a load spike on a shared machine hits one pair, not the figure."""
    stream = await capture(calls)
    n_raw, _ = bench_raw(stream)  # warm-up (imports, allocator)
    expected = await expected_events(stream)
    raws: list[float] = []
    ours: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            raws.append(bench_raw(stream)[1])
            ours.append(await bench_driver(stream, expected, tracker_consumer()))
        else:
            ours.append(await bench_driver(stream, expected, tracker_consumer()))
            raws.append(bench_raw(stream)[1])
    ratios = [r / o for r, o in zip(raws, ours, strict=True)]
    raw_rate = n_raw / statistics.median(raws)
    ours_rate = n_raw / statistics.median(ours)
    mb = len(stream) / 2**20
    out = [
        (
            f"greenswitch raw parse ({n_raw} ESL events, {mb:.1f} MB, {calls} calls)",
            f"{raw_rate:,.0f} events/s (median of {pairs})",
            "",
        ),
        (
            f"FreeSWITCH driver + recorder decisions ÷ raw (median of {pairs} alternated pairs)",
            f"{ours_rate:,.0f} events/s; ratio {statistics.median(ratios):.2f}x "
            f"[{', '.join(f'{x:.2f}' for x in sorted(ratios))}] (load {os.getloadavg()[0]:.1f})",
            ">= 0.85x",
        ),
    ]
    if with_db:
        t_db = await bench_recorder(stream, expected, dsn)
        if t_db is not None:
            r = n_raw / t_db
            out.append(
                (
                    "FreeSWITCH driver + Recorder with PostgreSQL journal",
                    f"{r:,.0f} events/s = {r / raw_rate:.2f}x raw ({calls / t_db:,.0f} calls/s)",
                    "",
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--pairs", type=int, default=5, help="alternated raw / driver timings")
    ap.add_argument("--no-db", action="store_true", help="skip the row with the PostgreSQL journal")
    args = ap.parse_args(argv)
    from lab.bench.load_report import print_table

    print_table(asyncio.run(run(args.calls, args.dsn, not args.no_db, args.pairs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
