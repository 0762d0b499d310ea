"""Messages: said from the catalogs in the reader's language, in English for logs, and read back as stored."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from aiops.i18n import catalog, detail, english, from_column, message, plain, say, to_column
from aiops.models import Diagnosis, Message, RunbookMatch

PACKAGE = Path(__file__).resolve().parents[1] / "aiops"
# The keys the code names: message("key" …), and the families it names with an f-string or in a table.
_NAMED = re.compile(r"""message\(\s*f?"([a-z_.{}]+)"|"((?:loki_http|ssh)_[a-z_]+)\"""")


def keys_in_code() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for call, table in _NAMED.findall(path.read_text()):
            found.add(call or table)
    return found


def families(pattern: str) -> list[str]:
    """The catalog keys an f-string key such as `audit_{state}` can name."""
    head = pattern.split("{", 1)[0]
    return [key for key in catalog("en") if key.startswith(head) and "." not in key]


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_the_code_names_is_in_both_catalogs() -> None:
    named = keys_in_code()
    assert len(named) > 100
    for key in named:
        keys = families(key) if "{" in key else [key]
        assert keys, key
        for found in keys:
            assert found in catalog("en") and found in catalog("zh-CN"), found


def test_the_catalogs_say_the_same_things_with_the_same_values() -> None:
    english_keys = {key for key in catalog("en") if not key.endswith(".one")}
    assert english_keys == set(catalog("zh-CN"))
    for key in english_keys:
        assert fields(catalog("zh-CN")[key]) <= fields(catalog("en")[key]) | {"count"}, key
        one = catalog("en").get(f"{key}.one")
        assert one is None or fields(one) == fields(catalog("en")[key]), key


def test_a_message_is_said_in_each_language_and_in_english_for_logs() -> None:
    said = message("refusal_no_host", target="'web-1:9100'", host="'web-1'")
    assert say(said, "zh-CN").startswith("主机清单中没有 'web-1:9100'；请在配置的 `hosts:` 下添加")
    assert str(said) == english(said) == say(said, "en")
    assert str(said).startswith("no host 'web-1:9100' in the inventory")


def test_the_detail_is_quoted_beside_the_sentence_never_inside_it() -> None:
    said = message("llm_answer_unusable", detail="no JSON object found in the answer")
    assert say(said, "zh-CN") == "大模型的回答无法使用"
    assert detail(said) == "no JSON object found in the answer"
    assert str(said) == "the model's answer could not be used: no JSON object found in the answer"
    wrapped = message("event_stage_failed", stage="diagnose", error=said)
    assert say(wrapped, "zh-CN") == "diagnose：大模型的回答无法使用"
    assert detail(wrapped) == "no JSON object found in the answer"  # a message's values' detail too
    assert str(wrapped).endswith("could not be used: no JSON object found in the answer")


def test_one_and_many() -> None:
    assert str(message("runbook_by_matchers", count=1)) == "front matter alerts + 1 matcher"
    assert str(message("runbook_by_matchers", count=2)) == "front matter alerts + 2 matchers"
    assert say(message("runbook_by_matchers", count=1), "zh-CN") == (
        "front matter 的 alerts 列出了该告警，且 1 个匹配条件成立"
    )


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_a_row_stored_before_messages_reads_as_it_was(language: str) -> None:
    old = {"source": "offline", "summary": "s", "unavailable": "no model is configured (set MINIMAX_API_KEY)"}
    diagnosis = TypeAdapter(Diagnosis).validate_python(old)
    assert say(diagnosis.unavailable, language) == "no model is configured (set MINIMAX_API_KEY)"
    assert (
        from_column("the incident resolved before an approval") == "the incident resolved before an approval"
    )
    assert from_column('{"not": "a message"}') == '{"not": "a message"}'
    assert say(None, language) == ""


def test_a_message_survives_the_store_and_an_unknown_key_falls_back_to_its_english() -> None:
    said = message("runbook_none", alert="NodeDown", count=3, file="NodeDown.md")
    stored = TypeAdapter(RunbookMatch).dump_python(RunbookMatch(None, None, said))
    assert TypeAdapter(RunbookMatch).validate_python(stored).reason == said
    assert from_column(to_column(said)) == said
    later = Message("a_key_of_a_later_version", {"x": 1}, "what it said in English")
    assert say(later, "zh-CN") == "what it said in English"
    assert say({"key": "runbook_none", "params": {}, "english": "old words"}, "zh-CN") == "old words"


def test_the_api_gives_each_message_its_text() -> None:
    said = message("llm_waiting", seconds=20.0)
    document = {"diagnosis": {"unavailable": TypeAdapter(Message).dump_python(said)}, "summary": "x"}
    shown = plain(document, "zh-CN")["diagnosis"]["unavailable"]
    assert shown["key"] == "llm_waiting" and shown["params"] == {"seconds": 20.0}
    assert shown["text"] == "大模型在 20 秒内尚未给出诊断；诊断到达后将更新本消息"
    assert shown["english"] == "the model has not answered within 20s; this will be updated"
