"""The console channel: announcements printed as plain text on the service's standard output."""

from __future__ import annotations

import sys
from typing import Literal

from jinja2 import Environment
from pydantic import BaseModel, ConfigDict

from aiops.channels import Announcement


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    stream: Literal["stdout", "stderr"] = "stdout"


class ConsoleChannel:
    name = "console"

    def __init__(self, config: ConsoleConfig, templates: Environment) -> None:
        self._stream = sys.stdout if config.stream == "stdout" else sys.stderr
        self._templates = templates

    def render(self, announcement: Announcement) -> str:
        template = self._templates.get_template(f"console/{announcement.purpose}.txt.j2")
        return template.render(a=announcement, incident=announcement.incident, triage=announcement.triage)

    async def deliver(self, body: str) -> None:
        self._stream.write(body.rstrip("\n") + "\n")
        self._stream.flush()
