"""Which incidents a channel announces, and whom it @mentions: part of every chat channel's configuration.

```yaml
channels:
  dingtalk_webhook:
    - name: db-team
      url: https://oapi.dingtalk.com/robot/send?access_token=…
      secret: ${DINGTALK_DB_SECRET}
      match: ['team="db"', 'severity=~"critical|warning"']   # Alertmanager matcher syntax, all must hold
      mentions: {critical: ["0123456789"]}                    # platform user ids, by severity
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from aiops.runbooks.matchers import Matcher, parse_matcher


def _matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a matcher string such as 'severity=\"critical\"'")
    return parse_matcher(value)


class Routing(BaseModel):
    """The base of every chat channel's configuration: its name, and which incidents it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    match: list[Annotated[Matcher, BeforeValidator(_matcher)]] = Field(default_factory=list)
    mentions: dict[str, list[str]] = Field(default_factory=dict)

    def applies(self, labels: Mapping[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.match)

    def mentions_for(self, severity: str) -> tuple[str, ...]:
        return tuple(self.mentions.get(severity, ()))
