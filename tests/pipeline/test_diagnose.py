"""The offline diagnosis's next steps: the runbook's own, each whole."""

from __future__ import annotations

from pathlib import Path

from aiops.pipeline.diagnose import guidance
from aiops.runbooks.model import parse_runbook

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def test_a_step_wrapped_over_lines_is_taken_whole() -> None:
    body = parse_runbook(RUNBOOKS, Path("HostOutOfDiskSpace.md")).body
    first, second, *_ = guidance(body)
    assert first == (
        "Safe: `journal-vacuum` shrinks the journal to 500 MB (oldest archived files only). Worth it when "
        "`journal-disk-usage` shows more than a gigabyte."
    )
    assert second.endswith("after checking what that service does. Needs a person.")


def test_a_blank_line_ends_a_step_and_a_paragraph_after_the_list_is_not_one() -> None:
    body = "# What to do\n- one\n  still one\n\n  Not a step.\n- two\n\nAfter the list.\n"
    assert guidance(body) == ("one still one", "two")


def test_every_bundled_step_ends_where_its_author_ended_it() -> None:
    for path in sorted(RUNBOOKS.glob("*.md")):
        if path.name == "README.md":
            continue
        for step in guidance(parse_runbook(RUNBOOKS, Path(path.name)).body):
            assert not step.endswith((" when", " the", " a", " and", " or", ",")), (path.name, step)
