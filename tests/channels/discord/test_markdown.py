"""Discord markdown escaping: user text shows literally, mentions none, and cuts keep under the character limits
without leaving a dangling backslash."""

from __future__ import annotations

import re

import httpx
import pytest

from aiops.channels.discord.api import CONTENT_LIMIT, message
from aiops.channels.discord.markdown import ELLIPSIS, ZERO_WIDTH_SPACE, cut, escape, inline, length, line
from tests.channels.announcements import HOSTILE
from tests.channels.discord.conftest import Sleeps, rest
from tests.channels.hostile import CASES, IDS
from tests.fakes.discord import CHANNEL, FakeDiscord
from tests.fakes.robots import Clock

# A markup character not preceded by an (unescaped) backslash.
_BARE = re.compile(r"(?<!\\)(?:\\\\)*[*_~`|\[\]<]")


def test_markup_characters_are_backslash_escaped() -> None:
    assert escape("**bold** _i_ ~~s~~ `c` ||spoiler|| [x](https://evil.example)") == (
        r"\*\*bold\*\* \_i\_ \~\~s\~\~ \`c\` \|\|spoiler\|\| \[x\](https://evil.example)"
    )
    assert escape("a\\b") == "a\\\\b"


def test_line_starts_cannot_make_headings_lists_quotes_or_subtext() -> None:
    assert escape("# big\n- item\n  > quote\n-# small\n1. first\nweb-1 > 2") == (
        "\\# big\n\\- item\n  \\> quote\n\\-# small\n1\\. first\nweb-1 > 2"
    )


def test_mentions_are_neutralised() -> None:
    escaped = escape("@everyone @here <@4001> <@&5001> <#6001> </deploy:7001> mail@example.com")
    assert "mail@example.com" in escaped
    assert "@everyone" not in escaped and "@here" not in escaped
    assert f"@{ZERO_WIDTH_SPACE}everyone" in escaped
    for mention in ("<@4001>", "<@&5001>", "<#6001>", "</deploy:7001>"):
        assert mention not in escaped
    assert f"\\<@{ZERO_WIDTH_SPACE}4001>" in escaped and f"\\<#{ZERO_WIDTH_SPACE}6001>" in escaped


def test_the_hostile_string_shows_its_words_and_makes_no_markup() -> None:
    escaped = escape(HOSTILE)
    assert not _BARE.search(escaped)
    for word in ("web-1", "bold", "https://evil.example", "code"):
        assert word in escaped


def test_cjk_and_metric_names_are_kept() -> None:
    assert escape("磁盘已满 node_cpu") == "磁盘已满 node\\_cpu"  # rendered: node_cpu


def test_control_characters_are_dropped_and_inline_is_one_line() -> None:
    assert escape("a\x00\u202eb") == "ab"
    assert inline("one\ntwo") == "one two"
    label = line("a very long\nlabel " * 10, 80)
    assert label.endswith(ELLIPSIS) and length(label) == 80 and "\n" not in label


@pytest.mark.parametrize("limit", [1, 2, 3, 10, 2000])
def test_cuts_keep_under_the_limit_and_leave_no_dangling_backslash(limit: int) -> None:
    text = escape("*" * 5000)
    cut_text = cut(text, limit)
    assert length(cut_text) <= limit and cut_text.endswith(ELLIPSIS)
    body = cut_text.removesuffix(ELLIPSIS)
    assert len(body) % 2 == 0 and not _BARE.search(body)


def test_cuts_count_emoji_outside_the_bmp_twice() -> None:
    cut_text = cut("😀" * 1500, CONTENT_LIMIT)
    assert length(cut_text) <= CONTENT_LIMIT and len(cut_text) == 1000


@pytest.mark.parametrize("text", CASES, ids=IDS)
async def test_hostile_text_is_delivered_escaped_under_2000(
    fake: FakeDiscord, http: httpx.AsyncClient, clock: Clock, sleeps: Sleeps, text: str
) -> None:
    content = cut("**HostOutOfDiskSpace**\n" + escape(text), CONTENT_LIMIT)
    message_id = await rest(fake, http, clock, sleeps).create_message(CHANNEL, message(content))
    delivered = fake.record.messages[message_id]
    assert length(delivered["content"]) <= CONTENT_LIMIT
    assert delivered["allowed_mentions"] == {"parse": [], "users": []}
    body = delivered["content"].removeprefix("**HostOutOfDiskSpace**\n").removesuffix(ELLIPSIS)
    assert body != delivered["content"]
    assert not _BARE.search(body) and "@everyone" not in body and "@here" not in body
    assert not re.search(r"^\s*(#|-|>|\d+\. )", body, re.MULTILINE)  # no heading, list, quote or subtext
