"""The WeCom app client against the fake: one access token for many calls, fetched again when it expires or is
revoked, template cards with Approve/Reject keys and their single-use response codes, and WeCom's error codes read
as retry or not, with what to fix."""

from __future__ import annotations

import httpx
import pytest

from aiops.channels.wecom.api import (
    RESPONSE_CODE_LIFETIME,
    Button,
    ResponseCode,
    ResponseCodeRefused,
    TokenCache,
    approval_buttons,
    button_card,
    parse_decision_key,
    task_id,
)
from aiops.channels.wecom.errors import WeComError
from tests.channels.wecom.conftest import app
from tests.fakes.robots import Clock
from tests.fakes.wecom import SECRET, FakeWeCom
from tests.support.binaries import free_port
from tests.support.logs import aiops_logging

USERS = ["zhangsan", "lisi"]


def card(task: str = "inc7-1700000000", proposal: int = 42) -> dict[str, object]:
    return button_card(task, "HostOutOfDiskSpace", "web-1: / is 97% full", approval_buttons(proposal))


async def test_one_token_serves_many_calls(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    client = app(fake, http, clock)
    for n in range(3):
        await client.send_markdown(USERS, f"message {n}")
    assert fake.token_requests == 1 and len(fake.messages) == 3


async def test_clients_of_one_app_share_a_token_cache(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, tokens: TokenCache
) -> None:
    await app(fake, http, clock, tokens=tokens).send_markdown(USERS, "one")
    await app(fake, http, clock, tokens=tokens).send_markdown(USERS, "two")
    assert fake.token_requests == 1


async def test_a_token_near_its_expiry_is_replaced_before_wecom_refuses_it(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    await client.send_markdown(USERS, "one")
    clock.advance(7200 - 299)
    await client.send_markdown(USERS, "two")
    assert fake.token_requests == 2
    assert "/cgi-bin/message/send" in fake.calls[-1] and fake.calls.count("/cgi-bin/message/send") == 2


@pytest.mark.parametrize("steer", ["expire_tokens", "revoke_tokens"])
async def test_an_expired_or_revoked_token_is_fetched_again_once(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, steer: str
) -> None:
    client = app(fake, http, clock)
    await client.send_markdown(USERS, "one")
    getattr(fake, steer)()  # 42001 or 40014 for the token the client keeps
    await client.send_markdown(USERS, "two")
    assert fake.token_requests == 2 and len(fake.messages) == 2


async def test_a_token_refused_twice_in_a_row_is_not_fetched_a_third_time(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.expires_in = 0  # every token it issues is expired on arrival
    with pytest.raises(WeComError) as refused:
        await app(fake, http, clock).send_markdown(USERS, "one")
    assert refused.value.errcode == 42001 and fake.token_requests == 2


async def test_a_wrong_secret_names_the_setting_and_is_not_retried(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(WeComError, match="corp_secret") as refused:
        await app(fake, http, clock, corp_secret="not-the-secret-3vX").send_markdown(USERS, "one")
    assert (refused.value.errcode, refused.value.retryable) == (40001, False)
    assert "not-the-secret-3vX" not in str(refused.value)


async def test_an_untrusted_ip_says_to_add_the_egress_ip(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.trusted_ips = {"203.0.113.7"}
    with pytest.raises(WeComError, match="企业可信IP") as refused:
        await app(fake, http, clock).send_markdown(USERS, "one")
    assert (refused.value.errcode, refused.value.retryable) == (60020, False)
    assert "egress IP" in str(refused.value)


async def test_busy_is_retryable_and_a_gateway_outage_too(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    fake.busy()
    with pytest.raises(WeComError) as busy:
        await client.send_markdown(USERS, "one")
    assert (busy.value.errcode, busy.value.retryable) == (-1, True)
    fake.outage = True
    with pytest.raises(WeComError, match="HTTP 503") as outage:
        await client.send_markdown(USERS, "one")
    assert outage.value.retryable


async def test_an_unreachable_wecom_is_retryable_and_names_no_secret(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WeComError) as refused:
        await client.send_markdown(USERS, "one")
    assert refused.value.retryable and SECRET not in str(refused.value)


async def test_a_card_goes_out_with_its_keys_and_answers_a_response_code(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    sent = await app(fake, http, clock).send_template_card([*USERS, "stranger"], card())
    [message] = fake.messages
    assert message["touser"] == "zhangsan|lisi|stranger" and message["msgtype"] == "template_card"
    keys = [button["key"] for button in message["template_card"]["button_list"]]
    assert keys == ["approve:42", "reject:42"]
    assert [parse_decision_key(key) for key in keys] == [("approve", 42), ("reject", 42)]
    assert sent.response_code.value in fake.response_codes and sent.invalid_users == ("stranger",)


async def test_a_card_to_no_one_who_can_see_the_app_says_so(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(WeComError, match="可见范围") as refused:
        await app(fake, http, clock).send_template_card(["stranger"], card())
    assert refused.value.errcode == 81013


def test_task_ids_keep_to_wecoms_characters_and_length() -> None:
    made = task_id("inc/7", "故障", "x" * 200)
    assert len(made) == 128 and set(made) <= set(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-@"
    )
    with pytest.raises(ValueError, match="task_id"):
        button_card("has space", "t", "d", approval_buttons(1))
    with pytest.raises(ValueError, match="unique"):
        button_card("t1", "t", "d", [Button("A", "same"), Button("B", "same")])
    with pytest.raises(ValueError, match="buttons"):
        button_card("t1", "t", "d", [Button(str(n), f"k{n}") for n in range(7)])
    assert parse_decision_key("approve:") is None and parse_decision_key("delete:1") is None


async def test_wecom_refuses_a_task_id_used_before(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    await client.send_template_card(USERS, card())
    with pytest.raises(WeComError) as refused:
        await client.send_template_card(USERS, card())
    assert (refused.value.errcode, refused.value.retryable) == (40058, False)


async def test_a_click_response_code_updates_the_card_once(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    await client.send_template_card(USERS, card())
    code = ResponseCode(fake.click("inc7-1700000000"), clock())
    await client.update_template_card(["zhangsan"], code, replace_name="Approved by zhangsan")
    [update] = fake.updates
    assert update["userids"] == ["zhangsan"] and update["button"] == {"replace_name": "Approved by zhangsan"}
    with pytest.raises(ResponseCodeRefused, match="used already"):
        await client.update_template_card(["zhangsan"], code, replace_name="again")
    assert len(fake.updates) == 1


async def test_a_code_spent_by_another_instance_is_refused_by_wecom(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    sent = await app(fake, http, clock).send_template_card(USERS, card())
    await app(fake, http, clock).update_template_card(USERS, sent.response_code, card=card("inc7-2"))
    with pytest.raises(ResponseCodeRefused, match="72 h") as refused:
        await app(fake, http, clock).update_template_card(USERS, sent.response_code, replace_name="x")
    assert not refused.value.retryable


async def test_a_code_over_72_hours_old_is_refused_without_asking(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    sent = await client.send_template_card(USERS, card())
    clock.advance(RESPONSE_CODE_LIFETIME)
    calls = len(fake.calls)
    with pytest.raises(ResponseCodeRefused, match="72 hours"):
        await client.update_template_card(USERS, sent.response_code, replace_name="x")
    assert len(fake.calls) == calls


async def test_markdown_over_the_apps_2048_bytes_is_refused_before_sending(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    await client.send_markdown(USERS, "告" * 682)  # 2,046 bytes
    with pytest.raises(WeComError, match="2048"):
        await client.send_markdown(USERS, "告" * 683)
    assert len(fake.messages) == 1


async def test_a_code_wecom_did_not_take_can_be_used_on_a_retry(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = app(fake, http, clock)
    sent = await client.send_template_card(USERS, card())
    fake.busy()
    with pytest.raises(WeComError) as busy:
        await client.update_template_card(USERS, sent.response_code, replace_name="Approved")
    assert busy.value.retryable
    await client.update_template_card(USERS, sent.response_code, replace_name="Approved")
    assert len(fake.updates) == 1


async def test_the_access_token_stays_out_of_the_logs(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    with aiops_logging([SECRET]):
        await app(fake, http, clock).send_markdown(USERS, "one")
    logged = capsys.readouterr().err
    assert SECRET not in logged
    assert not any(token in logged for token in fake.tokens)
