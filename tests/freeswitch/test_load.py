"""Many concurrent calls through one ESL link: every one recorded and journaled exactly once.
Slow (run with -m slow); lab/bench has the figures."""

from __future__ import annotations

import asyncio

import pytest

from lab import scenarios as sc

from .conftest import Harness


@pytest.mark.slow
async def test_thousand_concurrent_calls_are_each_journaled_once(harness: Harness) -> None:
    harness.sim.settle_timeout = 60
    n = 1000
    await asyncio.gather(*(harness.sim.run(sc.get("inbound")) for _ in range(n)))
    await harness.wait(lambda: harness.recorder is not None and not harness.recorder.live_calls(), 120)
    await harness.settle()
    counts = await harness.pool.fetchrow(
        """SELECT count(*) AS recordings, count(*) FILTER (WHERE state = 'stopped' AND stop_reason = 'hangup') AS ok,
                  count(DISTINCT customer_leg) AS legs,
                  (SELECT count(*) FROM finalize_jobs f JOIN recordings r2 ON r2.id = f.recording_id
                   WHERE r2.pbx = $1) AS jobs
           FROM recordings WHERE pbx = $1""",
        harness.pbx,
    )
    assert dict(counts) == {"recordings": n, "ok": n, "legs": n, "jobs": n}
