"""The whole Discord flow with real processes: a real Prometheus fires, a real Alertmanager delivers to a real
`aiops serve`, whose message with buttons reaches a fake Discord REST API; presses signed as Discord signs them
come back to `POST /callbacks/discord`, and the approved action runs once on a real sshd.

What the unit tests cannot show: that the buttons on the message as it was posted carry what the interactions
route needs, that the deferred answer and the edit through the interaction's token follow one another as Discord
requires, that the worker pool of `aiops serve` picks up the approval and runs it by itself, and that its result
comes back to the channel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.discord import APPLICATION_ID, BOT_TOKEN, CHANNEL, FakeDiscord
from tests.support import stack as s
from tests.support.e2e import ACTION, DEADLINE, HOST, QUIET, TOKEN, Stack, marker_runbooks, ran_once
from tests.support.sshd import SshServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

APPROVER, STRANGER = "400000000000000001", "400000000000000666"


def _sections(fake_discord: FakeDiscord, sshd: SshServer, runbooks: Path) -> dict[str, Any]:
    """aiops's configuration beyond what `start_stack` writes: the Discord app, the runbooks and the sshd."""
    return {
        "channels": {
            "discord": {
                "application_id": APPLICATION_ID,
                "public_key": fake_discord.public_key,
                "bot_token": BOT_TOKEN,
                "channel_id": CHANNEL,
                "api": fake_discord.api,
            }
        },
        "runbooks": {"dir": str(runbooks)},
        "hosts": {HOST: sshd.host().model_dump(mode="json")},
        "remediation": {"approvers": {"discord": [APPROVER]}},
        "server": {"language": "en"},
    }


def _custom_ids(message: dict[str, Any]) -> list[str]:
    """The custom_id of every button on the message (link buttons have none)."""
    rows = message.get("components") or []
    return [str(b["custom_id"]) for r in rows for b in r.get("components", []) if "custom_id" in b]


def _description(message: dict[str, Any]) -> str:
    return "\n".join(str(embed.get("description") or "") for embed in message.get("embeds") or [])


def _title(message: dict[str, Any]) -> str:
    return "\n".join(str(embed.get("title") or "") for embed in message.get("embeds") or [])


def _press(
    stack: Stack, fake_discord: FakeDiscord, user: str, custom_id: str, message_id: str
) -> httpx.Response:
    """`user` presses the button `custom_id` on message `message_id`; Discord POSTs the signed interaction."""
    headers, raw = fake_discord.press(custom_id, user, message_id)
    return fake_discord.deliver(f"{stack.aiops.url}/callbacks/discord", headers, raw)


def _logs(stack: Stack, fake_discord: FakeDiscord, sshd: SshServer) -> Callable[[], str]:
    def logs() -> str:
        messages = json.dumps(fake_discord.record.messages, ensure_ascii=False, indent=1)[-s.LOG_TAIL :]
        fake = f"requests: {fake_discord.requests}\nresponses: {fake_discord.record.responses}\nmessages: {messages}"
        sections = [("fake Discord", fake), ("sshd log", sshd.log.read_text()[-s.LOG_TAIL :])]
        return s.report(sections) + "\n" + stack.logs()

    return logs


def test_a_button_press_by_an_approver_runs_the_action_over_ssh_and_the_channel_hears_the_result(
    start_stack: Callable[..., Stack], fake_discord: FakeDiscord, sshd: SshServer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    stack = start_stack(
        TOKEN, **_sections(fake_discord, sshd, marker_runbooks(tmp_path / "runbooks", marker))
    )
    logs = _logs(stack, fake_discord, sshd)

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

    # The message reaches the channel with an Approve and a Reject button naming the proposal and its command.
    def message_with_buttons() -> str | None:
        found = list(fake_discord.record.messages.items())
        return next((mid for mid, message in found if approve in _custom_ids(message)), None)

    what = "a message with an Approve button on the fake Discord"
    message_id = s.eventually(message_with_buttons, timeout=DEADLINE, what=what, logs=logs)
    card = fake_discord.record.messages[message_id]
    assert card["channel_id"] == CHANNEL and approve.replace(":approve:", ":reject:") in _custom_ids(card)
    assert f"#{pending['id']} {ACTION}" in _description(card) and "waiting for an approval" in _description(
        card
    )
    requests_before = len(fake_discord.requests)

    # A press signed with a key other than the application's is refused before anything in it is read.
    headers, raw = fake_discord.press(approve, APPROVER, message_id)
    forged_headers = {**headers, "X-Signature-Ed25519": "00" * 64}
    forged = s.http().post(f"{stack.aiops.url}/callbacks/discord", content=raw, headers=forged_headers)
    assert forged.status_code == 401 and "signature" in forged.json()["error"], forged.text

    # Someone not allow-listed: the press is acknowledged, as Discord requires, and nothing is decided.
    refused = _press(stack, fake_discord, STRANGER, approve, message_id)
    assert (refused.status_code, refused.json()) == (200, {"type": 6}), f"{refused.text}\n{logs()}"

    time.sleep(QUIET)
    [still] = proposals()
    assert still["state"] == "pending" and still["decided_by"] is None, f"{still}\n{logs()}"
    assert still["execution"] is None and not marker.exists(), f"{still}\n{logs()}"
    assert audit() == ["proposed", "approval_refused"], "only the stranger's refusal is on record"
    assert fake_discord.record.edits == [] and len(fake_discord.requests) == requests_before, logs()
    assert approve in _custom_ids(fake_discord.record.messages[message_id])

    # The approver's press approves; the message is edited through that interaction's token, without buttons.
    headers, raw = fake_discord.press(approve, APPROVER, message_id)
    approved = fake_discord.deliver(f"{stack.aiops.url}/callbacks/discord", headers, raw)
    assert (approved.status_code, approved.json()) == (200, {"type": 6}), f"{approved.text}\n{logs()}"
    original = f"/api/v10/webhooks/{APPLICATION_ID}/{json.loads(raw)['token']}/messages/@original"

    def edited() -> dict[str, Any] | None:
        return next((body for mid, body in list(fake_discord.record.edits) if mid == message_id), None)

    edit = s.eventually(edited, timeout=DEADLINE, what="the pressed message edited", logs=logs)
    assert ("PATCH", original) in fake_discord.requests, logs()
    assert "could not show the decision" not in stack.aiops.stderr(), logs()
    # The card is read after the decision is committed: the worker pool may have started the action by then.
    states = ("approved, waiting to run", "running", "ran, exit status 0")
    assert _custom_ids(edit) == [] and any(state in _description(edit) for state in states), _description(
        edit
    )
    assert "waiting for an approval" not in _description(edit), _description(edit)

    # The worker pool runs it on the sshd, once.
    ran_once(stack, incident_id, marker, APPROVER, "discord", logs)

    # The result is a message of its own in the channel, naming who approved it.
    result_title = f"Incident #{incident_id}: {ACTION} on {HOST} — ran, exit status 0"

    def result_message() -> dict[str, Any] | None:
        found = list(fake_discord.record.messages.values())
        return next((m for m in found if _title(m) == result_title), None)

    result = s.eventually(result_message, timeout=DEADLINE, what="the result in the channel", logs=logs)
    assert f"approved by {APPROVER} via discord" in _description(result), result
    assert "**exit status**: 0" in _description(result) and _custom_ids(result) == [], result

    # And the incident's message is edited to show it.
    def card_shows_result() -> dict[str, Any] | None:
        latest = fake_discord.record.messages[message_id]
        return latest if "ran, exit status 0" in _description(latest) else None

    shown = s.eventually(card_shows_result, timeout=DEADLINE, what="the incident's message edited", logs=logs)
    assert _custom_ids(shown) == [], shown
    assert fake_discord.invalid_requests == 0, logs()
