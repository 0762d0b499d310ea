"""Feishu's HTTP callbacks: proving a request came from Feishu, decrypting it, and
reading a button click out of it.

With an encrypt key, Feishu signs each request — `X-Lark-Signature` is the hex SHA-256 of timestamp, nonce, encrypt
key and raw body — and encrypts its body as `{"encrypt": base64(IV + AES-256-CBC(sha256(encrypt key), PKCS7))}`.
Without one, the only proof is the verification token inside the body. This is what lark-oapi's
`EventDispatcherHandler` checks too (with pycryptodome, as here), but it answers a bad signature with HTTP 500,
which reads as our failure; a request that proves nothing is refused with 401 here, before anything is read from it.
URL verification (the console's "save request URL") is answered without a signature, as lark-oapi does: it only
echoes a challenge, and Feishu may not sign it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util.Padding import unpad

from aiops.channels.feishu import FeishuConfig
from aiops.store.codec import MAX_ID

CARD_ACTION = "card.action.trigger"
URL_VERIFICATION = "url_verification"
SIGNATURE = "X-Lark-Signature"
TIMESTAMP = "X-Lark-Request-Timestamp"
NONCE = "X-Lark-Request-Nonce"
_HEX = re.compile(r"[0-9a-f]{1,64}")
# Feishu's ids are ASCII (`ou_` and hex); anything else, a NUL above all, would not even fit the audit trail.
_OPEN_ID = re.compile(r"[!-~]{1,256}")


class Refused(Exception):
    """The request does not prove it came from Feishu: answer 401 and act on nothing in it."""


class Malformed(Exception):
    """The request is Feishu's but not shaped as its documentation says."""


@dataclass(frozen=True)
class Click:
    """An Approve or Reject button pressed by `open_id`, as the card's callback value names it."""

    open_id: str
    proposal_id: int
    approve: bool
    hash_prefix: str  # the first hex digits of the argv hash of the command the card showed
    message_id: str | None = None


@dataclass(frozen=True)
class PauseClick:
    """The Pause button of automatic remediation pressed by `open_id`, on the card of `incident_id`."""

    open_id: str
    incident_id: int
    message_id: str | None = None


def open_request(config: FeishuConfig, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The callback's payload, once the request is shown to come from Feishu; raises `Refused` otherwise."""
    if not config.accepts_callbacks:
        raise Refused(
            "Feishu callbacks are not accepted: set channels.feishu.encrypt_key (or verification_token) to the "
            "values on the app's 'Events & callbacks' page"
        )
    if config.encrypt_key is not None:
        payload = _decrypted(config.encrypt_key.get_secret_value(), body, headers)
    else:
        payload = _object(body)
        if "encrypt" in payload:
            raise Refused(
                "the request is encrypted: set channels.feishu.encrypt_key to the app's Encrypt Key"
            )
    if config.verification_token is not None:
        _check_token(payload, config.verification_token.get_secret_value())
    return payload


def is_url_verification(payload: Mapping[str, Any]) -> bool:
    return payload.get("type") == URL_VERIFICATION


def event_type(payload: Mapping[str, Any]) -> str | None:
    header = payload.get("header")
    return str(header.get("event_type")) if isinstance(header, dict) else None


def click(payload: Mapping[str, Any]) -> Click | PauseClick:
    """The click a `card.action.trigger` callback reports; raises `Malformed` when its value is not one of ours."""
    event = _field(payload, "event")
    open_id = _field(event, "operator").get("open_id")
    value = _field(_field(event, "action"), "value")
    proposal, decision, prefix = value.get("proposal"), value.get("decision"), value.get("hash")
    proposal_id = _proposal_id(proposal)
    if not isinstance(open_id, str) or not open_id:
        raise Malformed("event.operator.open_id is missing")
    if not _OPEN_ID.fullmatch(open_id):
        raise Malformed(f"event.operator.open_id is not a Feishu open_id: {open_id!r:.40}")
    context = event.get("context")
    message_id = context.get("open_message_id") if isinstance(context, dict) else None
    if decision == "pause":
        incident_id = _proposal_id(value.get("incident"))
        if incident_id is None:
            raise Malformed("event.action.value.incident is not an incident id")
        return PauseClick(open_id, incident_id, message_id)
    if proposal_id is None:
        raise Malformed(f"event.action.value.proposal is not a proposal id: {proposal!r:.40}")
    if decision not in ("approve", "reject"):
        raise Malformed(f"event.action.value.decision must be approve or reject, not {decision!r}")
    if not isinstance(prefix, str) or not _HEX.fullmatch(prefix):
        raise Malformed("event.action.value.hash is not a hex argv hash prefix")
    return Click(open_id, proposal_id, decision == "approve", prefix, message_id)


def clicked(click: Click | PauseClick) -> str:
    """What was clicked, for a log line."""
    if isinstance(click, PauseClick):
        return f"Pause (incident {click.incident_id})"
    return f"proposal {click.proposal_id}"


def _proposal_id(value: object) -> int | None:
    """The id (of a proposal, or an incident) a button's value names, as a JSON number or a string of ASCII digits (`str.isdigit()` also takes
    '²', which `int()` refuses), and no larger than the store's ids."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID)):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_ID else None


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    """Feishu's encryption undone: base64, then AES-256-CBC keyed by sha256(encrypt key), IV first, PKCS7."""
    raw = base64.b64decode(encrypted, validate=True)
    if len(raw) < 2 * AES.block_size or len(raw) % AES.block_size:
        raise ValueError("ciphertext length is not a whole number of blocks after the IV")
    cipher = AES.new(hashlib.sha256(encrypt_key.encode()).digest(), AES.MODE_CBC, raw[: AES.block_size])
    return unpad(cipher.decrypt(raw[AES.block_size :]), AES.block_size)


def _decrypted(encrypt_key: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    signed = _signed(encrypt_key, body, headers)
    if signed is False:
        raise Refused(f"{SIGNATURE} does not match the body under channels.feishu.encrypt_key")
    encrypted = _object(body).get("encrypt")
    if not isinstance(encrypted, str):
        raise Refused("the request is not encrypted, though channels.feishu.encrypt_key is set")
    try:
        payload = _object(decrypt(encrypt_key, encrypted))
    except (ValueError, binascii.Error):
        raise Refused("the body cannot be decrypted with channels.feishu.encrypt_key") from None
    if signed is None and not is_url_verification(payload):
        raise Refused(f"the request is not signed ({SIGNATURE}, {TIMESTAMP} and {NONCE} are required)")
    return payload


def _signed(encrypt_key: str, body: bytes, headers: Mapping[str, str]) -> bool | None:
    """Whether the signature holds; None when the request carries none."""
    given, timestamp, nonce = headers.get(SIGNATURE), headers.get(TIMESTAMP), headers.get(NONCE)
    if given is None or timestamp is None or nonce is None:
        return None
    return hmac.compare_digest(given.encode(), signature(timestamp, nonce, encrypt_key, body).encode())


def _check_token(payload: Mapping[str, Any], expected: str) -> None:
    """The verification token sits in `header.token` (schema 2.0) or at the top (url_verification, schema 1.0)."""
    header = payload.get("header")
    token = header.get("token") if isinstance(header, dict) else payload.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Refused("the verification token does not match channels.feishu.verification_token")


def _object(text: bytes) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise Refused("the body is not JSON") from None
    if not isinstance(document, dict):
        raise Refused("the body is not a JSON object")
    return document


def _field(parent: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"{name} is missing or not an object")
    return value
