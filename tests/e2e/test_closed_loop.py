"""The closed loop with real parts: a real Prometheus rule fires on what a real node_exporter's textfile collector
exports; a real Alertmanager delivers to `aiops serve` in `auto` mode, which runs the runbook's `low` fix over a real
sshd — it rewrites the file — and then watches: the rule stops firing, Alertmanager sends the resolution, and the
card on the fake Feishu and the incident's page say "recovered N s after restore-state".

A fix that changes nothing is watched to the end of its window, escalated once (the card edited with the
escalation's @mentions), and never run again by itself — not even when the incident fires again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.feishu import SECRET, FakeFeishu, card_problems
from tests.support import stack as s
from tests.support.binaries import free_port
from tests.support.e2e import DEADLINE, HOST, TOKEN, Stack
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

METRIC = "aiops_e2e_broken"
ALERT = "AiopsE2EBroken"
FIX = "restore-state"
NOOP = "touch-marker"
ONCALL = "ou_oncall_lead"
RULES = [
    {
        "alert": ALERT,
        "expr": f"{METRIC} > 0",
        "for": "0s",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "the e2e state file says broken"},
    }
]


@pytest.fixture
def feishu(fake_feishu: FakeFeishu) -> FakeFeishu:
    return fake_feishu


class Host:
    """The monitored host: node_exporter exporting `state.prom` from its textfile folder."""

    def __init__(self, root: Path) -> None:
        self.textfile = root / "textfile"
        self.textfile.mkdir(parents=True)
        self.state = self.textfile / "state.prom"
        self.healthy = root / "healthy.prom"
        self.healthy.write_text(f"{METRIC} 0\n")
        self.marker = root / "touched"
        self.set("0")
        self.port = free_port()
        self.exporter = s.node_exporter(root / "node_exporter", port=self.port, textfile=self.textfile)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, *values: str) -> None:
        """Write the state file atomically: one series per value (`part` labels after the first)."""
        lines = [f"{METRIC} {values[0]}"] + [
            f'{METRIC}{{part="p{n}"}} {v}' for n, v in enumerate(values[1:], 1)
        ]
        scratch = self.state.with_suffix(".tmp")
        scratch.write_text("\n".join(lines) + "\n")
        scratch.rename(self.state)


def runbooks(folder: Path, host: Host, window: str) -> Path:
    folder.mkdir()
    (folder / f"{ALERT}.md").write_text(
        f"---\nalerts: [{ALERT}]\nactions: [{FIX}]\n---\n# Remediation\n- restore the state file\n"
    )
    (folder / "actions.yml").write_text(
        f"{FIX}:\n  description: Put the healthy state file back\n"
        f"  argv: [cp, {host.healthy}, {host.state}]\n"
        f"  target: labels.instance\n  risk: low\n  timeout: 20s\n  verify: {{window: {window}}}\n"
        f"{NOOP}:\n  description: Touch a marker (changes nothing the alert watches)\n"
        f"  argv: [touch, {host.marker}]\n"
        f"  target: labels.instance\n  risk: low\n  timeout: 20s\n  verify: {{window: {window}}}\n"
    )
    return folder


def sections(feishu: FakeFeishu, sshd: SshServer, folder: Path) -> dict[str, Any]:
    return {
        "channels": {
            "feishu": {
                "app_id": feishu.app_id,
                "app_secret": SECRET,
                "chat_id": feishu.chat_id,
                "domain": feishu.url,
            }
        },
        "runbooks": {"dir": str(folder)},
        "hosts": {HOST: sshd.host().model_dump(mode="json")},
        "remediation": {
            "mode": "auto",
            "verify_every": "1s",
            "escalation": {"critical": {"feishu": [ONCALL]}},
        },
        "server": {"language": "en"},
    }


def texts(value: Any) -> str:
    """Everything a card shows as text."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("tag") in ("markdown", "plain_text") and isinstance(node.get("content"), str):
                found.append(node["content"])
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    return "\n".join(found)


def first_card(feishu: FakeFeishu) -> tuple[str, list[dict[str, Any]]]:
    """The incident's card (the first message sent) and every version of it."""
    message_id = next(iter(feishu.messages))
    return message_id, feishu.messages[message_id]


def start(
    start_stack: Callable[..., Stack], host: Host, feishu: FakeFeishu, sshd: SshServer, folder: Path
) -> Stack:
    host.exporter.start()
    stack = start_stack(TOKEN, scrape=host.target, rules=RULES, **sections(feishu, sshd, folder))
    return stack


def logs_of(stack: Stack, host: Host, feishu: FakeFeishu, sshd: SshServer) -> Callable[[], str]:
    def logs() -> str:
        chat = json.dumps(feishu.messages, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        return (
            s.report(
                [
                    ("state file", host.state.read_text()),
                    ("node_exporter log", host.exporter.log()),
                    ("fake Feishu", chat),
                    ("sshd log", sshd.log.read_text()[-s.LOG_TAIL :]),
                ]
            )
            + "\n"
            + stack.logs()
        )

    return logs


def exported(stack: Stack) -> bool:
    """Prometheus has scraped the state file at least once."""
    url = stack.prometheus.ready_url.replace("/-/ready", "/api/v1/query")
    answer = s.http().get(url, params={"query": METRIC}).json()
    return bool(answer["data"]["result"])


def test_an_automatic_fix_closes_the_loop_and_the_card_says_recovered(
    start_stack: Callable[..., Stack], feishu: FakeFeishu, sshd: SshServer, tmp_path: Path
) -> None:
    host = Host(tmp_path / "host")
    try:
        stack = start(start_stack, host, feishu, sshd, runbooks(tmp_path / "runbooks", host, "60s"))
        logs = logs_of(stack, host, feishu, sshd)
        s.eventually(lambda: exported(stack), timeout=DEADLINE, what="the state file scraped", logs=logs)

        began = time.monotonic()
        host.set("1")  # the fault: the rule's condition becomes true on the host

        def recovered() -> dict[str, Any] | None:
            incidents = stack.incidents()
            if not incidents:
                return None
            found = stack.incident(incidents[0]["id"])
            fixes = [p for p in found["proposals"] if p["action_id"] == FIX]
            verified = fixes and fixes[0]["verification"] and fixes[0]["verification"]["outcome"]
            return found if verified and found["status"] == "resolved" else None

        incident = s.eventually(recovered, timeout=90, what="recovered and resolved", logs=logs)
        pattern = re.compile(rf"recovered ([0-9.]+) s after {FIX}, run automatically")

        def card_says_recovered() -> str | None:
            _, versions = first_card(feishu)
            found = pattern.search(texts(versions[-1]))
            return found.group(0) if found else None

        said = s.eventually(card_says_recovered, timeout=DEADLINE, what="the card edited", logs=logs)
        elapsed = time.monotonic() - began
        page = s.http().get(f"{stack.aiops.url}/incidents/{incident['id']}").text
    finally:
        host.exporter.stop()
    print(f"\nclosed loop: fault to 'recovered' on the card in {elapsed:.1f} s ({said})")
    [fix] = [p for p in incident["proposals"] if p["action_id"] == FIX]
    assert fix["decided_via"] == "auto" and fix["state"] == "succeeded", fix  # the policy ran it
    assert fix["execution"]["exit_status"] == 0 and host.state.read_text() == f"{METRIC} 0\n"
    verification = fix["verification"]
    assert verification["outcome"] == "recovered" and verification["automatic"] is True, verification
    assert pattern.search(verification["detail"]["text"]), verification
    assert pattern.search(page), page
    kinds = [entry["kind"] for entry in incident["audit"] if entry["proposal_id"] == fix["id"]]
    assert kinds == ["proposed", "approved", "execution_started", "executed", "verified_recovered"], kinds
    _, versions = first_card(feishu)
    assert all(card_problems(json.dumps(version)) == [] for version in versions)
    assert f"<at id={ONCALL}>" not in json.dumps(versions), "a fix that worked escalates to nobody"


def test_a_fix_that_changes_nothing_is_escalated_once_and_never_run_again(
    start_stack: Callable[..., Stack], feishu: FakeFeishu, sshd: SshServer, tmp_path: Path
) -> None:
    host = Host(tmp_path / "host")
    folder = runbooks(tmp_path / "runbooks", host, "5s")
    (folder / f"{ALERT}.md").write_text(f"---\nalerts: [{ALERT}]\nactions: [{NOOP}]\n---\n# Remediation\n")
    try:
        stack = start(start_stack, host, feishu, sshd, folder)
        logs = logs_of(stack, host, feishu, sshd)
        s.eventually(lambda: exported(stack), timeout=DEADLINE, what="the state file scraped", logs=logs)
        host.set("1")

        def decided() -> dict[str, Any] | None:
            incidents = stack.incidents()
            found = stack.incident(incidents[0]["id"]) if incidents else None
            verification = found and found["proposals"] and found["proposals"][0]["verification"]
            return found if verification and verification["outcome"] else None

        incident = s.eventually(decided, timeout=90, what="the verification decided", logs=logs)

        def escalated_card() -> list[dict[str, Any]] | None:
            _, versions = first_card(feishu)
            marked = [v for v in versions if "not recovered" in texts(v)]
            return marked if marked else None

        marked = s.eventually(escalated_card, timeout=DEADLINE, what="the card marked", logs=logs)

        # The incident fires again (a second series in the same group): the same fix is proposed again and
        # waits for a person, since it already ran and did not work.
        host.set("1", "1")

        def again() -> list[dict[str, Any]] | None:
            found = stack.incident(incident["id"])["proposals"]
            return found if len(found) >= 2 else None

        proposals = s.eventually(again, timeout=90, what="the second proposal", logs=logs)
        time.sleep(2)  # several queue polls: anything wrongly queued would have run by now
        final = stack.incident(incident["id"])
    finally:
        host.exporter.stop()
    first = final["proposals"][0]
    assert first["verification"]["outcome"] == "not_recovered", first
    detail = first["verification"]["detail"]["text"]
    assert f"not recovered: {NOOP} on {HOST} ran, and the incident still fired 5 s later" in detail, detail
    assert f"in the window {METRIC} > 0 went from min 1 to max 1, last 1 (flat)" in detail, detail
    assert f"<at id={ONCALL}></at>" in marked[0]["body"]["elements"][0]["content"], texts(marked[0])
    _, versions = first_card(feishu)
    mentioning = [v for v in versions if f"<at id={ONCALL}>" in json.dumps(v)]
    assert mentioning == marked[:1], "one edit of the card @mentions the escalation list"
    escalations = [
        versions
        for mid, versions in feishu.messages.items()
        if mid != first_card(feishu)[0] and f"<at id={ONCALL}>" in json.dumps(versions)
    ]
    assert len(escalations) == 1, "one message @mentions the escalation list"
    second = proposals[1]
    assert second["action_id"] == NOOP and second["state"] == "pending", second
    assert "already ran on this incident" in second["held"]["text"], second
    ran = [p for p in final["proposals"] if p["execution"] is not None]
    assert len(ran) == 1, "the fix that did not work ran once"
    kinds = [entry["kind"] for entry in final["audit"]]
    assert kinds.count("verified_not_recovered") == 1 and "held" in kinds, kinds
