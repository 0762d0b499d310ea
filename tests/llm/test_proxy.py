"""`llm.proxy`: the real openai SDK reaching the fake MiniMax through a real SOCKS5 (and HTTP) proxy on loopback."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aiops.llm.client import LlmClient, LlmConfig, LlmError
from tests.fakes.minimax import KEY, FakeMiniMax, Reply
from tests.support.binaries import free_port
from tests.support.proxy import Pproxy

MESSAGES = [{"role": "user", "content": "Why is web-1 down?"}]
PASSWORD = "proxy-Kw83nVb2Lq7Z"


def client_for(fake: FakeMiniMax, **overrides: object) -> LlmClient:
    settings = {"api_key": KEY, "base_url": fake.base_url, "call_timeout": 5, "max_attempts": 1, **overrides}
    return LlmClient(LlmConfig.model_validate(settings))


def target(fake: FakeMiniMax) -> str:
    return urlsplit(fake.base_url).netloc


@pytest.mark.parametrize("scheme", ["socks5h", "socks5", "http"])
async def test_the_model_is_asked_through_the_proxy(
    fake_minimax: FakeMiniMax, proxy: Pproxy, scheme: str
) -> None:
    fake_minimax.script(Reply(content="through the proxy"))
    url = proxy.http if scheme == "http" else proxy.socks.replace("socks5h://", f"{scheme}://")
    client = client_for(fake_minimax, proxy=url)
    try:
        completion = await client.complete(MESSAGES)
    finally:
        await client.close()
    assert completion.content == "through the proxy"
    proxy.wait_for(target(fake_minimax))


async def test_the_proxy_credentials_are_sent_to_the_proxy(fake_minimax: FakeMiniMax, tmp_path: Path) -> None:
    guarded = Pproxy(tmp_path, credentials=("aiops", PASSWORD)).start()
    try:
        client = client_for(fake_minimax, proxy=guarded.socks)
        try:
            await client.complete(MESSAGES)
        finally:
            await client.close()
        guarded.wait_for(target(fake_minimax))
    finally:
        guarded.stop()


async def test_without_llm_proxy_the_environment_s_proxy_is_not_followed(
    fake_minimax: FakeMiniMax, proxy: Pproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.socks)
    client = client_for(fake_minimax)
    try:
        await client.complete(MESSAGES)
    finally:
        await client.close()
    assert len(fake_minimax.requests) == 1 and proxy.carried() == []


async def test_a_no_proxy_host_is_reached_directly(fake_minimax: FakeMiniMax, proxy: Pproxy) -> None:
    client = client_for(fake_minimax, proxy=proxy.socks, no_proxy=["127.0.0.0/8"])
    try:
        await client.complete(MESSAGES)
    finally:
        await client.close()
    assert len(fake_minimax.requests) == 1 and proxy.carried() == []


async def test_a_proxy_that_is_down_is_a_retryable_error_naming_llm_proxy(fake_minimax: FakeMiniMax) -> None:
    down = f"socks5h://aiops:{PASSWORD}@127.0.0.1:{free_port()}"
    client = client_for(fake_minimax, proxy=down)
    try:
        with pytest.raises(LlmError) as raised:
            await client.complete(MESSAGES)
    finally:
        await client.close()
    said = str(raised.value)
    assert raised.value.retryable and "cannot reach the endpoint" in said
    assert "llm.proxy" in said and "127.0.0.1" in said
    assert PASSWORD not in said and fake_minimax.requests == []
