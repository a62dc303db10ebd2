"""Running phones: start the baresip processes, stop them by pid, reach them over ctrl_tcp.

Standard library only (it runs in the softphone container).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

if __package__:
    from .ctrl_tcp import Phone, PhoneError
    from .phone_config import assign_ports, load_manifest, phone_entry, ports_free
else:  # run as a script: the softphone container mounts only this directory
    from ctrl_tcp import Phone, PhoneError  # type: ignore[no-redef]
    from phone_config import assign_ports, load_manifest, phone_entry, ports_free  # type: ignore[no-redef]


def baresip_binary(explicit: str = "") -> str:
    found = explicit or shutil.which("baresip")
    if not found:
        raise PhoneError("baresip not found: apt-get install -y baresip-core (Debian) or pass --baresip PATH")
    return found


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start(out: Path, binary: str = "", timeout: float = 10.0) -> dict[str, int]:
    """Start every phone (one baresip process each, its own session) and wait for its ctrl_tcp port.

    The ports `setup` wrote are kept while they are free; if any was taken since, every phone gets
    new ones from the OS (phones.json is rewritten: read it again after `start`).
    """
    manifest = load_manifest(out)
    exe = baresip_binary(binary)
    if running_pids(out):
        raise PhoneError(f"the phones of {out} are already running: `phones.py stop --dir {out}` first")
    if not ports_free(manifest):
        manifest = assign_ports(out)
    pids: dict[str, int] = {}
    for p in manifest["phones"]:
        log = open(Path(p["dir"]).parent / f"{p['user']}.log", "ab")  # handed to the child, closed below
        proc = subprocess.Popen(
            [exe, "-4", "-n", manifest["bind"], "-f", p["dir"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        pids[p["user"]] = proc.pid
    (out / "pids.json").write_text(json.dumps(pids) + "\n")
    for p in manifest["phones"]:
        if not wait_port(manifest["bind"], p["ctrl_port"], timeout):
            stop(out)
            raise PhoneError(f"phone {p['user']} did not open ctrl_tcp {p['ctrl_port']}: see {out}/{p['user']}.log")
    return pids


def _gone(pid: int) -> bool:
    """True once `pid` has exited (reaping it when it is our own child, so no zombie lingers)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # started by another process (the CLI): the phone was re-parented, kill(0) tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _signal_all(pids: set[int], sig: int, wait: float) -> set[int]:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if not _gone(pid)}
        if pids:
            time.sleep(0.05)
    return pids


def running_pids(out: Path) -> dict[str, int]:
    path = out / "pids.json"
    if not path.exists():
        return {}
    pids: dict[str, int] = json.loads(path.read_text())
    return {user: pid for user, pid in pids.items() if not _gone(pid)}


def stop(out: Path) -> list[str]:
    """Stop the phones started by `start`, by pid (never by name), and wait until they are gone.

    baresip un-registers on the first SIGTERM (which waits for the registrar's answer); a second
    SIGTERM makes it quit at once, as Ctrl-C twice does; SIGKILL is the last resort.
    """
    path = out / "pids.json"
    if not path.exists():
        return []
    pids: dict[str, int] = json.loads(path.read_text())
    running = {pid for pid in pids.values() if not _gone(pid)}
    stopped = [user for user, pid in pids.items() if pid in running]
    running = _signal_all(running, signal.SIGTERM, 3.0)
    running = _signal_all(running, signal.SIGTERM, 3.0)
    running = _signal_all(running, signal.SIGKILL, 5.0)
    if running:
        raise PhoneError(f"phones did not exit: pids {sorted(running)}")
    path.unlink()
    return stopped


def connect(manifest: dict, user: str) -> Phone:
    p = phone_entry(manifest, user)
    try:
        return Phone(user, manifest["bind"], p["ctrl_port"])
    except OSError as e:
        raise PhoneError(f"phone {user} is not running (ctrl_tcp {manifest['bind']}:{p['ctrl_port']}: {e})") from None


def one_command(out: Path, user: str, command: str, params: str = "") -> str:
    manifest = load_manifest(out)
    with connect(manifest, user) as phone:
        return phone.command(command, params)


def registered(phone: Phone) -> bool:
    """baresip's `reginfo` marks a registered account with OK (colour codes stripped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", phone.command("reginfo"))
    return bool(re.search(r"\bOK\b", text))


def wait_registered(phones: dict[str, Phone], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(phones)
    while pending and time.monotonic() < deadline:
        pending = {u for u in pending if not registered(phones[u])}
        if pending:
            time.sleep(0.5)
    if pending:
        raise PhoneError(f"not registered with the PBX after {timeout} s: {', '.join(sorted(pending))}")
