"""Who may see, listen to, download and pause which calls, and who may administer what (pure; no I/O).

Permissions belong to **roles** (the contact-centre suites' model); a user has one role, maybe an
agent extension, and ring-group memberships. A role holds four scopes and a set of admin rights:

- `listen`, `download`: separate permissions on recordings;
- `view`: calls whose metadata and live state the user sees *besides* those they may listen to or
  download (a user never sees fewer calls than they may play);
- `pause`: live calls the user may pause/resume (only among the calls they see);
- `rights`: `view_settings` (read account settings and number overrides), `settings` (change them),
  `users` (users, tokens, ring groups), `roles`, `audit` (read the audit log).

A scope is `all`, `none`, or a comma-separated list of terms: `ring_group` (calls that came through
one of the user's own ring groups), `agent` (calls the user handled on their extension),
`ring_group:<id>` and `agent:<ext>` (explicit lists for special cases). A call "came through" a ring
group when the ring group is in the recording's `ring_groups` (set from the dialplan hook's
`ring_group` variable) and "was handled" by an extension when that extension is one of its agents.
In `pause`, the `agent` term means agent-initiated pause: the user's own call, and only where the
call's account or number allows agent pause; every other pause term is a supervisor's pause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BUILTIN_ROLES = ("admin", "supervisor", "agent")
RIGHTS = ("view_settings", "settings", "users", "roles", "audit")
SCOPE_FIELDS = ("view", "listen", "download", "pause")
_KINDS = ("ring_group", "agent")
_IDENT = re.compile(r"^[^\s:,]{1,100}$")
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
RING_GROUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@\-]{0,99}$")  # what the dialplan hook sets as ring_group


class ScopeError(ValueError):
    """A scope string that is not all | none | a list of ring_group[:<id>] / agent[:<ext>]."""


class RoleError(ValueError):
    """A role that cannot be created or changed as asked; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Scope:
    """A set of calls. `own_ring_groups` / `own_calls` are the relative terms, resolved per user."""

    all: bool = False
    ring_groups: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    own_ring_groups: bool = False
    own_calls: bool = False

    @property
    def none(self) -> bool:
        return not (self.all or self.ring_groups or self.agents or self.own_ring_groups or self.own_calls)

    def __or__(self, other: Scope) -> Scope:
        if self.all or other.all:
            return ALL
        return Scope(
            False,
            self.ring_groups | other.ring_groups,
            self.agents | other.agents,
            self.own_ring_groups or other.own_ring_groups,
            self.own_calls or other.own_calls,
        )

    def resolve(self, agent_ext: str, ring_groups: Iterable[str], *, own_calls: bool = True) -> Scope:
        """The concrete scope for a user: relative terms become their extension and ring groups."""
        if self.all:
            return ALL
        groups = set(self.ring_groups)
        agents = set(self.agents)
        if self.own_ring_groups:
            groups.update(ring_groups)
        if self.own_calls and own_calls and agent_ext:
            agents.add(agent_ext)
        return Scope(ring_groups=frozenset(groups), agents=frozenset(agents))

    def covers(self, ring_groups: Iterable[str], agents: Iterable[str]) -> bool:
        """True when a call that came through `ring_groups` and had `agents` is inside this (resolved) scope."""
        if self.all:
            return True
        return bool(self.ring_groups.intersection(ring_groups) or self.agents.intersection(agents))

    def __str__(self) -> str:
        if self.all:
            return "all"
        parts = ["agent"] if self.own_calls else []
        parts += ["ring_group"] if self.own_ring_groups else []
        parts += [f"ring_group:{g}" for g in sorted(self.ring_groups)] + [f"agent:{a}" for a in sorted(self.agents)]
        return ",".join(parts) or "none"


NONE = Scope()
ALL = Scope(all=True)


def parse_scope(text: str) -> Scope:
    """`all`, `none`, or a comma-separated list of `ring_group`, `agent`, `ring_group:<id>`, `agent:<ext>`."""
    if not isinstance(text, str):
        raise ScopeError(f"a scope is a string, got {type(text).__name__}")
    value = text.strip()
    if value == "all":
        return ALL
    if value in ("none", ""):
        return NONE
    groups: set[str] = set()
    agents: set[str] = set()
    own_groups = own_calls = False
    for part in value.split(","):
        term = part.strip()
        kind, sep, ident = term.partition(":")
        if term in ("all", "none"):
            raise ScopeError(f"{term!r} stands alone; it cannot be combined with other terms")
        if kind not in _KINDS or (sep and not _IDENT.match(ident)):
            raise ScopeError(
                f"bad scope term {term!r}: expected all, none, ring_group, agent, ring_group:<id> or agent:<ext>"
            )
        if not sep:
            own_groups, own_calls = own_groups or kind == "ring_group", own_calls or kind == "agent"
        else:
            (groups if kind == "ring_group" else agents).add(ident)
    return Scope(False, frozenset(groups), frozenset(agents), own_groups, own_calls)


@dataclass(frozen=True)
class Role:
    """A named permission set. Defaults are the suites': listen to all, download nothing."""

    name: str
    description: str = ""
    view: Scope = NONE
    listen: Scope = ALL
    download: Scope = NONE
    pause: Scope = NONE
    rights: frozenset[str] = frozenset()
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "builtin": self.builtin,
            "view": str(self.view),
            "listen": str(self.listen),
            "download": str(self.download),
            "pause": str(self.pause),
            "rights": [r for r in RIGHTS if r in self.rights],
        }

    def same_rights(self, other: Role) -> bool:
        return all(str(getattr(self, f)) == str(getattr(other, f)) for f in SCOPE_FIELDS) and (
            self.rights == other.rights
        )

    @property
    def uses_own_calls(self) -> bool:
        """True when some right of this role is about the user's own calls (needs an extension)."""
        return any(getattr(self, f).own_calls for f in SCOPE_FIELDS)


ROLE_KEYS = ("name", "description", *SCOPE_FIELDS, "rights")


def role_from_dict(data: Mapping[str, Any], base: Role | None = None) -> Role:
    """Validate a role's fields (all, or a change to `base`); raises RoleError naming the field."""
    unknown = sorted(set(data) - set(ROLE_KEYS) - {"builtin"})
    if unknown:
        raise RoleError(unknown[0], f"unknown field (expected {', '.join(ROLE_KEYS)})")
    if base is None:
        name = data.get("name")
        if not isinstance(name, str) or not ROLE_NAME.match(name):
            raise RoleError("name", "letters, digits, . _ - (at most 100, starting with a letter or digit)")
        base = Role(name)
    elif "name" in data and data["name"] != base.name:
        raise RoleError("name", "a role cannot be renamed; create a new role and move its users")
    if "builtin" in data and data["builtin"] != base.builtin:
        raise RoleError("builtin", "read-only")
    changes: dict[str, Any] = {}
    if "description" in data:
        desc = data["description"]
        if not isinstance(desc, str) or len(desc) > 500:
            raise RoleError("description", "a string of at most 500 characters")
        changes["description"] = desc
    for f in SCOPE_FIELDS:
        if f in data:
            try:
                changes[f] = parse_scope(data[f])
            except ScopeError as e:
                raise RoleError(f, str(e)) from None
    if "rights" in data:
        rights = data["rights"]
        if not isinstance(rights, list) or not all(isinstance(r, str) for r in rights):
            raise RoleError("rights", f"a list of rights from {', '.join(RIGHTS)}")
        bad = [r for r in rights if r not in RIGHTS]
        if bad:
            raise RoleError("rights", f"unknown right {bad[0]!r} (expected some of {', '.join(RIGHTS)})")
        if len(set(rights)) != len(rights):
            raise RoleError("rights", "a right is listed twice")
        changes["rights"] = frozenset(rights)
    return Role(**{**base.__dict__, **changes})


@dataclass(frozen=True)
class Principal:
    """An authenticated API user with their effective (resolved) scopes and rights."""

    user_id: int
    name: str
    role: str
    agent_ext: str = ""
    ring_groups: frozenset[str] = frozenset()
    listen: Scope = ALL
    download: Scope = NONE
    view: Scope = ALL
    pause: Scope = NONE
    agent_pause: bool = False
    rights: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def resolve(cls, user_id: int, name: str, agent_ext: str, ring_groups: Iterable[str], role: Role) -> Principal:
        groups = frozenset(ring_groups)
        listen = role.listen.resolve(agent_ext, groups)
        download = role.download.resolve(agent_ext, groups)
        view = role.view.resolve(agent_ext, groups) | listen | download
        pause = role.pause.resolve(agent_ext, groups, own_calls=False)
        agent_pause = role.pause.own_calls and not role.pause.all and bool(agent_ext)
        return cls(user_id, name, role.name, agent_ext, groups, listen, download, view, pause, agent_pause, role.rights)

    def has(self, right: str) -> bool:
        return right in self.rights

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "name": self.name,
            "role": self.role,
            "agent_ext": self.agent_ext,
            "ring_groups": sorted(self.ring_groups),
            "listen_scope": str(self.listen),
            "download_scope": str(self.download),
            "view_scope": str(self.view),
            "pause_scope": str(self.pause),
            "agent_pause": self.agent_pause,
            "rights": [r for r in RIGHTS if r in self.rights],
        }


def call_parties(call: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Ring groups and agents of a live-call view (its fields and its timeline segments)."""
    groups = {g for g in [call.get("ring_group") or "", *(call.get("ring_groups") or [])] if g}
    agents = {a for a in [call.get("agent") or "", *(call.get("agents") or [])] if a}
    timeline = call.get("timeline") or {}
    for seg in timeline.get("segments") or []:
        party = seg.get("party") or ""
        if seg.get("class") == "ring_group":
            groups.add(party)
        elif party:
            agents.add(party)
    return groups, agents


def sees_call(principal: Principal, call: Mapping[str, Any]) -> bool:
    groups, agents = call_parties(call)
    return principal.view.covers(groups, agents)


def pause_mode(principal: Principal, call: Mapping[str, Any]) -> str | None:
    """How `principal` may pause a call they see: 'supervisor', 'agent' (policy-checked, own call), or None."""
    groups, agents = call_parties(call)
    if principal.pause.covers(groups, agents):
        return "supervisor"
    if principal.agent_pause:
        return "agent"
    return None
