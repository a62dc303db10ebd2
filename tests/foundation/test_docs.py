"""The docs a new administrator reads first say what the commands really do, written for a reader."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests import run as test_command

ROOT = Path(__file__).resolve().parents[2]


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Quick start", 1)[1].split("\n---", 1)[0]


def test_quick_start_names_every_step_of_the_test_command() -> None:
    text = quick_start()
    for tool, *_ in test_command.CHECKS:
        assert tool in text, f"Quick start does not say that tests/run.py runs {tool}"
    assert "pytest" in text
    for command in test_command.DEBIAN_PACKAGES.values():
        assert f"`{command}`" in text or f"headless `{command}`" in text, (
            f"Quick start does not say that tests/run.py installs {command}"
        )
    assert "ruff + pytest" not in text


SESSION_TALK = re.compile(r"\bhelper [A-Z]\b|\buncommitted\b|\bother engineers\b", re.IGNORECASE)


def test_markdown_docs_have_no_session_talk() -> None:
    """Docs speak of the code and the figures, not of who worked on them when ("helper A",
    "uncommitted then")."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    docs = [ROOT / f for f in tracked] or list(ROOT.glob("**/*.md"))
    found = [
        f"{doc.relative_to(ROOT)}:{n}: {line.strip()}"
        for doc in docs
        if ".venv" not in doc.parts and doc.exists()
        for n, line in enumerate(doc.read_text().splitlines(), 1)
        if SESSION_TALK.search(line)
    ]
    assert not found, "\n".join(found)
