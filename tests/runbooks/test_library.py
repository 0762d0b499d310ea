"""Matching alerts to runbooks: each rule, the order between them, live reloads and the recorded commit."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.i18n import say
from aiops.models import Alert
from aiops.runbooks.library import UNCOMMITTED, RunbookLibrary, git_commit


def alert(name: str = "HostOutOfDiskSpace", runbook_url: str | None = None, **labels: str) -> Alert:
    annotations = {"runbook_url": runbook_url} if runbook_url is not None else {}
    return Alert(
        fingerprint="f1",
        status="firing",
        labels={"alertname": name, **labels},
        annotations=annotations,
        starts_at=datetime(2024, 1, 1, tzinfo=UTC),
        ends_at=None,
        generator_url="",
    )


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def claims(alerts: str, *matchers: str) -> str:
    listed = ", ".join(f"'{m}'" for m in matchers)
    return f"---\nalerts: [{alerts}]\nmatch: [{listed}]\n---\n# Runbook\n"


@pytest.fixture
def library(tmp_path: Path) -> RunbookLibrary:
    return RunbookLibrary(tmp_path, rescan_after=0)  # every lookup lists the folder


# (a) runbook_url


@pytest.mark.parametrize(
    "url",
    [
        "disk/HostOutOfDiskSpace.md",
        "./disk/HostOutOfDiskSpace.md",
        "runbooks/disk/HostOutOfDiskSpace.md",
        "https://git.example.com/ops/runbooks/-/blob/main/runbooks/disk/HostOutOfDiskSpace.md",
        "https://github.com/acme/ops/blob/main/runbooks/disk/HostOutOfDiskSpace.md?plain=1#diagnosis",
        "http://git.example.com/raw/disk/HostOutOfDiskSpace.md",
        "https://git.example.com/x/disk/Host%4FutOfDiskSpace.md",
    ],
)
def test_runbook_url_points_into_the_folder(tmp_path: Path, library: RunbookLibrary, url: str) -> None:
    write(tmp_path, "disk/HostOutOfDiskSpace.md", "# Disk\n")
    write(tmp_path, "HostOutOfDiskSpace.md", claims("HostOutOfDiskSpace"))  # would win by rules (b) and (c)
    found = library.match(alert(runbook_url=url))
    assert (found.path, str(found.reason)) == ("disk/HostOutOfDiskSpace.md", "runbook_url annotation")


def test_runbook_url_as_file_url_and_absolute_path(tmp_path: Path, library: RunbookLibrary) -> None:
    path = write(tmp_path, "disk/Other.md", "# Disk\n")
    assert library.match(alert(runbook_url=path.as_uri())).path == "disk/Other.md"
    assert library.match(alert(runbook_url=str(path))).path == "disk/Other.md"


def test_runbook_url_takes_the_longest_existing_suffix(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "HostOutOfDiskSpace.md", "# Root one\n")
    write(tmp_path, "disk/HostOutOfDiskSpace.md", "# Disk one\n")
    url = "https://git.example.com/ops/-/blob/main/runbooks/disk/HostOutOfDiskSpace.md"
    assert library.match(alert("Unrelated", runbook_url=url)).path == "disk/HostOutOfDiskSpace.md"
    url = "https://git.example.com/ops/-/blob/main/runbooks/net/HostOutOfDiskSpace.md"
    assert library.match(alert("Unrelated", runbook_url=url)).path == "HostOutOfDiskSpace.md"


@pytest.mark.parametrize(
    "url",
    [
        "https://wiki.example.com/runbooks/disk-full",
        "https://git.example.com/ops/runbooks/disk/Missing.md",
        "ftp://example.com/disk/HostOutOfDiskSpace.md",
        "file:///etc/disk/HostOutOfDiskSpace.md",
        "../../../disk/HostOutOfDiskSpace.md/..",
        "",
    ],
)
def test_runbook_url_elsewhere_falls_through(tmp_path: Path, library: RunbookLibrary, url: str) -> None:
    write(tmp_path, "disk/HostOutOfDiskSpace.md", "# Disk\n")
    write(tmp_path, "HostOutOfDiskSpace.md", claims("HostOutOfDiskSpace"))
    found = library.match(alert(runbook_url=url))
    assert (found.path, str(found.reason)) == ("HostOutOfDiskSpace.md", "front matter alerts")


# (b) front matter


def test_front_matter_alerts_and_matchers(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "critical.md", claims("HostOutOfDiskSpace", 'severity="critical"'))
    write(tmp_path, "warning.md", claims("HostOutOfDiskSpace", 'severity=~"warn.*"'))
    found = library.match(alert(severity="critical"))
    assert (found.path, str(found.reason)) == ("critical.md", "front matter alerts + 1 matcher")
    assert library.match(alert(severity="warning")).path == "warning.md"
    none = library.match(alert(severity="info"))
    assert none.path is None
    assert none.commit is None
    assert str(none.reason).startswith("no runbook for HostOutOfDiskSpace: ")


def test_most_matchers_wins_then_path_order(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "a_general.md", claims("HostOutOfDiskSpace"))
    write(tmp_path, "b_db.md", claims("HostOutOfDiskSpace", 'team="db"'))
    write(tmp_path, "c_db_prod.md", claims("HostOutOfDiskSpace", 'team="db"', 'env!="dev"'))
    write(tmp_path, "d_db_prod_too.md", claims("HostOutOfDiskSpace", 'team="db"', 'env="prod"'))
    found = library.match(alert(team="db", env="prod"))
    assert (found.path, str(found.reason)) == ("c_db_prod.md", "front matter alerts + 2 matchers")
    assert library.match(alert(team="db", env="dev")).path == "b_db.md"
    assert library.match(alert(team="web")).path == "a_general.md"


def test_front_matter_before_file_name(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "HostOutOfDiskSpace.md", "# Named after it\n")
    write(tmp_path, "storage.md", claims("HostOutOfDiskSpace, HostDiskWillFillIn24Hours"))
    assert library.match(alert()).path == "storage.md"
    assert library.match(alert("HostDiskWillFillIn24Hours")).path == "storage.md"


# (c) file name


def test_file_name_case_sensitive_first(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "a/hostoutofdiskspace.md", "# lower\n")
    write(tmp_path, "b/HostOutOfDiskSpace.md", "# exact\n")
    found = library.match(alert())
    assert (found.path, str(found.reason)) == ("b/HostOutOfDiskSpace.md", "file name")


def test_file_name_ignoring_case(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "kubernetes/kubepodcrashlooping.md", "# Crash looping\n")
    found = library.match(alert("KubePodCrashLooping"))
    assert (found.path, str(found.reason)) == (
        "kubernetes/kubepodcrashlooping.md",
        "file name (ignoring case)",
    )


def test_file_name_does_not_override_front_matter(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "HostOutOfDiskSpace.md", claims("HostOutOfDiskSpace", 'severity="critical"'))
    write(tmp_path, "HostOutOfMemory.md", claims("HostMemoryPressure"))
    write(tmp_path, "KubePodCrashLooping.md", "---\nevidence: {metrics: [{name: up, query: up}]}\n---\n")
    assert library.match(alert(severity="critical")).path == "HostOutOfDiskSpace.md"
    assert library.match(alert(severity="info")).path is None  # its matchers said no
    assert library.match(alert("HostOutOfMemory")).path is None  # it covers another alert
    assert (
        str(library.match(alert("KubePodCrashLooping")).reason) == "file name"
    )  # front matter without alerts


def test_no_runbook_is_said_plainly(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "Other.md", "# Other\n")
    found = library.match(alert("NodeDown", runbook_url="https://wiki.example.com/NodeDown"))
    assert found.path is None
    assert found.commit is None
    assert str(found.reason) == (
        "no runbook for NodeDown: runbook_url https://wiki.example.com/NodeDown is not in the runbooks folder; "
        "none of 1 runbook claims it in front matter and no file is named NodeDown.md"
    )
    assert say(found.reason, "zh-CN") == (
        "没有处置手册覆盖 NodeDown：runbook_url https://wiki.example.com/NodeDown 不在处置手册目录中；"
        "1 份处置手册的 front matter 都没有列出它，也没有名为 NodeDown.md 的文件"
    )


def test_missing_folder(tmp_path: Path) -> None:
    found = RunbookLibrary(tmp_path / "absent").match(alert())
    assert found.path is None
    assert "does not exist" in str(found.reason)


def test_broken_files_are_skipped_and_reported(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "HostOutOfDiskSpace.md", "---\nalerts: [HostOutOfDiskSpace]\nmatch: ['a==b']\n---\n")
    write(tmp_path, "disk/HostOutOfDiskSpace.md", "# Disk\n")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe")
    assert library.match(alert()).path == "disk/HostOutOfDiskSpace.md"
    assert [error.path.as_posix() for error in library.problems()] == ["HostOutOfDiskSpace.md", "bad.md"]
    assert [runbook.path.as_posix() for runbook in library.runbooks()] == ["disk/HostOutOfDiskSpace.md"]


def test_hidden_folders_and_other_files_are_ignored(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, ".git/HostOutOfDiskSpace.md", "# hidden\n")
    write(tmp_path, "HostOutOfDiskSpace.txt", "# not markdown\n")
    assert library.runbooks() == []
    assert library.match(alert()).path is None


# Live changes


def test_changes_are_picked_up_without_a_restart(tmp_path: Path) -> None:
    library = RunbookLibrary(tmp_path, rescan_after=0)  # every lookup lists the folder
    path = write(tmp_path, "storage.md", claims("HostOutOfDiskSpace"))
    assert library.match(alert()).path == "storage.md"
    first = library.runbooks()[0]

    path.write_text(claims("HostOutOfMemory"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert library.match(alert()).path is None
    assert library.match(alert("HostOutOfMemory")).path == "storage.md"

    write(tmp_path, "new/HostOutOfDiskSpace.md", "# New\n")
    assert library.match(alert()).path == "new/HostOutOfDiskSpace.md"
    path.unlink()
    assert library.match(alert("HostOutOfMemory")).path is None
    assert first.alerts == ("HostOutOfDiskSpace",)


def test_a_listing_serves_the_lookups_of_the_next_moment_then_changes_show(tmp_path: Path) -> None:
    library = RunbookLibrary(tmp_path, rescan_after=0.5)
    write(tmp_path, "storage.md", claims("HostOutOfDiskSpace"))
    assert library.match(alert()).path == "storage.md"
    write(tmp_path, "new/HostOutOfMemory.md", "# New\n")
    assert library.match(alert("HostOutOfMemory")).path is None, "a storm's lookups share one listing"
    time.sleep(0.6)
    assert library.match(alert("HostOutOfMemory")).path == "new/HostOutOfMemory.md"


def test_unchanged_files_are_not_parsed_again(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "a.md", "# A\n")
    write(tmp_path, "b.md", "# B\n")
    before = {runbook.path: runbook for runbook in library.runbooks()}
    write(tmp_path, "b.md", "# B, longer\n")
    after = {runbook.path: runbook for runbook in library.runbooks()}
    assert after[Path("a.md")] is before[Path("a.md")]
    assert after[Path("b.md")].title == "B, longer"


def test_a_file_fixed_later_is_picked_up(tmp_path: Path, library: RunbookLibrary) -> None:
    path = write(tmp_path, "storage.md", "---\nalerts: [HostOutOfDiskSpace\n---\n")
    assert library.match(alert()).path is None
    assert len(library.problems()) == 1
    path.write_text(claims("HostOutOfDiskSpace"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert library.match(alert()).path == "storage.md"
    assert library.problems() == []


# The commit


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(directory), "-c", "user.email=a@b", "-c", "user.name=t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_commit_is_recorded(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    runbooks = tmp_path / "runbooks"
    path = write(runbooks, "disk/HostOutOfDiskSpace.md", "# Disk\n")
    write(runbooks, "Untracked.md", "# Untracked\n")
    git(tmp_path, "add", "runbooks/disk/HostOutOfDiskSpace.md")
    git(tmp_path, "commit", "-q", "-m", "disk runbook")
    head = git(tmp_path, "rev-parse", "HEAD")
    library = RunbookLibrary(runbooks, uncommitted_ttl=0, rescan_after=0)

    found = library.match(alert())
    assert (found.path, found.commit) == ("disk/HostOutOfDiskSpace.md", head)
    assert len(head) == 40
    assert library.match(alert("Untracked")).commit == UNCOMMITTED

    path.write_text("# Disk, edited\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert library.match(alert()).commit == UNCOMMITTED

    git(tmp_path, "commit", "-q", "-am", "edit")  # committing leaves the mtime alone
    assert library.match(alert()).commit == git(tmp_path, "rev-parse", "HEAD") != head


def test_commit_of_a_file_with_pathspec_characters(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path, "HostOutOfDiskSpace.md", "# Disk\n")
    write(tmp_path, "*.md", "# Star\n")
    git(tmp_path, "add", "HostOutOfDiskSpace.md")
    git(tmp_path, "commit", "-q", "-m", "one")
    assert git_commit(tmp_path, "HostOutOfDiskSpace.md") == git(tmp_path, "rev-parse", "HEAD")
    git(tmp_path, "add", "*.md")
    git(tmp_path, "commit", "-q", "-m", "two")
    write(tmp_path, "HostOutOfDiskSpace.md", "# Disk, edited\n")
    assert git_commit(tmp_path, "*.md") == git(tmp_path, "rev-parse", "HEAD")  # not every .md file


def test_commit_lookups_are_cached(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path, "HostOutOfDiskSpace.md", "# Disk\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    library = RunbookLibrary(tmp_path)
    first = library.match(alert()).commit
    git(tmp_path, "commit", "-q", "--amend", "-m", "rewritten")  # same file and mtime: the cache answers
    assert library.match(alert()).commit == first


def test_not_in_git_is_uncommitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "HostOutOfDiskSpace.md", "# Disk\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert RunbookLibrary(tmp_path).match(alert()).commit == UNCOMMITTED


def test_git_failures_never_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git_commit(tmp_path, "x.md") == UNCOMMITTED
    assert git_commit(tmp_path / "absent", "x.md", timeout=0.001) == UNCOMMITTED


# A community collection, loaded as it is


def test_community_collection_loads_without_edits(tmp_path: Path, library: RunbookLibrary) -> None:
    write(tmp_path, "HostOutOfMemory.md", "# Host out of memory\n\nCheck `free -m`.\n")
    write(tmp_path, "node/HostHighCpuLoad.md", "# Host high CPU load\n\n## Diagnosis\n")
    write(tmp_path, "kubernetes/KubePodCrashLooping.md", "Pods restart.\n")
    write(
        tmp_path,
        "node/HostOutOfInodes.md",
        "---\ntitle: Host out of inodes\nweight: 10\ntags: [node]\ndate: 2023-05-01\n---\n# Inodes\n",
    )
    assert library.problems() == []
    titles = {runbook.path.as_posix(): runbook.title for runbook in library.runbooks()}
    assert titles == {
        "HostOutOfMemory.md": "Host out of memory",
        "kubernetes/KubePodCrashLooping.md": "KubePodCrashLooping",
        "node/HostHighCpuLoad.md": "Host high CPU load",
        "node/HostOutOfInodes.md": "Host out of inodes",
    }
    for name, path in [
        ("HostOutOfMemory", "HostOutOfMemory.md"),
        ("HostHighCpuLoad", "node/HostHighCpuLoad.md"),
        ("KubePodCrashLooping", "kubernetes/KubePodCrashLooping.md"),
        ("HostOutOfInodes", "node/HostOutOfInodes.md"),
    ]:
        found = library.match(alert(name, instance="db1:9100"))
        assert (found.path, str(found.reason)) == (path, "file name")


def test_a_readme_is_not_a_runbook(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# About these runbooks\n")
    (tmp_path / "HostDown.md").write_text("# Host down\n")
    assert [runbook.path.as_posix() for runbook in RunbookLibrary(tmp_path).runbooks()] == ["HostDown.md"]
