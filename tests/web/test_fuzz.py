"""Hostile input, generated: whatever arrives, no answer is a 5xx and nothing logs an error; a refusal (4xx)
changes nothing in the store; and every delivery the webhook accepts is stored.

Each test keeps one app (and one incident with a pending proposal) across its examples, so that the fuzzer
reaches the paths that need stored data; every example compares the store before and after its own request.
That sharing is why the function-scoped-fixture health check is suppressed. Seeded (`derandomize`), bounded,
and with no example database, so that every run tries the same inputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from aiops.actions.links import form_proof, make_token, signing_key
from aiops.service import Services
from tests.conftest import DATA
from tests.fakes.feishu import FeishuCallbacks
from tests.support.app import AUTH, proposals
from tests.web.test_feishu_callbacks import ENCRYPT_KEY, ENCRYPTED, TOKEN, callback_client

FIRING: dict[str, Any] = json.loads((DATA / "firing.json").read_text())
AUTH_HEADER = AUTH["Authorization"]
STORED = ("deliveries", "jobs", "incidents", "alerts", "proposals", "audit")
USER_HEADER = "X-Forwarded-User"
REMEDIATION: dict[str, Any] = {
    "trusted_user_header": USER_HEADER,
    "approvers": {"web": ["alice"], "feishu": ["ou_alice"]},
}
ARGV = ("systemctl", "restart", "nginx")


def fuzzing(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def mostly(usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten: the odd cases are tried, and most examples still get past the first check."""
    return st.integers(0, 9).flatmap(lambda n: usual if n else unusual)


# What hostile input is made of.
BIG_INTS = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**30, 10**4299])
# A NUL (PostgreSQL's text cannot hold one), a lone surrogate, invisible and reordering characters, digits that
# str.isdigit() takes and int() refuses or reads otherwise.
ODD_CHARACTERS = ["\x00", "\ud800", "\ufeff", "\u202e", "\u2028", "²", "٣", "𝟙", "Ⅻ", "\x7f", "\n"]
NUMERALS = st.text(st.characters(categories=["Nd", "Nl", "No"]), min_size=1, max_size=6)
ODD_TEXT = st.one_of(
    st.sampled_from(["", " ", "a\x00b", "0x10", "-1", "1e3", "x" * 5000, *ODD_CHARACTERS]),
    NUMERALS,
)
TEXT = st.one_of(st.text(max_size=20), st.text(st.characters(codec="utf-8"), max_size=20), ODD_TEXT)


def _utf8(value: str) -> bool:
    """Whether `value` can travel in a URL or a form: a lone surrogate cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


URL_TEXT = TEXT.filter(_utf8)
TIMES = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:00:00-14:00",
            "9999-12-31T23:59:59.999999Z",
            "0001-01-01T00:30:00+01:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00",
            "0000-12-31T23:59:59Z",
            "10000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+23:59",
            "2026-01-01",
        ]
    ),
    st.builds(
        lambda moment, hours, minutes: (
            f"{moment.isoformat()}{'+' if hours >= 0 else '-'}{abs(hours):02}:{minutes:02}"
        ),
        # Near either end of what datetime holds, where an offset carries the time out of it.
        st.datetimes(max_value=datetime(1, 1, 2))
        | st.datetimes(min_value=datetime(9999, 12, 31))
        | st.datetimes(),
        st.integers(-23, 23),
        st.integers(0, 59),
    ),
    st.floats(allow_nan=False),
    BIG_INTS,
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS, st.floats(), TEXT, TIMES)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
ODD_CONTENT_TYPES = st.sampled_from(
    ["application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded"]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


def paths(document: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, the root included."""
    found = [at]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*at, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*at, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` changed in one to three places: a value made hostile in kind (an odd string, a huge number, an
    odd time) or replaced by any type, a key removed, or a key added."""
    copy = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["time", "hostile", "hostile", "replace", "remove", "add"]))
        times = [where for where in paths(copy) if where[-1:] in (("startsAt",), ("endsAt",))]
        where = draw(st.sampled_from(times if how == "time" and times else paths(copy)))
        value = draw(hostile(where, _at(copy, where)) if how in ("time", "hostile") else VALUES)
        copy = _mutate(copy, where, how, value, draw(TEXT))
    return copy


def hostile(where: tuple[Any, ...], value: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as `value`, chosen to break what reads it."""
    if where[-1:] in (("startsAt",), ("endsAt",)):
        return TIMES
    if isinstance(value, str):
        return ODD_TEXT | st.builds(_insert, st.just(value), st.sampled_from(ODD_CHARACTERS), st.integers(0))
    if isinstance(value, int):
        return BIG_INTS | st.integers()
    return VALUES


def _insert(text: str, character: str, position: int) -> str:
    position %= len(text) + 1
    return text[:position] + character + text[position:]


def _mutate(document: Any, where: tuple[Any, ...], how: str, value: Any, key: str) -> Any:
    if how == "add":
        if isinstance(node := _at(document, where), dict):
            node[key] = value
        return document
    if not where:
        return document if how == "remove" else value
    parent = _at(document, where[:-1])
    if how == "remove":
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return document


def _at(document: Any, where: tuple[Any, ...]) -> Any:
    for step in where:
        document = document[step]
    return document


def encoded(document: Any, ascii_only: bool) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")


def firing_example(alert: dict[str, Any] | None = None, **changes: Any) -> example:
    """tests/data/firing.json with `changes` and its alert's `alert` changes, as an example of the webhook test."""
    body = json.loads(json.dumps(FIRING)) | changes
    body["alerts"][0].update(alert or {})
    return example(body=json.dumps(body).encode(), content_type="application/json", token=AUTH_HEADER)


WEBHOOK_BODIES = mostly(
    st.builds(encoded, mutated(FIRING), st.booleans()),
    st.builds(encoded, VALUES, st.booleans()) | st.binary(max_size=64),
)


@dataclass
class Target:
    """The running app, with one incident and one pending proposal, and the ways in to that proposal."""

    client: httpx.AsyncClient
    # The callback route, given the Feishu app's config explicitly, as tests/web/test_feishu_callbacks.py does.
    feishu: httpx.AsyncClient
    services: Services
    proposal: dict[str, Any]
    token: str
    key: bytes
    caplog: pytest.LogCaptureFixture

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How a failing example shows this argument (IPython's protocol, which hypothesis follows): briefly."""
        printer.text(f"Target(proposal={self.proposal['id']}, token={self.token!r})")

    async def counts(self) -> dict[str, int]:
        """The rows in each table a request could add to, in one query (it runs around every example)."""
        counted = ", ".join(f"(SELECT count(*) FROM {table})" for table in STORED)
        async with self.services.engine.connect() as conn:
            row = (await conn.execute(text(f"SELECT {counted}"))).one()
        return dict(zip(STORED, row, strict=True))

    async def answer(
        self, send: Callable[[], Awaitable[httpx.Response]], may_change_on_4xx: tuple[str, ...] = ()
    ) -> httpx.Response:
        """`send()`'s answer, once it is shown not to be a 5xx, to log no error, and (a 4xx) to change nothing."""
        before = await self.counts()
        self.caplog.clear()
        answer = await send()
        if currently_in_test_context():  # for --hypothesis-show-statistics
            event(f"answered {answer.status_code}")
        assert answer.status_code < 500, answer.text
        failures = [r for r in self.caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not failures, [r.getMessage() for r in failures]
        assert "Traceback" not in self.caplog.text
        if 400 <= answer.status_code < 500:
            after = await self.counts()
            kept = [table for table in STORED if table not in may_change_on_4xx]
            assert {t: after[t] for t in kept} == {t: before[t] for t in kept}, answer.text
        return answer


@pytest.fixture
async def target(app_for: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> AsyncIterator[Target]:
    async with app_for(remediation=REMEDIATION, server={"language": "en"}) as (client, services):
        [item] = await proposals(client, services, [ARGV])
        key = await signing_key(services.engine, services.settings.remediation)
        token = make_token(key, item["id"], item["argv_hash"], item["expires_at"].timestamp())
        async with callback_client(services, ENCRYPTED) as feishu:
            yield Target(client, feishu, services, item, token, key, caplog)


@fuzzing(200)
# Inputs that were answered 500 or 503, tried every time: times that overflow once in UTC, a NUL (which
# PostgreSQL's text cannot hold), a number past the INTEGER column.
@firing_example({"startsAt": "0001-01-01T00:30:00+01:00"})
@firing_example({"endsAt": "9999-12-31T23:00:00-14:00"})
@firing_example(receiver="a\x00b")
@firing_example(truncatedAlerts=2**31)
@given(
    body=WEBHOOK_BODIES,
    content_type=mostly(st.just("application/json"), ODD_CONTENT_TYPES),
    token=mostly(st.just(AUTH_HEADER), st.sampled_from([None, "Bearer wrong", "Basic Og=="])),
)
async def test_webhook(target: Target, body: bytes, content_type: str, token: str | None) -> None:
    headers = {"Content-Type": content_type} | ({"Authorization": token} if token else {})
    answer = await target.answer(
        lambda: target.client.post("/webhook/alertmanager", content=body, headers=headers)
    )
    if answer.status_code == 200:
        async with target.services.engine.connect() as conn:
            stored = await conn.execute(
                text("SELECT count(*) FROM deliveries WHERE id = :id"), {"id": answer.json()["delivery"]}
            )
        assert stored.scalar_one() == 1


IDS = st.one_of(
    st.just("1"),
    st.integers(min_value=0).map(str),
    BIG_INTS.map(str),
    st.sampled_from(["9" * 5000, "0" * 30 + "1", "-1", "1.0", "1e3", " 1", "0x1"]),
    NUMERALS,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
)
PARAMS = st.dictionaries(
    st.sampled_from(["limit", "before", "status"]) | URL_TEXT,
    st.one_of(IDS, URL_TEXT, st.sampled_from(["open", "resolved", "50", "200", "201", "0"])),
    max_size=3,
)


def segment(value: str) -> str:
    return quote(value, safe="", errors="surrogatepass")


@fuzzing(80)
@example(incident=str(2**63))
@example(incident="9" * 5000)
@example(incident="²")
@given(incident=IDS)
async def test_incident_api(target: Target, incident: str) -> None:
    answer = await target.answer(lambda: target.client.get(f"/api/v1/incidents/{segment(incident)}"))
    assert answer.status_code in (200, 404) or answer.is_redirect, answer.text


@fuzzing(80)
@example(params={"before": str(2**63)})
@example(params={"limit": "²"})
@example(params={"limit": "٣"})
@given(params=PARAMS)
async def test_incident_list_api(target: Target, params: dict[str, str]) -> None:
    answer = await target.answer(lambda: target.client.get("/api/v1/incidents", params=params))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json()["error"].split(":")[0] in ("status", "limit", "before")


@fuzzing(60)
@given(incident=IDS, params=PARAMS)
async def test_pages(target: Target, incident: str, params: dict[str, str]) -> None:
    listing = await target.answer(lambda: target.client.get("/", params=params))
    page = await target.answer(lambda: target.client.get(f"/incidents/{segment(incident)}"))
    assert listing.status_code in (200, 400) and page.status_code in (200, 404)


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


@st.composite
def feishu_requests(draw: st.DrawFn, item: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """A click on the proposal's card with one of its fields hostile (or none), then maybe mutated further; or
    any JSON. Mostly sent as Feishu sends it (encrypted and signed), else in the clear, as garbage, or with a
    header changed."""
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    fields = {
        "proposal": (st.just(item["id"]), st.one_of(BIG_INTS, NUMERALS, IDS, VALUES)),
        "decision": (st.sampled_from(["approve", "reject"]), VALUES),
        "hash": (st.just(item["argv_hash"][:16]), TEXT),
        "open_id": (st.sampled_from(["ou_alice", "ou_mallory"]), TEXT),
    }
    broken = draw(st.sampled_from([None, *fields]))
    value = {name: draw(hostile if name == broken else right) for name, (right, hostile) in fields.items()}
    click = sender.card_action(value.pop("open_id"), value)
    payload = draw(
        mostly(
            st.just(click),
            mutated(click) | st.builds(sender.url_verification, TEXT) | VALUES.map(lambda v: {"x": v}),
        )
    )
    body, signed = sender.request(payload)
    headers: dict[str, Any] = dict(signed)
    how = draw(mostly(st.just("signed"), st.sampled_from(["plain", "garbage", "headers"])))
    if how == "plain":
        body = encoded(payload, ascii_only=True)
    elif how == "garbage":
        body = draw(st.binary(max_size=64) | st.builds(encoded, VALUES, st.booleans()))
    elif how == "headers":
        name = draw(st.sampled_from(["X-Lark-Signature", "X-Lark-Request-Timestamp", "X-Lark-Request-Nonce"]))
        headers[name] = draw(HEADER_TEXT).encode("latin-1")
    return body, headers


@fuzzing(120)
@given(data=st.data())
async def test_feishu_callback(target: Target, data: st.DataObject) -> None:
    body, headers = data.draw(feishu_requests(target.proposal))
    await target.answer(lambda: target.feishu.post("/callbacks/feishu", content=body, headers=headers))


# Clicks that were answered 500: ids that int() refuses ('²'), reads otherwise ('٣') or the store cannot hold,
# and an open_id with a NUL, which the audit trail cannot hold. None stands for the proposal's own id.
ODD_CLICKS = [
    ("ou_alice", "²"),
    ("ou_alice", "٣"),
    ("ou_alice", 2**63),
    ("ou_alice", "9" * 30),
    ("ou_\x00", None),
]


@pytest.mark.parametrize(("open_id", "proposal"), ODD_CLICKS)
async def test_a_click_naming_what_cannot_be_is_malformed(
    target: Target, open_id: str, proposal: Any
) -> None:
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    item = target.proposal
    value = {"proposal": proposal or item["id"], "decision": "approve", "hash": item["argv_hash"][:16]}
    body, headers = sender.request(sender.card_action(open_id, value))
    before = await target.counts()
    answer = await target.answer(
        lambda: target.feishu.post("/callbacks/feishu", content=body, headers=headers)
    )
    assert answer.status_code == 200 and answer.json()["toast"]["type"] == "error", answer.text
    assert await target.counts() == before


@st.composite
def tokens(draw: st.DrawFn, real: str) -> str:
    """The proposal's own link token, changed a little, or anything at all."""
    middle = draw(st.integers(0, len(real) - 1))
    token: str = draw(
        st.one_of(
            st.just(real),
            st.just(real[:middle] + draw(st.sampled_from("A_-0²")) + real[middle + 1 :]),
            st.just(real[:middle]),
            st.just(real + draw(URL_TEXT)),
            URL_TEXT.filter(bool),
            st.text(st.sampled_from("ABCDEFabcdef0123456789_-"), min_size=1, max_size=200),
        )
    )
    return token


@st.composite
def forms(draw: st.DrawFn, proof: str) -> tuple[bytes, str]:
    fields = draw(
        st.dictionaries(
            st.sampled_from(["decision", "proof"]) | URL_TEXT,
            st.sampled_from(["approve", "reject", proof]) | URL_TEXT,
            max_size=4,
        )
    )
    body = str(httpx.QueryParams(fields)).encode()
    body = draw(st.just(body) | st.binary(max_size=64) | st.just(b"proof=" + b"x" * 5000))
    content_type = draw(mostly(st.just("application/x-www-form-urlencoded"), ODD_CONTENT_TYPES))
    return body, content_type


@fuzzing(80)
@given(data=st.data(), method=st.sampled_from(["GET", "POST"]))
async def test_approval_page(target: Target, data: st.DataObject, method: str) -> None:
    token = data.draw(tokens(target.token))
    user = data.draw(st.sampled_from(["alice", "mallory", ""]) | HEADER_TEXT)
    headers: dict[str, Any] = {USER_HEADER: user.encode("latin-1")}
    url = f"/approvals/{segment(token)}"
    if method == "GET":
        await target.answer(lambda: target.client.get(url, headers=headers))
        return
    body, content_type = data.draw(forms(form_proof(target.key, token, user.strip())))
    headers["Content-Type"] = content_type
    # A refused or late decision is a 409 that the audit trail records.
    await target.answer(lambda: target.client.post(url, content=body, headers=headers), ("audit",))
