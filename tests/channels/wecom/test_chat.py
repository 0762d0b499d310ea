"""Chat over the WeCom app: a text message someone writes to the app, sealed and signed as WeCom sends it, reaches
chat through the real `/callbacks/wecom` route as a direct `Asked`; other messages and refused callbacks do not. The
reply goes back to the writer as a markdown message, within the app's 2,048 bytes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from aiops.actions.approvals import Approvals
from aiops.actions.policy import RemediationConfig
from aiops.channels import ChannelError
from aiops.channels.decisions import Decisions
from aiops.channels.inbound import Deciders
from aiops.channels.wecom.api import MARKDOWN_LIMIT
from aiops.channels.wecom.channel import WeComChannel
from aiops.channels.wecom.inbound import ROUTE, WeComInbound
from aiops.channels.wecom.markdown import escape, inline
from aiops.chat import Asked, Ran, Reply, Replying
from aiops.i18n import message
from aiops.templating import build_environment
from aiops.web import callbacks
from tests.channels.heard import Recorder
from tests.channels.hostile import STRINGS
from tests.channels.wecom.test_app_channel import app
from tests.fakes.robots import Clock
from tests.fakes.wecom import AGENT_ID, Callbacks, FakeWeCom

TEXT = Path(__file__).parents[2] / "data" / "wecom" / "text.xml"
URL = "https://aiops.example.com/incidents/7"


async def route(channel: WeComChannel, chat: Recorder | None) -> AsyncIterator[httpx.AsyncClient]:
    """The web app's callback route, leading to the channel's inbound side with `chat` as its listener."""
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")  # clicks' path: never reached by messages
    decisions = Decisions(engine, Approvals(engine, RemediationConfig()))
    inbound = WeComInbound(channel, Deciders(decisions, build_environment("en"), chat))
    web = Starlette(routes=callbacks.routes(lambda _services, _kind: inbound))
    web.state.services = None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://aiops") as client:
        yield client
    await engine.dispose()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def wecom(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, recorder: Recorder
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in route(app(fake, http, clock, "en"), recorder):
        yield client


async def post(client: httpx.AsyncClient, sealed: tuple[dict[str, str], bytes]) -> httpx.Response:
    query, body = sealed
    return await client.post(ROUTE, params=query, content=body, headers={"Content-Type": "text/xml"})


async def test_a_text_message_is_a_direct_question_answered_to_its_writer(
    wecom: httpx.AsyncClient, recorder: Recorder
) -> None:
    answered = await post(wecom, Callbacks().post(TEXT.read_text(encoding="utf-8")))
    assert (answered.status_code, answered.text) == (200, "")
    assert recorder.heard == [
        Asked(
            kind="wecom",
            channel="wecom",
            message_id="7458920214553210881",
            user="zhangsan",
            text="why is web-1's disk filling? #7",
            direct=True,
            mentioned=True,
            conversation="zhangsan",
            thread=None,
            reply_to={"user": "zhangsan"},
        )
    ]


async def test_wecoms_retry_carries_the_same_message_id(wecom: httpx.AsyncClient, recorder: Recorder) -> None:
    sealed = Callbacks().text("lisi", "silence this for 2 hours", msg_id="7458920214553210882")
    assert (await post(wecom, sealed)).status_code == 200
    assert (await post(wecom, sealed)).status_code == 200  # answered late: WeCom sends it again
    assert [a.message_id for a in recorder.heard] == ["7458920214553210882"] * 2  # chat answers it once


async def test_an_image_or_an_event_is_acknowledged_and_not_handed_over(
    wecom: httpx.AsyncClient, recorder: Recorder
) -> None:
    image = await post(wecom, Callbacks().image("zhangsan"))
    entered = await post(
        wecom, Callbacks().post("<xml><MsgType>event</MsgType><Event>enter_agent</Event></xml>")
    )
    assert (image.status_code, entered.status_code) == (200, 200) and recorder.heard == []


async def test_a_forged_or_broken_message_is_refused_naming_what_is_wrong(
    wecom: httpx.AsyncClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    forged = await post(wecom, Callbacks(token="not-the-apps-token").text("mallory", "approve 12"))
    nameless = (
        Callbacks().message("zhangsan", "text", "<Content>hello</Content>").replace("<MsgId>", "<Other>")
    )
    broken = await post(wecom, Callbacks().post(nameless.replace("</MsgId>", "</Other>")))
    other_app = await post(wecom, Callbacks().text("zhangsan", "hello", agent_id=AGENT_ID + 1))
    assert forged.status_code == 401
    assert broken.status_code == 400 and "MsgId" in broken.text
    assert other_app.status_code == 400 and "agent_id" in other_app.text
    assert "the text message has no MsgId" in caplog.text and "Traceback" not in caplog.text
    assert recorder.heard == []


async def test_with_chat_off_a_message_is_acknowledged_and_dropped(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "aiops.channels.wecom")
    async for client in route(app(fake, http, clock), None):
        answered = await post(client, Callbacks().text("zhangsan", "why?"))
    assert (answered.status_code, answered.text) == (200, "")
    assert "chat is off" in caplog.text and fake.messages == []


async def test_a_reply_is_markdown_to_the_writer(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "en")
    assert isinstance(channel, Replying)
    reply = Reply(
        lines=["The disk fills with nginx logs.", message("robot_open_incident")],
        ran=(Ran("promql", "node_filesystem_avail_bytes{instance='web-1'}", "3% left"),),
        incident_id=7,
        incident_url=URL,
    )
    body = channel.render_reply(reply)
    await channel.reply({"user": "lisi"}, body)
    assert fake.markdown_to("lisi") == [body] and fake.messages[0]["agentid"] == AGENT_ID
    assert fake.messages[0]["touser"] == "lisi"
    assert "The disk fills with nginx logs.\n\nOpen the incident" in body
    assert "What I ran" in body and "node_filesystem_avail_bytes{instance='web-1'} → 3% left" in body
    assert body.endswith(f"[Open the incident #7]({URL})")


async def test_a_huge_reply_loses_what_it_ran_first_then_its_text_but_never_the_link(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = app(fake, http, clock, "zh-CN")
    ran = tuple(Ran("logql", f'{{app="web"}} |= "disk" #{n}', "磁盘" * 60) for n in range(40))
    short = channel.render_reply(Reply(lines=["磁盘快满了。"], ran=ran, incident_id=7, incident_url=URL))
    assert len(short.encode()) <= MARKDOWN_LIMIT and short.startswith("磁盘快满了。")
    shown = short.count("> logql: ")
    assert 0 < shown < 40 and f"另有 {40 - shown} 项" in short and '"disk" ＃0 →' in short
    huge = channel.render_reply(Reply(lines=["磁盘已满。" * 1000], ran=ran, incident_id=7, incident_url=URL))
    assert len(huge.encode()) <= MARKDOWN_LIMIT and "…" in huge and huge.endswith(f"({URL})")
    assert "另有 40 项" in huge
    for body in (short, huge):
        await channel.reply({"user": "zhangsan"}, body)
    assert fake.markdown_to("zhangsan") == [short, huge]


async def test_refusals_say_whether_to_retry(fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock) -> None:
    channel = app(fake, http, clock, "en")
    body = channel.render_reply(Reply(lines=["ok"]))
    fake.busy()
    with pytest.raises(ChannelError) as busy:
        await channel.reply({"user": "zhangsan"}, body)
    with pytest.raises(ChannelError) as stranger:
        await channel.reply({"user": "nobody"}, body)  # 81013: not in the app's 可见范围
    with pytest.raises(ChannelError) as nowhere:
        await channel.reply({}, body)
    assert busy.value.retryable and busy.value.retry_after is not None
    assert not stranger.value.retryable and "81013" in str(stranger.value)
    assert not nowhere.value.retryable and "user" in str(nowhere.value)


@pytest.mark.parametrize("hostile", list(STRINGS.values()), ids=list(STRINGS))
def test_hostile_text_in_a_reply_is_escaped_as_the_robot_escapes_it(
    fake: FakeWeCom, http: httpx.AsyncClient, clock: Clock, hostile: str
) -> None:
    channel = app(fake, http, clock, "en")
    body = channel.render_reply(Reply(lines=[hostile], ran=(Ran("promql", hostile, hostile),)))
    assert escape(hostile).strip() in body and inline(hostile) in body
    if escape(hostile) != hostile:
        assert hostile not in body
    assert "<@" not in body and '<font color="warning">' not in body
