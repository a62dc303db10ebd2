"""The tones callrec plays on a call (pure data), one definition rendered for each PBX.

Played to the AGENT's leg only, never mixed into what the customer hears (so never into the
recording's customer side): a short high beep for "done", a low triple beep for "refused", a triple
high beep 10 s before a secure pause resumes by itself. The customer hears the announcement beep.
FreeSWITCH gets a `tone_stream://` URL, Asterisk a `PlayTones()` list, and the simulators parse the
same strings, so the FFT tests check the frequencies a real PBX plays.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tone:
    """`loops` beeps of `hz` lasting `on_ms`, each followed by `off_ms` of silence."""

    hz: int
    on_ms: int
    off_ms: int
    loops: int = 1

    @property
    def duration_ms(self) -> int:
        return self.loops * (self.on_ms + self.off_ms)

    def freeswitch(self) -> str:
        """A FreeSWITCH tone_stream URL (`uuid_broadcast <leg> <url> aleg`)."""
        loops = f";loops={self.loops}" if self.loops > 1 else ""
        return f"tone_stream://%({self.on_ms},{self.off_ms},{self.hz}){loops}"

    def asterisk(self) -> str:
        """Asterisk PlayTones() argument: `!` = play the list once, no repeat."""
        one = f"!{self.hz}/{self.on_ms},!0/{self.off_ms}"
        return ",".join([one] * self.loops)


# Frequencies away from the lab's party tones (customer 440, agent 880, target 660 Hz), so FFT tells
# them apart in 20 ms frames (50 Hz bins at 8 kHz).
TONES: dict[str, Tone] = {
    "confirm": Tone(1400, 200, 50),
    "refuse": Tone(300, 150, 100, loops=3),
    "warning": Tone(1800, 150, 150, loops=3),
    "announce": Tone(1000, 400, 100),
}


__all__ = ["TONES", "Tone"]
