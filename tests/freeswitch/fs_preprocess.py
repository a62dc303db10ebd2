"""FreeSWITCH's XML pre-processor, re-implemented from src/switch_xml.c `preprocess()` (1.10).

FreeSWITCH runs this over freeswitch.xml and everything it includes BEFORE any XML parsing, line by
line, and it knows nothing about XML. The rules that surprise people, all modelled here:

- A line containing `<include>`, `</include>` or `<?` is dropped whole (the wrapper of include
  files), so `<include><X-PRE-PROCESS cmd="include" .../></include>` on ONE line includes nothing.
- `X-PRE-PROCESS` (any case) anywhere on a line is a directive even inside an XML comment: it is
  executed, and the whole line is replaced by its result (text around it on that line is lost).
  When the character before the token is not `<`, the line is dropped without being executed.
- `cmd="include" data="PATTERN"`: a glob, relative to the directory of the file that contains the
  directive (the conf dir for freeswitch.xml); matches are processed in sorted order, each with its
  own directory as the new base; nothing matched is logged and skipped; recursion stops at depth 100.
- `cmd="set" data="name=value"` sets a global; `$${name}` is replaced on every later line (unknown
  names by nothing). `env-set` copies an environment variable (`name=$VAR`). `exec`, `exec-set` and
  `stun-set` run programs or the network: recorded, not run.
- The old form `<!--#include "file"-->` (also `#set`, ...) works like the directive; a `<!--#` left
  open swallows lines up to the next `-->`.

`Preprocessor(...).run(file)` returns the text FreeSWITCH would parse and what happened on the way:
every directive executed (with whether it sat inside an XML comment of its file), every line the
rules dropped, every include that matched nothing.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_DEPTH = 100
TOKEN = "x-pre-process"


@dataclass(frozen=True)
class Directive:
    file: Path
    line: int
    cmd: str
    data: str
    in_comment: bool  # inside an XML comment of its file: executed anyway
    old_style: bool = False  # <!--#cmd arg-->


@dataclass(frozen=True)
class DroppedLine:
    file: Path
    line: int
    text: str
    reason: str


@dataclass
class Result:
    text: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    directives: list[Directive] = field(default_factory=list)
    dropped: list[DroppedLine] = field(default_factory=list)
    missing: list[tuple[Path, int, str]] = field(default_factory=list)  # (file, line, pattern) matching nothing
    not_modelled: list[Directive] = field(default_factory=list)  # exec / exec-set / stun-set
    depth_exceeded: list[Path] = field(default_factory=list)

    def parse(self) -> ET.Element:
        """The output as XML; a fragment (an include file) is wrapped in <fs-preprocessed>."""
        text = self.text.strip()
        try:
            return ET.fromstring(text)
        except ET.ParseError:
            return ET.fromstring(f"<fs-preprocessed>{text}</fs-preprocessed>")


def split_lines(text: str) -> list[str]:
    """switch_fp_read_dline: a line ends at (and keeps) each '\\r' or '\\n'."""
    return re.findall(r"[^\r\n]*(?:\r|\n)|[^\r\n]+$", text)


def comment_spans(text: str) -> list[tuple[int, int]]:
    """Where the XML comments of a file are (what a reader of the file sees as commented out)."""
    return [(m.start(), m.end()) for m in re.finditer(r"<!--.*?(?:-->|$)", text, re.S)]


def find_end_brace(s: str, start: int) -> int:
    """switch_find_end_paren: index of the '}' closing the '{' at `start`, or -1."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_keyval(text: str) -> tuple[str, str] | None:
    """`name = value` as FreeSWITCH splits it: spaces trimmed after the name and before the value."""
    if "=" not in text:
        return None
    name, _, value = text.partition("=")
    return name.rstrip(" "), value.lstrip(" ")


class Preprocessor:
    """One FreeSWITCH load: the globals set so far live here, as in the core."""

    def __init__(
        self,
        variables: dict[str, str] | None = None,
        path_map: Callable[[str], str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.variables = dict(variables or {})
        self.path_map = path_map or (lambda p: p)  # e.g. a container path to the repository file behind it
        self.env = dict(os.environ) if env is None else env

    def run(self, file: Path, cwd: Path | None = None) -> Result:
        result = Result(variables=self.variables)
        out: list[str] = []
        self._process(Path(file), str(cwd if cwd is not None else Path(file).parent), out, result, 0)
        result.text = "".join(out)
        return result

    # ---- one file --------------------------------------------------------------------------------

    def expand(self, line: str) -> str:
        if "$${" not in line:
            return line
        out, i = [], 0
        while i < len(line):
            if line.startswith("$${", i):
                end = find_end_brace(line, i + 2)
                if end >= 0:
                    out.append(self.variables.get(line[i + 3 : end], ""))
                    i = end + 1
                    continue
            out.append(line[i])
            i += 1
        return "".join(out)

    def _process(self, file: Path, cwd: str, out: list[str], result: Result, depth: int) -> None:
        if depth > MAX_DEPTH:
            result.depth_exceeded.append(file)
            return
        raw = file.read_text(errors="replace")
        spans = comment_spans(raw)
        offset = 0
        in_old_comment = False
        for number, buf in enumerate(split_lines(raw), 1):
            line_start, offset = offset, offset + len(buf)
            bp = self.expand(buf)

            if "<include>" in buf or "</include>" in buf or "<?" in buf:
                result.dropped.append(DroppedLine(file, number, buf, "contains <include>, </include> or <?"))
                continue

            if in_old_comment:
                end = bp.find("-->")
                if end < 0:
                    continue
                in_old_comment = False
                bp = bp[end + 3 :]

            pos = bp.lower().find(TOKEN)
            if pos >= 0:
                if pos == 0 or bp[pos - 1] != "<":
                    result.dropped.append(DroppedLine(file, number, buf, "X-PRE-PROCESS not preceded by '<'"))
                    continue
                parsed = self._parse_directive(bp[pos:])
                if parsed is None:
                    result.dropped.append(DroppedLine(file, number, buf, "X-PRE-PROCESS without cmd/data"))
                    continue
                raw_pos = line_start + max(buf.lower().find(TOKEN), 0)
                in_comment = any(a < raw_pos < b for a, b in spans)
                d = Directive(file, number, parsed[0], parsed[1], in_comment)
                self._execute(d, cwd, out, result, depth)
                continue

            cmd_at = bp.find("<!--#")
            if cmd_at >= 0:
                out.append(bp[:cmd_at])
                rest = bp[cmd_at:]
                end = rest.find("-->")
                if end >= 0:
                    out.append(rest[end + 3 :])
                    rest = rest[:end]
                else:
                    in_old_comment = True
                command = re.split(r"[\r\n]", rest[5:], maxsplit=1)[0]
                if " " in command:
                    name, arg = command.split(" ", 1)
                    quoted = re.match(r'[^"]*"([^"]*)"', arg)
                    if quoted:
                        arg = quoted.group(1)
                    raw_pos = line_start + cmd_at
                    in_comment = any(a < raw_pos < b for a, b in spans)
                    d = Directive(file, number, name, arg, in_comment, old_style=True)
                    if name.lower() != "env-set":  # the old form has no env-set
                        self._execute(d, cwd, out, result, depth)
                continue

            out.append(bp)

    @staticmethod
    def _parse_directive(text: str) -> tuple[str, str] | None:
        """cmd, then data, found as loosely as switch_xml.c does: the first "cmd" after the token, the
        first '=' after it, the quoted value after that; then the same for "data" after cmd's value."""
        end = text.find("/>")
        if end >= 0:
            text = text[: end + 2]

        def quoted(key: str, start: int, need_close: bool) -> tuple[str, int] | None:
            i = text.lower().find(key, start)
            j = text.find("=", i) if i >= 0 else -1
            k = text.find('"', j) if j >= 0 else -1
            if k < 0:
                return None
            e = text.find('"', k + 1)
            if e < 0:
                return None if need_close else (text[k + 1 :], len(text))
            return text[k + 1 : e], e + 1

        cmd = quoted("cmd", len(TOKEN), True)
        data = quoted("data", cmd[1], False) if cmd else None
        return (cmd[0], data[0]) if cmd and data else None

    def _execute(self, d: Directive, cwd: str, out: list[str], result: Result, depth: int) -> None:
        result.directives.append(d)
        cmd = d.cmd.lower()
        if cmd == "set":
            kv = _split_keyval(d.data)
            if kv:
                self.variables[kv[0]] = kv[1]
        elif cmd == "env-set":
            name, sep, value = d.data.partition("=")
            if sep and value.startswith("$") and value[1:] in self.env:
                self.variables[name] = self.env[value[1:]]
        elif cmd == "include":
            self._include(d, cwd, out, result, depth + 1)
        elif cmd in ("exec", "exec-set", "stun-set"):
            result.not_modelled.append(d)

    def _include(self, d: Directive, cwd: str, out: list[str], result: Result, depth: int) -> None:
        pattern = d.data
        if not (pattern.startswith("/") or "://" in pattern):
            pattern = f"{cwd}/{pattern}"
        pattern = self.path_map(pattern)
        matches = sorted(glob.glob(pattern))
        if not matches:
            result.missing.append((d.file, d.line, d.data))
            return
        for match in matches:
            self._process(Path(match), match.rsplit("/", 1)[0], out, result, depth)
