"""The DingTalk app channel against a fake Open API and Stream gateway: cards created with STREAM callbacks and
edited by key, one access token for many calls, errors that say whether to retry, and clicks received by the real
dingtalk-stream client deciding proposals through the approvals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from aiops.channels import Announcement, ChannelError
from aiops.channels.dingtalk import DingTalkChannel, DingTalkConfig
from aiops.channels.dingtalk.card import HASH_PREFIX, MAX_BODY
from aiops.channels.dingtalk.openapi import OpenApi
from aiops.channels.dingtalk.stream import DingTalkCallbacks, parse_click
from aiops.channels.records import proposal_records
from aiops.models import Proposal
from aiops.proxy import http_client
from aiops.service import Services
from aiops.store import actions
from aiops.store.actions import argv_hash
from aiops.templating import build_environment
from tests.channels.announcements import HOSTILE, announcement, digest
from tests.conftest import DATA
from tests.fakes.dingtalk import CLIENT_ID, GROUP, SECRET, FakeDingTalk
from tests.support.app import AUTH
from tests.support.binaries import free_port
from tests.support.proxy import Pproxy

TEMPLATE = "d9a2a3f4-0000-4c5e-9d3f-aiops.schema"
APPROVERS: dict[str, Any] = {"approvers": {"dingtalk": ["staff-1"]}}
EN = {"language": "en"}


@pytest.fixture
def fake(fake_dingtalk: FakeDingTalk) -> FakeDingTalk:
    return fake_dingtalk


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def config(fake: FakeDingTalk, **changes: Any) -> DingTalkConfig:
    values = {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "open_conversation_id": GROUP,
        "card_template_id": TEMPLATE,
        "api": fake.url,
        "timeout": 5,
        **changes,
    }
    return DingTalkConfig.model_validate(values)


def channel(
    fake: FakeDingTalk, http: httpx.AsyncClient, language: str = "en", **changes: Any
) -> DingTalkChannel:
    return DingTalkChannel(config(fake, **changes), build_environment(language), http)


def hashed(a: Announcement) -> Announcement:
    """The announcement with each proposal's argv hash, as the store gives them."""
    proposals = tuple(dataclasses.replace(p, argv_hash=argv_hash(p.host, p.argv)) for p in a.proposals)
    return dataclasses.replace(a, proposals=proposals)


def params(body: str) -> dict[str, str]:
    found: dict[str, str] = json.loads(body)["cardData"]["cardParamMap"]
    return found


# ---- the Open API


async def test_a_card_is_created_and_delivered_with_stream_callbacks(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    handle = await dingtalk.send(dingtalk.render(hashed(announcement("opened"))))
    assert handle is not None and handle in fake.cards
    created = fake.cards[handle]["created"]
    assert created["cardTemplateId"] == TEMPLATE and created["outTrackId"] == handle
    assert created["callbackType"] == "STREAM" and created["userIdType"] == 1
    assert created["openSpaceId"] == f"dtv1.card//IM_GROUP.{GROUP}"
    assert created["imGroupOpenDeliverModel"] == {"robotCode": CLIENT_ID, "atUserIds": {"ou_3f9a": "ou_3f9a"}}
    shown = fake.cards[handle]["params"]
    assert shown["title"] == "[critical] Host out of disk space (web-1:9100)"
    assert shown["status"] == "firing" and shown["actions_open"] == "true"
    assert shown["incident_url"] == "https://aiops.example.com/incidents/7"
    assert "The disk on web-1:9100 is filling." in shown["summary"] and "query 0" in shown["evidence"]
    assert "disk/web-1:9100.md" in shown["runbook"]
    items = json.loads(shown["proposals"])
    assert [(i["proposal_id"], i["pending"]) for i in items] == [
        ("11", "true"),
        ("12", "true"),
        ("13", "false"),
    ]
    restart = items[1]
    assert restart["command"] == "systemctl restart nginx" and restart["risk"] == "high"
    assert restart["hash"] == argv_hash("web-1:9100", ["systemctl", "restart", "nginx"])[:HASH_PREFIX]


async def test_an_update_replaces_only_the_keys_it_carries(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    handle = await dingtalk.send(dingtalk.render(hashed(announcement("opened"))))
    assert handle is not None
    await dingtalk.update(handle, dingtalk.render(announcement("action")))
    await dingtalk.update(handle, dingtalk.render(announcement("resolved")))
    method, path, body = fake.calls[-1]
    assert (method, path) == ("PUT", "/v1.0/card/instances")
    assert body["outTrackId"] == handle and body["cardUpdateOptions"] == {"updateCardDataByKey": True}
    shown = fake.cards[handle]["params"]
    assert shown["status"] == "resolved" and shown["actions_open"] == "false"
    assert shown["title"].startswith("[RESOLVED]")
    assert "query 0" in shown["evidence"], "the resolution keeps the evidence on the card"
    assert "freed 2 MB" in shown["last_action"] and "exit status: 0" in shown["last_action"]


async def test_a_resend_of_the_same_card_names_the_same_card(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    body = dingtalk.render(hashed(announcement("opened")))
    first = await dingtalk.send(body)
    with pytest.raises(ChannelError):
        await dingtalk.send(body)  # the fake refuses a second card under the same outTrackId
    assert [c[2]["outTrackId"] for c in fake.calls] == [first, first] and len(fake.cards) == 1


async def test_one_access_token_serves_many_calls(fake: FakeDingTalk, http: httpx.AsyncClient) -> None:
    dingtalk = channel(fake, http)
    for purpose in ("opened", "updated"):
        handle = await dingtalk.send(dingtalk.render(hashed(announcement(purpose))))
        assert handle is not None
        await dingtalk.update(handle, dingtalk.render(announcement("resolved")))
    await asyncio.gather(*(dingtalk.send(dingtalk.render_digest(digest(n))) for n in (3, 4, 5)))
    assert fake.token_requests == 1 and len(fake.calls) == 7


async def test_a_token_is_replaced_before_it_expires(fake: FakeDingTalk, http: httpx.AsyncClient) -> None:
    now = [1000.0]
    api = OpenApi(config(fake), http, clock=lambda: now[0])
    first = await api.access_token()
    now[0] += 7200 - 301
    assert await api.access_token() == first and fake.token_requests == 1
    now[0] += 2  # within five minutes of its expiry
    assert await api.access_token() != first and fake.token_requests == 2


async def test_a_refused_token_is_retryable_and_a_new_one_is_fetched(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http)
    await dingtalk.send(dingtalk.render_digest(digest(3)))
    fake.expire_tokens()
    with pytest.raises(ChannelError) as refused:
        await dingtalk.send(dingtalk.render_digest(digest(4)))
    assert refused.value.retryable and "InvalidAuthentication" in str(refused.value)
    await dingtalk.send(dingtalk.render_digest(digest(4)))
    assert fake.token_requests == 2 and len(fake.cards) == 2


QPS = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"


@pytest.mark.parametrize(
    ("status", "body", "headers", "retry_after"),
    [
        (429, {"code": "Throttled", "message": "slow down"}, {"Retry-After": "7"}, 7.0),
        (403, {"code": QPS, "message": "app over its limit"}, {}, 1.0),
        (403, {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "busy"}, {}, 1.0),
        (200, {"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": "u"}, {}, 300.0),
        (503, {"code": "ServiceUnavailable", "message": "down"}, {}, None),
        (502, "<html>bad gateway</html>", {}, None),
    ],
)
async def test_throttling_and_outages_are_retryable(
    fake: FakeDingTalk,
    http: httpx.AsyncClient,
    status: int,
    body: Any,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    dingtalk = channel(fake, http)
    fake.fail(status, body, headers=headers)
    with pytest.raises(ChannelError) as failed:
        await dingtalk.send(dingtalk.render_digest(digest(3)))
    assert failed.value.retryable and failed.value.retry_after == retry_after
    assert await dingtalk.send(dingtalk.render_digest(digest(3))) in fake.cards


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("Forbidden.AccessDenied.ApiCountLimitForOrg", "monthly Open API quota"),
        ("Forbidden.AccessDenied.AccessTokenPermissionDenied", "Card.Instance.Write"),
        ("param.openSpaceIdInvalid", "channels.dingtalk.open_conversation_id"),
        ("param.invalid", "param.invalid"),
    ],
)
async def test_refusals_are_not_retryable_and_say_what_to_fix(
    fake: FakeDingTalk, http: httpx.AsyncClient, code: str, hint: str
) -> None:
    dingtalk = channel(fake, http)
    fake.fail(
        403 if code.startswith("Forbidden") else 400, {"code": code, "message": "no", "requestid": "r-1"}
    )
    with pytest.raises(ChannelError) as failed:
        await dingtalk.send(dingtalk.render_digest(digest(3)))
    assert not failed.value.retryable and hint in str(failed.value) and "requestid r-1" in str(failed.value)


async def test_a_wrong_secret_is_not_retryable_names_the_setting_and_not_the_secret(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http, client_secret="wrong-secret-1234567")
    with pytest.raises(ChannelError) as failed:
        await dingtalk.send(dingtalk.render_digest(digest(3)))
    assert not failed.value.retryable and "client_secret" in str(failed.value)
    assert "wrong-secret-1234567" not in str(failed.value) and fake.calls == []


async def test_a_group_the_robot_is_not_in_is_not_retryable(
    fake: FakeDingTalk, http: httpx.AsyncClient
) -> None:
    dingtalk = channel(fake, http, open_conversation_id="cidOtherGroup==")
    with pytest.raises(ChannelError) as failed:
        await dingtalk.send(dingtalk.render_digest(digest(3)))
    assert not failed.value.retryable and "robot is not a member" in str(failed.value)


async def test_an_unreachable_dingtalk_is_retryable(http: httpx.AsyncClient) -> None:
    unreachable = DingTalkConfig.model_validate(
        {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "open_conversation_id": GROUP,
            "card_template_id": TEMPLATE,
            "api": "http://127.0.0.1:9",
        }
    )
    dingtalk = DingTalkChannel(unreachable, build_environment("en"), http)
    with pytest.raises(ChannelError) as failed:
        await dingtalk.send(dingtalk.render_digest(digest(3)))
    assert failed.value.retryable and SECRET not in str(failed.value)


# ---- rendering


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("purpose", ["opened", "updated", "resolved", "action"])
def test_card_data_is_strings_under_the_limit_with_hostile_and_huge_values(
    http: httpx.AsyncClient, language: str, purpose: Any
) -> None:
    dingtalk = DingTalkChannel(config_for_render(), build_environment(language), http)
    for a in (announcement(purpose, hostile=True), announcement(purpose, huge=True)):
        body = dingtalk.render(hashed(a))
        assert len(body.encode()) <= MAX_BODY
        assert all(isinstance(value, str) for value in params(body).values())


def test_hostile_values_are_shown_as_text(http: httpx.AsyncClient) -> None:
    dingtalk = DingTalkChannel(config_for_render(), build_environment("en"), http)
    shown = params(dingtalk.render(hashed(announcement("opened", hostile=True))))
    assert "**bold**" not in shown["summary"] and "\\*\\*bold\\*\\*" in shown["summary"]
    assert "[x](https://evil.example)" not in shown["summary"]
    assert "\n" not in shown["title"] and HOSTILE.split("\n")[0] in shown["title"]


def test_a_huge_card_drops_evidence_first_and_says_so(http: httpx.AsyncClient) -> None:
    dingtalk = DingTalkChannel(config_for_render(), build_environment("en"), http)
    shown = params(dingtalk.render(hashed(announcement("opened", huge=True))))
    assert "Shortened to fit the card" in shown["summary"]
    assert len(json.loads(shown["proposals"])) == 3, "every proposal keeps its buttons"


def test_a_digest_lists_the_incidents(http: httpx.AsyncClient) -> None:
    dingtalk = DingTalkChannel(config_for_render(), build_environment("zh-CN"), http)
    shown = params(dingtalk.render_digest(digest(30)))
    assert shown["title"] == "告警风暴：30 个事件" and shown["actions_open"] == "false"
    assert (
        "https://aiops.example.com/incidents/1)" in shown["summary"] and "另有 20 个事件" in shown["summary"]
    )


def config_for_render() -> DingTalkConfig:
    return DingTalkConfig.model_validate(
        {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "open_conversation_id": GROUP,
            "card_template_id": "t",
        }
    )


def test_a_click_is_read_from_the_card_callback_data() -> None:
    content = {
        "cardPrivateData": {"actionIds": ["reject"], "params": {"proposal_id": "12", "hash": "ab" * 8}}
    }
    data = {"outTrackId": "aiops-1", "userId": "staff-1", "content": json.dumps(content)}
    click = parse_click(data)
    assert click is not None and (click.proposal_id, click.approve, click.user) == (12, False, "staff-1")
    assert parse_click({**data, "content": "not json"}) is None
    assert parse_click({**data, "content": json.dumps(content).replace("ab" * 8, "ab")}) is None
    assert (
        parse_click({**data, "content": json.dumps({"cardPrivateData": {"actionIds": ["delete"]}})}) is None
    )


# ---- clicks over the Stream connection


async def propose(client: httpx.AsyncClient, services: Services) -> tuple[Announcement, dict[str, Any]]:
    """An incident from tests/data/firing.json with one pending proposal, and its announcement as the pipeline
    would make it."""
    answer = await client.post(
        "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
    )
    delivery = int(answer.json()["delivery"])
    triage = await services.pipeline.run(delivery)
    assert triage is not None
    incident = triage.correlation.incident
    proposal = Proposal(
        "restart-service", "web-1", ("systemctl", "restart", "nginx"), "high", "nginx is down"
    )
    async with services.engine.begin() as conn:
        await services.approvals.record(conn, incident.id, delivery, [proposal])
        shown = await actions.of_delivery(conn, delivery)
    url = f"http://aiops/incidents/{incident.id}"
    [item] = [p for p in shown if p["action_id"] == "restart-service"]
    return Announcement("opened", incident, triage, url, proposals=proposal_records(shown)), item


async def state(services: Services, proposal_id: int) -> tuple[str, int]:
    """The proposal's state and how many executions are queued."""
    async with services.engine.connect() as conn:
        current = await actions.proposal(conn, proposal_id)
        queued = await conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'execute'"))
    assert current is not None
    return current["state"], int(queued.scalar_one())


async def connected(
    fake: FakeDingTalk, services: Services, **changes: Any
) -> tuple[DingTalkChannel, DingTalkCallbacks]:
    dingtalk = DingTalkChannel(config(fake, **changes), services.templates, services.http)
    callbacks = DingTalkCallbacks(dingtalk, services.decisions)
    callbacks.start()
    assert await asyncio.to_thread(fake.connected.wait, 10), "the SDK did not connect to the fake gateway"
    return dingtalk, callbacks


async def click(fake: FakeDingTalk, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Press a button and wait, off the event loop, for the client's ack."""
    message_id = await asyncio.to_thread(fake.click, *args, **kwargs)
    ack: dict[str, Any] = await asyncio.to_thread(fake.wait_ack, message_id)
    return ack


def notice(ack: dict[str, Any], user: str) -> str:
    found: str = ack["data"]["response"]["privateData"][user]["cardParamMap"]["notice"]
    return found


async def test_an_approvers_click_approves_and_the_card_shows_it(
    app_for: Callable[..., Any], fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with app_for(remediation=APPROVERS, server=EN) as (client, services):
        dingtalk, callbacks = await connected(fake, services)
        try:
            opened, item = await propose(client, services)
            handle = await dingtalk.send(dingtalk.render(opened))
            assert handle is not None and fake.cards[handle]["params"]["actions_open"] == "true"
            ack = await click(fake, handle, "staff-1", "approve", item["id"])
            assert await state(services, item["id"]) == ("approved", 1)
        finally:
            await callbacks.stop()
    [opening] = fake.opened
    assert opening["clientId"] == CLIENT_ID and opening["clientSecret"] == SECRET
    assert {"type": "CALLBACK", "topic": "/v1.0/card/instances/callback"} in opening["subscriptions"]
    assert ack["code"] == 200 and ack["headers"]["contentType"] == "application/json"
    assert notice(ack, "staff-1") == "Approved: it will run once."
    shown = fake.cards[handle]["params"]
    [after] = [p for p in json.loads(shown["proposals"]) if p["proposal_id"] == str(item["id"])]
    assert after["state"] == "approved" and after["pending"] == "false" and shown["actions_open"] == "false"
    assert "approved by staff-1" in shown["last_action"]
    assert shown["summary"], "the update by key left the rest of the card as it was"
    assert SECRET not in caplog.text and "dingtalk press by staff-1 on proposal 1: approved" in caplog.text


async def test_a_click_from_anyone_else_changes_nothing(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with app_for(remediation=APPROVERS, server=EN) as (client, services):
        dingtalk, callbacks = await connected(fake, services)
        try:
            opened, item = await propose(client, services)
            handle = await dingtalk.send(dingtalk.render(opened))
            assert handle is not None
            before = dict(fake.cards[handle]["params"])
            ack = await click(fake, handle, "staff-2", "approve", item["id"])
            assert await state(services, item["id"]) == ("pending", 0)
        finally:
            await callbacks.stop()
    assert "staff-2 may not approve via dingtalk" in notice(ack, "staff-2")
    assert fake.cards[handle]["params"] == before
    assert [c[0] for c in fake.calls] == ["POST"], "no card update"


async def test_a_click_bound_to_another_command_changes_nothing(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with app_for(remediation=APPROVERS, server=EN) as (client, services):
        dingtalk, callbacks = await connected(fake, services)
        try:
            opened, item = await propose(client, services)
            handle = await dingtalk.send(dingtalk.render(opened))
            forged = {"proposal_id": str(item["id"]), "hash": "0" * HASH_PREFIX}
            ack = await click(fake, handle, "staff-1", "approve", item["id"], params=forged)
            assert await state(services, item["id"]) == ("pending", 0)
            rejected = await click(fake, handle, "staff-1", "reject", item["id"])
            assert await state(services, item["id"]) == ("rejected", 0)
            again = await click(
                fake,
                handle,
                "staff-1",
                "approve",
                item["id"],
                params=forged | {"hash": item["argv_hash"][:16]},
            )
            assert await state(services, item["id"]) == ("rejected", 0)
        finally:
            await callbacks.stop()
    assert "different command" in notice(ack, "staff-1")
    assert notice(rejected, "staff-1") == "Rejected: it will not run."
    assert "a rejection is final" in notice(again, "staff-1")


async def test_the_connection_answers_pings_and_reconnects_when_told(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with app_for(remediation=APPROVERS, server=EN) as (_, services):
        _, callbacks = await connected(fake, services)
        try:
            ping = await asyncio.to_thread(fake.ping)
            ack = await asyncio.to_thread(fake.wait_ack, ping)
            await asyncio.to_thread(fake.disconnect)
            assert await asyncio.to_thread(fake.connected.wait, 10), "the SDK did not connect again"
        finally:
            await callbacks.stop()
    assert ack["code"] == 200 and "opaque" in ack["data"]
    assert len(fake.opened) == 2, "a new connection, with a new ticket"


async def test_stop_ends_the_stream_thread_while_the_gateway_is_unreachable(
    app_for: Callable[..., Any], fake: FakeDingTalk
) -> None:
    async with app_for(remediation=APPROVERS, server=EN) as (_, services):
        dingtalk = DingTalkChannel(
            config(fake, gateway="http://127.0.0.1:9"), services.templates, services.http
        )
        callbacks = DingTalkCallbacks(dingtalk, services.decisions)
        callbacks.start()
        await asyncio.sleep(0.3)  # the SDK has failed to open the connection and sleeps before the next try
        await asyncio.wait_for(callbacks.stop(), 10)
    assert not any(thread.name == "dingtalk-dingtalk" for thread in threading.enumerate())


# ---- through channels.dingtalk.proxy


async def test_cards_and_the_token_go_through_channels_dingtalk_proxy(
    fake: FakeDingTalk, proxy: Pproxy
) -> None:
    settings = config(fake, proxy=proxy.socks)
    async with http_client(settings, "channels.dingtalk.proxy") as http:
        dingtalk = DingTalkChannel(settings, build_environment("en"), http)
        handle = await dingtalk.send(dingtalk.render(hashed(announcement("opened"))))
        await dingtalk.update(handle or "", dingtalk.render(announcement("resolved")))
    assert handle in fake.cards and fake.token_requests == 1
    assert [method for method, _, _ in fake.calls] == ["POST", "PUT"]
    proxy.wait_for(urlsplit(fake.url).netloc)


async def test_a_proxy_that_is_down_is_retryable_and_names_channels_dingtalk_proxy(
    fake: FakeDingTalk,
) -> None:
    settings = config(fake, proxy=f"socks5h://aiops:proxy-Zr41pQx8@127.0.0.1:{free_port()}")
    async with http_client(settings, "channels.dingtalk.proxy") as http:
        dingtalk = DingTalkChannel(settings, build_environment("en"), http)
        with pytest.raises(ChannelError) as raised:
            await dingtalk.send(dingtalk.render(announcement("resolved")))
    said = str(raised.value)
    assert (
        raised.value.retryable and "set in channels.dingtalk.proxy" in said and "proxy-Zr41pQx8" not in said
    )
    assert fake.token_requests == 0


@pytest.mark.parametrize("kind", ["socks5h", "http"])
async def test_the_stream_connects_through_channels_dingtalk_proxy(
    app_for: Callable[..., Any], fake: FakeDingTalk, proxy: Pproxy, kind: str
) -> None:
    async with app_for(remediation=APPROVERS, server=EN) as (client, services):
        url = proxy.socks if kind == "socks5h" else proxy.http
        dingtalk, callbacks = await connected(fake, services, proxy=url)
        try:
            opened, item = await propose(client, services)
            handle = await dingtalk.send(dingtalk.render(opened))
            ack = await click(fake, handle, "staff-1", "approve", item["id"])
        finally:
            await callbacks.stop()
    assert notice(ack, "staff-1") == "Approved: it will run once."
    for target in (fake.url, fake.ws_url):
        proxy.wait_for(urlsplit(target).netloc)


async def test_without_a_proxy_the_stream_ignores_the_environment_s(
    app_for: Callable[..., Any], fake: FakeDingTalk, proxy: Pproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "ws_proxy", "wss_proxy"):
        monkeypatch.setenv(name, proxy.http)
    async with app_for(remediation=APPROVERS, server=EN) as (_, services):
        _, callbacks = await connected(fake, services)
        await callbacks.stop()
    assert proxy.carried() == []


async def test_a_stream_proxy_that_is_down_is_logged_naming_the_setting(
    app_for: Callable[..., Any], fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"socks5h://aiops:proxy-Zr41pQx8@127.0.0.1:{free_port()}"
    async with app_for(remediation=APPROVERS, server=EN) as (_, services):
        dingtalk = DingTalkChannel(config(fake, proxy=down), services.templates, services.http)
        callbacks = DingTalkCallbacks(dingtalk, services.decisions)
        callbacks.start()
        for _ in range(100):
            if "could not be opened" in caplog.text:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(callbacks.stop(), 10)
    assert "set in channels.dingtalk.proxy" in caplog.text and "proxy-Zr41pQx8" not in caplog.text
    assert fake.opened == []
