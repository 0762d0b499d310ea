"""The whole Feishu flow with real processes: a real Prometheus fires, a real Alertmanager delivers to a real
`aiops serve`, whose card reaches a fake Feishu Open API; clicks signed and encrypted as Feishu does come back to
`POST /callbacks/feishu`, and the approved action runs once on a real sshd.

What the unit tests cannot show: that the button on the card as it was sent carries what the callback route needs,
that the worker pool of `aiops serve` picks up the approval and runs it by itself, and that its result comes back to
the chat as a message of its own under the card, with the card edited to match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiops.channels.feishu.card import md
from tests.fakes.feishu import SECRET, FakeFeishu, FeishuCallbacks, card_problems
from tests.support import stack as s
from tests.support.e2e import ACTION, DEADLINE, HOST, QUIET, TOKEN, Stack, marker_runbooks
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ENCRYPT_KEY = "e2e-encrypt-key-0123456789abcdef"
VERIFICATION_TOKEN = "e2e-verification-token-0123456789"
APPROVER, STRANGER = "ou_alice", "ou_mallory"


@pytest.fixture
def feishu(fake_feishu: FakeFeishu) -> FakeFeishu:
    return fake_feishu


def app(feishu: FakeFeishu) -> dict[str, Any]:
    """`channels.feishu` for the fake: its app, its group, and the keys its callbacks are signed with."""
    return {
        "app_id": feishu.app_id,
        "app_secret": SECRET,
        "chat_id": feishu.chat_id,
        "domain": feishu.url,
        "verification_token": VERIFICATION_TOKEN,
        "encrypt_key": ENCRYPT_KEY,
    }


def _sections(feishu: FakeFeishu, sshd: SshServer, runbooks: Path) -> dict[str, Any]:
    """aiops's configuration beyond what `start_stack` writes: the Feishu app, the runbooks and the sshd."""
    return {
        "channels": {"feishu": app(feishu)},
        "runbooks": {"dir": str(runbooks)},
        "hosts": {HOST: sshd.host().model_dump(mode="json")},
        "remediation": {"approvers": {"feishu": [APPROVER]}},
        "server": {"language": "en"},
    }


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _callback_values(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The callback value of every button on the card."""
    return [
        behavior["value"]
        for node in _nodes(card)
        if node.get("tag") == "button"
        for behavior in node.get("behaviors", [])
        if behavior.get("type") == "callback"
    ]


def _texts(card: dict[str, Any]) -> str:
    """Everything the card shows as text, one item a line."""
    shown = [n["content"] for n in _nodes(card) if n.get("tag") in ("markdown", "plain_text")]
    return "\n".join(shown)


def _click(stack: Stack, open_id: str, value: dict[str, Any], card: str, **request: Any) -> httpx.Response:
    """`open_id` clicks the button whose callback value is `value` on message `card`; Feishu POSTs that to aiops,
    signed and encrypted with the app's keys (`request` can spoil that)."""
    sender = FeishuCallbacks(VERIFICATION_TOKEN, ENCRYPT_KEY)
    body, headers = sender.request(sender.card_action(open_id, value, message_id=card), **request)
    return s.http().post(f"{stack.aiops.url}/callbacks/feishu", content=body, headers=headers)


def _logs(stack: Stack, feishu: FakeFeishu, sshd: SshServer) -> Callable[[], str]:
    def logs() -> str:
        chat = json.dumps(feishu.messages, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        fake = f"refusals: {feishu.refusals}\nmessages: {chat}"
        sections = [("fake Feishu", fake), ("sshd log", sshd.log.read_text()[-s.LOG_TAIL :])]
        return s.report(sections) + "\n" + stack.logs()

    return logs


def test_a_card_click_by_an_approver_runs_the_action_over_ssh_and_the_chat_hears_the_result(
    start_stack: Callable[..., Stack], feishu: FakeFeishu, sshd: SshServer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    stack = start_stack(TOKEN, **_sections(feishu, sshd, marker_runbooks(tmp_path / "runbooks", marker)))
    logs = _logs(stack, feishu, sshd)
    command = f"sh -c 'echo fixed > {marker}'"

    [listed] = s.eventually(stack.incidents, timeout=DEADLINE, what="an incident", logs=logs)
    incident_id = listed["id"]

    def proposals() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = stack.incident(incident_id)["proposals"]
        return found

    def audit() -> list[str]:
        return [entry["kind"] for entry in stack.incident(incident_id)["audit"]]

    [pending] = s.eventually(proposals, timeout=DEADLINE, what="a proposal", logs=logs)
    assert pending["action_id"] == ACTION and pending["host"] == HOST, f"{pending}\n{logs()}"
    assert pending["state"] == "pending", f"{pending}\n{logs()}"
    approve = {"proposal": pending["id"], "decision": "approve", "hash": pending["argv_hash"][:16]}

    # The card reaches the chat with an Approve button that calls back with the proposal and its command.
    def card_with_buttons() -> tuple[str, dict[str, Any]] | None:
        for message_id, versions in list(feishu.messages.items()):
            if approve in _callback_values(versions[-1]):
                return message_id, versions[-1]
        return None

    what = "a card with an Approve button on the fake Feishu"
    message_id, card = s.eventually(card_with_buttons, timeout=DEADLINE, what=what, logs=logs)
    assert card["schema"] == "2.0" and card_problems(json.dumps(card)) == [], logs()
    assert {**approve, "decision": "reject"} in _callback_values(card)
    assert command in _texts(card)
    versions_before = {mid: len(versions) for mid, versions in feishu.messages.items()}

    # Someone not allow-listed is told so, and nothing is decided.
    refused = _click(stack, STRANGER, approve, message_id)
    assert refused.status_code == 200, f"{refused.text}\n{logs()}"
    assert refused.json()["toast"]["type"] == "error" and "card" not in refused.json()
    assert f"{STRANGER} may not approve actions through Feishu" in refused.json()["toast"]["content"]

    # The approver's click signed with a key other than the app's is refused before anything in it is read.
    forged = _click(stack, APPROVER, approve, message_id, sign_with="guessed-key-0123456789abcdef")
    assert forged.status_code == 401 and "X-Lark-Signature" in forged.json()["error"], forged.text

    time.sleep(QUIET)
    [still] = proposals()
    assert still["state"] == "pending" and still["decided_by"] is None, f"{still}\n{logs()}"
    assert still["execution"] is None and not marker.exists(), f"{still}\n{logs()}"
    assert audit() == ["proposed", "approval_refused"], "only the stranger's refusal is on record"
    assert {mid: len(versions) for mid, versions in feishu.messages.items()} == versions_before

    # The approver's click approves; the answer is the card as it now stands, without buttons.
    approved = _click(stack, APPROVER, approve, message_id)
    assert approved.status_code == 200, f"{approved.text}\n{logs()}"
    answer = approved.json()
    assert answer["toast"]["type"] == "success", f"{answer}\n{logs()}"
    assert answer["toast"]["content"] == f"Approved: it will run once. ({ACTION} on {HOST} approved)"
    assert answer["card"]["type"] == "raw" and _callback_values(answer["card"]["data"]) == []
    assert f"by {APPROVER} via feishu" in _texts(answer["card"]["data"])

    # The worker pool runs it on the sshd, once.
    s.eventually(marker.exists, timeout=DEADLINE, what=f"{marker} written over SSH", logs=logs)
    assert marker.read_text() == "fixed\n"

    def finished() -> dict[str, Any] | None:
        [item] = proposals()
        return item if item["state"] not in ("approved", "running") else None

    done = s.eventually(finished, timeout=DEADLINE, what="the execution finished", logs=logs)
    assert done["state"] == "succeeded" and done["decided_by"] == APPROVER, f"{done}\n{logs()}"
    assert done["execution"]["state"] == "succeeded" and done["execution"]["exit_status"] == 0, done
    assert audit() == ["proposed", "approval_refused", "approved", "execution_started", "executed"]

    # The result is a message of its own under the card, and the card is edited to show it.
    def result_message() -> dict[str, Any] | None:
        new = [versions[-1] for mid, versions in feishu.messages.items() if mid != message_id]
        return next((c for c in new if "ran, exit status 0" in _texts(c)), None)

    result = s.eventually(result_message, timeout=DEADLINE, what="the result in the chat", logs=logs)
    assert result["header"]["template"] == "green" and card_problems(json.dumps(result)) == []
    assert md(f"approved by {APPROVER} via feishu") in _texts(result) and command in _texts(result)

    def edited_card() -> dict[str, Any] | None:
        latest = feishu.messages[message_id][-1]
        return latest if "State: ran, exit status 0" in _texts(latest) else None

    edited = s.eventually(edited_card, timeout=DEADLINE, what="the incident's card edited", logs=logs)
    assert _callback_values(edited) == [] and card_problems(json.dumps(edited)) == []
    assert feishu.refusals == [], logs()
