"""Helpers for the docker-lab checks: the repo paths, the compose file, an Asterisk config reader."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "docker"
SOFTPHONE = REPO / "lab" / "softphone"


def load_phones() -> ModuleType:
    """lab/softphone/phones.py: the softphones' API (also a standalone script, tested by running it)."""
    return importlib.import_module("lab.softphone.phones")


@pytest.fixture(scope="session")
def phones() -> ModuleType:
    return load_phones()


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((LAB / "docker-compose.yml").read_text())


@dataclass
class AstSection:
    name: str
    templates: list[str]
    is_template: bool
    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = [v for k, v in self.items if k == key]
        return values[-1] if values else None


@dataclass
class AstConfig:
    sections: list[AstSection]
    includes: list[str]

    def named(self, name: str) -> list[AstSection]:
        return [s for s in self.sections if s.name == name]


_SECTION = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*$")
_ITEM = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(=>|=)\s*(.*)$")


def container_to_repo(service: str, path: str) -> Path | None:
    """The repository file behind a path inside a lab container (through the compose bind mounts)."""
    compose = yaml.safe_load((LAB / "docker-compose.yml").read_text())
    for v in compose["services"][service].get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith(".") and (path == dst or path.startswith(dst + "/")):
            return (LAB / src).resolve() / path[len(dst) :].lstrip("/")
    return None


def asterisk_as_loaded(path: Path) -> AstConfig:
    """A lab Asterisk file with its #includes resolved through the mounts and `[name](+)` merged in."""
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("#include"):
            target = container_to_repo("asterisk", raw.split(None, 1)[1].strip().strip('"'))
            assert target is not None and target.exists(), f"{path.name}: {raw} is not a mounted repo file"
            lines += target.read_text().splitlines()
        else:
            lines.append(raw)
    parsed = parse_asterisk(path, "\n".join(lines))
    merged: list[AstSection] = []
    for s in parsed.sections:
        if "+" in s.templates:
            previous = [m for m in merged if m.name == s.name]
            assert previous, f"{path.name}: [{s.name}](+) adds to a section that does not exist"
            previous[-1].items += s.items
        else:
            merged.append(s)
    return AstConfig(merged, [])


def parse_asterisk(path: Path, text: str | None = None) -> AstConfig:
    """Asterisk's INI dialect: [name](template,!), key = value / key => value, ; comments, #include.

    Strict: any line that is none of those fails, so a typo cannot hide in a lab config.
    """
    sections: list[AstSection] = []
    includes: list[str] = []
    text = path.read_text() if text is None else text
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith(("#include", "#tryinclude")):
            includes.append(line.split(None, 1)[1].strip().strip('"'))
            continue
        m = _SECTION.match(line)
        if m:
            opts = [o.strip() for o in (m.group(2) or "").split(",") if o.strip()]
            sections.append(AstSection(m.group(1), [o for o in opts if o != "!"], "!" in opts))
            continue
        m = _ITEM.match(line)
        if not m:
            raise AssertionError(f"{path.name}:{n}: not an Asterisk config line: {raw!r}")
        if not sections:
            raise AssertionError(f"{path.name}:{n}: setting outside any [section]: {raw!r}")
        sections[-1].items.append((m.group(1), m.group(3).strip()))
    return AstConfig(sections, includes)


def asterisk_pattern_matches(pattern: str, number: str) -> bool:
    """Asterisk extension matching: literal, or `_` with X Z N [..] . ! (what our lab dialplan uses)."""
    if not pattern.startswith("_"):
        return pattern == number
    rx = ""
    i, p = 0, pattern[1:]
    while i < len(p):
        c = p[i]
        if c == "X":
            rx += "[0-9]"
        elif c == "Z":
            rx += "[1-9]"
        elif c == "N":
            rx += "[2-9]"
        elif c == "[":
            j = p.index("]", i)
            rx += "[" + p[i + 1 : j] + "]"
            i = j
        elif c == ".":
            rx += ".+"
        elif c == "!":
            rx += ".*"
        else:
            rx += re.escape(c)
        i += 1
    return re.fullmatch(rx, number) is not None
