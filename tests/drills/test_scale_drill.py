"""Scale-out drill, small (slow suite): 3 `callrec run` processes, 6 simulated PBX nodes (3 ESL + 3 AMI)
in a process of their own, one PostgreSQL database, one moto S3 server process. The controllers join
one by one (each join rebalances the nodes), calls arrive, the controller driving the most nodes is
killed with SIGKILL at the peak: its nodes are driven again by the survivors, no node ever has two
controllers connected, and every call's recording is stored exactly once in the bucket.

The full-size run (3,000 concurrent at 100 calls/s, 1 → 3 controllers) is `python -m lab.bench.scale_drill
--full`; this test prints the same table for its small size.
"""

from __future__ import annotations

import argparse
import os

import pytest

from lab.bench.scale_drill import run_once
from lab.bench.scale_report import print_run

pytestmark = pytest.mark.slow


async def test_three_controllers_six_nodes_kill9_at_the_peak_stores_every_recording_once(server_dsn: str) -> None:
    ns = argparse.Namespace(
        rate=5.0, concurrent=40, calls=0, fs=3, ast=3, no_kill=False, drain_limit=300.0, keep=False, dsn=server_dsn
    )
    run = await run_once(3, ns)
    print_run(run)
    print(f"load average at the end: {os.getloadavg()}")
    assert all(j is not None for j in run.joins), "the leases never matched the assignment after a join"
    assert sorted(run.spread.values()) == ["ctl-1", "ctl-1", "ctl-2", "ctl-2", "ctl-3", "ctl-3"], run.spread
    assert run.victim and run.victim_nodes, "no controller was killed"
    assert all(t is not None for t in run.takeover.values()), (
        f"a node of the killed controller stayed undriven: {run.takeover}"
    )
    assert max(run.max_links.values()) == 1, f"two controllers connected to one node at once: {run.max_links}"
    assert run.ended == run.calls and not run.sim_errors, run.sim_errors
    assert (run.stored, run.lost, run.duplicated) == (run.calls, 0, 0), (run.states, run.failed)
    assert (run.objects, run.manifests, run.objects_unknown, run.objects_duplicated) == (run.calls, run.calls, 0, 0)
    assert len(run.finalized_by) >= 2, f"finalize was not shared: {run.finalized_by}"
