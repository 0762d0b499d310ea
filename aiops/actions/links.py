"""Approval links: signed, expiring tokens naming one proposal and the exact argv it was made for.

A chat robot can only carry a link, so the link itself says which proposal, which command (`argv_hash`) and until
when; an HMAC-SHA256 under the signing key makes it unforgeable. A token grants nothing by itself: the page it opens
still asks who the approver is, and `Approvals.decide` still checks the allow-list and that the argv is unchanged.

Layout, URL-safe base64 without padding: version (1 byte) · proposal id (8) · expiry, epoch seconds (8) ·
argv_hash (32) · HMAC of all that (32).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.policy import RemediationConfig
from aiops.store import actions

_VERSION = 1
_BODY = struct.Struct(">BQQ32s")
_MAC_SIZE = hashlib.sha256().digest_size
# Each use of the key signs a different kind of message; the prefix keeps one from passing for another.
_LINK_PURPOSE = b"aiops approval link\x00"
_FORM_PURPOSE = b"aiops approval form\x00"
STORED_KEY = "approval_signing_key"
PATH = "/approvals/{token}"  # the page's route (aiops/web/approvals.py)
_ALPHABET = re.compile(r"[A-Za-z0-9_-]{1,200}")


class BadToken(Exception):
    """A token that cannot be used; `reason` is `malformed`, `forged` (not signed with our key) or `expired`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    proposal_id: int
    argv_hash: str
    expires_at: float


def make_token(key: bytes, proposal_id: int, argv_hash: str, expires_at: float) -> str:
    """A token for the approval link of `proposal_id`, valid until `expires_at` (epoch seconds, rounded down)."""
    body = _BODY.pack(_VERSION, proposal_id, int(expires_at), bytes.fromhex(argv_hash))
    return _encode(body + _sign(key, _LINK_PURPOSE, body))


def read_token(key: bytes, token: str, now: float) -> TokenClaims:
    """The claims of a token made by `make_token` with `key`; raises `BadToken` unless it is intact and unexpired."""
    raw = _decode(token)
    if len(raw) != _BODY.size + _MAC_SIZE:
        raise BadToken("malformed")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if not hmac.compare_digest(mac, _sign(key, _LINK_PURPOSE, body)):
        raise BadToken("forged")
    version, proposal_id, expires_at, hashed = _BODY.unpack(body)
    if version != _VERSION:
        raise BadToken("malformed")
    if expires_at <= now:
        raise BadToken("expired")
    return TokenClaims(proposal_id, hashed.hex(), float(expires_at))


def approval_url(base_url: str, token: str) -> str:
    """The link a channel sends for a proposal; `base_url` is `server.base_url`."""
    return base_url.rstrip("/") + PATH.format(token=token)


def form_proof(key: bytes, token: str, username: str) -> str:
    """What the approval form carries to show it was served to `username` by this service (against CSRF)."""
    message = token.encode() + b"\x00" + username.encode()
    return _encode(_sign(key, _FORM_PURPOSE, message))


def proof_matches(key: bytes, token: str, username: str, proof: str) -> bool:
    return hmac.compare_digest(proof.encode(), form_proof(key, token, username).encode())


async def signing_key(engine: AsyncEngine, config: RemediationConfig) -> bytes:
    """`remediation.signing_key`, or else one generated once and kept in the store, so that all replicas share it."""
    if config.signing_key is not None:
        return config.signing_key.get_secret_value().encode()
    async with engine.begin() as conn:
        stored = await actions.stored_secret(conn, STORED_KEY, secrets.token_urlsafe(32))
    return stored.encode()


def _sign(key: bytes, purpose: bytes, message: bytes) -> bytes:
    return hmac.new(key, purpose + message, hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    # The decoder would skip characters outside the alphabet; a token is refused for them instead.
    if not _ALPHABET.fullmatch(token):
        raise BadToken("malformed")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except binascii.Error:
        raise BadToken("malformed") from None
