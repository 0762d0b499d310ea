"""aiops's answers in Feishu chat: a card (JSON 2.0) replying to the question in its thread, against the fake Open
API, which checks the card rules, de-duplicates on uuid and answers with Feishu's error codes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from aiops.channels import ChannelError
from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu.card import MAX_BYTES
from aiops.chat import Ran, Reply, Replying
from aiops.i18n import message
from aiops.templating import build_environment
from tests.fakes.feishu import SECRET, FakeFeishu, card_problems

URL = "https://aiops.example.com/incidents/12"
RAN = (
    Ran(
        "promql",
        'predict_linear(node_filesystem_avail_bytes{instance="web-1"}[6h], 4*3600)',
        "-2.1 GiB in 4h",
    ),
    Ran("logql", '{host="web-1"} |= "No space left"', "312 lines in the last hour"),
)
ANSWER = Reply(
    lines=(
        "web-1's /var fills at 1.2 GiB an hour: nginx access logs are not rotated.",
        "Rotate them, then `du`.",
    ),
    ran=RAN,
    incident_id=12,
    incident_url=URL,
    to_user="ou_alice",
)


@pytest.fixture
def openapi(fake_feishu: FakeFeishu) -> FakeFeishu:
    return fake_feishu


def channel(fake: FakeFeishu, http: httpx.AsyncClient, language: str = "en") -> FeishuChannel:
    config = FeishuConfig(app_id=fake.app_id, app_secret=SECRET, chat_id=fake.chat_id, domain=fake.url)
    return FeishuChannel(config, build_environment(language), http)


def elements(card: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return [e for e in card["body"]["elements"] if e["tag"] == tag]


def asked_in_group(fake: FakeFeishu, **where: Any) -> dict[str, str]:
    said = fake.says(
        "ou_alice", "@_user_1 why is web-1's disk filling?", mentions={"@_user_1": fake.bot}, **where
    )
    return {
        "message_id": said["message"]["message_id"],
        "in_thread": "false" if where.get("direct") else "true",
    }


async def test_the_answer_replies_in_the_questions_thread(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    assert isinstance(feishu, Replying)
    reply_to = asked_in_group(openapi)
    body = feishu.render_reply(ANSWER)
    await feishu.reply(reply_to, body)
    [replied] = openapi.replies
    assert (replied.to, replied.chat_id, replied.in_thread) == (reply_to["message_id"], openapi.chat_id, True)
    assert replied.card == json.loads(body) and card_problems(body) == []
    said = elements(replied.card, "markdown")[0]["content"]
    assert said.startswith("<at id=ou_alice></at>") and "nginx access logs are not rotated" in said
    [panel] = elements(replied.card, "collapsible_panel")
    assert panel["expanded"] is False and panel["header"]["title"]["content"] == "What I ran (2)"
    assert (
        "predict&#95;linear" in panel["elements"][0]["content"]
        and "312 lines" in panel["elements"][0]["content"]
    )
    [button] = elements(replied.card, "button")
    assert button["behaviors"] == [{"type": "open_url", "default_url": URL}]


async def test_a_direct_message_is_answered_with_a_quoting_reply(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language="zh-CN")
    reply_to = asked_in_group(openapi, direct=True)
    refusal = Reply(
        lines=(message("decision_not_approver", who="ou_mallory", channel="feishu"),), refusal=True
    )
    await feishu.reply(reply_to, feishu.render_reply(refusal))
    [replied] = openapi.replies
    assert replied.in_thread is False and replied.chat_id == "oc_p2pou_alice"
    [said] = elements(replied.card, "markdown")
    assert said["text_size"] == "notation" and "<at" not in said["content"]
    assert not elements(replied.card, "collapsible_panel") and not elements(replied.card, "button")


async def test_a_card_can_be_replied_to_and_a_retry_posts_once(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    card = await feishu.send(
        '{"schema":"2.0","config":{"update_multi":true},"body":{"elements":[{"tag":"hr"}]}}'
    )
    assert card is not None
    body = feishu.render_reply(ANSWER)
    await feishu.reply({"message_id": card, "in_thread": "true"}, body)
    await feishu.reply(
        {"message_id": card, "in_thread": "true"}, body
    )  # the outbox's retry after a lost answer
    other = feishu.render_reply(Reply(lines=("Silenced for 2 hours.",)))
    await feishu.reply({"message_id": card, "in_thread": "true"}, other)  # another answer in the same thread
    assert [r.to for r in openapi.replies] == [card, card]


async def test_a_huge_reply_is_cut_to_the_limit_what_was_run_first(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    many = tuple(
        Ran("promql", f"up{{instance='web-{i}'}}" + " or vector(0)" * 30, "1 series") for i in range(200)
    )
    long_ran = Reply(lines=("The disk fills.",), ran=many, incident_url=URL)
    long_answer = Reply(lines=("磁盘已满，请扩容。" * 3000,), ran=RAN, incident_url=URL)
    for reply in (long_ran, long_answer):
        body = feishu.render_reply(reply)
        assert len(body.encode()) <= MAX_BYTES and card_problems(body) == []
        await feishu.reply(asked_in_group(openapi), body)
    ran_cut, answer_cut = (r.card for r in openapi.replies)
    panel = elements(ran_cut, "collapsible_panel")[0]
    assert panel["header"]["title"]["content"] == "What I ran (200)" and "more not shown" in json.dumps(panel)
    assert "The disk fills." in elements(ran_cut, "markdown")[0]["content"]
    assert "shortened to fit" in elements(answer_cut, "markdown")[0]["content"]
    assert elements(answer_cut, "button")[0]["behaviors"][0]["default_url"] == URL


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [("withdrawn", False), ("left", False), ("rate_limit", True), ("server_error", True), ("unknown", False)],
)
async def test_feishus_error_codes_say_whether_a_retry_could_help(
    openapi: FakeFeishu, http: httpx.AsyncClient, failure: str, retryable: bool
) -> None:
    feishu = channel(openapi, http)
    reply_to = asked_in_group(openapi)
    if failure == "withdrawn":
        openapi.withdraw(reply_to["message_id"])
    elif failure == "left":
        openapi.leave(openapi.chat_id)
    elif failure == "unknown":
        reply_to = {"message_id": "om_nobody_wrote_this"}
    else:
        openapi.fail(failure, reset=9)
    with pytest.raises(ChannelError) as raised:
        await feishu.reply(reply_to, feishu.render_reply(ANSWER))
    assert raised.value.retryable is retryable and openapi.replies == []
    if failure == "rate_limit":
        assert raised.value.retry_after == 9.0
    if failure == "withdrawn":
        assert "230011" in str(raised.value) and "withdrawn" in str(raised.value)


async def test_a_reply_to_without_a_message_id_is_refused_for_good(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    with pytest.raises(ChannelError, match="message_id") as raised:
        await feishu.reply({}, feishu.render_reply(ANSWER))
    assert not raised.value.retryable


async def test_the_bots_open_id_is_asked_once(openapi: FakeFeishu, http: httpx.AsyncClient) -> None:
    feishu = channel(openapi, http)
    assert await feishu.bot_open_id() == await feishu.bot_open_id() == openapi.bot_open_id
    assert openapi.bot_info_requests == 1
