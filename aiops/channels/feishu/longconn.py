"""Card clicks and chat messages over Feishu's long connection, for apps that cannot be reached from the internet.

lark-oapi's `ws.Client` asks `{domain}/callback/ws/endpoint` for a WebSocket URL, connects, and receives each
callback as a protobuf frame; the return value of the registered handler travels back in the frame's answer. Its
`start()` never returns and runs on an event loop its module captured when it was first imported — in this service,
the service's own loop, where `run_until_complete` would fail. So the client runs in a thread of its own, with a
fresh loop put in that module variable first (one Feishu app per service, hence one client per process). It also
fetches its URL with a blocking `requests.post`, which stalls only that thread.

Each click is handed to the service's loop, where `FeishuClicks` decides it, and answered within Feishu's
3 seconds; a click still being decided when the time is up gets a toast saying so (the decision completes, and the
card is edited when the result is announced). A chat message is handed to `FeishuChat` on the service's loop the
same way; the SDK thread waits only for it to be recorded (one commit), and a message that could not be recorded
is answered with an error, so that Feishu delivers it again. There is no signature to check: the connection itself
was opened with the app secret.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from typing import Any

from aiops.channels.feishu import FeishuConfig
from aiops.channels.feishu import callback as feishu_callback
from aiops.channels.feishu.clicks import FeishuClicks
from aiops.channels.feishu.messages import FeishuChat
from aiops.channels.listener import ListenerThread

log = logging.getLogger("aiops.channels.feishu")
ANSWER_WITHIN = 2.5  # seconds on the service's loop; Feishu shows an error to the clicker after 3
RETRY_REFUSED = 60.0  # seconds before connecting again after Feishu refused the app (bad secret, too many)


class LongConnection(ListenerThread):
    """The long connection of the `channels.feishu` app: `start()` from the service's loop, `await stop()`."""

    def __init__(self, config: FeishuConfig, clicks: FeishuClicks, chat: FeishuChat | None = None) -> None:
        super().__init__(f"feishu-{config.name}", config.timeout + 5.0)
        self._config = config
        self._clicks = clicks
        self._chat = chat
        self._client: Any = None

    def on_card(self, event: Any) -> Any:
        """lark-oapi's handler for `card.action.trigger`, on the connection's thread: the answer to send back."""
        from lark_oapi.core.json import JSON  # type: ignore[import-untyped]  # lark-oapi ships no type hints
        from lark_oapi.event.callback.model.p2_card_action_trigger import (  # type: ignore[import-untyped]
            P2CardActionTriggerResponse,
        )

        return P2CardActionTriggerResponse(self.answer(json.loads(JSON.marshal(event))))

    def answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The answer to one `card.action.trigger` payload, decided on the service's loop within ANSWER_WITHIN."""
        try:
            click = feishu_callback.click(payload)
        except feishu_callback.Malformed as malformed:
            log.warning("feishu %s: a click could not be read: %s", self._config.name, malformed)
            return self._clicks.toast("error", refusal="malformed")
        if self._service_loop is None or self._stopping.is_set():
            return self._clicks.toast("info", refusal="slow")
        future = asyncio.run_coroutine_threadsafe(self._clicks.answer(click), self._service_loop)
        try:
            return future.result(timeout=ANSWER_WITHIN)
        except concurrent.futures.TimeoutError:
            log.warning(
                "feishu %s: the click on %s took over %.1fs; answered that it is being decided",
                self._config.name,
                feishu_callback.clicked(click),
                ANSWER_WITHIN,
            )
            return self._clicks.toast("info", refusal="slow")
        except Exception:
            log.exception(
                "feishu %s: the click on %s failed", self._config.name, feishu_callback.clicked(click)
            )
            return self._clicks.toast("error", outcome="refused")

    def on_message(self, event: Any) -> None:
        """lark-oapi's handler for `im.message.receive_v1`, on the connection's thread."""
        from lark_oapi.core.json import JSON

        self.deliver(json.loads(JSON.marshal(event)))

    def deliver(self, payload: dict[str, Any]) -> None:
        """Hand one message to the chat on the service's loop and wait for it to be recorded, within ANSWER_WITHIN;
        raises when it could not be, which the SDK answers with an error and Feishu with a redelivery."""
        if self._chat is None:
            return  # chat is off: the message is acknowledged and left
        if self._service_loop is None or self._stopping.is_set():
            raise RuntimeError("the service is stopping; Feishu delivers the message again")
        future = asyncio.run_coroutine_threadsafe(self._chat.deliver(payload), self._service_loop)
        try:
            delivered = future.result(timeout=ANSWER_WITHIN)
        except concurrent.futures.TimeoutError:
            log.warning(
                "feishu %s: a chat message took over %.1fs to record; acknowledged meanwhile",
                self._config.name,
                ANSWER_WITHIN,
            )
            return
        if not delivered:
            raise RuntimeError("the message could not be recorded now; Feishu delivers it again")

    def _run(self) -> None:
        """The thread: lark-oapi's client on a loop of its own, connected again after a refusal, until `stop`."""
        import lark_oapi as lark  # type: ignore[import-untyped]  # lark-oapi ships no type hints
        from lark_oapi.ws import client as ws_client  # type: ignore[import-untyped]
        from lark_oapi.ws.exception import ClientException  # type: ignore[import-untyped]

        _route_sdk_logs()
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_exception)
        asyncio.set_event_loop(loop)
        ws_client.loop = loop  # the SDK runs on this module variable, captured at import
        self._loop = loop
        self._started.set()
        # Messages are listened to even with chat off: an event without a handler is answered with an error, and
        # Feishu would deliver it again for hours.
        handler = (
            lark.EventDispatcherHandler.builder("", "")
            .register_p2_card_action_trigger(self.on_card)
            .register_p2_im_message_receive_v1(self.on_message)
            .build()
        )
        try:
            while not self._stopping.is_set():
                self._client = ws_client.Client(
                    self._config.app_id,
                    self._config.app_secret.get_secret_value(),
                    log_level=lark.LogLevel.WARNING,  # at INFO it logs the connection URL, ticket included
                    event_handler=handler,
                    domain=self._config.domain,
                )
                log.info(
                    "feishu %s: opening the long connection at %s", self._config.name, self._config.domain
                )
                try:
                    self._client.start()
                except ClientException as refused:
                    log.error(
                        "feishu %s: Feishu refused the long connection (%s); check channels.feishu.app_id and "
                        "app_secret, and that the app is self-built with callbacks in long-connection mode; "
                        "trying again in %.0fs",
                        self._config.name,
                        refused,
                        RETRY_REFUSED,
                    )
                    self._stopping.wait(RETRY_REFUSED)
                except Exception:
                    if self._stopping.is_set():
                        break  # `stop` stopped the loop under the client
                    log.exception(
                        "feishu %s: the long connection failed; trying again in %.0fs",
                        self._config.name,
                        RETRY_REFUSED,
                    )
                    self._stopping.wait(RETRY_REFUSED)
        finally:
            _close_loop(loop)

    def _interrupt(self) -> None:
        """On the connection's loop: no reconnecting, close the socket, then stop the loop."""
        client = self._client
        loop = self._loop
        if client is None or loop is None:
            return
        client._auto_reconnect = False  # the SDK has no public way to stop its client
        logging.getLogger("Lark").setLevel(
            logging.CRITICAL
        )  # it reports the close it is told to make as an error

        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client._disconnect(), self._config.timeout)
            loop.stop()

        loop.create_task(close())

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The SDK's receive loop ends with the error of the connection `stop` closed; that one is expected."""
        if not self._stopping.is_set():
            loop.default_exception_handler(context)


def _route_sdk_logs() -> None:
    """lark-oapi logs to stdout through a handler of its own; send its records through the service's logging,
    where secrets are redacted."""
    sdk = logging.getLogger("Lark")
    sdk.handlers[:] = []
    sdk.propagate = True


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the SDK left running (its receive and ping loops) and close the loop."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait(pending, timeout=2.0))
    loop.close()
