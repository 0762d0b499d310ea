"""Outbound proxies: the `proxy` and `no_proxy` settings of each section that reaches a destination, and the HTTP
clients that follow them.

A destination goes through a proxy only when its own section says so: no client built here reads `HTTPS_PROXY`,
`ALL_PROXY` or `NO_PROXY` from the environment (write `proxy: ${HTTPS_PROXY:-}` to follow one). A request that fails
on its way through a proxy says which setting chose that proxy, so an operator knows where to look.

```yaml
llm:
  proxy: socks5h://proxy.example.com:1080    # socks5://, socks5h://, http:// (https:// for TLS to the proxy)
  no_proxy: [models.internal, 10.0.0.0/8]      # reached directly all the same
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit

import httpx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_serializer,
    model_validator,
)

from aiops.logs import REDACTED

SCHEMES = ("socks5", "socks5h", "http", "https")
_USE = "use socks5://, socks5h:// or http:// (https:// for a proxy spoken to over TLS)"


class ProxyUrl(BaseModel):
    """A proxy, written as `scheme://[user:password@]host:port`. Shown (`str`, `repr`, a dump of the settings)
    without its credentials; its password is one of the settings' secrets, redacted from every log line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["socks5", "socks5h", "http", "https"]
    host: str
    port: int
    # Not a secret of its own (a user name such as "aiops" would be redacted from every log line), but never shown.
    username: str | None = Field(default=None, repr=False)
    password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be a URL such as socks5h://proxy.example.com:1080")
        return parse_proxy(value)

    def url(self) -> str:
        """The URL with its credentials, for the client that connects through it."""
        credentials = ""
        if self.username is not None or self.password is not None:
            credentials = quote(self.username or "", safe="")
            if self.password is not None:
                credentials += ":" + quote(self.password.get_secret_value(), safe="")
            credentials += "@"
        return f"{self.scheme}://{credentials}{self._netloc}"

    def __str__(self) -> str:
        credentials = f"{REDACTED}@" if self.username is not None or self.password is not None else ""
        return f"{self.scheme}://{credentials}{self._netloc}"

    @model_serializer
    def _shown(self) -> str:
        return str(self)

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_proxy(text: str) -> dict[str, Any]:
    """The parts of a proxy URL; a ValueError says what is wrong with it, without repeating its credentials."""
    scheme, found, _rest = text.strip().partition("://")
    if not found:
        raise ValueError(f"is not a URL; {_USE}, as in socks5h://proxy.example.com:1080")
    if scheme.lower() not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not supported; {_USE}")
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number between 1 and 65535") from None
    if not parts.hostname:
        raise ValueError("names no host; write scheme://host:port")
    if port is None or port == 0:
        raise ValueError(f"names no port; write it, as in {scheme}://{parts.hostname}:1080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be scheme://host:port only, without a path or query")
    return {
        "scheme": scheme.lower(),
        "host": parts.hostname,
        "port": port,
        "username": unquote(parts.username) if parts.username is not None else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }


def _no_proxy_entries(value: object) -> tuple[str, ...]:
    """`no_proxy` as a list, or as one comma-separated string the way NO_PROXY is written."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of host names, domains, IP addresses or networks")
    entries = tuple(str(item).strip().lower() for item in items if str(item).strip())
    for entry in entries:
        _check_entry(entry)
    return entries


def _check_entry(entry: str) -> None:
    if entry == "*":
        return
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a network such as 10.0.0.0/8") from None
        return
    name = entry.removeprefix("*.").removeprefix(".").strip("[]")
    if "://" in entry or not name or any(char in name for char in " /@") or _has_port(name):
        raise ValueError(
            f"{entry!r} is not a host name, domain, IP address or network (write it without scheme or port)"
        )


def _has_port(name: str) -> bool:
    if ":" not in name:
        return False
    try:
        ipaddress.ip_address(name)  # an IPv6 address has colons of its own
    except ValueError:
        return True
    return False


NoProxy = Annotated[tuple[str, ...], BeforeValidator(_no_proxy_entries)]


def bypassed(no_proxy: Iterable[str], host: str) -> bool:
    """Whether `host` is one `no_proxy` reaches directly: `*`; the name itself or a name under it
    (`example.com` and `.example.com` both cover `api.example.com`); an address, or an address in a network."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy:
        if entry == "*":
            return True
        if "/" in entry:
            if address is not None and address in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        name = entry.removeprefix("*.").removeprefix(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


class Proxied(BaseModel):
    """What a section that reaches a destination adds: the proxy it goes through (none by default), and the hosts
    it reaches directly all the same."""

    proxy: ProxyUrl | None = None
    no_proxy: NoProxy = ()

    @model_validator(mode="after")
    def _no_proxy_needs_proxy(self) -> Proxied:
        if self.no_proxy and self.proxy is None:
            raise ValueError("no_proxy is set but proxy is not: set proxy, or remove no_proxy")
        return self

    def proxy_for(self, url: str) -> ProxyUrl | None:
        """The proxy a request to `url` goes through, or None when it goes directly."""
        if self.proxy is None or bypassed(self.no_proxy, urlsplit(url).hostname or ""):
            return None
        return self.proxy

    def route(self, url: str, setting: str) -> str:
        """How `url` is reached, for `aiops check` and the logs: `direct`, or the proxy and the setting naming it."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return "direct" if self.proxy is None else "direct (no_proxy)"
        return f"through {proxy} ({setting})"


@dataclass(frozen=True)
class Destination:
    """Somewhere the service connects to, and how: `direct`, or through which proxy set where."""

    name: str  # the section's key path, and what of it when it reaches more than one place
    origin: str  # scheme://host[:port]: a robot's path, a query or a user name may carry a secret
    route: str


def destination(
    name: str, section: Proxied, url: str | None, setting: str | None = None
) -> list[Destination]:
    """`url` as a destination of `section` (none when it is unset); its proxy is `{setting or name}.proxy`."""
    if not url:
        return []
    return [Destination(name, origin(url), section.route(url, f"{setting or name}.proxy"))]


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, without what could be secret in the rest of it."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def through(proxy: ProxyUrl, setting: str) -> str:
    """The words added to an error that happened on the way through a proxy."""
    return f"through the proxy {proxy} set in {setting}"


class ProxiedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the section's proxy, or directly to its `no_proxy` hosts. A transport error on the
    way through the proxy (the proxy down, refusing, or unable to reach the destination) names the setting."""

    def __init__(self, section: Proxied, setting: str, **transport: Any) -> None:
        if section.proxy is None:
            raise ValueError(f"{setting} is not set")
        self._section = section
        self._setting = setting
        self._proxied = httpx.AsyncHTTPTransport(proxy=section.proxy.url(), **transport)
        self._direct = httpx.AsyncHTTPTransport(**transport)  # opens nothing until a no_proxy host is asked

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._section.proxy_for(str(request.url))
        if proxy is None:
            return await self._direct.handle_async_request(request)
        try:
            return await self._proxied.handle_async_request(request)
        except httpx.TransportError as error:
            said = f"{error or type(error).__name__}, {through(proxy, self._setting)}"
            raise type(error)(said, request=request) from error

    async def aclose(self) -> None:
        await self._proxied.aclose()
        await self._direct.aclose()


def http_client(section: Proxied, setting: str, **options: Any) -> httpx.AsyncClient:
    """An HTTP client for one section's destination: through its proxy when it has one, directly otherwise, and
    never through a proxy named only in the environment."""
    if section.proxy is None:
        return httpx.AsyncClient(trust_env=False, **options)
    return httpx.AsyncClient(transport=ProxiedTransport(section, setting), trust_env=False, **options)


class HttpClients:
    """The service's HTTP clients: one shared by every destination reached directly, and one for each section
    with a proxy of its own. `aclose` closes them all."""

    def __init__(self) -> None:
        self.direct = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._proxied: list[httpx.AsyncClient] = []

    def for_section(self, section: Proxied, setting: str) -> httpx.AsyncClient:
        """The client for `section`, whose proxy is `setting` (a key path, for errors)."""
        if section.proxy is None:
            return self.direct
        client = http_client(section, setting, follow_redirects=False)
        self._proxied.append(client)
        return client

    async def aclose(self) -> None:
        for client in (self.direct, *self._proxied):
            await client.aclose()
