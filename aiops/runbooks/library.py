"""The runbooks folder: loaded lazily, kept current without a restart, and matched to alerts.

Before a lookup the folder's `*.md` files (recursively, skipping hidden directories such as `.git`) are listed
with their mtime and size — at most once per `rescan_after` (a second: a storm's thousand lookups do not list
the folder a thousand times, and an edit is still seen within a second); only new or changed files are parsed
again. A file that does not parse is
skipped and reported by `problems()`: it never stops the other runbooks from matching.

Matching, first hit wins:

1. the alert's `runbook_url` annotation, when it names a file in the folder (a relative path, a `file://` URL,
   or an http(s) URL whose path ends with the same relative path as a file in the folder; nothing is fetched);
2. front matter `alerts` containing the alert name with all `match` matchers true for its labels (the runbook
   with the most matchers wins, then path order);
3. a file whose stem is the alert name (case-sensitive first, then case-insensitive; path order breaks ties),
   among the files whose front matter lists no `alerts`: a runbook that says which alerts it covers (and with
   which matchers) is never picked for another alert, or for its own alert when its matchers say no;
4. none: a `RunbookMatch` with `path=None` and a reason saying so.

The commit recorded with a match is the last git commit of the file, or "uncommitted" when the file has local
changes, is not tracked, is not in a git repository, or git cannot answer in time.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aiops.i18n import message
from aiops.models import Alert, Message, RunbookMatch
from aiops.runbooks.model import Runbook, RunbookError, parse_runbook

UNCOMMITTED = "uncommitted"
GIT_TIMEOUT = 5.0
# How long a listing of the folder is trusted before the next lookup lists it again.
RESCAN_AFTER = 1.0
# A file committed without being touched keeps its mtime, so "uncommitted" is looked up again after this long.
UNCOMMITTED_TTL = 10.0


@dataclass(frozen=True)
class _Stat:
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class _Entry:
    stat: _Stat
    runbook: Runbook | None
    error: RunbookError | None


class RunbookLibrary:
    """The runbooks under `directory`, re-read when files change."""

    def __init__(
        self,
        directory: Path,
        *,
        git_timeout: float = GIT_TIMEOUT,
        uncommitted_ttl: float = UNCOMMITTED_TTL,
        rescan_after: float = RESCAN_AFTER,
    ) -> None:
        self.directory = directory
        self.git_timeout = git_timeout
        self.uncommitted_ttl = uncommitted_ttl
        self.rescan_after = rescan_after
        self._entries: dict[str, _Entry] = {}
        self._scanned_at: float | None = None
        self._commits: dict[tuple[str, int, int], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def runbooks(self) -> list[Runbook]:
        """The runbooks that parsed, in path order."""
        entries = self._refresh()
        return [entry.runbook for _, entry in sorted(entries.items()) if entry.runbook is not None]

    def problems(self) -> list[RunbookError]:
        """The files that did not parse, in path order; they are left out of matching."""
        entries = self._refresh()
        return [entry.error for _, entry in sorted(entries.items()) if entry.error is not None]

    def match(self, alert: Alert) -> RunbookMatch:
        """The runbook for `alert` by the rules in the module docstring, with its git commit."""
        return self.find(alert)[0]

    def find(self, alert: Alert) -> tuple[RunbookMatch, Runbook | None]:
        """`match`, and the runbook itself when there is one."""
        if not self.directory.is_dir():
            return RunbookMatch(None, None, no_folder(self.directory)), None
        entries = self._refresh()
        books = {key: entry.runbook for key, entry in sorted(entries.items()) if entry.runbook is not None}
        found = (
            _by_url(self.directory, books, alert)
            or _by_front_matter(books, alert)
            or _by_file_name(books, alert)
        )
        if found is None:
            return RunbookMatch(None, None, _no_match(alert, len(books))), None
        runbook, reason = found
        key = runbook.path.as_posix()
        return RunbookMatch(key, self._commit(key, entries[key].stat), reason), runbook

    def _refresh(self) -> dict[str, _Entry]:
        with self._lock:
            now = time.monotonic()
            if self._scanned_at is not None and now - self._scanned_at < self.rescan_after:
                return self._entries
            self._scanned_at = now
            current = dict(_scan(self.directory))
            entries: dict[str, _Entry] = {}
            for key, stat in current.items():
                previous = self._entries.get(key)
                entries[key] = (
                    previous
                    if previous is not None and previous.stat == stat
                    else _load(self.directory, key, stat)
                )
            self._entries = entries
            return entries

    def _commit(self, key: str, stat: _Stat) -> str:
        cache_key = (key, stat.mtime_ns, stat.size)
        now = time.monotonic()
        with self._lock:
            cached = self._commits.get(cache_key)
        if cached is not None and (cached[0] != UNCOMMITTED or now - cached[1] < self.uncommitted_ttl):
            return cached[0]
        commit = git_commit(self.directory, key, timeout=self.git_timeout)
        with self._lock:
            self._commits = {k: v for k, v in self._commits.items() if k[0] != key}
            self._commits[cache_key] = (commit, now)
        return commit


def git_commit(directory: Path, relative: str, *, timeout: float = GIT_TIMEOUT) -> str:
    """The last commit of `relative` (under `directory`), or "uncommitted"; never raises."""
    status = _git(directory, timeout, "status", "--porcelain", "--", relative)
    if status is None or status.strip():
        return UNCOMMITTED
    commit = _git(directory, timeout, "log", "-1", "--format=%H", "--", relative)
    return commit.strip() if commit and commit.strip() else UNCOMMITTED


def _git(directory: Path, timeout: float, *args: str) -> str | None:
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_LITERAL_PATHSPECS": "1", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout if done.returncode == 0 else None


def _scan(directory: Path) -> Iterator[tuple[str, _Stat]]:
    """(relative posix path, stat) of every `*.md` file, skipping hidden directories and files and READMEs
    (a folder's README describes the collection; it is not a runbook)."""
    for top, folders, files in os.walk(directory):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            if name.endswith(".md") and not name.startswith(".") and name.lower() != "readme.md":
                full = Path(top, name)
                try:
                    stat = full.stat()
                except OSError:
                    continue
                yield full.relative_to(directory).as_posix(), _Stat(stat.st_mtime_ns, stat.st_size)


def _load(directory: Path, key: str, stat: _Stat) -> _Entry:
    try:
        return _Entry(stat, parse_runbook(directory, Path(key)), None)
    except RunbookError as error:
        return _Entry(stat, None, error)


def no_folder(directory: Path) -> Message:
    """Why nothing matches when the runbooks folder is missing."""
    return message("runbook_no_folder", folder=str(directory))


def _by_url(directory: Path, books: dict[str, Runbook], alert: Alert) -> tuple[Runbook, Message] | None:
    key = url_to_key(directory, alert.annotations.get("runbook_url", ""), books.keys())
    return (books[key], message("runbook_by_url")) if key is not None else None


def url_to_key(directory: Path, url: str, known: Collection[str]) -> str | None:
    """Which of the `known` runbook paths (relative to `directory`) `url` names, or None; fetches nothing."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _longest_suffix(unquote(parts.path), known)
    if scheme == "file":
        return _inside(directory, unquote(parts.path), known)
    if scheme and len(scheme) > 1:  # another scheme (a one-letter one is a Windows drive)
        return None
    if url.startswith("/"):
        return _inside(directory, url, known)
    return _longest_suffix(url.split("#", 1)[0].split("?", 1)[0], known)


def _inside(directory: Path, absolute: str, known: Collection[str]) -> str | None:
    try:
        relative = Path(absolute).resolve().relative_to(directory.resolve())
    except (OSError, ValueError):
        return None
    key = relative.as_posix()
    return key if key in known else None


def _longest_suffix(path: str, known: Collection[str]) -> str | None:
    segments = [
        part for part in posixpath.normpath(path.replace("\\", "/")).split("/") if part not in ("", ".")
    ]
    for start in range(len(segments)):
        candidate = "/".join(segments[start:])
        if ".." not in segments[start:] and candidate in known:
            return candidate
    return None


def _by_front_matter(books: dict[str, Runbook], alert: Alert) -> tuple[Runbook, Message] | None:
    name = alert.name
    if not name:
        return None
    candidates = [
        runbook
        for runbook in books.values()
        if name in runbook.alerts and all(matcher.matches(alert.labels) for matcher in runbook.matchers)
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda runbook: len(runbook.matchers))  # max keeps the first of equals
    count = len(best.matchers)
    reason = message("runbook_by_matchers", count=count) if count else message("runbook_by_alerts")
    return best, reason


def _by_file_name(books: dict[str, Runbook], alert: Alert) -> tuple[Runbook, Message] | None:
    name = alert.name
    if not name:
        return None
    unclaimed = [runbook for runbook in books.values() if not runbook.alerts]
    for runbook in unclaimed:
        if runbook.path.stem == name:
            return runbook, message("runbook_by_file_name")
    folded = name.casefold()
    for runbook in unclaimed:
        if runbook.path.stem.casefold() == folded:
            return runbook, message("runbook_by_file_name_folded")
    return None


def _no_match(alert: Alert, count: int) -> Message:
    url = alert.annotations.get("runbook_url", "").strip()
    if not alert.name:
        return message("runbook_none_unnamed", count=count)
    if url:
        return message("runbook_none_url", alert=alert.name, url=url, count=count, file=f"{alert.name}.md")
    return message("runbook_none", alert=alert.name, count=count, file=f"{alert.name}.md")
