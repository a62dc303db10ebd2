"""The load bench's breakdown of the slowest FreeSWITCH starts (lab.bench.load_bench.tail_breakdown)."""

from __future__ import annotations

from lab.bench.load_bench import tail_breakdown


def _path(t0: float, entered: float, left: float, woke: float, written: float) -> list[float]:
    return [t0, entered, left, woke, written]


def test_an_idle_loop_woken_late_is_wake_up_time() -> None:
    # 99 quick starts, then two whose loop slept in its selector 5 ms past the bridge
    quick = [_path(i, i - 0.5, i + 0.0001, i + 0.0001, i + 0.0002) for i in range(99)]
    slow = [_path(t, t - 1, t + 0.005, t + 0.005, t + 0.0052) for t in (200.0, 300.0)]
    n, parts = tail_breakdown([*quick, *slow])
    assert n == 2
    assert round(parts["loop wake-up"], 3) == 5.0
    assert round(parts["loop busy"], 3) == 0.0
    assert round(parts["recorder"], 3) == 0.2


def test_a_busy_loop_and_a_queued_hand_over_are_loop_busy() -> None:
    # the loop entered its wait 3 ms after the bridge (it was running other work until then) ...
    busy = _path(0.0, 0.003, 0.0031, 0.0032, 0.0033)
    # ... or its last wait ended before the bridge: the hand-over was already queued behind callbacks
    queued = _path(1.0, 0.9, 0.95, 1.004, 1.0041)
    n, parts = tail_breakdown([busy, queued], q=0)
    assert n == 2
    assert round(parts["loop busy"], 2) == 3.5  # median of 3 and 4 ms
    assert round(parts["loop wake-up"], 2) == 0.05
    assert round(parts["callbacks ahead"], 2) == 0.05


def test_stale_stamps_are_left_out() -> None:
    assert tail_breakdown([_path(5.0, 1.0, 2.0, 3.0, 5.1)]) == (0, {})
