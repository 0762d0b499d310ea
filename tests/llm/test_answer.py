"""Near misses in the model's answer are read as what they plainly mean and said so; only a missing or unusable
required field costs the answer (and asks for the one repair)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.llm.answer import AnswerError, parse_answer
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.llm.conftest import GOOD
from tests.llm.test_diagnoser import detail_of, triage_once

BASE = {
    "summary": "The root filesystem of web-1 is 93% full.",
    "probable_cause": "The journal.",
    "confidence": "low",
}


def read(**fields: Any) -> Any:
    return parse_answer(json.dumps({**BASE, **fields}))


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (0.1, "low"),
        (0.39, "low"),
        (0.4, "medium"),
        (0.69, "medium"),
        (0.7, "high"),
        (1, "high"),
        (85, "high"),
        (55, "medium"),
        ("0.2", "low"),
        ("90%", "high"),
    ],
)
def test_a_number_is_read_as_a_confidence_level_by_the_stated_thresholds(value: object, level: str) -> None:
    answer = read(confidence=value)
    assert answer.confidence == level
    assert answer.coerced == (
        f"confidence: {value if isinstance(value, str) else f'{value:g}'} read as {level}"
        " (below 0.4 low, below 0.7 medium, else high)",
    )


@pytest.mark.parametrize("value", [" High ", "MEDIUM", "Low"])
def test_a_level_in_other_case_is_the_level(value: str) -> None:
    answer = read(confidence=value)
    assert answer.confidence == value.strip().lower()
    assert answer.coerced == (f"confidence: {value!r} read as {value.strip().lower()}",)


@pytest.mark.parametrize("value", ["certain", 7000, -0.5, True, None, "NaN"])
def test_a_confidence_that_means_no_level_is_refused_not_guessed(value: object) -> None:
    with pytest.raises(AnswerError) as caught:
        read(confidence=value)
    assert [problem.split(":")[0] for problem in caught.value.problems] == ["confidence"]


def test_a_raw_newline_inside_a_string_is_read_as_a_newline() -> None:
    # What llama-cpp-python's grammar for a schema allows: control characters unescaped inside a string.
    answer = parse_answer(json.dumps(BASE).replace("93% full.", "93% full.\n\tMostly the journal."))
    assert answer.summary == "The root filesystem of web-1 is 93% full.\n\tMostly the journal."


def test_a_single_string_is_a_list_of_one() -> None:
    answer = read(next_steps="Vacuum the journal", evidence="E2")
    assert (answer.next_steps, answer.evidence) == (["Vacuum the journal"], ["E2"])
    assert "next_steps: a single text read as a list of one" in answer.coerced
    assert "evidence: a single text read as a list of one" in answer.coerced


def test_evidence_ids_are_normalised_and_what_is_not_an_id_is_left_out() -> None:
    answer = read(evidence=["e1", "[E2]", "E3: disk usage", " E 4 ", "E5", "the disk graph"])
    assert answer.evidence == ["E1", "E2", "E3", "E4", "E5"]
    assert "evidence: 'e1' read as E1" in answer.coerced
    assert "evidence: '[E2]' read as E2" in answer.coerced
    assert "evidence: 'the disk graph' is not an evidence id (E1, E2, …); left out" in answer.coerced


def test_a_valid_summary_survives_a_broken_optional_field() -> None:
    answer = read(
        impact={"users": "all"},
        next_steps=["Vacuum the journal", {"step": 2}],
        actions=[{"reason": "no id"}, {"id": "journal-vacuum", "params": {"keep": 500}}],
    )
    assert (answer.summary, answer.probable_cause, answer.confidence) == (
        BASE["summary"],
        BASE["probable_cause"],
        "low",
    )
    assert answer.impact == "" and answer.next_steps == ["Vacuum the journal"]
    assert [(action.id, action.params) for action in answer.actions] == [("journal-vacuum", {"keep": "500"})]
    assert "impact: left out (Input should be a valid string)" in answer.coerced
    assert "next_steps[1]: left out (Input should be a valid string)" in answer.coerced
    assert "actions[0]: left out (id: Field required)" in answer.coerced
    assert "actions[1].params.keep: the number 500 read as text" in answer.coerced


def test_over_long_text_and_lists_are_cut_and_said_so() -> None:
    answer = read(summary="x" * 5000, next_steps=[f"step {n}" for n in range(25)])
    assert len(answer.summary) == 4000 and answer.summary.endswith("…")
    assert len(answer.next_steps) == 20
    assert "summary: 5000 characters cut to 4000" in answer.coerced
    assert "next_steps: the first 20 of 25 kept" in answer.coerced


def test_a_clean_answer_has_nothing_coerced() -> None:
    assert read(evidence=["E1"], next_steps=["a"]).coerced == ()


@pytest.mark.parametrize("missing", ["summary", "probable_cause", "confidence"])
def test_a_missing_required_field_is_a_problem_for_the_repair(missing: str) -> None:
    with pytest.raises(AnswerError) as caught:
        parse_answer(json.dumps({key: value for key, value in BASE.items() if key != missing}))
    assert caught.value.problems == [f"{missing}: Field required"]


async def test_only_a_numeric_confidence_no_longer_costs_the_answer(
    app_for: Any, engine: AsyncEngine, runbooks: Path, fake_minimax: FakeMiniMax
) -> None:
    fake_minimax.script(Reply(content=json.dumps({**GOOD, "confidence": 0.7, "evidence": ["e1"]})))
    triage, _ = await triage_once(app_for, runbooks, fake_minimax)
    diagnosis = triage.diagnosis
    assert (diagnosis.source, diagnosis.confidence, diagnosis.usage.calls) == ("llm", "high", 1)
    assert diagnosis.summary == GOOD["summary"] and str(diagnosis.evidence_refs[0]).startswith("E1: ")
    stored = (await detail_of(engine))["triages"][0]["diagnosis"]
    assert stored["coerced"][0].startswith("confidence: 0.7 read as high")
    async with app_for(server={"language": "en"}) as (client, _):
        page = (await client.get("/incidents/1")).text
    assert "2 part(s) of the model&#39;s answer missed the schema" in page
    assert "confidence: 0.7 read as high" in page
