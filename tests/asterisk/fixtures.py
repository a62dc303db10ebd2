"""Readers for the real Asterisk 20.20.1 captures in tests/fixtures/asterisk (copied from the lab)."""

from __future__ import annotations

import json
import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk"
SCENARIOS = sorted(p.name.removesuffix(".ami.log") for p in FIXTURES.glob("*.ami.log"))
_BLOCK = re.compile(rb"##### (<<< RECV|>>> SENT) \S+ \S+ (\d+) bytes")


def recv_blocks(name: str) -> list[bytes]:
    """Every block Asterisk sent, byte-exact, in order (the banner first)."""
    raw = (FIXTURES / f"{name}.ami.log").read_bytes()
    out, pos = [], 0
    while (i := raw.find(b"##### ", pos)) >= 0:
        j = raw.index(b"\n", i)
        m = _BLOCK.match(raw[i:j])
        if m is None:
            pos = j + 1
            continue
        n = int(m.group(2))
        if m.group(1) == b"<<< RECV":
            out.append(raw[j + 1 : j + 1 + n])
        pos = j + 1 + n
    return out


def recv_messages(name: str) -> list[list[tuple[str, str]]]:
    """The capture tool's own parse of every received message (header pairs, repeats kept)."""
    out = []
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m.get("dir") == "recv" and m.get("headers") and m["headers"][0][0]:
            out.append([(k, v) for k, v in m["headers"]])
    return out
