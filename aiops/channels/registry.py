"""The one table of chat channel kinds. Everything that needs to know which kinds exist reads it: the
configuration (`channels.<key>`, and `remediation.approvers.<key>`), the service (building channels and starting
their listeners), the web app (their callback routes) and `aiops check` (where they connect).

Adding a kind is its folder (config model, channel class, optional inbound side), one `Kind` line in `KINDS`, its
templates and its docs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx
from jinja2 import Environment

from aiops.channels import Capabilities, Channel
from aiops.channels.dingtalk import CAPABILITIES as DINGTALK
from aiops.channels.dingtalk import DingTalkChannel, DingTalkConfig
from aiops.channels.dingtalk.stream import inbound as dingtalk_inbound
from aiops.channels.dingtalk_webhook import CAPABILITIES as DINGTALK_ROBOT
from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig
from aiops.channels.discord import inbound as discord
from aiops.channels.discord.channel import CAPABILITIES as DISCORD
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.feishu import CAPABILITIES as FEISHU
from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu import inbound as feishu
from aiops.channels.feishu_webhook import CAPABILITIES as FEISHU_ROBOT
from aiops.channels.feishu_webhook import FeishuWebhookChannel, FeishuWebhookConfig
from aiops.channels.inbound import Deciders, Inbound
from aiops.channels.routing import Routing
from aiops.channels.wecom import inbound as wecom
from aiops.channels.wecom.channel import CAPABILITIES as WECOM
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom_webhook import CAPABILITIES as WECOM_ROBOT
from aiops.channels.wecom_webhook import WeComWebhookChannel, WeComWebhookConfig
from aiops.proxy import Destination, Proxied


class ChannelConfig(Protocol):
    """What every chat channel's config model offers besides its `Routing` and `Proxied` fields."""

    name: str

    def destinations(self, where: str) -> list[Destination]: ...


ConfigT = TypeVar("ConfigT", bound=Routing)
ChannelT = TypeVar("ChannelT", bound=Channel)


@dataclass(frozen=True)
class Kind(Generic[ConfigT, ChannelT]):
    """One kind of chat channel.

    `key` is its section under `channels:` — one mapping, or with `many` a list of them (group robots) — and, when
    its buttons call back (`approvers` says whose ids `remediation.approvers.<key>` lists), the approvers' key too.
    `build` makes the channel from its config, the templates and the HTTP client its `proxy` chose; `inbound`,
    when the kind receives clicks, makes its inbound side, served at `routes` and/or over a connection it opens.
    """

    key: str
    config: type[ConfigT]
    build: Callable[[ConfigT, Environment, httpx.AsyncClient], ChannelT]
    capabilities: Capabilities
    many: bool = False
    approvers: str | None = None
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("POST",)  # what its routes answer (WeCom checks the URL with a GET)
    inbound: Callable[[ConfigT, ChannelT, Deciders], Inbound | None] | None = None


KINDS: tuple[Kind[Any, Any], ...] = (
    Kind(
        "feishu",
        FeishuConfig,
        FeishuChannel,
        FEISHU,
        approvers="Feishu open_ids (ou_…)",
        routes=(feishu.ROUTE,),
        inbound=feishu.inbound,
    ),
    Kind(
        "dingtalk",
        DingTalkConfig,
        DingTalkChannel,
        DINGTALK,
        approvers="DingTalk staff ids",
        inbound=dingtalk_inbound,
    ),
    Kind(
        "wecom",
        WeComConfig,
        WeComChannel,
        WECOM,
        approvers="WeCom userids",
        routes=(wecom.ROUTE,),
        methods=("GET", "POST"),
        inbound=wecom.inbound,
    ),
    Kind(
        "discord",
        DiscordConfig,
        DiscordChannel,
        DISCORD,
        approvers="Discord user ids",
        routes=(discord.ROUTE,),
        inbound=discord.inbound,
    ),
    Kind("feishu_webhook", FeishuWebhookConfig, FeishuWebhookChannel, FEISHU_ROBOT, many=True),
    Kind("dingtalk_webhook", DingTalkWebhookConfig, DingTalkWebhookChannel, DINGTALK_ROBOT, many=True),
    Kind("wecom_webhook", WeComWebhookConfig, WeComWebhookChannel, WECOM_ROBOT, many=True),
)

# Who else decides, besides the people clicking in a chat: the web approval page's users and local CLI users.
DECIDERS = {"web": "web user names", "cli": "local users of the CLI"}


def kind(key: str) -> Kind[Any, Any]:
    """The kind named `key`; a KeyError names it when there is none."""
    for entry in KINDS:
        if entry.key == key:
            return entry
    raise KeyError(key)


def approver_keys() -> dict[str, str]:
    """`remediation.approvers` keys → whose ids each lists: the kinds whose clicks decide, then web and cli."""
    return {entry.key: entry.approvers for entry in KINDS if entry.approvers} | DECIDERS


@dataclass(frozen=True)
class Configured:
    """One configured channel: its kind, its key path in the configuration, and its config."""

    kind: Kind[Any, Any]
    where: str  # channels.feishu, channels.dingtalk_webhook[2]
    config: Any  # a Routing and Proxied model of `kind.config`, with `destinations`

    @property
    def proxied(self) -> Proxied:
        config: Proxied = self.config
        return config


def configured(sections: Callable[[str], object]) -> list[Configured]:
    """Every channel a configuration names, in registry order; `sections(key)` reads `channels.<key>`."""
    found: list[Configured] = []
    for entry in KINDS:
        value = sections(entry.key)
        if entry.many:
            items: Sequence[Any] = value if isinstance(value, list | tuple) else ()
            found += [Configured(entry, f"channels.{entry.key}[{i}]", item) for i, item in enumerate(items)]
        elif value is not None:
            found.append(Configured(entry, f"channels.{entry.key}", value))
    return found
