"""The host inventory: which configured host an alert's target label names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aiops.inventory import Host, HostNotFound, Inventory, without_port


def host(address: str, **fields: object) -> Host:
    return Host.model_validate(
        {"address": address, "user": "aiops", "key_file": "/k", "known_hosts": "/kh", **fields}
    )


INVENTORY = Inventory(
    {
        "web-1": host("10.0.0.11"),
        "db-1": host("db-1.internal", port=2222),
        "v6": host("fd00::5"),
        "web-1:9100": host("10.0.0.99"),  # an odd but exact name wins over stripping the port
    }
)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("web-1", "web-1"),
        ("web-1:9100", "web-1:9100"),
        ("db-1:9100", "db-1"),
        ("10.0.0.11", "web-1"),
        ("10.0.0.11:9100", "web-1"),
        ("db-1.internal:9100", "db-1"),
        ("fd00::5", "v6"),
        ("[fd00::5]:9100", "v6"),
    ],
)
def test_resolve(target: str, name: str) -> None:
    assert INVENTORY.resolve(target)[0] == name


def test_unknown_target_says_how_to_add_it() -> None:
    with pytest.raises(HostNotFound) as raised:
        INVENTORY.resolve("cache-3:9100")
    message = str(raised.value)
    assert "'cache-3:9100'" in message and "hosts:" in message and "'cache-3'" in message


@pytest.mark.parametrize("value", ["web-1", "web-1:9100", "[::1]:9100", "::1", "a:b:c", "web-1:"])
def test_without_port(value: str) -> None:
    expected = {"web-1:9100": "web-1", "[::1]:9100": "::1"}.get(value, value)
    assert without_port(value) == expected


def test_host_defaults_and_validation() -> None:
    entry = host("10.0.0.1", connect_timeout="2s")
    assert (entry.port, entry.connect_timeout, entry.key_file) == (22, 2.0, Path("/k"))
    assert host("10.0.0.1").connect_timeout == 10.0
    for bad in ({"port": 0}, {"port": 70000}, {"connect_timeout": 0}, {"password": "x"}):
        with pytest.raises(ValidationError):
            host("10.0.0.1", **bad)
    with pytest.raises(ValidationError, match="known_hosts"):
        Host.model_validate({"address": "10.0.0.1", "user": "aiops", "key_file": "/k"})
