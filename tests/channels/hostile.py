"""The hostile strings every chat dialect's escaping is tested with: each dialect's markup, mention-like tags, URLs,
CJK, control characters, and all of them repeated past 30 KB."""

from __future__ import annotations

from tests.channels.announcements import HOSTILE

STRINGS = {
    "announcement": HOSTILE,
    "tags": '<at user_id="all">all</at> <@zhangsan> <@4001> <@&5001> <#6001> <font color="warning">red</font> <b>',
    "mentions": "@everyone @here @all",
    "markdown": "# h\n> q\n- l\n-# s\n1. n\n**b** _i_ ~~s~~ `c` ```block``` ||sp|| [x](https://evil.example)",
    "urls": "https://evil.example/?a=1&b=<2> ![i](https://evil.example/i.png) http://[::1]:8080/x_y*z",
    "cjk": "磁盘已满，请扩容。＜全角＞ 🚨",
    "control": "a\x00\x1b[31mred\u202egnp.exe\r\nnext",
}
HUGE = ("\n".join(STRINGS.values()) + "\n") * 100
assert len(HUGE.encode()) > 30_000
CASES = [*STRINGS.values(), HUGE]
IDS = [*STRINGS, "30KB"]
