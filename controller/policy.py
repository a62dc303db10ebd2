"""Recording policy (pure): account settings, per-number overrides, dialplan override.

`PolicySet.resolve()` answers, for one call, every effective setting and where it came from
(`account`, `number:+E164`, `dialplan`), so the API and `callrec policy explain` can show an admin
exactly why a call was or was not recorded. No I/O here: `storage.repo` loads a `PolicySet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from controller.events import Direction
from controller.numbering import InvalidNumber, NumberClass, NumberingPlan, normalize_e164, policy_number


class DialplanOverride(StrEnum):
    FORCE = "force"
    NEVER = "never"


SETTING_FIELDS = (
    "record_inbound",
    "record_outbound",
    "continue_on_external_transfer",
    "external_joiner",
    "agent_pause_allowed",
    "dual_channel",
    "retention_days",
    "pause_max_seconds",
    "agent_record_on_demand",
    "record_consultation",
    "announcement",
    "announcement_interval_seconds",
    "announcement_prompt",
    "announcement_after_resume",
)
# Whole-number settings and their inclusive range; every other setting is true/false.
INT_RANGES: dict[str, tuple[int, int, str]] = {
    "retention_days": (1, 36500, "days"),
    # 0 = a pause lasts until someone resumes; otherwise it resumes by itself after this many seconds
    "pause_max_seconds": (0, 86400, "seconds (0 = no limit)"),
    # how often the periodic announcement beeps while the call is recorded
    "announcement_interval_seconds": (1, 3600, "seconds"),
}
# The consent announcement the customer hears when recording starts (two-party-consent jurisdictions):
ANNOUNCEMENTS = ("none", "beep", "prompt", "periodic")
# An EXTERNAL party joining a conference (three-way call) with continue_on_external_transfer off:
# `stop` the recording there (as a transfer to it would), or `mute` it while that party is in the call
# and record the customer and the agent again once it has left.
EXTERNAL_JOINER = ("stop", "mute")
CHOICES: dict[str, tuple[str, ...]] = {"announcement": ANNOUNCEMENTS, "external_joiner": EXTERNAL_JOINER}
# A sound the PBX plays (FreeSWITCH: a file path or URL its playback takes; Asterisk: a sound name or
# path without extension, as Playback() takes it). One token: the PBX commands are space-separated.
PROMPT_MAX = 255
TEXT_FIELDS = ("announcement_prompt",)
BOOL_FIELDS = tuple(f for f in SETTING_FIELDS if f not in INT_RANGES and f not in CHOICES and f not in TEXT_FIELDS)


class PolicyError(ValueError):
    """A setting has a bad value, or a number/account reference is inconsistent. `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True)
class AccountSettings:
    record_inbound: bool = True
    record_outbound: bool = True
    continue_on_external_transfer: bool = True
    external_joiner: str = "stop"  # stop | mute: an external conference joiner with the rule above off
    agent_pause_allowed: bool = False
    dual_channel: bool = True
    retention_days: int = 183
    pause_max_seconds: int = 0  # secure pause: auto-resume after this long (0 = never)
    agent_record_on_demand: bool = False  # the agent's code records a call policy did not record
    # An agent's consultation during a customer call (before an attended transfer) is in that call's
    # timeline either way; on: it is also recorded as a recording of its own filed under that call.
    record_consultation: bool = False
    announcement: str = "none"  # none | beep | prompt | periodic
    announcement_interval_seconds: int = 30  # periodic: a beep every this many seconds
    announcement_prompt: str = ""  # prompt: the sound file the PBX plays
    announcement_after_resume: bool = False  # announce again when a paused recording resumes

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SETTING_FIELDS}


@dataclass(frozen=True)
class NumberOverride:
    """Only the fields a number sets; None = inherit from the account."""

    record_inbound: bool | None = None
    record_outbound: bool | None = None
    continue_on_external_transfer: bool | None = None
    external_joiner: str | None = None
    agent_pause_allowed: bool | None = None
    dual_channel: bool | None = None
    retention_days: int | None = None
    pause_max_seconds: int | None = None
    agent_record_on_demand: bool | None = None
    record_consultation: bool | None = None
    announcement: str | None = None
    announcement_interval_seconds: int | None = None
    announcement_prompt: str | None = None
    announcement_after_resume: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SETTING_FIELDS if getattr(self, f) is not None}

    @property
    def empty(self) -> bool:
        return not self.as_dict()


def validate_setting(name: str, value: Any) -> Any:
    """Check one setting value; returns it or raises PolicyError naming the field."""
    if name not in SETTING_FIELDS:
        raise PolicyError(name, f"unknown setting (known: {', '.join(SETTING_FIELDS)})")
    if name in INT_RANGES:
        low, high, unit = INT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PolicyError(name, f"must be a whole number of {unit} from {low} to {high}, got {value!r}")
    elif name in CHOICES:
        if value not in CHOICES[name]:
            raise PolicyError(name, f"must be one of {', '.join(CHOICES[name])}, got {value!r}")
    elif name in TEXT_FIELDS:
        if not isinstance(value, str) or len(value) > PROMPT_MAX or not value.isprintable() or " " in value:
            raise PolicyError(
                name,
                f"must be the sound file the PBX plays: one word of at most {PROMPT_MAX} printable characters"
                f" without spaces (e.g. /usr/share/sounds/callrec/consent.wav or custom/consent), got {value!r}",
            )
    elif not isinstance(value, bool):
        raise PolicyError(name, f"must be true or false, got {value!r}")
    return value


def settings_from_dict(d: dict[str, Any], *, base: AccountSettings | None = None) -> AccountSettings:
    for k, v in d.items():
        validate_setting(k, v)
    out = replace(base or AccountSettings(), **d)
    if out.announcement == "prompt" and not out.announcement_prompt:
        raise PolicyError("announcement_prompt", "is needed when announcement = prompt: the sound file the PBX plays")
    return out


def override_from_dict(d: dict[str, Any]) -> NumberOverride:
    clean = {k: validate_setting(k, v) for k, v in d.items() if v is not None}
    return NumberOverride(**clean)


@dataclass(frozen=True)
class Account:
    id: str
    settings: AccountSettings = field(default_factory=AccountSettings)
    numbering: NumberingPlan = field(default_factory=NumberingPlan)


@dataclass(frozen=True)
class TransferDecision:
    target: str
    target_class: NumberClass
    stop_recording: bool

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "target_class": self.target_class.value, "stop_recording": self.stop_recording}


@dataclass(frozen=True)
class PolicyDecision:
    """The effective policy for one call."""

    account_id: str
    direction: Direction
    number: str | None  # the account's number the decision was keyed on (E.164, or an extension)
    record: bool
    settings: AccountSettings
    sources: dict[str, str]
    numbering: NumberingPlan

    def classify(self, target: str) -> NumberClass:
        return self.numbering.classify(target)

    def should_stop_on_transfer(self, target: str) -> bool:
        """Stop only on a transfer to an EXTERNAL number with continue_on_external_transfer off."""
        return self.transfer(target).stop_recording

    def transfer(self, target: str) -> TransferDecision:
        cls = self.numbering.classify(target)
        stop = cls is NumberClass.EXTERNAL and not self.settings.continue_on_external_transfer
        return TransferDecision(target, cls, stop)

    def for_consultation(self) -> PolicyDecision:
        """The policy of an agent's consultation during this (customer) call: this call's account,
        number and settings, recorded only when `record_consultation` says so — never resolved
        against the target's number as if the consultation were a customer call of its own."""
        sources = {**self.sources, "record": "consultation"}
        return replace(self, record=self.settings.record_consultation, sources=sources)

    def record_reason(self) -> str:
        """Why the call is (not) recorded, as a sentence for logs: the rule that decided."""
        source = self.sources.get("record", "")
        if source == "consultation":
            on = "true" if self.record else "false"
            return f"it is a consultation by the agent during a customer call (record_consultation = {on})"
        if source == "dialplan":
            return f"the dialplan hook set callrec_record={'force' if self.record else 'never'}"
        if source.startswith("selftest:"):
            return "callrec selftest records only its own test calls"
        if source.startswith("direction:"):
            kind = "internal calls" if self.direction is Direction.INTERNAL else "calls of unknown direction"
            return f"{kind} are recorded only when the dialplan hook forces it"
        setting = f"record_{self.direction.value} = {'true' if self.record else 'false'}"
        if source.startswith("number:"):
            return f"number {self.number} sets {setting}"
        return f"account {self.account_id} sets {setting}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "account": self.account_id,
            "direction": self.direction.value,
            "number": self.number,
            "sources": dict(self.sources),
            "settings": self.settings.as_dict(),
        }


@dataclass(frozen=True)
class PolicySet:
    """All accounts, their numbering plans and the number → (account, override) map."""

    accounts: dict[str, Account] = field(default_factory=dict)
    numbers: dict[str, tuple[str, NumberOverride]] = field(default_factory=dict)
    default_country: str = "US"

    def account_for(self, number: str | None, fallback: str) -> Account:
        if number and number in self.numbers:
            return self.accounts[self.numbers[number][0]]
        return self.accounts.get(fallback) or Account(fallback)

    def normalize(self, raw: str) -> str:
        return normalize_e164(raw, self.default_country)

    def resolve(
        self,
        *,
        direction: Direction | str,
        number: str | None,
        dialplan: DialplanOverride | str | None = None,
        account: str = "main",
    ) -> PolicyDecision:
        """Effective policy for a call.

        `number` is the account's number for this call (inbound: the dialled DID; outbound: the
        caller ID presented to the customer), raw or E.164, or an extension of the account's
        numbering plan (internal calls); anything else raises InvalidNumber. `account` is the
        fallback account when the number is unknown (the PBX node's configured account, or the one
        our dialplan hook set).
        """
        direction = Direction(direction)
        fallback = self.accounts.get(account) or Account(account)
        e164 = policy_number(number, fallback.numbering, self.default_country) if number else None
        acct = self.account_for(e164, account)
        override = NumberOverride()
        if e164 and e164 in self.numbers and self.numbers[e164][0] == acct.id:
            override = self.numbers[e164][1]
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name in SETTING_FIELDS:
            ov = getattr(override, name)
            if ov is not None:
                values[name], sources[name] = ov, f"number:{e164}"
            else:
                values[name], sources[name] = getattr(acct.settings, name), "account"
        effective = AccountSettings(**values)

        if dialplan:
            dp = DialplanOverride(dialplan)
            record, sources["record"] = dp is DialplanOverride.FORCE, "dialplan"
        elif direction is Direction.INBOUND:
            record, sources["record"] = effective.record_inbound, sources["record_inbound"]
        elif direction is Direction.OUTBOUND:
            record, sources["record"] = effective.record_outbound, sources["record_outbound"]
        else:
            record, sources["record"] = False, f"direction:{direction.value}"
        return PolicyDecision(acct.id, direction, e164, record, effective, sources, acct.numbering)


def explain(decision: PolicyDecision, transfer_to: str | None = None) -> dict[str, Any]:
    """The JSON `callrec policy explain` prints and the API embeds."""
    out = decision.as_dict()
    if transfer_to is not None:
        out["transfer"] = decision.transfer(transfer_to).as_dict()
    return out


def explain_call(
    ps: PolicySet,
    *,
    direction: Direction | str,
    number: str | None,
    dialplan: DialplanOverride | str | None = None,
    transfer_to: str | None = None,
    account: str = "main",
) -> dict[str, Any]:
    """`callrec policy explain` and the API's "why": resolve a call and say where every value came
    from, including which numbering pattern classified a transfer target and which setting decided
    whether that transfer stops the recording. Raises InvalidNumber for a number that is not one."""
    decision = ps.resolve(direction=direction, number=number, dialplan=dialplan, account=account)
    out = explain(decision, transfer_to)
    if transfer_to is not None:
        _, pattern = decision.numbering.match(transfer_to)
        out["transfer"]["matched_pattern"] = pattern
        out["transfer"]["decided_by"] = (
            f"continue_on_external_transfer = {str(decision.settings.continue_on_external_transfer).lower()}"
            f" ({decision.sources['continue_on_external_transfer']})"
            if out["transfer"]["target_class"] == NumberClass.EXTERNAL.value
            else f"{out['transfer']['target_class']} targets never stop a recording"
        )
    return out


__all__ = [
    "ANNOUNCEMENTS",
    "CHOICES",
    "EXTERNAL_JOINER",
    "INT_RANGES",
    "SETTING_FIELDS",
    "TEXT_FIELDS",
    "Account",
    "AccountSettings",
    "DialplanOverride",
    "InvalidNumber",
    "NumberOverride",
    "PolicyDecision",
    "PolicyError",
    "PolicySet",
    "TransferDecision",
    "explain",
    "explain_call",
    "override_from_dict",
    "settings_from_dict",
    "validate_setting",
]
