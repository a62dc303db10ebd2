"""The admin-facing Asterisk snippets: the dialplan hook passes asterisklint and, evaluated the way
Asterisk runs it, produces the UserEvent the driver turns into a PolicyHint; manager.conf grants the
least privilege the driver needs, on loopback, with the channelvars the driver reads."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.drivers.ami_translate import (
    POLICY_KEYS,
    VAR_FEATURE_RESULT,
    VAR_FILES,
    VAR_MIXMON,
    VAR_RECORDING,
    AmiTranslator,
)
from controller.drivers.asterisk import AsteriskDriver
from controller.events import PolicyHint
from lab.ami_sim import DEFAULT_CHANNELVARS

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "dialplan" / "asterisk" / "callrec.conf"
MANAGER = ROOT / "asterisk_conf" / "manager.conf"
LINT = Path(sys.executable).with_name("asterisklint")
WRAPPER = """[general]

[globals]

#include "callrec.conf"

[from-trunk]
exten => _+1NXXNXXXXXX,1,Gosub(callrec-policy,s,1(inbound,${EXTEN},main))
 same => n,Dial(PJSIP/2001,30)
 same => n,Hangup()
"""


def lint(tmp_path: Path, hook_text: str) -> subprocess.CompletedProcess[str]:
    if not LINT.exists() and not shutil.which("asterisklint"):
        pytest.fail("asterisklint is not installed (pip install -e '.[test]')")
    (tmp_path / "callrec.conf").write_text(hook_text)
    (tmp_path / "extensions.conf").write_text(WRAPPER)
    exe = str(LINT) if LINT.exists() else "asterisklint"
    return subprocess.run(
        [exe, "dialplan-check", "extensions.conf"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_hook_passes_asterisklint(tmp_path: Path) -> None:
    r = lint(tmp_path, HOOK.read_text())
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_asterisklint_would_catch_a_broken_hook(tmp_path: Path) -> None:
    broken = HOOK.read_text().replace("Return()", "Retrun()").replace("${ARG4}:)})", "${ARG4}:)")
    r = lint(tmp_path, broken)
    assert r.returncode != 0 and "Retrun" in r.stdout + r.stderr


def _hook_lines() -> list[str]:
    body = HOOK.read_text().split("\n[callrec-policy]\n", 1)[1].split("\n[", 1)[0]
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith(";")]


def _expand(text: str, variables: dict[str, str]) -> str:
    """${NAME} substitution and the one ${IF(...)} the hook uses, as Asterisk evaluates them."""
    m = re.search(r'\$\{IF\(\$\["\$\{ARG4\}" = "force" \| "\$\{ARG4\}" = "never"\]\?\$\{ARG4\}:\)\}', text)
    if m:
        arg4 = variables.get("ARG4", "")
        text = text[: m.start()] + (arg4 if arg4 in ("force", "never") else "") + text[m.end() :]
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda mm: variables.get(mm.group(1), ""), text)


def run_hook(args: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Execute the routine's Set()/UserEvent() lines; returns channel variables and the event body."""
    variables = {f"ARG{i + 1}": a for i, a in enumerate(args)}
    body: list[tuple[str, str]] = []
    lines = _hook_lines()
    assert lines[0].startswith("exten => s,1,") and lines[-1] == "same => n,Return()"
    for ln in lines:
        app = ln.split(",", 2)[2] if ln.startswith("exten") else ln.removeprefix("same => n,")
        if app.startswith("Set("):
            name, _, value = app[4:-1].partition("=")
            variables[name] = _expand(value, variables)
        elif app.startswith("UserEvent("):
            parts = _expand(app[len("UserEvent(") : -1], variables).split(",")
            body = [("UserEvent", parts[0])] + [tuple(p.split(": ", 1)) for p in parts[1:]]  # type: ignore[misc]
    return variables, body


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["inbound", "+15557000100", "main"],
            {"account": "main", "account_number": "+15557000100", "direction": "inbound"},
        ),
        (
            ["outbound", "+15557000100", "", "never"],
            {"account_number": "+15557000100", "direction": "outbound", "record": "never"},
        ),
        (
            ["inbound", "+15557000100", "acme", "force"],
            {"account": "acme", "account_number": "+15557000100", "direction": "inbound", "record": "force"},
        ),
        (
            ["inbound", "+15557000100", "main", "maybe"],
            {"account": "main", "account_number": "+15557000100", "direction": "inbound"},
        ),
    ],
)
def test_hook_userevent_becomes_the_policy_hint(args: list[str], expected: dict[str, str]) -> None:
    variables, body = run_hook(args)
    assert variables["CALLREC_DIRECTION"] == args[0]
    snapshot = [("Event", "UserEvent"), ("Channel", "PJSIP/trunk-00000001"), ("Uniqueid", "1.1"), ("Linkedid", "1.1")]
    frame = dict(snapshot + body)
    (hint,) = AmiTranslator("ast1").feed(frame, 0.0, 0.0)
    assert isinstance(hint, PolicyHint) and hint.leg == "1.1"
    assert hint.values == expected
    assert {k for k, _ in body} - {"UserEvent"} <= set(POLICY_KEYS)


def _manager() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";",), strict=True)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(MANAGER.read_text())
    return cp


def test_manager_user_is_least_privilege_on_loopback() -> None:
    cp = _manager()
    assert cp["general"]["bindaddr"] == "127.0.0.1"
    user = cp["callrec"]
    assert set(user["read"].split(",")) == {"call", "user"}
    assert set(user["write"].split(",")) == {"system", "call"}
    assert user["permit"].startswith("127.0.0.1/")
    text = MANAGER.read_text()
    assert text.index("deny = 0.0.0.0") < text.index("permit = 127.0.0.1")  # the last matching rule wins
    # the driver asks for exactly the event classes it is allowed to read
    assert set(AsteriskDriver("x").events_filter.split(",")) == set(user["read"].split(","))


def test_channelvars_cover_what_the_hook_sets_and_the_driver_reads() -> None:
    channelvars = _manager()["general"]["channelvars"].split(",")
    hook_vars = {m for m in re.findall(r"Set\((CALLREC_[A-Z_]+)=", HOOK.read_text())}
    # the phone-code Gosub clears the answer the driver writes (Setvar); no event needs to carry it
    assert hook_vars - {VAR_FEATURE_RESULT} <= set(channelvars)
    assert {VAR_RECORDING, VAR_FILES, VAR_MIXMON} <= set(channelvars)
    assert tuple(channelvars) == DEFAULT_CHANNELVARS  # the simulator behaves like this manager.conf


FEATURES = ROOT / "asterisk_conf" / "features.conf"


def _section(name: str) -> list[str]:
    body = HOOK.read_text().split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith(";")]


def test_phone_codes_applicationmap_matches_the_dialplan() -> None:
    """Every applicationmap code runs a Gosub that exists, on the dialling channel (self); the names
    the dialplan offers in DYNAMIC_FEATURES are exactly those; the agent gets the codes, the customer
    only the hidden tone code."""
    cp = configparser.ConfigParser(delimiters=("=>",), inline_comment_prefixes=(";",), interpolation=None)
    cp.read_string(FEATURES.read_text())
    amap = {k: v.strip() for k, v in cp["applicationmap"].items()}
    assert set(amap) == {"callrec_pause", "callrec_resume", "callrec_record", "callrec_tone"}
    codes = {}
    for name, spec in amap.items():
        digits, activate, app = spec.split(",", 2)
        assert activate == "self"
        m = re.fullmatch(r"Gosub\(callrec-feature,(s|tone),1(?:\((\w+)\))?\)", app)
        assert m, app
        codes[name] = (digits, m.group(1), m.group(2))
    assert codes["callrec_pause"] == ("*1", "s", "pause") and codes["callrec_resume"] == ("*2", "s", "resume")
    assert codes["callrec_record"] == ("*3", "s", "record") and codes["callrec_tone"][:2] == ("D", "tone")
    text = HOOK.read_text()
    assert "exten => s,1," in text.split("\n[callrec-feature]\n", 1)[1] and "exten => tone,1," in text
    keep = "DYNAMIC_FEATURES=${IF($[${LEN(${DYNAMIC_FEATURES})} > 0]?${DYNAMIC_FEATURES}#:)}"
    agent = set(_section("callrec-agent")[0].split(keep, 1)[1][:-1].split("#"))
    customer = set(_section("callrec-customer")[0].split(keep, 1)[1][:-1].split("#"))
    assert agent == set(amap) and customer == {"callrec_tone"}
    policy = [ln for ln in _section("callrec-policy") if keep in ln]
    assert [set(ln.split(keep, 1)[1][:-1].split("#")) for ln in policy] == [{"callrec_tone"}, set(amap)]


def test_phone_code_gosub_asks_with_the_userevent_the_driver_reads() -> None:
    from controller.events import FeatureCode

    lines = _section("callrec-feature")
    (ask,) = [ln for ln in lines if "UserEvent(" in ln]
    parts = ask.split("UserEvent(", 1)[1][:-1].split(",")
    assert parts[0] == "CallrecFeature"
    body = [tuple(p.split(": ", 1)) for p in parts[1:]]
    for code in ("pause", "resume", "record"):
        frame = dict(
            [("Event", "UserEvent"), ("Channel", "PJSIP/2001-00000002"), ("Uniqueid", "1.2"), ("Linkedid", "1.1")]
            + [("UserEvent", "CallrecFeature")]
            + [(k, v.replace("${ARG1}", code)) for k, v in body]
        )
        (ev,) = AmiTranslator("ast1").feed(frame, 0.0, 0.0)
        assert isinstance(ev, FeatureCode) and ev.leg == "1.2" and ev.code == code
    # it waits for the driver's answer, then plays the tone the driver set, on this channel only
    assert any('While($["${CALLREC_FEATURE_RESULT}" = ""' in ln for ln in lines)
    assert any(ln.endswith("PlayTones(${CALLREC_TONE})") for ln in lines)
