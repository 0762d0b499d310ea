"""aiops's answers in DingTalk: rendered from the templates within the robots' 20 KB, sent through the session
webhook of the message they answer while it lasts, else through the robot's Open API (the group, or the person of a
direct chat), with DingTalk's refusals saying whether a retry could help."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from aiops.channels import ChannelError
from aiops.channels.dingtalk import DingTalkChannel
from aiops.channels.dingtalk.markdown import md
from aiops.chat import Ran, Reply, Replying
from aiops.i18n import message
from aiops.templating import build_environment
from tests.channels.dingtalk.conftest import config
from tests.channels.hostile import CASES, HUGE, IDS, STRINGS
from tests.fakes.dingtalk import GROUP, MAX_MESSAGE, FakeDingTalk

ZH_APPROVED = "已批准：将执行一次。"
ANSWER = Reply(
    lines=("web-1's disk is filling with nginx logs.", "Rotate them, or silence this for 2 hours."),
    ran=(
        Ran("promql", 'predict_linear(node_filesystem_avail_bytes{instance="web-1"}[1h], 3600)', "-2.1 GB"),
        Ran("logql", '{host="web-1"} |= "access.log"', "4,210 lines in 5 minutes"),
    ),
    incident_id=12,
    incident_url="https://aiops.example.com/incidents/12",
    to_user="staff-1",
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def channel(
    fake: FakeDingTalk, http: httpx.AsyncClient, language: str = "en", **changes: Any
) -> DingTalkChannel:
    return DingTalkChannel(config(fake, **changes), build_environment(language), http)


def session(fake: FakeDingTalk, kind: str = "2", lifetime: float = 5400.0) -> dict[str, str]:
    """The reply_to of a message the fake delivered: its session webhook lives `lifetime` seconds."""
    name = "s" + str(len(fake.sessions))
    fake.sessions[name] = time.time() + lifetime
    expires = int((time.time() + lifetime) * 1000)
    conversation = GROUP if kind == "2" else "cidDirectZhangsan000000=="
    return {
        "conversation_type": kind,
        "conversation_id": conversation,
        "user": "staff-1",
        "session_webhook": f"{fake.url}/robot/sendBySession?session={name}",
        "expires_ms": str(expires),
    }


def sent(fake: FakeDingTalk) -> tuple[str, dict[str, str]]:
    """The one message the robot's Open API sent: its path and its markdown (msgParam)."""
    [(path, body)] = fake.robot_messages
    assert body["msgKey"] == "sampleMarkdown" and body["robotCode"] == fake.client_id
    param: dict[str, str] = json.loads(body["msgParam"])
    return path, param


def test_the_channel_replies() -> None:
    assert issubclass(DingTalkChannel, Replying)


async def test_a_group_reply_goes_by_the_session_webhook_and_mentions_the_asker(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    reply_to = session(fake)
    await dingtalk.reply(reply_to, dingtalk.render_reply(ANSWER))
    [posted] = fake.session_posts
    text = posted["markdown"]["text"]
    assert posted["session"] == "s0" and posted["msgtype"] == "markdown"
    assert posted["markdown"]["title"] == "aiops on incident #12"
    assert posted["at"] == {"atUserIds": ["staff-1"], "isAtAll": False} and text.endswith("@staff-1")
    assert "web-1's disk is filling with nginx logs.\n\nRotate them" in text
    assert "**What I ran**" in text and "- promql: predict\\_linear(" in text and "→ -2.1 GB" in text
    assert "[Open the incident page](https://aiops.example.com/incidents/12)" in text
    assert fake.robot_messages == [] and fake.token_requests == 0


async def test_an_expired_session_webhook_falls_back_to_the_group_by_the_open_api(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    await dingtalk.reply(session(fake, lifetime=10.0), dingtalk.render_reply(ANSWER))
    path, param = sent(fake)
    [(_, body)] = fake.robot_messages
    assert path == "/v1.0/robot/groupMessages/send" and body["openConversationId"] == GROUP
    assert param["title"] == "aiops on incident #12" and "nginx logs" in param["text"]
    assert "@staff-1" not in param["text"], "the Open API's markdown cannot @mention"
    assert fake.session_posts == []


async def test_a_session_the_platform_refuses_falls_back_to_the_person_of_a_direct_chat(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    reply_to = session(fake, kind="1")
    fake.expire_sessions()  # DingTalk ended it before its time
    await dingtalk.reply(reply_to, dingtalk.render_reply(Reply(lines=("Approved #12.",))))
    path, param = sent(fake)
    [(_, body)] = fake.robot_messages
    assert path == "/v1.0/robot/oToMessages/batchSend" and body["userIds"] == ["staff-1"]
    assert param["text"] == "Approved \\#12." and param["title"] == "aiops answers"


async def test_a_reply_without_a_session_webhook_goes_by_the_open_api(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    reply_to = {"conversation_type": "2", "conversation_id": GROUP, "user": "staff-1"}
    await dingtalk.reply(reply_to, dingtalk.render_reply(ANSWER))
    assert sent(fake)[0] == "/v1.0/robot/groupMessages/send"


async def test_a_throttled_session_webhook_is_retryable_after_a_minute(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    fake.fail_session(130101)
    with pytest.raises(ChannelError) as raised:
        await dingtalk.reply(session(fake), dingtalk.render_reply(ANSWER))
    assert raised.value.retryable and raised.value.retry_after == 60.0
    assert "session=" not in str(raised.value), "the webhook's session lets anyone post in the chat"
    assert fake.robot_messages == []


@pytest.mark.parametrize(
    ("status", "answer", "retryable"),
    [
        (429, {"code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "message": "qps"}, True),
        (503, "<html>busy</html>", True),
        (400, {"code": "param.invalid", "message": "robotCode"}, False),
        (403, {"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "no"}, False),
    ],
)
async def test_the_open_api_s_refusals_say_whether_to_retry(
    fake: FakeDingTalk, http: httpx.AsyncClient, status: int, answer: Any, retryable: bool
) -> None:
    dingtalk = channel(fake, http)
    fake.fail(status, answer)
    with pytest.raises(ChannelError) as raised:
        await dingtalk.reply(session(fake, lifetime=0.0), dingtalk.render_reply(ANSWER))
    assert raised.value.retryable is retryable


async def test_a_person_outside_the_organisation_is_not_retried(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    reply_to = {"conversation_type": "1", "conversation_id": "cidX==", "user": "staff-404"}
    with pytest.raises(ChannelError) as raised:
        await dingtalk.reply(reply_to, dingtalk.render_reply(ANSWER))
    assert not raised.value.retryable and "staff-404" in str(raised.value)


async def test_a_huge_reply_fits_both_ways_of_sending_it(fake: FakeDingTalk, http: httpx.AsyncClient) -> None:
    dingtalk = channel(fake, http)
    ran = tuple(Ran("promql", HUGE[:3000], HUGE[:500]) for _ in range(200))
    body = dingtalk.render_reply(
        Reply(lines=(HUGE, HUGE), ran=ran, incident_id=1, incident_url="https://a/1")
    )
    assert len(body.encode()) <= MAX_MESSAGE
    await dingtalk.reply(session(fake), body)
    await dingtalk.reply(session(fake, lifetime=0.0), body)
    assert len(fake.session_posts) == 1 and len(fake.robot_messages) == 1, "both accepted it"
    assert "https://a/1" in fake.session_posts[0]["markdown"]["text"], "the link survives the cut"


async def test_an_answer_of_many_paragraphs_keeps_its_first_ones_and_the_link(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    many = Reply(lines=tuple(HUGE[:2000] for _ in range(500)), incident_id=1, incident_url="https://a/1")
    text = json.loads(dingtalk.render_reply(many))["text"]
    assert "shortened to fit in a DingTalk message" in text and text.endswith("(https://a/1)")


async def test_what_was_ran_beyond_the_room_is_counted(fake: FakeDingTalk, http: httpx.AsyncClient) -> None:
    dingtalk = channel(fake, http)
    ran = tuple(Ran("promql", f"up{{job='j{i}'}}" + "x" * 400, "1") for i in range(60))
    text = json.loads(dingtalk.render_reply(Reply(lines=("ok",) * 30, ran=ran)))["text"]
    assert "- and " in text and " more" in text


async def test_the_answer_is_said_in_the_configured_language(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http, language="zh-CN")
    said = Reply(lines=(message("dingtalk_notice_approved"),), ran=ANSWER.ran, incident_id=12)
    body = json.loads(dingtalk.render_reply(said))
    assert body["title"] == "aiops：关于事件 #12" and body["text"].startswith(ZH_APPROVED)
    assert "**我执行了这些查询**" in body["text"]


# ---- hostile text, escaped as the cards escape it


@pytest.mark.parametrize("hostile", list(STRINGS.values()), ids=list(STRINGS))
async def test_hostile_text_in_a_reply_is_shown_as_text(
    fake: FakeDingTalk, http: httpx.AsyncClient, hostile: str
) -> None:
    dingtalk = channel(fake, http)
    reply = Reply(lines=(hostile,), ran=(Ran(hostile, hostile, hostile),), to_user=hostile)
    body = json.loads(dingtalk.render_reply(reply))
    for part in hostile.splitlines():
        if md(part):
            assert md(part) in body["text"], part
    if md(hostile) != hostile:
        assert hostile not in body["text"]
    assert body["at_user_ids"] == [] and body["mention"] == "", "only a staff id is @mentioned"
    assert "[x](https://evil.example)" not in body["text"]


@pytest.mark.parametrize("hostile", CASES, ids=IDS)
async def test_a_hostile_reply_stays_within_the_limit(
    fake: FakeDingTalk, http: httpx.AsyncClient, hostile: str
) -> None:
    dingtalk = channel(fake, http)
    body = dingtalk.render_reply(Reply(lines=(hostile,) * 3, ran=(Ran("t", hostile, hostile),) * 20))
    assert len(body.encode()) <= MAX_MESSAGE and json.loads(body)["text"]
