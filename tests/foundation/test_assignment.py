"""Spreading PBX nodes over live instances (rendezvous hashing), and when the next round is due: pure, no I/O."""

import math

import pytest

from controller.assignment import Member, assign, next_change, owner, plan, spread

NODES = frozenset(f"fs{i}" for i in range(1, 4)) | frozenset(f"ast{i}" for i in range(1, 4))


def members(*names: str, nodes: frozenset[str] = NODES) -> list[Member]:
    return [Member(n, nodes) for n in names]


def test_every_node_has_exactly_one_owner_and_all_instances_compute_the_same() -> None:
    a = assign(members("ctl-a", "ctl-b", "ctl-c"))
    b = assign(list(reversed(members("ctl-a", "ctl-b", "ctl-c"))))
    assert a == b and set(a) == NODES
    assert set(a.values()) <= {"ctl-a", "ctl-b", "ctl-c"}


def test_the_nodes_are_spread_over_the_instances() -> None:
    many = frozenset(f"n{i}" for i in range(300))
    counts = spread(assign(members("ctl-a", "ctl-b", "ctl-c", nodes=many)))
    assert sorted(counts) == ["ctl-a", "ctl-b", "ctl-c"]
    assert sorted(counts.values()) == [100, 100, 100], counts
    six = spread(assign(members("ctl-a", "ctl-b", "ctl-c")))
    assert sorted(six.values()) == [2, 2, 2], six  # few nodes: bounded load, not 4/1/1


def test_a_leaving_instance_moves_its_own_nodes_and_few_others() -> None:
    many = frozenset(f"n{i}" for i in range(300))
    before = assign(members("ctl-a", "ctl-b", "ctl-c", nodes=many))
    after = assign(members("ctl-a", "ctl-c", nodes=many))
    moved = {n for n in many if before[n] != after[n]}
    assert moved >= {n for n in many if before[n] == "ctl-b"}
    assert len(moved) <= 150, len(moved)  # its 100, and not a reshuffle of the other 200


def test_a_joining_instance_takes_a_fair_share_with_few_other_moves() -> None:
    many = frozenset(f"n{i}" for i in range(300))
    before = assign(members("ctl-a", "ctl-b", nodes=many))
    after = assign(members("ctl-a", "ctl-b", "ctl-c", nodes=many))
    moved = [n for n in many if after[n] != before[n]]
    assert spread(after)["ctl-c"] == 100
    assert len(moved) <= 150, len(moved)  # c's 100, and not a reshuffle of the rest


def test_an_instance_restarted_under_the_same_name_gets_its_nodes_back() -> None:
    assert assign(members("ctl-a", "ctl-b")) == assign(members("ctl-b", "ctl-a"))


def test_only_an_instance_configured_for_a_node_can_own_it() -> None:
    ms = [Member("fs-only", frozenset({"fs1"})), Member("both", frozenset({"fs1", "ast1"}))]
    assert owner("ast1", ms) == "both"
    assert owner("ast9", ms) is None
    assert set(assign(ms)) == {"fs1", "ast1"}


def test_plan_hands_over_what_another_live_instance_should_drive_and_takes_its_own() -> None:
    ms = members("ctl-a", "ctl-b")
    want = assign(ms)
    mine = {n for n, who in want.items() if who == "ctl-a"}
    # ctl-a alone held everything before ctl-b joined
    p = plan("ctl-a", NODES, ms, held=NODES)
    assert set(p.acquire) == mine and set(p.release) == NODES - mine
    # ctl-b takes its nodes (the lease row decides whether they are free yet)
    q = plan("ctl-b", NODES, ms, held=())
    assert set(q.acquire) == NODES - mine and q.release == ()


def test_plan_takes_an_orphaned_node_even_if_someone_else_should_own_it() -> None:
    ms = members("ctl-a", "ctl-b")
    theirs = next(n for n, who in assign(ms).items() if who == "ctl-b")
    assert theirs not in plan("ctl-a", NODES, ms, held=()).acquire
    assert theirs in plan("ctl-a", NODES, ms, held=(), orphaned={theirs}).acquire


# next_change: seconds left are the database's (member rows and leases), counted from the round's reading.
LONG = 3.9  # a live member that renews every round


def lives(*rows: tuple[str, float], nodes: frozenset[str] = NODES) -> list[tuple[Member, float]]:
    return [(Member(name, nodes), left) for name, left in rows]


def test_a_survivor_wakes_when_a_dead_members_row_and_leases_have_run_out_not_at_its_next_round() -> None:
    ms = lives(("ctl-a", math.inf), ("ctl-b", 0.30))  # b died: its row has 0.30 s left
    theirs = {n for n, who in assign(members("ctl-a", "ctl-b")).items() if who == "ctl-b"}
    mine = NODES - theirs
    # b renewed its leases 0.12 s after its row (a slow round): they run out 0.12 s later
    leases = {n: ("ctl-b", 0.42) for n in theirs} | {n: ("ctl-a", LONG) for n in mine}
    wake = next_change("ctl-a", NODES, ms, leases, held=mine, ttl=4.0, within=1.0, after=0.05)
    assert wake == pytest.approx(0.47)  # the later of the two expiries (only then are its nodes free), + margin
    # leases renewed right after the row (the usual case): the margin covers the gap, one early round
    leases |= {n: ("ctl-b", 0.32) for n in theirs}
    assert next_change("ctl-a", NODES, ms, leases, held=mine, ttl=4.0, within=1.0, after=0.05) == pytest.approx(0.35)
    # what the round at that moment then does: b gone, its nodes free
    assert set(plan("ctl-a", NODES, [m for m, left in ms if left > wake], mine).acquire) == NODES


def test_nothing_to_do_before_the_next_regular_round_means_no_early_round() -> None:
    theirs = {n for n, who in assign(members("ctl-a", "ctl-b")).items() if who == "ctl-b"}
    leases = {n: ("ctl-b", LONG) for n in theirs} | {n: ("ctl-a", LONG) for n in NODES - theirs}
    ms = lives(("ctl-a", math.inf), ("ctl-b", LONG))
    assert next_change("ctl-a", NODES, ms, leases, held=NODES - theirs, ttl=4.0, within=1.0) is None
    # b's row runs out after the next regular round (1.0 s from now): that round sees it, not an early one
    ms = lives(("ctl-a", math.inf), ("ctl-b", 0.98))
    assert next_change("ctl-a", NODES, ms, leases, held=NODES - theirs, ttl=4.0, within=1.0) is None


def test_an_expiry_that_gives_this_instance_nothing_to_do_wakes_nobody() -> None:
    ms = [(Member("ctl-a", frozenset({"fs1"})), math.inf), (Member("ctl-c", frozenset({"ast1"})), 0.2)]
    leases = {"fs1": ("ctl-a", LONG), "ast1": ("ctl-c", 0.2)}  # only c can drive ast1
    assert next_change("ctl-a", {"fs1"}, ms, leases, held={"fs1"}, ttl=4.0, within=1.0) is None


def test_a_node_ours_by_the_spread_is_taken_when_the_other_holders_lease_runs_out() -> None:
    """A holder that stopped renewing (cut off from the database) while its member row still lives."""
    ms = lives(("ctl-a", math.inf), ("ctl-b", LONG))
    mine = {n for n, who in assign(members("ctl-a", "ctl-b")).items() if who == "ctl-a"}
    node = sorted(mine)[0]
    leases = {n: ("ctl-a", LONG) for n in mine} | {node: ("ctl-b", 0.4)}
    wake = next_change("ctl-a", NODES, ms, leases, held=mine - {node}, ttl=4.0, within=1.0, after=0.05)
    assert wake == pytest.approx(0.45)


def test_a_lease_nobody_renewed_for_a_ttl_is_taken_when_it_becomes_orphaned() -> None:
    ms = lives(("ctl-a", math.inf), ("ctl-b", LONG))
    theirs = {n for n, who in assign(members("ctl-a", "ctl-b")).items() if who == "ctl-b"}
    node = sorted(theirs)[0]  # b's by the spread, but its lease ran out 0.7 s ago (b cannot reach the database)
    leases = (
        {n: ("ctl-a", LONG) for n in NODES - theirs} | {n: ("ctl-b", LONG) for n in theirs} | {node: ("ctl-b", -0.7)}
    )
    wake = next_change("ctl-a", NODES, ms, leases, held=NODES - theirs, ttl=0.8, within=0.5, after=0.05)
    assert wake == pytest.approx(0.15)  # free for a whole ttl at 0.1 s from now


def test_a_death_that_moves_a_held_node_to_another_survivor_wakes_the_holder_to_hand_it_over() -> None:
    # three members, 6 nodes (2 each); when ctl-d dies, ctl-a takes two of its nodes and hands fs2 to
    # ctl-c (bounded load: fs2 was ctl-a's only because ctl-c was full)
    three = assign(members("ctl-a", "ctl-c", "ctl-d"))
    assert three["fs2"] == "ctl-a" and assign(members("ctl-a", "ctl-c"))["fs2"] == "ctl-c"
    mine = {n for n, who in three.items() if who == "ctl-a"}
    leases = {n: (who, LONG if who != "ctl-d" else 0.52) for n, who in three.items()}
    ms = lives(("ctl-a", math.inf), ("ctl-c", LONG), ("ctl-d", 0.5))
    wake = next_change("ctl-a", NODES, ms, leases, held=mine, ttl=4.0, within=1.0, after=0.05)
    assert wake == pytest.approx(0.55)  # at d's row expiry: hand fs2 over (d's leases are free 0.02 s later)
