"""The narrow interface between the recorder and a PBX link.

A driver translates: PBX frames in → `controller.events` out; recorder commands in → PBX actions out.
It never decides whether to record, which leg is the customer, or what a transfer means.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from controller.events import AnyEvent, LiveChannel
from controller.tones import Tone


class PbxCommandError(RuntimeError):
    """The PBX refused or failed a command (its reply is in the message)."""


class PbxUnavailable(ConnectionError):
    """No live link to the PBX right now; the recorder retries after the next LinkUp/Resync."""


class StartInDoubt(PbxUnavailable):
    """The link died while a start command was on its way or unanswered: the PBX may be recording
    into `files` or not. The recorder journals those files and, once the link is back and the call
    still up, starts again with `RecordingRequest.files` set, which the driver must make idempotent."""

    def __init__(self, message: str, files: SpoolFiles) -> None:
        super().__init__(message)
        self.files = files


@dataclass(frozen=True, slots=True)
class RecordingRequest:
    """Start recording `customer_leg` into the spool.

    The driver must lay the audio out as customer LEFT / agent RIGHT (FreeSWITCH: RECORD_STEREO on
    the customer leg; Asterisk: r()/t() leg files joined at finalize) and tag the recording with
    `recording_id` so confirmations and a resync after restart can be matched back.
    """

    recording_id: str
    call_id: str
    customer_leg: str
    spool_dir: str
    tags: dict[str, str] = field(default_factory=dict)
    # Set on a start repeated after StartInDoubt: the files the first attempt used. The driver records
    # into exactly these, or reuses the recording the PBX already runs, never a second one.
    files: SpoolFiles | None = None


@dataclass(frozen=True, slots=True)
class SpoolFiles:
    """Where the PBX writes the audio. Exactly one layout is used:
    `stereo` (FreeSWITCH: one stereo WAV, customer left) or `rx` + `tx` (Asterisk MixMonitor r()/t()
    legs on the customer channel: rx = audio READ from the customer = the customer's voice, tx = audio
    written to the customer = the agent; see the S1 capture, where S1-rx.wav is the 440 Hz customer)."""

    stereo: str | None = None
    rx: str | None = None
    tx: str | None = None

    def paths(self) -> list[str]:
        return [p for p in (self.stereo, self.rx, self.tx) if p]

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("stereo", self.stereo), ("rx", self.rx), ("tx", self.tx)) if v}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> SpoolFiles:
        return cls(stereo=d.get("stereo"), rx=d.get("rx"), tx=d.get("tx"))


class PbxDriver(Protocol):
    name: str  # the configured node name, copied into every event's `pbx`
    kind: str  # "freeswitch" | "asterisk"

    def events(self) -> AsyncIterator[AnyEvent]:
        """Normalized events, forever; LinkUp + Resync after each (re)connect."""
        ...

    async def start(self) -> None:
        """Connect (and keep reconnecting with capped exponential backoff) in the background."""
        ...

    async def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    async def start_recording(self, req: RecordingRequest) -> SpoolFiles: ...

    async def pause_recording(self, leg: str, files: SpoolFiles) -> None: ...

    async def resume_recording(self, leg: str, files: SpoolFiles) -> None: ...

    async def stop_recording(self, leg: str, files: SpoolFiles) -> None: ...

    async def play_tone(self, leg: str, tone: Tone) -> None:
        """Play `tone` to that leg's party only (never to its bridge partner, never into a recording of
        the partner's leg): the secure-pause warning to the agent, the announcement to the customer."""
        ...

    async def play_prompt(self, leg: str, prompt: str) -> None:
        """Play a sound file (the account's announcement prompt, as the PBX names it) to that leg only."""
        ...

    async def feature_reply(self, leg: str, accepted: bool) -> None:
        """Answer a feature code dialled on `leg` (FeatureCode): the confirmation or the refusal tone,
        to that leg only, however its PBX's hook waits for the answer."""
        ...

    async def live_channels(self) -> list[LiveChannel]: ...

    def drop_link(self) -> None:
        """Cut the control connection; the driver reconnects and sends LinkUp + Resync again."""
        ...
