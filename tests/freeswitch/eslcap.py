"""Reader for the `#@ESLCAP v1` transcripts and a tiny ESL frame splitter (test helpers)."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-sip"
LOOPBACK_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"  # tests/freeswitch/real_pbx
_HEAD = re.compile(rb"^#(>>>|<<<|---) (RX|TX|NOTE) (\S+) \+([\d.]+) (\d+) bytes$")


@dataclass(frozen=True)
class Record:
    kind: str  # RX | TX | NOTE
    t: float
    data: bytes


def read_capture(name: str, where: Path = FIXTURES) -> list[Record]:
    raw = gzip.decompress((where / f"{name}.esl.log.gz").read_bytes())
    pos = raw.index(b"\n") + 1  # title line
    out = []
    while pos < len(raw):
        end = raw.index(b"\n", pos)
        m = _HEAD.match(raw[pos:end])
        if not m:
            raise ValueError(f"bad record header at byte {pos}: {raw[pos:end][:80]!r}")
        n = int(m.group(5))
        out.append(Record(m.group(2).decode(), float(m.group(4)), raw[end + 1 : end + 1 + n]))
        pos = end + 1 + n + 1
    return out


def rx_stream(name: str, where: Path = FIXTURES) -> bytes:
    return b"".join(r.data for r in read_capture(name, where) if r.kind == "RX")


def split_frames(stream: bytes) -> list[tuple[dict[str, str], bytes]]:
    """ESL frames: (outer headers, body)."""
    frames = []
    pos = 0
    while pos < len(stream):
        end = stream.index(b"\n\n", pos)
        head = stream[pos:end].decode()
        headers = dict(line.split(": ", 1) for line in head.split("\n") if ": " in line)
        n = int(headers.get("Content-Length", "0"))
        body = stream[end + 2 : end + 2 + n]
        frames.append((headers, body))
        pos = end + 2 + n
    return frames


def event_headers(body: bytes) -> dict[str, str]:
    """Headers of an `event plain` body (URL-decoded values; the body after a blank line is dropped)."""
    text = body.decode("utf-8", "replace").split("\n\n", 1)[0]
    return {k: unquote(v) for k, v in (line.split(": ", 1) for line in text.split("\n") if ": " in line)}


def events(name: str, where: Path = FIXTURES) -> list[dict[str, str]]:
    return [
        event_headers(body)
        for headers, body in split_frames(rx_stream(name, where))
        if headers.get("Content-Type") == "text/event-plain"
    ]
