"""The WeCom (企业微信) group robot: a webhook that posts markdown into one group, 20 messages a minute.

A group robot cannot receive clicks and cannot edit what it sent, so a proposal's button is a link to the web
approval page (and Pause a link to the remediation page), and an update is a new message. The protocol (sending,
pacing, errcodes, the markdown dialect) is `aiops.channels.wecom.robot`, `.errors` and `.markdown`.

```yaml
channels:
  wecom_webhook:
    - name: ops-group
      key: ${WECOM_ROBOT_KEY}          # the part after ?key= of the robot's webhook URL
      match: ['team="ops"']
      mentions: {critical: ["zhangsan"]}   # userids, @mentioned as <@userid>
```
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from jinja2 import Environment
from pydantic import ConfigDict, Field, SecretStr, field_validator

from aiops.channels import Announcement, Capabilities, Digest, RateLimit, digest_title, fitting
from aiops.channels.fitting import Cut, line
from aiops.channels.robot import CUTS, LAST_RESORT, Robot
from aiops.channels.routing import Routing
from aiops.channels.wecom import markdown
from aiops.channels.wecom.api import BASE_URL
from aiops.channels.wecom.robot import MARKDOWN_LIMIT, PER_MINUTE, Pacer, markdown_message, send
from aiops.proxy import Destination, Proxied, destination
from aiops.units import HttpUrl, Seconds

_USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # a WeCom userid, or "@all"
_KEY = re.compile(r"[A-Za-z0-9-]{8,128}")


class WeComWebhookConfig(Routing, Proxied):
    """One group robot; `match` and `mentions` (from `Routing`) choose what it announces and whom it @mentions
    (userids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="wecom_webhook", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: SecretStr  # the robot's webhook key: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>
    base_url: HttpUrl = BASE_URL
    timeout: Seconds = 10.0

    @field_validator("key")
    @classmethod
    def _key(cls, key: SecretStr) -> SecretStr:
        # Not echoed: the key is the robot's only credential.
        if not _KEY.fullmatch(key.get_secret_value()):
            raise ValueError(
                "must be the robot's key alone (the value after ?key= in its webhook URL), not the whole URL"
            )
        return key

    def destinations(self, where: str) -> list[Destination]:
        return destination(where, self, self.base_url)


CAPABILITIES = Capabilities(
    edits=False, buttons="links", max_bytes=MARKDOWN_LIMIT, limits=RateLimit(per_minute=PER_MINUTE)
)


class WeComWebhookChannel(Robot[WeComWebhookConfig]):
    """Posts markdown messages to one WeCom group through its robot."""

    limits = CAPABILITIES.limits

    def __init__(
        self,
        config: WeComWebhookConfig,
        templates: Environment,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, templates, http, clock=clock)
        # The outbox paces this channel by `limits`; the pacer only catches what it does not see (another
        # process on the same robot, a 45009), and never sleeps: it says when to come back instead.
        self._pacer = Pacer(max_wait=0.0, clock=self._clock)

    def render(self, announcement: Announcement) -> str:
        return _fit(lambda cut: self._announcement(announcement, cut))

    def render_digest(self, digest: Digest) -> str:
        title = line(digest_title(self._t, digest), 100)
        return _fit(lambda cut: self._text("digest.md.j2", digest=digest, title=title))

    async def send(self, body: str) -> str | None:
        await send(
            self._http,
            self._config.key.get_secret_value(),
            json.loads(body),
            pacer=self._pacer,
            base_url=self._config.base_url,
            time_limit=self._config.timeout,
        )
        return None  # a robot's message has no handle: it cannot be edited

    def _announcement(self, announcement: Announcement, cut: Cut) -> str:
        context = fitting.context(announcement, cut, _USER_ID)
        title = line(self._text("title.txt.j2", **context), 100)
        return self._text(f"{announcement.purpose}.md.j2", **context, title=title)

    def _text(self, template: str, **context: Any) -> str:
        found = self._templates.get_template(f"wecom_webhook/{template}")
        return found.render(md=markdown.inline, mdtext=markdown.escape, **context).strip()


def _fit(build: Callable[[Cut], str]) -> str:
    """The body of the fullest rendering whose markdown is within the robot's 4,096 bytes; past the last cut,
    the shortest rendering cut at the limit (`markdown.cut` never splits a character or one of its own tags)."""
    for cut in CUTS:
        content = build(cut)
        if markdown.size(content) <= MARKDOWN_LIMIT:
            return _body(content)
    return _body(markdown.cut(build(LAST_RESORT), MARKDOWN_LIMIT))


def _body(content: str) -> str:
    return json.dumps(markdown_message(content), ensure_ascii=False, separators=(",", ":"))
