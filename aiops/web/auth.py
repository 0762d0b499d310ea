"""Who may post alerts (webhook credentials) and who may look (viewers on a non-loopback listen address)."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request

from aiops.config import ServerConfig, WebhookConfig
from aiops.passwords import verify_password


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def webhook_allowed(config: WebhookConfig, header: str | None) -> bool:
    """Bearer token or basic auth, compared in constant time. No credentials configured: open (loopback only)."""
    if not config.has_credentials:
        return True
    if config.token is not None and header and header[:7].lower() == "bearer ":
        return _same(header[7:].strip(), config.token.get_secret_value())
    credentials = basic_credentials(header)
    if config.basic_auth is not None and credentials is not None:
        user_ok = _same(credentials[0], config.basic_auth.username)
        password_ok = _same(credentials[1], config.basic_auth.password.get_secret_value())
        return user_ok and password_ok
    return False


def viewer_allowed(config: ServerConfig, request: Request) -> bool:
    """Pages and API are open on loopback; elsewhere they need one of `server.viewers`."""
    if config.is_loopback:
        return True
    credentials = basic_credentials(request.headers.get("authorization"))
    if credentials is None:
        return False
    viewer = next((v for v in config.viewers if _same(v.username, credentials[0])), None)
    return viewer is not None and verify_password(credentials[1], viewer.password_hash)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
