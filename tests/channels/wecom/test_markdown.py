"""WeCom markdown escaping: user text shows literally and cannot make tags, mentions, links or emphasis; cuts keep
to the byte limit without splitting a character or one of the message's own tags."""

from __future__ import annotations

import pytest

from aiops.channels.wecom.markdown import ELLIPSIS, cut, escape, inline, size
from tests.channels.announcements import HOSTILE


def test_markup_characters_become_their_full_width_forms() -> None:
    assert escape('<font color="info">ok</font>') == '＜font color="info"＞ok＜/font＞'
    assert escape("<@zhangsan>") == "＜@zhangsan＞"
    assert escape("**bold** [x](https://evil.example) `code` # h > q") == (
        "＊＊bold＊＊ ［x］(https://evil.example) ｀code｀ ＃ h ＞ q"
    )


def test_the_hostile_string_keeps_its_words_and_loses_its_markup() -> None:
    escaped = escape(HOSTILE)
    assert not set(escaped) & set("<>*[]`#")
    for word in ("web-1", "bold", "https://evil.example", "@all", "code"):
        assert word in escaped


def test_metric_names_and_cjk_are_left_as_they_are() -> None:
    assert escape('node_filesystem_avail_bytes{mountpoint="/"} 磁盘 ~5%') == (
        'node_filesystem_avail_bytes{mountpoint="/"} 磁盘 ~5%'
    )


def test_control_and_direction_override_characters_are_dropped() -> None:
    assert escape("a\x00b\x1bc\u202ed\r\ne\tf") == "abcd\ne\tf"


def test_inline_is_one_line() -> None:
    assert inline("first\nsecond\t third  ") == "first second third"


@pytest.mark.parametrize("limit", [1, 3, 4, 5, 100, 4096])
def test_cuts_keep_to_the_bytes_and_whole_characters(limit: int) -> None:
    text = escape("故障" * 3000)
    cut_text = cut(text, limit)
    assert size(cut_text) <= limit
    assert cut_text == "" or cut_text.endswith(ELLIPSIS)
    assert set(cut_text) <= {"故", "障", ELLIPSIS}


def test_a_cut_does_not_leave_half_of_the_messages_own_tag() -> None:
    message = "a" * 90 + '<font color="warning">late</font>'
    assert cut(message, 100) == "a" * 90 + ELLIPSIS


def test_text_under_the_limit_is_not_touched() -> None:
    assert cut("短", 3) == "短"
