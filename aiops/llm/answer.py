"""The diagnosis the model must answer with: a JSON object, validated here, never trusted further than this.

Models wrap JSON in reasoning, prose or code fences, and MiniMax's M2 models ignore `response_format`; so the
object is cut out of the text and validated with a schema, and what fails is described for the one repair request.

Near misses are read as what they plainly mean, and each reading is recorded (`Answer.coerced`) so the reader
sees it: a number as a confidence level (below 0.4 low, below 0.7 medium, else high; numbers above 1 as
percentages), "High" as high, a single string or object as a list of one, `e1` or `[E1]` as the evidence id
E1, a number as a parameter's text, an over-long text cut with "…". An optional field or list item that is
still wrong is left out and said so; the answer is refused (and repaired once) only for a required field that
is missing or unusable: summary, probable_cause, confidence. Nothing is added that the model did not write.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops.payload import field_path

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_EVIDENCE_ID = re.compile(r"\s*\[?\s*[Ee]\s*-?\s*(\d{1,4})\s*\]?(?![A-Za-z0-9])")
TEXT_LIMIT = 4000
PARAM_LIMIT = 256
REQUIRED = ("summary", "probable_cause", "confidence")
LIST_LIMITS = {"evidence": 50, "next_steps": 20, "actions": 10}
# Confidence as a number: below LOW is low, below HIGH is medium, the rest high (0–1, or 0–100 as a percentage).
LOW, HIGH = 0.4, 0.7
LEVELS = ("low", "medium", "high")
_Text = Annotated[str, Field(max_length=TEXT_LIMIT)]


class AnswerError(Exception):
    """The model's text is not a valid answer; `problems` are `field: reason` lines to send back once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AnswerAction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64)]
    reason: _Text = ""
    params: dict[str, Annotated[str, Field(max_length=PARAM_LIMIT)]] = Field(default_factory=dict)


class Answer(BaseModel):
    """What a diagnosis says. Unknown extra fields are ignored; missing required ones are problems."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    summary: Annotated[str, Field(min_length=1, max_length=TEXT_LIMIT)]
    probable_cause: _Text
    confidence: Literal["low", "medium", "high"]
    evidence: list[Annotated[str, Field(max_length=16)]] = Field(
        default_factory=list, max_length=LIST_LIMITS["evidence"]
    )
    impact: _Text = ""
    next_steps: list[_Text] = Field(default_factory=list, max_length=LIST_LIMITS["next_steps"])
    actions: list[AnswerAction] = Field(default_factory=list, max_length=LIST_LIMITS["actions"])
    # How the model's text was read where it missed the schema: one line per reading, for the reader.
    coerced: tuple[str, ...] = ()


SCHEMA_HINT = (
    '{"summary": str, "probable_cause": str, "confidence": "low"|"medium"|"high", "evidence": ["E1", ...], '
    '"impact": str, "next_steps": [str, ...], "actions": [{"id": str, "reason": str, "params": {str: str}}]}'
)


def answer_schema(evidence_ids: Sequence[str], action_ids: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema an endpoint with structured output constrains the answer to. Evidence and action ids are
    enumerated, so a constrained model can cite only what it was shown and propose only what the runbook allows.
    No length limits: grammar-based servers (llama.cpp) expand them into one rule per character."""
    text = {"type": "string"}
    evidence: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": list(evidence_ids)}}
    if not evidence_ids:
        evidence = {"type": "array", "maxItems": 0}
    action: dict[str, Any] = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "enum": list(action_ids)},
            "reason": text,
            "params": {"type": "object", "additionalProperties": text},
        },
        "required": ["id", "reason"],
    }
    actions: dict[str, Any] = {"type": "array", "items": action, "maxItems": LIST_LIMITS["actions"]}
    if not action_ids:
        actions = {"type": "array", "maxItems": 0}
    return {
        "type": "object",
        "properties": {
            "summary": text,
            "probable_cause": text,
            "confidence": {"type": "string", "enum": list(LEVELS)},
            "evidence": evidence,
            "impact": text,
            "next_steps": {"type": "array", "items": text, "maxItems": LIST_LIMITS["next_steps"]},
            "actions": actions,
        },
        "required": ["summary", "probable_cause", "confidence", "evidence", "next_steps", "actions"],
    }


def parse_answer(text: str) -> Answer:
    """The answer in `text`; raises `AnswerError` naming what is wrong."""
    body = _json_object(text)
    try:
        # strict=False: a raw newline or tab inside a string is read as itself. llama-cpp-python's grammar for a
        # schema lets control characters into strings, so a constrained answer can hold them.
        data = json.loads(body, strict=False)
    except json.JSONDecodeError as error:
        raise AnswerError(
            [f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"]
        ) from None
    if not isinstance(data, dict):
        raise AnswerError([f"must be a JSON object, not {type(data).__name__}"])
    notes: list[str] = []
    data = _coerced(data, notes)
    for _ in range(3):  # each round leaves out what the previous one found wrong
        try:
            return Answer.model_validate({**data, "coerced": tuple(notes)})
        except ValidationError as error:
            problems = [(tuple(item["loc"]), item["msg"]) for item in error.errors(include_url=False)]
        required = [(loc, msg) for loc, msg in problems if not loc or loc[0] in REQUIRED]
        if required:
            raise AnswerError([f"{field_path(loc) if loc else 'answer'}: {msg}" for loc, msg in required])
        data = _without(data, [loc for loc, _ in problems], notes, dict(problems))
    raise AnswerError(["answer: could not be read"])


def _json_object(text: str) -> str:
    """The outermost {...} of the text, past any reasoning block or code fence."""
    text = _THINK.sub("", text)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise AnswerError(["no JSON object found in the answer"])
    return text[start : end + 1]


def _coerced(data: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    data = dict(data)
    if "confidence" in data:
        data["confidence"] = _confidence(data["confidence"], notes)
    for name in ("summary", "probable_cause", "impact"):
        if isinstance(data.get(name), str):
            data[name] = _cut(data[name], TEXT_LIMIT, name, notes)
    for name, most in LIST_LIMITS.items():
        if name in data:
            data[name] = _listed(data[name], name, most, notes)
    if isinstance(data.get("evidence"), list):
        data["evidence"] = [
            found for item in data["evidence"] if (found := _evidence_id(item, notes)) is not None
        ]
    if isinstance(data.get("next_steps"), list):
        data["next_steps"] = [
            _cut(step, TEXT_LIMIT, f"next_steps[{index}]", notes) if isinstance(step, str) else step
            for index, step in enumerate(data["next_steps"])
        ]
    if isinstance(data.get("actions"), list):
        data["actions"] = [_action(item, index, notes) for index, item in enumerate(data["actions"])]
    return data


def _confidence(value: object, notes: list[str]) -> object:
    shown = value.strip() if isinstance(value, str) else value
    number = value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in LEVELS:
            if word != value:
                notes.append(f"confidence: {value!r} read as {word}")
            return word
        parsed = _number(word.removesuffix("%"))
        if parsed is None:
            return value
        number = parsed / 100 if word.endswith("%") else parsed
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        return value
    share = number / 100 if 1 < number <= 100 else number
    if not 0 <= share <= 1:
        return value
    level = "low" if share < LOW else "medium" if share < HIGH else "high"
    if not isinstance(shown, str):
        shown = f"{number:g}"
    notes.append(f"confidence: {shown} read as {level} (below {LOW:g} low, below {HIGH:g} medium, else high)")
    return level


def _number(text: str) -> float | None:
    try:
        return float(text) if text.isascii() else None
    except ValueError:
        return None


def _cut(text: str, limit: int, name: str, notes: list[str]) -> str:
    if len(text) <= limit:
        return text
    notes.append(f"{name}: {len(text)} characters cut to {limit}")
    return text[: limit - 1] + "…"


def _listed(value: object, name: str, most: int, notes: list[str]) -> object:
    if isinstance(value, str | dict):
        notes.append(
            f"{name}: a single {'text' if isinstance(value, str) else 'object'} read as a list of one"
        )
        return [value] if value != "" else []
    if isinstance(value, list) and len(value) > most:
        notes.append(f"{name}: the first {most} of {len(value)} kept")
        return value[:most]
    return value


def _evidence_id(item: object, notes: list[str]) -> object:
    """E<n> for what reads as one, the item itself when it is not text (validation says so), None to leave out."""
    if not isinstance(item, str):
        return item
    found = _EVIDENCE_ID.match(item)
    if found is None:
        notes.append(f"evidence: {item[:40]!r} is not an evidence id (E1, E2, …); left out")
        return None
    normal = f"E{int(found.group(1))}"
    if normal != item:
        notes.append(f"evidence: {item[:40]!r} read as {normal}")
    return normal


def _action(item: object, index: int, notes: list[str]) -> object:
    if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
        return item
    params: dict[str, Any] = {}
    for key, value in item["params"].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            notes.append(f"actions[{index}].params.{key}: the number {value!r} read as text")
            value = str(value)
        params[key] = value
    return {**item, "params": params}


def _without(
    data: dict[str, Any], locations: list[tuple[Any, ...]], notes: list[str], why: dict[tuple[Any, ...], str]
) -> dict[str, Any]:
    """`data` without the optional fields, or the items of optional lists, that failed validation."""
    data = dict(data)
    items: dict[str, set[int]] = {}
    for loc in locations:
        name = loc[0]
        if len(loc) > 1 and isinstance(loc[1], int) and isinstance(data.get(name), list):
            items.setdefault(name, set()).add(loc[1])
        elif name in data:
            del data[name]
            notes.append(f"{name}: left out ({why[loc]})")
    for name, indexes in items.items():
        if name not in data:
            continue
        kept = [item for index, item in enumerate(data[name]) if index not in indexes]
        for index in sorted(indexes):
            loc, msg = next((loc, msg) for loc, msg in why.items() if loc[:2] == (name, index))
            reason = f"{field_path(loc[2:])}: {msg}" if len(loc) > 2 else msg
            notes.append(f"{name}[{index}]: left out ({reason})")
        data[name] = kept
    return data
