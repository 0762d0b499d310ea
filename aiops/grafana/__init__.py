"""Grafana: annotations of what aiops saw and did, and links from each incident to the dashboard that shows it.

```yaml
grafana:
  url: https://grafana.example.com
  token: ${AIOPS_GRAFANA_TOKEN}     # a service account token (Editor role)
  # public_url: https://grafana.example.com   # for links, when people reach Grafana at another address
```

With only `url`, announcements and incident pages link to the dashboards (`dashboards.py`); with a token too,
incidents opened and resolved and actions executed are written as annotations (`annotations.py`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from aiops.proxy import Proxied
from aiops.units import HttpUrl, Seconds

_UID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
MAX_UID = 40  # Grafana's limit on a dashboard uid


class DashboardsConfig(BaseModel):
    """The uids of the dashboards announcements link to; the bundled ones unless the team has its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: str = "aiops-hosts"  # takes `var-instance`: linked when the alert has an `instance` label
    overview: str = "aiops-overview"  # linked otherwise

    @field_validator("hosts", "overview")
    @classmethod
    def _uid(cls, value: str) -> str:
        if not 0 < len(value) <= MAX_UID or not set(value) <= _UID_CHARS:
            raise ValueError(
                f"{value!r} is not a dashboard uid: up to {MAX_UID} letters, digits, - and _ "
                "(the last part of the dashboard's URL path /d/<uid>/…)"
            )
        return value


class GrafanaConfig(Proxied):
    """The `grafana:` section. Without `url`, nothing links to Grafana and nothing is written to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl | None = None
    # The address people open Grafana at, for links, when it differs from `url`, the one aiops reaches it at
    # (in docker-compose: http://grafana:3000 for aiops, http://127.0.0.1:3000 in a browser).
    public_url: HttpUrl | None = None
    token: SecretStr | None = None  # a service account token; annotations are written only with one
    annotations: bool = True
    dashboards: DashboardsConfig = Field(default_factory=DashboardsConfig)
    org_id: int | None = Field(default=None, ge=1)  # added to links as orgId, for a Grafana with several
    timeout: Annotated[Seconds, Field(gt=0)] = 5.0  # per request to Grafana

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty; set a service account token, or remove the key")
        return value

    @model_validator(mode="after")
    def _url_for_token(self) -> GrafanaConfig:
        if self.token is not None and self.url is None:
            raise ValueError("token is set but url is not: set grafana.url (or AIOPS_GRAFANA_URL)")
        return self

    @property
    def link_base(self) -> str | None:
        """Where dashboard links point: `public_url`, else `url`."""
        return self.public_url or self.url

    @property
    def annotating(self) -> bool:
        """Whether annotations are written: a URL, a token, and `annotations` left on."""
        return self.url is not None and self.token is not None and self.annotations
