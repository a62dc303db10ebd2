"""The load bench's figures: per-run results, alternated pairs with their anchors, and the rows of the
table `python -m lab.bench` and `python -m lab.bench.load_bench` print (no I/O but printing)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Result:
    pbx: str
    calls: int = 0
    peak_concurrent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    unmatched: int = 0
    cpu_load_s: float = 0.0
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    recordings: int = 0
    drain_s: float = 0.0
    cpu_drain_s: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    from_pbx_ms: list[float] = field(default_factory=list)  # FreeSWITCH: see from_pbx

    def pct(self, p: float, xs: list[float] | None = None) -> float:
        xs = sorted(self.latencies_ms if xs is None else xs)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


@dataclass
class Paired:
    """Alternated runs of the service and of its anchor for one PBX (same simulator, same load)."""

    pbx: str
    ours: list[Result] = field(default_factory=list)
    anchor: list[list[float]] = field(default_factory=list)  # latencies (ms) per anchor run
    anchor_from_pbx: list[list[float]] = field(default_factory=list)  # the same from the PBX's write
    load: list[float] = field(default_factory=list)  # 1-minute load average at the start of each run


def _p(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


GOALS = {  # issue #15: p99 ceiling (ms) and ratio to the bare client, per PBX
    "freeswitch": (2.0, 4.0),
    "asterisk": (3.0, 1.5),
}


def from_pbx(sent: dict[str, float] | None, written: dict[str, float]) -> list[float]:
    """ms from the simulator's write of each call's CHANNEL_BRIDGE to the client's write of its
    `uuid_record` (both perf_counter, i.e. CLOCK_MONOTONIC, the same clock in both processes)."""
    if not sent:
        return []
    return [(t - sent[leg]) * 1000 for leg, t in written.items() if leg in sent]


def from_pbx_row(pair: Paired) -> list[tuple[str, str, str]]:
    """FreeSWITCH: p99 from the simulator's write of the bridge, the service next to the bare client."""
    ours = [_p(r.from_pbx_ms, 99) for r in pair.ours if r.from_pbx_ms]
    base = [_p(a, 99) for a in pair.anchor_from_pbx if a]
    if not ours or not base:
        return []
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    return [
        (
            f"{pair.pbx}: bridge WRITTEN BY THE PBX → uuid_record p99 (socket wait included)",
            f"callrec {m_ours:.2f} ms [{', '.join(f'{x:.2f}' for x in ours)}]; bare greenswitch {m_base:.2f} ms "
            f"[{', '.join(f'{x:.2f}' for x in base)}]; ratio {m_ours / m_base if m_base else float('nan'):.1f}x",
            "",
        )
    ]


def paired_rows(pairs: list[Paired], rate: float, concurrent: int) -> list[tuple[str, str, str]]:
    """One row per PBX: the service's p99 (median of its runs) next to the bare client's, the ratio
    and the goal, then the usual rows of the service's first run."""
    out: list[tuple[str, str, str]] = []
    for pair in pairs:
        cmd = "uuid_record" if pair.pbx == "freeswitch" else "MixMonitor"
        lib = "greenswitch" if pair.pbx == "freeswitch" else "panoramisk"
        ours = [_p(r.latencies_ms, 99) for r in pair.ours]
        base = [_p(a, 99) for a in pair.anchor]
        ours50 = [_p(r.latencies_ms, 50) for r in pair.ours]
        base50 = [_p(a, 50) for a in pair.anchor]
        m_ours, m_base = statistics.median(ours), statistics.median(base)
        ratio = m_ours / m_base if m_base else float("nan")
        ceiling, max_ratio = GOALS[pair.pbx]
        met = "met" if m_ours <= ceiling and ratio <= max_ratio else "NOT met"
        n = len(pair.ours)
        loads = f"load {min(pair.load):.1f}-{max(pair.load):.1f}"
        out.append(
            (
                f"{pair.pbx}: bridge → {cmd} p99, {rate:.0f} calls/s, {concurrent} live (median of {n} alternated)",
                f"callrec {m_ours:.2f} ms [{', '.join(f'{x:.2f}' for x in ours)}] p50 "
                f"{statistics.median(ours50):.2f}; bare {lib} {m_base:.2f} ms [{', '.join(f'{x:.2f}' for x in base)}]"
                f" p50 {statistics.median(base50):.2f}; ratio {ratio:.1f}x ({loads})",
                f"p99 <= {ceiling:g} ms and <= {max_ratio:g}x bare: {met}",
            )
        )
        out.extend(from_pbx_row(pair))
        out.extend(rows(pair.ours[:1], tail=False)[1:])
    return out


def rows(results: list[Result], *, tail: bool = True) -> list[tuple[str, str, str]]:
    """(figure, value, goal) rows for the combined table (`tail`: with the slowest starts' breakdown)."""
    out = []
    for r in results:
        n = len(r.latencies_ms)
        cmd = "uuid_record" if r.pbx == "freeswitch" else "MixMonitor"
        out.append(
            (
                f"{r.pbx}: recording-start latency p50 / p99 (bridge → {cmd}, n={n})",
                f"{r.pct(50):.2f} / {r.pct(99):.2f} ms (max {max(r.latencies_ms, default=0):.1f})",
                "p99 <= 2 ms",
            )
        )
        if tail and r.from_pbx_ms:
            out.append(
                (
                    f"{r.pbx}: the same from the PBX's write of the bridge, p50 / p99",
                    f"{r.pct(50, r.from_pbx_ms):.2f} / {r.pct(99, r.from_pbx_ms):.2f} ms",
                    "",
                )
            )
        if r.first_ms:  # the driver sends other commands before the recording command
            first = "uuid_setvar" if r.pbx == "freeswitch" else "Setvar"
            out.append(
                (
                    f"{r.pbx}: bridge → first command ({first}, the decision) p50 / p99",
                    f"{r.pct(50, r.first_ms):.2f} / {r.pct(99, r.first_ms):.2f} ms",
                    "",
                )
            )
        per_k = 1000 / max(r.calls, 1)
        out.append(
            (
                f"{r.pbx}: controller CPU per 1,000 calls (load, finalize held)",
                f"{r.cpu_load_s * per_k:.1f} CPU-s ({r.cpu_load_s:.1f} s for {r.calls} calls)",
                "",
            )
        )
        grow = (r.rss_peak_mb - r.rss_idle_mb) * 1000 / max(r.peak_concurrent, 1)
        out.append(
            (
                f"{r.pbx}: controller RSS at {r.peak_concurrent} concurrent calls",
                f"{r.rss_peak_mb:.0f} MB peak, {r.rss_idle_mb:.0f} MB idle, +{grow:.0f} MB per 1,000 live calls",
                "< 200 MB",
            )
        )
        rate = r.recordings / r.drain_s if r.drain_s else float("nan")
        out.append(
            (
                f"{r.pbx}: finalize backlog drain ({r.recordings} recordings, 2 workers)",
                f"{rate:.1f} recordings/s ({r.drain_s:.1f} s, {r.cpu_drain_s * 1000 / max(r.recordings, 1):.0f} "
                "CPU-ms each)",
                "",
            )
        )
        bad = {k: v for k, v in r.states.items() if k != "stored"}
        out.append((f"{r.pbx}: recordings stored / not stored", f"{r.states.get('stored', 0)} / {bad or 0}", "all"))
    return out


def print_table(table: list[tuple[str, str, str]]) -> None:
    w0 = max(len(a) for a, _, _ in table)
    w1 = max(len(b) for _, b, _ in table)
    print(f"| {'figure':<{w0}} | {'value':<{w1}} | goal |")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|------|")
    for a, b, c in table:
        print(f"| {a:<{w0}} | {b:<{w1}} | {c} |")
