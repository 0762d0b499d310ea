"""The WeCom group robot against the fake: paced under 20 messages a minute, markdown under 4,096 bytes however
hostile or long the text, and its error codes (HTTP 200 + errcode) read as for the app."""

from __future__ import annotations

import json

import httpx
import pytest

from aiops.channels import ChannelError
from aiops.channels.wecom import markdown
from aiops.channels.wecom.errors import WeComError
from aiops.channels.wecom.robot import MARKDOWN_LIMIT, Pacer, markdown_message, send
from tests.channels.announcements import HOSTILE
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


@pytest.mark.parametrize(
    "text", [HOSTILE * 300, "磁盘已满，请扩容。" * 3000, ("<@zhangsan> " + HOSTILE) * 200]
)
async def test_hostile_and_huge_text_is_escaped_cut_and_delivered(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, text: str
) -> None:
    assert len(text.encode()) > 20_000
    headline = '<font color="warning">**HostOutOfDiskSpace**</font>\n'
    content = markdown.cut(headline + markdown.escape(text), MARKDOWN_LIMIT)
    await post(fake, http, content, pacer(clock))
    [delivered] = robot_contents(fake)
    assert markdown.size(delivered) <= MARKDOWN_LIMIT and delivered.endswith("…")
    body = delivered.removeprefix(headline)
    assert body != delivered  # the message's own markup is intact
    assert not set(body) & set("<>*[]`#")  # the user's text opens no tag, mention, link or emphasis
