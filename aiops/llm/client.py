"""The chat-completions client for MiniMax (or any OpenAI-compatible endpoint), on the `openai` SDK.

The endpoint's kind (`llm.provider`, inferred from the base URL when unset) says what it can do: MiniMax ignores
`response_format` (the answer's JSON is asked for in the prompt), takes `reasoning_split` and
`max_completion_tokens`, and a temperature in (0, 1]; a generic OpenAI-compatible server (llama.cpp, vLLM,
Ollama, …) gets `max_tokens`, no MiniMax fields, and — with `llm.structured_output: auto` — the strongest
structured output it accepts: `json_schema`, else `json_object` with the schema beside it (llama-cpp-python
turns it into a grammar), else the prompt alone. A refusal (HTTP 400 or 422, or a 500 that names the
response format, as llama-cpp-python answers) moves down one step at once; the step reached is kept for the
endpoint and logged once. Every answer is validated anyway: some servers ignore what they do not support.

What MiniMax does differently from OpenAI, and what this module does about it:
- reasoning comes inside `<think>…</think>` in `content`, or in `reasoning_details` with `reasoning_split`:
  both are taken out of the answer and kept, because a tool-using conversation must send them back;
- temperature must lie in (0, 1] (checked by the config model);
- an error can arrive as HTTP 200 with `base_resp.status_code != 0` and no choices: turned into `LlmError`;
- rate limits (HTTP 429, or `base_resp` 1002) pause every call of the process together (aiops/llm/pacing.py) and
  are retried within the caller's deadline, without counting as failed attempts; transient errors are retried with
  exponential backoff and full jitter; the SDK's own retries are off so that one policy applies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from aiops.llm.pacing import Pacer
from aiops.llm.tokens import estimate
from aiops.proxy import Proxied, http_client
from aiops.units import Seconds

log = logging.getLogger("aiops.llm")

# base_resp codes worth another try (MiniMax's error table): unknown, timeout, rate limit, internal error.
RETRYABLE_CODES = frozenset({1000, 1001, 1002, 1024})
RATE_LIMITED_CODE = 1002
THROTTLED_TRIES = 30  # without a deadline, how often a throttled call waits and tries again
_CODE_HINTS = {
    1004: "the API key is not valid for this endpoint (check MINIMAX_API_KEY and that MINIMAX_BASE_URL is the "
    "region of the account: api.minimaxi.com for mainland China, api.minimax.io elsewhere)",
    1008: "the account's balance is insufficient",
    1028: "the plan's quota is exhausted",
    1030: "the plan's quota is exhausted",
    2013: "the request's parameters were refused",
    2061: "the model is not in the account's plan (check MINIMAX_MODEL)",
}
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)\s*", re.S)
_FORMAT_REFUSAL = re.compile(r"response_format|json_schema|json_object|schema|grammar", re.I)
# How servers say the prompt does not fit the model's context (OpenAI, vLLM and llama-cpp-python:
# context_length_exceeded / "maximum context length"; llama-server: exceed_context_size_error).
_CONTEXT_OVERFLOW = re.compile(
    r"context.length|maximum context|context (?:size|window)|exceed_context|too many tokens|input is too long",
    re.I,
)

Provider = Literal["minimax", "openai"]
Structured = Literal["none", "json_object", "json_schema"]
STRUCTURED_OUTPUT = ("auto", "none", "json_object", "json_schema")
# Hosts of MiniMax's API (mainland China and international); anything else is a generic OpenAI-compatible server.
MINIMAX_HOSTS = ("minimaxi.com", "minimax.io", "minimaxi.chat", "minimax.chat")


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


# Pay-as-you-go list prices at the time of writing; override them under `llm.prices` when they change.
DEFAULT_PRICES = {
    "MiniMax-M2.7": Price(input=0.30, output=1.20, cached_input=0.06),
    "MiniMax-M2.7-highspeed": Price(input=0.60, output=2.40, cached_input=0.06),
    "MiniMax-M2.5": Price(input=0.30, output=1.20, cached_input=0.03),
    "MiniMax-M2.1": Price(input=0.30, output=1.20, cached_input=0.03),
    "MiniMax-M2": Price(input=0.30, output=1.20, cached_input=0.03),
}
FREE = Price(input=0, output=0)
# Names that public DNS never answers (RFC 6761, RFC 6762, RFC 8375, ICANN's `.internal`): `host.docker.internal`,
# a Kubernetes service's `*.svc.cluster.local`, a host on the office network.
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


def is_local_endpoint(base_url: str) -> bool:
    """Whether `base_url` is on the operator's own machines: a loopback or private address (RFC 1918, unique local,
    link-local), or a name public DNS does not serve — `localhost`, a single label (a compose service such as
    `ollama`), one of `_PRIVATE_SUFFIXES`. The host is not resolved: where a name points says nothing certain about
    who bills it."""
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(_PRIVATE_SUFFIXES)
    return address.is_loopback or address.is_private


class LlmConfig(Proxied):
    """The `llm` section. Without an API key, diagnoses are offline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = None
    base_url: str = "https://api.minimaxi.com/v1"
    model: str = "MiniMax-M2.7"
    # minimax or openai (any OpenAI-compatible server); unset: minimax for MiniMax's hosts, else openai.
    provider: Provider | None = None
    # How the answer's JSON is asked for: auto tries the strongest the endpoint accepts (see the module's doc).
    structured_output: Literal["auto", "none", "json_object", "json_schema"] = "auto"
    language: str | None = None  # the diagnosis's language; server.language when unset
    # (0, 1] for MiniMax, [0, 2] elsewhere.
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.3
    # Sent with each call to an OpenAI-compatible server (llama.cpp, vLLM, Ollama read it; MiniMax has none): a
    # prompt is then answered the same way whatever the server was asked before, as a reproducible run needs.
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Move reasoning out of `content` (MiniMax M2 and later); unset: on for MiniMax, off elsewhere.
    reasoning_split: bool | None = None
    # Reasoning tokens count toward this cap, so it is larger than the JSON answer needs.
    max_completion_tokens: int = Field(default=4096, ge=256, le=200_000)
    prompt_budget: int = Field(default=8000, ge=1000, le=200_000)  # estimated tokens for the first prompt
    incident_token_budget: int = Field(default=60_000, ge=1000)  # all calls of one diagnosis together
    call_timeout: Seconds = 60.0
    # The first notification waits at most this long for the incident's own diagnosis, then goes out marked
    # "diagnosis pending" and is edited when the diagnosis lands; it never waits for another incident's model call.
    notify_within: Seconds = 10.0
    incident_deadline: Seconds = 180.0
    # Diagnoses running at once (their own workers, apart from queue.workers), and the provider's limits
    # (MiniMax's paid plans allow 500 requests per minute); unset limits are not paced, only backed off on 429.
    concurrency: int = Field(default=8, ge=1, le=64)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1000)
    max_attempts: int = Field(default=4, ge=1, le=10)
    backoff: Seconds = 1.0
    investigate: bool = False
    max_steps: int = Field(default=8, ge=1, le=30)
    tool_output_cap: int = Field(default=4000, ge=200, le=100_000)  # characters of one tool result
    prices: dict[str, Price] = Field(default_factory=dict)
    # A model served on the operator's own machines (llama.cpp, vLLM, Ollama) costs nothing. Unset: inferred from
    # base_url (`is_local_endpoint`) unless `prices` names the model — a gateway on loopback to a paid API.
    local: bool | None = None

    @field_validator("temperature")
    @classmethod
    def _minimax_temperature(cls, value: float, info: ValidationInfo) -> float:
        kind = info.data.get("provider") or provider_of(info.data.get("base_url", ""))
        if kind == "minimax" and not 0 < value <= 1:
            raise ValueError(f"MiniMax accepts a temperature in (0, 1], not {value:g}")
        return value

    @property
    def enabled(self) -> bool:
        return self.api_key is not None

    @property
    def kind(self) -> Provider:
        """The endpoint's kind: `provider`, or what the base URL's host says."""
        return self.provider or provider_of(self.base_url)

    @property
    def splits_reasoning(self) -> bool:
        return self.kind == "minimax" if self.reasoning_split is None else self.reasoning_split

    def structured_modes(self) -> tuple[Structured, ...]:
        """The structured-output modes to try, strongest first; an explicit one alone."""
        if self.structured_output != "auto":
            return (self.structured_output,)
        if self.kind == "minimax":
            return ("none",)  # M2 models ignore response_format; the prompt asks for the JSON
        return ("json_schema", "json_object", "none")

    @property
    def is_local(self) -> bool:
        """Whether the model costs nothing: `local` when set, else inferred from the endpoint."""
        if self.local is not None:
            return self.local
        return self.model not in self.prices and is_local_endpoint(self.base_url)

    def price(self) -> Price | None:
        """USD per million tokens of `model`: zero for a local model, else `prices`, else the built-in list price
        (MiniMax's, for its own API); None when nobody priced the model."""
        if self.is_local:
            return FREE
        return self.prices.get(self.model) or DEFAULT_PRICES.get(self.model)


def provider_of(base_url: str) -> Provider:
    """minimax for MiniMax's hosts, openai (an OpenAI-compatible server) for any other."""
    host = (urlsplit(base_url).hostname or "").lower()
    return "minimax" if any(host == name or host.endswith("." + name) for name in MINIMAX_HOSTS) else "openai"


class LlmError(Exception):
    """A call that produced no usable answer; `retryable` says whether trying again later could help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        throttled: bool = False,
        refused_format: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.throttled = throttled  # the provider said "too many requests": every call slows down
        self.refused_format = refused_format  # the request may have been refused for its response_format


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """One answer: the text without reasoning, the reasoning apart, tool calls, usage, and the assistant message
    to send back verbatim in a multi-turn conversation."""

    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str | None
    message: Mapping[str, Any] = field(default_factory=dict)


class LlmClient:
    """Chat completions with MiniMax's traits handled; built in the application's lifespan."""

    def __init__(
        self,
        config: LlmConfig,
        sdk: AsyncOpenAI | None = None,
        on_throttle: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        key = config.api_key.get_secret_value() if config.api_key else "unset"
        self._sdk = sdk or AsyncOpenAI(
            api_key=key,
            base_url=config.base_url,
            timeout=config.call_timeout,
            max_retries=0,
            # An httpx client, the transport every outbound section shares (aiops/proxy.py): through llm.proxy
            # when it is set, never through a proxy named only in the environment. openai 3 takes one as well as
            # its own httpx2 client (`is_legacy_httpx_async_client`), though its type hints name only httpx2.
            http_client=cast(Any, http_client(config, "llm.proxy", follow_redirects=True)),
        )
        self.pacer = Pacer(config.rpm, config.tpm, config.backoff)
        self._on_throttle = on_throttle  # called with the pause, for the metrics
        self._modes = config.structured_modes()  # what is left to try; the first is in use

    @property
    def structured_output(self) -> Structured:
        """The structured-output mode in use for this endpoint (after any refusal)."""
        return self._modes[0]

    async def close(self) -> None:
        await self._sdk.close()

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        deadline: float | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One completion, retried on rate limits and transient errors until `deadline` (monotonic seconds).
        With `schema` (and no tools) the answer is asked for as JSON of that schema, as the endpoint allows."""
        attempt = throttled = 0
        tokens = sum(estimate(str(message.get("content") or "")) for message in messages)
        said = "the provider is pausing calls"
        while True:
            if deadline is not None and time.monotonic() + self.pacer.paused_for >= deadline:
                raise LlmError(
                    f"{said}; the rate limit outlasts the deadline", retryable=True, throttled=True
                )
            slot = await self.pacer.acquire(tokens + self.config.max_completion_tokens // 4)
            structured = schema if schema is not None and not tools else None
            try:
                completion = await self._once(messages, tools, deadline, structured)
            except LlmError as error:
                if structured is not None and error.refused_format and self._step_down(error):
                    continue  # the endpoint cannot do this mode: the next one, at once
                if error.throttled and (deadline is not None or throttled < THROTTLED_TRIES):
                    throttled += 1
                    said = str(error)
                    paused = self.pacer.throttled(error.retry_after)
                    if self._on_throttle is not None:
                        self._on_throttle(paused)
                    continue  # waiting out the shared pause is not a failed attempt
                attempt += 1
                pause = self._pause(error, attempt, deadline)
                if pause is None:
                    raise
                await asyncio.sleep(pause)
                continue
            usage = completion.usage
            self.pacer.settle(slot, usage.prompt_tokens + usage.completion_tokens)
            return completion

    def _step_down(self, error: LlmError) -> bool:
        """After a refusal of the mode in use: move to the next one, logging it once; False if none is left."""
        if len(self._modes) < 2:
            return False
        refused, self._modes = self._modes[0], self._modes[1:]
        log.warning(
            "the model endpoint %s refused structured output %s (%s); using %s from now on",
            self.config.base_url,
            refused,
            error,
            "prompted JSON" if self._modes[0] == "none" else self._modes[0],
        )
        return True

    def _pause(self, error: LlmError, attempt: int, deadline: float | None) -> float | None:
        """How long to wait before the next attempt, or None to give up."""
        if not error.retryable or attempt >= self.config.max_attempts:
            return None
        # Full jitter: replicas that were throttled together do not come back together.
        pause = error.retry_after or random.uniform(0, self.config.backoff * 2 ** (attempt - 1))
        if deadline is not None and time.monotonic() + pause >= deadline:
            return None
        return pause

    async def _once(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        deadline: float | None,
        schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        timeout = self.config.call_timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise LlmError("no time left before the diagnosis deadline", retryable=False)
        try:
            async with asyncio.timeout(timeout):
                response = await self._sdk.chat.completions.create(**self._request(messages, tools, schema))
        except TimeoutError:
            raise LlmError(f"no answer within {timeout:.0f}s", retryable=True) from None
        except openai.APIError as error:
            raise _sdk_error(
                error, structured=schema is not None and self.structured_output != "none"
            ) from None
        return _completion(response)

    def _request(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        schema: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        config = self.config
        # MiniMax deprecates max_tokens; llama.cpp, vLLM and Ollama all read it (llama-cpp-python only it).
        limit = "max_completion_tokens" if config.kind == "minimax" else "max_tokens"
        request: dict[str, Any] = {
            "model": config.model,
            "messages": list(messages),
            "temperature": config.temperature,
            limit: config.max_completion_tokens,
        }
        if tools:
            request["tools"] = list(tools)
        if config.seed is not None and config.kind != "minimax":
            request["seed"] = config.seed
        if config.splits_reasoning:
            request["extra_body"] = {"reasoning_split": True}
        mode = self.structured_output
        if schema is not None and mode == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "diagnosis", "schema": dict(schema), "strict": False},
            }
        elif schema is not None and mode == "json_object":
            # `schema` beside the type is llama-cpp-python's (a grammar); other servers ignore it.
            request["response_format"] = {"type": "json_object", "schema": dict(schema)}
        return request

    def cost(self, usage: Usage) -> float | None:
        """Estimated USD for one call from the model's price (`LlmConfig.price`); None when it has none."""
        price = self.config.price()
        if price is None:
            return None
        cached = min(usage.cached_tokens, usage.prompt_tokens) if price.cached_input is not None else 0
        fresh = usage.prompt_tokens - cached
        total = (
            fresh * price.input + cached * (price.cached_input or 0) + usage.completion_tokens * price.output
        )
        return total / 1_000_000


def _sdk_error(error: openai.APIError, *, structured: bool = False) -> LlmError:
    if isinstance(error, openai.APITimeoutError):
        return LlmError("the request timed out", retryable=True)
    if isinstance(error, openai.APIConnectionError):
        return LlmError(f"cannot reach the endpoint ({error.__cause__ or error})", retryable=True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = _error_text(error.body) or error.message
        retryable = status in (408, 409, 429) or status >= 500
        hint = " (check MINIMAX_API_KEY)" if status in (401, 403) else ""
        if status in (400, 413, 422) and _CONTEXT_OVERFLOW.search(f"{detail} {error.body}"):
            # Not the response format's fault, and the same prompt would not fit again.
            hint = " (the prompt does not fit the model's context: lower llm.prompt_budget or give the server more)"
            return LlmError(f"HTTP {status}: {detail}{hint}", retryable=False)
        # A server that cannot do a response format says 400 or 422; llama-cpp-python says 500 and names it.
        refused = structured and (
            status in (400, 422) or (status == 500 and bool(_FORMAT_REFUSAL.search(detail)))
        )
        if refused:
            hint += " (the endpoint may not support llm.structured_output; try auto or none)"
        return LlmError(
            f"HTTP {status}: {detail}{hint}",
            retryable=retryable and not refused,  # the same request would be refused again
            retry_after=_retry_after(error.response),
            throttled=status == 429 or _base_code(error.body) == RATE_LIMITED_CODE,
            refused_format=refused,
        )
    return LlmError(str(error), retryable=False)


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def _base_code(body: object) -> int:
    base = body.get("base_resp") if isinstance(body, dict) else None
    return int(base.get("status_code") or 0) if isinstance(base, dict) else 0


def _error_text(body: object) -> str:
    if isinstance(body, dict):
        base = body.get("base_resp")
        if isinstance(base, dict) and base.get("status_msg"):
            return f"{base.get('status_code')} {base.get('status_msg')}"
        inner = body.get("error")
        if isinstance(inner, dict):
            return str(inner.get("message", ""))[:300]
        return str(body.get("message", ""))[:300]
    return ""


def _completion(response: Any) -> Completion:
    extra = getattr(response, "model_extra", None) or {}
    _raise_for_base_resp(extra.get("base_resp"))
    if not response.choices:
        raise LlmError("the answer had no choices", retryable=True)
    choice = response.choices[0]
    message = choice.message
    raw = message.content or ""
    details = (getattr(message, "model_extra", None) or {}).get("reasoning_details")
    reasoning = _reasoning_text(details) + "".join(re.findall(r"<think>(.*?)(?:</think>|\Z)", raw, re.S))
    calls = tuple(
        ToolCall(call.id, call.function.name, call.function.arguments or "{}")
        for call in message.tool_calls or ()
        if call.type == "function"
    )
    return Completion(
        content=_THINK.sub("", raw).strip(),
        reasoning=reasoning.strip(),
        tool_calls=calls,
        usage=_usage(response.usage),
        finish_reason=choice.finish_reason,
        message=message.model_dump(exclude_none=True),
    )


def _raise_for_base_resp(base: object) -> None:
    if not isinstance(base, dict):
        return
    code = int(base.get("status_code") or 0)
    if code == 0:
        return
    message = str(base.get("status_msg") or "")[:300]
    hint = _CODE_HINTS.get(code)
    raise LlmError(
        f"MiniMax error {code}: {message}" + (f" — {hint}" if hint else ""),
        retryable=code in RETRYABLE_CODES,
        throttled=code == RATE_LIMITED_CODE,
    )


def _reasoning_text(details: object) -> str:
    if not isinstance(details, list):
        return ""
    return "\n".join(str(item.get("text", "")) for item in details if isinstance(item, dict))


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
    )
