"""Runbook files: front matter, validation messages, community formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.runbooks.matchers import Matcher
from aiops.runbooks.model import LogQuery, MetricQuery, RunbookError, parse_runbook

FULL = """\
---
title: Host disk almost full
alerts: [HostOutOfDiskSpace]
match: ['severity=~"warning|critical"']
evidence:
  metrics:
    - name: free_ratio
      query: node_filesystem_avail_bytes{instance="{{ labels.instance }}"}
      range: 6h
  logs:
    - loki: '{instance="{{ labels.instance }}"} |= "No space left"'
      range: 1h
      limit: 50
    - command: journal-errors
actions: [journal-vacuum, restart-service]
---
# Symptoms

The disk fills.
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(root: Path, relative: str) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        parse_runbook(root, Path(relative))
    assert caught.value.path == Path(relative)
    return caught.value.problems


def test_full_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "disk/HostOutOfDiskSpace.md", FULL)
    runbook = parse_runbook(tmp_path, Path("disk/HostOutOfDiskSpace.md"))
    assert runbook.path == Path("disk/HostOutOfDiskSpace.md")
    assert runbook.title == "Host disk almost full"
    assert runbook.alerts == ("HostOutOfDiskSpace",)
    assert runbook.matchers == (Matcher("severity", "=~", "warning|critical"),)
    assert runbook.metrics == (
        MetricQuery(
            "free_ratio", 'node_filesystem_avail_bytes{instance="{{ labels.instance }}"}', 6 * 3600.0
        ),
    )
    assert runbook.logs == (
        LogQuery('{instance="{{ labels.instance }}"} |= "No space left"', None, 3600.0, 50),
        LogQuery(None, "journal-errors", 3600.0, None),
    )
    assert runbook.actions == ("journal-vacuum", "restart-service")
    assert runbook.body == "# Symptoms\n\nThe disk fills.\n"


def test_absolute_path_is_made_relative(tmp_path: Path) -> None:
    path = write(tmp_path, "a/B.md", FULL)
    assert parse_runbook(tmp_path, path).path == Path("a/B.md")


def test_unknown_fields_are_named(tmp_path: Path) -> None:
    write(tmp_path, "x.md", FULL.replace("query:", "qeury:").replace("actions: [", "acshuns: 1\nactions: ["))
    found = problems(tmp_path, "x.md")
    assert "evidence.metrics[0].qeury: is not a known field" in found
    assert "evidence.metrics[0].query: is required" in found
    assert "acshuns: is not a known field" in found
    assert str(RunbookError(Path("x.md"), ["a: b"])) == "x.md: a: b"


def test_bad_values_are_named(tmp_path: Path) -> None:
    text = """\
---
alerts: [A]
match: ['severity==critical']
evidence:
  metrics:
    - {name: a, query: up, range: soon}
  logs:
    - {loki: x, command: y}
    - {range: 1h}
    - {loki: x, limit: 0}
---
"""
    write(tmp_path, "x.md", text)
    found = problems(tmp_path, "x.md")
    assert any(p.startswith("match[0]: ") and "bad operator '=='" in p for p in found), found
    assert any(p.startswith("evidence.metrics[0].range: 'soon' is not a duration") for p in found), found
    assert any(p.startswith("evidence.logs[0]: needs exactly one of loki") for p in found), found
    assert any(p.startswith("evidence.logs[1]: needs exactly one of loki") for p in found), found
    assert any(p.startswith("evidence.logs[2].limit: ") for p in found), found


def test_bad_regex_names_the_regex_error(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "---\nalerts: [A]\nmatch: ['job=~\"(x\"']\n---\n")
    (problem,) = problems(tmp_path, "x.md")
    assert problem.startswith("match[0]: ")
    assert "bad regex '(x': missing )" in problem


def test_bad_yaml_gives_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "---\ntitle: ok\nalerts: [A\nmatch: x\n---\nbody\n")
    (problem,) = problems(tmp_path, "x.md")
    assert problem.startswith("front matter: is not valid YAML at line 4, column ")


def test_unclosed_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "---\nalerts: [A]\n# Title\n")
    assert problems(tmp_path, "x.md") == ["front matter: the opening --- on line 1 has no closing --- line"]


def test_front_matter_that_is_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "---\n- a\n- b\n---\n")
    assert problems(tmp_path, "x.md") == [
        "front matter: must be a mapping of fields (title, alerts, …), not a list"
    ]


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_bytes("# Überlauf\n".encode("latin-1"))
    (problem,) = problems(tmp_path, "x.md")
    assert problem.startswith("is not UTF-8 text")


def test_utf8_with_bom(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_bytes("\ufeff---\nalerts: [A]\n---\n# 磁盘满\n".encode())
    runbook = parse_runbook(tmp_path, Path("x.md"))
    assert runbook.alerts == ("A",)
    assert runbook.title == "磁盘满"


def test_hugo_front_matter_is_not_aiops_front_matter(tmp_path: Path) -> None:
    text = "---\ntitle: Host out of memory\nweight: 10\ndate: 2024-01-02\ntags: [node]\naliases: [/x]\n---\n# Other\n"
    write(tmp_path, "HostOutOfMemory.md", text)
    runbook = parse_runbook(tmp_path, Path("HostOutOfMemory.md"))
    assert runbook.title == "Host out of memory"
    assert (runbook.alerts, runbook.matchers, runbook.metrics, runbook.logs, runbook.actions) == ((),) * 5
    assert runbook.body == "# Other\n"


def test_site_keys_next_to_aiops_keys(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "---\ntitle: T\nweight: 10\ntags: [node]\nalerts: [A]\n---\n")
    assert parse_runbook(tmp_path, Path("x.md")).alerts == ("A",)


def test_hugo_toml_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "x.md", '+++\ntitle = "From TOML"\nweight = 3\n+++\n# Heading\n')
    runbook = parse_runbook(tmp_path, Path("x.md"))
    assert runbook.title == "From TOML"
    assert runbook.body == "# Heading\n"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("# Host out of memory\n\ntext\n", "Host out of memory"),
        ("intro\n\n## Sub\n# Main title #\n", "Main title"),
        ("```\n# not a title\n```\n# Real\n", "Real"),
        ("---\ntitle: 3\n---\n# From heading\n", "From heading"),
        ("no heading at all\n", "KubePodCrashLooping"),
        ("", "KubePodCrashLooping"),
    ],
)
def test_title_fallbacks(tmp_path: Path, text: str, title: str) -> None:
    write(tmp_path, "KubePodCrashLooping.md", text)
    assert parse_runbook(tmp_path, Path("KubePodCrashLooping.md")).title == title


def test_unreadable_file(tmp_path: Path) -> None:
    assert problems(tmp_path, "missing.md")[0].startswith("cannot be read")
