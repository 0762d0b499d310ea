"""The whole DingTalk app flow with real processes: a real Prometheus fires, a real Alertmanager delivers to a real
`aiops serve`, whose card reaches a fake DingTalk Open API; clicks come back over the Stream connection that
`aiops serve` itself opened to the fake gateway, and the approved action runs once on a real sshd.

What the unit tests cannot show: that `aiops serve` opens its Stream connection by itself at start-up, that the card
as it was created carries what a click needs (STREAM callbacks, the proposal id and the start of its argv hash),
that the worker pool picks up the approval and runs it, and that the result comes back to the card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.dingtalk import SECRET, FakeDingTalk
from tests.support import stack as s
from tests.support.e2e import ACTION, DEADLINE, HOST, QUIET, TOKEN, Stack, marker_runbooks
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TEMPLATE = "e2e-template-0000.schema"
APPROVER, STRANGER = "staff-alice", "staff-mallory"


@pytest.fixture
def dingtalk(fake_dingtalk: FakeDingTalk) -> FakeDingTalk:
    return fake_dingtalk


def _sections(dingtalk: FakeDingTalk, sshd: SshServer, runbooks: Path) -> dict[str, Any]:
    """aiops's configuration beyond what `start_stack` writes: the DingTalk app, the runbooks and the sshd."""
    return {
        "channels": {
            "dingtalk": {
                "client_id": dingtalk.client_id,
                "client_secret": SECRET,
                "open_conversation_id": dingtalk.group,
                "card_template_id": TEMPLATE,
                "api": dingtalk.url,
                "token_url": f"{dingtalk.url}/v1.0/oauth2/accessToken",
                "gateway": dingtalk.url,
                "timeout": 5,
            }
        },
        "runbooks": {"dir": str(runbooks)},
        "hosts": {HOST: sshd.host().model_dump(mode="json")},
        "remediation": {"approvers": {"dingtalk": [APPROVER]}},
        "server": {"language": "en"},
    }


def _shown(params: dict[str, str], proposal_id: int) -> dict[str, str] | None:
    """The proposal's item in a card's `proposals` loop, as the card shows it; None when it is not there."""
    items = json.loads(params.get("proposals") or "[]")
    return next((item for item in items if item["proposal_id"] == str(proposal_id)), None)


def _click(dingtalk: FakeDingTalk, card: str, user: str, proposal_id: int) -> str:
    """`user` presses Approve on the card; the gateway pushes it to aiops's Stream connection, and this returns the
    notice aiops's ack tells the clicker."""
    ack = dingtalk.wait_ack(dingtalk.click(card, user, "approve", proposal_id), timeout=DEADLINE)
    assert ack["code"] == 200, ack
    notice: str = ack["data"]["response"]["privateData"][user]["cardParamMap"]["notice"]
    return notice


def _logs(stack: Stack, dingtalk: FakeDingTalk, sshd: SshServer) -> Callable[[], str]:
    def logs() -> str:
        cards = json.dumps(dingtalk.cards, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        calls = [(method, path) for method, path, _ in dingtalk.calls]
        fake = f"connections opened: {len(dingtalk.opened)}\ncalls: {calls}\ncards: {cards}"
        sections = [("fake DingTalk", fake), ("sshd log", sshd.log.read_text()[-s.LOG_TAIL :])]
        return s.report(sections) + "\n" + stack.logs()

    return logs


def test_a_card_click_by_an_approver_over_stream_runs_the_action_over_ssh_and_the_card_shows_the_result(
    start_stack: Callable[..., Stack], dingtalk: FakeDingTalk, sshd: SshServer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    stack = start_stack(TOKEN, **_sections(dingtalk, sshd, marker_runbooks(tmp_path / "runbooks", marker)))
    logs = _logs(stack, dingtalk, sshd)
    command = f"sh -c 'echo fixed > {marker}'"

    # aiops opens its Stream connection at start-up, subscribed to card callbacks, with the app's credentials.
    s.eventually(dingtalk.connected.is_set, timeout=DEADLINE, what="aiops's Stream connection", logs=logs)
    opening = dingtalk.opened[-1]
    assert opening["clientId"] == dingtalk.client_id and opening["clientSecret"] == SECRET
    assert {"type": "CALLBACK", "topic": "/v1.0/card/instances/callback"} in opening["subscriptions"]

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
    proposal_id = pending["id"]

    # The card is created for the group with STREAM callbacks, showing the proposal with its buttons.
    def card_with_buttons() -> str | None:
        for out_track_id, card in list(dingtalk.cards.items()):
            item = _shown(card["params"], proposal_id)
            if item is not None and item["pending"] == "true":
                return out_track_id
        return None

    what = "a card with the pending proposal on the fake DingTalk"
    card_id = s.eventually(card_with_buttons, timeout=DEADLINE, what=what, logs=logs)
    created = dingtalk.cards[card_id]["created"]
    assert created["callbackType"] == "STREAM" and created["cardTemplateId"] == TEMPLATE, logs()
    assert created["openSpaceId"] == f"dtv1.card//IM_GROUP.{dingtalk.group}"
    params = dingtalk.cards[card_id]["params"]
    shown = _shown(params, proposal_id)
    assert shown is not None and params["actions_open"] == "true", params
    assert shown["action"] == ACTION and shown["host"] == HOST and shown["command"] == command, shown
    assert shown["hash"] == pending["argv_hash"][:16] and shown["state"] == "pending", shown
    calls_before = len(dingtalk.calls)
    params_before = dict(params)

    # Someone not allow-listed is told so, and nothing is decided: the card is not touched.
    refused = _click(dingtalk, card_id, STRANGER, proposal_id)
    assert refused == f"Refused; nothing was done ({STRANGER} may not approve via dingtalk).", refused
    time.sleep(QUIET)
    [still] = proposals()
    assert still["state"] == "pending" and still["decided_by"] is None, f"{still}\n{logs()}"
    assert still["execution"] is None and not marker.exists(), f"{still}\n{logs()}"
    assert audit() == ["proposed", "approval_refused"], "only the stranger's refusal is on record"
    assert len(dingtalk.calls) == calls_before and dingtalk.cards[card_id]["params"] == params_before

    # The approver's click approves; the card shows it at once, without buttons.
    approved = _click(dingtalk, card_id, APPROVER, proposal_id)
    assert approved == "Approved: it will run once.", f"{approved}\n{logs()}"
    params = dingtalk.cards[card_id]["params"]
    assert params["actions_open"] == "false" and f"approved by {APPROVER}" in params["last_action"], params

    # The worker pool runs it on the sshd, once.
    s.eventually(marker.exists, timeout=DEADLINE, what=f"{marker} written over SSH", logs=logs)
    assert marker.read_text() == "fixed\n"

    def finished() -> dict[str, Any] | None:
        [item] = proposals()
        return item if item["state"] not in ("approved", "running") else None

    done = s.eventually(finished, timeout=DEADLINE, what="the execution finished", logs=logs)
    assert done["state"] == "succeeded" and done["decided_by"] == APPROVER, f"{done}\n{logs()}"
    assert done["decided_via"] == "dingtalk", done
    assert done["execution"]["state"] == "succeeded" and done["execution"]["exit_status"] == 0, done
    assert audit() == ["proposed", "approval_refused", "approved", "execution_started", "executed"]

    # The card is updated to show the result.
    def card_shows_result() -> dict[str, str] | None:
        item = _shown(dingtalk.cards[card_id]["params"], proposal_id)
        return item if item is not None and item["state"] == "succeeded" else None

    what = "the incident's card updated with the result"
    result = s.eventually(card_shows_result, timeout=DEADLINE, what=what, logs=logs)
    assert result["state_text"] == "ran, exit status 0" and result["pending"] == "false", result
    assert dingtalk.cards[card_id]["params"]["actions_open"] == "false"
    updates = [body for method, _, body in dingtalk.calls if method == "PUT"]
    assert all(u["outTrackId"] == card_id and u["cardUpdateOptions"]["updateCardDataByKey"] for u in updates)

    # The result, with who approved it, is written into the incident's own card: no second card.
    def result_shown() -> str | None:
        text = str(dingtalk.cards[card_id]["params"].get("last_action", ""))
        return text if "ran, exit status 0" in text else None

    told = s.eventually(result_shown, timeout=DEADLINE, what="the result in the chat", logs=logs)
    assert f"approved by {APPROVER} via dingtalk" in told and "exit status: 0" in told, told
    assert command in told, told
    assert list(dingtalk.cards) == [card_id], "the result must not arrive as a card of its own"
