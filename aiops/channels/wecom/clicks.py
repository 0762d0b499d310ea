"""What the route at `/callbacks/wecom` does with a request: `answer_callback` checks and decrypts it, and says
what to answer and which click (if any) to decide, or which text message to hand to chat.

It is quick (a SHA-1 and an AES block chain, no I/O); the route then decides the click (one short transaction)
and answers well within WeCom's 5 s (1 s for the URL check). WeCom retries a callback it got no answer to, up to
three times: a repeat is recognised by `CardClick.dedup_key` and answered without a click — unless deciding the
first one failed (`forget`), when the retry is decided instead. The click's response code is kept by the channel,
so the card edited after the decision is the card clicked.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from aiops.channels.decisions import Button, Press
from aiops.channels.wecom.callback import CardClick, TextMessage, card_click, read, text_message, verify_url
from aiops.channels.wecom.channel import WeComChannel
from aiops.channels.wecom.crypto import CallbackError

WECOM = "wecom"
_REMEMBERED = 1000  # dedup keys kept: far more than three retries of the clicks of a few minutes


@dataclass(frozen=True)
class WeComClick:
    """An approver's press of a card's button (`press`, for the decision path), on the card `task_id`."""

    press: Press
    task_id: str  # the card's response code for its next update is already kept by the channel
    dedup_key: str


@dataclass(frozen=True)
class CallbackAnswer:
    """What the route answers (`status`, the bare `body`, as text/plain) and the click to decide, or the message
    to hand to chat, first."""

    status: int
    body: str = ""
    click: WeComClick | None = None
    message: TextMessage | None = None


class WeComClicks:
    """Reads one WeCom channel's callbacks; one per channel, for the life of the service."""

    def __init__(self, channel: WeComChannel) -> None:
        if channel.crypt is None:
            raise ValueError(
                f"channels.wecom {channel.name}: set callback_token and encoding_aes_key to receive clicks"
            )
        self._channel = channel
        self._crypt = channel.crypt
        self._seen: deque[str] = deque(maxlen=_REMEMBERED)

    def answer_callback(self, method: str, query: Mapping[str, str], body: bytes) -> CallbackAnswer:
        """GET: the URL check, answered with the decrypted echostr. POST: an event, answered 200 with nothing;
        a template card click comes back as `click`, a text message as `message`. 401 for a bad signature, 400
        for the rest: nothing done."""
        try:
            if method == "GET":
                return CallbackAnswer(200, verify_url(self._crypt, query))
            event = read(self._crypt, query, body)
            card, message = card_click(event), text_message(event)
        except CallbackError as error:
            return CallbackAnswer(error.status, str(error))
        agent_id = card.agent_id if card is not None else message.agent_id if message is not None else 0
        if agent_id not in (0, self._channel.config.agent_id):
            return CallbackAnswer(400, f"the callback is for agent {agent_id}, not this channel's agent_id")
        if message is not None:
            return CallbackAnswer(200, message=message)  # chat knows the messages it has heard (MsgId)
        return self._clicked(card) if card is not None else CallbackAnswer(200)

    def _clicked(self, card: CardClick) -> CallbackAnswer:
        if card.dedup_key in self._seen:
            return CallbackAnswer(200)
        self._seen.append(card.dedup_key)
        self._channel.keep_response_code(card.task_id, card.response_code)
        button = Button.parse(card.key)
        if button is None:
            return CallbackAnswer(200)  # a button this service did not make
        click = WeComClick(button.press(WECOM, card.user_id), card.task_id, card.dedup_key)
        return CallbackAnswer(200, click=click)

    def forget(self, click: WeComClick) -> None:
        """`click` was not decided (the store failed): WeCom's retry of it is to be decided, not skipped."""
        with contextlib.suppress(ValueError):
            self._seen.remove(click.dedup_key)
