"""A real Prometheus scrapes a gauge, fires a rule, and a real Alertmanager delivers it to a real `aiops serve`.

What a unit test cannot show: Alertmanager's actual payload and credentials, Prometheus's actual generatorURL,
and the alert's own metric coming back from the real Prometheus as evidence.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiops.i18n import english
from tests.fakes.minimax import KEY, FakeMiniMax, Reply
from tests.support import stack as s
from tests.support.binaries import require
from tests.support.e2e import ALERT, DEADLINE, EXPRESSION, GAUGE, TOKEN, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def test_alert_fires_is_triaged_with_its_own_metric_and_resolves(start_stack: Callable[..., Stack]) -> None:
    stack = start_stack(TOKEN)

    listed = s.eventually(
        stack.incidents, timeout=DEADLINE, what="an incident at /api/v1/incidents", logs=stack.logs
    )
    assert len(listed) == 1, f"{listed}\n{stack.logs()}"
    incident_id = listed[0]["id"]

    def triaged() -> dict[str, Any] | None:
        detail = stack.incident(incident_id)
        return detail if detail["triages"] else None

    detail = s.eventually(
        triaged, timeout=DEADLINE, what=f"a triage of incident {incident_id}", logs=stack.logs
    )
    assert [alert["name"] for alert in detail["alerts"]] == [ALERT], f"{detail}\n{stack.logs()}"
    assert detail["alerts"][0]["labels"]["severity"] == "warning"
    assert detail["alerts"][0]["annotations"]["summary"] == "the e2e toggle is on"
    assert detail["status"] == "open"

    evidence = detail["triages"][0]["evidence"]
    from_prometheus = [
        item for item in evidence if item["source"] == "prometheus" and item["query"] == EXPRESSION
    ]
    assert from_prometheus, f"no Prometheus evidence for {EXPRESSION!r}: {evidence}\n{stack.logs()}"
    item = from_prometheus[0]
    assert item["error"] is None, f"{item}\n{stack.logs()}"
    assert item["series"], f"the alert's own expression returned no series: {item}\n{stack.logs()}"
    assert max(series["max"] for series in item["series"]) == 1, f"{item}\n{stack.logs()}"
    assert item["series"][0]["labels"]["instance"] == stack.exporter.target

    stack.exporter.value = 0

    def resolved() -> dict[str, Any] | None:
        found = stack.incident(incident_id)
        return found if found["status"] == "resolved" else None

    detail = s.eventually(
        resolved, timeout=DEADLINE, what=f"incident {incident_id} resolved", logs=stack.logs
    )
    assert detail["resolved_at"] is not None

    def resolved_notification() -> list[dict[str, Any]]:
        notes = stack.incident(incident_id)["notifications"]
        return [note for note in notes if note["purpose"] == "resolved"]

    notes = s.eventually(
        resolved_notification, timeout=DEADLINE, what="a notification with purpose resolved", logs=stack.logs
    )
    assert notes[0]["state"] == "sent", f"{notes}\n{stack.logs()}"
    assert [item["id"] for item in stack.incidents()] == [incident_id], stack.logs()
    assert stack.aiops_metric("aiops_webhook_requests_total", code="200") >= 2
    assert stack.aiops_metric("aiops_webhook_requests_total", code="401") == 0


def test_wrong_token_is_refused_and_nothing_is_stored(start_stack: Callable[..., Stack]) -> None:
    wrong = "wrong-" + secrets.token_hex(16)
    assert wrong != TOKEN
    stack = start_stack(wrong)

    s.eventually(
        lambda: stack.aiops_metric("aiops_webhook_requests_total", code="401") > 0,
        timeout=DEADLINE,
        what='aiops_webhook_requests_total{code="401"} > 0',
        logs=stack.logs,
    )
    s.eventually(
        lambda: (
            stack.alertmanager_metric("alertmanager_notifications_failed_total", integration="webhook") > 0
        ),
        timeout=DEADLINE,
        what='alertmanager_notifications_failed_total{integration="webhook"} > 0',
        logs=stack.logs,
    )
    assert stack.incidents() == [], stack.logs()
    assert stack.aiops_metric("aiops_webhook_requests_total", code="200") == 0, stack.logs()
    queue = stack.api("/readyz")["queue"]
    assert queue["pending"] == queue["running"] == queue["failed"] == 0, f"{queue}\n{stack.logs()}"


RUNBOOK = f"""---
title: The e2e toggle is on
alerts: [{ALERT}]
evidence:
  metrics:
    - name: toggle_by_instance
      query: 'max by (instance) ({GAUGE}{{instance="{{{{ labels.instance }}}}"}})'
      range: 5m
actions: [flip-toggle]
---
# What to do
- Flip the toggle back.
"""
CATALOG = """
flip-toggle:
  description: Set the toggle to zero
  argv: [toggle, "0"]
  target: labels.instance
  risk: low
  timeout: 10s
"""


def _committed_runbooks(folder: Path) -> str:
    folder.mkdir()
    (folder / f"{ALERT}.md").write_text(RUNBOOK)
    (folder / "actions.yml").write_text(CATALOG)
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-C", str(folder)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "runbooks"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_runbooks_queries_run_and_the_models_diagnosis_is_announced(
    start_stack: Callable[..., Stack], fake_minimax: FakeMiniMax, tmp_path: Path
) -> None:
    require("git")
    commit = _committed_runbooks(tmp_path / "runbooks")
    answer = {
        "summary": "The e2e toggle was switched on.",
        "probable_cause": "Someone set aiops_e2e_toggle to 1 on the exporter.",
        "confidence": "high",
        "evidence": ["E1", "E2"],
        "impact": "none",
        "next_steps": ["Flip it back"],
        "actions": [
            {"id": "flip-toggle", "reason": "the runbook says so"},
            {"id": "rm-rf", "reason": "why not"},
        ],
    }
    fake_minimax.responder = lambda request: Reply(content=json.dumps(answer))
    stack = start_stack(
        TOKEN,
        llm={"api_key": KEY, "base_url": fake_minimax.base_url, "provider": "minimax", "language": "en"},
        runbooks={"dir": str(tmp_path / "runbooks")},
        server={"language": "en"},
    )
    [listed] = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=stack.logs)

    def diagnosed() -> dict[str, Any] | None:
        detail = stack.incident(listed["id"])
        triages = [t for t in detail["triages"] if t["diagnosis"]["source"] == "llm"]
        return triages[0] if triages else None

    triage = s.eventually(diagnosed, timeout=DEADLINE, what="a diagnosis by the model", logs=stack.logs)
    assert triage["runbook"]["path"] == f"{ALERT}.md" and triage["runbook"]["commit"] == commit
    [from_runbook] = [
        item for item in triage["evidence"] if english(item["title"]).endswith("toggle_by_instance")
    ]
    assert from_runbook["error"] is None and from_runbook["series"], f"{from_runbook}\n{stack.logs()}"
    assert from_runbook["series"][0]["labels"] == {"instance": stack.exporter.target}
    diagnosis = triage["diagnosis"]
    assert diagnosis["probable_cause"] == answer["probable_cause"]
    assert [action["action_id"] for action in diagnosis["actions"]] == ["flip-toggle"]
    dropped = [english(item) for item in diagnosis["dropped_actions"]]
    assert dropped == [f"rm-rf: not an action the runbook allows ({ALERT}.md)"]
    prompt = fake_minimax.requests[0]["messages"][-1]["content"]
    assert f'max by (instance) ({GAUGE}{{instance="{stack.exporter.target}"}})' in prompt
    printed = s.eventually(
        lambda: stack.aiops.stdout() if answer["probable_cause"] in stack.aiops.stdout() else None,
        timeout=DEADLINE,
        what="the diagnosis printed by the console channel",
        logs=stack.logs,
    )
    assert f"{ALERT}.md @ {commit[:12]}" in printed
    assert stack.aiops_metric("aiops_llm_tokens_total", kind="prompt") > 0
