"""The WeCom group robot against the fake: paced under 20 messages a minute, markdown under 4,096 bytes however
hostile or long the text, and its error codes (HTTP 200 + errcode) read as for the app."""

from __future__ import annotations

import json

import httpx
import pytest

from aiops.channels import ChannelError
from aiops.channels.wecom import markdown
from aiops.channels.wecom.api import MARKDOWN_LIMIT as APP_LIMIT
from aiops.channels.wecom.errors import WeComError
from aiops.channels.wecom.robot import MARKDOWN_LIMIT, Pacer, markdown_message, send
from tests.channels.hostile import CASES, IDS
from tests.channels.wecom.conftest import app
from tests.fakes.robots import Clock
from tests.fakes.wecom import ROBOT_KEY, FakeWeCom, robot_contents


def pacer(clock: Clock, **changes: float) -> Pacer:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return Pacer(clock=clock, sleep=sleep, **changes)  # type: ignore[arg-type]


async def post(
    fake: FakeWeCom, http: httpx.AsyncClient, content: str, paced: Pacer, key: str = ROBOT_KEY
) -> None:
    await send(http, key, markdown_message(content), pacer=paced, base_url=fake.url, time_limit=5)


async def test_a_burst_is_paced_under_twenty_a_minute(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    start, paced = clock(), pacer(clock)
    for n in range(45):
        await post(fake, http, f"incident {n}", paced)
    arrivals = list(fake.robots[ROBOT_KEY].arrivals)
    assert len(fake.robots[ROBOT_KEY].messages) == 45  # none refused with 45009, none dropped
    assert all(sum(1 for t in arrivals if a <= t < a + 60) <= 20 for a in arrivals)
    assert clock() - start >= 120  # the 41st waited for the third minute


async def test_an_unpaced_robot_gets_45009_which_is_retryable_and_stops_the_pacer(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    loose = pacer(clock, per_minute=100, max_wait=0)
    for n in range(20):
        await post(fake, http, f"incident {n}", loose)
    with pytest.raises(WeComError) as refused:
        await post(fake, http, "the 21st", loose)
    assert (refused.value.errcode, refused.value.retryable, refused.value.retry_after) == (45009, True, 60.0)
    with pytest.raises(ChannelError) as held:  # the pacer now holds the next one back itself
        await post(fake, http, "the 22nd", loose)
    assert held.value.retryable and held.value.retry_after == pytest.approx(60.0)
    assert len(fake.calls) == 21


async def test_a_full_minute_raises_a_retryable_error_when_waiting_is_not_allowed(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    impatient = pacer(clock, max_wait=5)
    for n in range(20):
        await post(fake, http, f"incident {n}", impatient)
    clock.advance(10)
    with pytest.raises(ChannelError) as held:
        await post(fake, http, "the 21st", impatient)
    assert held.value.retryable and held.value.retry_after == pytest.approx(50.0)


async def test_a_wrong_or_removed_key_is_not_retried_and_not_shown(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(WeComError, match="removed") as refused:
        await post(fake, http, "hello", pacer(clock), key="a-key-that-is-not-there-81zq")
    assert (refused.value.errcode, refused.value.retryable) == (93000, False)
    assert "a-key-that-is-not-there-81zq" not in str(refused.value)


async def test_an_outage_is_retryable(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.outage = True
    with pytest.raises(WeComError, match="HTTP 503") as refused:
        await post(fake, http, "hello", pacer(clock))
    assert refused.value.retryable


async def test_the_fake_robot_counts_bytes_not_characters(fake: FakeWeCom, http: httpx.AsyncClient) -> None:
    """1,366 CJK characters are 4,098 bytes: WeCom refuses them with 40058, so aiops must count bytes too."""
    body = json.dumps(markdown_message("警" * 1366), ensure_ascii=False).encode()
    answer = (
        await http.post(f"{fake.url}/cgi-bin/webhook/send", params={"key": ROBOT_KEY}, content=body)
    ).json()
    assert answer["errcode"] == 40058 and "4096" in answer["errmsg"]


async def test_markdown_over_4096_bytes_is_refused_before_sending(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(WeComError, match="4096") as refused:
        await post(fake, http, "警" * 1366, pacer(clock))
    assert not refused.value.retryable and fake.calls == []


@pytest.mark.parametrize("text", CASES, ids=IDS)
async def test_hostile_text_is_escaped_cut_and_delivered_the_same_by_app_and_robot(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, text: str
) -> None:
    """One escape for the dialect: the app's message (2,048 bytes) is the robot's (4,096) cut shorter."""
    headline = '<font color="warning">**HostOutOfDiskSpace**</font>\n'
    await post(fake, http, markdown.cut(headline + markdown.escape(text), MARKDOWN_LIMIT), pacer(clock))
    await app(fake, http, clock).send_markdown(
        ["zhangsan"], markdown.cut(headline + markdown.escape(text), APP_LIMIT)
    )
    [by_robot] = robot_contents(fake)
    by_app = fake.messages[0]["markdown"]["content"]
    assert markdown.size(by_robot) <= MARKDOWN_LIMIT and markdown.size(by_app) <= APP_LIMIT
    assert by_robot.startswith(by_app.removesuffix(markdown.ELLIPSIS))
    for delivered in (by_robot, by_app):
        body = delivered.removeprefix(headline)
        assert body != delivered  # the message's own markup is intact
        assert not set(body) & set(
            "<>*[]`#\x00\x1b\u202e"
        )  # the text opens no tag, mention, link or emphasis


async def test_text_over_2048_bytes_is_refused_before_sending(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    text = {"msgtype": "text", "text": {"content": "警" * 683}}
    with pytest.raises(WeComError, match="2048"):
        await send(http, ROBOT_KEY, text, pacer=pacer(clock), base_url=fake.url)
    assert fake.calls == []
