"""The MiniMax client against the fake endpoint, driven through the real openai SDK."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aiops.config import ConfigError, load_settings
from aiops.llm.client import LlmClient, LlmConfig, LlmError, Usage
from tests.fakes.minimax import KEY, FakeMiniMax, Reply

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Why is web-1 down?"},
]


def client_for(fake: FakeMiniMax, **overrides: object) -> LlmClient:
    settings = {
        "api_key": KEY,
        "base_url": fake.base_url,
        "provider": "minimax",
        "backoff": 0.05,
        "call_timeout": 5,
        **overrides,
    }
    return LlmClient(LlmConfig.model_validate(settings))


async def test_think_block_is_taken_out_of_the_answer_and_kept_as_reasoning(
    fake_minimax: FakeMiniMax,
) -> None:
    fake_minimax.script(Reply(content='{"summary": "disk full"}', reasoning="df shows 99% on /var"))
    completion = await client_for(fake_minimax, reasoning_split=False).complete(MESSAGES)
    assert completion.content == '{"summary": "disk full"}'
    assert completion.reasoning == "df shows 99% on /var"
    assert "<think>" in completion.message["content"]  # sent back verbatim in a conversation
    assert "reasoning_split" not in fake_minimax.requests[0]


async def test_reasoning_split_moves_the_reasoning_into_reasoning_details(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(content="answer", reasoning="thinking hard"))
    completion = await client_for(fake_minimax).complete(MESSAGES)
    assert fake_minimax.requests[0]["reasoning_split"] is True
    assert (completion.content, completion.reasoning) == ("answer", "thinking hard")
    assert completion.message["reasoning_details"][0]["text"] == "thinking hard"


async def test_the_request_stays_within_what_minimax_accepts(fake_minimax: FakeMiniMax) -> None:
    await client_for(fake_minimax, temperature=1.0).complete(MESSAGES)
    request = fake_minimax.requests[0]
    assert 0 < request["temperature"] <= 1
    assert "response_format" not in request  # ignored by M2 models: the prompt asks for JSON instead
    assert request["max_completion_tokens"] == 4096
    assert fake_minimax.headers[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("value", ["0", "1.5", "-1"])
def test_a_temperature_outside_0_1_is_refused_by_the_config(tmp_path: Path, value: str) -> None:
    config = tmp_path / "aiops.yml"
    config.write_text(f"llm:\n  temperature: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert "llm.temperature" in str(caught.value)


async def test_an_error_answered_with_http_200_and_base_resp_is_an_error(fake_minimax: FakeMiniMax) -> None:
    client = client_for(fake_minimax, api_key="sk-api-wrong-key-000000000000")
    with pytest.raises(LlmError) as caught:
        await client.complete(MESSAGES)
    assert "1004" in str(caught.value) and "MINIMAX_API_KEY" in str(caught.value)
    assert not caught.value.retryable
    assert len(fake_minimax.requests) == 1  # a wrong key is not retried


async def test_a_rate_limit_is_retried_with_backoff(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(
        Reply(http_status=429, base_resp=(1002, "rate limit exceeded(RPM)")),
        Reply(base_resp=(1002, "rate limit exceeded(TPM)")),
        Reply(content="fine"),
    )
    completion = await client_for(fake_minimax).complete(MESSAGES)
    assert completion.content == "fine"
    assert len(fake_minimax.requests) == 3


async def test_retry_after_is_honoured(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(http_status=429, retry_after=0.5), Reply(content="fine"))
    started = time.monotonic()
    await client_for(fake_minimax).complete(MESSAGES)
    assert time.monotonic() - started >= 0.5


async def test_the_server_side_rate_limit_ends_in_a_clear_error(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.rpm = 1
    client = client_for(fake_minimax, max_attempts=3)
    await client.complete(MESSAGES)
    with pytest.raises(LlmError) as caught:
        await client.complete(MESSAGES, deadline=time.monotonic() + 1.5)
    assert "429" in str(caught.value) and "1002" in str(caught.value)
    assert caught.value.retryable


async def test_a_slow_answer_runs_into_the_call_deadline(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(content="late", delay=3), Reply(content="late", delay=3))
    client = client_for(fake_minimax, call_timeout=0.5, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(LlmError) as caught:
        await client.complete(MESSAGES)
    assert "no answer within" in str(caught.value)
    assert time.monotonic() - started < 2.5


async def test_retries_stop_at_the_callers_deadline(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(*[Reply(http_status=500) for _ in range(10)])
    client = client_for(fake_minimax, backoff=0.4, max_attempts=10)
    started = time.monotonic()
    with pytest.raises(LlmError):
        await client.complete(MESSAGES, deadline=time.monotonic() + 1.0)
    assert time.monotonic() - started < 1.5


async def test_an_answer_without_choices_is_an_error(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(content="x", no_choices=True), Reply(content="x", no_choices=True))
    with pytest.raises(LlmError, match="no choices"):
        await client_for(fake_minimax, max_attempts=2).complete(MESSAGES)


async def test_tool_calls_are_read(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(tool_calls=[("promql_instant", {"query": "up"})]))
    completion = await client_for(fake_minimax).complete(
        MESSAGES, tools=[{"type": "function", "function": {"name": "promql_instant", "parameters": {}}}]
    )
    assert [(call.name, json.loads(call.arguments)) for call in completion.tool_calls] == [
        ("promql_instant", {"query": "up"})
    ]
    assert completion.finish_reason == "tool_calls"
    assert fake_minimax.requests[0]["tools"][0]["function"]["name"] == "promql_instant"


async def test_usage_and_cost(fake_minimax: FakeMiniMax) -> None:
    completion = await client_for(fake_minimax).complete(MESSAGES)
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    client = client_for(fake_minimax, prices={"MiniMax-M2.7": {"input": 1.0, "output": 2.0}})
    assert client.cost(Usage(prompt_tokens=1_000_000, completion_tokens=500_000)) == pytest.approx(2.0)
    assert (
        client_for(fake_minimax, model="unpriced").cost(Usage(prompt_tokens=10)) == 0.0
    )  # local: on loopback
    assert client_for(fake_minimax, model="unpriced", local=False).cost(Usage(prompt_tokens=10)) is None
