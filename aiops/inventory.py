"""The hosts aiops may reach over SSH, and how an alert's target label finds one of them.

Configured under the top-level `hosts:` key, one entry per host name:

```yaml
hosts:
  web-1:
    address: 10.0.0.11
    user: aiops
    key_file: /etc/aiops/ssh/id_ed25519
    known_hosts: /etc/aiops/ssh/known_hosts   # the host's key must be here: unknown keys are refused
  db-1:
    address: db-1.internal
    port: 2222
    user: aiops
    key_file: /etc/aiops/ssh/id_ed25519
    known_hosts: /etc/aiops/ssh/known_hosts
    connect_timeout: 5s
```

Only hosts listed here can ever be reached: an alert label naming anything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from aiops.i18n import message
from aiops.models import Message
from aiops.units import Seconds

# `host:port` and `[v6-address]:port`, as Prometheus writes its `instance` label.
_BRACKETED = re.compile(r"\[(?P<host>[^\]]+)\]:\d+")
_HOST_PORT = re.compile(r"(?P<host>[^:]+):\d+")


class Host(BaseModel):
    """One SSH host: where it is, who to log in as, the key to log in with, and the host key to expect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: Annotated[str, Field(min_length=1)]
    key_file: Path
    known_hosts: Path
    connect_timeout: Annotated[Seconds, Field(gt=0)] = 10.0


Hosts = dict[Annotated[str, Field(min_length=1)], Host]
"""The type of the `hosts:` settings key: host name → `Host`."""


class HostNotFound(LookupError):
    """An alert's target names no host of the inventory; `reason` says how to add it."""

    def __init__(self, reason: Message) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Inventory:
    """The configured hosts, looked up by the values alerts carry in their target label."""

    def __init__(self, hosts: Mapping[str, Host]) -> None:
        self._hosts = dict(hosts)

    def __len__(self) -> int:
        return len(self._hosts)

    def names(self) -> list[str]:
        return sorted(self._hosts)

    def resolve(self, target: str) -> tuple[str, Host]:
        """(name, host) for a target value; raises `HostNotFound`.

        Tried in order: the exact host name; the value without a trailing `:port` (node_exporter's
        `instance="web-1:9100"` is host `web-1`); a host whose `address` is the value, with or without its port.
        """
        bare = without_port(target)
        for name in (target, bare):
            if name in self._hosts:
                return name, self._hosts[name]
        for name, host in self._hosts.items():
            if host.address in (target, bare):
                return name, host
        raise HostNotFound(message("refusal_no_host", target=repr(target), host=repr(bare)))


def without_port(value: str) -> str:
    """`web-1:9100` → `web-1`, `[::1]:9100` → `::1`; anything else (a bare IPv6 address too) unchanged."""
    for pattern in (_BRACKETED, _HOST_PORT):
        match = pattern.fullmatch(value)
        if match is not None:
            return match["host"]
    return value
