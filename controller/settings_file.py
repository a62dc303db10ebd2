"""The policy file admins keep under version control (pure: text ↔ PolicySet).

```toml
default_country = "US"
[accounts.main]
record_inbound = true
[accounts.main.numbering]
internal = ["^[1-5]\\d{3}$"]
[accounts.main.numbers."+15551234567"]
record_inbound = false
[ring_groups.sales]                      # id = the dialplan hook's ring_group value
name = "Sales"
members = ["alice", "bob"]               # user names (callrec users)
```
`parse_settings` validates everything and reports the first problem with its path in the file;
`dump_settings` writes the same format, so export → import is a round trip.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from typing import Any

from controller.numbering import InvalidNumber, InvalidPattern, NumberingPlan, normalize_e164, valid_country
from controller.permissions import RING_GROUP_ID
from controller.policy import (
    SETTING_FIELDS,
    Account,
    AccountSettings,
    NumberOverride,
    PolicyError,
    PolicySet,
    override_from_dict,
    settings_from_dict,
)

_PLAN_KEYS = ("internal", "ring_groups", "private_extensions")
_TOP_KEYS = ("default_country", "accounts", "ring_groups")


@dataclass(frozen=True)
class RingGroupSpec:
    """A ring group as the file states it: members are user names."""

    id: str
    name: str = ""
    members: tuple[str, ...] = ()


def parse_settings(text: str) -> PolicySet:
    return parse_settings_file(text)[0]


def parse_settings_file(text: str) -> tuple[PolicySet, dict[str, RingGroupSpec] | None]:
    """The policy and the ring groups (None when the file has no `ring_groups` table: leave them alone)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError("file", f"not valid TOML: {e}") from None
    unknown = set(raw) - set(_TOP_KEYS)
    if unknown:
        raise PolicyError(sorted(unknown)[0], f"unknown top-level key (expected {', '.join(_TOP_KEYS)})")
    groups = _ring_groups(raw["ring_groups"]) if "ring_groups" in raw else None
    return _policy(raw), groups


def _ring_groups(raw: Any) -> dict[str, RingGroupSpec]:
    if not isinstance(raw, dict):
        raise PolicyError("ring_groups", "must be a table of ring groups")
    out: dict[str, RingGroupSpec] = {}
    for gid, body in raw.items():
        where = f"ring_groups.{gid}"
        if not RING_GROUP_ID.match(gid):
            raise PolicyError(where, "a ring group id: letters, digits, _ . + @ - (at most 100)")
        if not isinstance(body, dict):
            raise PolicyError(where, "must be a table (name, members)")
        for key in body:
            if key not in ("name", "members"):
                raise PolicyError(f"{where}.{key}", "unknown key (expected name, members)")
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > 200:
            raise PolicyError(f"{where}.name", "a string of at most 200 characters")
        members = body.get("members", [])
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            raise PolicyError(f"{where}.members", "a list of user names")
        out[gid] = RingGroupSpec(gid, name, tuple(sorted(set(members))))
    return out


def _policy(raw: dict[str, Any]) -> PolicySet:
    country = raw.get("default_country", "US")
    if not isinstance(country, str) or not valid_country(country):
        raise PolicyError("default_country", f"must be an ISO 3166 region code like 'US', got {country!r}")
    accounts: dict[str, Account] = {}
    numbers: dict[str, tuple[str, NumberOverride]] = {}
    for acct_id, body in (raw.get("accounts") or {}).items():
        where = f"accounts.{acct_id}"
        if not isinstance(body, dict):
            raise PolicyError(where, "must be a table")
        body = dict(body)
        plan_raw = body.pop("numbering", None)
        nums_raw = body.pop("numbers", {}) or {}
        settings = _settings(where, body)
        plan = _plan(f"{where}.numbering", plan_raw)
        accounts[acct_id] = Account(acct_id, settings, plan)
        for raw_number, ov in nums_raw.items():
            nwhere = f"{where}.numbers.{raw_number}"
            try:
                number = normalize_e164(raw_number, country)
            except InvalidNumber as e:
                raise PolicyError(nwhere, str(e)) from None
            if number in numbers:
                other = numbers[number][0]
                raise PolicyError(nwhere, f"{number} is listed under accounts {other!r} and {acct_id!r}")
            if not isinstance(ov, dict):
                raise PolicyError(nwhere, "must be a table of settings")
            try:
                numbers[number] = (acct_id, override_from_dict(ov))
            except PolicyError as e:
                raise PolicyError(f"{nwhere}.{e.field}", str(e).split(": ", 1)[1]) from None
    return PolicySet(accounts=accounts, numbers=numbers, default_country=country.upper())


def _settings(where: str, body: dict[str, Any]) -> AccountSettings:
    try:
        return settings_from_dict(body)
    except PolicyError as e:
        raise PolicyError(f"{where}.{e.field}", str(e).split(": ", 1)[1]) from None
    except TypeError as e:
        raise PolicyError(where, str(e)) from None


def _plan(where: str, raw: Any) -> NumberingPlan:
    if raw is None:
        return NumberingPlan()
    if not isinstance(raw, dict):
        raise PolicyError(where, "must be a table")
    for key, value in raw.items():
        if key not in _PLAN_KEYS:
            raise PolicyError(f"{where}.{key}", f"unknown key (expected {', '.join(_PLAN_KEYS)})")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"{where}.{key}", "must be a list of regex strings")
    try:
        return NumberingPlan(**{k: tuple(raw.get(k, ())) for k in _PLAN_KEYS})
    except InvalidPattern as e:
        raise PolicyError(where, str(e)) from None


def dump_settings(ps: PolicySet, ring_groups: list[RingGroupSpec] | None = None) -> str:
    out = [f"default_country = {_str(ps.default_country)}"]
    for acct_id in sorted(ps.accounts):
        acct = ps.accounts[acct_id]
        out += ["", f"[accounts.{_key(acct_id)}]"]
        out += [f"{f} = {_val(getattr(acct.settings, f))}" for f in SETTING_FIELDS]
        out += ["", f"[accounts.{_key(acct_id)}.numbering]"]
        out += [f"{k} = [{', '.join(_str(p) for p in getattr(acct.numbering, k))}]" for k in _PLAN_KEYS]
        for number in sorted(n for n, (a, _) in ps.numbers.items() if a == acct_id):
            out += ["", f"[accounts.{_key(acct_id)}.numbers.{_str(number)}]"]
            out += [f"{k} = {_val(v)}" for k, v in ps.numbers[number][1].as_dict().items()]
    for g in sorted(ring_groups or [], key=lambda g: g.id):
        out += ["", f"[ring_groups.{_key(g.id)}]", f"name = {_str(g.name)}"]
        out += [f"members = [{', '.join(_str(m) for m in g.members)}]"]
    return "\n".join(out) + "\n"


def _str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def _key(s: str) -> str:
    return s if s.replace("_", "").replace("-", "").isalnum() else _str(s)


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return _str(v) if isinstance(v, str) else str(v)
