"""The PBX side of the scale-out drill: several simulated nodes in ONE process of their own.

    python -m lab.bench.scale_nodes --fs 3 --ast 3 --rate 100 --talk-ms 30000 --calls 3000 --out nodes.json

Starts `--fs` ESL simulators (FreeSWITCH) and `--ast` AMI simulators (Asterisk) on ports the OS picks
and prints one JSON line `{"nodes": {"fs1": port, …, "ast1": port, …}}`. On a `go` line on stdin it
places `--calls` inbound calls at `--rate` per second, round-robin over the nodes, each talking
`--talk-ms` (real time), and keeps printing one JSON status line every `--every` seconds:
`{"t": wall, "links": {node: open controller connections}, "placed": n, "live": n}`. When every call
has ended it writes `--out` (each call's node and customer leg id; each node's link history) and exits.
A `stop` line ends it early. Run by lab.bench.scale_drill; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab import scenarios as sc
from lab.bench.load_bench import LoadAmiSimulator
from lab.esl_sim import EslSimulator


def scenario(talk_ms: int) -> sc.Scenario:
    return sc.Scenario(
        "scale_inbound",
        "inbound call for the scale drill",
        (sc.PlaceCall("inbound"), sc.Ring(100), sc.Answer(), sc.Talk(talk_ms), sc.Hangup("customer")),
        sc.Expectation(True, segments=("agent",), stop_reason="hangup"),
    )


def links(sim: EslSimulator | LoadAmiSimulator) -> int:
    """Controller connections open to this node now (authenticated AMI sessions / ESL connections)."""
    if isinstance(sim, EslSimulator):
        return len(sim.conns)
    return len([s for s in sim.sessions if getattr(s, "authenticated", True)])


async def main(ns: argparse.Namespace) -> None:
    sims: dict[str, EslSimulator | LoadAmiSimulator] = {}
    for i in range(1, ns.fs + 1):
        sims[f"fs{i}"] = EslSimulator(time_scale=1.0)
    for i in range(1, ns.ast + 1):
        sims[f"ast{i}"] = LoadAmiSimulator(time_scale=1.0)
    for sim in sims.values():
        await sim.start()
    tickers = [asyncio.create_task(s.ticker()) for s in sims.values() if isinstance(s, LoadAmiSimulator)]
    print(json.dumps({"nodes": {name: s.port for name, s in sims.items()}}), flush=True)

    history: dict[str, list[tuple[float, int]]] = {name: [] for name in sims}  # (wall, links) on change
    calls: list[dict[str, Any]] = []
    placed = 0
    stop = asyncio.Event()
    go = asyncio.Event()

    async def read_stdin() -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                stop.set()
                return
            if line.strip() == "go":
                go.set()

    async def report() -> None:
        while True:
            now = time.time()
            state = {}
            for name, sim in sims.items():
                n = links(sim)
                state[name] = n
                if not history[name] or history[name][-1][1] != n:
                    history[name].append((now, n))
            live = sum(len(s.channels) for s in sims.values()) // 2
            print(json.dumps({"t": now, "links": state, "placed": placed, "live": live}), flush=True)
            await asyncio.sleep(ns.every)

    reader = asyncio.create_task(read_stdin())
    reporter = asyncio.create_task(report())
    await asyncio.wait(
        [asyncio.create_task(go.wait()), asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
    )
    scen = scenario(ns.talk_ms)
    order = list(sims)
    tasks: list[asyncio.Task[Any]] = []

    async def one(name: str) -> None:
        sim = sims[name]
        if isinstance(sim, EslSimulator):
            h = await sim.run(scen, settle=False)
            calls.append({"node": name, "leg": h.customer.uuid})
        else:
            c = await sim.play(scen, settle=False)
            calls.append({"node": name, "leg": c.customer.uniqueid})

    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(ns.calls if not stop.is_set() else 0):
        delay = start + i / ns.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop.is_set():
            break
        tasks.append(asyncio.create_task(one(order[i % len(order)])))
        placed += 1
    placing_s = loop.time() - start
    done = asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.wait([done, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    errors = [repr(r) for r in (done.result() if done.done() else []) if isinstance(r, BaseException)]
    result = {"calls": calls, "history": history, "placed": placed, "placing_s": placing_s, "errors": errors[:20]}
    Path(ns.out).write_text(json.dumps(result))  # noqa: ASYNC240 - once, at the end
    reporter.cancel()
    reader.cancel()
    for t in tickers:
        t.cancel()
    print(json.dumps({"done": True, "placed": placed, "ended": len(calls)}), flush=True)
    for sim in sims.values():
        await sim.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs", type=int, default=3)
    ap.add_argument("--ast", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--talk-ms", type=int, default=30_000)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--every", type=float, default=0.2)
    ap.add_argument("--out", required=True)
    asyncio.run(main(ap.parse_args()))
