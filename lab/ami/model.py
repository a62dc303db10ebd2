"""The call state an Asterisk holds: channels (with their snapshot headers, in Asterisk's order, and
the configured `ChanVariable:` lines) and bridges. Plain data; the events that change it are sent by
`lab.ami.pbx`."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.ami.media import SimMixMonitor
from lab.tones import Segments, ToneQueue

DEFAULT_CHANNELVARS = (
    "CALLREC_ACCOUNT",
    "CALLREC_ACCOUNT_NUMBER",
    "CALLREC_DIRECTION",
    "CALLREC_RECORD",
    "CALLREC_RECORDING",
    "CALLREC_FILES",
    "CALLREC_MIXMON",
)
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    caller: str
    caller_name: str
    context: str
    exten: str
    tone: int | None
    state: int = 0
    connected: str = ""
    connected_name: str = ""
    priority: int = 1
    variables: dict[str, str] = field(default_factory=dict)
    bridge: SimBridge | None = None
    held: bool = False
    monitors: list[SimMixMonitor] = field(default_factory=list)
    playing: ToneQueue = field(default_factory=ToneQueue)  # PlayTones run on this channel (a Gosub)
    alive: bool = True

    def snapshot(self, channelvars: tuple[str, ...], prefix: str = "") -> list[tuple[str, str]]:
        h = [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.caller or "<unknown>"),
            ("CallerIDName", self.caller_name or "<unknown>"),
            ("ConnectedLineNum", self.connected or "<unknown>"),
            ("ConnectedLineName", self.connected_name or "<unknown>"),
            ("Language", "en"),
            ("AccountCode", ""),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]
        h += [("ChanVariable", f"{v}={self.variables.get(v, '')}") for v in channelvars]
        return [(prefix + k, v) for k, v in h]

    def audible(self) -> tuple[int | None, int | None]:
        """(what this channel sends, what is sent to it): its own party's tone once answered; the one
        other party of its bridge unless either side is on hold (hold music and ringback are written
        as silence, so a file's only tones are the parties')."""
        own = self.tone if self.state == 6 else None
        far = None
        if not self.held and self.bridge is not None:
            others = [m for m in self.bridge.members if m is not self and not m.held and m.tone]
            if len(others) == 1:
                far = others[0].tone
            elif len(others) > 1:  # a multi-party bridge mixes every other member for this one
                far = tuple(sorted({m.tone for m in others if m.tone}))  # type: ignore[assignment]
        return own, far

    def advance_monitors(self, ms: float) -> Segments:
        """`ms` of audio; returns what the channel's party heard. A tone the channel plays (PlayTones
        in a feature Gosub) is written TO this channel: its party hears it, a MixMonitor on it has it
        in t(), a MixMonitor on its bridge partner does not."""
        own, far = self.audible()
        heard = self.playing.split(round(ms), far)
        for m in self.monitors:
            for hz, part in heard:
                m.advance(own, hz, part)
        return heard


@dataclass
class SimBridge:
    uniqueid: str
    members: list[SimChannel] = field(default_factory=list)

    def snapshot(self, prefix: str = "Bridge") -> list[tuple[str, str]]:
        p = prefix
        return [
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Type", "basic"),
            (f"{p}Technology", "simple_bridge"),
            (f"{p}Creator", "<unknown>"),
            (f"{p}Name", "<unknown>"),
            (f"{p}NumChannels", str(len(self.members))),
            (f"{p}VideoSourceMode", "none"),
        ]
