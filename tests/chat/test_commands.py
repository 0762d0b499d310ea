"""Reading a chat message: which command it gives, in English or Chinese, and which incident it names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.chat.commands import Command, parse


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("ack", Command("acknowledge")),
        ("确认", Command("acknowledge")),
        ("silence 2h", Command("silence", "2h")),
        ("silence this for 2 hours", Command("silence", "2h")),
        ("静默 30分钟", Command("silence", "30m")),
        ("silence", Command("silence", "2h")),
        ("/silence 1d", Command("silence", "1d")),
        ("run restart-service", Command("run", "restart-service")),
        ("执行 restart-service", Command("run", "restart-service")),
        ("approve 12", Command("approve", "12")),
        ("批准 #12", Command("approve", "12")),
        ("Reject 7", Command("reject", "7")),
        ("pause auto", Command("pause")),
        ("暂停自动", Command("pause")),
        ("status", Command("status")),
        ("firing", Command("firing")),
        ("help", Command("help")),
    ],
)
def test_commands_in_both_languages(text: str, command: Command) -> None:
    assert parse(text).command == command


@pytest.mark.parametrize(
    "text",
    [
        "why is web-1's disk filling?",
        "web-1 的磁盘为什么满了？",
        "status of the disk on web-1 since noon today",
        "",
    ],
)
def test_anything_else_is_a_question(text: str) -> None:
    assert parse(text).command is None


def test_a_command_given_wrongly_says_what_is_wrong() -> None:
    assert parse("approve twelve").problem == "proposal_id"
    assert parse("run ; rm -rf /").problem == "action_id"
    assert parse("run $(reboot)").problem == "action_id"


def test_the_incident_is_named_with_a_hash() -> None:
    assert parse("why is #123 still open?").incident_id == 123
    assert parse("status #7").incident_id == 7
    assert parse("issue a#12 or C# code").incident_id is None
    assert parse("#99999999999999999999").incident_id is None  # past 18 digits names nothing


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_read_without_error_and_run_names_only_an_action_id(text: str) -> None:
    parsed = parse(text)
    if parsed.command is not None and parsed.command.verb == "run":
        argument = parsed.command.argument
        assert argument.isascii() and not set(argument) & set(" ;|&$`()<>'\"\\\n")
