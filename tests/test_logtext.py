"""Log text for the LLM: secrets redacted, repeated lines folded into templates."""

from __future__ import annotations

import random

import pytest

from aiops.logtext import REDACTED, LogSummary, LogTemplate, compress, redact

R = REDACTED
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
GH = "ghp_" + "a1B2c3D4e5" * 4
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1x\nq3ZyQ8c0+/w==\n-----END RSA PRIVATE KEY-----"

REDACTIONS = [
    ("password=hunter2 user=bob", f"password={R} user=bob"),
    ("PASSWD: hunter2", f"PASSWD: {R}"),
    ("db_password=hunter2", f"db_password={R}"),
    ("pwd=hunter2", f"pwd={R}"),
    ("client_secret=abc123", f"client_secret={R}"),
    ("refresh_token: abc123", f"refresh_token: {R}"),
    ("api_key=abc123&page=2", f"api_key={R}&page=2"),
    ("apikey=abc123", f"apikey={R}"),
    ("aws_access_key=abc aws_secret_key=def", f"aws_access_key={R} aws_secret_key={R}"),
    ("private_key=abc", f"private_key={R}"),
    ("auth=user:pass", f"auth={R}"),
    ("credential=abc credentials=def", f"credential={R} credentials={R}"),
    ("session=abc123; path=/", f"session={R}; path=/"),
    ("cookie=abc123", f"cookie={R}"),
    ('{"password": "s3cr3t", "user": "bob"}', f'{{"password": "{R}", "user": "bob"}}'),
    ("{'Token': 'abc', 'n': 1}", f"{{'Token': '{R}', 'n': 1}}"),
    ('"accessToken":"abc"', f'"accessToken":"{R}"'),
    ('{\\"password\\":\\"s3cr3t\\"}', f'{{\\"password\\":\\"{R}\\"}}'),
    ('password="two words"', f'password="{R}"'),
    ("Authorization: Bearer abc.def.ghi", f"Authorization: Bearer {R}"),
    ("authorization: Basic dXNlcjpwYXNz", f"authorization: Basic {R}"),
    ('{"Authorization": "Bearer abc123"}', f'{{"Authorization": "Bearer {R}"}}'),
    ("X-Auth-Token: abc123", f"X-Auth-Token: {R}"),
    ("Cookie: sid=abc; theme=dark", f"Cookie: {R}"),
    ("Set-Cookie: sid=abc; HttpOnly", f"Set-Cookie: {R}"),
    ("fetch https://bob:hunter2@example.com/x", f"fetch https://bob:{R}@example.com/x"),
    ("postgresql://app:p@ss@db:5432/app", f"postgresql://app:{R}@db:5432/app"),
    ("mysql://root:pw@10.0.0.5/db", f"mysql://root:{R}@10.0.0.5/db"),
    ("mongodb+srv://u:pw@cluster0.x.net/db", f"mongodb+srv://u:{R}@cluster0.x.net/db"),
    ("redis://:pw@cache:6379/0", f"redis://:{R}@cache:6379/0"),
    ("amqp://guest:guest@mq:5672/", f"amqp://guest:{R}@mq:5672/"),
    ("Server=db;User Id=sa;Password=Pa55w0rd;Database=x", f"Server=db;User Id=sa;Password={R};Database=x"),
    ("Driver={X};Uid=sa;Pwd=Pa55w0rd;", f"Driver={{X}};Uid=sa;Pwd={R};"),
    ("key id AKIAIOSFODNN7EXAMPLE used", f"key id {R} used"),
    (f"cloning with {GH}", f"cloning with {R}"),
    ("slack xoxb-123456789012-abcdefABCDEF", f"slack {R}"),
    (f"got {JWT} from idp", f"got {R} from idp"),
    ("using sk-proj-Abc123def456ghi789jkl", f"using {R}"),
    ("curl -H 'X: Bearer abcdefghijklmnop1234'", f"curl -H 'X: Bearer {R}'"),
    (f"key:\n{PEM}\ndone", f"key:\n-----BEGIN RSA PRIVATE KEY-----{R}-----END RSA PRIVATE KEY-----\ndone"),
    (
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"',
        f'"private_key": "{R}"',
    ),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIL1x2y3z4\nafter", f"-----BEGIN EC PRIVATE KEY-----{R}\nafter"),
]

UNCHANGED = [
    "2024-05-01T12:00:00.123Z INFO GET /api/v1/users/42 200 13ms from 10.0.0.5:51234",
    "commit 3f5c2a9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b deployed by alice",
    "request id 550e8400-e29b-41d4-a716-446655440000 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c",
    "opened /var/lib/postgresql/data/pg_wal/000000010000000000000001",
    "prompt_tokens=512 completion_tokens=80 author=alice",
    "PWD=/home/app SHELL=/bin/bash",
    "ssh://git@github.com/org/repo.git and https://example.com:8443/path?q=1",
    "task-scheduler worker 3 picked up job 17",
    "password reset email sent to user 42",
]


@pytest.mark.parametrize(("raw", "expected"), REDACTIONS)
def test_redacts_secret_forms(raw: str, expected: str) -> None:
    assert redact(raw) == expected


@pytest.mark.parametrize("line", UNCHANGED)
def test_leaves_ordinary_text_alone(line: str) -> None:
    assert redact(line) == line


def test_redaction_is_idempotent() -> None:
    for raw, expected in REDACTIONS:
        assert redact(expected) == expected, raw


def _thousand_lines(seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    shapes = [
        lambda: (
            f"Connection refused to 10.0.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}:{rnd.randint(1024, 65535)}"
        ),
        lambda: f"GET /api/v1/items/{rnd.randint(1, 99999)} returned 200 in {rnd.randint(1, 900)} ms",
        lambda: (
            f"worker {rnd.randint(1, 64)} finished batch {rnd.randint(1, 10**6)} with {rnd.randint(0, 500)} rows"
        ),
    ]
    weights = [600, 300, 100]
    return [shape() for shape, n in zip(shapes, weights, strict=True) for _ in range(n)]


def test_thousand_lines_fold_into_three_templates() -> None:
    lines = _thousand_lines()
    rnd = random.Random(1)
    rnd.shuffle(lines)
    summary = compress(lines)
    assert summary.total_lines == 1000
    assert len(summary.templates) == 3
    assert sum(t.count for t in summary.templates) == 1000
    assert [t.count for t in summary.templates] == [600, 300, 100]
    assert summary.templates[0].template == "Connection refused to <IP>:<NUM>"
    assert summary.omitted_templates == 0
    for template in summary.templates:
        assert lines[template.first_index] == template.example


def test_rendered_summary_is_under_a_tenth_of_the_raw_text() -> None:
    lines = _thousand_lines()
    raw = "\n".join(lines)
    rendered = compress(lines).render()
    assert len(rendered) < len(raw) / 10
    assert rendered.splitlines()[0].startswith("×600  Connection refused to <IP>:<NUM>  (e.g. ")


def test_secrets_in_repeated_lines_never_reach_the_summary() -> None:
    lines = [f"login user={i} password=Hunter{i}xyz from 10.0.0.{i % 250}" for i in range(200)]
    lines += [f"call with Authorization: Bearer tok{i}ABCDEF" for i in range(50)]
    lines += ["key follows", *PEM.splitlines(), "key done"]
    summary = compress(lines)
    rendered = summary.render(max_chars=100_000)
    assert "Hunter" not in rendered and "tok" not in rendered and "MIIE" not in rendered
    assert all("Hunter" not in t.example and "MIIE" not in t.example for t in summary.templates)
    assert f"password={R}" in rendered
    assert sum(t.count for t in summary.templates) == summary.total_lines == len(lines)


def test_templates_ordered_by_count_then_first_seen() -> None:
    lines = ["alpha started"] + ["beta step one"] * 2 + ["gamma went away"] * 2 + ["delta"] * 5
    summary = compress(lines)
    assert [(t.template, t.count, t.first_index) for t in summary.templates] == [
        ("delta", 5, 5),
        ("beta step one", 2, 1),
        ("gamma went away", 2, 3),
        ("alpha started", 1, 0),
    ]


def test_blank_lines_are_skipped_and_indices_kept() -> None:
    summary = compress(["", "hello world\n", "  ", "hello world\r\n"])
    assert summary.total_lines == 2
    assert summary.templates == (LogTemplate("hello world", 2, "hello world", 1),)
    assert summary.render() == "×2  hello world"


def test_multi_line_records_render_on_one_line() -> None:
    summary = compress(['Traceback (most recent call last):\n  File "x.py", line 3\nValueError: boom'])
    assert summary.render() == (
        '×1  Traceback (most recent call last): File "x.py", line <NUM> ValueError: boom'
        '  (e.g. "Traceback (most recent call last):\\n  File "x.py", line 3\\nValueError: boom")'
    )


def test_max_templates_keeps_the_largest() -> None:
    # Drain only compares lines with the same number of words: ten lengths are ten templates.
    lines = [" ".join(["tick"] * (k + 1)) for k in range(10) for _ in range(k + 1)]
    summary = compress(lines, max_templates=3)
    assert [t.count for t in summary.templates] == [10, 9, 8]
    assert summary.omitted_templates == 7
    assert summary.total_lines == 55
    assert summary.render().splitlines()[-1] == "… 7 more templates"


def test_render_cuts_at_max_chars() -> None:
    templates = tuple(LogTemplate(f"template number {i:02d} of many", 20 - i, "", i) for i in range(20))
    summary = LogSummary(total_lines=210, templates=templates, omitted_templates=5)
    full = summary.render(max_chars=100_000)
    assert full.splitlines()[-1] == "… 5 more templates"
    cut = summary.render(max_chars=200)
    assert len(cut) <= 200
    lines = cut.splitlines()
    assert lines[-1] == f"… {25 - (len(lines) - 1)} more templates"
    assert lines[:-1] == full.splitlines()[: len(lines) - 1]
    assert len(summary.render(max_chars=10)) <= 10


def test_calls_share_no_state() -> None:
    first = compress(["disk full on sda"] * 3)
    compress([f"unrelated line {i}" for i in range(100)])
    assert compress(["disk full on sda"] * 3) == first
