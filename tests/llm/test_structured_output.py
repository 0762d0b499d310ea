"""What the client asks of each kind of endpoint: MiniMax's traits, and the strongest structured output a generic
OpenAI-compatible server accepts — found by trying, remembered, said once. Real openai SDK, fakes on loopback."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.config import ConfigError, load_settings
from aiops.llm.answer import answer_schema
from aiops.llm.client import LlmClient, LlmConfig, LlmError
from tests.conftest import DATA
from tests.fakes.compatible import KEY, FakeCompatible, formats_of, schema_of
from tests.fakes.minimax import KEY as MINIMAX_KEY
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.llm.conftest import GOOD
from tests.support.app import AUTH, TOKEN, running

MESSAGES = [{"role": "user", "content": "Why is web-1 down?"}]
SCHEMA = answer_schema(["E1", "E2"], ["journal-vacuum"])


@pytest.fixture
def compatible(request: pytest.FixtureRequest) -> Iterator[FakeCompatible]:
    fake = FakeCompatible(set(request.param)).start()
    fake.responder = lambda _request: Reply(content=json.dumps(GOOD))
    try:
        yield fake
    finally:
        fake.stop()


def generic(fake: FakeMiniMax, **overrides: Any) -> LlmClient:
    settings = {"api_key": KEY, "base_url": fake.base_url, "backoff": 0.05, "call_timeout": 5, **overrides}
    return LlmClient(LlmConfig.model_validate(settings))


@pytest.mark.parametrize(
    ("compatible", "chosen", "tried"),
    [
        (["json_schema", "json_object"], "json_schema", ["json_schema"]),
        (["json_object"], "json_object", ["json_schema", "json_object"]),
        ([], "none", ["json_schema", "json_object", None]),
    ],
    indirect=["compatible"],
    ids=["json_schema", "json_object only (llama-cpp-python)", "neither"],
)
async def test_auto_finds_the_strongest_structured_output_and_remembers_it(
    compatible: FakeCompatible, chosen: str, tried: list[str | None], caplog: pytest.LogCaptureFixture
) -> None:
    client = generic(compatible)
    with caplog.at_level(logging.WARNING, logger="aiops.llm"):
        first = await client.complete(MESSAGES, schema=SCHEMA)
        second = await client.complete(MESSAGES, schema=SCHEMA)
    assert json.loads(first.content) == GOOD == json.loads(second.content)
    assert client.structured_output == chosen
    assert formats_of(compatible) == [*tried, tried[-1]], "the second call goes straight to what worked"
    if chosen != "none":
        assert schema_of(compatible.requests[-1]) == SCHEMA
    refusals = [
        record.getMessage() for record in caplog.records if "refused structured output" in record.message
    ]
    assert len(refusals) == len(tried) - 1, "each step down is said once, never again"
    assert all(compatible.base_url in line for line in refusals)


@pytest.mark.parametrize("compatible", [["json_object"]], indirect=True)
async def test_an_explicit_mode_is_not_second_guessed(compatible: FakeCompatible) -> None:
    client = generic(compatible, structured_output="json_schema")
    with pytest.raises(LlmError) as caught:
        await client.complete(MESSAGES, schema=SCHEMA)
    assert "HTTP 500" in str(caught.value) and "llm.structured_output" in str(caught.value)
    assert formats_of(compatible) == ["json_schema"]
    assert client.structured_output == "json_schema"


@pytest.mark.parametrize("compatible", [["json_schema", "json_object"]], indirect=True)
async def test_a_generic_endpoint_gets_no_minimax_fields(compatible: FakeCompatible) -> None:
    client = generic(compatible, temperature=0)
    assert client.config.kind == "openai"
    completion = await client.complete(MESSAGES)  # no schema: a plain call (e.g. with tools)
    request = compatible.requests[0]
    assert "reasoning_split" not in request and "max_completion_tokens" not in request
    assert request["max_tokens"] == 4096 and request["temperature"] == 0
    assert "response_format" not in request
    assert completion.reasoning  # the <think> block is still taken out
    assert completion.usage.prompt_tokens > 0


async def test_minimax_keeps_prompted_json_and_reasoning_split(fake_minimax: FakeMiniMax) -> None:
    fake_minimax.script(Reply(content=json.dumps(GOOD), reasoning="df says 93%"))
    client = LlmClient(LlmConfig(api_key=MINIMAX_KEY, base_url=fake_minimax.base_url, provider="minimax"))
    completion = await client.complete(MESSAGES, schema=SCHEMA)
    request = fake_minimax.requests[0]
    assert "response_format" not in request, "M2 models ignore it; the prompt asks for the JSON"
    assert request["reasoning_split"] is True and request["max_completion_tokens"] == 4096
    assert (json.loads(completion.content), completion.reasoning) == (GOOD, "df says 93%")
    assert client.structured_output == "none"


@pytest.mark.parametrize(
    ("base_url", "kind"),
    [
        ("https://api.minimaxi.com/v1", "minimax"),
        ("https://api.minimax.io/v1", "minimax"),
        ("http://127.0.0.1:8080/v1", "openai"),
        ("http://ollama:11434/v1", "openai"),
        ("https://minimax.io.example.com/v1", "openai"),
    ],
)
def test_the_provider_is_inferred_from_the_base_url(base_url: str, kind: str) -> None:
    assert LlmConfig(base_url=base_url).kind == kind
    assert LlmConfig(base_url=base_url, provider="openai").kind == "openai"


def test_a_temperature_minimax_refuses_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "aiops.yml"
    config.write_text("llm:\n  temperature: 1.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert "llm.temperature" in str(caught.value) and "(0, 1]" in str(caught.value)
    local = load_settings(config, {"MINIMAX_BASE_URL": "http://127.0.0.1:8080/v1"})
    assert local.llm.temperature == 1.5  # a generic server takes 0 to 2


@pytest.mark.parametrize("compatible", [["json_object"]], indirect=True)
async def test_environment_variables_alone_give_a_model_diagnosis_from_a_local_server(
    compatible: FakeCompatible, tmp_path: Path, engine: AsyncEngine, database_url: str, runbooks: Path
) -> None:
    config = tmp_path / "aiops.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "webhook": {"token": TOKEN},
                "database": {"url": database_url},
                "runbooks": {"dir": str(runbooks)},
            }
        )
    )
    environ = {"MINIMAX_BASE_URL": compatible.base_url, "MINIMAX_API_KEY": KEY, "MINIMAX_MODEL": "smollm2"}
    settings = load_settings(config, environ)
    async with running(settings, engine) as (client, services):
        answer = await client.post(
            "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
        )
        triage = await services.pipeline.run(int(answer.json()["delivery"]))
    assert triage.diagnosis.source == "llm" and triage.diagnosis.summary == GOOD["summary"]
    assert formats_of(compatible) == ["json_schema", "json_object"]
    schema = schema_of(compatible.requests[-1])
    assert schema is not None
    assert schema["properties"]["actions"]["items"]["properties"]["id"]["enum"] == [
        "journal-vacuum",
        "restart-service",
    ], "a constrained model can only propose what the runbook allows"
    assert compatible.requests[-1]["model"] == "smollm2"


async def test_a_prompt_longer_than_the_context_is_not_taken_for_a_refused_format() -> None:
    # llama-cpp-python answers an overflowing prompt with HTTP 400, as it answers a format it cannot do: stepping
    # down would lose the schema for good and resend the same prompt twice more.
    fake = FakeCompatible({"json_schema", "json_object"}, context=5000).start()
    fake.responder = lambda _request: Reply(content=json.dumps(GOOD))
    try:
        client = generic(fake)
        with pytest.raises(LlmError) as caught:
            await client.complete([{"role": "user", "content": "x" * 4000}], schema=SCHEMA)
        assert "llm.prompt_budget" in str(caught.value) and "context" in str(caught.value)
        assert not caught.value.retryable and not caught.value.refused_format
        assert formats_of(fake) == ["json_schema"], "sent once, not retried, not stepped down"
        assert client.structured_output == "json_schema"
        completion = await client.complete(
            MESSAGES, schema=SCHEMA
        )  # a prompt that fits still gets the schema
        assert json.loads(completion.content) == GOOD and formats_of(fake)[-1] == "json_schema"
    finally:
        fake.stop()


@pytest.mark.parametrize("compatible", [["json_object"]], indirect=True)
async def test_a_seed_goes_to_a_generic_endpoint_and_not_to_minimax(compatible: FakeCompatible) -> None:
    """`llm.seed` makes a local model's sampling repeat; MiniMax documents no such parameter, so it is not sent
    there."""
    await generic(compatible, seed=42).complete(MESSAGES)
    await generic(compatible).complete(MESSAGES)
    await generic(compatible, seed=42, provider="minimax").complete(MESSAGES)
    assert [request.get("seed") for request in compatible.requests] == [42, None, None]
