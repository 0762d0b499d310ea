"""The DingTalk channel's configuration: the app's credentials, the group, the card template, the endpoints."""

from __future__ import annotations

from pydantic import ConfigDict, Field, SecretStr

from aiops.channels.routing import Routing
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds

DINGTALK_API = "https://api.dingtalk.com"  # the international tenant uses https://api.dingtalk.io
TOKEN_PATH = "/v1.0/oauth2/accessToken"


class DingTalkConfig(Routing, Proxied):
    """One internal app posting cards to one group; `match` and `mentions` (from `Routing`) choose what it
    announces and whom it @mentions (staff ids).

    The Stream connection (`callbacks`) also carries the messages people send the app's robot, handed to chat when
    it is on; `robot_name`, the robot's display name, is taken out of their text should "@name" be left in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="dingtalk", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    client_id: str = Field(min_length=1)  # the AppKey
    client_secret: SecretStr  # the AppSecret
    robot_code: str | None = None  # the app robot's code; DingTalk makes it the AppKey, the default
    open_conversation_id: str = Field(
        min_length=1
    )  # the group (cid…), which the app's robot must have joined
    card_template_id: str = Field(min_length=1)
    api: HttpUrl = DINGTALK_API  # Open API base for cards
    token_url: HttpUrl | None = None  # default: {api}/v1.0/oauth2/accessToken
    gateway: HttpUrl | None = None  # where the Stream connection is opened; default: {api}
    callbacks: bool = True  # receive button clicks over the Stream connection
    robot_name: str | None = Field(default=None, min_length=1, max_length=64)
    timeout: Seconds = 10.0

    @property
    def token_endpoint(self) -> str:
        return self.token_url or self.api + TOKEN_PATH

    @property
    def gateway_endpoint(self) -> str:
        return self.gateway or self.api

    @property
    def robot(self) -> str:
        return self.robot_code or self.client_id

    def destinations(self, where: str) -> list[Destination]:
        """The Open API, the token endpoint, and the Stream's gateway and WebSocket (for `aiops check`)."""
        found = destination(where, self, self.api)
        if self.token_url:
            found += destination(f"{where} token", self, self.token_url, where)
        if self.callbacks:
            found += destination(f"{where} Stream", self, self.gateway_endpoint, where)
            found.append(
                Destination(
                    f"{where} Stream WebSocket", "the host the gateway names", self._stream_route(where)
                )
            )
        return found

    def _stream_route(self, where: str) -> str:
        """The Stream's WebSocket goes to whichever host the gateway names, known only once it answers."""
        if self.proxy is None:
            return "direct"
        unless = ", unless it is in no_proxy" if self.no_proxy else ""
        return f"through {self.proxy} ({where}.proxy){unless}"
