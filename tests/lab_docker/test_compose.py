"""The docker lab's compose file, Dockerfiles and callrec config (docker itself cannot run here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from controller.config import load_config

from .conftest import LAB, REPO

REQUIRED = {"freeswitch", "asterisk", "postgres", "callrec", "softphone"}
HOOKS = {
    "freeswitch": {"freeswitch_conf", "dialplan/freeswitch"},
    "asterisk": {"asterisk_conf", "dialplan/asterisk"},
}


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(source as a repo path, target) of the bind mounts of a service (short syntax)."""
    out = []
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith((".", "/")):
            out.append((src, dst))
    return out


def test_compose_has_the_lab_services(compose: dict) -> None:
    assert REQUIRED <= set(compose["services"])


def test_every_bind_mount_source_exists_in_the_repo(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for src, dst in bind_mounts(svc):
            path = (LAB / src).resolve()
            assert path.exists(), f"{name}: mount source {src} -> {dst} does not exist ({path})"
            assert REPO in path.parents or path == REPO, f"{name}: {src} is outside the repository"


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if not src.startswith((".", "/")):
                assert src in declared, f"{name}: volume {src} is not declared"


def test_pbxes_use_prebuilt_images_and_mount_our_hooks(compose: dict) -> None:
    for pbx, hooks in HOOKS.items():
        svc = compose["services"][pbx]
        assert "build" not in svc, f"{pbx} must come from a public prebuilt image"
        assert re.match(r"^\$\{CALLREC_LAB_\w+_IMAGE:-[\w./-]+:[\w.-]+\}$", svc["image"]), svc["image"]
        mounted = {str((LAB / src).resolve().relative_to(REPO)) for src, _ in bind_mounts(svc)}
        assert hooks <= mounted, f"{pbx} does not mount {hooks - mounted}"
        assert all(v.endswith(":ro") for v in svc["volumes"] if v.startswith(".")), "repo mounts must be read-only"


def test_hook_mounts_are_included_by_the_lab_pbx_configs(compose: dict) -> None:
    """What we mount is really used: a lab config of that PBX includes files from each hook mount,
    and every include of a single file (no glob) names a file that exists in the repository."""
    for pbx in HOOKS:
        svc = compose["services"][pbx]
        includes = []
        for conf in (LAB / pbx / "conf").rglob("*"):
            if conf.suffix in (".xml", ".conf"):
                includes += re.findall(r'(?:#include\s+"|cmd="include" data=")(/etc/callrec/[^"]+)"', conf.read_text())
        for src, dst in bind_mounts(svc):
            rel = str((LAB / src).resolve().relative_to(REPO))
            if rel in HOOKS[pbx]:
                used = [i for i in includes if i.startswith(dst + "/")]
                assert used, f"{pbx}: nothing includes the hook mount {dst} ({rel})"
                for inc in used:
                    if "*" not in inc:
                        assert (LAB / src / inc[len(dst) + 1 :]).exists(), f"{pbx}: {inc} is not in {rel}/"


def test_network_is_one_private_namespace_published_on_loopback_only(compose: dict) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        if name not in ("net", "spool-init"):
            assert svc.get("network_mode") == "service:net", f"{name} is not in the lab's shared namespace"


def test_spool_is_shared_by_the_pbxes_and_callrec(compose: dict) -> None:
    cfg = load_config(LAB / "callrec.toml", env={})
    for name in ("freeswitch", "asterisk", "callrec"):
        targets = {v.split(":")[1] for v in compose["services"][name]["volumes"] if v.startswith("spool:")}
        assert targets == {str(cfg.spool_dir)}, f"{name} does not see the spool at {cfg.spool_dir}"
    assert {n.record_dir for n in cfg.pbx} == {str(cfg.spool_dir)}


def test_dockerfiles_copy_only_what_exists() -> None:
    for dockerfile in LAB.glob("Dockerfile.*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for src in line.split()[1:-1]:
                    assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src} does not exist (context = repo)"
        text = dockerfile.read_text()
        for build_step in ("./configure", "make install", "git clone", "menuselect"):
            assert build_step not in text, f"{dockerfile.name} builds something from source ({build_step})"


def test_lab_callrec_config_loads_and_watches_both_pbxes(compose: dict) -> None:
    env = {"CALLREC_ENCRYPTION_RECIPIENTS": "age1j2zvft7k9rq43m3alkdfqezxua9enctncuq26egup5nh0wwv2uzqlqezks"}
    cfg = load_config(LAB / "callrec.toml", env=env)
    assert {n.type for n in cfg.pbx} == {"freeswitch", "asterisk"}
    assert all(n.host == "127.0.0.1" for n in cfg.pbx)
    assert cfg.encryption.recipients == (env["CALLREC_ENCRYPTION_RECIPIENTS"],)
    pg = compose["services"]["postgres"]["environment"]
    assert cfg.database.url == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@127.0.0.1:5432/{pg['POSTGRES_DB']}"
    )
    callrec = compose["services"]["callrec"]
    assert f"./callrec.toml:{callrec['environment']['CALLREC_CONFIG']}:ro" in callrec["volumes"]
    published = {p.split(":")[-1] for p in compose["services"]["net"]["ports"]}
    assert str(cfg.api.port) in published


def test_lab_keys_are_created_once_and_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    run = [sys.executable, str(LAB / "lab_keys.py"), str(keys)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(run, check=True, env=env)
    first = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert set(first) == {"identity.txt", "recipient.txt", "signing.key"}
    assert first["recipient.txt"].startswith(b"age1")
    assert (keys / "identity.txt").stat().st_mode & 0o077 == 0, "identity must not be group/world readable"
    subprocess.run(run, check=True, env=env)
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == first, "a restart must not replace the keys"
