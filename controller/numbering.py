"""Numbering plan and E.164 normalization (pure).

Whether a transfer stops a recording depends on what the target is: internal extensions, ring groups
and private extensions (a third-party PBX reached over a tie line) keep recording; everything else is
external. Account numbers (DIDs, presented caller IDs) are normalized to E.164 with `phonenumbers`
so `+1 (555) 123-4567`, `15551234567` and `+15551234567` are one number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import phonenumbers


class NumberClass(StrEnum):
    INTERNAL = "internal"
    RING_GROUP = "ring_group"
    PRIVATE_EXTENSION = "private_extension"
    EXTERNAL = "external"


class InvalidNumber(ValueError):
    """A string that cannot be a phone number."""


class InvalidPattern(ValueError):
    """A numbering-plan regex that does not compile."""


_DIAL_CHARS = re.compile(r"^[+\d\s().\-/]+$")


def normalize_e164(raw: str, default_country: str = "US") -> str:
    """`raw` as E.164 (`+15551234567`), national numbers read in `default_country`.

    Raises InvalidNumber for anything that is not a plausible public phone number.
    """
    return _e164(raw, default_country)


@functools.lru_cache(maxsize=4096)
def _e164(raw: str, default_country: str) -> str:
    """Cached: every recording start resolves its account's number (a few DIDs, over and over), and
    phonenumbers' parse is a third of a decision's cost. Only results are cached, never errors."""
    text = raw.strip()
    if not text or not _DIAL_CHARS.match(text):
        raise InvalidNumber(f"not a phone number: {raw!r}")
    try:
        parsed = phonenumbers.parse(text, default_country.upper())
    except phonenumbers.NumberParseException as e:
        raise InvalidNumber(f"not a phone number: {raw!r} ({e})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_normalize(raw: str, default_country: str = "US") -> str | None:
    try:
        return normalize_e164(raw, default_country)
    except InvalidNumber:
        return None


def search_forms(raw: str, default_country: str = "US") -> tuple[str, ...]:
    """The spellings a number filter matches in the journal, for every place that searches by number
    (API, `callrec recordings`, `callrec export`).

    The journal keeps a customer's number as the PBX presented it (`+15551234567`, `15551234567` or
    `5551234567`, depending on the trunk) and an account's number in E.164. So a phone number, however
    it is typed, matches its E.164 form, those digits without `+`, and (a number of the default
    country) its national digits; anything else (an extension like `2001`) matches exactly what was
    typed. Empty input: no filter, `()`.
    """
    text = raw.strip()
    if not text:
        return ()
    e164 = try_normalize(text, default_country)
    if e164 is None:
        return (dial_string(text),)
    parsed = phonenumbers.parse(e164)
    forms = [e164, e164[1:]]
    # National digits name this number only in its own country: `5551230062` is not a UK number.
    if parsed.country_code == phonenumbers.country_code_for_region(default_country.upper()):
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        forms.append(re.sub(r"\D", "", national))
    return tuple(dict.fromkeys(f for f in forms if f))


def valid_country(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def dial_string(raw: str) -> str:
    """The user part a PBX shows (`sip:2001@host`, `2001-0x55d…` contact users) reduced to digits."""
    s = raw.strip()
    if s.startswith(("sip:", "sips:", "tel:")):
        s = s.split(":", 1)[1]
    s = s.split("@", 1)[0]
    # FreeSWITCH registered contact users look like "2001-0x5575d5b1bfb0".
    s = re.sub(r"-0x[0-9a-fA-F]+$", "", s)
    return s


@dataclass(frozen=True)
class NumberingPlan:
    """Regexes (searched in the dialled string) per class; the first class that matches wins, in the
    order internal, ring group, private extension. Anything unmatched is external."""

    internal: tuple[str, ...] = (r"^\d{2,5}$",)
    ring_groups: tuple[str, ...] = ()
    private_extensions: tuple[str, ...] = ()
    _compiled: tuple[tuple[NumberClass, tuple[re.Pattern[str], ...]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = []
        for cls, patterns in (
            (NumberClass.INTERNAL, self.internal),
            (NumberClass.RING_GROUP, self.ring_groups),
            (NumberClass.PRIVATE_EXTENSION, self.private_extensions),
        ):
            out = []
            for p in patterns:
                try:
                    out.append(re.compile(p))
                except re.error as e:
                    raise InvalidPattern(f"{cls.value} pattern {p!r} does not compile: {e}") from None
            compiled.append((cls, tuple(out)))
        object.__setattr__(self, "_compiled", tuple(compiled))

    def classify(self, number: str) -> NumberClass:
        return self.match(number)[0]

    def match(self, number: str) -> tuple[NumberClass, str | None]:
        """The class of `number` and the pattern that decided it (None: nothing matched, external)."""
        s = dial_string(number)
        for cls, patterns in self._compiled:
            for p in patterns:
                if p.search(s):
                    return cls, p.pattern
        return NumberClass.EXTERNAL, None

    def is_internal_party(self, number: str) -> bool:
        """Agents, ring groups and private extensions are ours; everyone else is a customer."""
        return self.classify(number) is not NumberClass.EXTERNAL

    @cached_property
    def as_dict(self) -> dict[str, list[str]]:
        return {
            "internal": list(self.internal),
            "ring_groups": list(self.ring_groups),
            "private_extensions": list(self.private_extensions),
        }


def policy_number(raw: str, plan: NumberingPlan, default_country: str = "US") -> str:
    """The account number a policy decision is keyed on: a phone number in E.164, or, for a string
    that is no phone number, an extension of the account's numbering plan (internal, ring group,
    private extension) as dialled — an internal call's number is an extension like `2001`.

    Raises InvalidNumber when it is neither.
    """
    try:
        return normalize_e164(raw, default_country)
    except InvalidNumber as e:
        if dial_string(raw) and plan.classify(raw) is not NumberClass.EXTERNAL:
            return dial_string(raw)
        raise InvalidNumber(f"{e}, nor an extension of the account's numbering plan") from None
