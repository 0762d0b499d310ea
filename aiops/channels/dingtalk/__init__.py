"""The DingTalk app robot: each incident is one interactive card (a card-platform template) in a group chat, edited
in place as the incident changes, with Approve / Reject buttons that call back over the Stream connection.

Cards are created, delivered and edited through the Open API (`openapi.py`, over httpx); the card's data comes from
the templates under aiops/templates/dingtalk (`card.py`). Clicks arrive over dingtalk-stream's long connection
(`stream.py`, `DingTalkCallbacks`), so no public URL is needed. Messages to the app's robot arrive there too
(`chatbot.py`), and aiops answers them in the chat they came from (`reply.py`).

```yaml
channels:
  dingtalk:
    client_id: dingxxxxxxxx                      # the app's AppKey (Client ID)
    client_secret: ${DINGTALK_CLIENT_SECRET}     # its AppSecret
    open_conversation_id: cidXXXXXXXX==          # the group the app's robot was added to
    card_template_id: 1a2b3c4d-….schema          # from card.dingtalk.com, see "The card template" below
```

## The card template

Build it at https://card.dingtalk.com/card-builder and bind these variables (all strings; `proposals` is a JSON
array for a loop):

- `title`, `severity`, `status` (firing / resolved), `status_text`: the header.
- `summary`, `evidence`, `runbook`, `last_action`: markdown blocks.
- `incident_url` and `incident_link_text`: a link button to the incident page; `incident_id`.
- `dashboard_url` and `dashboard_link_text`: a link button to the incident's Grafana dashboard; both empty when
  `grafana.url` is not set, so show the button only when `dashboard_url` is not empty.
- `actions_open`: "true" while a proposal waits for an approval; show the buttons only then.
- `proposals`: one object per proposed action: `id`, `action`, `host`, `command`, `risk`, `state`,
  `state_text`, `expires`, `pending` ("true" / "false"), `proposal_id`, `hash`, `text` (markdown).
  Give the loop two buttons with the "request callback" (回传请求) event, shown when `pending` is "true": action
  id `approve` and `reject`, each with the parameters `proposal_id` and `hash` bound to the item's fields. `hash`
  is the start of the proposal's argv hash: a click decides only the command the card showed.
- `notice`: what the clicker is told about their click (sent as their private data only).

Cards are created with `callbackType: STREAM`; clicks on cards created otherwise never reach the Stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import httpx
from jinja2 import Environment

from aiops.channels import Announcement, Capabilities, Digest, RateLimit
from aiops.channels.dingtalk.card import MAX_BODY, Cards
from aiops.channels.dingtalk.config import DingTalkConfig
from aiops.channels.dingtalk.openapi import OpenApi
from aiops.channels.dingtalk.reply import Replies, by_session_webhook, message, webhook_alive
from aiops.channels.records import ProposalRecord
from aiops.channels.routing import Routing
from aiops.chat import Reply
from aiops.models import Text

__all__ = ["CAPABILITIES", "DingTalkChannel", "DingTalkConfig"]

# The app's per-API limit on a standard-edition organisation is 20 calls a second (DingTalk's "调用频次与限流"
# page). No per-minute limit is documented for app robots (the 20/min is webhooks').
CAPABILITIES = Capabilities(
    edits=True, buttons="callbacks", max_bytes=MAX_BODY, limits=RateLimit(per_second=20)
)


class DingTalkChannel:
    """The `Channel` for one DingTalk app robot and group. A message's body is the JSON of its card data."""

    limits = CAPABILITIES.limits
    # An action's result is written into the incident's card (`last_action`), not sent as a card of its own.
    results_on_card = True
    immediate = False

    def __init__(
        self,
        config: DingTalkConfig,
        templates: Environment,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.config = config
        self.routing: Routing = config
        self._cards = Cards(templates)
        self._replies = Replies(templates)
        self._api = OpenApi(config, http)
        self._http = http
        self._clock = clock  # wall-clock seconds: session webhooks expire at an epoch time

    def render(self, announcement: Announcement) -> str:
        return self._cards.announcement(announcement)

    def render_digest(self, digest: Digest) -> str:
        return self._cards.digest(digest)

    def render_decision(
        self, outcome: str, proposal: ProposalRecord, proposals: Sequence[ProposalRecord], who: str
    ) -> str:
        """The card keys a click changes: the proposals' states, whether buttons stay, what was decided."""
        return self._cards.decision(outcome, proposal, proposals, who)

    def notice(self, outcome: str, who: str, reason: Text = "") -> str:
        """What the person who clicked is told (their private card data)."""
        return self._cards.notice(outcome, who, reason)

    async def send(self, body: str) -> str | None:
        return await self._api.create_and_deliver(body)

    async def update(self, handle: str, body: str) -> None:
        await self._api.update(handle, body)

    def render_reply(self, reply: Reply) -> str:
        return self._replies.render(reply)

    async def reply(self, reply_to: Mapping[str, str], body: str) -> None:
        """Answer in the chat the message came from: by its session webhook while it lasts, else (or when the
        session refuses it) by the robot's Open API."""
        sent = message(body)
        webhook = webhook_alive(reply_to, self._clock)
        limit = self.config.timeout
        if webhook and await by_session_webhook(self._http, webhook, sent, name=self.name, time_limit=limit):
            return
        await self._api.send_markdown(reply_to, sent["title"], sent["text"])
