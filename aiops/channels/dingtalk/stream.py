"""Button clicks on DingTalk cards and messages to the app's robot, received over the Stream connection by
dingtalk-stream's own client.

The SDK's loop never returns and makes blocking HTTP calls, so it runs in a thread of its own, with its own event
loop; each click is handed to the service's loop, where `Approvals.decide` runs and the card is edited, and each
chatbot message (chatbot.py) to the chat listener, whose `hear` has committed it when the frame is acknowledged.
The SDK reads its gateway from DINGTALK_OPENAPI_ENDPOINT once, when it is imported, opens the connection without a
timeout, and opens the WebSocket with `websockets.connect(uri)`, which follows the environment's proxy variables
and no other. `_StreamClient` asks for the connection at `channels.dingtalk.gateway` with a timeout, and opens both
through `channels.dingtalk.proxy` when it is set (directly otherwise); the frames, their routing to handlers, the
acks and the pings are the SDK's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote_plus

import dingtalk_stream  # type: ignore[import-untyped]  # dingtalk-stream ships no type hints
import httpx
import websockets

from aiops.channels import ChannelError
from aiops.channels.decisions import HASH_PREFIX, Choice, Decided, Decisions, Press
from aiops.channels.dingtalk import DingTalkChannel
from aiops.channels.dingtalk.chatbot import Malformed, asked
from aiops.channels.dingtalk.config import DingTalkConfig
from aiops.channels.inbound import Deciders
from aiops.channels.listener import ListenerThread
from aiops.channels.records import ProposalRecord
from aiops.chat import Listener
from aiops.models import Text
from aiops.proxy import ProxyUrl, through

log = logging.getLogger("aiops.channels.dingtalk")
OPEN_CONNECTION = "/v1.0/gateway/connections/open"
PROXY_SETTING = "channels.dingtalk.proxy"
RECONNECT = 10.0  # seconds before the next try after the connection failed, as the SDK waits
CARD_CALLBACK = "/v1.0/card/instances/callback"  # dingtalk_stream.Card_Callback_Router_Topic
CHATBOT_MESSAGE = dingtalk_stream.ChatbotMessage.TOPIC  # "/v1.0/im/bot/messages/get"
DINGTALK = "dingtalk"
_DECISIONS = {"approve": True, "reject": False}
PAUSE = "pause"  # the decision of the card template's Pause button
# Seconds a click may take on the service's loop before the callback is answered without a notice (the decision
# still completes). DingTalk's own deadline for the answer is not documented.
_ANSWER_WITHIN = 5.0

ClickHandler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
MessageHandler = Callable[[Mapping[str, Any]], Awaitable[bool]]
T = TypeVar("T")


class ServiceGone(Exception):
    """The service's loop, where clicks and messages are handled, is not running (shutting down)."""


@dataclass(frozen=True)
class Click:
    """A press of Approve or Reject: on which card, by whom (staff id), on which proposal, bound to which argv (the
    start of its hash, as the card showed it)."""

    out_track_id: str
    user: str
    proposal_id: int
    approve: bool
    hash_prefix: str


@dataclass(frozen=True)
class PauseClick:
    """A press of the Pause button of automatic remediation, by whom (staff id), on which incident's card."""

    out_track_id: str
    user: str
    incident_id: int


def parse_click(data: Mapping[str, Any]) -> Click | PauseClick | None:
    """The card callback's data, or None when it is not a click on one of our buttons."""
    private = _object(_object(data.get("content")).get("cardPrivateData"))
    params = _object(private.get("params"))
    action_ids = private.get("actionIds")
    decision = params.get("decision") or (
        action_ids[0] if isinstance(action_ids, list) and action_ids else None
    )
    user, card, hashed = data.get("userId"), data.get("outTrackId"), params.get("hash")
    if decision == PAUSE:
        return _pause_click(card, user, params.get("incident_id"))
    try:
        proposal_id = int(params["proposal_id"])
    except (KeyError, TypeError, ValueError):
        return None
    if decision not in _DECISIONS or not all(isinstance(v, str) and v for v in (user, card, hashed)):
        return None
    if len(str(hashed)) < HASH_PREFIX:
        return None
    return Click(str(card), str(user), proposal_id, _DECISIONS[decision], str(hashed))


def _pause_click(card: object, user: object, incident: object) -> PauseClick | None:
    if not (isinstance(card, str) and card and isinstance(user, str) and user):
        return None
    if not (isinstance(incident, str | int) and str(incident).isascii() and str(incident).isdigit()):
        return None
    return PauseClick(card, user, int(incident))


def _object(value: object) -> dict[str, Any]:
    """A JSON object, whether given as one or as its text; anything else is an empty one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


class DingTalkCallbacks(ListenerThread):
    """The Stream connection of one DingTalk channel: `start()` from the service's loop, `await stop()` on
    shutdown. A click from an approver allow-listed in `remediation.approvers.dingtalk` decides the proposal; a
    message to the robot goes to `chat` (acknowledged and dropped when chat is off)."""

    def __init__(self, channel: DingTalkChannel, decisions: Decisions, chat: Listener | None = None) -> None:
        super().__init__(f"dingtalk-{channel.config.name}", channel.config.timeout + 5.0)
        self._channel = channel
        self._config = channel.config
        self._decisions = decisions
        self._chat = chat
        self._stop_serving: asyncio.Event | None = None
        # The SDK logs the gateway's answer, ticket included, at INFO and every ping from the gateway as a warning
        # ("unknown message topic"); only its errors are kept.
        self._sdk_log = logging.getLogger(f"aiops.channels.dingtalk.sdk.{self._config.name}")
        self._sdk_log.setLevel(logging.ERROR)

    def _interrupt(self) -> None:
        self._sdk_log.setLevel(logging.CRITICAL)  # the SDK logs the cancellation as a network error
        if self._stop_serving is not None:
            self._stop_serving.set()

    async def handle(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """One card callback, on the service's loop: decide, edit the card, and say what became of the click
        (the callback's response: a notice in the clicker's private card data)."""
        click = parse_click(data)
        if click is None:
            log.warning("dingtalk %s: a card callback that is not a click on a proposal", self._config.name)
            return self._answer(data.get("userId"), "bad_click")
        if isinstance(click, PauseClick):
            press = Press(DINGTALK, click.user, "pause", incident_id=click.incident_id)
        else:
            choice: Choice = "approve" if click.approve else "reject"
            press = Press(DINGTALK, click.user, choice, click.proposal_id, click.hash_prefix)
        decided = await self._decisions.decide(press)
        if isinstance(click, Click) and decided.proposal is not None and decided.announcement is not None:
            await self._edit(click, decided, decided.proposal)
        return self._answer(click.user, decided.outcome, decided.message)

    async def hear(self, data: Mapping[str, Any]) -> None:
        """One chatbot message, on the service's loop: handed to chat, once committed there. Messages that are not
        text, and all of them while chat is off, are dropped; a malformed one is logged naming its field."""
        if self._chat is None:
            return
        name = self._config.name
        try:
            message = asked(data, name, self._config.robot_name)
        except Malformed as error:
            log.warning("dingtalk %s: a chatbot message was dropped: its %s", name, error)
            return
        if message is None:
            log.debug("dingtalk %s: a %r chatbot message was dropped", name, data.get("msgtype"))
            return
        heard = await self._chat.hear(message)
        log.info("dingtalk %s: chatbot message %s from %s: %s", name, message.message_id, message.user, heard)

    async def _edit(self, click: Click, decided: Decided, proposal: Mapping[str, Any]) -> None:
        """Show the decision on the card it was taken on, with every proposal of that announcement."""
        assert decided.announcement is not None
        shown = decided.announcement.proposals
        record = next((p for p in shown if p.id == proposal["id"]), None) or ProposalRecord.from_row(proposal)
        body = self._channel.render_decision(decided.outcome, record, shown, click.user)
        try:
            await self._channel.update(click.out_track_id, body)
        except ChannelError as error:
            log.warning("dingtalk %s: the card could not show the decision: %s", self._config.name, error)

    def _answer(self, user: object, outcome: str, reason: Text = "") -> dict[str, Any]:
        if not isinstance(user, str) or not user:
            return {}
        notice = self._channel.notice(outcome, user, reason)
        return {"privateData": {user: {"cardParamMap": {"notice": notice}}}}

    def _run(self) -> None:
        """The thread: the SDK's loop until `stop`."""
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("dingtalk %s: the Stream connection ended", self._config.name)
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop, self._stop_serving = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        client = _StreamClient(self._config, self._sdk_log)
        if self._config.callbacks:
            client.register_callback_handler(CARD_CALLBACK, _CardHandler(self._hand_over, self._sdk_log))
        client.register_callback_handler(CHATBOT_MESSAGE, _ChatbotHandler(self._hand_message, self._sdk_log))
        connection = asyncio.create_task(client.start(), name="dingtalk-stream")
        await self._stop_serving.wait()
        await _cancel(connection)

    async def _hand_over(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """On the SDK's loop: the click's answer from `handle`, or none when it failed or took too long."""
        try:
            return await self._on_service_loop(self.handle(data))
        except TimeoutError:
            name = self._config.name
            log.warning(
                "dingtalk %s: a click took over %.0fs; answered without a notice", name, _ANSWER_WITHIN
            )
        except ServiceGone:
            log.info(
                "dingtalk %s: a click came while the service stopped; answered without a notice",
                self._config.name,
            )
        except Exception:
            log.exception("dingtalk %s: a click failed", self._config.name)
        return {}

    async def _hand_message(self, data: Mapping[str, Any]) -> bool:
        """On the SDK's loop: whether `hear` took the message (True: acknowledge it). A failure is answered as
        one, so that DingTalk may deliver it again: chat keeps each message id once."""
        try:
            await self._on_service_loop(self.hear(data))
            return True
        except TimeoutError:
            log.warning("dingtalk %s: a chatbot message took over %.0fs", self._config.name, _ANSWER_WITHIN)
        except ServiceGone:
            log.info(
                "dingtalk %s: a chatbot message came while the service stopped; DingTalk delivers it again",
                self._config.name,
            )
        except Exception:
            log.exception("dingtalk %s: a chatbot message could not be handed to chat", self._config.name)
        return False

    async def _on_service_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the service's loop and wait for it, without blocking this one, for `_ANSWER_WITHIN`
        seconds (it goes on after that); `ServiceGone` when that loop is not running."""
        if self._service_loop is None:
            work.close()
            raise ServiceGone
        try:
            future = asyncio.run_coroutine_threadsafe(work, self._service_loop)
        except RuntimeError:  # the service's loop is closed: shutting down
            work.close()
            raise ServiceGone from None
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), _ANSWER_WITHIN)


class _CardHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]  # an untyped SDK base class
    """The SDK's handler for the card-callback topic; the SDK acks with `{"response": <what this returns>}`."""

    def __init__(self, on_click: ClickHandler, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self._on_click = on_click

    async def process(self, message: Any) -> tuple[int, dict[str, Any]]:
        data = message.data if isinstance(message.data, dict) else {}
        return dingtalk_stream.AckMessage.STATUS_OK, await self._on_click(data)


class _ChatbotHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]  # an untyped SDK base class
    """The SDK's handler for the chatbot-message topic: acknowledged (200) once chat has the message, 500 when
    it could not be handed over."""

    def __init__(self, on_message: MessageHandler, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self._on_message = on_message

    async def process(self, message: Any) -> tuple[int, str]:
        data = message.data if isinstance(message.data, dict) else {}
        if await self._on_message(data):
            return dingtalk_stream.AckMessage.STATUS_OK, "OK"
        return dingtalk_stream.AckMessage.STATUS_SYSTEM_EXCEPTION, "not taken"


class _StreamClient(dingtalk_stream.DingTalkStreamClient):  # type: ignore[misc]  # an untyped SDK base class
    """The SDK's client, asking for its connection at the configured gateway with a timeout, and connecting
    through `channels.dingtalk.proxy` when it is set."""

    def __init__(self, config: DingTalkConfig, logger: logging.Logger) -> None:
        secret = config.client_secret.get_secret_value()
        super().__init__(dingtalk_stream.Credential(config.client_id, secret), logger=logger)
        self._config = config
        self._open_url = config.gateway_endpoint + OPEN_CONNECTION
        self._timeout = config.timeout
        self._tasks: set[asyncio.Task[Any]] = set()  # the SDK's handling of each frame, kept until it ends

    async def start(self) -> None:
        """The SDK's `start`: ask for a connection, open it, hand each frame to the SDK, and start again when it
        closes (after a pause when it failed). Unlike the SDK's, it opens the WebSocket through the channel's proxy,
        or directly: never through one named only in the environment (websockets ≥ 15 would follow it)."""
        self.pre_start()
        while True:
            connection = self.open_connection()
            if connection is None:
                await asyncio.sleep(RECONNECT)
                continue
            uri = f"{connection['endpoint']}?ticket={quote_plus(connection['ticket'])}"
            if not await self._receive(uri):
                await asyncio.sleep(RECONNECT)

    async def _receive(self, uri: str) -> bool:
        """One WebSocket, until the gateway closes it (True) or it fails (False, said in the log without the
        ticket)."""
        proxy = self._config.proxy_for(uri)
        endpoint = uri.partition("?")[0]
        try:
            async with websockets.connect(
                uri, proxy=proxy.url() if proxy else None, open_timeout=self._timeout
            ) as websocket:
                self.websocket = websocket
                keepalive = asyncio.create_task(self.keepalive(websocket))
                try:
                    async for raw in websocket:
                        self._handle(json.loads(raw))
                finally:
                    keepalive.cancel()
            return True
        except Exception as error:  # as the SDK does: whatever ended the connection, connect again
            log.warning(
                "dingtalk %s: the Stream connection to %s ended%s: %s: %s; connecting again in %.0fs",
                self._config.name,
                endpoint,
                _via(proxy),
                type(error).__name__,
                error,
                RECONNECT,
            )
            return False

    def _handle(self, frame: Any) -> None:
        task = asyncio.create_task(self.background_task(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def open_connection(self) -> dict[str, Any] | None:
        """What the SDK's `open_connection` sends and returns; it runs on this thread's loop, which has nothing
        else to do meanwhile."""
        subscriptions = [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map]
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": subscriptions,
            "ua": f"dingtalk-sdk-python/v{dingtalk_stream.version.VERSION_STRING}-union",
            "localIp": self.get_host_ip(),
        }
        proxy = self._config.proxy_for(self._open_url)
        try:
            with httpx.Client(proxy=proxy.url() if proxy else None, trust_env=False) as client:
                response = client.post(self._open_url, json=body, timeout=self._timeout)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning(
                "dingtalk: the Stream connection could not be opened at %s%s: %s",
                self._open_url,
                _via(proxy),
                error,
            )
            return None
        if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
            log.warning("dingtalk: %s answered without an endpoint and ticket", self._open_url)
            return None
        return answer


def _via(proxy: ProxyUrl | None) -> str:
    return f" ({through(proxy, PROXY_SETTING)})" if proxy is not None else ""


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel the connection's task and wait for it to end."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def inbound(config: DingTalkConfig, channel: DingTalkChannel, deciders: Deciders) -> DingTalkCallbacks | None:
    """The Stream connection clicks (when `callbacks` is on) and chat messages (when chat is) arrive on."""
    if not config.callbacks and deciders.chat is None:
        return None
    return DingTalkCallbacks(channel, deciders.decisions, deciders.chat)
