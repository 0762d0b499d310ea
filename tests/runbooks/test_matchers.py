"""Alertmanager matcher syntax and semantics."""

from __future__ import annotations

import pytest

from aiops.runbooks.matchers import Matcher, parse_matcher


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity=~"warning|critical"', Matcher("severity", "=~", "warning|critical")),
        ('team="db"', Matcher("team", "=", "db")),
        ('env!="dev"', Matcher("env", "!=", "dev")),
        ('job!~"x.*"', Matcher("job", "!~", "x.*")),
        ("severity=critical", Matcher("severity", "=", "critical")),
        ("  severity = critical  ", Matcher("severity", "=", "critical")),
        ('"service.name"="api"', Matcher("service.name", "=", "api")),
        ("service.name=api", Matcher("service.name", "=", "api")),
        ('msg="say \\"hi\\"\\n"', Matcher("msg", "=", 'say "hi"\n')),
        ('host=~"db\\.example\\.com"', Matcher("host", "=~", "db\\.example\\.com")),
        ('env=""', Matcher("env", "=", "")),
    ],
)
def test_parses(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("severity==critical", "bad operator '=='"),
        ("severity>critical", "bad operator '>c'"),
        ("severity", "no operator"),
        ('="x"', "expected a label name"),
        ('job=~"(unclosed"', "bad regex '(unclosed': missing ), unterminated subpattern"),
        ('job="open', "no closing double quote"),
        ('job="x" extra', "unexpected text 'extra'"),
        ('job=a"b', "unescaped double quote"),
        ("", "empty"),
    ],
)
def test_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_matcher(text)
    assert reason in str(caught.value)


def test_regex_is_anchored_at_both_ends() -> None:
    matcher = parse_matcher('severity=~"warning|critical"')
    assert matcher.matches({"severity": "critical"})
    assert not matcher.matches({"severity": "critical-ish"})
    assert not matcher.matches({"severity": "not-warning"})
    assert not parse_matcher('a=~"x"').matches({"a": "x\n"})


def test_missing_label_is_the_empty_string() -> None:
    assert parse_matcher('env=""').matches({})
    assert parse_matcher('env!="dev"').matches({})
    assert not parse_matcher('env="dev"').matches({})
    assert parse_matcher('env=~".*"').matches({})
    assert not parse_matcher('env=~".+"').matches({})
    assert parse_matcher('env!~"prod.*"').matches({})


def test_negative_operators() -> None:
    assert not parse_matcher('env!="dev"').matches({"env": "dev"})
    assert parse_matcher('env!="dev"').matches({"env": "prod"})
    assert not parse_matcher('job!~"x.*"').matches({"job": "xyz"})
    assert parse_matcher('job!~"x.*"').matches({"job": "yx"})


def test_go_flag_group_at_the_start() -> None:
    matcher = parse_matcher('severity=~"(?i)warning|critical"')
    assert matcher.matches({"severity": "CRITICAL"})
    assert matcher.matches({"severity": "Warning"})


def test_round_trips_through_str() -> None:
    for text in ['severity=~"warning|critical"', '"service.name"!="a\\"b"', 'host=~"db\\\\.x"']:
        matcher = parse_matcher(text)
        assert parse_matcher(str(matcher)) == matcher


def test_bad_regex_in_a_constructed_matcher() -> None:
    with pytest.raises(ValueError, match="bad regex"):
        Matcher("a", "=~", "[")
