"""Figures of one scale-drill run (lab.bench.scale_drill) and how they print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Run:
    controllers: int
    rate: float
    concurrent: int
    calls: int
    joins: list[float | None] = field(default_factory=list)  # s until the leases matched after each start
    spread: dict[str, str] = field(default_factory=dict)  # node → controller before the load
    placed: int = 0
    ended: int = 0
    placing_s: float = 0.0  # wall time from go to the last call ended
    placing_wall: float = 0.0  # time the node process took to place every call
    start_rate: float = 0.0  # recordings journaled per second (first start to the kill, or to the last)
    placed_rate: float = 0.0  # calls placed per second by the PBX side (placed / time placing took)
    live_peak: int = 0
    live_at_kill: int = 0
    victim: str = ""
    victim_nodes: list[str] = field(default_factory=list)
    lease_takeover_s: float | None = None  # kill → every victim node leased by a survivor
    takeover: dict[str, float | None] = field(default_factory=dict)  # node: kill → a controller connected
    max_links: dict[str, int] = field(default_factory=dict)  # node: most controllers connected at once
    drain_s: float | None = None
    recordings: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # recordings by state
    jobs: dict[str, int] = field(default_factory=dict)  # finalize jobs by state
    objects: int = 0
    manifests: int = 0
    objects_unknown: int = 0
    objects_duplicated: int = 0
    finalized_by: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-s during load + drain (victim: until killed)
    pg: dict[str, int] = field(default_factory=dict)  # peak PostgreSQL connections per controller
    pg_total_peak: int = 0
    sim_errors: list[str] = field(default_factory=list)
    load_before: tuple[float, ...] = ()
    load_peak: tuple[float, ...] = (0.0, 0.0, 0.0)
    load_at_kill: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _la(x: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.1f}" for v in x) if x else "-"


def print_run(r: Run) -> None:
    rows: list[tuple[str, str]] = [
        ("controllers / PBX nodes", f"{r.controllers} / {len(r.max_links) or len(r.spread)}"),
        ("target", f"{r.concurrent} concurrent at {r.rate:g} calls/s, {r.calls} calls"),
        ("joins: leases settled after each start (s)", ", ".join(f"{j:.1f}" if j else "never" for j in r.joins)),
        ("spread before the load", ", ".join(f"{n}:{h}" for n, h in sorted(r.spread.items()))),
        ("calls placed / ended", f"{r.placed} / {r.ended} (placing took {r.placing_wall:.1f} s)"),
        ("calls placed per second (PBX side)", f"{r.placed_rate:.1f}"),
        ("recording starts journaled per second (until the kill)", f"{r.start_rate:.1f}"),
        ("peak concurrent calls", f"{r.live_peak}"),
    ]
    if r.victim:
        tk = [v for v in r.takeover.values() if v is not None]
        rows += [
            (
                f"kill -9 {r.victim} at the peak ({r.live_at_kill} calls up)",
                f"its nodes {', '.join(r.victim_nodes)}; load average then {_la(r.load_at_kill)}",
            ),
            (
                "takeover per node: kill → survivor connected (s)",
                ", ".join(f"{n} {v:.1f}" if v is not None else f"{n} never" for n, v in sorted(r.takeover.items()))
                + (f" (max {max(tk):.1f})" if tk else ""),
            ),
            ("takeover: kill → all its leases held by survivors (s)", f"{r.lease_takeover_s or float('nan'):.1f}"),
        ]
    rows += [
        ("most controllers connected to one node at once", f"{max(r.max_links.values(), default=0)}"),
        ("finalize drain after the last call (s)", f"{r.drain_s:.1f}" if r.drain_s is not None else "not drained"),
        (
            "recordings: stored / lost / duplicated",
            f"{r.stored} / {r.lost} / {r.duplicated} (rows {r.recordings}, failed {len(r.failed)})",
        ),
        ("recordings by state; finalize jobs by state", f"{r.states}; {r.jobs}"),
        (
            "S3 objects: audio / manifests / unknown / duplicated",
            f"{r.objects} / {r.manifests} / {r.objects_unknown} / {r.objects_duplicated}",
        ),
        ("finalized by", ", ".join(f"{k} {v}" for k, v in sorted(r.finalized_by.items()))),
        ("CPU-s per controller (load + drain)", ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu.items()))),
        ("PostgreSQL connections per controller (peak)", ", ".join(f"{k} {v}" for k, v in sorted(r.pg.items()))),
        ("PostgreSQL connections in all (pg_stat_activity peak)", f"{r.pg_total_peak}"),
        ("load average before / peak / after", f"{_la(r.load_before)} | {_la(r.load_peak)} | {_la(r.load_after)}"),
    ]
    if r.failed:
        rows.append(("failed (first 5)", "; ".join(r.failed)))
    if r.sim_errors:
        rows.append(("simulator errors (first)", "; ".join(r.sim_errors[:3])))
    w = max(len(a) for a, _ in rows)
    print(f"\n### {r.controllers} controller(s)\n")
    print(f"| {'figure':<{w}} | value |")
    print(f"|{'-' * (w + 2)}|-------|")
    for a, b in rows:
        print(f"| {a:<{w}} | {b} |")


def print_growth(runs: list[Run]) -> None:
    print("\n### Growth from 1 to N controllers\n")
    print(
        "| controllers | calls placed/s | recording starts/s | CPU-s per controller (mean) | CPU-s all |"
        " PG conns per controller | PG conns all | takeover max (s) | stored / lost / dup |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        cpus = list(r.cpu.values())
        tk = [v for v in r.takeover.values() if v is not None]
        pg = list(r.pg.values())
        print(
            f"| {r.controllers} | {r.placed_rate:.1f} | {r.start_rate:.1f} |"
            f" {sum(cpus) / max(len(cpus), 1):.1f} | {sum(cpus):.1f} |"
            f" {sum(pg) / max(len(pg), 1):.1f} | {r.pg_total_peak} | {max(tk) if tk else float('nan'):.1f} |"
            f" {r.stored} / {r.lost} / {r.duplicated} |"
        )
