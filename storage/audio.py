"""Spool audio preparation: WAV header repair, Asterisk leg join (customer LEFT), mono mix.

Everything streams in fixed-size chunks so an hour-long call costs the same memory as a minute. Joining
two legs of one format into stereo is a numpy byte interleave; conversions (legs of different
rates/widths) and mono mixes are pydub's (audioop underneath); the RIFF header parsing is
ours because no library repairs a header that lies about its sizes — they all trust it.
"""

from __future__ import annotations

import os
import struct
import warnings
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

with warnings.catch_warnings():  # pydub warns about ffmpeg at import; we only use its PCM helpers
    warnings.simplefilter("ignore", RuntimeWarning)
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop (stdlib until 3.13; pydub pulls audioop-lts after)
    from pydub import AudioSegment

CHUNK_FRAMES = 64 * 1024  # ~8 s at 8 kHz; 256 KiB of stereo 16-bit per chunk
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)

# Asterisk MixMonitor r()/t() on the customer channel: r() is the audio READ from that channel (what the
# customer says), t() the audio written TO it (the agent). Verified in the real captures
# (S1/S7/S8: *-rx.wav = 440 Hz customer, *-tx.wav = 880 Hz agent).
CUSTOMER_LEG = "rx"
AGENT_LEG = "tx"


class AudioError(ValueError):
    """The spool file is not usable audio (not a WAV, no fmt chunk, unsupported encoding)."""


@dataclass(frozen=True)
class WavInfo:
    channels: int
    rate: int
    sample_width: int
    data_offset: int
    data_size: int
    repaired: bool = False

    @property
    def frames(self) -> int:
        return self.data_size // (self.channels * self.sample_width)

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.rate if self.rate else 0


def _plausible_chunk(tail: bytes, remaining: int) -> bool:
    if len(tail) < 8:
        return False
    cid, size = tail[:4], struct.unpack("<I", tail[4:8])[0]
    return all(32 <= b < 127 for b in cid) and size + 8 <= remaining


def inspect_wav(path: str | Path, *, repair: bool = False) -> WavInfo:
    """Parse the RIFF header; with `repair`, rewrite RIFF/data sizes that are 0, 0xFFFFFFFF or wrong.

    A PBX or host crash leaves the sizes it meant to patch at close as 0 (or a stale value); the audio
    bytes after the header are intact, so the true sizes follow from the file length.
    """
    p = Path(path)
    file_size = p.stat().st_size
    with open(p, "r+b" if repair else "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioError(f"{p.name}: not a RIFF/WAVE file")
        riff_size = struct.unpack("<I", head[4:8])[0]
        pos, fmt = 12, None
        while True:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                raise AudioError(f"{p.name}: no data chunk")
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:8])[0]
            if cid == b"fmt ":
                body = f.read(16)
                if len(body) < 16:
                    raise AudioError(f"{p.name}: truncated fmt chunk")
                tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body)
                if tag not in (1, 0xFFFE) or bits not in (8, 16, 24, 32) or channels < 1:
                    raise AudioError(f"{p.name}: unsupported WAV encoding (format {tag}, {bits} bit)")
                fmt = (channels, rate, bits // 8, block_align or channels * bits // 8)
            elif cid == b"data":
                if fmt is None:
                    raise AudioError(f"{p.name}: data chunk before fmt chunk")
                data_offset = pos + 8
                actual = file_size - data_offset
                actual -= actual % fmt[3]  # drop a torn last frame
                declared = size
                wrong = declared in _UNKNOWN_SIZES or declared > actual
                if not wrong and declared < actual:
                    f.seek(data_offset + declared + (declared & 1))
                    wrong = not _plausible_chunk(f.read(8), file_size - (data_offset + declared))
                data_size = actual if wrong else declared
                fix = wrong or riff_size in _UNKNOWN_SIZES or riff_size > file_size - 8
                if fix and repair:
                    f.seek(4)
                    f.write(struct.pack("<I", min(file_size - 8, 0xFFFFFFFF)))
                    f.seek(pos + 4)
                    f.write(struct.pack("<I", data_size))
                    f.flush()
                    os.fsync(f.fileno())
                return WavInfo(fmt[0], fmt[1], fmt[2], data_offset, data_size, repaired=fix and repair)
            if size in _UNKNOWN_SIZES and cid != b"data":
                raise AudioError(f"{p.name}: chunk {cid!r} has an unknown size")
            pos += 8 + size + (size & 1)


def repair_wav(path: str | Path) -> WavInfo:
    """Fix the header sizes in place (idempotent) and return the corrected info."""
    return inspect_wav(path, repair=True)


def _read_frames(path: Path, info: WavInfo, frames: int) -> Iterator[bytes]:
    """Raw PCM of the data chunk in chunks of `frames` frames (header sizes must be correct)."""
    block = info.channels * info.sample_width
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        left = info.data_size
        while left > 0:
            buf = f.read(min(left, frames * block))
            if not buf:
                break
            left -= len(buf)
            yield buf


def _segment(raw: bytes, info: WavInfo) -> AudioSegment:
    return AudioSegment(data=raw, sample_width=info.sample_width, frame_rate=info.rate, channels=info.channels)


class _WavOut:
    """A WAV written to `<path>.part`, fsynced and renamed into place on success (crash leaves no half file)."""

    def __init__(self, path: Path, channels: int, rate: int, sample_width: int) -> None:
        self.path, self.part = path, path.with_name(path.name + ".part")
        self._w = wave.open(str(self.part), "wb")
        self._w.setnchannels(channels)
        self._w.setframerate(rate)
        self._w.setsampwidth(sample_width)

    def write(self, raw: bytes) -> None:
        self._w.writeframesraw(raw)

    def commit(self) -> None:
        self._w.close()  # patches the header sizes
        with open(self.part, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.part, self.path)

    def abort(self) -> None:
        try:
            self._w.close()
        finally:
            self.part.unlink(missing_ok=True)


def _mono_leg(path: Path | None) -> tuple[Path | None, WavInfo | None]:
    if path is None:
        return None, None
    info = repair_wav(path)
    if info.channels != 1:
        raise AudioError(f"{path.name}: an Asterisk leg must be mono, found {info.channels} channels")
    return path, info


def _joined_data(
    cpath: Path | None, cinfo: WavInfo | None, apath: Path | None, ainfo: WavInfo | None, stereo: bool
) -> Iterator[bytes]:
    """PCM of the joined legs, chunk by chunk (customer LEFT, agent RIGHT; or their mono mix)."""
    rate = max(i.rate for i in (cinfo, ainfo) if i)
    width = max(i.sample_width for i in (cinfo, ainfo) if i)
    cit = _read_frames(cpath, cinfo, CHUNK_FRAMES) if cpath and cinfo else iter(())
    ait = _read_frames(apath, ainfo, CHUNK_FRAMES) if apath and ainfo else iter(())
    if stereo and all((i.rate, i.sample_width) == (rate, width) for i in (cinfo, ainfo) if i):
        yield from _interleaved(cit, ait, width)  # the common case: one MixMonitor, one format
        return
    while True:
        craw, araw = next(cit, None), next(ait, None)
        if craw is None and araw is None:
            return
        cseg = _segment(craw, cinfo) if craw is not None and cinfo else None
        aseg = _segment(araw, ainfo) if araw is not None and ainfo else None
        cseg = cseg.set_frame_rate(rate).set_sample_width(width) if cseg is not None else None
        aseg = aseg.set_frame_rate(rate).set_sample_width(width) if aseg is not None else None
        n = max(int(s.frame_count()) for s in (cseg, aseg) if s is not None)
        cseg = _pad(cseg, n, rate, width)
        aseg = _pad(aseg, n, rate, width)
        yield AudioSegment.from_mono_audiosegments(cseg, aseg).raw_data if stereo else _mix(cseg, aseg)


def _interleaved(cit: Iterator[bytes], ait: Iterator[bytes], width: int) -> Iterator[bytes]:
    """Two mono legs of one format → stereo frames (customer LEFT, agent RIGHT), chunk by chunk.

    Interleaving is a byte copy, whatever the sample width: frame i of the output is sample i of the
    customer then sample i of the agent. numpy does it in one strided copy per chunk instead of
    pydub's per-sample work; a leg that ends first is padded with zero bytes, exactly as before.
    """
    # one sample = one element where numpy has an integer of that size; 24-bit samples = 3 bytes
    dtype, per = (np.dtype(f"<u{width}"), 1) if width in (1, 2, 4, 8) else (np.dtype(np.uint8), width)
    while True:
        craw, araw = next(cit, None), next(ait, None)
        if craw is None and araw is None:
            return
        n = max(len(x) for x in (craw, araw) if x is not None) // width
        out = np.empty((n, 2, per), dtype=dtype)
        for side, raw in ((0, craw), (1, araw)):
            have = 0
            if raw:
                have = len(raw) // width
                out[:have, side, :] = np.frombuffer(raw, dtype=dtype, count=have * per).reshape(have, per)
            out[have:, side, :] = 0
        yield out.tobytes()


def wav_header(channels: int, rate: int, sample_width: int, data_size: int) -> bytes:
    """The canonical 44-byte PCM WAV header."""
    block = channels * sample_width
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block,
        block,
        sample_width * 8,
        b"data",
        data_size,
    )


@dataclass(frozen=True)
class JoinedWav:
    """The WAV that joining two Asterisk legs gives, produced on the fly (never written to disk).

    Only when both legs share rate and sample width (always, for one MixMonitor): then its size is
    known up front and the bytes are a pure function of the leg files, so a crash just recomputes it.
    """

    customer: Path | None
    cinfo: WavInfo | None
    agent: Path | None
    ainfo: WavInfo | None
    stereo: bool

    @property
    def info(self) -> WavInfo:
        ref = self.cinfo or self.ainfo
        assert ref is not None
        frames = max(i.frames for i in (self.cinfo, self.ainfo) if i)
        channels = 2 if self.stereo else 1
        return WavInfo(channels, ref.rate, ref.sample_width, 44, frames * channels * ref.sample_width)

    @property
    def size(self) -> int:
        return self.info.data_offset + self.info.data_size

    def chunks(self) -> Iterator[bytes]:
        i = self.info
        yield wav_header(i.channels, i.rate, i.sample_width, i.data_size)
        yield from _joined_data(self.customer, self.cinfo, self.agent, self.ainfo, self.stereo)


def plan_join(customer: Path | None, agent: Path | None, *, stereo: bool = True) -> JoinedWav | None:
    """Repair the legs and describe their join; None when the legs differ in format (then use `join_legs`)."""
    cpath, cinfo = _mono_leg(customer)
    apath, ainfo = _mono_leg(agent)
    infos = [i for i in (cinfo, ainfo) if i]
    if not infos:
        raise AudioError("no leg file to join")
    if len({(i.rate, i.sample_width) for i in infos}) != 1:
        return None
    return JoinedWav(cpath, cinfo, apath, ainfo, stereo)


def join_legs(customer: Path | None, agent: Path | None, out: Path, *, stereo: bool = True) -> WavInfo:
    """Asterisk r()/t() legs → one WAV file: stereo customer LEFT / agent RIGHT, or a mono mix.

    Both legs start at the same instant (one MixMonitor), so aligning them is frame-for-frame from the
    start; the shorter leg (or a missing one) is padded with silence so nothing of the longer is lost.
    Legs of different rates/widths are converted (pydub) to the higher of each.
    """
    cpath, cinfo = _mono_leg(customer)
    apath, ainfo = _mono_leg(agent)
    if cinfo is None and ainfo is None:
        raise AudioError("no leg file to join")
    rate = max(i.rate for i in (cinfo, ainfo) if i)
    width = max(i.sample_width for i in (cinfo, ainfo) if i)
    writer = _WavOut(out, 2 if stereo else 1, rate, width)
    try:
        for raw in _joined_data(cpath, cinfo, apath, ainfo, stereo):
            writer.write(raw)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return inspect_wav(out)


def _pad(seg: AudioSegment | None, frames: int, rate: int, width: int) -> AudioSegment:
    have = int(seg.frame_count()) if seg is not None else 0
    if seg is not None and have >= frames:
        return seg
    pad = AudioSegment(data=b"\0" * ((frames - have) * width), sample_width=width, frame_rate=rate, channels=1)
    return pad if seg is None else seg + pad


def _mix(a: AudioSegment, b: AudioSegment) -> bytes:
    """Sum of two mono segments (clipped), each at -6 dB so two full-scale voices do not clip."""
    return a.apply_gain(-6.0).overlay(b.apply_gain(-6.0)).raw_data


def mix_stereo_to_mono(src: Path, out: Path) -> WavInfo:
    """FreeSWITCH stereo (customer L / agent R) → mono mix, for accounts with dual_channel = false."""
    info = repair_wav(src)
    if info.channels == 1:
        raise AudioError(f"{src.name}: already mono; nothing to mix")
    writer = _WavOut(out, 1, info.rate, info.sample_width)
    try:
        for raw in _read_frames(src, info, CHUNK_FRAMES):
            left, right = _segment(raw, info).split_to_mono()[:2]
            writer.write(_mix(left, right))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return inspect_wav(out)
