"""The Feishu app bot channel against a fake Open API that checks tokens and card rules."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import ValidationError

from aiops.channels import Announcement, ChannelError, Purpose, RateLimit
from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu.card import MAX_BYTES
from aiops.channels.records import ExecutionRecord
from aiops.proxy import http_client
from aiops.store.actions import argv_hash
from aiops.templating import build_environment, messages
from tests.channels.announcements import HOSTILE, announcement, digest
from tests.fakes.feishu import SECRET, FakeFeishu, card_problems
from tests.support.binaries import free_port
from tests.support.proxy import Pproxy

PURPOSES = ("opened", "updated", "resolved", "action")
LANGUAGES = ("zh-CN", "en")
MENTIONS = ("<at id=ou_3f9a></at>", "<at id=13800000000></at>")  # the third one given is not an id: dropped


@pytest.fixture
def openapi(fake_feishu: FakeFeishu) -> FakeFeishu:
    return fake_feishu


def channel(
    fake: FakeFeishu,
    http: httpx.AsyncClient,
    *,
    secret: str = SECRET,
    language: str = "zh-CN",
    **config: Any,
) -> FeishuChannel:
    settings = FeishuConfig(
        app_id=fake.app_id, app_secret=secret, chat_id=fake.chat_id, domain=fake.url, **config
    )
    return FeishuChannel(settings, build_environment(language), http)


def hashed(a: Announcement) -> Announcement:
    """The announcement with each proposal's argv hash, as the store gives them."""
    proposals = tuple(dataclasses.replace(p, argv_hash=argv_hash(p.host, p.argv)) for p in a.proposals)
    return dataclasses.replace(a, proposals=proposals)


def nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from nodes(item)


def of_tag(card: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return [node for node in nodes(card["body"]) if node.get("tag") == tag]


async def test_send_returns_the_message_id_and_update_edits_that_message(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    opened = hashed(announcement("opened"))
    handle = await feishu.send(feishu.render(opened))
    resolved = feishu.render(announcement("resolved"))
    await feishu.update(handle or "", resolved)
    assert handle is not None and list(openapi.messages) == [handle]
    first, second = openapi.messages[handle]
    assert first == json.loads(feishu.render(opened)) and second == json.loads(resolved)
    assert openapi.token_requests == 1, "the tenant token is fetched once and reused"
    assert feishu.limits == RateLimit(per_minute=100, per_second=5) and feishu.immediate is False


async def test_a_resend_of_the_same_card_posts_one_message(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    body = feishu.render(hashed(announcement("opened")))
    assert await feishu.send(body) == await feishu.send(body)
    assert len(openapi.messages) == 1


async def test_rate_limit_is_retryable_after_the_reset_feishu_names(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    openapi.fail("rate_limit", reset=7)
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(announcement("resolved")))
    assert raised.value.retryable and raised.value.retry_after == 7.0
    assert "99991400" in str(raised.value)
    assert await feishu.send(feishu.render(announcement("resolved"))) is not None


@pytest.mark.parametrize("kind", ["server_error", "bad_gateway"])
async def test_server_errors_are_retryable(openapi: FakeFeishu, kind: str, http: httpx.AsyncClient) -> None:
    feishu = channel(openapi, http)
    openapi.fail(kind)
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(announcement("resolved")))
    assert raised.value.retryable and raised.value.retry_after is None


async def test_an_unreachable_feishu_is_retryable(http: httpx.AsyncClient) -> None:
    fake = FakeFeishu().start()
    fake.stop()  # nothing listens on its port any more
    feishu = channel(fake, http)
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(announcement("resolved")))
    assert raised.value.retryable


async def test_a_wrong_app_secret_is_not_retryable_and_names_the_setting(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    wrong = "not-the-app-secret-0123456789"
    feishu = channel(openapi, http, secret=wrong)
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(announcement("resolved")))
    assert not raised.value.retryable
    assert "10014" in str(raised.value) and "channels.feishu.app_secret" in str(raised.value)
    assert wrong not in str(raised.value) and openapi.messages == {}


async def test_a_refused_token_is_not_retryable_and_a_new_one_is_fetched_next_time(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http)
    await feishu.send(feishu.render(announcement("resolved")))
    openapi.revoke_tokens()
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(hashed(announcement("opened", hostile=True))))
    assert not raised.value.retryable and "99991663" in str(raised.value)
    assert await feishu.send(feishu.render(announcement("action"))) is not None
    assert openapi.token_requests == 2


async def test_a_chat_without_the_bot_is_not_retryable_and_says_what_to_fix(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = FeishuChannel(
        FeishuConfig(app_id=openapi.app_id, app_secret=SECRET, chat_id="oc_elsewhere", domain=openapi.url),
        build_environment("en"),
        http,
    )
    with pytest.raises(ChannelError) as raised:
        await feishu.send(feishu.render(announcement("resolved")))
    assert not raised.value.retryable and "230002" in str(raised.value) and "chat_id" in str(raised.value)


async def test_a_card_feishu_refuses_is_not_retryable(openapi: FakeFeishu, http: httpx.AsyncClient) -> None:
    feishu = channel(openapi, http)
    legacy = {"schema": "2.0", "config": {"update_multi": True}, "header": {"title": {"tag": "plain_text"}}}
    legacy["body"] = {"elements": [{"tag": "action", "actions": []}]}
    with pytest.raises(ChannelError) as raised:
        await feishu.send(json.dumps(legacy))
    assert not raised.value.retryable and "unsupported tag action" in str(raised.value)


async def test_fetching_the_token_does_not_block_the_event_loop(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    """A slow token answer holds up only the message waiting for it, not the event loop."""
    openapi.token_delay = 0.5
    feishu = channel(openapi, http)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await feishu.send(feishu.render(announcement("resolved")))
    ticker.cancel()
    assert time.monotonic() - started >= 0.5 and ticks >= 20


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_every_card_keeps_json_2_rules_with_hostile_values(
    openapi: FakeFeishu, purpose: Purpose, language: str, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language=language)
    body = feishu.render(hashed(announcement(purpose, hostile=True)))  # type: ignore[arg-type]
    card = json.loads(body)
    assert card_problems(body) == []
    assert await feishu.send(body) is not None, openapi.refusals
    assert not any(node.get("tag") == "action" for node in nodes(card))
    for markdown in of_tag(card, "markdown"):
        text = markdown["content"]
        assert (
            "<at id=all>" not in text
            and "**bold**" not in text
            and "[x](" not in text
            and "`code`" not in text
        )
        assert text.count("<at ") == text.count("</at>") == sum(text.count(tag) for tag in MENTIONS)
    assert all(tag in body for tag in MENTIONS) == (purpose in ("opened", "updated"))
    assert messages(language)["feishu_open_incident"] in body


@pytest.mark.parametrize("language", LANGUAGES)
async def test_pending_proposals_get_approve_and_reject_buttons_bound_to_their_command(
    openapi: FakeFeishu, language: str, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language=language)
    opened = hashed(announcement("opened", hostile=True))
    card = json.loads(feishu.render(opened))
    values = [node["behaviors"][0]["value"] for node in of_tag(card, "button")]
    pending = [p for p in opened.proposals if p.state == "pending"]
    assert values == [
        {"proposal": p.id, "decision": decision, "hash": p.argv_hash[:16]}
        for p in pending
        for decision in ("approve", "reject")
    ]
    texts = [node["text"]["content"] for node in of_tag(card, "div")]
    for p in pending:
        assert any(f"$ {shlex.join(p.argv)}" in text for text in texts), "the exact command, shell-quoted"
    assert [len(column_set["columns"]) for column_set in of_tag(card, "column_set")] == [2, 2]
    catalog = messages(language)
    assert catalog["feishu_approve"] in json.dumps(card, ensure_ascii=False)
    assert any(catalog["refused"] in text and HOSTILE.split("\n")[0] in text for text in texts)


async def test_decided_proposals_show_their_state_and_result_without_buttons(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language="en")
    opened = hashed(announcement("opened"))
    execution = ExecutionRecord("succeeded", exit_status=0, stdout="ok")
    done = {"state": "succeeded", "decided_by": "ou_alice", "decided_via": "feishu", "execution": execution}
    proposals = (
        dataclasses.replace(opened.proposals[0], **done),
        dataclasses.replace(opened.proposals[1], state="rejected"),
    )
    card = json.loads(feishu.render(dataclasses.replace(opened, proposals=proposals)))
    texts = "\n".join(node["text"]["content"] for node in of_tag(card, "div"))
    assert of_tag(card, "button") == []
    assert "ran, exit status 0 (by ou_alice via feishu" in texts and "Result: exit status 0" in texts
    assert "State: rejected" in texts


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_huge_announcement_is_cut_to_30kb_evidence_first_and_says_so(
    openapi: FakeFeishu, language: str, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language=language)
    body = feishu.render(hashed(announcement("opened", hostile=True, huge=True)))
    card = json.loads(body)
    assert len(body.encode()) <= MAX_BYTES and card_problems(body) == []
    assert len(of_tag(card, "button")) == 4, "the buttons survive the cut"
    catalog = messages(language)
    omitted = catalog["feishu_evidence_omitted"].split("{count}")[1].strip()[:8]
    assert omitted in body and catalog["feishu_shortened"] in body
    assert await feishu.send(body) is not None
    action = feishu.render(announcement("action", hostile=True, huge=True))
    assert len(action.encode()) <= MAX_BYTES and card_problems(action) == []


async def test_a_digest_is_one_card_linking_each_incident(
    openapi: FakeFeishu, http: httpx.AsyncClient
) -> None:
    feishu = channel(openapi, http, language="en")
    body = feishu.render_digest(digest(30, hostile=True))
    card = json.loads(body)
    assert card_problems(body) == [] and card["header"]["template"] == "red"
    content = card["body"]["elements"][0]["content"]
    assert "](https://aiops.example.com/incidents/1)" in content and "<at id=all>" not in content
    assert await feishu.send(body) is not None
    huge = feishu.render_digest(digest(3000, hostile=True))
    assert len(huge.encode()) <= MAX_BYTES and "more on the incidents page" in huge


def test_the_domain_is_checked_when_the_configuration_is_read() -> None:
    common = {"app_id": "cli_x", "app_secret": SECRET, "chat_id": "oc_x"}
    for domain in ("http://fake-feishu:8080", "https://open.feishu.cn/open-apis", "ftp://x", "https://u:p@x"):
        with pytest.raises(ValidationError, match="domain"):
            FeishuConfig(**common, domain=domain)
    for domain in ("https://open.larksuite.com", "http://127.0.0.1:8080", "http://localhost:1"):
        assert FeishuConfig(**common, domain=domain).domain == domain
    with pytest.raises(ValidationError, match="timeout"):
        FeishuConfig(**common, timeout="soon")
    with pytest.raises(ValidationError, match="extra"):
        FeishuConfig(**common, webhook="https://x")


async def test_a_single_giant_value_still_fits(openapi: FakeFeishu, http: httpx.AsyncClient) -> None:
    feishu = channel(openapi, http, language="en")
    opened = hashed(announcement("opened"))
    giant = dataclasses.replace(opened.incident, severity="x" * 100_000, title="t" * 100_000)
    body = feishu.render(dataclasses.replace(opened, incident=giant))
    assert len(body.encode()) <= MAX_BYTES and card_problems(body) == []
    assert await feishu.send(body) is not None


async def test_cards_go_through_channels_feishu_proxy(openapi: FakeFeishu, proxy: Pproxy) -> None:
    settings = FeishuConfig(
        app_id=openapi.app_id,
        app_secret=SECRET,
        chat_id=openapi.chat_id,
        domain=openapi.url,
        proxy=proxy.socks,
    )
    async with http_client(settings, "channels.feishu.proxy") as http:
        feishu = FeishuChannel(settings, build_environment("en"), http)
        handle = await feishu.send(feishu.render(hashed(announcement("opened"))))
        await feishu.update(handle or "", feishu.render(announcement("resolved")))
    assert handle is not None and len(openapi.messages[handle]) == 2 and openapi.token_requests == 1
    proxy.wait_for(urlsplit(openapi.url).netloc)


async def test_a_proxy_that_is_down_is_retryable_and_names_channels_feishu_proxy(openapi: FakeFeishu) -> None:
    down = f"socks5h://aiops:proxy-Pw93kLm2@127.0.0.1:{free_port()}"
    settings = FeishuConfig(
        app_id=openapi.app_id, app_secret=SECRET, chat_id=openapi.chat_id, domain=openapi.url, proxy=down
    )
    async with http_client(settings, "channels.feishu.proxy") as http:
        feishu = FeishuChannel(settings, build_environment("en"), http)
        with pytest.raises(ChannelError) as raised:
            await feishu.send(feishu.render(announcement("resolved")))
    said = str(raised.value)
    assert raised.value.retryable and "set in channels.feishu.proxy" in said
    assert "proxy-Pw93kLm2" not in said and openapi.token_requests == 0
