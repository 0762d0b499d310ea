"""Each platform's app and group robot escape alike: the same hostile strings, rendered through both (built from
the registry, as the service builds them), come out escaped by the platform's one escape function, and every
message stays under its kind's limits — a 30 KB diagnosis and evidence included.

Discord has no group robot: its bot is checked alone. WeCom's app sends template cards, whose fields are plain
text that nothing turns into markup (aiops/channels/wecom/card.py), so its robot alone writes WeCom markdown; the
card is checked to keep its fields within the lengths WeCom recommends and its buttons within WeCom's rules."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from aiops.channels import Announcement, Channel
from aiops.channels.dingtalk import markdown as dingtalk_markdown
from aiops.channels.discord import markdown as discord_markdown
from aiops.channels.feishu import markdown as feishu_markdown
from aiops.channels.feishu.card import ACTION_COLOURS
from aiops.channels.registry import kind
from aiops.channels.wecom import card as card_lengths
from aiops.channels.wecom import markdown as wecom_markdown
from aiops.chat import Ran, Reply, Replying
from aiops.store.actions import argv_hash
from aiops.templating import build_environment
from tests.channels.announcements import announcement
from tests.channels.hostile import CASES, IDS, STRINGS
from tests.channels.test_feishu import nodes
from tests.fakes.discord import message_problems
from tests.fakes.wecom import ROBOT_KEY, card_problem

CONFIGS: dict[str, dict[str, Any]] = {
    "feishu": {"app_id": "cli_x", "app_secret": "s" * 20, "chat_id": "oc_x"},
    "feishu_webhook": {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"},
    "dingtalk": {
        "client_id": "ding_x",
        "client_secret": "s" * 20,
        "open_conversation_id": "cid_x",
        "card_template_id": "tpl.schema",
    },
    "dingtalk_webhook": {"url": "https://oapi.dingtalk.com/robot/send?access_token=x"},
    "wecom": {"corp_id": "ww_x", "agent_id": 1, "corp_secret": "s" * 20, "touser": ["zhangsan"]},
    "wecom_webhook": {"key": ROBOT_KEY},
    "discord": {
        "application_id": "1000000000000000001",
        "public_key": "0" * 64,
        "bot_token": "s" * 20,
        "channel_id": "1100000000000000001",
    },
}
# platform → its escape function and the kinds writing its markdown: its app's and its robot's
PLATFORMS: dict[str, tuple[Callable[[object], str], tuple[str, ...]]] = {
    "feishu": (feishu_markdown.md, ("feishu", "feishu_webhook")),
    "dingtalk": (dingtalk_markdown.md, ("dingtalk", "dingtalk_webhook")),
    "wecom": (wecom_markdown.inline, ("wecom_webhook",)),
    "discord": (discord_markdown.inline, ("discord",)),
}

# What a kind's byte limit weighs, when not the whole body: WeCom limits the robot's markdown, not its JSON.
WEIGHED: dict[str, Callable[[str], str]] = {
    "wecom_webhook": lambda body: json.loads(body)["markdown"]["content"]
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:  # rendering sends nothing
        yield client


def build(key: str, http: httpx.AsyncClient) -> Channel:
    entry = kind(key)
    channel: Channel = entry.build(entry.config.model_validate(CONFIGS[key]), build_environment("en"), http)
    return channel


def strings(value: Any) -> Iterator[str]:
    """Every string in a message body, nested JSON (DingTalk's card data) opened."""
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value
        if value[:1] in "[{":
            with contextlib.suppress(ValueError):  # text that only starts like JSON
                yield from strings(json.loads(value))


def hashed(base: Announcement) -> Announcement:
    """As the store gives proposals to channels: with the hash of their argv."""
    shown = tuple(dataclasses.replace(p, argv_hash=argv_hash(p.host, p.argv)) for p in base.proposals)
    return dataclasses.replace(base, proposals=shown)


def with_cause(cause: str, *, summary: str | None = None) -> Announcement:
    """The opened announcement, its diagnosis's probable cause (one line of markdown everywhere) `cause`."""
    base = hashed(announcement("opened"))
    assert base.triage is not None and base.triage.diagnosis is not None
    diagnosis = dataclasses.replace(
        base.triage.diagnosis, probable_cause=cause, summary=summary or base.triage.diagnosis.summary
    )
    return dataclasses.replace(base, triage=dataclasses.replace(base.triage, diagnosis=diagnosis))


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("hostile", list(STRINGS.values()), ids=list(STRINGS))
async def test_app_and_robot_escape_a_hostile_string_alike(
    platform: str, hostile: str, http: httpx.AsyncClient
) -> None:
    escape, kinds = PLATFORMS[platform]
    escaped = escape(hostile)
    for key in kinds:
        body = json.loads(build(key, http).render(with_cause(hostile)))
        found = [text for text in strings(body) if escaped in text]
        assert found, f"{key} does not show {hostile!r} as {escaped!r}"
        assert not any(hostile in text for text in strings(body) if escape(hostile) != hostile)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("hostile", CASES, ids=IDS)
async def test_app_and_robot_stay_under_their_limits(
    platform: str, hostile: str, http: httpx.AsyncClient
) -> None:
    _, kinds = PLATFORMS[platform]
    huge = hashed(announcement("opened", hostile=True, huge=True))
    for key in kinds:
        limit = kind(key).capabilities.max_bytes
        channel = build(key, http)
        for shown in (with_cause(hostile, summary=hostile), huge):
            body = channel.render(shown)
            if limit is None:  # Discord limits each field instead: the fake checks them as Discord does
                assert message_problems(json.loads(body)) == [], key
            else:
                assert len(WEIGHED.get(key, str)(body).encode()) <= limit, key


@pytest.mark.parametrize("hostile", CASES, ids=IDS)
async def test_the_wecom_card_keeps_its_fields_within_wecoms_lengths(
    hostile: str, http: httpx.AsyncClient
) -> None:
    channel = build("wecom", http)
    for shown in (
        with_cause(hostile, summary=hostile),
        hashed(announcement("opened", hostile=True, huge=True)),
    ):
        card = {**json.loads(channel.render(shown)), "task_id": "aiops-1"}
        assert card_problem(card) is None
        assert len(card["main_title"]["title"]) <= card_lengths.TITLE
        assert len(card["main_title"]["desc"]) <= card_lengths.DESC
        assert len(card["sub_title_text"]) <= card_lengths.SUBTITLE
        for row in card["horizontal_content_list"]:
            assert len(row["keyname"]) <= card_lengths.KEYNAME and len(row["value"]) <= card_lengths.VALUE
        assert any(button.get("key", "").startswith("aiops:approve:") for button in card["button_list"])


@pytest.mark.parametrize("state", ["succeeded", "failed", "moot", "expired"])
async def test_the_feishu_robot_colours_a_result_as_the_app_does(state: str, http: httpx.AsyncClient) -> None:
    base = announcement("action")
    assert base.reported is not None
    shown = dataclasses.replace(base, reported=dataclasses.replace(base.reported, state=state))
    robot = json.loads(build("feishu_webhook", http).render(shown))
    assert robot["card"]["header"]["template"] == ACTION_COLOURS[state]


@pytest.mark.parametrize("hostile", list(STRINGS.values()), ids=list(STRINGS))
async def test_a_feishu_chat_reply_escapes_as_its_cards_do(hostile: str, http: httpx.AsyncClient) -> None:
    """The model's answer and what it ran are text in the reply card, as an alert label is on a card: no
    formatting, link or mention of their own, and no @all whoever the reply names."""
    channel = build("feishu", http)
    assert isinstance(channel, Replying)
    reply = Reply(
        lines=(hostile,), ran=(Ran(hostile, hostile, hostile),), incident_url=hostile, to_user="all"
    )
    card = json.loads(channel.render_reply(reply))
    markdown = [node["content"] for node in nodes(card) if node.get("tag") == "markdown"]
    answer, ran = markdown
    assert feishu_markdown.mdtext(hostile) in answer and feishu_markdown.md(hostile) in ran
    assert not any(hostile in text for text in strings(card) if feishu_markdown.md(hostile) != hostile)
    assert "<at " not in answer + ran
    links = [b["default_url"] for n in nodes(card) if n.get("tag") == "button" for b in n["behaviors"]]
    assert links == ([] if not hostile.startswith("https://") else [links[0]])
    assert not any(char in link for link in links for char in " <>()[]")
