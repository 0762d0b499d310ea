"""WXBizMsgCrypt: how WeCom signs and encrypts what it sends to a callback URL, and how a passive reply is sealed.

The scheme (WeCom's "加解密方案说明", and its official samples, e.g. sbzhu/weworkapi_python `callback/`):

- `msg_signature` is the hex SHA-1 of the token, the timestamp, the nonce and the encrypted text, sorted as strings
  and joined. It covers the `Encrypt` text only, not the XML around it.
- The cipher is AES-256-CBC. Its key is the base64 of the EncodingAESKey (43 characters, "=" added); the IV is the
  key's first 16 bytes. Padding is PKCS#7 to a 32-byte block, so a pad runs from 1 to 32 bytes. Stock unpadders for
  AES's 16-byte block refuse pads over 16.
- The plaintext is 16 random bytes, the message's length (4 bytes, network order), the message, then the receiver
  id, which is the corp id for a self-built app. A message for another corp decrypts fine and must still be
  refused.

Errors say which of three things went wrong, so that a route can answer 401 to a forged request and 400 to a broken
one, and name the setting to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from Crypto.Cipher import AES

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
MAX_BODY = 64 * 1024  # a callback is a few hundred bytes; anything far larger is not WeCom
_KEY_LENGTH = 43


class CallbackError(Exception):
    """A callback request that must not be acted on. `status` is the HTTP answer a route gives it."""

    status = 400


class BadSignature(CallbackError):
    """The signature does not match: forged, or the configured token is not the app's."""

    status = 401


class WrongReceiver(CallbackError):
    """The message decrypts but is addressed to another corp (or another suite)."""


class Malformed(CallbackError):
    """Not base64, not a whole number of blocks, bad padding, a length that does not fit, or XML without
    `Encrypt`."""


@dataclass(frozen=True)
class Sealed:
    """An encrypted passive reply as WeCom expects it back, and the XML that carries it."""

    encrypt: str
    signature: str
    timestamp: str
    nonce: str

    def xml(self) -> str:
        return (
            f"<xml><Encrypt><![CDATA[{self.encrypt}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{self.signature}]]></MsgSignature>"
            f"<TimeStamp>{self.timestamp}</TimeStamp><Nonce><![CDATA[{self.nonce}]]></Nonce></xml>"
        )


class MsgCrypt:
    """One app's callback settings: the token and EncodingAESKey set on its 接收消息 page, and the corp id."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = _key(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self._token, timestamp, nonce, encrypted)

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The GET that WeCom sends when the URL is saved: the plaintext to answer with, as is."""
        self._check(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_callback(self, msg_signature: str, timestamp: str, nonce: str, body: bytes) -> str:
        """A POSTed callback (`<xml><ToUserName/><AgentID/><Encrypt/></xml>`): the event XML it carries."""
        encrypted = encrypted_text(body)
        self._check(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def seal(self, message: str, timestamp: str, nonce: str) -> Sealed:
        """A passive reply, encrypted and signed."""
        encrypted = self.encrypt(message)
        return Sealed(encrypted, self.signature(timestamp, nonce, encrypted), timestamp, nonce)

    def encrypt(self, message: str, prefix: bytes | None = None) -> str:
        """`message` as WeCom's `Encrypt` text; `prefix` (16 bytes) replaces the random one, for test vectors."""
        text = message.encode("utf-8")
        plain = (prefix or secrets.token_bytes(16)) + struct.pack(">I", len(text)) + text + self._receive_id
        pad = BLOCK - len(plain) % BLOCK
        cipher = AES.new(self._key, AES.MODE_CBC, self._key[:16])
        return base64.b64encode(cipher.encrypt(plain + bytes([pad]) * pad)).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        plain = _unpad(self._decipher(encrypted))
        if len(plain) < 20:
            raise Malformed("the decrypted message is shorter than its header")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise Malformed("the decrypted message's length runs past its end")
        if not hmac.compare_digest(plain[20 + length :], self._receive_id):
            raise WrongReceiver(
                "the message is addressed to another receiver; check the channel's corp_id against the "
                "corp the app belongs to (我的企业 → 企业ID)"
            )
        try:
            return plain[20 : 20 + length].decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("the decrypted message is not UTF-8") from None

    def _decipher(self, encrypted: str) -> bytes:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise Malformed("the encrypted text is not base64") from None
        if not data or len(data) % AES.block_size:
            raise Malformed("the encrypted text is not a whole number of AES blocks")
        return AES.new(self._key, AES.MODE_CBC, self._key[:16]).decrypt(data)

    def _check(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode("utf-8", "replace")):
            raise BadSignature(
                "msg_signature does not match; if WeCom sent this, the channel's token differs from the one "
                "on the app's 接收消息 settings"
            )


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature: SHA-1 over the four strings, sorted and joined."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypted))).encode("utf-8")).hexdigest()


def encrypted_text(body: bytes) -> str:
    """The `Encrypt` element of a callback's XML body."""
    if len(body) > MAX_BODY:
        raise Malformed(f"the body is over {MAX_BODY} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Malformed("the body declares a DTD or entities, which WeCom never sends")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise Malformed("the body is not XML") from None
    encrypted = root.findtext("Encrypt")
    if not encrypted:
        raise Malformed("the XML has no Encrypt element")
    return encrypted.strip()


def _key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != _KEY_LENGTH:
        raise ValueError(f"encoding_aes_key must be {_KEY_LENGTH} characters (the app's EncodingAESKey)")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("encoding_aes_key is not the app's EncodingAESKey: it must be base64") from None
    return key


def _unpad(data: bytes) -> bytes:
    pad = data[-1]
    if not 1 <= pad <= BLOCK or data[-pad:] != bytes([pad]) * pad:
        raise Malformed("the decrypted message's padding is wrong (is the encoding_aes_key the app's?)")
    return data[:-pad]
