"""The diagnosis the model must answer with: a JSON object, validated here, never trusted further than this.

Models wrap JSON in reasoning, prose or code fences, and MiniMax's M2 models ignore `response_format`; so the
object is cut out of the text and validated with a schema, and what fails is described for the one repair request.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from aiops.payload import field_path

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_Text = Annotated[str, Field(max_length=4000)]


class AnswerError(Exception):
    """The model's text is not a valid answer; `problems` are `field: reason` lines to send back once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class AnswerAction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64)]
    reason: _Text = ""
    params: dict[str, Annotated[str, Field(max_length=256)]] = Field(default_factory=dict)


class Answer(BaseModel):
    """What a diagnosis says. Unknown extra fields are ignored; missing required ones are problems."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    summary: Annotated[str, Field(min_length=1, max_length=4000)]
    probable_cause: _Text
    confidence: Annotated[Literal["low", "medium", "high"], BeforeValidator(_lower)]
    evidence: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=50)
    impact: _Text = ""
    next_steps: list[_Text] = Field(default_factory=list, max_length=20)
    actions: list[AnswerAction] = Field(default_factory=list, max_length=10)


SCHEMA_HINT = (
    '{"summary": str, "probable_cause": str, "confidence": "low"|"medium"|"high", "evidence": ["E1", ...], '
    '"impact": str, "next_steps": [str, ...], "actions": [{"id": str, "reason": str, "params": {str: str}}]}'
)


def parse_answer(text: str) -> Answer:
    """The answer in `text`; raises `AnswerError` naming what is wrong."""
    body = _json_object(text)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise AnswerError(
            [f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"]
        ) from None
    if not isinstance(data, dict):
        raise AnswerError([f"must be a JSON object, not {type(data).__name__}"])
    try:
        return Answer.model_validate(data)
    except ValidationError as error:
        raise AnswerError(
            [
                f"{field_path(item['loc']) or 'answer'}: {item['msg']}"
                for item in error.errors(include_url=False)
            ]
        ) from None


def _json_object(text: str) -> str:
    """The outermost {...} of the text, past any reasoning block or code fence."""
    text = _THINK.sub("", text)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise AnswerError(["no JSON object found in the answer"])
    return text[start : end + 1]
