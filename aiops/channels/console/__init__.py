"""The console channel: announcements printed as plain text on the service's standard output."""

from __future__ import annotations

import sys
from typing import Literal

from jinja2 import Environment
from pydantic import BaseModel, ConfigDict

from aiops.channels import Announcement, Digest, RateLimit, fitting


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    stream: Literal["stdout", "stderr"] = "stdout"


class ConsoleChannel:
    """Prints; it cannot edit what it printed, so an update is printed anew."""

    name = "console"
    limits = RateLimit()
    immediate = True
    results_on_card = False
    routing = None

    def __init__(self, config: ConsoleConfig, templates: Environment) -> None:
        self._stream = sys.stdout if config.stream == "stdout" else sys.stderr
        self._templates = templates

    def render(self, announcement: Announcement) -> str:
        template = self._templates.get_template(f"console/{announcement.purpose}.txt.j2")
        return template.render(**fitting.context(announcement))

    def render_digest(self, digest: Digest) -> str:
        return self._templates.get_template("console/digest.txt.j2").render(digest=digest)

    async def send(self, body: str) -> str | None:
        self._stream.write(body.rstrip("\n") + "\n")
        self._stream.flush()
        return None

    async def update(self, handle: str, body: str) -> None:
        await self.send(body)
