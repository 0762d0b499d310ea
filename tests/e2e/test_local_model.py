"""A real Prometheus fires, a real Alertmanager delivers to a real `aiops serve`, and the incident's diagnosis comes
from a real local model: llama-cpp-python's server with SmolLM2-135M, reached with environment variables alone.

What the in-process evaluation cannot show: that `aiops serve`'s own diagnosis workers, configured only by
`MINIMAX_BASE_URL`, `MINIMAX_API_KEY` and `MINIMAX_MODEL`, get a schema-valid answer from an OpenAI-compatible
server that is not MiniMax, and store it with the server's token counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import stack as s
from tests.support.e2e import ACTION, DEADLINE, TOKEN, Stack, marker_runbooks
from tests.support.local_model import FIGURES, LOCAL_LLM, LocalModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

DIAGNOSIS_DEADLINE = 300.0  # seconds: one or two calls of a 135M model on a busy two-core machine


def test_an_alert_from_alertmanager_gets_a_diagnosis_from_the_local_model(
    start_stack: Callable[..., Stack], local_model: LocalModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runbooks = marker_runbooks(tmp_path / "runbooks", tmp_path / "marker")
    stack = start_stack(
        TOKEN, environ=local_model.environment(), runbooks={"dir": str(runbooks)}, llm=dict(LOCAL_LLM)
    )

    def logs() -> str:
        return f"{stack.logs()}\n--- local model ---\n{local_model.log()}"

    listed = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=logs)
    incident_id = listed[0]["id"]
    opened = time.monotonic()

    def diagnosed() -> dict[str, Any] | None:
        triages = stack.incident(incident_id)["triages"]
        diagnosis = triages[0]["diagnosis"] if triages else None
        return diagnosis if diagnosis and diagnosis["usage"] else None

    diagnosis = s.eventually(
        diagnosed, timeout=DIAGNOSIS_DEADLINE, what="the model's diagnosis of the incident", logs=logs
    )
    request.config.stash.setdefault(FIGURES, []).append(
        f"aiops serve against {local_model.model}: {diagnosis['source']} diagnosis "
        f"{time.monotonic() - opened:.1f} s after the incident opened, usage {diagnosis['usage']}"
    )
    assert diagnosis["source"] == "llm", f"{diagnosis}\n{logs()}"
    assert diagnosis["summary"] and diagnosis["confidence"] in ("low", "medium", "high")
    assert {action["action_id"] for action in diagnosis["actions"]} <= {ACTION}
    usage = diagnosis["usage"]
    assert usage["model"] == local_model.model
    assert usage["calls"] >= 1 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
