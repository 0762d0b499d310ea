"""The offline diagnosis's next steps, and the model's diagnosis said in the reader's language."""

from __future__ import annotations

from pathlib import Path

from aiops.i18n import say
from aiops.models import Diagnosis, Evidence
from aiops.pipeline.diagnose import guidance, in_messages
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


def test_what_the_diagnoser_wrote_in_english_is_said_in_the_readers_language() -> None:
    evidence = Evidence("prometheus", "disk.md: free_ratio", "q")
    diagnosis = Diagnosis(
        "llm",
        "根分区将满",
        evidence_refs=("E1: disk.md: free_ratio", "E7: gone"),
        dropped_actions=(
            "rm-rf: not an action the runbook allows (disk.md)",
            "reboot: not an action the runbook allows (no runbook)",
        ),
    )
    said = in_messages(diagnosis, [evidence])
    assert [say(text, "zh-CN") for text in said.dropped_actions] == [
        "rm-rf：处置手册（disk.md）不允许此操作",
        "reboot：没有匹配的处置手册，不允许任何操作",
    ]
    assert [str(text) for text in said.dropped_actions] == list(diagnosis.dropped_actions)
    assert [say(text, "zh-CN") for text in said.evidence_refs] == ["E1：disk.md: free_ratio", "E7: gone"]
    assert said.summary == "根分区将满"
