"""render(): query templates filled with untrusted label values without changing the query's structure."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from aiops.runbooks.render import Language, RenderError, render, sample_labels
from tests.support.binaries import require

SAFE = "SAFEVALUE"

HOSTILE = [
    '"} or vector(1) #',
    '\\"} or vector(1)',
    'a"b',
    "\\",
    "\\\\",
    "trailing\\",
    "line\nbreak",
    "\r\t\x01\x1b\x7f",
    "{",
    "}",
    "`",
    "x`} or vector(1) #",
    "'",
    "#",
    "\\x41\\u0041",
    "{{ labels.job }}",
    "{% if true %}",
    "\u2028\u2029\u202e\ufeff\x85",
    "é中文\U0001f600",
    "",
]

TEMPLATES: list[tuple[str, Language]] = [
    (
        'node_filesystem_avail_bytes{instance="{{ labels.instance }}", mountpoint="{{ labels.mountpoint }}"} < 1e9',
        "promql",
    ),
    ('up{instance=~"{{ labels.instance }}(:9100)?"} # the exporter', "promql"),
    ('label_replace(up, "x", "prefix-{{ labels.instance }}-suffix", "", "")', "promql"),
    ('{instance="{{ labels.instance }}"} |= "No space left" |~ "{{ labels.mountpoint }}.*full"', "logql"),
    ('sum(rate({job="node"} != `debug` |= "{{ labels.instance }}" [5m]))', "logql"),
]


# --- a small Go-string tokenizer: the test's independent view of a query's structure -----------------------

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def split_query(query: str) -> tuple[str, list[str]]:
    """(everything outside string literals with each literal replaced by `<S>`, the decoded literals).

    Go's rules, as PromQL and LogQL lex: "…" and '…' with backslash escapes, `…` raw, # comments to end of line.
    """
    skeleton: list[str] = []
    literals: list[str] = []
    index = 0
    while index < len(query):
        character = query[index]
        if character in "\"'":
            literal, index = _quoted(query, index)
            literals.append(literal)
            skeleton.append("<S>")
        elif character == "`":
            end = query.index("`", index + 1)
            literals.append(query[index + 1 : end])
            skeleton.append("<S>")
            index = end + 1
        elif character == "#":
            end = query.find("\n", index)
            end = len(query) if end == -1 else end
            skeleton.append(query[index:end])
            index = end
        else:
            skeleton.append(character)
            index += 1
    return "".join(skeleton), literals


def _quoted(query: str, start: int) -> tuple[str, int]:
    quote = query[start]
    out = bytearray()
    index = start + 1
    while True:
        character = query[index]  # IndexError: unterminated
        assert character != "\n", f"raw line break inside a string literal in {query!r}"
        if character == quote:
            return out.decode("utf-8"), index + 1
        if character != "\\":
            out += character.encode("utf-8")
            index += 1
            continue
        escape = query[index + 1]
        if escape in _SIMPLE:
            out += _SIMPLE[escape].encode()
            index += 2
        elif escape == quote:
            out += quote.encode()
            index += 2
        elif escape in "01234567":
            out.append(int(query[index + 1 : index + 4], 8))
            index += 4
        elif escape == "x":
            out.append(int(query[index + 2 : index + 4], 16))
            index += 4
        elif escape in "uU":
            width = 4 if escape == "u" else 8
            digits = query[index + 2 : index + 2 + width]
            assert re.fullmatch(r"[0-9a-fA-F]+", digits) and len(digits) == width
            out += chr(int(digits, 16)).encode("utf-8")
            index += 2 + width
        else:
            raise AssertionError(f"invalid escape \\{escape} in {query!r}")


def test_the_tokenizer_itself() -> None:
    assert split_query('a{b="x\\"y", c=~`z`} |= "\\x41\\u00e9\\n" # c "') == (
        'a{b=<S>, c=~<S>} |= <S> # c "',
        ['x"y', "z", "Aé\n"],
    )


# --- rendering ------------------------------------------------------------------------------------------------


def test_renders_labels_into_a_query() -> None:
    query = render(
        'node_filesystem_avail_bytes{instance="{{ labels.instance }}", mountpoint="{{ labels.mountpoint }}"}',
        {"instance": "node-1:9100", "mountpoint": "/var"},
        "promql",
    )
    assert query == 'node_filesystem_avail_bytes{instance="node-1:9100", mountpoint="/var"}'


def test_renders_a_logql_query_with_annotations() -> None:
    query = render(
        '{instance="{{ labels.instance }}"} |= "{{ annotations.needle }}"',
        {"instance": "node-1"},
        "logql",
        annotations={"needle": "No space left"},
    )
    assert query == '{instance="node-1"} |= "No space left"'


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize(("template", "language"), TEMPLATES)
def test_a_hostile_value_stays_inside_its_string(template: str, language: Language, hostile: str) -> None:
    safe_skeleton, safe_literals = split_query(render(template, _labels(SAFE), language))
    skeleton, literals = split_query(render(template, _labels(hostile), language))
    assert skeleton == safe_skeleton
    assert any(SAFE in literal for literal in safe_literals)
    assert literals == [literal.replace(SAFE, hostile) for literal in safe_literals]


def test_the_escaping_is_the_go_escaping() -> None:
    query = render('x{a="{{ labels.a }}"}', {"a": '\\"\n\r\t\x01\x7f\u2028é'}, "promql")
    assert query == 'x{a="\\\\\\"\\n\\r\\t\\x01\\x7f\\u2028é"}'


def test_filters_run_before_the_escaping() -> None:
    query = render('x{a="{{ (\'"} or vector(1) #\' ~ labels.a) | upper }}"}', {"a": "b"}, "promql")
    assert split_query(query) == ("x{a=<S>}", ['"} OR VECTOR(1) #B'])


def test_re_filter_escapes_regex_metacharacters() -> None:
    query = render('up{instance=~"{{ labels.instance | re }}"}', {"instance": "a.b+c"}, "promql")
    assert query == 'up{instance=~"a\\\\.b\\\\+c"}'
    assert split_query(query)[1] == ["a\\.b\\+c"]


@pytest.mark.parametrize("value", ["a.b+c", "(x)|[y]{2}^$*?\\", "plain", "10.0.0.1:9100"])
def test_re_filter_makes_the_regex_match_the_value_literally(value: str) -> None:
    query = render('up{instance=~"{{ labels.instance | re }}"}', {"instance": value}, "promql")
    pattern = split_query(query)[1][0]
    assert re.fullmatch(pattern, value)
    assert value == "plain" or not re.fullmatch(pattern, "X" + value[1:])


def test_values_up_to_the_limit_render() -> None:
    assert render('x{a="{{ labels.a }}"}', {"a": "v" * 4096}, "promql") == f'x{{a="{"v" * 4096}"}}'


def test_labels_named_like_mapping_methods_are_labels() -> None:
    query = render(
        'x{a="{{ labels.items }}", b="{{ labels.values }}"}', {"items": "1", "values": "2"}, "promql"
    )
    assert query == 'x{a="1", b="2"}'


def test_non_string_results_are_rendered() -> None:
    assert render('x{a="{{ labels.a | length }}"}', {"a": "abc"}, "promql") == 'x{a="3"}'


def test_sample_labels_render_the_readme_example() -> None:
    labels = sample_labels()
    assert {"alertname", "instance", "job", "severity", "mountpoint", "namespace", "pod"} <= labels.keys()
    query = render('node_filesystem_avail_bytes{instance="{{ labels.instance }}"}', labels, "promql")
    assert query == f'node_filesystem_avail_bytes{{instance="{labels["instance"]}"}}'


# --- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("x{a={{ labels.a }}}", "outside any string literal"),
        ("x > {{ labels.a }}", "outside any string literal"),
        ('x{a="b"} and {{ labels.a }}', "outside any string literal"),
        ("x{a=`{{ labels.a }}`}", "raw string"),
        ("x{a='{{ labels.a }}'}", "'…' string"),
        ('x{a="\\{{ labels.a }}"}', "after a backslash"),
        ("x # {{ labels.a }}", "# comment"),
        ('{% if labels.a %}x{a="1"}{% endif %}', "statements are not allowed"),
        ('{% raw %}x{a="1"}{% endraw %}', "statements are not allowed"),
        ('x{a="1"}{# note #}', "comments are not allowed"),
        ('x{a="1"} # a `tick', "cannot contain a back-tick"),
        ('x{a="1\n"}', "cannot span lines"),
        ('x{a="1}', "ends inside a string literal"),
        ('x{a="{{ labels.a "}}', "not valid Jinja"),
    ],
)
def test_unsafe_templates_are_refused(template: str, reason: str) -> None:
    with pytest.raises(RenderError, match=re.escape(reason)):
        render(template, {"a": "1"}, "promql")


def test_an_escaped_quote_in_the_template_keeps_the_string_open() -> None:
    query = render('x{a="b\\"{{ labels.a }}"}', {"a": '"} or vector(1)'}, "promql")
    assert split_query(query) == ("x{a=<S>}", ['b""} or vector(1)'])


def test_a_missing_label_is_named() -> None:
    with pytest.raises(RenderError, match="label 'mountpoint' is not on the alert"):
        render('x{m="{{ labels.mountpoint }}"}', {"instance": "a"}, "promql")


def test_a_missing_annotation_is_named() -> None:
    with pytest.raises(RenderError, match="annotation 'summary' is not on the alert"):
        render('x{m="{{ annotations.summary }}"}', {}, "logql")


def test_unknown_names_are_refused() -> None:
    with pytest.raises(RenderError, match="'range' is not defined"):
        render('x{m="{{ range(3) }}"}', {}, "promql")


@pytest.mark.parametrize(
    ("value", "reason"),
    [("a\x00b", "NUL"), ("a\ud800b", "surrogate"), ("v" * 4097, "4097 characters long")],
)
def test_values_that_cannot_be_made_safe_are_refused(value: str, reason: str) -> None:
    with pytest.raises(RenderError, match=reason) as caught:
        render('x{a="{{ labels.a }}"}', {"a": value}, "promql")
    assert "label 'a'" in str(caught.value)


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(RenderError):
        render('x{a="{{ labels.__class__.__mro__ }}"}', {"a": "1"}, "promql")
    with pytest.raises(RenderError):
        render("x{a=\"{{ ''.__class__.__subclasses__() }}\"}", {}, "promql")


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(RenderError, match="unknown query language 'sql'"):
        render('x{a="1"}', {}, "sql")  # type: ignore[arg-type]


# --- the real PromQL parser -------------------------------------------------------------------------------


def test_promtool_parses_queries_with_hostile_values(tmp_path: Path) -> None:
    template = (
        'node_filesystem_avail_bytes{instance="{{ labels.instance }}", mountpoint=~"{{ labels.m | re }}"}'
    )
    rules = ["groups:", "- name: render", "  rules:"]
    for index, hostile in enumerate(HOSTILE):
        query = render(template, {"instance": hostile, "m": hostile}, "promql")
        rules += [f"  - record: rendered_{index}", f"    expr: '{query.replace(chr(39), chr(39) * 2)}'"]
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(rules) + "\n", encoding="utf-8")
    result = subprocess.run(
        [require("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _labels(instance: str) -> dict[str, str]:
    return {"instance": instance, "mountpoint": "/var/lib/docker"}
