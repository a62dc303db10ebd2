"""Normalized, PBX-neutral events.

Drivers translate ESL / AMI traffic into these small frozen dataclasses and nothing else; the pure
call state machine (`controller.calls`) and the recorder consume them. Legs are identified by the
PBX's own channel id (FreeSWITCH Unique-ID, Asterisk Uniqueid), never by A/B position, because the
customer is the A leg on inbound calls, the B leg on outbound calls and may be either after a
transfer.

Every event carries `pbx` (the configured node name) and `ts`, a monotonic timestamp in seconds
(`time.monotonic()` when the driver received the frame) so timelines are immune to wall-clock jumps.
`wall` is the wall-clock time (epoch seconds) when known, for the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class TransferKind(StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"


@dataclass(frozen=True, slots=True)
class Event:
    pbx: str
    ts: float
    wall: float


@dataclass(frozen=True, slots=True)
class ChannelCreated(Event):
    """A new leg exists on the PBX (CHANNEL_CREATE / Newchannel).

    `call_id` groups legs of one call as the PBX sees it (FreeSWITCH Channel-Call-UUID, Asterisk
    Linkedid). `caller` / `callee` are the numbers as the PBX presents them on this leg; `context` is
    the dialplan context the leg entered (inbound trunk contexts make a call inbound). `variables`
    holds the channel variables we care about (callrec_* set by our hooks, dialed_user, ...).
    """

    leg: str
    call_id: str
    caller: str = ""
    callee: str = ""
    context: str = ""
    channel_name: str = ""
    originator: str | None = None  # leg id that originated this one, when the PBX says so
    pbx_direction: str = ""  # the PBX's own view: FreeSWITCH Call-Direction inbound|outbound
    variables: dict[str, str] = field(default_factory=dict)
    # On a leg the PBX dialled: the calling number it presented to that party (Asterisk keeps it in the
    # dialled channel's connected line; that channel's own caller id is the dialled party's number).
    # Empty when the leg's `caller` already is that number (FreeSWITCH's B leg).
    presented: str = ""


@dataclass(frozen=True, slots=True)
class ChannelAnswered(Event):
    leg: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyHint(Event):
    """Variables our dialplan hook set (callrec::policy CUSTOM event / UserEvent CallrecPolicy).

    Keys are lower-case without prefix: `account`, `account_number`, `direction`, `record`
    (force|never), `agent`, `ring_group`.
    """

    leg: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bridged(Event):
    """Two legs now exchange audio. `agent` is the agent extension when the driver can tell it
    (FreeSWITCH variable_dialed_user / presence_id, Asterisk CallerIDNum of a SIP/PJSIP peer)."""

    leg_a: str
    leg_b: str
    number_a: str = ""
    number_b: str = ""
    # how many legs share the bridge now: more than 2 is a multi-party bridge (a three-way call or a
    # conference), where a new member JOINS the parties already there instead of replacing one
    size: int = 2


@dataclass(frozen=True, slots=True)
class Unbridged(Event):
    """Two legs stopped exchanging audio. Two facts the PBX states at that moment, so the state
    machine can tell "the customer left its bridge and someone new may come" from the end of a call
    or a channel swap: `hanging_up` = the one of the two legs the PBX already hangs up (FreeSWITCH
    Answer-State hangup, an Asterisk HangupRequest seen), `moving` = the PBX is moving the leg to
    another bridge with the same party (Asterisk Local channel optimization)."""

    leg_a: str
    leg_b: str
    hanging_up: str = ""
    moving: bool = False


@dataclass(frozen=True, slots=True)
class Transferred(Event):
    """The PBX told us explicitly about a transfer (Asterisk BlindTransfer / AttendedTransfer, a
    FreeSWITCH transfer_history). `leg` is the leg that stays (usually the customer), `target` the
    number it is being transferred to when known. Transfers the PBX does not announce (SIP REFER on
    FreeSWITCH) are still detected by the state machine from the next bridge of the customer leg."""

    leg: str
    kind: TransferKind
    target: str = ""
    transferer: str = ""  # leg that initiated the transfer, when known


@dataclass(frozen=True, slots=True)
class HoldChanged(Event):
    """A leg was put on hold or taken off it (Asterisk `Hold`/`Unhold`, FreeSWITCH `CHANNEL_HOLD`/
    `CHANNEL_UNHOLD`: the phone's re-INVITE sendonly / sendrecv, or the PBX's own hold). On the agent's
    leg of a customer call it is what makes the agent's next call a consultation of that call (fixtures
    S8c, FreeSWITCH S4) rather than an unrelated call of the same extension."""

    leg: str
    held: bool = True


@dataclass(frozen=True, slots=True)
class ChannelHungUp(Event):
    leg: str
    cause: str = ""
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingStarted(Event):
    """PBX confirmation (RECORD_START / MixMonitorStart)."""

    leg: str
    path: str
    recording_id: str = ""  # our id, when it came back as a recording variable


@dataclass(frozen=True, slots=True)
class RecordingPaused(Event):
    leg: str
    recording_id: str = ""


@dataclass(frozen=True, slots=True)
class RecordingResumed(Event):
    leg: str
    recording_id: str = ""


@dataclass(frozen=True, slots=True)
class RecordingStopped(Event):
    """PBX confirmation that it closed the file (RECORD_STOP / MixMonitorStop)."""

    leg: str
    path: str = ""
    cause: str = ""
    recording_id: str = ""


@dataclass(frozen=True, slots=True)
class FeatureCode(Event):
    """Someone dialled one of our feature codes on their phone (FreeSWITCH: CUSTOM callrec::feature
    fired by the hook's bind_meta_app; Asterisk: UserEvent CallrecFeature from the applicationmap
    Gosub). `leg` is the channel whose phone dialled it, `code` what the hook asks (pause | resume |
    record; anything else is refused). The recorder decides (controller.features) and answers with a
    tone on that leg only."""

    leg: str
    code: str


@dataclass(frozen=True, slots=True)
class LinkUp(Event):
    """The driver (re)connected and authenticated; a `Resync` follows."""


@dataclass(frozen=True, slots=True)
class LinkDown(Event):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """One channel as listed by `show channels as json` / CoreShowChannels."""

    leg: str
    call_id: str
    caller: str = ""
    callee: str = ""
    context: str = ""
    answered: bool = False
    bridged_to: str | None = None
    channel_name: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    recording_paths: tuple[str, ...] = ()  # files the PBX is writing on this leg right now
    presented: str = ""  # as ChannelCreated.presented


@dataclass(frozen=True, slots=True)
class Resync(Event):
    """Snapshot of every live channel after a (re)connect, so a restart loses nothing: the recorder
    adopts recordings still running and closes the ones whose legs are gone."""

    channels: tuple[LiveChannel, ...] = ()


AnyEvent = (
    ChannelCreated
    | ChannelAnswered
    | PolicyHint
    | Bridged
    | Unbridged
    | Transferred
    | HoldChanged
    | ChannelHungUp
    | RecordingStarted
    | RecordingPaused
    | RecordingResumed
    | RecordingStopped
    | FeatureCode
    | LinkUp
    | LinkDown
    | Resync
)
