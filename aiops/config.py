"""The configuration: one YAML file, `${VAR}` interpolation, and the environment overrides listed in the README.

Each part of the service owns its section's model (next to its code); `Settings` only composes them. Every
problem is reported as `key.path: reason` so an operator can find and fix it without reading a traceback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from aiops.actions.policy import RemediationConfig
from aiops.channels.console import ConsoleConfig
from aiops.channels.registry import KINDS, Configured, Kind, approver_keys, configured
from aiops.chat.config import ChatConfig
from aiops.grafana import GrafanaConfig
from aiops.inventory import Hosts
from aiops.llm.client import LlmConfig
from aiops.passwords import Login
from aiops.payload import field_path
from aiops.pipeline.storm import StormConfig
from aiops.proxy import Destination, Proxied, destination
from aiops.queue import QueueConfig
from aiops.sources.history import HistoryConfig
from aiops.sources.loki import LokiConfig
from aiops.sources.prometheus import PrometheusConfig
from aiops.store.engine import DatabaseConfig
from aiops.units import Bytes, HttpUrl, Seconds

# Environment variable → key path it overrides. An empty variable counts as unset.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "AIOPS_LISTEN": ("server", "listen"),
    "AIOPS_PUBLIC_URL": ("server", "public_url"),
    "AIOPS_DATABASE_URL": ("database", "url"),
    "AIOPS_WEBHOOK_TOKEN": ("webhook", "token"),
    "AIOPS_PROMETHEUS_URL": ("prometheus", "url"),
    "AIOPS_ALERTMANAGER_URL": ("alertmanager", "url"),
    "AIOPS_LOKI_URL": ("loki", "url"),
    "AIOPS_GRAFANA_URL": ("grafana", "url"),
    "AIOPS_GRAFANA_TOKEN": ("grafana", "token"),
    "AIOPS_GRAFANA_PUBLIC_URL": ("grafana", "public_url"),
    "AIOPS_RUNBOOKS_DIR": ("runbooks", "dir"),
    "MINIMAX_API_KEY": ("llm", "api_key"),
    "MINIMAX_BASE_URL": ("llm", "base_url"),
    "MINIMAX_MODEL": ("llm", "model"),
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER_TOKENS = {"undefined", "null", "none", "changeme", "change-me", "token", "secret"}
MIN_TOKEN_LENGTH = 16


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` are `key.path: reason` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    listen: str = "127.0.0.1:18789"
    public_url: str | None = None
    language: Literal["zh-CN", "en"] = "zh-CN"
    # Who may read the pages and the API when the service listens on a non-loopback address.
    viewers: list[Login] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")


class BasicAuth(Section):
    username: str = Field(min_length=1)
    password: SecretStr

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        _check_secret(value.get_secret_value())
        return value


class WebhookConfig(Section):
    token: SecretStr | None = None
    basic_auth: BasicAuth | None = None
    allow_unauthenticated: bool = False
    max_body: Bytes = 5 * 1024 * 1024
    # How long intake waits for the store to commit before answering 503 (so that Alertmanager retries).
    commit_timeout: Seconds = 5.0

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret(value.get_secret_value())
        return value

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or self.basic_auth is not None


class AlertmanagerConfig(Section, Proxied):
    url: HttpUrl | None = None


class RunbooksConfig(Section):
    dir: Path = Path("runbooks")


class _Channels(Section):
    """`channels`: the console, a section per kind in the registry (aiops/channels/registry.py), and templates."""

    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    # A folder of template overrides: a file at the same relative path as one under aiops/templates replaces it.
    templates: Path | None = None

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    def configured(self) -> list[Configured]:
        """Every chat channel configured, with its kind and key path."""
        return configured(lambda key: getattr(self, key, None))

    def names(self) -> list[str]:
        """The configured channels' names, the console's first."""
        return ["console", *(item.config.name for item in self.configured())]

    @model_validator(mode="after")
    def _unique_names(self) -> _Channels:
        # The outbox and the message handles key on the channel's name.
        names = self.names()
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(
                f"channel names must be unique; {', '.join(twice)} is used twice: give each a name"
            )
        return self


def _kind_field(kind: Kind[Any, Any]) -> Any:
    """A kind's section: a list of its configs (`many`), or one or none."""
    if kind.many:
        return (list[kind.config], Field(default_factory=list))  # type: ignore[name-defined]
    return (kind.config | None, None)


# The registry's kinds as fields, so that pydantic names `channels.<key>…` in every error. The type checker
# knows the model by its base: code reaches a kind's section through `configured()`, never by its key.
if TYPE_CHECKING:
    ChannelsConfig = _Channels
else:
    ChannelsConfig = create_model(
        "ChannelsConfig", __base__=_Channels, **{kind.key: _kind_field(kind) for kind in KINDS}
    )


class Settings(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    alertmanager: AlertmanagerConfig = Field(default_factory=AlertmanagerConfig)
    loki: LokiConfig = Field(default_factory=LokiConfig)
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    runbooks: RunbooksConfig = Field(default_factory=RunbooksConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    hosts: Hosts = Field(default_factory=dict)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    storm: StormConfig = Field(default_factory=StormConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)

    @model_validator(mode="after")
    def _exposure(self) -> Settings:
        if (
            not self.server.is_loopback
            and not self.webhook.has_credentials
            and not self.webhook.allow_unauthenticated
        ):
            raise ValueError(
                f"webhook: no token or basic_auth while server.listen {self.server.listen} is not a loopback "
                "address; set webhook.token (or AIOPS_WEBHOOK_TOKEN), or webhook.allow_unauthenticated: true"
            )
        return self

    @model_validator(mode="after")
    def _askers(self) -> Settings:
        kinds = [kind.key for kind in KINDS if kind.inbound is not None]
        unknown = [f"chat.askers.{key}" for key in self.chat.askers if key not in kinds]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a channel aiops takes messages from; use one of {', '.join(kinds)}"
            )
        return self

    @model_validator(mode="after")
    def _approvers(self) -> Settings:
        keys = approver_keys()
        unknown = [
            f"remediation.approvers.{key}" for key in self.remediation.approvers.root if key not in keys
        ]
        if unknown:
            listed = "; ".join(f"{key}: {whose}" for key, whose in keys.items())
            raise ValueError(
                f"{', '.join(unknown)}: not a channel approvals come through; use one of {listed}"
            )
        return self

    @model_validator(mode="after")
    def _escalation_channels(self) -> Settings:
        names = set(self.channels.names())
        remediation = self.remediation
        named = [
            (f"remediation.escalation.{sev}.{name}", name)
            for sev, by in remediation.escalation.items()
            for name in by
        ]
        named += [(f"remediation.escalate_to[{i}]", name) for i, name in enumerate(remediation.escalate_to)]
        unknown = [where for where, name in named if name not in names]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a configured channel; use the name of one of {', '.join(sorted(names))}"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret value in the configuration, for redaction in logs, errors and pages."""
        return [value for value in _secret_values(self) if value]


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate, override and validate the configuration; raises `ConfigError`."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("AIOPS_CONFIG"):
        path = Path(environ["AIOPS_CONFIG"])
    raw = _read_yaml(path) if path is not None else {}
    raw = _interpolate(raw, environ, ())
    sources = _apply_overrides(raw, environ)
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError([_problem(item, sources) for item in error.errors(include_url=False)]) from None


def destinations(settings: Settings) -> list[Destination]:
    """Every outside place the configuration makes the service connect to, for `aiops check`."""
    found: list[Destination] = []
    if settings.llm.enabled:
        found += destination("llm", settings.llm, settings.llm.base_url)
    for item in settings.channels.configured():
        found += item.config.destinations(item.where)
    found += destination("grafana", settings.grafana, settings.grafana.url)
    found += destination("prometheus", settings.prometheus, settings.prometheus.url)
    found += destination("loki", settings.loki, settings.loki.url)
    found += destination("alertmanager", settings.alertmanager, settings.alertmanager.url)
    if settings.hosts:
        found.append(Destination("hosts", "ssh", "direct: SSH never goes through a proxy"))
    return found


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"{listen!r} is not host:port (for example 127.0.0.1:18789 or [::1]:18789)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_secret(value: str) -> None:
    if not value.strip():
        raise ValueError("is empty")
    if value.strip().lower() in _PLACEHOLDER_TOKENS:
        raise ValueError("is a placeholder, not a secret; set a random one (openssl rand -hex 24)")
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"is shorter than {MIN_TOKEN_LENGTH} characters; use a random secret (openssl rand -hex 24)"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read ({error.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: is not valid YAML{where}: {getattr(error, 'problem', error)}"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections (server, webhook, …)"])
    return loaded


def _interpolate(value: Any, environ: Mapping[str, str], path: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {key: _interpolate(item, environ, (*path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environ, (*path, str(index))) for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            [f"{'.'.join(path)}: environment variable {name} is not set (write ${{{name}:-default}})"]
        )

    result = _VARIABLE.sub(substitute, value)
    # A value that is only an empty variable counts as unset, like an empty environment override.
    return None if result == "" and _VARIABLE.fullmatch(value) else result


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    sources: dict[tuple[str, ...], str] = {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if environ.get(variable):
            target = raw.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError([f"{section}: must be a mapping, not {type(target).__name__}"])
            target[key] = environ[variable]
            sources[(section, key)] = variable
    return sources


def _problem(item: Any, sources: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in item["loc"])
    path = field_path(item["loc"]) if loc else "(top level)"
    reason = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        reason = "is not a known setting (check the spelling against the configuration reference)"
    origin = f" (from {sources[loc[:2]]})" if loc[:2] in sources else ""
    return f"{path}{origin}: {reason}" if loc else reason


def _secret_values(model: object) -> Iterator[str]:
    if isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _secret_values(getattr(model, name))
    elif isinstance(model, SecretStr):
        yield model.get_secret_value()
    elif isinstance(model, list | tuple):
        for item in model:
            yield from _secret_values(item)
    elif isinstance(model, dict):
        for item in model.values():
            yield from _secret_values(item)
    elif isinstance(model, str) and "://" in model:
        yield from _url_secrets(model)


_SECRET_QUERY = {"access_token", "token", "key", "secret", "sign"}


def _url_secrets(url: str) -> Iterator[str]:
    """The password in `scheme://user:password@host` URLs (database, Prometheus behind basic auth), and tokens in
    the query (a DingTalk robot's `access_token`)."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            yield parts.password
            yield unquote(parts.password)
        for name, values in parse_qs(parts.query).items():
            if name.lower() in _SECRET_QUERY:
                yield from values
