"""The lab PBX configs parse, agree with the phones and callrec, and leave no port clash.

FreeSWITCH XML is parsed as XML; Asterisk configs with a strict reader of Asterisk's INI dialect
(and asterisklint on the dialplan). Cross-checks read the real files on both sides, so renaming a
user, a password or a port in one place without the other fails here, not in a lab run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from controller.config import load_config
from tests.freeswitch.fs_preprocess import Preprocessor

from .conftest import LAB, REPO, asterisk_as_loaded, asterisk_pattern_matches, container_to_repo, parse_asterisk

FS_CONF = LAB / "freeswitch" / "conf"
AST_CONF = LAB / "asterisk" / "conf"
SCENARIO_NUMBERS = ("2001", "3001", "9001", "9005551234", "1001")  # dialled by place-calls / transfer targets


def fs_xml(rel: str) -> ET.Element:
    return ET.parse(FS_CONF / rel).getroot()


def fs_vars() -> dict[str, str]:
    out = {}
    for pi in fs_xml("vars.xml").iter("X-PRE-PROCESS"):
        if pi.get("cmd") == "set":
            k, _, v = pi.get("data", "").partition("=")
            out[k] = v
    return out


def expand(value: str) -> str:
    return re.sub(r"\$\$\{(\w+)\}", lambda m: fs_vars()[m.group(1)], value)


def test_every_freeswitch_file_is_well_formed_xml() -> None:
    files = list(FS_CONF.rglob("*.xml"))
    assert len(files) >= 8
    for f in files:
        ET.parse(f)  # raises with file and line on a syntax error
    root = fs_xml("freeswitch.xml")
    assert root.tag == "document" and root.get("type") == "freeswitch/xml"
    assert {s.get("name") for s in root.iter("section")} == {"configuration", "dialplan", "directory"}


def test_freeswitch_profile_is_loopback_with_digest_auth(phones: ModuleType) -> None:
    profile = fs_xml("autoload_configs/sofia.conf.xml").find("profiles/profile[@name='lab']")
    params = {p.get("name"): expand(p.get("value", "")) for p in profile.iter("param")}
    assert params["sip-ip"] == params["rtp-ip"] == "127.0.0.1"
    assert params["auth-calls"] == "true"
    assert int(params["sip-port"]) == phones.PBXES["freeswitch"].sip_port


def test_freeswitch_users_match_the_phones(phones: ModuleType) -> None:
    domain = fs_xml("directory/lab.xml").find("domain")
    assert expand(domain.get("name")) == "127.0.0.1"
    users = {u.get("id"): u.find("params/param[@name='password']").get("value") for u in domain.iter("user")}
    assert users == phones.PBXES["freeswitch"].passwords
    context = domain.find("variables/variable[@name='user_context']").get("value")
    dialplan = fs_xml("dialplan/lab.xml")
    assert dialplan.find(f"context[@name='{context}']") is not None, f"user_context {context} has no context"


def test_freeswitch_dialplan_routes_every_scenario_number() -> None:
    context = fs_xml("dialplan/lab.xml").find("context[@name='sip']")
    for number in SCENARIO_NUMBERS:
        bridges = []
        for ext in context.findall("extension"):
            conds = ext.findall("condition")
            dest = [c for c in conds if c.get("field") == "destination_number"]
            if len(conds) == 1 and dest and re.search(dest[0].get("expression"), number):
                bridges += [a.get("data") for a in ext.iter("action") if a.get("application") == "bridge"]
        assert bridges, f"FreeSWITCH lab: nothing bridges {number}"
        assert re.sub(r"^\{[^}]*\}", "", bridges[0]).startswith("user/"), bridges[0]


def fs_loaded() -> ET.Element:
    """The lab FreeSWITCH configuration as FreeSWITCH loads it: freeswitch.xml through the
    pre-processor, with the repository files behind the container's mounts."""

    def mounts(path: str) -> str:
        target = container_to_repo("freeswitch", path)
        return path if target is None else str(target)

    r = Preprocessor(path_map=mounts).run(FS_CONF / "freeswitch.xml", cwd=FS_CONF)
    assert not r.missing, f"includes that match nothing: {r.missing}"
    return r.parse()


FS_DIALPLANS = (
    sorted((REPO / "dialplan" / "freeswitch").glob("*.xml"))
    + sorted((REPO / "tests" / "freeswitch" / "real_pbx").glob("*.xml"))
    + sorted((FS_CONF / "dialplan").glob("*.xml"))
)


def test_no_context_is_nested_in_another_after_preprocessing() -> None:
    """What FreeSWITCH loads (the lab as a whole, and every shipped dialplan file on its own)."""
    loaded = {"lab freeswitch.xml": fs_loaded()}
    loaded |= {str(f.relative_to(REPO)): Preprocessor().run(f).parse() for f in FS_DIALPLANS}
    for name, root in loaded.items():
        for context in root.iter("context"):
            inner = [c.get("name") for c in context.iter("context") if c is not context]
            assert not inner, f"{name}: context {context.get('name')} contains contexts {inner}"


def test_lab_sip_context_tags_calls_then_runs_the_hook_then_routes() -> None:
    dialplan = fs_loaded().find("section[@name='dialplan']")
    assert [c.get("name") for c in dialplan.findall("context")] == ["public", "sip"]
    names = [e.get("name") for e in dialplan.find("context[@name='sip']").findall("extension")]
    hook = [e.get("name") for e in ET.parse(REPO / "dialplan/freeswitch/callrec.xml").getroot().findall("extension")]
    start = names.index(hook[0])
    assert names[start : start + len(hook)] == hook, "the hook is included once, whole"
    assert all(n.startswith("lab_tag_") for n in names[:start]), "only the lab's tags run before the hook"
    assert names[start + len(hook) :] and not any(n.startswith("lab_tag_") for n in names[start + len(hook) :])


def hook_fields() -> set[str]:
    """The variables the hook sends to callrec in its CUSTOM callrec::policy event."""
    hook = ET.parse(REPO / "dialplan/freeswitch/callrec.xml").getroot()
    event = next(a.get("data", "") for a in hook.iter("action") if a.get("application") == "event")
    return {kv.split("=", 1)[0] for kv in event.split(",") if kv.startswith("callrec_")}


def feature_fields() -> set[str]:
    """The headers the hook's phone codes send to callrec in CUSTOM callrec::feature (bind_meta_app
    runs the `event` app with them), which the FreeSWITCH driver reads."""
    hook = ET.parse(REPO / "dialplan/freeswitch/callrec.xml").getroot()
    binds = [a.get("data", "") for a in hook.iter("action") if a.get("application") == "bind_meta_app"]
    events = [d.split("event::", 1)[1] for d in binds if "event::" in d]
    return {kv.split("=", 1)[0] for e in events for kv in e.split(",") if kv.startswith("callrec_")}


def callrec_vars_read() -> set[str]:
    """Every callrec_* variable something reads: the hook's event fields, and `${callrec_*}` in any
    shipped or lab dialplan (the hook's own conditions, the selftest phones' timers, ...)."""
    reads = {v for f in FS_DIALPLANS for v in re.findall(r"\$\{(callrec_[a-z_]+)\}", f.read_text())}
    return hook_fields() | feature_fields() | reads


def callrec_vars_set(path: Path) -> list[str]:
    """callrec_* variables a dialplan sets: set/export actions and {var=...} in dial strings."""
    out = []
    for action in ET.parse(path).getroot().iter("action"):
        data = action.get("data", "")
        if action.get("application") in ("set", "export", "set_global") and data.startswith("callrec_"):
            out.append(data.split("=", 1)[0])
        out += re.findall(r"[{,](callrec_[a-z_]+)=", data)
    return out


def test_every_callrec_variable_a_dialplan_sets_is_one_callrec_reads() -> None:
    known = callrec_vars_read()
    for f in FS_DIALPLANS:
        unknown = sorted(set(callrec_vars_set(f)) - known)
        assert not unknown, f"{f.relative_to(REPO)} sets {unknown}, which nothing reads (known: {sorted(known)})"


def test_lab_tags_set_what_the_hook_sends() -> None:
    lab = set(callrec_vars_set(FS_CONF / "dialplan" / "lab.xml"))
    assert {"callrec_direction", "callrec_account_number", "callrec_account"} <= lab <= hook_fields()


def test_the_hook_sends_only_fields_the_controller_reads() -> None:
    """The controller strips `callrec_` from the event's fields and reads them in the call state."""
    code = (REPO / "controller" / "calls.py").read_text()
    read = set(re.findall(r"(?:values|hint)\.get\(\"([a-z_]+)\"", code))
    sent = {f.removeprefix("callrec_") for f in hook_fields()}
    assert sent <= read, f"the hook sends {sorted(sent - read)}, which controller/calls.py never reads"


def test_asterisk_configs_parse() -> None:
    for f in AST_CONF.glob("*.conf"):
        parse_asterisk(f)


def test_asterisk_pjsip_and_sip_users_match_the_phones(phones: ModuleType) -> None:
    pbx = phones.PBXES["asterisk"]
    pj = parse_asterisk(AST_CONF / "pjsip.conf")
    transport = pj.named("transport-udp")[0]
    assert transport.get("bind") == f"127.0.0.1:{pbx.sip_port}"
    templates = {s.name: s for s in pj.sections if s.is_template}
    for user, password in pbx.passwords.items():
        kinds = {}
        for s in pj.named(user):
            merged = dict(item for t in s.templates for item in templates[t].items) | dict(s.items)
            kinds[merged["type"]] = merged
        assert set(kinds) == {"endpoint", "auth", "aor"}, f"pjsip user {user}: {set(kinds)}"
        assert kinds["auth"]["username"] == user and kinds["auth"]["password"] == password
        assert kinds["endpoint"]["context"] == "lab-sip" and kinds["endpoint"]["allow_transfer"] == "yes"
    chan_sip = parse_asterisk(AST_CONF / "sip.conf")
    general = chan_sip.named("general")[0]
    assert general.get("udpbindaddr") == f"127.0.0.1:{pbx.sip_port}"
    assert {s.name: s.get("secret") for s in chan_sip.sections if s.name in pbx.passwords} == pbx.passwords


def test_asterisk_loads_exactly_one_sip_channel_driver() -> None:
    noload = {v for k, v in parse_asterisk(AST_CONF / "lab-modules.conf").named("modules")[0].items if k == "noload"}
    assert ("chan_sip.so" in noload) != ("chan_pjsip.so" in noload), "both SIP drivers would bind 5060"
    tech = parse_asterisk(AST_CONF / "extensions.conf").named("globals")[0].get("LAB_TECH")
    assert tech == ("PJSIP" if "chan_sip.so" in noload else "SIP")


def test_asterisk_dialplan_routes_every_scenario_number() -> None:
    lab = parse_asterisk(AST_CONF / "extensions.conf").named("lab-sip")[0]
    patterns = {v.split(",")[0] for k, v in lab.items if k == "exten"}
    for number in SCENARIO_NUMBERS:
        assert any(asterisk_pattern_matches(p, number) for p in patterns), f"Asterisk lab: nothing routes {number}"


def test_asterisk_manager_is_our_hook_on_loopback_with_the_lab_secret() -> None:
    """manager.conf as Asterisk loads it: callrec's asterisk_conf/manager.conf plus the lab secret."""
    if not (REPO / "asterisk_conf" / "manager.conf").exists():
        pytest.skip("asterisk_conf/manager.conf not written yet (Asterisk hooks work)")
    manager = asterisk_as_loaded(AST_CONF / "manager.conf")
    general = manager.named("general")[0]
    assert general.get("enabled") == "yes" and general.get("bindaddr") == "127.0.0.1"
    cfg = load_config(LAB / "callrec.toml", env={})
    ast = next(n for n in cfg.pbx if n.type == "asterisk")
    assert int(general.get("port") or 5038) == ast.effective_port
    (user,) = manager.named(ast.username)
    assert user.get("secret") == ast.secret, "callrec.toml's AMI secret differs from the one Asterisk loads"
    assert user.get("permit") == "127.0.0.1/255.255.255.255"


@pytest.mark.skipif(
    shutil.which("asterisklint") is None and not (REPO / ".venv/bin/asterisklint").exists(),
    reason="asterisklint not installed",
)
def test_asterisklint_accepts_the_lab_dialplan_with_our_hook(tmp_path: Path) -> None:
    """Lint the lab dialplan as Asterisk would load it: with dialplan/asterisk/ at the mount point."""
    lint = shutil.which("asterisklint") or str(REPO / ".venv/bin/asterisklint")
    text = (AST_CONF / "extensions.conf").read_text()
    if not list((REPO / "dialplan" / "asterisk").glob("*.conf")):
        pytest.skip("dialplan/asterisk/ not written yet (Asterisk hooks work)")
    (tmp_path / "extensions.conf").write_text(text.replace("/etc/callrec/dialplan/", f"{REPO}/dialplan/asterisk/"))
    res = subprocess.run([lint, "dialplan-check", "extensions.conf"], cwd=tmp_path, capture_output=True, text=True)
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 0 and not problems, "\n".join(problems)


# Linux's default ip_local_port_range: where the phones' ports (and every port-0 bind) come from in the
# lab's network namespace (docker does not change it).
LINUX_EPHEMERAL = range(32768, 60999 + 1)


def test_no_port_clash_in_the_shared_network_namespace() -> None:
    """Every service binds 127.0.0.1 of ONE namespace: no two fixed ranges overlap, and none reaches
    into the ephemeral range the phones' ports are picked from (baresip also binds TLS on SIP + 1)."""
    cfg = load_config(LAB / "callrec.toml", env={})
    switch = {
        p.get("name"): int(p.get("value"))
        for p in fs_xml("autoload_configs/switch.conf.xml").iter("param")
        if p.get("name", "").startswith("rtp-")
    }
    rtp = parse_asterisk(AST_CONF / "rtp.conf").named("general")[0]
    sofia = fs_xml("autoload_configs/sofia.conf.xml").find("profiles/profile[@name='lab']")
    fs_sip = int(expand(next(p.get("value") for p in sofia.iter("param") if p.get("name") == "sip-port")))
    ast_sip = int(parse_asterisk(AST_CONF / "pjsip.conf").named("transport-udp")[0].get("bind").rsplit(":", 1)[1])
    used: dict[str, set[int]] = {
        "freeswitch sip": {fs_sip},
        "asterisk sip": {ast_sip},
        "ESL/AMI": {n.effective_port for n in cfg.pbx},
        "postgres": {5432},
        "callrec api": {cfg.api.port},
        "freeswitch rtp": set(range(switch["rtp-start-port"], switch["rtp-end-port"] + 1)),
        "asterisk rtp": set(range(int(rtp.get("rtpstart")), int(rtp.get("rtpend")) + 1)),
    }
    owners: dict[int, str] = {}
    for who, ports in used.items():
        for port in ports:
            assert port not in owners, f"port {port}: {owners[port]} and {who}"
            assert port not in LINUX_EPHEMERAL, f"{who} uses {port}, where the phones' ports are picked"
            owners[port] = who


def _hook_files(folder: str, pattern: str) -> list[Path]:
    return sorted((REPO / folder).glob(pattern))


def test_event_socket_hook_matches_the_lab_callrec_config() -> None:
    cfg = load_config(LAB / "callrec.toml", env={})
    fs = next(n for n in cfg.pbx if n.type == "freeswitch")
    found = []
    for f in _hook_files("freeswitch_conf", "*.xml"):
        for conf in ET.parse(f).getroot().iter("configuration"):
            if conf.get("name") == "event_socket.conf":
                found.append({p.get("name"): p.get("value") for p in conf.iter("param")})
    if not found:
        pytest.skip("freeswitch_conf/ has no event_socket.conf yet (written by the FreeSWITCH hooks work)")
    (params,) = found
    assert params.get("listen-ip") == fs.host
    assert int(params.get("listen-port", "8021")) == fs.effective_port
    assert params.get("password") == fs.password, "callrec.toml's ESL password differs from freeswitch_conf/"
