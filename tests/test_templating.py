"""Every message aiops writes, in the reader's language: the console, the four chat channels, the pages and Grafana's
annotations, for three incidents run through the real pipeline — one no runbook covers, one whose actions are
refused, one whose model answer cannot be used.

In zh-CN nothing may read as English apart from what is not aiops's to translate; in en nothing may read as
Chinese. What is not aiops's to translate, and is removed before looking:

- what the incident brought: label names and values, annotations, titles, the alert's expression;
- what the team wrote: the runbooks and the action catalog (ids, argv), host and user names;
- what the model wrote, and what another system answered (a message's `detail`, a command's output);
- identifiers: channel, stage, state and purpose names, paths, commits, hashes, URLs, code (`…`, <code>, <pre>).

An English sentence is then three or more English words (letters only, an apostrophe allowed) in a row, numbers
and punctuation between them not counting as a break; anything else — a Chinese character, an identifier — breaks
the row: "没有匹配的处置手册 — no runbook for X: none of 24 runbooks claims it", as cards read before reasons were
messages, is one (`test_the_check_finds_what_cards_showed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import shlex
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.approvals import Actor
from aiops.channels import Announcement, Digest, DigestEntry, Storm
from aiops.channels.dingtalk import DingTalkChannel
from aiops.channels.dingtalk.config import DingTalkConfig
from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig
from aiops.channels.discord.channel import DiscordChannel, DiscordConfig
from aiops.channels.feishu import FeishuChannel, FeishuConfig
from aiops.channels.feishu.card import Cards
from aiops.channels.feishu.clicks import FeishuClicks
from aiops.channels.feishu_webhook import FeishuWebhookChannel, FeishuWebhookConfig
from aiops.channels.records import ProposalRecord, proposal_records
from aiops.channels.wecom.channel import WeComChannel, WeComConfig
from aiops.channels.wecom_webhook import WeComWebhookChannel, WeComWebhookConfig
from aiops.chat import Ran, Replying
from aiops.chat import Reply as ChatReply
from aiops.export import incident_markdown
from aiops.i18n import message
from aiops.passwords import hash_password
from aiops.pipeline.notify import DELIVER
from aiops.service import Services
from aiops.store import actions, incidents, jobs
from aiops.store.codec import dumps
from aiops.templating import shorten
from aiops.web.app import create_app
from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.fakes.prometheus import FakePrometheus
from tests.llm.conftest import llm
from tests.support.app import AUTH, settings_for
from tests.web.test_approvals import basic, proof_on

DISK_RUNBOOK = """---
title: Host disk almost full
alerts: [HostOutOfDiskSpace]
actions: [journal-vacuum, restart-db]
evidence:
  metrics:
    - name: free_ratio
      query: node_filesystem_avail_bytes{instance="{{ labels.instance }}"}
      range: 1h
---
# Symptoms
The root filesystem is nearly full.

# What to do
1. Safe: `journal-vacuum` shrinks the journal to 500 MB (oldest archived files only). Worth it when
   `journal-disk-usage` shows more than a gigabyte.
2. Restart the database only after checking what holds the space.
"""
LOAD_RUNBOOK = """---
title: Host load is high
alerts: [HostHighLoad]
---
# What to do
- Find the processes that use the most CPU with `top -o %CPU`, and check whether one of them is a runaway job
  that can be stopped without harm to the users of this host.
- Compare with the same hour of the previous days before you decide that anything is wrong.
"""
CATALOG = """
journal-vacuum:
  description: Shrink the systemd journal to 500 MB
  argv: [journalctl, --vacuum-size=500M]
  target: labels.instance
  risk: low
  timeout: 60s
restart-db:
  description: Restart the database
  argv: [systemctl, restart, postgresql]
  target: host:db-1
  risk: high
  timeout: 60s
"""
# What the model answers for each alert, in each language; HostHighLoad gets an answer that is no JSON at all.
ANSWERS = {
    "zh-CN": {
        "DiskQuotaExceeded": {
            "summary": "用户 alice 的磁盘配额已用尽。",
            "probable_cause": "一个导出任务在家目录中写入了大量文件。",
            "confidence": "medium",
            "evidence": ["E1"],
            "next_steps": ["找出占用空间最多的目录", "与 alice 确认哪些文件可以删除"],
            "actions": [{"id": "journal-vacuum", "reason": "日志占用空间"}],
        },
        "HostOutOfDiskSpace": {
            "summary": "web-1 的根分区已用 93%，仍在增长。",
            "probable_cause": "systemd 日志没有大小上限。",
            "confidence": "high",
            "evidence": ["E1", "E2"],
            "impact": "一小时内写入将失败。",
            "next_steps": ["清理日志", "在 journald.conf 中设置 SystemMaxUse"],
            "actions": [
                {"id": "journal-vacuum", "reason": "日志是最大的占用者"},
                {"id": "restart-db", "reason": "数据库持有已删除的文件"},
                {"id": "rm-rf", "reason": "腾出空间"},
            ],
        },
    },
    "en": {
        "DiskQuotaExceeded": {
            "summary": "The disk quota of alice is used up.",
            "probable_cause": "An export job wrote many files into the home directory.",
            "confidence": "medium",
            "evidence": ["E1"],
            "next_steps": ["Find the largest directories", "Ask alice which files can go"],
            "actions": [{"id": "journal-vacuum", "reason": "the journal takes space"}],
        },
        "HostOutOfDiskSpace": {
            "summary": "The root filesystem of web-1 is 93% full and still filling.",
            "probable_cause": "The systemd journal has no size limit.",
            "confidence": "high",
            "evidence": ["E1", "E2"],
            "impact": "Writes will fail within the hour.",
            "next_steps": ["Vacuum the journal", "Set SystemMaxUse in journald.conf"],
            "actions": [
                {"id": "journal-vacuum", "reason": "the journal is the largest consumer"},
                {"id": "restart-db", "reason": "the database holds deleted files open"},
                {"id": "rm-rf", "reason": "make room"},
            ],
        },
    },
}
ALICE = {"username": "alice", "password_hash": hash_password("alice-password")}
AS_ALICE = basic("alice", "alice-password")
# The message templates: every template but the model's prompts.
TEMPLATES = Path(__file__).resolve().parents[1] / "aiops" / "templates"
MESSAGE_TEMPLATES = sorted(
    path.relative_to(TEMPLATES).as_posix()
    for path in TEMPLATES.rglob("*.j2")
    if path.relative_to(TEMPLATES).parts[0] != "prompts"
)


@dataclasses.dataclass
class Rendered:
    """What the readers were shown, where, and what in it is not aiops's to translate."""

    texts: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (where, text)
    foreign: set[str] = dataclasses.field(default_factory=set)

    def add(self, where: str, body: str) -> None:
        self.texts.extend((where, value) for value in _strings(body))


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_every_message_reads_in_its_language(
    language: str,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    fake_minimax: FakeMiniMax,
    fake_prometheus: FakePrometheus,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rendered = Rendered()
    async with app(engine, database_url, tmp_path, fake_minimax, fake_prometheus, language) as (
        client,
        services,
    ):
        channels = chat_channels(services)
        services.pipeline.stages = dataclasses.replace(
            services.pipeline.stages, channels=[*services.pipeline.stages.channels, *channels]
        )
        await three_incidents(client, services, fake_prometheus)
        await decide(client, services, rendered)
        await work(services)
        await services.pipeline.run(await post(client, payload("DiskQuotaExceeded", "resolved")))
        await pages(client, rendered)
        await by_hand(services, channels, rendered)
        rendered.foreign |= await foreign(services.engine)
        loaded = {name for _, name in services.templates.cache or ()}  # every template a render loaded
    rendered.add("console", capsys.readouterr().out)
    async with engine.connect() as conn:
        for row in await conn.execute(text("SELECT channel, purpose, body FROM notifications")):
            rendered.add(f"{row.channel} {row.purpose}", row.body)
    rendered.foreign |= {line for text in (DISK_RUNBOOK, LOAD_RUNBOOK, CATALOG) for line in text.splitlines()}
    rendered.foreign |= {
        value for answer in ANSWERS[language].values() for value in _strings(json.dumps(answer))
    }
    rendered.foreign = _pieces(rendered.foreign)

    assert [name for name in MESSAGE_TEMPLATES if name not in loaded] == []
    found = [
        (where, said)
        for where, body in rendered.texts
        for said in (
            english(body, rendered.foreign) if language == "zh-CN" else chinese(body, rendered.foreign)
        )
    ]
    assert found == [], "\n".join(f"{where}: {said}" for where, said in found)


@asynccontextmanager
async def app(
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    fake_minimax: FakeMiniMax,
    fake_prometheus: FakePrometheus,
    language: str,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HostOutOfDiskSpace.md").write_text(DISK_RUNBOOK)
    (folder / "HostHighLoad.md").write_text(LOAD_RUNBOOK)
    (folder / "actions.yml").write_text(CATALOG)
    fake_minimax.responder = lambda request: answer(request, language)
    settings = settings_for(
        database_url,
        server={"language": language},
        llm=llm(fake_minimax),
        prometheus={"url": fake_prometheus.url},
        runbooks={"dir": str(folder)},
        grafana={"url": "http://127.0.0.1:9"},
        hosts={
            "db-1": {
                "address": "127.0.0.1",
                "user": "ops",
                "key_file": str(tmp_path / "no-such-key"),
                "known_hosts": str(tmp_path / "known_hosts"),
            }
        },
        remediation={"web_users": [ALICE], "approvers": {"web": ["alice"], "cli": ["oncall"]}},
    )
    application = create_app(settings, engine=engine, workers=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://aiops") as client:
            yield client, application.state.services


async def three_incidents(client: httpx.AsyncClient, services: Services, prometheus: FakePrometheus) -> None:
    """No runbook covers the first; the second's actions are refused but one, and it is updated; the third's
    model answer cannot be used, and Prometheus refuses its query."""
    for name in ("DiskQuotaExceeded", "HostOutOfDiskSpace"):
        await services.pipeline.run(await post(client, payload(name)))
    prometheus.error = (400, "bad_data", 'parse error at char 5: unexpected "}"')
    await services.pipeline.run(await post(client, payload("HostHighLoad")))
    update = payload("HostOutOfDiskSpace", mountpoints=("/", "/var"))
    await services.pipeline.run(await post(client, update))


def answer(request: dict[str, Any], language: str) -> Reply:
    """The model's answer to a diagnosis request, by the alert the prompt is about."""
    prompt = "\n".join(str(message.get("content")) for message in request["messages"])
    if "HostHighLoad" in prompt:
        return Reply(content="The load is high. I would look at top.")
    name = "DiskQuotaExceeded" if "DiskQuotaExceeded" in prompt else "HostOutOfDiskSpace"
    return Reply(content=json.dumps(ANSWERS[language][name], ensure_ascii=False))


def payload(name: str, status: str = "firing", mountpoints: tuple[str, ...] = ("/",)) -> bytes:
    """A notification of one alert (one per mount point): a later one with more mount points updates the
    incident."""
    body = json.loads((DATA / "firing.json").read_text())
    instance = {"DiskQuotaExceeded": "web-2:9100", "HostOutOfDiskSpace": "web-1:9100"}.get(name, "db-1:9100")
    common = {"alertname": name, "instance": instance, "job": "node", "severity": "warning"}
    summary = {
        "DiskQuotaExceeded": "Disk quota exceeded for user alice",
        "HostOutOfDiskSpace": "Host out of disk space (instance web-1:9100)",
        "HostHighLoad": "Host load is high (instance db-1:9100)",
    }[name]
    annotations = {"summary": summary, "description": f"{summary}, for ten minutes now"}
    alerts = [
        {
            **body["alerts"][0],
            "labels": {**common, "mountpoint": mountpoint},
            "annotations": annotations,
            "status": status,
            "fingerprint": hashlib.sha256(f"{name}{mountpoint}".encode()).hexdigest()[:16],
            "endsAt": "2026-11-24T03:40:00Z" if status == "resolved" else body["alerts"][0]["endsAt"],
        }
        for mountpoint in mountpoints
    ]
    body.update(
        alerts=alerts,
        status=status,
        groupKey=f'{{}}:{{alertname="{name}"}}',
        groupLabels={"alertname": name},
        commonLabels=common,
        commonAnnotations=annotations,
    )
    return json.dumps(body).encode()


async def post(client: httpx.AsyncClient, body: bytes) -> int:
    answered = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
    return int(answered.json()["delivery"])


def chat_channels(services: Services) -> list[Any]:
    """The chat channels, rendering with the service's templates; their messages wait in the outbox."""
    templates, http = services.templates, services.http
    robot = "https://open.feishu.cn/open-apis/bot/v2/hook/0000"
    return [
        FeishuChannel(
            FeishuConfig(app_id="cli_a", app_secret=SecretStr("s"), chat_id="oc_a"), templates, http
        ),
        DingTalkChannel(
            DingTalkConfig.model_validate(
                {
                    "client_id": "ding",
                    "client_secret": "s",
                    "open_conversation_id": "cid",
                    "card_template_id": "t",
                }
            ),
            templates,
            http,
        ),
        FeishuWebhookChannel(FeishuWebhookConfig(name="feishu_robot", url=robot), templates, http),
        DingTalkWebhookChannel(
            DingTalkWebhookConfig(
                name="dingtalk_robot", url="https://oapi.dingtalk.com/robot/send?access_token=0000"
            ),
            templates,
            http,
        ),
        *unregistered_channels(templates, http),
    ]


def unregistered_channels(templates: Any, http: httpx.AsyncClient) -> list[Any]:
    """WeCom's and Discord's channels, until the channel registry makes them configurable."""
    wecom = {"corp_id": "ww0", "agent_id": 1000002, "corp_secret": "s", "touser": ["zhangsan"]}
    discord = {
        "application_id": "1000000000000000001",
        "public_key": "0" * 64,
        "bot_token": "t",
        "channel_id": "1100000000000000001",
    }
    return [
        WeComChannel(WeComConfig.model_validate(wecom), templates, http),
        WeComWebhookChannel(
            WeComWebhookConfig(name="wecom_robot", key=SecretStr("0000-0000-0000")), templates, http
        ),
        DiscordChannel(DiscordConfig.model_validate(discord), templates, http),
    ]


async def decide(client: httpx.AsyncClient, services: Services, rendered: Rendered) -> None:
    """The pending proposal: refused to a stranger, approved on the web page by alice, then clicked again."""
    async with services.engine.connect() as conn:
        pending, *_ = await actions.pending(conn)
    [url] = (await services.approvals.links("http://aiops", [pending])).values()
    path = "/" + url.split("/", 3)[3]
    stranger = await services.approvals.decide(pending["id"], True, Actor("cli", "mallory"))
    form = await client.get(path, headers=AS_ALICE)
    rendered.add("approval page", form.text)
    decided = await client.post(path, data={"proof": proof_on(form), "decision": "approve"}, headers=AS_ALICE)
    rendered.add("approval decided", decided.text)
    again = await services.approvals.decide(pending["id"], False, Actor("cli", "oncall"))
    clicks = FeishuClicks(services.decisions, services.templates)
    for decision in (stranger, again):
        rendered.add(
            "feishu toast",
            json.dumps(clicks.toast("error", outcome=decision.outcome, message=decision.message)),
        )
    rendered.add("feishu toast", json.dumps(clicks.toast("info", refusal="slow")))
    rendered.foreign |= {"mallory", "oncall", "alice"}


async def work(services: Services) -> None:
    """Run what the queue holds as the workers would (the execution above), leaving chat messages unsent."""
    while True:
        async with services.engine.begin() as conn:
            job = await jobs.claim(conn, "test", 60)
        if job is None:
            return
        if job.kind != DELIVER:
            await services.handlers[job.kind](job)
        async with services.engine.begin() as conn:
            await jobs.finish(conn, job.id, "test")


async def pages(client: httpx.AsyncClient, rendered: Rendered) -> None:
    for path in (
        "/",
        "/?status=open",
        "/incidents/1",
        "/incidents/2",
        "/incidents/3",
        "/incidents/99",
        "/?status=x",
    ):
        rendered.add(f"page {path}", (await client.get(path)).text)
    approval = await client.get("/approvals/not-a-token", headers=AS_ALICE)
    rendered.add("approval page, bad link", approval.text)
    rendered.add("remediation page", (await client.get("/remediation", headers=AS_ALICE)).text)


async def by_hand(services: Services, channels: list[Any], rendered: Rendered) -> None:
    """What the pipeline sends only in a storm or on a click: digests, storm cards, DingTalk's decision notices,
    Grafana's annotations."""
    async with services.engine.connect() as conn:
        found = [await incidents.get(conn, number) for number in (1, 2, 3)]
        proposals = (await actions.of_incident(conn, 2))["proposals"]
    entries = tuple(
        DigestEntry(
            item.id, item.title, item.severity, item.labels["alertname"], f"http://aiops/incidents/{item.id}"
        )
        for item in found
        if item is not None
    )
    signature = "HostOutOfDiskSpace job=node"
    storms = (None, Storm(1, signature, 3), Storm(1, signature, 3, "磁盘满，日志没有上限", "日志没有上限"))
    for channel in [*services.pipeline.stages.channels]:
        for storm in storms:
            rendered.add(
                f"{channel.name} digest", channel.render_digest(Digest(entries, "http://aiops", storm))
            )
    rendered.add("feishu, too many proposals", await crowded(services))
    for number in (1, 2, 3):
        exported = await incident_markdown(services.engine, services.templates, "http://aiops", number)
        rendered.add("incident export", exported or "")
    dingtalk = next(channel for channel in channels if isinstance(channel, DingTalkChannel))
    executed = next(item for item in proposals if item["execution"] is not None)
    decided, shown = ProposalRecord.from_row(executed), proposal_records(proposals)
    for outcome in ("approved", "rejected"):
        rendered.add("dingtalk decision", dingtalk.render_decision(outcome, decided, shown, "alice"))
    for outcome in ("approved", "already", "refused", "expired", "moot", "not_found", "changed", "bad_click"):
        rendered.add("dingtalk notice", dingtalk.notice(outcome, "alice", executed["detail"] or ""))
    ran = Ran("promql", 'node_filesystem_avail_bytes{job="node"}', "2.1 GiB")
    answer = ChatReply(
        (message("decision_not_approver", who="alice", channel="feishu"),),
        (ran,),
        2,
        "http://aiops/incidents/2",
        to_user="ou_alice",
    )
    for channel in channels:
        if isinstance(channel, Replying):  # an answer in chat (aiops/chat)
            rendered.add(f"{channel.name} chat reply", channel.render_reply(answer))
    rendered.foreign |= {ran.tool, ran.query, ran.result}
    unanswered = services.templates.get_template("discord/chat_unanswered.md.j2")
    for why in ("off", "ignored", "duplicate"):  # a slash command told at once why no answer follows
        rendered.add("discord chat unanswered", unanswered.render(why=why))
    annotations = services.pipeline.stages.annotations
    assert annotations is not None
    for item in found:
        assert item is not None
        for event in ("opened", "resolved"):
            rendered.add("grafana", annotations.annotation(item, event)["text"])
    rendered.add("grafana", annotations.annotation(found[1], "executed", executed)["text"])
    rendered.foreign |= {
        signature,
        "磁盘满，日志没有上限",
        "日志没有上限",
    }  # the storm's, and the model's words


async def crowded(services: Services) -> str:
    """The Feishu card of an incident with more proposals waiting than a card holds."""
    async with services.engine.connect() as conn:
        incident = await incidents.get(conn, 2)
        triage = await incidents.latest_triage(conn, 2)
        pending, *_ = [
            item for item in (await actions.of_incident(conn, 2))["proposals"] if item["host"] == "db-1"
        ]
    assert incident is not None and triage is not None
    record = ProposalRecord.from_row(pending)
    many = tuple(dataclasses.replace(record, id=number, state="pending") for number in range(1, 150))
    links = {number: f"http://aiops/approvals/{number}" for number in range(1, 150)}
    announcement = Announcement(
        "updated", incident, triage, "http://aiops/incidents/2", None, None, many, links
    )
    return Cards(services.templates).announcement(announcement)


async def foreign(engine: AsyncEngine) -> set[str]:
    """What the store holds that is not aiops's own wording: the incidents' data, the model's and other systems'
    words (a message's detail), and identifiers. Where aiops wrote a sentence, it is read, whatever its shape."""
    out: set[str] = set()
    async with engine.connect() as conn:
        for number in (1, 2, 3):
            found = await incidents.detail(conn, number)
            assert found is not None
            found.update(await actions.of_incident(conn, number))
            out |= _data(json.loads(dumps(found)))
    return {item for item in out if item}


def _data(incident: dict[str, Any]) -> set[str]:
    out = {incident["title"], incident["group_key"], incident["severity"], *_labels(incident["labels"])}
    for alert in incident["alerts"]:
        out |= {alert["name"], alert["generator_url"], *_labels(alert["labels"])}
        out |= {str(value) for value in alert["annotations"].values()}
    for triage in incident["triages"]:
        runbook = triage["runbook"]
        out |= {str(runbook[key]) for key in ("path", "commit", "title") if runbook.get(key)}
        out |= {item["query"] for item in triage["evidence"]}
        out |= _diagnosis(triage["diagnosis"]) | {error["stage"] for error in triage["errors"]}
    for proposal in incident["proposals"]:
        argv = [str(item) for item in proposal["argv"]]
        out |= {proposal["action_id"], str(proposal["host"]), proposal["argv_hash"], *argv, shlex.join(argv)}
        if proposal["origin"] == "model" and isinstance(proposal["reason"], str):
            out.add(proposal["reason"])  # the model's words
        execution = proposal["execution"] or {}
        out |= {str(execution.get(key) or "") for key in ("stdout", "stderr")}
    return out | set(_quoted(incident))


def _labels(labels: dict[str, str]) -> set[str]:
    pairs = [f"{key}={value}" for key, value in sorted(labels.items())]
    return {*labels, *labels.values(), *pairs, ", ".join(pairs)}


def _diagnosis(diagnosis: dict[str, Any]) -> set[str]:
    """The model's words, or the runbook's steps; an offline summary is aiops's own, and is read."""
    steps = {str(step) for step in diagnosis.get("next_steps") or []}
    usage = diagnosis.get("usage") or {}
    if diagnosis.get("source") != "llm":
        return steps | {str(usage.get("model", ""))}
    said = [diagnosis.get(key) for key in ("summary", "probable_cause", "impact")]
    reasons = [action.get("reason") for action in diagnosis.get("actions") or []]
    return steps | {str(text) for text in [*said, *reasons, usage.get("model")] if text}


def _quoted(document: Any) -> Iterator[str]:
    """The details of the messages in a document: what another system answered, in its own words."""
    if isinstance(document, dict):
        if "english" in document and "key" in document and document.get("detail"):
            yield str(document["detail"])
        for value in document.values():
            yield from _quoted(value)
    elif isinstance(document, list):
        for item in document:
            yield from _quoted(item)


def _pieces(foreign: set[str]) -> set[str]:
    """The texts to remove, and their sentences and clauses (a card may show a text cut short, a page a line of
    it). A single word is left alone: it never makes a sentence, and removing it would hide aiops's own."""
    out: set[str] = set()
    for item in foreign:
        for piece in [item.strip(), *re.split(r"[`.;:!?()\n]|\s{2,}|^\s*(?:[-*]|\d+\.)\s", item)]:
            piece = piece.strip(" ,-*")
            if len(piece) > 2 and not _WORD.fullmatch(piece) and not piece.isdigit():
                out.add(piece)
    return out


def _strings(body: str) -> Iterator[str]:
    """The texts in a message body: the string values of a JSON card (JSON inside JSON too), or the body."""
    try:
        loaded = json.loads(body)
    except ValueError:
        yield body
        return
    if isinstance(loaded, str):
        yield from _strings(loaded) if loaded[:1] in "{[" else [loaded]
    elif isinstance(loaded, dict | list):
        for value in loaded.values() if isinstance(loaded, dict) else loaded:
            if isinstance(value, str):
                yield from _strings(value) if value[:1] in "{[" else [value]
            elif isinstance(value, dict | list):
                yield from _strings(json.dumps(value))


# -- reading what is left

_BREAK = " \u2502 "  # where something was removed: a row of words never runs across it
_CODE = re.compile(r"<(style|script|code|pre)\b[^>]*>.*?</\1>|`[^`\n]*`", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"https?://[^\s)\]>\"'，）]+")
_ESCAPED = re.compile(r"\\([\\*\[\]`<>#~|_])")
_WORD = re.compile(r"[A-Z]?[a-z]+(?:'[a-z]+)?|[A-Z]+")  # no capital inside: CamelCase is a name
_NEUTRAL = re.compile(r"[0-9!-/:-@\[-`{-~·—–…×≈]+")  # numbers and punctuation: no word, and no break
_EDGES = "()[]{}\"'“”‘’,.;:!?*#>|·—–…（）【】《》「」，。；：！？、"  # sentence punctuation around a word
# WeCom markdown's escapes (aiops/channels/wecom/markdown.py): markup characters as their full-width forms.
_FULL_WIDTH = str.maketrans({chr(ord(char) + 0xFEE0): char for char in "<>*#`[]"})
_CUT = re.compile(r"([^\n\u2502]+)…")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")


def readable(body: str, foreign: set[str]) -> str:
    """What a reader reads as aiops's own words: markup, code, URLs and what is not aiops's removed."""
    value = _ESCAPED.sub(r"\1", html.unescape(body)).translate(_FULL_WIDTH)
    value = _CODE.sub(_BREAK, value)
    value = html.unescape(_TAG.sub(_BREAK, value))
    for item in sorted(foreign, key=len, reverse=True):
        if len(item) > 1:
            value = value.replace(item, _BREAK)
    value = _CUT.sub(lambda match: _uncut(match.group(1), foreign), value)
    return _URL.sub(_BREAK, value)


def _uncut(head: str, foreign: set[str]) -> str:
    """`head` (the text before a "…") without the start of a foreign text it ends in: a short field (a WeCom
    card's title) may cut one anywhere."""
    for item in foreign:
        for length in range(min(len(item), len(head)), 7, -1):
            if head.endswith(item[:length]):
                return head[:-length] + _BREAK
    return head + "…"


def english(body: str, foreign: set[str]) -> list[str]:
    """The English sentences in `body`: three or more English words in a row."""
    found: list[str] = []
    row: list[str] = []
    words = 0
    for token in [*readable(body, foreign).split(), _BREAK.strip()]:
        if _WORD.fullmatch(token.strip(_EDGES)):
            row.append(token)
            words += 1
        elif _NEUTRAL.fullmatch(token):
            row += [token] if row else []
        else:
            if words >= 3:
                found.append(" ".join(row))
            row, words = [], 0
    return found


def chinese(body: str, foreign: set[str]) -> list[str]:
    return _CJK.findall(readable(body, foreign))


def test_the_check_finds_what_cards_showed() -> None:
    """What zh-CN cards said before reasons were messages is found; a Chinese sentence with names in it is not."""
    shown = [
        "处置手册: 没有匹配的处置手册 — no runbook for X: none of 24 runbooks claims it",
        "诊断不可用：the model's answer could not be used: no JSON object found in the answer",
        "已拒绝 — no host 'web-1:9100' in the inventory; add it under `hosts:` in the config",
        "web-1:9100, mountpoint=/: min 10, max 95, last 95, 上升",
    ]
    assert [english(line, set()) for line in shown] == [
        ["no runbook for X: none of 24 runbooks claims it"],
        ["model's answer could not be used: no JSON object found in the answer"],
        ["in the inventory; add it under", "in the config"],
        ["min 10, max 95, last 95,"],
    ]
    fine = "Prometheus 拒绝了查询（HTTP 400，bad_data） · 由 MiniMax-M2 诊断 · front matter 的 alerts 列出了该告警"
    assert english(fine, set()) == []


@pytest.mark.parametrize(
    ("text", "limit", "shortened"),
    [
        (
            "Stop the job. Then look at the disk, which is the slow part of it.",
            40,
            "Stop the job. Then look at the disk…",
        ),
        ("Stop the job. Then look at the disk, which is the slow part of it.", 30, "Stop the job…"),
        ("先停止任务，再检查磁盘，磁盘是最慢的部分。", 13, "先停止任务，再检查磁盘…"),
        ("one two three four five six seven", 20, "one two three four…"),
        ("short", 20, "short"),
    ],
)
def test_shorten_cuts_after_a_sentence_or_clause(text: str, limit: int, shortened: str) -> None:
    assert shorten(text, limit) == shortened and len(shortened) <= limit
