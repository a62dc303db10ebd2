"""The permission model, pure: scope grammar, role validation, and how a role resolves for a user."""

from __future__ import annotations

import pytest

from controller.permissions import (
    ALL,
    NONE,
    Principal,
    Role,
    RoleError,
    ScopeError,
    parse_scope,
    pause_mode,
    role_from_dict,
    sees_call,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("all", "all"),
        ("none", "none"),
        ("", "none"),
        ("ring_group", "ring_group"),
        (" agent , ring_group ", "agent,ring_group"),
        ("agent:2002,ring_group:sales,ring_group", "ring_group,ring_group:sales,agent:2002"),
    ],
)
def test_scope_grammar_round_trips(text: str, canonical: str) -> None:
    assert str(parse_scope(text)) == canonical
    assert parse_scope(canonical) == parse_scope(text)


@pytest.mark.parametrize("bad", ["team:x", "all,agent", "none,ring_group", "ring_group:", "agent:a b", "agents"])
def test_bad_scopes_are_refused(bad: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(bad)


def test_relative_terms_resolve_against_the_user() -> None:
    scope = parse_scope("ring_group,agent,ring_group:vip")
    got = scope.resolve("2001", ["sales"])
    assert got.covers(["sales"], []) and got.covers(["vip"], []) and got.covers([], ["2001"])
    assert not got.covers(["support"], ["2002"])
    assert parse_scope("agent").resolve("", ["sales"]) == NONE  # no extension: no own calls
    assert parse_scope("ring_group").resolve("2001", []) == NONE  # in no ring group
    assert parse_scope("all").resolve("", []) == ALL


def test_role_defaults_are_the_suites() -> None:
    role = role_from_dict({"name": "qa"})
    assert (str(role.listen), str(role.download), str(role.view), str(role.pause)) == ("all", "none", "none", "none")
    assert role.rights == frozenset()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "-x"}, "name"),
        ({"name": "qa", "listen": 3}, "listen"),
        ({"name": "qa", "rights": "audit"}, "rights"),
        ({"name": "qa", "rights": ["audit", "audit"]}, "rights"),
        ({"name": "qa", "rights": ["superuser"]}, "rights"),
        ({"name": "qa", "description": "x" * 501}, "description"),
        ({"name": "qa", "builtin": True}, "builtin"),
        ({"name": "qa", "extra": 1}, "extra"),
    ],
)
def test_role_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(RoleError) as e:
        role_from_dict(data)
    assert e.value.field == field


def test_a_change_keeps_what_it_does_not_mention_and_cannot_rename() -> None:
    base = role_from_dict({"name": "qa", "download": "agent", "rights": ["audit"]})
    changed = role_from_dict({"listen": "ring_group"}, base)
    assert str(changed.download) == "agent" and changed.rights == {"audit"} and str(changed.listen) == "ring_group"
    with pytest.raises(RoleError) as e:
        role_from_dict({"name": "other"}, base)
    assert e.value.field == "name"


CALL_SALES = {"agent": "2001", "ring_group": "sales"}
CALL_SUPPORT = {"agent": "2002", "ring_group": "support"}


def _principal(role: Role, ext: str = "", groups: tuple[str, ...] = ()) -> Principal:
    return Principal.resolve(1, "u", ext, groups, role)


def test_view_is_never_less_than_listen_or_download() -> None:
    role = role_from_dict({"name": "r", "view": "none", "listen": "none", "download": "ring_group"})
    p = _principal(role, groups=("sales",))
    assert sees_call(p, CALL_SALES) and not sees_call(p, CALL_SUPPORT)


def test_pause_modes() -> None:
    sup = _principal(role_from_dict({"name": "s", "pause": "ring_group"}), groups=("sales",))
    assert pause_mode(sup, CALL_SALES) == "supervisor" and pause_mode(sup, CALL_SUPPORT) is None
    agent = _principal(role_from_dict({"name": "a", "view": "agent", "pause": "agent"}), ext="2001")
    assert pause_mode(agent, CALL_SALES) == "agent"  # the recorder checks own call + agent_pause_allowed
    assert _principal(role_from_dict({"name": "a", "pause": "agent"})).agent_pause is False  # no extension
    nobody = _principal(role_from_dict({"name": "n"}))
    assert pause_mode(nobody, CALL_SALES) is None
