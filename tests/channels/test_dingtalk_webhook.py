"""The DingTalk custom robot channel against a fake robot that checks signatures, limits and message shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from aiops.channels import ChannelError, RateLimit
from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig, sign
from aiops.templating import build_environment, messages
from tests.channels.announcements import APPROVAL, BASE_URL, announcement, digest
from tests.channels.conftest import SECRET
from tests.fakes.robots import MAX_BODY, TOKEN, Clock, FakeDingTalkRobot, dingtalk_message_problem

PURPOSES = ("opened", "updated", "resolved", "action")
LANGUAGES = ("zh-CN", "en")
NOWHERE = f"http://127.0.0.1:9/robot/send?access_token={TOKEN}"


def robot(
    url: str,
    http: httpx.AsyncClient,
    *,
    secret: str | None = SECRET,
    language: str = "zh-CN",
    clock: Callable[[], float] | None = None,
) -> DingTalkWebhookChannel:
    config = DingTalkWebhookConfig(name="oncall", url=url, secret=SecretStr(secret) if secret else None)
    return DingTalkWebhookChannel(
        config, build_environment(language), http, **({"clock": clock} if clock else {})
    )


def expected_sign(timestamp: str, secret: str) -> str:
    """DingTalk's security settings page: HMAC-SHA256 keyed with the secret over "timestamp\\nsecret", base64,
    then urlEncode."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def content(message: dict[str, Any]) -> dict[str, Any]:
    return dict(message[message["msgtype"]])


def test_signature_test_vectors() -> None:
    vector = "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"  # computed once with the documented algorithm
    assert expected_sign("1700000000000", "SECtest") == vector
    assert sign(1700000000000, "SECtest") == vector
    assert sign(1764000000123, SECRET) == expected_sign("1764000000123", SECRET)
    # Feishu's scheme on the same inputs gives something else: the two must not be confused.
    feishu = hmac.new(b"1700000000000\nSECtest", b"", hashlib.sha256).digest()
    assert urllib.parse.unquote_plus(vector) != base64.b64encode(feishu).decode()


async def test_a_signed_message_is_accepted(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient
) -> None:
    requests: list[httpx.Request] = []
    http.event_hooks["request"].append(_record(requests))
    channel = robot(dingtalk_robot.url, http)
    assert await channel.send(channel.render(announcement())) is None
    [message] = dingtalk_robot.messages
    assert message["msgtype"] == "actionCard"
    query = dict(urllib.parse.parse_qsl(requests[0].url.query.decode()))
    assert query["access_token"] == TOKEN and "sign" not in json.dumps(message)
    raw = requests[0].url.query.decode().split("&sign=")[1]
    assert raw == expected_sign(query["timestamp"], SECRET)  # URL-encoded exactly once
    assert abs(int(query["timestamp"]) - dingtalk_robot.clock() * 1000) < 1000  # milliseconds
    assert channel.limits == RateLimit(per_minute=20) and channel.immediate is False


def _record(requests: list[httpx.Request]) -> Callable[[httpx.Request], Any]:
    async def hook(request: httpx.Request) -> None:
        requests.append(request)

    return hook


async def test_a_wrong_secret_is_refused_for_good(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(dingtalk_robot.url, http, secret="SECnot-the-robots-one")
    with pytest.raises(ChannelError) as refused:
        await channel.send(channel.render(announcement()))
    assert not refused.value.retryable and "310000" in str(refused.value) and "secret" in str(refused.value)
    assert "SECnot-the-robots-one" not in str(refused.value) and dingtalk_robot.messages == []


async def test_a_timestamp_over_an_hour_off_is_refused(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(dingtalk_robot.url, http, clock=lambda: clock() + 3601)
    with pytest.raises(ChannelError, match="310000"):
        await channel.send(channel.render(announcement()))
    within = robot(dingtalk_robot.url, http, clock=lambda: clock() + 3500)
    await within.send(within.render(announcement()))
    assert len(dingtalk_robot.messages) == 1


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_every_purpose_is_a_valid_message_under_the_limit(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient, purpose: Any, language: str
) -> None:
    channel = robot(dingtalk_robot.url, http, language=language)
    for hostile in (False, True):
        body = channel.render(announcement(purpose, hostile=hostile, huge=hostile))
        message = json.loads(body)
        assert len(body.encode()) <= MAX_BODY and dingtalk_message_problem(message) is None
        text = content(message)["text"]
        # An alert label cannot open a link, format text or add HTML: it is escaped.
        assert not re.search(r"(?<!\\)(\]\(https://evil|<at id|<b>|\*\*bold)", text)
        assert message["at"] == {
            "atMobiles": ["13800000000"] if hostile else [],
            "atUserIds": ["ou_3f9a"],
            "isAtAll": False,
        }
        assert "@ou_3f9a" in text  # DingTalk shows a mention only when the text names it too
        await channel.send(body)
    assert len(dingtalk_robot.messages) == 2


def test_texts_come_from_the_language_catalog(http: httpx.AsyncClient) -> None:
    for language in LANGUAGES:
        text = content(json.loads(robot(NOWHERE, http, language=language).render(announcement())))["text"]
        assert messages(language)["robot_open_incident"] in text and messages(language)["diagnosis"] in text


def test_huge_evidence_is_cut_first_and_the_reader_is_told(http: httpx.AsyncClient) -> None:
    body = robot(NOWHERE, http, language="en").render(announcement(huge=True))
    text = content(json.loads(body))["text"]
    assert len(body.encode()) <= MAX_BODY
    assert "Shortened to fit the chat's size limit" in text.split("\n\n")[1]
    assert "500 more evidence items on the incident page" in text
    assert "Probable cause" in text and "disk/web-1:9100.md @ 0123456789ab" in text


def test_proposals_become_buttons_to_their_approval_pages(http: httpx.AsyncClient) -> None:
    message = json.loads(robot(NOWHERE, http, language="en").render(announcement()))
    card = message["actionCard"]
    assert card["btns"] == [
        {"title": "Approve or reject #11 clean_journal…", "actionURL": f"{APPROVAL}tok-eleven"},
        {"title": "Approve or reject #12 restart_service…", "actionURL": f"{APPROVAL}tok-twelve"},
    ]
    assert card["btnOrientation"] == "1" and card["title"].startswith("[critical] Host out of disk space")
    assert "risk: high" in card["text"] and "systemctl restart nginx" in card["text"]
    assert f"]({BASE_URL}/incidents/7)" in card["text"]


def test_without_a_pending_proposal_it_is_plain_markdown(http: httpx.AsyncClient) -> None:
    plain = announcement()
    settled = type(plain)(**{**plain.__dict__, "approval_links": {}})
    assert json.loads(robot(NOWHERE, http).render(settled))["msgtype"] == "markdown"


async def test_over_twenty_a_minute_is_throttled_for_ten_minutes(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = robot(dingtalk_robot.url, http)
    body = channel.render(announcement("resolved"))
    for _ in range(20):
        await channel.send(body)
        clock.advance(1)
    with pytest.raises(ChannelError, match="130101") as throttled:
        await channel.send(body)
    assert throttled.value.retryable and throttled.value.retry_after == 600.0
    clock.advance(60)  # a minute later the robot is still throttled: waiting only a minute would not do
    with pytest.raises(ChannelError, match="130101"):
        await channel.send(body)
    clock.advance(throttled.value.retry_after)
    await channel.send(body)
    assert len(dingtalk_robot.messages) == 21


async def test_an_outage_is_retryable(dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient) -> None:
    channel = robot(dingtalk_robot.url, http)
    body = channel.render(announcement())
    dingtalk_robot.outage = True
    with pytest.raises(ChannelError, match="HTTP 503") as down:
        await channel.send(body)
    assert down.value.retryable
    dingtalk_robot.outage = False
    await channel.send(body)
    assert len(dingtalk_robot.messages) == 1


async def test_an_unreachable_robot_is_retryable(http: httpx.AsyncClient) -> None:
    channel = robot(NOWHERE, http)
    with pytest.raises(ChannelError, match="could not be reached") as unreachable:
        await channel.send(channel.render(announcement()))
    assert unreachable.value.retryable and TOKEN not in str(unreachable.value)


async def test_a_body_over_the_limit_is_refused_for_good(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(dingtalk_robot.url, http)
    with pytest.raises(ChannelError, match="460101") as refused:
        await channel.send(json.dumps({"msgtype": "text", "text": {"content": "x" * MAX_BODY}}))
    assert not refused.value.retryable


async def test_update_is_refused(http: httpx.AsyncClient) -> None:
    with pytest.raises(ChannelError, match="cannot edit") as refused:
        await robot(NOWHERE, http).update("handle", "{}")
    assert not refused.value.retryable


async def test_a_digest_counts_and_links_the_first_incidents(
    dingtalk_robot: FakeDingTalkRobot, http: httpx.AsyncClient
) -> None:
    channel = robot(dingtalk_robot.url, http, language="en")
    body = channel.render_digest(digest(30, hostile=True))
    message = json.loads(body)
    text = message["markdown"]["text"]
    assert len(body.encode()) <= MAX_BODY and dingtalk_message_problem(message) is None
    assert message["markdown"]["title"] == "Alert storm: 30 incidents"
    assert "- 2 × Alert1web" in text and "8 more incidents" in text and "20 more incidents" in text
    assert text.count(f"]({BASE_URL}/incidents/") == 10 and text.endswith(f"]({BASE_URL}/)")
    await channel.send(body)
    assert len(dingtalk_robot.messages) == 1


def test_config_wants_the_robot_url_and_keeps_the_secret_out_of_sight() -> None:
    url = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    config = DingTalkWebhookConfig.model_validate({"url": url, "secret": SECRET})
    assert config.name == "dingtalk_webhook" and SECRET not in repr(config)
    with pytest.raises(ValidationError, match="access_token"):
        DingTalkWebhookConfig(url="https://oapi.dingtalk.com/robot/send")
    with pytest.raises(ValidationError, match="set secret instead"):
        DingTalkWebhookConfig(url="https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1&sign=x")


def test_routing_chooses_incidents_and_mentions(http: httpx.AsyncClient) -> None:
    config = DingTalkWebhookConfig.model_validate(
        {"url": NOWHERE, "match": ['team="db"'], "mentions": {"critical": ["13800000000", "manager01"]}}
    )
    channel = DingTalkWebhookChannel(config, build_environment("en"), http)
    assert channel.routing.applies({"team": "db"}) and not channel.routing.applies({"team": "web"})
    assert channel.routing.mentions_for("critical") == ("13800000000", "manager01")
