"""Test audio for the simulators: one sine tone per party, 8 kHz 16-bit WAV, silence while masked.

Both simulators (ESL and AMI) write the files a real PBX would write, so the finalize pipeline and
the tests can check by FFT who is on which channel: customer 440 Hz, agent 880 Hz, transfer target
660 Hz. A one-second period of every tone is cached (all three frequencies have a whole number of
cycles per second at 8 kHz), so writing minutes of audio for thousands of simulated calls is a slice
and a copy, not a sin() per sample.

Files are written the way a PBX writes them: the header goes first with zero sizes, frames are
appended, and the sizes are patched on close — a simulated crash leaves the same "size 0" WAV a real
PBX leaves, which the service repairs at start.
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
AMPLITUDE = 8000  # about -12 dBFS: clearly audible, never clips when mixed

CUSTOMER_HZ = 440
AGENT_HZ = 880
TARGET_HZ = 660
PARTY_TONES = {"customer": CUSTOMER_HZ, "agent": AGENT_HZ, "target": TARGET_HZ}


@lru_cache(maxsize=64)
def _period(freq: int) -> np.ndarray:
    """Two seconds of `freq` as int16 (one whole second is a seamless loop; two make slicing easy)."""
    t = np.arange(2 * SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    return (AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype("<i2")


Tone = int | tuple[int, ...] | None  # one party's tone, several parties mixed (a conference), or silence


def tone_samples(freq: Tone, start_sample: int, n: int) -> np.ndarray:
    """`n` samples of `freq` (None or 0 = silence; a tuple = those tones mixed, as a conference bridge
    mixes every other party for one member) continuing phase from absolute sample `start_sample`."""
    if isinstance(freq, tuple):
        tones = [f for f in freq if f]
        if len(tones) <= 1:
            return tone_samples(tones[0] if tones else None, start_sample, n)
        mixed = sum(tone_samples(f, start_sample, n).astype(np.int32) for f in tones)
        return np.asarray(mixed, dtype=np.int32).astype("<i2")  # AMPLITUDE leaves room for a few parties
    if not freq:
        return np.zeros(n, dtype="<i2")
    period = _period(int(freq))
    out = np.empty(n, dtype="<i2")
    pos = 0
    off = start_sample % SAMPLE_RATE
    while pos < n:
        take = min(n - pos, SAMPLE_RATE)
        out[pos : pos + take] = period[off : off + take]
        pos += take
        off = (off + take) % SAMPLE_RATE
    return out


def ms_to_samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


def _header(channels: int, data_bytes: int) -> bytes:
    byte_rate = SAMPLE_RATE * channels * SAMPLE_WIDTH
    riff_size = 36 + data_bytes if data_bytes else 0
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, SAMPLE_RATE, byte_rate, channels * SAMPLE_WIDTH, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class WavWriter:
    """An 8 kHz 16-bit PCM WAV (mono or stereo) written incrementally.

    `write(freqs, ms)` appends `ms` of audio with one tone per channel (None = silence on that channel).
    Phase continues across calls, so consecutive spans join without clicks and FFTs stay clean.
    """

    def __init__(self, path: str | os.PathLike[str], channels: int = 2) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.channels = channels
        self.samples = 0  # frames written so far
        self._f = open(self.path, "wb")  # closed in close()
        self._f.write(_header(channels, 0))
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    @property
    def duration_ms(self) -> float:
        return self.samples * 1000 / SAMPLE_RATE

    def write(self, freqs: tuple[Tone, ...] | list[Tone], ms: float) -> None:
        n = ms_to_samples(ms)
        self.write_samples(freqs, n)

    def write_samples(self, freqs: tuple[Tone, ...] | list[Tone], n: int) -> None:
        if self._f.closed or n <= 0:
            return
        if len(freqs) != self.channels:
            raise ValueError(f"need {self.channels} frequencies, got {len(freqs)}")
        if self.channels == 1:
            data = tone_samples(freqs[0], self.samples, n)
        else:
            data = np.empty(2 * n, dtype="<i2")
            data[0::2] = tone_samples(freqs[0], self.samples, n)
            data[1::2] = tone_samples(freqs[1], self.samples, n)
        self._f.write(data.tobytes())
        self.samples += n

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        """Patch the header sizes and close (what a PBX does when it stops recording)."""
        if self._f.closed:
            return
        data_bytes = self.samples * self.channels * SAMPLE_WIDTH
        self._f.seek(0)
        self._f.write(_header(self.channels, data_bytes))
        self._f.close()

    def abandon(self) -> None:
        """Close WITHOUT patching the header: the "crashed PBX" file with sizes 0."""
        if not self._f.closed:
            self._f.close()


def read_wav(path: str | os.PathLike[str]) -> tuple[int, int, np.ndarray]:
    """(sample_rate, channels, int16 frames shaped (n, channels)). Tolerates zero header sizes."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos = 12
    channels = rate = 0
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            _, channels, rate = struct.unpack("<HHI", raw[body : body + 8])
        elif cid == b"data":
            end = len(raw) if size == 0 else min(len(raw), body + size)
            pcm = np.frombuffer(raw[body:end][: (end - body) // (2 * channels) * 2 * channels], dtype="<i2")
            return rate, channels, pcm.reshape(-1, channels)
        pos = body + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def dominant_hz(samples: np.ndarray, rate: int = SAMPLE_RATE, silence_rms: float = 100.0) -> float | None:
    """The strongest frequency in `samples` (one channel), or None when it is silence."""
    x = samples.astype(np.float64)
    if x.size == 0 or float(np.sqrt(np.mean(x * x))) < silence_rms:
        return None
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spec))])


def channel_timeline(path: str | os.PathLike[str], window_ms: int = 250) -> list[tuple[float | None, ...]]:
    """Dominant frequency per channel per window (rounded to 10 Hz; None = silence)."""
    rate, channels, frames = read_wav(path)
    n = rate * window_ms // 1000
    out = []
    for i in range(0, len(frames) - n + 1, n):
        row = []
        for c in range(channels):
            hz = dominant_hz(frames[i : i + n, c], rate)
            row.append(None if hz is None else round(hz, -1))
        out.append(tuple(row))
    return out


def tones_present(samples: np.ndarray, rate: int = SAMPLE_RATE, silence_rms: float = 100.0) -> frozenset[float]:
    """Every party tone in `samples` (one channel): the spectral peaks at least a third as strong as
    the strongest, rounded to 10 Hz — two parties mixed on one channel give both."""
    x = samples.astype(np.float64)
    if x.size == 0 or float(np.sqrt(np.mean(x * x))) < silence_rms:
        return frozenset()
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    top = float(spec.max())
    peaks = [
        i for i in range(1, len(spec) - 1) if spec[i] >= top / 3 and spec[i] >= spec[i - 1] and spec[i] >= spec[i + 1]
    ]
    return frozenset(round(float(freqs[i]), -1) for i in peaks)


def channel_tones(path: str | os.PathLike[str], window_ms: int = 250) -> list[tuple[frozenset[float], ...]]:
    """The tones present per channel per window (empty = silence): who is heard, mixed or not."""
    rate, channels, frames = read_wav(path)
    n = rate * window_ms // 1000
    return [
        tuple(tones_present(frames[i : i + n, c], rate) for c in range(channels))
        for i in range(0, len(frames) - n + 1, n)
    ]


# ---- tones a PBX plays to one leg (feature-code answers, warnings, announcements) ---------------

Segments = list[tuple[int | None, int]]  # (frequency or None = silence, milliseconds)

# A sound file the PBX plays (an announcement prompt), as the simulators write it: 1 s of 520 Hz.
PROMPT_HZ = 520
PROMPT_SEGMENTS: Segments = [(PROMPT_HZ, 1000)]


def parse_tone_stream(url: str) -> Segments:
    """FreeSWITCH `tone_stream://%(on,off,hz[,hz2]);loops=N` → segments (the first frequency)."""
    body = url.removeprefix("tone_stream://")
    loops = 1
    parts = body.split(";")
    for p in parts[1:]:
        if p.startswith("loops="):
            loops = int(p[6:])
    out: Segments = []
    for spec in parts[0].split("%(")[1:]:
        on, off, *freqs = (int(x) for x in spec.rstrip(")").split(","))
        out += [(freqs[0] if freqs else None, on), (None, off)]
    return [s for s in out * loops if s[1] > 0]


def parse_playtones(arg: str) -> Segments:
    """Asterisk `PlayTones()` list `!hz/ms,!0/ms,…` (played once: every item has `!`) → segments."""
    out: Segments = []
    for item in arg.split(","):
        freq, _, ms = item.strip().lstrip("!").partition("/")
        hz = int(freq.split("+")[0] or 0)
        out.append((hz or None, int(ms or 0)))
    return [s for s in out if s[1] > 0]


class ToneQueue:
    """What the PBX is playing to one leg right now, consumed as simulated time passes. While it
    plays, it replaces what the leg would hear from its bridge partner (a playback on a channel)."""

    def __init__(self) -> None:
        self.items: Segments = []
        self.played: list[int] = []  # every frequency ever played to this leg (for tests)

    def add(self, segments: Segments) -> None:
        self.items.extend(segments)
        self.played.extend(hz for hz, _ in segments if hz)

    @property
    def busy(self) -> bool:
        return bool(self.items)

    def split(self, ms: int, otherwise: int | None) -> Segments:
        """The next `ms` of what the leg hears: queued tones first, then `otherwise`."""
        out: Segments = []
        left = ms
        while left > 0 and self.items:
            hz, rem = self.items[0]
            take = min(rem, left)
            out.append((hz, take))
            left -= take
            if take == rem:
                self.items.pop(0)
            else:
                self.items[0] = (hz, rem - take)
        if left > 0:
            out.append((otherwise, left))
        return out


class Earpieces:
    """Optional per-leg mono WAVs of what each party HEARS (their leg's write stream), so tests can
    prove by FFT that a tone reached the agent's ear and not the customer's."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.writers: dict[str, WavWriter] = {}

    def write(self, leg: str, segments: Segments) -> None:
        w = self.writers.get(leg)
        if w is None:
            w = self.writers[leg] = WavWriter(self.dir / f"{leg.replace('/', '_')}.wav", channels=1)
        for hz, ms in segments:
            w.write((hz,), ms)

    def path(self, leg: str) -> Path:
        w = self.writers[leg]
        w.flush()
        return w.path

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def frame_tones(samples: np.ndarray, frame_ms: int = 20, rate: int = SAMPLE_RATE) -> list[float | None]:
    """Dominant frequency of every `frame_ms` frame of one channel (None = silence), unrounded."""
    n = rate * frame_ms // 1000
    return [dominant_hz(samples[i : i + n], rate) for i in range(0, len(samples) - n + 1, n)]


def tone_amplitude(samples: np.ndarray, hz: float, rate: int = SAMPLE_RATE) -> float:
    """Amplitude of the `hz` component of `samples` (one channel), by a Hann-windowed DFT at exactly
    that frequency: a sine of amplitude A gives ~A; a tone 4+ DFT bins away stays below A/100."""
    x = samples.astype(np.float64)
    if x.size == 0:
        return 0.0
    w = np.hanning(x.size)
    n = np.arange(x.size)
    return float(2 * abs(np.sum(w * x * np.exp(-2j * np.pi * hz * n / rate))) / np.sum(w))


def tone_frames(frames: np.ndarray, hz: float, frame_ms: int = 20, rate: int = SAMPLE_RATE) -> list[tuple[bool, ...]]:
    """Per `frame_ms` frame of (n, channels) samples, per channel: does it carry `hz` at -20 dB of the
    lab's tone amplitude or more? Frame-exact proof that a party is (or is not) in a recording."""
    size = rate * frame_ms // 1000
    channels = frames.shape[1]
    return [
        tuple(tone_amplitude(frames[i : i + size, c], hz, rate) >= AMPLITUDE / 10 for c in range(channels))
        for i in range(0, len(frames) - size + 1, size)
    ]
