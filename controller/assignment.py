"""Which live instance should drive which PBX node: rendezvous (highest-random-weight) hashing.

Pure: no I/O, no clock. `controller.lease.LeaseManager` feeds it the live members it read from
PostgreSQL (and the seconds their rows and the leases have left, for `next_change`) and acts on the
answer. Every instance computes the same answer from the same member set,
so no coordinator is needed; the lease row in PostgreSQL still decides who actually holds a node
(two instances with momentarily different views can never both hold it).

Why rendezvous hashing: when an instance joins or leaves, mostly the nodes whose top-scoring
instance changed move, so a rebalance disturbs few PBX links; and a node's owner depends on instance
NAMES (node_id), not process ids, so an instance restarted under the same name gets its own nodes
back. Plain rendezvous spreads evenly only over many nodes (6 nodes over 3 instances often come out
4/1/1), so each instance takes at most ceil(nodes / instances): a node whose first choice is full goes
to its next choice ("bounded load"); the order is fixed (nodes by name), so every instance still
computes the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """A live instance: its stable name (node_id) and the PBX nodes its configuration lets it drive."""

    name: str
    nodes: frozenset[str]


def score(node: str, name: str) -> int:
    """The weight of instance `name` for `node`; stable across processes, Python versions and hosts."""
    return int.from_bytes(hashlib.sha256(f"{node}\x00{name}".encode()).digest()[:8], "big")


def owner(node: str, members: Iterable[Member]) -> str | None:
    """The name of the member that should drive `node`, or None when no live member can."""
    return assign(members).get(node)


def assign(members: Iterable[Member]) -> dict[str, str]:
    """node → owning member name, for every node some live member can drive."""
    ms = list({m.name: m for m in members}.values())
    nodes = sorted({n for m in ms for n in m.nodes})
    if not ms:
        return {}
    cap = -(-len(nodes) // len(ms))
    load = dict.fromkeys((m.name for m in ms), 0)
    out: dict[str, str] = {}
    for node in nodes:
        able = sorted((m.name for m in ms if node in m.nodes), key=lambda name: (score(node, name), name), reverse=True)
        if not able:
            continue
        who = next((name for name in able if load[name] < cap), able[0])
        out[node] = who
        load[who] += 1
    return out


@dataclass(frozen=True)
class Plan:
    """What one instance should do this round for the nodes it can drive."""

    acquire: tuple[str, ...]  # nodes to take (free, expired, or ours to keep)
    release: tuple[str, ...]  # nodes held now that another live instance should drive: hand over


def plan(
    me: str,
    my_nodes: Iterable[str],
    members: Iterable[Member],
    held: Iterable[str],
    *,
    orphaned: Iterable[str] = (),
) -> Plan:
    """One round of the lease loop for instance `me`.

    `held`: nodes this instance holds now. `orphaned`: nodes whose lease nobody has held for longer
    than a ttl — taken by any instance that can drive them (a member whose view of the member set
    lags, or an owner that cannot reach the database, must not leave a node undriven forever).
    """
    wanted = assign(members)
    held_set, orphan_set = set(held), set(orphaned)
    acquire, release = [], []
    for node in sorted(set(my_nodes)):
        want = wanted.get(node)
        if want == me or (want is None and node in held_set) or node in orphan_set:
            acquire.append(node)
        elif node in held_set:
            release.append(node)
    return Plan(tuple(acquire), tuple(release))


def orphaned_nodes(leases: Mapping[str, tuple[str, float]], ttl: float, at: float = 0.0) -> set[str]:
    """The nodes whose lease (holder, seconds left) will have been free for a whole ttl `at` seconds
    from the reading: nobody renewed them, so any instance may take them."""
    return {node for node, (_, left) in leases.items() if left < at - ttl}


def next_change(
    me: str,
    my_nodes: Iterable[str],
    members: Iterable[tuple[Member, float]],
    leases: Mapping[str, tuple[str, float]],
    held: Iterable[str],
    *,
    ttl: float,
    within: float,
    after: float = 0.05,
) -> float | None:
    """When instance `me` should run its next round, in seconds from a round's reading, if before `within`.

    A round reads the live member rows and the lease rows of its nodes, each with the seconds it has
    left (negative: expired that long ago), all by the database's clock. When a member row or a lease
    runs out, this instance may get something to do: take a node of a dead member (once both its row
    and the node's lease ran out), take an orphaned node, or hand one over because the spread changed.
    Returns the first such moment + `after` (so the database has seen it pass), or None when nothing
    new comes before `within`. `members` holds (member, seconds left); give this process's own row
    `math.inf` (it renews its row itself). `held`: the nodes this instance drives after the round.
    """
    my_nodes, held_set = sorted(set(my_nodes)), set(held)
    rows = list(members)

    def todo(t: float) -> tuple[set[str], set[str]]:
        alive = [m for m, left in rows if left > t]
        step = plan(me, my_nodes, alive, held_set, orphaned=orphaned_nodes(leases, ttl, t))
        free = {n for n in step.acquire if n not in leases or leases[n][0] == me or leases[n][1] < t}
        return free - held_set, set(step.release)

    take_now, hand_now = todo(0.0)
    moments = {left for _, left in rows} | {left for _, left in leases.values()}
    moments |= {left + ttl for _, left in leases.values()}  # a lease free for a ttl: orphaned
    for moment in sorted(m for m in moments if 0.0 <= m and m + after < within):
        take, hand = todo(moment + after)
        if take - take_now or hand - hand_now:
            return moment + after
    return None


def spread(assignment: Mapping[str, str]) -> dict[str, int]:
    """member name → how many nodes it drives (for logs and the drill's report)."""
    out: dict[str, int] = {}
    for name in assignment.values():
        out[name] = out.get(name, 0) + 1
    return out
