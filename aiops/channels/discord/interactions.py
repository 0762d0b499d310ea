"""Interactions that Discord POSTs to an app's Interactions Endpoint URL, and the answers it expects.

Every request is signed: Ed25519 over the `X-Signature-Timestamp` header followed by the raw body, checked against
the application's public key (hex, from the developer portal). An unsigned or badly signed request gets 401.
Discord sends such requests on purpose and removes an endpoint that accepts them. The raw bytes are verified, never
re-serialised JSON. A timestamp far from this server's clock is refused as well, so that a captured request cannot
be replayed later; Discord documents no window, the five minutes here are a choice.

`PING` (type 1) is answered `{"type": 1}` (PONG). A button press (type 3, MESSAGE_COMPONENT) must be answered
within 3 s, or its token is void. Answer `deferred_update()` (type 6) at once, do the work, then edit the message
through the interaction's webhook within 15 minutes (`api.DiscordRest.edit_original`). Or answer
`update_message(...)` (type 7) when the new content is ready in time.

A slash command (type 2, APPLICATION_COMMAND) names the command (`data.name`) and carries its options
(`data.options`, name → value). It is answered the same way: `deferred_channel_message()` (type 5: "thinking…")
at once, then its `@original` edited with the answer within 15 minutes; or `channel_message(...)` (type 4) when the
answer is ready in time. Run in a thread, the interaction's `channel` is the thread (type 10–12), and a thread
started from a message has that message's id.

The `cryptography` package verifies the signatures: it is installed already (asyncssh needs it), and it does
Ed25519 as PyNaCl does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 1, 2, 3, 5
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
EPHEMERAL = 1 << 6
THREADS = frozenset({10, 11, 12})  # channel types: announcement, public and private threads
GROUP_DM = 3
MAX_AGE = 300.0  # seconds a request's timestamp may be from this server's clock
SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"


class InteractionRefused(Exception):
    """A request not to act on; `status` is the HTTP answer (401, as Discord expects for a bad signature)."""

    status = 401


class Malformed(Exception):
    """Signed, but not an interaction this app understands."""

    status = 400


@dataclass(frozen=True)
class Interaction:
    """What aiops reads of an interaction: who pressed what, on which message, and how to answer."""

    id: str
    application_id: str
    type: int
    token: str  # answers and edits the original message for 15 minutes
    user_id: str | None  # member.user.id in a guild, user.id in a DM
    channel_id: str | None
    message_id: str | None  # the message carrying the pressed button
    custom_id: str | None  # data.custom_id of a MESSAGE_COMPONENT
    guild_id: str | None = None  # None in a DM
    channel_type: int | None = None  # channel.type: 1 a DM, 3 a group DM, 10–12 a thread
    command: str | None = None  # data.name of an APPLICATION_COMMAND
    options: Mapping[str, str] = field(default_factory=dict)  # the command's options, by name

    @property
    def in_thread(self) -> bool:
        return self.channel_type in THREADS


class Verifier:
    """Checks interaction requests against one application's public key."""

    def __init__(
        self, public_key: str, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time
    ) -> None:
        try:
            self._key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        except ValueError:
            raise ValueError(
                "public_key must be the application's PUBLIC KEY from the developer portal: 64 hex digits"
            ) from None
        self._max_age = max_age
        self._clock = clock

    def verify(self, headers: Mapping[str, str], raw: bytes) -> Interaction:
        """The interaction a request carries, once its signature and timestamp hold; `headers` may use any case."""
        lowered = {name.lower(): value for name, value in headers.items()}
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        self._check_signature(signature, timestamp, raw)
        self._check_age(timestamp)
        return parse(raw)

    def _check_signature(self, signature: str, timestamp: str, raw: bytes) -> None:
        if not signature or not timestamp:
            raise InteractionRefused(f"the request has no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        try:
            self._key.verify(bytes.fromhex(signature), timestamp.encode() + raw)
        except (InvalidSignature, ValueError):
            raise InteractionRefused(
                "the signature does not match; if Discord sent this, check the channel's public_key"
            ) from None

    def _check_age(self, timestamp: str) -> None:
        try:
            age = abs(self._clock() - float(timestamp))
        except ValueError:
            raise InteractionRefused("the signature timestamp is not a number") from None
        if not math.isfinite(age) or age > self._max_age:
            raise InteractionRefused(
                f"the request was signed {age:.0f} s away from this server's clock (allowed: {self._max_age:.0f} s);"
                " a replay, or this server's clock is wrong"
            )


def parse(raw: bytes) -> Interaction:
    try:
        body = json.loads(raw)
    except ValueError:
        raise Malformed("the interaction is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), int):
        raise Malformed("the interaction has no type")
    member, data, message, channel = (
        _object(body, name) for name in ("member", "data", "message", "channel")
    )
    user = _object(member, "user") or _object(body, "user")
    return Interaction(
        id=str(body.get("id") or ""),
        application_id=str(body.get("application_id") or ""),
        type=body["type"],
        token=str(body.get("token") or ""),
        user_id=_text(user.get("id")),
        channel_id=_text(body.get("channel_id") or (body.get("channel") or {}).get("id")),
        message_id=_text(message.get("id")),
        custom_id=_text(data.get("custom_id")),
        guild_id=_text(body.get("guild_id")),
        channel_type=channel.get("type") if isinstance(channel.get("type"), int) else None,
        command=_text(data.get("name")) if body["type"] == APPLICATION_COMMAND else None,
        options=_options(data.get("options")),
    )


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name) or {}
    if not isinstance(value, dict):
        raise Malformed(f"the interaction's {name} is not an object")
    return value


def _options(options: Any) -> dict[str, str]:
    """A command's top-level options that have a value, by name (a string option's value is the text typed)."""
    if not isinstance(options, list):
        return {}
    found = (item for item in options if isinstance(item, dict) and "value" in item)
    return {str(item.get("name")): str(item["value"]) for item in found}


def pong() -> dict[str, Any]:
    return {"type": PONG}


def deferred_update() -> dict[str, Any]:
    """Acknowledge a button press now; the message is edited later (within 15 minutes)."""
    return {"type": DEFERRED_UPDATE}


def deferred_channel_message() -> dict[str, Any]:
    """Acknowledge a command now, showing "thinking…"; its `@original` is edited with the answer later."""
    return {"type": DEFERRED_CHANNEL_MESSAGE}


def update_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the message carrying the button with `message` (content, embeds, components…)."""
    return {"type": UPDATE_MESSAGE, "data": dict(message)}


def channel_message(message: Mapping[str, Any], *, ephemeral: bool = False) -> dict[str, Any]:
    """Answer with a new message; `ephemeral` shows it to the clicker alone (e.g. "you may not approve this")."""
    data = dict(message)
    if ephemeral:
        data["flags"] = int(data.get("flags", 0)) | EPHEMERAL
    return {"type": CHANNEL_MESSAGE, "data": data}


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
