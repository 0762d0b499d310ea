"""A real `aiops serve` killed between an incident's announcement and its diagnosis: after the restart the diagnosis
still arrives, and the card is edited once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.fakes.minimax import KEY, FakeMiniMax, Reply
from tests.llm.conftest import GOOD
from tests.support.service import AiopsProcess, wait_until

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
OPENED = "==== [warning] Host out of disk space (instance web-1:9100) ===="
EDITED = "==== [warning] Host out of disk space (instance web-1:9100) (updated) ===="
T = TypeVar("T")


def incident(aiops: AiopsProcess) -> dict[str, Any] | None:
    answer = httpx.get(f"{aiops.url}/api/v1/incidents/1", timeout=10)
    return None if answer.status_code == 404 else answer.json()  # type: ignore[no-any-return]


def sent(found: dict[str, Any] | None, purpose: str) -> list[dict[str, Any]]:
    notes = found["notifications"] if found else []
    return [note for note in notes if note["purpose"] == purpose and note["state"] == "sent"]


def test_a_kill_between_announcement_and_diagnosis_still_brings_the_diagnosis_once(tmp_path: Path) -> None:
    model = FakeMiniMax().start()
    model.responder = lambda request: Reply(content=json.dumps(GOOD))
    model.delay = 30.0  # the first call is still waiting when the process dies
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
        "server": {"language": "en"},
        "queue": {"lease": "3s", "poll_interval": "200ms"},
        "llm": {
            "api_key": KEY,
            "base_url": model.base_url,
            "provider": "minimax",
            "notify_within": "300ms",
            "call_timeout": "60s",
        },
    }
    aiops = AiopsProcess(tmp_path, config)
    try:
        aiops.start()
        answer = httpx.post(
            f"{aiops.url}/webhook/alertmanager",
            content=(DATA / "firing.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        wait_until(
            aiops, "the announcement, before the model answered", lambda: sent(incident(aiops), "opened"), 30
        )
        wait_until(aiops, "the model asked", lambda: model.calls, 30)
        aiops.kill()

        model.delay = 0.0
        aiops.start()
        found = wait_until(
            aiops,
            "the diagnosis after the restart",
            lambda: (f := incident(aiops)) and sent(f, "updated") and f,
            60,
        )
    finally:
        aiops.stop()
        model.stop()
    assert found["triages"][0]["diagnosis"]["source"] == "llm"
    assert len(sent(found, "opened")) == 1 and len(sent(found, "updated")) == 1
    printed = aiops.stdout()
    assert printed.count(OPENED) == 1 and printed.count(EDITED) == 1, printed
    assert "the model has not answered within 0.3s" in printed.split(EDITED)[0]
    assert GOOD["probable_cause"] in printed.split(EDITED)[1]
    assert model.calls == 2  # the call the kill cut short, and the diagnosis job's run after the restart
