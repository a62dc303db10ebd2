"""MixMonitor's files: `r()` gets what the recorded channel SENDS (its own party), `t()` what is SENT
TO it. Who is audible at a moment is the call model's business (`SimChannel.audible`); this only
writes it, as real 8 kHz mono WAVs, silence while muted."""

from __future__ import annotations

from dataclasses import dataclass

from lab.tones import WavWriter


@dataclass
class SimMixMonitor:
    id: str
    read: WavWriter | None  # r(): what the channel sends
    write: WavWriter | None  # t(): what is sent to the channel
    mute_read: bool = False
    mute_write: bool = False
    mute_changes: int = 0  # MixMonitorMute actions that changed a flag (the simulator's view of the controller)

    def advance(self, own: int | None, far: int | None, ms: float) -> None:
        """`ms` of audio: `own` / `far` are the tones heard (None = silence)."""
        if self.read:
            self.read.write((None if self.mute_read else own,), ms)
        if self.write:
            self.write.write((None if self.mute_write else far,), ms)

    def close(self) -> None:
        for w in (self.read, self.write):
            if w:
                w.close()
