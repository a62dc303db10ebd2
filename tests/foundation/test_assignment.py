"""Spreading PBX nodes over live instances (rendezvous hashing): pure, no I/O."""

from controller.assignment import Member, assign, owner, plan, spread

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
