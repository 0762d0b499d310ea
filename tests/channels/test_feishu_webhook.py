"""The Feishu custom robot channel against a fake robot that checks signatures, limits and the card rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from aiops.channels import ChannelError, RateLimit
from aiops.channels.feishu_webhook import FeishuWebhookChannel, FeishuWebhookConfig, sign
from aiops.proxy import http_client
from aiops.templating import build_environment, messages
from tests.channels.announcements import APPROVAL, BASE_URL, announcement, digest
from tests.channels.conftest import SECRET
from tests.fakes.robots import MAX_BODY, TOKEN, Clock, FakeFeishuRobot, feishu_card_problem
from tests.support.binaries import free_port
from tests.support.proxy import Pproxy

PURPOSES = ("opened", "updated", "resolved", "action")
LANGUAGES = ("zh-CN", "en")


def robot(
    url: str,
    http: httpx.AsyncClient,
    *,
    secret: str | None = SECRET,
    language: str = "zh-CN",
    clock: Callable[[], float] | None = None,
) -> FeishuWebhookChannel:
    config = FeishuWebhookConfig(name="oncall", url=url, secret=SecretStr(secret) if secret else None)
    return FeishuWebhookChannel(
        config, build_environment(language), http, **({"clock": clock} if clock else {})
    )


def expected_sign(timestamp: str, secret: str) -> str:
    """Feishu's custom-bot guide: HMAC-SHA256 with key "timestamp\\nsecret" over nothing, then base64."""
    return base64.b64encode(
        hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    ).decode()


def nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from nodes(item)


def elements(body: str) -> list[dict[str, Any]]:
    return list(json.loads(body)["card"]["body"]["elements"])


def test_signature_test_vectors() -> None:
    assert (
        expected_sign("1700000000", "SECtest") == "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
    )  # computed once with the documented algorithm
    assert sign(1700000000, "SECtest") == "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
    assert sign(1764000000, SECRET) == expected_sign("1764000000", SECRET)
    # The DingTalk scheme on the same inputs gives something else: the two must not be confused.
    dingtalk = hmac.new(b"SECtest", b"1700000000\nSECtest", hashlib.sha256).digest()
    assert sign(1700000000, "SECtest") != base64.b64encode(dingtalk).decode()


async def test_a_signed_card_is_accepted(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(feishu_robot.url, http, clock=clock)
    assert await channel.send(channel.render(announcement())) is None
    [message] = feishu_robot.messages
    assert message["timestamp"] == str(int(clock())) and message["sign"] == expected_sign(
        message["timestamp"], SECRET
    )
    assert message["msg_type"] == "interactive" and message["card"]["header"]["template"] == "red"
    assert channel.limits == RateLimit(per_minute=100, per_second=5) and channel.immediate is False


async def test_a_wrong_secret_is_refused_for_good(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(feishu_robot.url, http, secret="SECnot-the-robots-one")
    with pytest.raises(ChannelError) as refused:
        await channel.send(channel.render(announcement()))
    assert not refused.value.retryable and "19021" in str(refused.value) and "secret" in str(refused.value)
    assert "SECnot-the-robots-one" not in str(refused.value) and feishu_robot.messages == []


async def test_a_missing_signature_is_refused(feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient) -> None:
    channel = robot(feishu_robot.url, http, secret=None)
    with pytest.raises(ChannelError, match="19021") as refused:
        await channel.send(channel.render(announcement()))
    assert not refused.value.retryable


async def test_a_timestamp_over_an_hour_off_is_refused(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(feishu_robot.url, http, clock=lambda: clock() - 3601)
    with pytest.raises(ChannelError, match="19021"):
        await channel.send(channel.render(announcement()))
    within = robot(feishu_robot.url, http, clock=lambda: clock() - 3500)
    await within.send(within.render(announcement()))
    assert len(feishu_robot.messages) == 1


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_every_purpose_is_a_valid_card_under_the_limit(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient, purpose: Any, language: str
) -> None:
    channel = robot(feishu_robot.url, http, language=language)
    for hostile in (False, True):
        body = channel.render(announcement(purpose, hostile=hostile, huge=hostile))
        card = json.loads(body)["card"]
        assert len(body.encode()) <= MAX_BODY - 128  # room left for timestamp and sign
        assert feishu_card_problem({"msg_type": "interactive", "card": card}) is None
        assert card["schema"] == "2.0" and not any(node.get("tag") == "action" for node in nodes(card))
        markdown = "\n".join(e["content"] for e in card["body"]["elements"] if e["tag"] == "markdown")
        # An alert label cannot mention everyone, open a link or format text: only configured ids are mentioned.
        assert (
            "<at id=all>" not in markdown and "](https://evil" not in markdown and "**bold**" not in markdown
        )
        assert markdown.count("<at id=") == (2 if hostile else 1)
        await channel.send(body)
    assert len(feishu_robot.messages) == 2


def test_texts_come_from_the_language_catalog(http: httpx.AsyncClient) -> None:
    for language in LANGUAGES:
        body = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/x", http, language=language).render(
            announcement()
        )
        first = elements(body)[0]["content"]
        assert messages(language)["robot_open_incident"] in first
        assert messages(language)["diagnosis"] in first


def test_huge_evidence_is_cut_first_and_the_reader_is_told(http: httpx.AsyncClient) -> None:
    channel = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/x", http, language="en")
    body = channel.render(announcement(huge=True))
    text = elements(body)[0]["content"]
    assert len(body.encode()) <= MAX_BODY - 128
    assert text.startswith("*Shortened to fit the chat's size limit")
    assert "500 more evidence items on the incident page" in text
    assert "more next steps on the incident page" in text  # 60 long steps do not fit either
    assert "Probable cause" in text and "disk/web-1:9100.md @ 0123456789ab" in text


def test_hostile_and_huge_titles_still_fit(http: httpx.AsyncClient) -> None:
    channel = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/x", http)
    plain = announcement()
    giant = type(plain.incident)(**{**plain.incident.__dict__, "title": '"\n</at>' * 20000})
    body = channel.render(type(plain)(**{**plain.__dict__, "incident": giant}))
    card = json.loads(body)["card"]
    assert len(body.encode()) <= MAX_BODY - 128 and len(card["header"]["title"]["content"]) <= 100


def test_pending_proposals_get_buttons_to_their_approval_pages(http: httpx.AsyncClient) -> None:
    channel = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/x", http, language="en")
    card = json.loads(channel.render(announcement()))["card"]
    buttons = [node for node in nodes(card) if node.get("tag") == "button"]
    assert [b["behaviors"] for b in buttons] == [
        [{"type": "open_url", "default_url": f"{APPROVAL}tok-eleven"}],
        [{"type": "open_url", "default_url": f"{APPROVAL}tok-twelve"}],
    ]
    assert buttons[0]["text"]["content"] == "Approve or reject #11 clean_journal…"
    text = "\n".join(e["content"] for e in card["body"]["elements"] if e["tag"] == "markdown")
    assert "risk: high" in text and "systemctl restart nginx" in text and "refused" in text


async def test_rate_limits_are_retried_after_a_wait(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(feishu_robot.url, http)
    body = channel.render(announcement("resolved"))
    for _ in range(5):
        await channel.send(body)
    with pytest.raises(ChannelError, match="9499") as per_second:
        await channel.send(body)
    assert per_second.value.retryable and per_second.value.retry_after == 1.0
    for _ in range(19):  # 100 messages in 20 seconds
        clock.advance(1)
        for _ in range(5):
            await channel.send(body)
    clock.advance(1)
    with pytest.raises(ChannelError, match="11232") as per_minute:
        await channel.send(body)
    assert per_minute.value.retryable and per_minute.value.retry_after == 60.0
    clock.advance(60)
    await channel.send(body)
    assert len(feishu_robot.messages) == 101


@pytest.mark.parametrize(("code", "wait"), [(11232, 60.0), (9499, 1.0), (99991400, 1.0)])
async def test_every_throttling_code_is_retryable(code: int, wait: float) -> None:
    answer = {"code": code, "msg": "frequency limited"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    async with httpx.AsyncClient(transport=transport) as http:
        channel = robot("https://open.feishu.cn/open-apis/bot/v2/hook/x", http)
        with pytest.raises(ChannelError) as throttled:
            await channel.send(channel.render(announcement("resolved")))
    assert throttled.value.retryable and throttled.value.retry_after == wait


async def test_an_outage_is_retryable(feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient) -> None:
    channel = robot(feishu_robot.url, http)
    body = channel.render(announcement())
    feishu_robot.outage = True
    with pytest.raises(ChannelError, match="HTTP 503") as down:
        await channel.send(body)
    assert down.value.retryable
    feishu_robot.outage = False
    await channel.send(body)
    assert len(feishu_robot.messages) == 1


async def test_an_unreachable_robot_is_retryable(http: httpx.AsyncClient) -> None:
    channel = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/hook-token-Zq81", http)
    with pytest.raises(ChannelError, match="could not be reached") as unreachable:
        await channel.send(channel.render(announcement()))
    assert unreachable.value.retryable and "hook-token-Zq81" not in str(unreachable.value)


async def test_a_body_over_the_limit_is_refused_for_good(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(feishu_robot.url, http)
    with pytest.raises(ChannelError, match="19036") as refused:
        await channel.send(json.dumps({"msg_type": "text", "content": {"text": "x" * MAX_BODY}}))
    assert not refused.value.retryable


async def test_the_fake_refuses_what_a_custom_robot_cannot_send(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(feishu_robot.url, http)
    card = json.loads(channel.render(announcement()))["card"]
    button = next(node for node in nodes(card) if node.get("tag") == "button")
    callback = {**button, "behaviors": [{"type": "callback", "value": {"approve": 11}}]}
    wrapped = {**card, "body": {"elements": [{"tag": "action", "actions": [button]}]}}
    legacy = {k: v for k, v in card.items() if k != "schema"}
    for bad in ({**card, "body": {"elements": [callback]}}, wrapped, legacy):
        with pytest.raises(ChannelError, match="200861") as refused:
            await channel.send(json.dumps({"msg_type": "interactive", "card": bad}))
        assert not refused.value.retryable
    assert feishu_robot.messages == []


async def test_update_is_refused(http: httpx.AsyncClient) -> None:
    channel = robot("http://127.0.0.1:9/open-apis/bot/v2/hook/x", http)
    with pytest.raises(ChannelError, match="cannot edit") as refused:
        await channel.update("handle", "{}")
    assert not refused.value.retryable


async def test_a_digest_counts_and_links_the_first_incidents(
    feishu_robot: FakeFeishuRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(feishu_robot.url, http, language="en")
    body = channel.render_digest(digest(30, hostile=True))
    card = json.loads(body)["card"]
    text = elements(body)[0]["content"]
    assert (
        len(body.encode()) <= MAX_BODY - 128
        and feishu_card_problem({"msg_type": "interactive", "card": card}) is None
    )
    assert (
        card["header"]["title"]["content"] == "Alert storm: 30 incidents"
        and card["header"]["template"] == "red"
    )
    assert text.startswith("- 2 × Alert1web") and "8 more incidents" in text and "20 more incidents" in text
    assert text.count(f"]({BASE_URL}/incidents/") == 10 and "<at" not in text
    assert elements(body)[-1]["behaviors"] == [{"type": "open_url", "default_url": f"{BASE_URL}/"}]
    await channel.send(body)
    assert len(feishu_robot.messages) == 1


def test_config_is_strict_and_keeps_the_secret_out_of_sight() -> None:
    config = FeishuWebhookConfig(
        url="https://open.feishu.cn/open-apis/bot/v2/hook/t", secret=SecretStr(SECRET)
    )
    assert config.name == "feishu_webhook" and SECRET not in repr(config)
    with pytest.raises(ValidationError, match="sign"):
        FeishuWebhookConfig.model_validate(
            {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/t", "sign": "x"}
        )
    with pytest.raises(ValidationError, match="not an http"):
        FeishuWebhookConfig(url="open.feishu.cn/open-apis/bot/v2/hook/t")


def test_routing_chooses_incidents_and_mentions(http: httpx.AsyncClient) -> None:
    config = FeishuWebhookConfig.model_validate(
        {
            "url": "https://open.feishu.cn/open-apis/bot/v2/hook/t",
            "match": ['severity=~"critical|warning"'],
            "mentions": {"critical": ["ou_3f9a"]},
        }
    )
    channel = FeishuWebhookChannel(config, build_environment("en"), http)
    assert channel.routing.applies({"severity": "critical"}) and not channel.routing.applies(
        {"severity": "info"}
    )
    assert channel.routing.mentions_for("critical") == ("ou_3f9a",)


async def test_a_robot_posts_through_its_proxy(
    feishu_robot: FakeFeishuRobot, clock: Clock, proxy: Pproxy
) -> None:
    config = FeishuWebhookConfig(
        name="oncall", url=feishu_robot.url, secret=SecretStr(SECRET), proxy=proxy.socks
    )
    async with http_client(config, "channels.feishu_webhook[0].proxy") as http:
        channel = FeishuWebhookChannel(config, build_environment("en"), http, clock=clock)
        await channel.send(channel.render(announcement("opened")))
    assert len(feishu_robot.messages) == 1
    proxy.wait_for(urlsplit(feishu_robot.url).netloc)


async def test_a_robot_behind_a_proxy_that_is_down_is_retryable_and_names_it(
    feishu_robot: FakeFeishuRobot,
) -> None:
    down = f"http://aiops:proxy-Hb62tYw1@127.0.0.1:{free_port()}"
    config = FeishuWebhookConfig(name="oncall", url=feishu_robot.url, proxy=down)
    async with http_client(config, "channels.feishu_webhook[0].proxy") as http:
        channel = FeishuWebhookChannel(config, build_environment("en"), http)
        with pytest.raises(ChannelError) as raised:
            await channel.send(channel.render(announcement("opened")))
    said = str(raised.value)
    assert raised.value.retryable and "set in channels.feishu_webhook[0].proxy" in said
    assert "proxy-Hb62tYw1" not in said and TOKEN not in said and feishu_robot.messages == []
