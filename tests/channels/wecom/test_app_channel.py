"""The WeCom self-built app channel against the fake WeCom: cards with buttons, edits with response codes, and the
callbacks of a click (signed and encrypted as WeCom does, by the fake's own code)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from aiops.channels import Announcement, ChannelError
from aiops.channels.decisions import HASH_PREFIX, Button
from aiops.channels.wecom.card import DESC, SUBTITLE, TITLE, VALUE
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom.clicks import WeComClicks
from aiops.store.actions import argv_hash
from aiops.templating import build_environment
from tests.channels.announcements import announcement, digest
from tests.fakes.robots import Clock
from tests.fakes.wecom import AES_KEY, AGENT_ID, CALLBACK_TOKEN, CORP_ID, SECRET, Callbacks, FakeWeCom

PURPOSES = ("opened", "updated", "resolved", "action")
PAUSE = "https://aiops.example.com/remediation"


def config(fake: FakeWeCom, **changes: Any) -> WeComConfig:
    settings: dict[str, Any] = {
        "name": "wecom",
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "corp_secret": SECRET,
        "touser": ["zhangsan", "lisi"],
        "callback_token": CALLBACK_TOKEN,
        "encoding_aes_key": AES_KEY,
        "base_url": fake.url,
        "timeout": 5.0,
        **changes,
    }
    return WeComConfig.model_validate(settings)


def app(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, language: str = "zh-CN", **changes: Any
) -> WeComChannel:
    return WeComChannel(config(fake, **changes), build_environment(language), http, clock=clock)


def hashed(a: Announcement, **changes: Any) -> Announcement:
    """The announcement with its proposals' argv hashes, as the store gives them."""
    proposals = tuple(dataclasses.replace(p, argv_hash=argv_hash(p.host, p.argv)) for p in a.proposals)
    return dataclasses.replace(a, proposals=proposals, **changes)


def keys(card: dict[str, Any]) -> list[str]:
    return [button["key"] for button in card["button_list"] if button.get("type") == 0]


@pytest.mark.parametrize("language", ("zh-CN", "en"))
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_each_announcement_is_a_card_wecom_accepts(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, purpose: str, language: str
) -> None:
    channel = app(fake, http, clock, language)
    for a in (announcement(purpose), announcement(purpose, hostile=True, huge=True)):  # type: ignore[arg-type]
        card = json.loads(channel.render(hashed(a)))
        assert len(card["main_title"]["title"]) <= TITLE and len(card["main_title"]["desc"]) <= DESC
        assert len(card["sub_title_text"]) <= SUBTITLE
        assert all(len(row["value"]) <= VALUE for row in card["horizontal_content_list"])
        assert card["card_action"] == {"type": 1, "url": "https://aiops.example.com/incidents/7"}
        assert await channel.send(json.dumps(card))
    assert len(fake.messages) == 2
    assert {m["touser"] for m in fake.messages} == {"zhangsan|lisi"}


def test_pending_proposals_get_approve_and_reject_and_pause_when_automatic(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    a = hashed(announcement("opened"))
    digest_11 = a.proposals[0].argv_hash[:HASH_PREFIX]
    card = json.loads(channel.render(a))
    assert keys(card)[:2] == [f"aiops:approve:11:{digest_11}", f"aiops:reject:11:{digest_11}"]
    assert len(keys(card)) == 4  # 11 and 12 are pending; 13 was refused
    assert [b["text"] for b in card["button_list"]][:2] == ["Approve #11", "Reject #11"]
    paused = json.loads(channel.render(dataclasses.replace(a, pause_url=PAUSE)))
    assert keys(paused)[-1] == "aiops:pause:7"
    assert Button.parse("aiops:pause:7") == Button("pause", incident_id=7)
    assert Button.parse(f"aiops:approve:11:{digest_11}") == Button("approve", 11, digest_11)
    assert Button.parse(f"approve:11:{digest_11}") == Button("approve", 11, digest_11)  # cards from before
    assert Button.parse("aiops:approve:11") is None and Button.parse("aiops:drop:11:" + "0" * 16) is None


def test_a_card_without_pending_proposals_links_to_the_incident(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    card = json.loads(app(fake, http, clock, "en").render(announcement("resolved")))
    assert card["button_list"] == [
        {"type": 1, "text": "Open the incident", "style": 2, "url": "https://aiops.example.com/incidents/7"}
    ]


@pytest.mark.parametrize("decided_by", ["alice web", None])
def test_a_results_card_says_who_approved_it_and_the_exit_status_apart(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, decided_by: str | None
) -> None:
    a = announcement("action")
    assert a.reported is not None
    shown = dataclasses.replace(a, reported=dataclasses.replace(a.reported, decided_by=decided_by))
    subtitle = json.loads(app(fake, http, clock, "en").render(shown))["sub_title_text"]
    said = "ran, exit status 0" + (" · approved by alice web via web" if decided_by else "")
    assert f"{said} exit status: 0" in subtitle, subtitle


async def test_a_digest_is_a_card_too(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    channel = app(fake, http, clock, "en")
    body = channel.render_digest(digest(300, hostile=True))
    card = json.loads(body)
    assert "300" in card["main_title"]["title"] and len(card["sub_title_text"]) <= SUBTITLE
    await channel.send(body)


async def test_the_card_is_edited_with_the_sends_code_then_with_a_clicks(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    clicks = WeComClicks(channel)
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    await channel.update(handle, channel.render(announcement("resolved")))
    assert [u["template_card"]["task_id"] for u in fake.updates] == [handle]
    assert fake.updates[0]["userids"] == ["zhangsan", "lisi"]
    # A click brings a fresh code: the card edited after the decision is the card clicked.
    query, body = Callbacks().click("zhangsan", "reject:12:" + "0" * 16, handle, fake.click(handle))
    assert clicks.answer_callback("POST", query, body).click is not None
    await channel.update(handle, channel.render(announcement("resolved")))
    assert len(fake.updates) == 2 and len(fake.messages) == 1


async def test_a_click_then_the_result_edit_the_same_card_with_the_click_code_then_the_sends(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    clicks = WeComClicks(channel)
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    code = fake.click(handle)
    query, body = Callbacks().click("zhangsan", "aiops:reject:12:" + "0" * 16, handle, code)
    assert clicks.answer_callback("POST", query, body).click is not None
    await channel.update(
        handle, channel.render(hashed(announcement("updated")))
    )  # the decision: the click's code
    await channel.update(handle, channel.render(announcement("resolved")))  # the result: the send's code
    assert fake.updates[0]["response_code"] == code
    assert [u["template_card"]["task_id"] for u in fake.updates] == [handle, handle]
    assert len(fake.messages) == 1, "no second card while a code was left"


async def test_with_no_code_left_the_new_card_is_a_new_message_edited_later(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    await channel.update(handle, channel.render(hashed(announcement("updated"))))  # spends the send's code
    await channel.update(handle, channel.render(announcement("resolved")))  # none left: a new card
    assert len(fake.updates) == 1 and len(fake.messages) == 2
    replacement = fake.messages[1]["template_card"]["task_id"]
    await channel.update(handle, channel.render(announcement("resolved")))  # edits the new card
    assert fake.updates[-1]["template_card"]["task_id"] == replacement


async def test_a_click_is_answered_without_waiting_for_the_decision(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    key = f"aiops:approve:11:{'a' * HASH_PREFIX}"
    code = fake.click(handle)
    query, body = Callbacks().click("zhangsan", key, handle, code)
    # Reading the click needs no call to WeCom or the store; the route decides it before answering.
    answer = WeComClicks(channel).answer_callback("POST", query, body)
    assert (answer.status, answer.body) == (200, "")
    click = answer.click
    assert click is not None
    press = click.press
    assert (press.kind, press.user, press.choice, press.proposal_id, press.hash_prefix) == (
        "wecom",
        "zhangsan",
        "approve",
        11,
        "a" * 16,
    )
    assert click.task_id == handle


async def test_a_pause_click(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    channel = app(fake, http, clock, "en")
    query, body = Callbacks().click("lisi", "pause:7", "aiops-1", "code-1")
    click = WeComClicks(channel).answer_callback("POST", query, body).click
    assert click is not None and (click.press.choice, click.press.incident_id, click.press.proposal_id) == (
        "pause",
        7,
        None,
    )


async def test_a_retried_callback_is_one_click(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    clicks = WeComClicks(app(fake, http, clock))
    query, body = Callbacks().click("lisi", "pause:7", "aiops-1", "code-1", created=1_800_000_000)
    first = clicks.answer_callback("POST", query, body).click
    assert first is not None
    again = clicks.answer_callback("POST", query, body)
    assert again.status == 200 and again.click is None
    clicks.forget(first)  # deciding it failed: WeCom's next retry is decided
    assert clicks.answer_callback("POST", query, body).click == first


async def test_a_forged_click_is_refused_and_changes_nothing(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    clicks = WeComClicks(channel)
    handle = await channel.send(channel.render(hashed(announcement("opened"))))
    assert handle is not None
    forger = Callbacks(token="not-the-apps-token")
    query, body = forger.click("mallory", f"approve:11:{'a' * 16}", handle, "forged-code")
    answer = clicks.answer_callback("POST", query, body)
    assert answer.status == 401 and answer.click is None
    other_key = Callbacks(aes_key="B" * 43)  # signed right, sealed with another key
    query, body = other_key.click("mallory", f"approve:11:{'a' * 16}", handle, "forged-code")
    assert clicks.answer_callback("POST", query, body).status in (400, 401)
    tampered_query, tampered = Callbacks().click("mallory", "pause:7", handle, "forged-code")
    tampered = tampered.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A")
    assert clicks.answer_callback("POST", tampered_query, tampered).status == 401
    # The forged "code" was not kept: the next edit spends the send's own code.
    await channel.update(handle, channel.render(announcement("resolved")))
    assert len(fake.updates) == 1 and len(fake.messages) == 1


def test_the_url_check_answers_the_bare_plaintext(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    query, echo = Callbacks().verification()
    clicks = WeComClicks(app(fake, http, clock))
    assert clicks.answer_callback("GET", query, b"").body == echo
    assert clicks.answer_callback("GET", {**query, "msg_signature": "0" * 40}, b"").status == 401


def test_clicks_need_the_callback_settings(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    channel = app(fake, http, clock, callback_token=None, encoding_aes_key=None)
    with pytest.raises(ValueError, match="callback_token and encoding_aes_key"):
        WeComClicks(channel)


async def test_a_wrong_secret_is_final_and_says_where_to_look(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, corp_secret="wrong-secret")
    with pytest.raises(ChannelError) as raised:
        await channel.send(channel.render(announcement("resolved")))
    assert not raised.value.retryable and "corp_secret" in str(raised.value)
    assert "wrong-secret" not in str(raised.value)


def test_the_config_keeps_its_secrets() -> None:
    settings = {"corp_id": CORP_ID, "agent_id": AGENT_ID, "corp_secret": SECRET, "touser": ["zhangsan"]}
    shown = repr(
        WeComConfig.model_validate(
            {**settings, "callback_token": CALLBACK_TOKEN, "encoding_aes_key": AES_KEY}
        )
    )
    assert SECRET not in shown and CALLBACK_TOKEN not in shown and AES_KEY not in shown
    with pytest.raises(ValidationError, match="EncodingAESKey"):
        WeComConfig.model_validate({**settings, "encoding_aes_key": SecretStr("short")})
    with pytest.raises(ValidationError):
        WeComConfig.model_validate({**settings, "touser": []})


async def test_departments_get_the_card_and_its_edits(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, toparty=["2", "5"])
    handle = await channel.send(channel.render(announcement("resolved")))
    assert handle is not None
    await channel.update(handle, channel.render(announcement("resolved")))
    assert fake.messages[0]["toparty"] == "2|5" and fake.updates[0]["partyids"] == ["2", "5"]


async def test_an_edit_that_failed_on_the_way_keeps_its_code_for_the_retry(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock)
    handle = await channel.send(channel.render(announcement("resolved")))
    assert handle is not None
    fake.busy()
    with pytest.raises(ChannelError) as raised:
        await channel.update(handle, channel.render(announcement("resolved")))
    assert raised.value.retryable
    await channel.update(handle, channel.render(announcement("resolved")))
    assert len(fake.updates) == 1 and len(fake.messages) == 1  # edited, not sent anew
