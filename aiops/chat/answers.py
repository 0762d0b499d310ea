"""The `ask` job: one recorded chat message answered, and its reply handed to the outbox.

A command is decided on the path buttons take: `approve 12` is a `Press` through `Decisions` (allow-listed
approvers only, single use, bound to the command as stored), `silence 2h`, `ack` and `run <action>` become
proposals of the incident's card through the planner, the catalog and the policy (`Pipeline.propose`) — a risky one
from someone who is not an approver is refused before anything is recorded. A question goes to the model with the
incident's evidence and the read-only tools; without a model, or when it fails, the answer is what the store knows.

The job is idempotent: a message whose reply is recorded is not answered again after a crash, and the reply's own
`reply` job is keyed by the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiops.actions.policy import RemediationConfig
from aiops.channels import Channel
from aiops.channels.decisions import HASH_PREFIX, Choice, Decisions, Press
from aiops.chat import Ran, Reply, Replying
from aiops.chat.ask import ModelAsker
from aiops.chat.commands import Command, Parsed, parse
from aiops.chat.config import TURN_CHARS, TURNS_KEPT
from aiops.chat.firing import FiringError, firing
from aiops.i18n import message, say
from aiops.llm.client import LlmError
from aiops.models import Evidence, Text, Triage
from aiops.pipeline.runner import Pipeline
from aiops.store import actions, chat, incidents, jobs
from aiops.store.jobs import Job

log = logging.getLogger("aiops.chat")
REPLY = "reply"
_PROPOSED = ("pending", "approved", "suggested")  # the states a proposal made now can be in


@dataclass(frozen=True)
class Reach:
    """What answers reach besides the store: Alertmanager (for "firing"), and the HTTP client to reach it."""

    alertmanager_url: str | None = None
    http: httpx.AsyncClient | None = None


@dataclass(frozen=True)
class _About:
    """The message being answered, the incident it is about (None: none found) and the thread's last turns."""

    row: Mapping[str, Any]
    parsed: Parsed
    incident_id: int | None
    triage: Triage | None
    turns: list[dict[str, str]]


class Answers:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[str, Channel],
        decisions: Decisions,
        pipeline: Pipeline,
        remediation: RemediationConfig,
        base_url: str,
        language: str,
        model: ModelAsker | None = None,
        reach: Reach = Reach(),
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._decisions = decisions
        self._pipeline = pipeline
        self._remediation = remediation
        self._base_url = base_url
        self._language = language
        self._model = model
        self._reach = reach
        self.wake: Callable[[str], None] = lambda kind: None

    async def handle(self, job: Job) -> None:
        """The `ask` job."""
        async with self._engine.connect() as conn:
            row = await chat.get(conn, int(job.payload["message_id"]))
        if row is None or row["reply_state"] is not None:
            return  # answered before a crash: its reply job is queued already
        channel = self._channels.get(str(row["channel"]))
        if not isinstance(channel, Replying):
            log.warning("%s: cannot reply in chat; message %s left unanswered", row["channel"], row["id"])
            return
        about = await self._about(row)
        reply, outcome = await self._answer(about)
        await self._keep(about, reply, outcome, channel.render_reply(reply))

    async def _about(self, row: Mapping[str, Any]) -> _About:
        parsed = parse(str(row["text"]))
        async with self._engine.connect() as conn:
            kept, turns = await chat.conversation(conn, row["channel"], row["conversation"], row["thread"])
            incident_id = await self._incident(conn, row, parsed, kept)
            triage = await incidents.latest_triage(conn, incident_id) if incident_id is not None else None
        return _About(row, parsed, incident_id, triage, turns)

    async def _incident(
        self, conn: AsyncConnection, row: Mapping[str, Any], parsed: Parsed, kept: int | None
    ) -> int | None:
        """The incident `#id` names, else the one whose card the thread answers, else the thread's last one."""
        if parsed.incident_id is not None:
            return parsed.incident_id if await chat.incident_exists(conn, parsed.incident_id) else None
        if row["thread"]:
            found = await chat.incident_of_handle(conn, row["channel"], row["thread"])
            if found is not None:
                return found
        return kept

    async def _answer(self, about: _About) -> tuple[Reply, str]:
        outcome = str(about.row["outcome"])
        if outcome == chat.REFUSED:
            return self._reply(about, [message("chat_refused_stranger")], refusal=True), chat.REFUSED
        if outcome == chat.OVER_BUDGET:
            return self._reply(about, [message("chat_over_budget")], refusal=True), chat.OVER_BUDGET
        if about.parsed.problem is not None:
            said = message(f"chat_wrong_{about.parsed.problem}")
            return self._reply(about, [said, *_help()]), chat.DONE
        if about.parsed.command is not None:
            return self._reply(about, await self._command(about, about.parsed.command)), chat.DONE
        return await self._question(about)

    # -- commands

    async def _command(self, about: _About, command: Command) -> list[Text]:
        verb = command.verb
        if verb == "help":
            return _help()
        if verb == "firing":
            return await self._firing()
        if verb == "pending":
            return await self._pending(about.incident_id)
        if verb in ("approve", "reject"):
            return await self._decide(
                about, "approve" if verb == "approve" else "reject", int(command.argument)
            )
        if verb == "pause":
            decided = await self._decisions.decide(
                Press(about.row["kind"], about.row["user_id"], "pause", incident_id=about.incident_id)
            )
            return [decided.message]
        if about.incident_id is None or about.triage is None:
            return [message("chat_which_incident")]
        if verb == "status":
            return self._status(about)
        if verb == "runbook":
            return _runbook(about.triage)
        action_id = {"acknowledge": "acknowledge", "silence": "silence"}.get(verb, command.argument)
        params = {"duration": command.argument} if verb == "silence" else {}
        return await self._propose(about, action_id, params)

    async def _decide(self, about: _About, choice: Choice, proposal_id: int) -> list[Text]:
        """`approve 12` as the card's button would: bound to the command proposal 12 holds."""
        async with self._engine.connect() as conn:
            item = await actions.proposal(conn, proposal_id)
        hashed = str(item["argv_hash"])[:HASH_PREFIX] if item is not None else ""
        press = Press(about.row["kind"], about.row["user_id"], choice, proposal_id, hashed)
        decided = await self._decisions.decide(press)
        if decided.announcement is not None:
            await self._pipeline.show(decided.announcement, f"chat-{about.row['id']}-card")
        return [decided.message]

    async def _propose(self, about: _About, action_id: str, params: Mapping[str, str]) -> list[Text]:
        assert about.incident_id is not None
        user, kind = str(about.row["user_id"]), str(about.row["kind"])
        planner = self._pipeline.stages.planner
        action = planner.action(action_id) if planner is not None else None
        approver = self._remediation.approvers.allows(kind, user)
        if action is not None and action.risk != "low" and not approver:
            log.warning("%s asked in chat for %s, which only approvers may ask for", user, action_id)
            return [message("chat_risky_not_approver", action=action_id)]
        proposed = await self._pipeline.propose(about.incident_id, action_id, params, f"{kind}:{user}")
        if proposed.proposal is None:
            return [message("chat_proposal_refused", action=action_id, why=proposed.refusal or "")]
        item = proposed.proposal
        state = str(item["state"])
        key = f"chat_proposal_{state}" if state in _PROPOSED else "chat_proposal_other"
        said = message(key, id=int(item["id"]), action=action_id, command=" ".join(item["argv"]), state=state)
        return [said]

    async def _firing(self) -> list[Text]:
        url, http = self._reach.alertmanager_url, self._reach.http
        if url is None or http is None:
            return [message("chat_firing_unknown")]
        try:
            found = await firing(http, url)
        except FiringError as error:
            return [message("chat_firing_failed", detail=error)]
        if found.total == 0:
            return [message("chat_firing_none")]
        lines: list[Text] = [message("chat_firing_total", count=found.total)]
        lines += [message("chat_firing_line", name=n, severity=s, count=c) for n, s, c in found.counts]
        if found.omitted:
            lines.append(message("chat_firing_more", count=found.omitted))
        return lines

    async def _pending(self, incident_id: int | None) -> list[Text]:
        async with self._engine.connect() as conn:
            waiting = await actions.pending(conn, incident_id)
        if not waiting:
            return [message("chat_pending_none")]
        return [
            message(
                "chat_pending_line",
                id=int(item["id"]),
                incident=int(item["incident_id"]),
                action=str(item["action_id"]),
                command=" ".join(item["argv"]),
            )
            for item in waiting[:15]
        ]

    def _status(self, about: _About) -> list[Text]:
        triage = about.triage
        assert triage is not None
        incident = triage.correlation.incident
        lines: list[Text] = [
            message(
                "chat_status",
                id=incident.id,
                title=incident.title,
                status=message(incident.status),
                severity=incident.severity,
            ),
            message("chat_diagnosis", summary=triage.diagnosis.summary),
        ]
        if triage.diagnosis.probable_cause:
            lines.append(message("chat_cause", cause=triage.diagnosis.probable_cause))
        for item in triage.evidence[:5]:
            lines.append(message("chat_evidence_line", title=item.title, found=_found(item)))
        return lines + _runbook(triage)

    # -- questions

    async def _question(self, about: _About) -> tuple[Reply, str]:
        question = str(about.row["text"])
        if self._model is None:
            known = self._status(about) if about.triage is not None else [message("chat_which_incident")]
            return self._reply(about, [message("chat_no_model"), *known]), chat.ANSWERED
        try:
            answered = await self._model.answer(question, about.triage, about.turns)
        except (LlmError, TimeoutError) as error:
            log.warning("chat question %s: the model did not answer: %s", about.row["id"], error)
            known = self._status(about) if about.triage is not None else []
            return self._reply(about, [message("chat_model_failed", detail=error), *known]), chat.FAILED
        lines: list[Text] = [answered.text or message("chat_model_empty")]
        return self._reply(about, lines, answered.ran), chat.ANSWERED

    # -- the reply

    def _reply(
        self, about: _About, lines: Sequence[Text], ran: Sequence[Ran] = (), refusal: bool = False
    ) -> Reply:
        url = f"{self._base_url}/incidents/{about.incident_id}" if about.incident_id is not None else None
        user = None if about.row["direct"] else str(about.row["user_id"])
        return Reply(tuple(lines), tuple(ran), about.incident_id, url, refusal, user)

    async def _keep(self, about: _About, reply: Reply, outcome: str, body: str) -> None:
        """The reply recorded for the outbox, and the thread's turns, in one transaction."""
        row = about.row
        answer = " ".join(say(line, self._language) for line in reply.lines)
        turns = [
            *about.turns,
            {"role": "question", "text": str(row["text"])[:TURN_CHARS]},
            {"role": "answer", "text": answer[:TURN_CHARS]},
        ][-2 * TURNS_KEPT :]
        async with self._engine.begin() as conn:
            await chat.set_reply(conn, int(row["id"]), outcome, body, about.incident_id)
            if not reply.refusal:
                await chat.keep_conversation(
                    conn, row["channel"], row["conversation"], row["thread"], about.incident_id, turns
                )
            await jobs.enqueue(
                conn,
                REPLY,
                f"channel:{row['channel']}",
                {"message_id": int(row["id"])},
                dedup_key=f"reply-{row['id']}",
            )
        self.wake(REPLY)


def _help() -> list[Text]:
    return [message("chat_help")]


def _runbook(triage: Triage) -> list[Text]:
    runbook = triage.runbook
    if runbook.path is None:
        return [message("chat_no_runbook")]
    return [message("chat_runbook", path=runbook.path, title=runbook.title or runbook.path)]


def _found(item: Evidence) -> Text:
    """One evidence item in a few words: its worst series, its first line, or its error."""
    if item.error is not None:
        return item.error
    if item.series:
        top = item.series[0]
        return message("chat_series", last=f"{top.last:g}", max=f"{top.max:g}", trend=top.trend)
    if item.lines:
        return item.lines[0]
    return message("chat_nothing_found")
