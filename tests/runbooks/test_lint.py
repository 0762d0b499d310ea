"""`lint`: every problem in a runbooks folder, one line each, naming the file and the field."""

from __future__ import annotations

from pathlib import Path

from aiops.runbooks.lint import catalog_ids, lint

GOOD = """\
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
    - command: journal-errors
actions: [journal-vacuum]
---
# Host disk almost full
"""
CATALOG = {"journal-vacuum", "journal-errors", "restart-service"}


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_a_good_folder_has_no_problems(tmp_path: Path) -> None:
    write(tmp_path, "disk/HostOutOfDiskSpace.md", GOOD)
    write(tmp_path, "HostOutOfMemory.md", "# Host out of memory\n")
    write(tmp_path, "HostOutOfInodes.md", "---\ntitle: Inodes\nweight: 10\ntags: [node]\n---\n")
    assert lint(tmp_path, CATALOG) == []
    assert lint(tmp_path, None) == []


def test_each_broken_runbook_is_named(tmp_path: Path) -> None:
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, "unknown_field.md", GOOD.replace("query:", "qeury:"))
    write(tmp_path, "bad_matcher.md", GOOD.replace("severity=~", "severity=="))
    write(
        tmp_path,
        "bad_template.md",
        GOOD.replace('instance="{{ labels.instance }}"}', "instance={{ labels.instance }}}", 1).replace(
            "HostOutOfDiskSpace", "HostDiskWillFill"
        ),
    )
    write(
        tmp_path,
        "bad_logql.md",
        GOOD.replace("'{instance=", "'{instance={{ labels.instance }},x=").replace(
            "HostOutOfDiskSpace", "HostDiskSlow"
        ),
    )
    write(
        tmp_path,
        "sub/unknown_action.md",
        GOOD.replace("[journal-vacuum]", "[journal-vacuum, reboot-host]")
        .replace("command: journal-errors", "command: journal-erors")
        .replace("HostOutOfDiskSpace", "HostIoStall"),
    )
    problems = lint(tmp_path, CATALOG)
    assert "unknown_field.md: evidence.metrics[0].qeury: is not a known field" in problems
    assert any(p.startswith("bad_matcher.md: match[0]: ") and "bad operator '=='" in p for p in problems)
    assert any(p.startswith("bad_template.md: evidence.metrics[0].query: ") for p in problems), problems
    assert any(p.startswith("bad_logql.md: evidence.logs[0].loki: ") for p in problems), problems
    assert "sub/unknown_action.md: actions[1]: 'reboot-host' is not an action in actions.yml" in problems
    assert (
        "sub/unknown_action.md: evidence.logs[1].command: 'journal-erors' is not an action in actions.yml"
        in (problems)
    )
    assert not any(p.startswith("good.md") for p in problems), problems
    assert len(problems) == 7, problems


def test_without_a_catalog_actions_are_not_checked(tmp_path: Path) -> None:
    write(tmp_path, "x.md", GOOD.replace("[journal-vacuum]", "[anything]"))
    assert lint(tmp_path, None) == []
    assert lint(tmp_path, set()) == [
        "x.md: actions[0]: 'anything' is not an action in actions.yml",
        "x.md: evidence.logs[1].command: 'journal-errors' is not an action in actions.yml",
    ]


def test_duplicate_claims(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "---\nalerts: [A, B]\nmatch: ['team=\"db\"', 'env!=dev']\n---\n")
    write(tmp_path, "b.md", "---\nalerts: [B]\nmatch: ['env!=\"dev\"', 'team=db']\n---\n")
    write(tmp_path, "c.md", "---\nalerts: [A]\nmatch: ['team=\"db\"']\n---\n")  # fewer matchers: fine
    assert lint(tmp_path, None) == [
        'b.md: alerts[0]: B is also claimed by a.md with the same matchers (env!="dev", team="db"); '
        "only a.md can match"
    ]


def test_bad_yaml_and_encoding(tmp_path: Path) -> None:
    write(tmp_path, "yaml.md", "---\nalerts: [A\n---\n")
    (tmp_path / "latin1.md").write_bytes("# Überlauf\n".encode("latin-1"))
    problems = lint(tmp_path, None)
    assert problems[0].startswith("latin1.md: is not UTF-8 text")
    assert problems[1].startswith("yaml.md: front matter: is not valid YAML at line 3, column ")


def test_missing_folder(tmp_path: Path) -> None:
    assert lint(tmp_path / "absent", None) == [f"{tmp_path / 'absent'}: is not a folder"]


def test_a_broken_catalog_is_reported_once(tmp_path: Path) -> None:
    write(tmp_path, "x.md", GOOD)
    write(
        tmp_path,
        "actions.yml",
        "journal-vacuum:\n  description: Vacuum the journal\n  argv: [journalctl, --vacuum-size=500M]\n"
        "  target: labels.instance\n  risk: medium\n  timeout: 1m\n"
        "journal-errors:\n  description: Errors\n  argv: [journalctl, -p, err]\n  target: labels.instance\n"
        "  risk: read\n  timeout: 20s\n",
    )
    ids = catalog_ids(tmp_path)
    assert ids == {"journal-vacuum", "journal-errors", "silence", "acknowledge"}, (
        "a broken action is still declared"
    )
    assert lint(tmp_path, ids) == [
        "actions.yml: journal-vacuum.risk: Input should be 'read', 'low' or 'high'"
    ]


def test_an_unparsable_catalog_allows_nothing(tmp_path: Path) -> None:
    write(tmp_path, "x.md", GOOD)
    write(tmp_path, "actions.yml", "journal-errors: [\n")
    problems = lint(tmp_path, catalog_ids(tmp_path))
    assert problems[0].startswith("actions.yml: is not valid YAML at line 2")
    assert problems[1:] == [
        "x.md: actions[0]: 'journal-vacuum' is not an action in actions.yml",
        "x.md: evidence.logs[1].command: 'journal-errors' is not an action in actions.yml",
    ]


def test_an_evidence_command_must_be_a_read_only_action(tmp_path: Path) -> None:
    write(
        tmp_path,
        "HostOutOfDiskSpace.md",
        GOOD.replace("- command: journal-errors", "- command: journal-vacuum"),
    )
    write(
        tmp_path,
        "actions.yml",
        "journal-vacuum:\n  description: Drop old journal files\n"
        "  argv: [journalctl, --vacuum-size=500M]\n  target: labels.instance\n  risk: low\n  timeout: 30s\n",
    )
    assert lint(tmp_path, catalog_ids(tmp_path)) == [
        "HostOutOfDiskSpace.md: evidence.logs[1].command: 'journal-vacuum' is not risk: read in actions.yml; "
        "evidence runs without an approval, so only read-only actions may gather it (list it under actions: "
        "to propose it instead)"
    ]
