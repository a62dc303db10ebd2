"""Feature codes dialled on an agent's phone, secure pause and the consent announcement (pure): what
the controller answers to a code, when a pause ends by itself, and what the customer hears when.

Our dialplan hooks turn `*1` / `*2` / `*3` (admin-changeable) into a `FeatureCode` event on the leg
whose phone dialled it (FreeSWITCH `bind_meta_app` → CUSTOM `callrec::feature`; Asterisk
`applicationmap` Gosub → UserEvent `CallrecFeature`). The decision is made here, from the call's
state and its effective policy, never in a driver and never in the dialplan: the dialplan only asks.
The answer is a tone on the agent's leg only (controller.tones).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.calls import Call
from controller.policy import AccountSettings, PolicyDecision


class Code(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    RECORD = "record"


@dataclass(frozen=True)
class Verdict:
    """What to do with one feature code: `action` (pause | resume | record) when accepted, and why
    not when refused (for the log line; the agent hears the refusal tone)."""

    accepted: bool
    action: str = ""
    reason: str = ""


def _no(reason: str) -> Verdict:
    return Verdict(False, "", reason)


def decide(code: str, call: Call | None, leg: str, decision: PolicyDecision | None) -> Verdict:
    """The controller's answer to `code` dialled on `leg`.

    - Only the agent's leg may use the codes (a customer who dials *1 gets nothing done).
    - pause: the call is recorded, not already paused, and agent_pause_allowed is effective for it.
    - resume: the call's recording is paused (resuming never hides anything, so no setting gates it).
    - record: the call is not recorded because record_inbound/record_outbound said no, and
      agent_record_on_demand is effective for it (a dialplan `never` is final).
    """
    try:
        want = Code(code)
    except ValueError:
        return _no(f"unknown feature code {code!r}")
    if call is None or call.ended:
        return _no("no call is known for this channel")
    if leg != call.agent_leg:
        return _no("only the agent's phone may use the recording codes")
    rec = call.recording
    if want is Code.RECORD:
        if rec is not None and not rec.stopping:
            return _no("the call is already recorded")
        if decision is None:
            return _no("the call's policy is not decided yet")
        if decision.sources.get("record") == "dialplan":
            return _no("the dialplan hook decided this call's recording")
        if not decision.settings.agent_record_on_demand:
            return _no("agent_record_on_demand is off for this call's account or number")
        return Verdict(True, want.value)
    if rec is None or rec.stopping:
        return _no("the call is not being recorded")
    if rec.timeline.transfer_muted:
        return _no("muted until the customer's next party is known (transfer)")
    if want is Code.PAUSE:
        if not rec.decision.settings.agent_pause_allowed:
            return _no("agent pause is not allowed for this call's account or number")
        if rec.timeline.paused:
            return _no("already paused")
        return Verdict(True, want.value)
    if not rec.timeline.paused:
        return _no("not paused")
    return Verdict(True, want.value)


def secure_pause_schedule(pause_max_seconds: int, warning_s: float = 10.0) -> tuple[float, float] | None:
    """(seconds until the warning tone, seconds until the automatic resume) for a pause, or None when
    the pause has no limit (0). A limit shorter than the warning lead warns at once."""
    if pause_max_seconds <= 0:
        return None
    return max(0.0, pause_max_seconds - warning_s), float(pause_max_seconds)


def announcement_for(settings: AccountSettings, why: str) -> str | None:
    """What the customer hears (`beep` | `prompt`) when recording starts (`why` = start), resumes
    after a pause (`resume`: only with announcement_after_resume) or every interval (`periodic`: only
    with announcement = periodic); None = nothing. A prompt announcement without a prompt file (a
    number override setting `prompt` where the account has no file) falls back to the beep."""
    kind = settings.announcement
    if kind == "none" or (why == "resume" and not settings.announcement_after_resume):
        return None
    if why == "periodic" and kind != "periodic":
        return None
    return "prompt" if kind == "prompt" and settings.announcement_prompt else "beep"


__all__ = ["Code", "Verdict", "announcement_for", "decide", "secure_pause_schedule"]
