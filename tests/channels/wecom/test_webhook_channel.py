"""The WeCom group robot channel against the fake WeCom robot: rendering, limits, sending and what refusals mean."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from aiops.channels import ChannelError
from aiops.channels.wecom.errors import WeComError
from aiops.channels.wecom_webhook import WeComWebhookChannel, WeComWebhookConfig
from aiops.templating import build_environment
from tests.channels.announcements import APPROVAL, BASE_URL, announcement, digest
from tests.channels.hostile import CASES, IDS
from tests.fakes.robots import Clock
from tests.fakes.wecom import ROBOT_KEY, FakeWeCom, robot_contents

PURPOSES = ("opened", "updated", "resolved", "action")
LANGUAGES = ("zh-CN", "en")
LIMIT = 4096


def robot(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, *, language: str = "zh-CN", key: str = ROBOT_KEY
) -> WeComWebhookChannel:
    config = WeComWebhookConfig(name="ops", key=SecretStr(key), base_url=fake.url, timeout=5.0)
    return WeComWebhookChannel(config, build_environment(language), http, clock=clock)


def content(body: str) -> str:
    message = json.loads(body)
    assert message["msgtype"] == "markdown"
    return str(message["markdown"]["content"])


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_each_announcement_is_accepted_by_the_robot_within_its_4096_bytes(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, purpose: str, language: str
) -> None:
    channel = robot(fake, http, clock, language=language)
    for a in (announcement(purpose), announcement(purpose, hostile=True, huge=True)):  # type: ignore[arg-type]
        body = channel.render(a)
        assert size(content(body)) <= LIMIT
        assert await channel.send(body) is None  # a robot's message cannot be edited
    sent = list(robot_contents(fake))
    assert len(sent) == 2
    assert "#7" in sent[0] and f"{BASE_URL}/incidents/7" in sent[0]


async def test_30_kb_of_evidence_is_cut_and_the_message_says_so(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(fake, http, clock, language="en")
    text = content(channel.render(announcement("opened", hostile=True, huge=True)))
    assert size(text) <= LIMIT
    assert "Shortened to fit" in text
    assert f"{BASE_URL}/incidents/7" in text  # the way to the rest survives every cut


def test_the_texts_are_in_the_configured_language(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    zh = content(robot(fake, http, clock, language="zh-CN").render(announcement("opened")))
    en = content(robot(fake, http, clock, language="en").render(announcement("opened")))
    assert "Open the incident" in en and "Open the incident" not in zh
    assert re.search("[\u4e00-\u9fff]", zh) and not re.search("[\u4e00-\u9fff]", en)


def test_proposals_are_links_to_the_approval_page_and_pause_to_the_remediation_page(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    pause = "https://aiops.example.com/remediation"
    channel = robot(fake, http, clock, language="en")
    text = content(channel.render(dataclasses.replace(announcement("opened"), pause_url=pause)))
    assert f"]({APPROVAL}tok-eleven)" in text and f"]({APPROVAL}tok-twelve)" in text
    assert f"]({pause})" in text
    assert f"]({pause})" not in content(channel.render(announcement("opened")))


@pytest.mark.parametrize("hostile", CASES, ids=IDS)
def test_hostile_text_opens_no_tag_link_or_mention(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, hostile: str
) -> None:
    base = announcement("opened")
    incident = dataclasses.replace(
        base.incident, title=hostile, labels={**base.incident.labels, "x": hostile}
    )
    a = dataclasses.replace(base, incident=incident, mentions=("zhangsan", "</at><at id=all>", "<@all>"))
    text = content(robot(fake, http, clock).render(a))
    assert size(text) <= LIMIT
    tags = re.findall(r"<[^>]*>", text)
    assert set(tags) <= {'<font color="warning">', '<font color="comment">', "</font>", "<@zhangsan>"}
    links = re.findall(r"\]\(([^)]*)\)", text)
    assert all(link.startswith(("https://aiops.example.com/",)) for link in links)


async def test_a_digest_of_a_thousand_hostile_incidents_fits(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(fake, http, clock, language="en")
    body = channel.render_digest(digest(1000, hostile=True))
    assert size(content(body)) <= LIMIT
    await channel.send(body)
    assert "1000" in next(robot_contents(fake))


async def test_a_wrong_key_is_final_and_not_repeated(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(fake, http, clock, key="0badbeef-0000-4bc4-97a0-0ec2sifa5aaa")
    with pytest.raises(WeComError) as raised:
        await channel.send(channel.render(announcement("resolved")))
    assert raised.value.errcode == 93000 and not raised.value.retryable
    assert "0badbeef" not in str(raised.value)  # the key is the robot's credential


@pytest.mark.parametrize(
    ("steer", "retry_after"),
    [(lambda fake: fake.busy(), 2.0), (lambda fake: setattr(fake, "outage", True), None)],
    ids=["busy", "outage"],
)
async def test_busy_and_outages_are_worth_a_retry(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, steer: Any, retry_after: float | None
) -> None:
    channel = robot(fake, http, clock)
    steer(fake)
    with pytest.raises(ChannelError) as raised:
        await channel.send(channel.render(announcement("resolved")))
    assert raised.value.retryable and raised.value.retry_after == retry_after


async def test_the_twenty_first_message_in_a_minute_waits_instead_of_being_dropped(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(fake, http, clock)
    body = channel.render(announcement("resolved"))
    for _ in range(20):
        await channel.send(body)
    with pytest.raises(ChannelError) as raised:
        await channel.send(body)
    assert raised.value.retryable and 0 < (raised.value.retry_after or 0) <= 60
    clock.advance(60)
    await channel.send(body)
    assert len(fake.robots[ROBOT_KEY].messages) == 21


async def test_a_45009_from_another_sender_holds_the_channel_for_a_minute(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.robots[ROBOT_KEY].arrivals.extend([clock()] * 20)  # someone else used the robot's minute
    channel = robot(fake, http, clock)
    body = channel.render(announcement("resolved"))
    with pytest.raises(ChannelError) as raised:
        await channel.send(body)
    assert raised.value.retryable and raised.value.retry_after == 60.0
    with pytest.raises(ChannelError):
        await channel.send(body)  # held on this side, not sent to be dropped
    assert fake.calls.count("/cgi-bin/webhook/send") == 1


def test_the_config_wants_the_key_alone_and_never_shows_it() -> None:
    with pytest.raises(ValidationError) as raised:
        WeComWebhookConfig(key=SecretStr(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={ROBOT_KEY}"))
    assert ROBOT_KEY not in str(raised.value)
    config = WeComWebhookConfig.model_validate(
        {"key": ROBOT_KEY, "match": ['team="ops"'], "proxy": "socks5h://p:1080"}
    )
    assert ROBOT_KEY not in repr(config) and config.name == "wecom_webhook"
    assert config.applies({"team": "ops"}) and not config.applies({"team": "db"})
