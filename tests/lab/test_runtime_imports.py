"""Every third-party module the package imports (controller/, storage/, lab/) comes with a plain
`pip install callrec`: it is a runtime dependency in pyproject.toml, or one of theirs, or belongs to an
optional runtime extra such as `s3` — never only to the `test` extra.

The quick guard of the default suite for what tests/lab/test_plain_install.py proves end to end (slow:
it builds a venv): numpy was imported by lab/tones.py while only the test extra installed it, so
`callrec lab` crashed on a fresh install.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("controller", "storage", "lab")
TEST_ONLY_EXTRAS = {"test"}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names (canonical) these requirements install, following installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _canon(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = [Requirement(r) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            continue
        extras = {"", *req.extras}  # moto[server] brings the "server" extra's requirements too
        todo += [r for r in requires if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]
    return seen


def allowed_distributions(pyproject: dict) -> set[str]:
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    for extra, extra_reqs in project.get("optional-dependencies", {}).items():
        if extra not in TEST_ONLY_EXTRAS:
            reqs += extra_reqs
    return _closure(reqs)


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level module name → files importing it (anywhere in the file, lazy imports included)."""
    local = set(PACKAGES) | {p.stem for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    found: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def test_package_imports_only_what_a_plain_install_provides() -> None:
    allowed = allowed_distributions(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    providers = metadata.packages_distributions()
    wrong = {}
    for module, files in sorted(third_party_imports(ROOT).items()):
        dists = {_canon(d) for d in providers.get(module, [])}
        if not dists & allowed:
            wrong[module] = (sorted(dists) or ["not installed"], sorted(files))
    assert not wrong, f"imported by the package but not installed by `pip install callrec`: {wrong}"


def test_the_guard_sees_a_test_only_import(tmp_path: Path) -> None:
    """The check above can fail: a module importing a test-extra package is reported."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "controller").mkdir()
    (tmp_path / "storage").mkdir()
    (tmp_path / "lab" / "x.py").write_text("import yaml\nfrom controller import cli\n")
    assert third_party_imports(tmp_path) == {"yaml": {"lab/x.py"}}
    pyproject = {"project": {"dependencies": ["aiohttp>=3"], "optional-dependencies": {"test": ["pyyaml"]}}}
    assert "pyyaml" not in allowed_distributions(pyproject)
    assert "aiohttp" in allowed_distributions(pyproject) and "yarl" in allowed_distributions(pyproject)
