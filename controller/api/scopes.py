"""Who may see, listen to and download which calls (pure; no I/O).

Talkdesk's model: listen and download are separate permissions, each scoped `all`, `none`,
`ring_group:<id>` or `agent:<ext>` (a comma-separated list combines several). An agent only ever
reaches their own calls, whatever their scopes say; an admin sees every call but listens and
downloads within their scopes like anyone else. Visibility (metadata, live calls, pause) is the
union of the listen and download scopes, so a user never sees a call they could do nothing with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("admin", "supervisor", "agent")
_KINDS = ("ring_group", "agent")


class ScopeError(ValueError):
    """A scope string that is not all | none | ring_group:<id> | agent:<ext>[,...]."""


@dataclass(frozen=True)
class Scope:
    """A set of calls: everything, nothing, or those that rang some ring groups / had some agents."""

    all: bool = False
    ring_groups: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()

    @property
    def none(self) -> bool:
        return not (self.all or self.ring_groups or self.agents)

    def __or__(self, other: Scope) -> Scope:
        return Scope(self.all or other.all, self.ring_groups | other.ring_groups, self.agents | other.agents)

    def covers(self, ring_groups: Iterable[str], agents: Iterable[str]) -> bool:
        """True when a call that rang `ring_groups` and had `agents` is inside this scope."""
        if self.all:
            return True
        return bool(self.ring_groups.intersection(ring_groups) or self.agents.intersection(agents))

    def __str__(self) -> str:
        if self.all:
            return "all"
        parts = [f"ring_group:{g}" for g in sorted(self.ring_groups)] + [f"agent:{a}" for a in sorted(self.agents)]
        return ",".join(parts) or "none"


NONE = Scope()
ALL = Scope(all=True)


def parse_scope(text: str) -> Scope:
    """`all`, `none`, or a comma-separated list of `ring_group:<id>` / `agent:<ext>`."""
    value = text.strip()
    if value == "all":
        return ALL
    if value in ("none", ""):
        return NONE
    groups: set[str] = set()
    agents: set[str] = set()
    for part in value.split(","):
        kind, sep, ident = part.strip().partition(":")
        if not sep or kind not in _KINDS or not ident or any(c.isspace() or c == ":" for c in ident):
            raise ScopeError(f"bad scope {part.strip()!r}: expected all, none, ring_group:<id> or agent:<ext>")
        (groups if kind == "ring_group" else agents).add(ident)
    return Scope(ring_groups=frozenset(groups), agents=frozenset(agents))


@dataclass(frozen=True)
class Principal:
    """An authenticated API user with their effective scopes."""

    user_id: int
    name: str
    role: str
    agent_ext: str = ""
    listen: Scope = ALL
    download: Scope = NONE

    @classmethod
    def build(cls, user_id: int, name: str, role: str, agent_ext: str, listen: str, download: str) -> Principal:
        """Apply the role rules: an agent's non-empty scopes shrink to their own extension."""
        ls, ds = parse_scope(listen), parse_scope(download)
        if role == "agent":
            own = Scope(agents=frozenset({agent_ext})) if agent_ext else NONE
            ls = NONE if ls.none else own
            ds = NONE if ds.none else own
        return cls(user_id, name, role, agent_ext, ls, ds)

    @property
    def view(self) -> Scope:
        """Calls this user may see (and, for supervisors/admins, pause)."""
        if self.role == "admin":
            return ALL
        if self.role == "agent":
            return Scope(agents=frozenset({self.agent_ext})) if self.agent_ext else NONE
        return self.listen | self.download

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "agent_ext": self.agent_ext,
            "listen_scope": str(self.listen),
            "download_scope": str(self.download),
            "view_scope": str(self.view),
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
