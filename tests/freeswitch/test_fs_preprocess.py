"""The pre-processor model (fs_preprocess.py) follows FreeSWITCH's documented and coded rules.

Each case is a rule of switch_xml.c `preprocess()`; FreeSWITCH's own vanilla vars.xml states the
comment rule as "YOU CAN NOT COMMENT OUT AN X-PRE-PROCESS line, Remove the line", and its include
files wrap their content in `<include>` lines "ignored ... to validate the xml".
"""

from __future__ import annotations

from pathlib import Path

from .fs_preprocess import Preprocessor, split_lines


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_wrapper_lines_are_dropped_so_a_one_line_include_includes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "x.xml", '<include>\n  <context name="x"/>\n</include>\n')
    one_line = write(tmp_path / "a.xml", '<include><X-PRE-PROCESS cmd="include" data="x.xml"/></include>\n')
    r = Preprocessor().run(one_line)
    assert r.text == "" and r.directives == []
    assert r.dropped[0].reason == "contains <include>, </include> or <?"
    three_lines = write(tmp_path / "b.xml", '<include>\n  <X-PRE-PROCESS cmd="include" data="x.xml"/>\n</include>\n')
    r = Preprocessor().run(three_lines)
    assert [c.get("name") for c in r.parse().iter("context")] == ["x"]


def test_a_directive_inside_an_xml_comment_is_executed(tmp_path: Path) -> None:
    write(tmp_path / "inc.xml", '<extension name="from_comment"/>\n')
    f = write(
        tmp_path / "c.xml",
        '<!--\n  example:\n    <X-PRE-PROCESS cmd="include" data="inc.xml"/>\n'
        '  <X-PRE-PROCESS cmd="set" data="a=1"/>\n-->\n',
    )
    r = Preprocessor().run(f)
    assert [(d.cmd, d.in_comment) for d in r.directives] == [("include", True), ("set", True)]
    assert '<extension name="from_comment"/>' in r.text and r.variables["a"] == "1"


def test_the_directive_line_is_replaced_whole(tmp_path: Path) -> None:
    write(tmp_path / "inc.xml", "<b/>\n")
    f = write(tmp_path / "d.xml", '<a><X-PRE-PROCESS cmd="include" data="inc.xml"/></a>\n')
    assert Preprocessor().run(f).text == "<b/>\n"  # <a> and </a> on that line are gone


def test_token_not_after_lt_drops_the_line_without_running_it(tmp_path: Path) -> None:
    f = write(tmp_path / "e.xml", '<!-- use X-PRE-PROCESS cmd="set" data="a=1" to set -->\n<x/>\n')
    r = Preprocessor().run(f)
    assert r.text == "<x/>\n" and "a" not in r.variables
    assert r.dropped[0].reason == "X-PRE-PROCESS not preceded by '<'"


def test_include_is_relative_to_the_including_file_and_sorted(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "b.xml", '<b/>\n<X-PRE-PROCESS cmd="include" data="deeper/*.xml"/>\n')
    write(tmp_path / "sub" / "a.xml", "<a/>\n")
    write(tmp_path / "sub" / "deeper" / "c.xml", "<c/>\n")
    f = write(tmp_path / "top.xml", '<X-PRE-PROCESS cmd="include" data="sub/*.xml"/>\n')
    assert Preprocessor().run(f).text == "<a/>\n<b/>\n<c/>\n"


def test_absolute_include_and_a_pattern_matching_nothing(tmp_path: Path) -> None:
    write(tmp_path / "abs" / "x.xml", "<x/>\n")
    f = write(tmp_path / "f.xml", f'<X-PRE-PROCESS cmd="include" data="{tmp_path}/abs/*.xml"/>\n')
    assert Preprocessor().run(f).text == "<x/>\n"
    g = write(tmp_path / "g.xml", '<X-PRE-PROCESS cmd="include" data="nothing/*.xml"/>\n<y/>\n')
    r = Preprocessor().run(g)
    assert r.text == "<y/>\n" and r.missing == [(g, 1, "nothing/*.xml")]


def test_set_trims_spaces_and_later_lines_expand_globals(tmp_path: Path) -> None:
    f = write(
        tmp_path / "v.xml",
        '<X-PRE-PROCESS cmd="set" data="domain = example.org"/>\n<d v="$${domain}" u="$${unset}" x="${chan}"/>\n',
    )
    r = Preprocessor().run(f)
    assert r.variables["domain"] == "example.org"
    assert r.text == '<d v="example.org" u="" x="${chan}"/>\n'


def test_env_set_and_commands_that_are_not_run(tmp_path: Path) -> None:
    f = write(
        tmp_path / "env.xml",
        '<X-PRE-PROCESS cmd="env-set" data="home=$HOME"/>\n<X-PRE-PROCESS cmd="exec-set" data="ip=hostname -i"/>\n',
    )
    r = Preprocessor(env={"HOME": "/home/fs"}).run(f)
    assert r.variables["home"] == "/home/fs" and "ip" not in r.variables
    assert [d.cmd for d in r.not_modelled] == ["exec-set"]


def test_old_style_comment_directives(tmp_path: Path) -> None:
    write(tmp_path / "i.xml", "<i/>\n")
    f = write(tmp_path / "o.xml", '<a/><!--#include "i.xml"--><b/>\n<!--#set "x=2"\nignored\n--><c/>\n')
    r = Preprocessor().run(f)
    assert r.text == "<a/><b/>\n<i/>\n<c/>\n"  # the rest of the line is written before the include
    assert r.variables["x"] == "2"


def test_xml_declaration_lines_are_dropped_and_lines_keep_their_endings(tmp_path: Path) -> None:
    f = write(tmp_path / "decl.xml", '<?xml version="1.0"?>\n<document/>\n')
    assert Preprocessor().run(f).text == "<document/>\n"
    assert split_lines("a\r\nb\nc") == ["a\r", "\n", "b\n", "c"]


def test_recursion_stops_at_depth_100(tmp_path: Path) -> None:
    f = write(tmp_path / "self.xml", '<s/>\n<X-PRE-PROCESS cmd="include" data="self.xml"/>\n')
    r = Preprocessor().run(f)
    assert r.text.count("<s/>") == 101 and r.depth_exceeded == [f]
