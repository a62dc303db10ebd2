"""`uuid_record` files: a real 8 kHz stereo WAV per recording (left = the tapped leg's own party,
right = its bridge partner; masked = silence). Who is audible is the call model's business; this
only writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.tones import WavWriter


@dataclass
class Recording:
    path: str
    writer: WavWriter
    masked: bool = False
    mask_changes: int = 0  # mask/unmask commands that changed `masked` (the simulator's view of the controller)
    variables: dict[str, str] = field(default_factory=dict)
