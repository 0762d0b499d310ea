"""A fake generic OpenAI-compatible server on loopback (a local llama.cpp, vLLM or Ollama), not MiniMax.

What sets it apart from the MiniMax fake: errors are OpenAI-shaped HTTP errors (no `base_resp`), the
temperature may be 0 to 2, reasoning stays in `<think>` blocks (there is no `reasoning_split`), and what it
does with `response_format` is chosen per test, as the servers of protocols §9 differ:
- `formats={"json_schema", "json_object"}`: both accepted (vLLM, Ollama, newer llama-server);
- `formats={"json_object"}`: `json_schema` refused with HTTP 500 naming it, as llama-cpp-python's server does;
- `formats=set()`: any `response_format` refused with HTTP 400, as a strict server does.
With `context=N`, a request whose messages come to more than about N tokens (4 characters each) is refused with
HTTP 400 as llama-cpp-python's server refuses it (`context_length_exceeded`), whatever its format.
When the request asks for a format it accepts, the reply is the scripted content without a `<think>` block.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.minimax import FakeMiniMax, Reply

KEY = "local-model-key"


class FakeCompatible(FakeMiniMax):
    def __init__(self, formats: set[str], key: str = KEY, context: int | None = None) -> None:
        super().__init__(key=key)
        self.formats = formats
        self.context = context

    def answer(
        self, request: dict[str, Any], authorization: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if authorization != f"Bearer {self.key}":
            return 401, {}, _error(401, "invalid api key", "authentication_error")
        if not 0 <= float(request.get("temperature", 1.0)) <= 2:
            return 400, {}, _error(400, "temperature must be between 0 and 2", "invalid_request_error")
        prompt = len(json.dumps(request.get("messages", []))) // 4
        completion = int(request.get("max_tokens") or 0)
        if self.context is not None and prompt + completion > self.context:
            message = (
                f"This model's maximum context length is {self.context} tokens. However, you requested"
                f" {prompt + completion} tokens ({prompt} in the messages, {completion} in the completion)."
                " Please reduce the length of the messages or completion."
            )
            body = _error(400, message, "invalid_request_error")
            body["error"]["code"] = "context_length_exceeded"
            return 400, {}, body
        kind = (request.get("response_format") or {}).get("type")
        if kind == "json_schema" and "json_schema" not in self.formats and "json_object" in self.formats:
            message = "1 validation error: response_format.type Input should be 'text' or 'json_object'"
            return 500, {}, _error(500, message, "internal_server_error")
        if kind in ("json_schema", "json_object") and kind not in self.formats:
            return 400, {}, _error(400, f"response_format {kind} is not supported", "invalid_request_error")
        # MiniMax's own checks (its temperature range, its errors) do not apply here.
        status, headers, body = super().answer({**request, "temperature": 1.0}, f"Bearer {self.key}")
        body.pop("base_resp", None)
        return status, headers, body

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        body = super()._completion({**request, "reasoning_split": False}, reply)
        message = body["choices"][0]["message"] if body["choices"] else {}
        message.pop("name", None)
        if request.get("response_format") and message:
            message["content"] = reply.content  # a constrained answer has no <think> block
        return body


def _error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "type": kind}}


def schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request constrained its answer to, in either response format."""
    form = request.get("response_format") or {}
    if form.get("type") == "json_schema":
        schema: dict[str, Any] = form["json_schema"]["schema"]
        return schema
    if form.get("type") == "json_object":
        return form.get("schema")
    return None


def formats_of(fake: FakeMiniMax) -> list[str | None]:
    """The response format type of each request the fake received, in order."""
    return [(request.get("response_format") or {}).get("type") for request in fake.requests]
