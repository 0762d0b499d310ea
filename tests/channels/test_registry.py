"""The channel registry is the one list of kinds: every kind loads from its section, is built by the service, has
its callback routes in the web app, and its approvers' key in `remediation.approvers`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from aiops.channels.registry import KINDS, approver_keys
from aiops.proxy import HttpClients
from aiops.service import build_channels
from aiops.templating import build_environment
from aiops.web.app import routes
from tests.support.app import settings_for

# A minimal section of each kind, as a user would write it.
SECTIONS: dict[str, Any] = {
    "feishu": {"app_id": "cli_a1", "app_secret": "s", "chat_id": "oc_1", "verification_token": "t"},
    "dingtalk": {
        "client_id": "ding1",
        "client_secret": "s",
        "open_conversation_id": "cid1==",
        "card_template_id": "t.schema",
    },
    "wecom": {
        "corp_id": "ww0a1b2c3d4e5f6789",
        "agent_id": 1000002,
        "corp_secret": "s",
        "touser": ["zhangsan"],
        "callback_token": "t",
        "encoding_aes_key": "a" * 43,
    },
    "discord": {
        "application_id": "1000000000000000001",
        "public_key": "0" * 64,
        "bot_token": "t",
        "channel_id": "1100000000000000001",
    },
    "feishu_webhook": [{"name": "fr", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"}],
    "dingtalk_webhook": [{"name": "dr", "url": "https://oapi.dingtalk.com/robot/send?access_token=x"}],
    "wecom_webhook": [{"name": "wr", "key": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"}],
}


def test_every_kind_has_an_example_here() -> None:
    assert sorted(SECTIONS) == sorted(kind.key for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.key)
def test_each_kind_loads_and_is_built(kind: Any, database_url: str) -> None:
    settings = settings_for(database_url, channels={kind.key: SECTIONS[kind.key]})
    [configured] = settings.channels.configured()
    assert configured.kind is kind
    assert configured.where == f"channels.{kind.key}" + ("[0]" if kind.many else "")
    assert configured.config.destinations(configured.where), "aiops check must know where it connects"


async def test_all_kinds_at_once_are_built_with_their_names(database_url: str) -> None:
    settings = settings_for(database_url, channels=SECTIONS)
    clients = HttpClients()
    try:
        built = build_channels(settings, build_environment("en"), clients)
    finally:
        await clients.aclose()
    names = [channel.name for item, channel in built if item is not None]
    assert names == ["feishu", "dingtalk", "wecom", "discord", "fr", "dr", "wr"]


def test_two_channels_may_not_share_a_name(database_url: str) -> None:
    sections = {
        "wecom": {**SECTIONS["wecom"], "name": "ops"},
        "discord": {**SECTIONS["discord"], "name": "ops"},
    }
    with pytest.raises(ValidationError, match="ops"):
        settings_for(database_url, channels=sections)


def test_approvers_are_keyed_by_the_kinds_whose_clicks_decide(database_url: str) -> None:
    assert set(approver_keys()) == {"feishu", "dingtalk", "wecom", "discord", "web", "cli"}
    settings = settings_for(
        database_url, remediation={"approvers": {"wecom": ["zhangsan"], "discord": ["123456789012345678"]}}
    )
    approvers = settings.remediation.approvers
    assert approvers.allows("wecom", "zhangsan") and not approvers.allows("discord", "zhangsan")
    with pytest.raises(ValidationError, match=re.escape("remediation.approvers.wecom_webhook")):
        settings_for(database_url, remediation={"approvers": {"wecom_webhook": ["zhangsan"]}})


def test_the_web_app_has_each_kinds_callback_routes() -> None:
    found = {getattr(route, "path", ""): getattr(route, "methods", set()) for route in routes()}
    for kind in KINDS:
        for path in kind.routes:
            assert set(kind.methods) <= found[path]
    assert {"GET", "POST"} <= found["/callbacks/wecom"] and "POST" in found["/callbacks/discord"]


async def test_a_kind_not_configured_answers_404_naming_its_section(app_for: Callable[..., Any]) -> None:
    async with app_for() as (client, _):
        wecom = await client.post("/callbacks/wecom", content=b"<xml/>")
        discord = await client.post("/callbacks/discord", content=b"{}")
    assert wecom.status_code == 404 and "channels.wecom" in wecom.json()["error"]
    assert discord.status_code == 404 and "channels.discord" in discord.json()["error"]
