"""The whole WeCom app flow with real processes: a real Prometheus fires, a real Alertmanager delivers to a real
`aiops serve`, whose template card reaches a fake WeCom server API; the URL check and the clicks, encrypted and
signed as WeCom does, come back to `GET|POST /callbacks/wecom`, and the approved action runs once on a real sshd.

What the unit tests cannot show: that the buttons on the card as it was sent carry what the callback route needs,
that the click's response code is the one the card is edited with, that the worker pool of `aiops serve` picks up
the approval and runs it by itself, and that its result comes back to the app's members.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiops.channels.wecom.card import TITLE, clip
from tests.fakes.wecom import AES_KEY, AGENT_ID, CALLBACK_TOKEN, CORP_ID, SECRET, Callbacks, FakeWeCom
from tests.support import stack as s
from tests.support.e2e import ACTION, DEADLINE, HOST, QUIET, TOKEN, Stack, marker_runbooks, ran_once
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

APPROVER, STRANGER = "zhangsan", "wangwu"  # both receive the cards; only one may approve


def _sections(fake_wecom: FakeWeCom, sshd: SshServer, runbooks: Path) -> dict[str, Any]:
    """aiops's configuration beyond what `start_stack` writes: the WeCom app, the runbooks and the sshd."""
    return {
        "channels": {
            "wecom": {
                "corp_id": CORP_ID,
                "agent_id": AGENT_ID,
                "corp_secret": SECRET,
                "touser": [APPROVER, STRANGER],
                "callback_token": CALLBACK_TOKEN,
                "encoding_aes_key": AES_KEY,
                "base_url": fake_wecom.url,
            }
        },
        "runbooks": {"dir": str(runbooks)},
        "hosts": {HOST: sshd.host().model_dump(mode="json")},
        "remediation": {"approvers": {"wecom": [APPROVER]}},
        "server": {"language": "en"},
    }


def _cards(fake_wecom: FakeWeCom) -> list[dict[str, Any]]:
    """The template cards sent to the app's members, in order."""
    return [m["template_card"] for m in list(fake_wecom.messages) if m["msgtype"] == "template_card"]


def _keys(card: dict[str, Any]) -> list[str]:
    return [str(button.get("key")) for button in card["button_list"]]


def _texts(card: dict[str, Any]) -> str:
    """Everything the card shows as text, one item a line."""
    rows = [f"{row['keyname']} {row['value']}" for row in card.get("horizontal_content_list", [])]
    return "\n".join([card["main_title"]["title"], card["main_title"]["desc"], card["sub_title_text"], *rows])


def _callback(stack: Stack, query: dict[str, str], body: bytes | None = None) -> httpx.Response:
    url = f"{stack.aiops.url}/callbacks/wecom"
    if body is None:
        return s.http().get(url, params=query)
    return s.http().post(url, params=query, content=body, headers={"Content-Type": "text/xml"})


def _click(
    stack: Stack, fake_wecom: FakeWeCom, user: str, key: str, task: str, **keys: str
) -> tuple[httpx.Response, str]:
    """`user` presses the button `key` on the card `task`: WeCom POSTs the event, sealed with the app's token and
    key (`keys` can spoil that), carrying a fresh response code, which comes back too."""
    code = fake_wecom.click(task)
    query, body = Callbacks(**keys).click(user, key, task, code)
    return _callback(stack, query, body), code


def _logs(stack: Stack, fake_wecom: FakeWeCom, sshd: SshServer) -> Callable[[], str]:
    def logs() -> str:
        sent = json.dumps(fake_wecom.messages, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        updates = json.dumps(fake_wecom.updates, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        fake = f"calls: {fake_wecom.calls}\nmessages: {sent}\nupdates: {updates}"
        sections = [("fake WeCom", fake), ("sshd log", sshd.log.read_text()[-s.LOG_TAIL :])]
        return s.report(sections) + "\n" + stack.logs()

    return logs


def test_a_card_click_by_an_approver_runs_the_action_over_ssh_and_the_members_hear_the_result(
    start_stack: Callable[..., Stack], fake_wecom: FakeWeCom, sshd: SshServer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    stack = start_stack(TOKEN, **_sections(fake_wecom, sshd, marker_runbooks(tmp_path / "runbooks", marker)))
    logs = _logs(stack, fake_wecom, sshd)

    # Saving the callback URL in WeCom's console: aiops answers the decrypted echostr, bare; a forged check, 401.
    query, echo = Callbacks().verification()
    checked = _callback(stack, query)
    assert (checked.status_code, checked.text) == (200, echo), f"{checked.text}\n{logs()}"
    forged_check = _callback(stack, Callbacks(token="guessedCallbackToken0").verification()[0])
    assert forged_check.status_code == 401 and echo not in forged_check.text, forged_check.text

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
    approve = f"aiops:approve:{pending['id']}:{pending['argv_hash'][:16]}"

    # The card reaches the members with an Approve and a Reject button naming the proposal and its command.
    def card_with_buttons() -> dict[str, Any] | None:
        return next((card for card in _cards(fake_wecom) if approve in _keys(card)), None)

    what = "a card with an Approve button on the fake WeCom"
    card = s.eventually(card_with_buttons, timeout=DEADLINE, what=what, logs=logs)
    task = card["task_id"]
    assert approve.replace(":approve:", ":reject:") in _keys(card), card
    sent = next(m for m in fake_wecom.messages if m.get("template_card") is card)
    assert sent["agentid"] == AGENT_ID and sent["touser"] == f"{APPROVER}|{STRANGER}", sent
    assert f"#{pending['id']} {ACTION} @ {HOST}" in _texts(card), card
    sent_before = len(fake_wecom.messages)

    # The approver's click signed with a token other than the app's is refused before anything in it is read.
    forged, _ = _click(stack, fake_wecom, APPROVER, approve, task, token="guessedCallbackToken0")
    assert forged.status_code == 401 and "signature" in forged.text, forged.text

    # Someone not allow-listed is answered as WeCom expects, and nothing is decided: the card is not touched.
    refused, _ = _click(stack, fake_wecom, STRANGER, approve, task)
    assert (refused.status_code, refused.text) == (200, ""), f"{refused.text}\n{logs()}"

    time.sleep(QUIET)
    [still] = proposals()
    assert still["state"] == "pending" and still["decided_by"] is None, f"{still}\n{logs()}"
    assert still["execution"] is None and not marker.exists(), f"{still}\n{logs()}"
    assert audit() == ["proposed", "approval_refused"], "only the stranger's refusal is on record"
    assert fake_wecom.updates == [] and len(fake_wecom.messages) == sent_before, logs()

    # The approver's click approves; the card is edited with that click's response code, without the buttons.
    approved, code = _click(stack, fake_wecom, APPROVER, approve, task)
    assert (approved.status_code, approved.text) == (200, ""), f"{approved.text}\n{logs()}"

    def edit() -> dict[str, Any] | None:
        return next((u for u in list(fake_wecom.updates) if u["response_code"] == code), None)

    update = s.eventually(edit, timeout=DEADLINE, what="the clicked card edited", logs=logs)
    edited = update["template_card"]
    assert update["agentid"] == AGENT_ID and edited["task_id"] == task, update
    assert "could not show the decision" not in stack.aiops.stderr(), logs()
    # No proposal is left to decide (no buttons but the link to the incident); its row says it was approved.
    assert [b.get("url") for b in edited["button_list"]] == [f"{stack.aiops.url}/incidents/{incident_id}"], (
        edited
    )
    assert f"#{pending['id']} approved" in _texts(edited), edited

    # The worker pool runs it on the sshd, once.
    ran_once(stack, incident_id, marker, APPROVER, "wecom", logs)

    # The result is a card of its own for the members, naming who approved it.
    result_title = f"Incident #{incident_id}: {ACTION} on {HOST} — ran, exit status 0"

    def result_card() -> dict[str, Any] | None:
        return next(
            (c for c in _cards(fake_wecom) if c["main_title"]["title"] == clip(result_title, TITLE)), None
        )

    result = s.eventually(result_card, timeout=DEADLINE, what="the result sent to the members", logs=logs)
    said = f"ran, exit status 0 · approved by {APPROVER} via wecom exit status: 0"  # its lines, on one
    assert said in result["sub_title_text"], result
    assert result["task_id"] != task and approve not in _keys(result)
