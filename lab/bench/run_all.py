"""Every benchmark, one command: `python -m lab.bench` (or `python -m lab.bench.run_all`).

Runs the load bench (both simulators: recording-start latency, controller CPU/RSS, finalize drain) and
the ESL events/s bench, and prints their figures as ONE table against the goals; then runs the
finalize and API benches (`--skip-others` leaves them out), whose own tables follow. Each latency row
is the median of `--repeats` runs alternated with its anchor (the bare greenswitch / panoramisk
client on the same simulator and load, lab.bench.anchors), with the ratio and the goal. `--quick` is a
small smoke run (100 calls/s up to 200 concurrent). Asserts nothing; see lab/bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys

import psutil

from lab.bench import esl_events_bench, load_bench, load_report

DEFAULT_DSN = load_bench.DEFAULT_DSN


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPU {platform.machine()}, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--skip-others", action="store_true", help="only the load and ESL events benches")
    ap.add_argument("--repeats", type=int, default=3, help="alternated service / bare-client pairs per PBX")
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    args = ap.parse_args(argv)
    concurrent = 200 if args.quick else 1000
    calls = 2 * concurrent
    events_calls = 300 if args.quick else 2000

    async def run() -> list[tuple[str, str, str]]:
        pairs = [
            await load_bench.run_paired(pbx, 100.0, concurrent, calls, args.dsn, args.repeats)
            for pbx in ("freeswitch", "asterisk")
        ]
        table = load_report.paired_rows(pairs, 100.0, concurrent)
        table += await esl_events_bench.run(events_calls, args.dsn, True)
        return table

    table = asyncio.run(run())
    print(f"\ncallrec benchmarks on {machine()}\n")
    load_report.print_table(table)
    sys.stdout.flush()
    if not args.skip_others:
        extra = {
            "lab.bench.finalize_bench": ["--quick"] if args.quick else [],  # 10/30/60 min (+120 in full)
            "lab.bench.api_bench": ["--seconds", "5"] if args.quick else [],
        }
        for module, opts in extra.items():
            print(f"\n$ python -m {module} {' '.join(opts)}", flush=True)
            subprocess.run([sys.executable, "-m", module, *opts], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
