"""Value types shared by the config models: durations and byte sizes written the way operators write them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_duration(value: object) -> float:
    """`90`, `"90s"`, `"1m30s"`, `"500ms"`, `"1h"` → seconds. Prometheus's syntax, minus weeks and years."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and _DURATION.sub("", value.strip()) == "":
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(value))
    else:
        raise ValueError(f"{value!r} is not a duration; write it as 30s, 5m, 1h or 1m30s")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """`5242880`, `"5MiB"`, `"512 KiB"` → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size; write it as bytes or with a unit such as 512KiB or 5MiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]


def check_http_url(value: str) -> str:
    """An http(s) URL with a host; a trailing slash is dropped so paths can be appended."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


Seconds = Annotated[float, BeforeValidator(parse_duration)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
Bytes = Annotated[int, BeforeValidator(parse_size)]


def seconds_said(value: float) -> str:
    """A time to recovery as it is said: tenths below ten seconds (1 s evaluation intervals), whole above."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
