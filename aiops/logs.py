"""Logging for the service: one line per record, with every configured secret replaced before it is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "«redacted»"
# Credentials that travel in URLs, which httpx logs for every request: WeCom's access token and robot key (and
# DingTalk's robot token) in the query, Discord's interaction and webhook tokens in the path. Tokens fetched at
# run time are in no configuration, so they are found by where they sit.
_IN_QUERY = re.compile(r"([?&](?:access_token|corpsecret|key|token|secret|sign)=)[^&#\s\"'>]+", re.I)
_IN_PATH = re.compile(r"(/(?:interactions|webhooks)/\d+/)[\w.-]+")


class Redactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _IN_QUERY.sub(rf"\1{REDACTED}", text)
        return _IN_PATH.sub(rf"\1{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        record.msg, record.args = self.redact(message), None
        return True


def configure(secrets: Iterable[str], level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("drain3").setLevel(logging.WARNING)  # it announces every template miner it starts
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
