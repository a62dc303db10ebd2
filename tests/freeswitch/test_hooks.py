"""The admin-facing FreeSWITCH snippets parse as FreeSWITCH XML and are secure by default."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from .fs_preprocess import Preprocessor

ROOT = Path(__file__).resolve().parents[2]


def test_dialplan_include_fires_policy_event_with_our_variables() -> None:
    tree = ET.parse(ROOT / "dialplan/freeswitch/callrec.xml")
    root = tree.getroot()
    assert root.tag == "include"
    exts = root.findall("extension")
    assert exts and all(e.get("continue") == "true" for e in exts), "must not stop the admin's own dialplan"
    actions = [a for e in exts for a in e.iter("action")]
    apps = [a.get("application") for a in actions]
    assert "bridge" not in apps and "answer" not in apps and "record_session" not in apps
    event = next(a.get("data", "") for a in actions if a.get("application") == "event")
    fields = dict(kv.split("=", 1) for kv in event.split(","))
    assert fields["Event-Name"] == "CUSTOM" and fields["Event-Subclass"] == "callrec::policy"
    for var in ("callrec_account_number", "callrec_direction", "callrec_record", "callrec_account"):
        assert fields[var] == "${" + var + "}"


def test_event_socket_is_loopback_with_acl_and_no_default_password() -> None:
    root = ET.parse(ROOT / "freeswitch_conf/event_socket.conf.xml").getroot()
    assert root.tag == "configuration" and root.get("name") == "event_socket.conf"
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] not in ("", "ClueCon")
    acl_name = params["apply-inbound-acl"]
    acl = ET.parse(ROOT / "freeswitch_conf/callrec_acl.conf.xml").getroot()
    lists = {lst.get("name"): lst for lst in acl.iter("list")}
    assert lists[acl_name].get("default") == "deny"
    assert [n.get("cidr") for n in lists[acl_name].iter("node")] == ["127.0.0.1/32"]


def test_notes_name_every_variable_the_include_uses() -> None:
    notes = (ROOT / "freeswitch_conf/NOTES.md").read_text()
    xml = (ROOT / "dialplan/freeswitch/callrec.xml").read_text()
    for var in set(re.findall(r"\$\{(callrec_[a-z_]+)\}", xml)):
        assert f"`{var}`" in notes, var


def test_real_pbx_test_routes_include_the_shipped_hook_from_the_repository() -> None:
    """tests/freeswitch/real_pbx/callrec_test.xml is installed by a symlink into the PBX's conf dir; its
    include of our hook must resolve, relative to the file's real place, to dialplan/freeswitch/callrec.xml."""
    path = ROOT / "tests/freeswitch/real_pbx/callrec_test.xml"
    root = ET.parse(path).getroot()
    assert {c.get("name") for c in root.iter("context")} == {"callrec_test", "callrec_test_phones"}
    routes = next(c for c in root.iter("context") if c.get("name") == "callrec_test")
    text = path.read_text()
    (include,) = [line for line in text.splitlines() if "X-PRE-PROCESS" in line and "callrec.xml" in line]
    target = include.split('data="', 1)[1].split('"', 1)[0]
    assert (path.parent / target).resolve() == (ROOT / "dialplan/freeswitch/callrec.xml").resolve()
    assert routes.find("extension") is not None


# ---- FreeSWITCH's pre-processor over every shipped XML file (tests/freeswitch/fs_preprocess.py) --------

SHIPPED_XML_DIRS = ("dialplan", "freeswitch_conf", "lab/docker/freeswitch", "tests/freeswitch/real_pbx")


def shipped_xml() -> list[Path]:
    return sorted(f for d in SHIPPED_XML_DIRS for f in (ROOT / d).rglob("*.xml"))


def lab_mounts(path: str) -> str:
    """A path inside the docker lab's FreeSWITCH container, as the repository file behind it."""
    compose = yaml.safe_load((ROOT / "lab/docker/docker-compose.yml").read_text())
    for volume in compose["services"]["freeswitch"]["volumes"]:
        src, dst = volume.split(":")[:2]
        if src.startswith(".") and (path == dst or path.startswith(dst + "/")):
            return str((ROOT / "lab/docker" / src).resolve()) + path[len(dst) :]
    return path


def _only_wrapper(line: str) -> bool:
    """A dropped line that held nothing but the include wrapper, an XML declaration or a comment."""
    rest = re.sub(r"<include>|</include>|<\?.*?\?>|<!--.*?-->", "", line)
    return not rest.strip()


def preprocess_problems(path: Path) -> list[str]:
    r = Preprocessor(path_map=lab_mounts).run(path)
    problems = [
        f"{d.file.name}:{d.line}: {d.cmd} {d.data!r} runs although it is in a comment"
        for d in r.directives
        if d.in_comment
    ]
    problems += [
        f"{d.file.name}:{d.line}: FreeSWITCH drops this line ({d.reason}): {d.text.strip()!r}"
        for d in r.dropped
        if not (_only_wrapper(d.text) and "<include>, </include> or <?" in d.reason)
    ]
    problems += [f"{f.name}:{n}: include {p!r} matches no file" for f, n, p in r.missing]
    problems += [f"{d.file.name}:{d.line}: {d.cmd} is not for shipped files" for d in r.not_modelled]
    problems += [f"include recursion too deep at {f}" for f in r.depth_exceeded[:1]]
    try:
        r.parse()
    except ET.ParseError as e:
        problems.append(f"not XML after pre-processing: {e}")
    return problems


@pytest.mark.parametrize("path", shipped_xml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_freeswitch_preprocessor_runs_exactly_what_a_shipped_file_shows(path: Path) -> None:
    """No directive hidden in a comment runs, no directive is on a line FreeSWITCH drops, every
    include finds its file, and the result is XML."""
    assert preprocess_problems(path) == []


def test_every_shipped_xml_directory_is_checked() -> None:
    files = {str(p.relative_to(ROOT)) for p in shipped_xml()}
    assert {
        "dialplan/freeswitch/callrec.xml",
        "dialplan/freeswitch/callrec_selftest.xml",
        "freeswitch_conf/event_socket.conf.xml",
        "lab/docker/freeswitch/conf/freeswitch.xml",
        "tests/freeswitch/real_pbx/callrec_test.xml",
    } <= files


def doc_snippet(doc: Path, after: str) -> str:
    """The first ```xml block after the first line of `doc` that mentions `after`."""
    text = doc.read_text()
    start = text.index(after)
    m = re.compile(r"```xml\n(.*?)```", re.S).search(text, start)
    assert m, f"{doc.name}: no xml block after {after!r}"
    return textwrap.dedent(m.group(1))


def fs_conf(tmp_path: Path, contexts_xml: str = "") -> Path:
    """A minimal FreeSWITCH conf dir: freeswitch.xml including dialplan/*.xml in the dialplan section."""
    conf = tmp_path / "conf"
    (conf / "dialplan").mkdir(parents=True)
    (conf / "freeswitch.xml").write_text(
        '<?xml version="1.0"?>\n<document type="freeswitch/xml">\n  <section name="dialplan">\n'
        '    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>\n  </section>\n</document>\n'
    )
    if contexts_xml:
        (conf / "dialplan" / "default.xml").write_text(contexts_xml)
    return conf


def load_dialplan(conf: Path) -> ET.Element:
    r = Preprocessor(variables={"conf_dir": str(conf)}).run(conf / "freeswitch.xml", cwd=conf)
    return r.parse().find("section[@name='dialplan']")


def test_selftest_dialplan_installed_as_selftest_md_says_is_loaded(tmp_path: Path) -> None:
    conf = fs_conf(tmp_path)
    (conf / "callrec").mkdir()
    for name in ("callrec.xml", "callrec_selftest.xml"):  # step 1: both files in one directory
        (conf / "callrec" / name).symlink_to(ROOT / "dialplan/freeswitch" / name)
    snippet = doc_snippet(ROOT / "dialplan/SELFTEST.md", "$conf/dialplan/callrec_selftest.xml")
    (conf / "dialplan" / "callrec_selftest.xml").write_text(snippet)  # step 2
    section = load_dialplan(conf)
    contexts = {c.get("name"): c for c in section.iter("context")}
    assert set(contexts) == {"callrec_selftest", "callrec_selftest_phones"}
    hook = [e.get("name") for e in contexts["callrec_selftest"].findall("extension")]
    assert {"callrec_policy_inbound", "callrec_policy"} <= set(hook)


def test_real_pbx_test_routes_installed_as_notes_say_are_loaded(tmp_path: Path) -> None:
    conf = fs_conf(tmp_path)
    (conf / "callrec_test").symlink_to(ROOT / "tests/freeswitch/real_pbx")
    snippet = doc_snippet(ROOT / "freeswitch_conf/NOTES.md", "$conf/dialplan/callrec_test.xml")
    (conf / "dialplan" / "callrec_test.xml").write_text(snippet)
    contexts = {c.get("name"): c for c in load_dialplan(conf).iter("context")}
    assert set(contexts) == {"callrec_test", "callrec_test_phones"}
    assert contexts["callrec_test"].find("extension[@name='callrec_policy']") is not None


@pytest.mark.parametrize(
    "doc,after", [("freeswitch_conf/NOTES.md", "Install the dialplan hook"), ("README.md", "**Dialplan hook**")]
)
def test_hook_installed_as_the_docs_say_runs_before_the_contexts_routes(tmp_path: Path, doc: str, after: str) -> None:
    line = doc_snippet(ROOT / doc, after).strip().removesuffix("...").strip()
    assert line.startswith('<context name="public">')
    conf = fs_conf(
        tmp_path,
        "<include>\n" + line + '\n    <extension name="route"><condition field="destination_number" expression="^1$">\n'
        '      <action application="bridge" data="user/1"/></condition></extension>\n  </context>\n</include>\n',
    )
    (conf / "callrec").mkdir()
    (conf / "callrec" / "callrec.xml").symlink_to(ROOT / "dialplan/freeswitch/callrec.xml")
    (public,) = load_dialplan(conf).iter("context")
    names = [e.get("name") for e in public.findall("extension")]
    assert names == ["callrec_policy_inbound", "callrec_feature_codes", "callrec_policy", "route"]


def test_dialplan_include_binds_the_agent_phone_codes_on_the_agent_side() -> None:
    """*1/*2/*3 (digits from callrec_*_key, defaults 1-3) are bound with bind_meta_app on the agent's
    side (b on inbound calls, a otherwise), answered on that same leg, and only fire the event the
    FreeSWITCH driver turns into a FeatureCode."""
    from controller.drivers.freeswitch import Translator
    from controller.events import FeatureCode

    root = ET.parse(ROOT / "dialplan/freeswitch/callrec.xml").getroot()
    ext = next(e for e in root.findall("extension") if e.get("name") == "callrec_feature_codes")
    defaults = {
        a.get("data", "").split("=")[0]: a.get("data", "").split("=")[1]
        for a in ext.iter("action")
        if a.get("application") == "set" and a.get("data", "").startswith("callrec_") and "_key=" in a.get("data", "")
    }
    assert defaults == {"callrec_pause_key": "1", "callrec_resume_key": "2", "callrec_record_key": "3"}
    side = next(c for c in ext.findall("condition") if c.get("field") == "${callrec_direction}")
    assert side.find("action").get("data") == "callrec_agent_side=b"  # type: ignore[union-attr]
    assert side.find("anti-action").get("data") == "callrec_agent_side=a"  # type: ignore[union-attr]
    binds = [a.get("data", "") for a in ext.iter("action") if a.get("application") == "bind_meta_app"]
    assert len(binds) == 3
    for data, code in zip(binds, ("pause", "resume", "record"), strict=True):
        key, listen, respond, app = data.split(" ", 3)
        assert key == f"${{callrec_{code}_key}}" and listen == "${callrec_agent_side}" and respond == "s"
        name, _, args = app.partition("::")  # bind_meta_app splits at the FIRST "::"
        assert name == "event"
        fields = dict(kv.split("=", 1) for kv in args.split(","))
        headers = {**fields, "Unique-ID": "agent-leg"}
        (ev,) = Translator("fs1")(headers, 0.0, 0.0)
        assert isinstance(ev, FeatureCode) and ev.leg == "agent-leg" and ev.code == code
