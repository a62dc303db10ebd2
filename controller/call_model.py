"""The call state machine's data (pure): legs, calls, a recording's timeline, and the actions the
state machine hands the recorder (`controller.calls` explains the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.events import Direction
from controller.numbering import dial_string
from controller.policy import PolicyDecision


@dataclass
class Leg:
    id: str
    call_id: str
    caller: str = ""
    callee: str = ""
    context: str = ""
    channel_name: str = ""
    pbx_direction: str = ""
    originator: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    presented: str = ""  # a dialled leg: the calling number its party was shown (ChannelCreated.presented)
    answered: bool = False
    bridged_to: str | None = None
    hung_up: bool = False
    held: bool = False  # put on hold (HoldChanged) and not taken off it yet
    peers: set[str] = field(default_factory=set)  # every leg it shares a bridge with (multi-party bridges)

    @property
    def party_number(self) -> str:
        """The number of the phone/party on this leg. A leg the PBX originated (to a registered phone
        it shows the contact user, `2001-0x…`) is named by `dialed_user`; a leg that called in is named
        by its caller ID (FreeSWITCH also sets `dialed_user` on the calling leg once it bridges)."""
        if self.pbx_direction == "outbound" or self.originator:
            return self.variables.get("dialed_user") or dial_string(self.callee)
        return dial_string(self.caller)


TRANSFER_MUTE = "transfer_mute"  # `kind` of a pause the state machine opened at an unannounced transfer
# `reason` of a transfer mute opened when the agent dials a consultation to a party the rule forbids
EXTERNAL_CONSULTATION = "external_consultation"
# `reason` of a transfer mute opened when an external party joins a conference (external_joiner = mute)
EXTERNAL_JOINER = "external_joiner"
HANGUP_MUTE_MS = 20
"""A transfer mute the hang-up closes within one audio frame is the hang-up itself, not a gap: Asterisk
sends BridgeLeave before the hang-up request when a channel is hung up by AMI/CTI."""


def user_pauses(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The pauses someone asked for (agent, supervisor), without the state machine's transfer mutes."""
    return [p for p in timeline.get("pauses") or [] if p.get("kind") != TRANSFER_MUTE]


@dataclass
class Timeline:
    """A recording's timeline; offsets in ms from `start_wall` (the contract in the common brief)."""

    start_wall: float
    segments: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    stop: dict[str, Any] | None = None
    # the agent's consultations meanwhile: at_ms/end_ms, agent, target, target_class, outcome, recorded
    consultations: list[dict[str, Any]] = field(default_factory=list)
    # a conference (three-way call): who joined the customer and the agent, and when they left
    conference: list[dict[str, Any]] = field(default_factory=list)
    # consent announcements the customer heard: {"at_ms", "kind" (beep|prompt), "why" (start|resume|
    # periodic)}; in the dict (and so the manifest) only once one played
    announcements: list[dict[str, Any]] = field(default_factory=list)

    def offset(self, wall: float) -> int:
        return max(0, round((wall - self.start_wall) * 1000))

    def open_segment(self, party: str, cls: str, wall: float) -> None:
        self.close_segment(wall)
        self.segments.append({"party": party, "class": cls, "start_ms": self.offset(wall), "end_ms": None})

    def close_segment(self, wall: float) -> None:
        if self.segments and self.segments[-1]["end_ms"] is None:
            self.segments[-1]["end_ms"] = self.offset(wall)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1]["end_ms"] is None

    @property
    def transfer_muted(self) -> bool:
        """Muted by the state machine until the customer's next party is known (not a user's pause)."""
        return self.paused and self.pauses[-1].get("kind") == TRANSFER_MUTE

    def transfer_at(self, wall: float) -> int:
        """Where a transfer sits in the file: when the customer left the agent if a transfer mute
        opened then (the file is silent from there), else now — also after a mute that began with an
        external consultation (the transfer is its completion, not its dial)."""
        if self.transfer_muted and self.pauses[-1].get("reason") != EXTERNAL_CONSULTATION:
            return int(self.pauses[-1]["start_ms"])
        return self.offset(wall)

    def open_transfer_mute(self, wall: float, reason: str) -> dict[str, Any]:
        """A pause entry (silence, timeline kept) marked as a transfer mute with why it began."""
        entry = {
            "start_ms": self.offset(wall),
            "end_ms": None,
            "by": "transfer",
            "kind": TRANSFER_MUTE,
            "reason": reason,
        }
        self.pauses.append(entry)
        return entry

    def close_transfer_mute(self, wall: float, outcome: str, party: str = "", party_class: str = "") -> dict[str, Any]:
        """End the open transfer mute: `outcome` unmuted | stopped | call_ended, and who came next."""
        entry = self.pauses[-1]
        entry["end_ms"] = self.offset(wall)
        entry["outcome"] = outcome
        if outcome == "call_ended" and entry["end_ms"] - entry["start_ms"] < HANGUP_MUTE_MS:
            self.pauses.pop()  # the customer left the bridge by hanging up: no gap in the file to show
        if party:
            entry["next_party"], entry["next_class"] = party, party_class
        return entry

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "segments": [dict(s) for s in self.segments],
            "pauses": [dict(p) for p in self.pauses],
            "transfers": [dict(t) for t in self.transfers],
            "stop": dict(self.stop) if self.stop else None,
            "consultations": [dict(c) for c in self.consultations],
            "conference": [dict(c) for c in self.conference],
        }
        if self.announcements:
            out["announcements"] = [dict(a) for a in self.announcements]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], start_wall: float) -> Timeline:
        return cls(
            start_wall,
            [dict(s) for s in d.get("segments") or []],
            [dict(p) for p in d.get("pauses") or []],
            [dict(t) for t in d.get("transfers") or []],
            dict(d["stop"]) if d.get("stop") else None,
            [dict(c) for c in d.get("consultations") or []],
            [dict(c) for c in d.get("conference") or []],
            [dict(a) for a in d.get("announcements") or []],
        )


@dataclass
class ActiveRecording:
    id: str
    decision: PolicyDecision
    timeline: Timeline
    stopping: bool = False


@dataclass
class Call:
    """One customer interaction, keyed by our own id; `customer_leg` is known once classified."""

    id: str
    pbx: str
    first_leg: str
    started_wall: float
    customer_leg: str | None = None
    agent_leg: str | None = None
    direction: Direction = Direction.UNKNOWN
    account: str = ""
    account_number: str = ""
    customer_number: str = ""
    agent: str = ""
    agents: list[str] = field(default_factory=list)
    ring_group: str = ""
    record_override: str | None = None
    answered_wall: float | None = None
    decided: bool = False
    recording: ActiveRecording | None = None
    ended: bool = False
    end_reason: str = ""
    pending_transfer: dict[str, str] | None = None
    hint: dict[str, str] = field(default_factory=dict)
    # The customer left its bridge and its next party is not classified yet: nothing may unmask the
    # recording until it is (a user's pause open at that moment may not be resumed either).
    next_party_unknown: bool = False
    # A consultation call (the agent's phone called the target while this call's customer waited):
    # the customer call it belongs to, and its entry in that call's timeline (updated when it ends).
    consultation_of: str | None = None
    consultation_mark: dict[str, Any] | None = None
    # On a customer call: its consultation in progress, inside this PBX call (Atxfer / att_xfer shape)
    # or a call of its own (phone shape), until it ends one way or the other.
    open_consultation: dict[str, Any] | None = None
    consult_legs: set[str] = field(default_factory=set)  # legs of the in-call consultation still up
    last_consultation: dict[str, Any] | None = None  # its timeline entry (a three-way turns it into a join)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # conference joiners by leg: their entry
    # The agent consults a party the rule forbids to record (EXTERNAL, continue_on_external_transfer off):
    # the recording stays silent until the consultation is over (see ConsultationTracking).
    external_consultation: bool = False

    @property
    def silence_held(self) -> bool:
        """Nothing may unmask the recording now (not even a user's resume): the customer's next party
        is not known yet, an external consultation may end with the customer bridged to that party, or
        an external party the recording is muted for is in the conference."""
        return self.next_party_unknown or self.external_consultation or self.muted_by_joiner

    @property
    def muted_by_joiner(self) -> bool:
        """An external party the recording is muted for (external_joiner = mute) is in the conference."""
        return any(m.get("muted_recording") for m in self.members.values())


# ---- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decide:
    """Customer and agent are bridged for the first time: resolve policy, maybe start recording."""

    call: Call


@dataclass(frozen=True)
class Stop:
    call: Call
    reason: str  # hangup | external_transfer | pbx | link_lost


@dataclass(frozen=True)
class Changed:
    """The recording's timeline changed (`kind`: segment | transfer); journal it."""

    call: Call
    kind: str
    detail: dict[str, Any]
    wall: float


@dataclass(frozen=True)
class Ended:
    call: Call


@dataclass(frozen=True)
class Mute:
    """Mask the recording NOW: the customer left its bridge and whoever comes next is not classified
    yet. `entry` is the timeline's open transfer-mute pause."""

    call: Call
    entry: dict[str, Any]
    wall: float


@dataclass(frozen=True)
class Unmute:
    """Lift a transfer mute: the customer's next party may be recorded. `entry` is the closed pause."""

    call: Call
    entry: dict[str, Any]
    wall: float


Action = Decide | Stop | Changed | Ended | Mute | Unmute
