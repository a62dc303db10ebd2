"""`callrec selftest` records its own test calls and nothing else.

The selftest runs a whole recorder against a PBX that is usually in service. Its policy (a temporary
database, or the configured one plus the selftest account) would otherwise decide on every call the
PBX carries while it runs: with the temporary database any other account falls back to the default
settings, which record — so the selftest started a second recording (a second MixMonitor, a second
uuid_record) on live production calls, into its throw-away store, and its transfer handling muted and
stopped them (seen on a real Asterisk 20: two MixMonitorStart on a call that was none of the
selftest's). Only calls on the selftest's own numbers (its DIDs) may be recorded by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.events import Direction
from controller.policy import DialplanOverride, PolicyDecision, PolicySet


@dataclass(frozen=True)
class OwnCallsOnly(PolicySet):
    """A PolicySet whose decisions record only calls on the numbers of `own_account` (the selftest's
    DIDs); every other call resolves to "not recorded", with the reason in its sources. The account
    alone does not tell: the selftest's PBX node falls back to the selftest account for any call."""

    own_account: str = ""

    def resolve(
        self,
        *,
        direction: Direction | str,
        number: str | None,
        dialplan: DialplanOverride | str | None = None,
        account: str = "main",
    ) -> PolicyDecision:
        decision = super().resolve(direction=direction, number=number, dialplan=dialplan, account=account)
        owner = self.numbers.get(decision.number or "", ("", None))[0]
        if owner == self.own_account or not decision.record:
            return decision
        return replace(decision, record=False, sources={**decision.sources, "record": "selftest:not-a-test-call"})


def own_calls_only(current: Callable[[], PolicySet], own_account: str) -> Callable[[], PolicySet]:
    """A policy provider for the selftest's recorder: `current()` (the policy cache's latest set)
    restricted to `own_account`'s calls; rebuilt only when the underlying set changes."""
    seen: list[tuple[PolicySet, OwnCallsOnly]] = []

    def provider() -> PolicySet:
        ps = current()
        if not seen or seen[0][0] is not ps:
            own = OwnCallsOnly(ps.accounts, ps.numbers, ps.default_country, own_account=own_account)
            seen[:] = [(ps, own)]
        return seen[0][1]

    return provider
