"""Hostile chat messages: whatever a platform delivers — NULs, ids no platform has, huge texts — the listener
answers with what became of it and never raises; bad configuration names the field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.chat import Asked
from aiops.chat.config import MAX_QUESTION, ChatConfig
from aiops.chat.listener import ChatListener
from aiops.config import Settings
from aiops.store import migrate

_ids = st.one_of(st.text(max_size=300), st.sampled_from(["ou_bob", "", "a\x00b", "x" * 256]))


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    user=_ids,
    message_id=_ids,
    body=st.text(max_size=5000),
    direct=st.booleans(),
    mentioned=st.booleans(),
    thread=st.one_of(st.none(), st.text(max_size=300)),
)
def test_any_message_is_heard_or_ignored_without_error(
    sqlite_engine: AsyncEngine,
    user: str,
    message_id: str,
    body: str,
    direct: bool,
    mentioned: bool,
    thread: str | None,
) -> None:
    listener = ChatListener(sqlite_engine, ChatConfig(askers={"feishu": ["ou_bob"]}), lambda: {})
    asked = Asked("feishu", "feishu", message_id, user, body, direct, mentioned, "oc_1", thread)
    heard = asyncio.run(_hear(listener, asked))
    assert heard in ("ignored", "duplicate", "refused", "queued")


async def _hear(listener: ChatListener, asked: Asked) -> Any:
    return await listener.hear(asked)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncEngine:
    from aiops.store.engine import DatabaseConfig, create_engine

    path = tmp_path_factory.mktemp("chat") / "aiops.db"
    engine = create_engine(DatabaseConfig(url=f"sqlite:///{path}"))
    asyncio.run(migrate.upgrade(engine))
    return engine


async def test_a_long_question_is_kept_cut_and_without_nuls(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    listener = ChatListener(engine, ChatConfig(), lambda: {})
    asked = Asked("feishu", "feishu", "om_1", "ou_bob", "why\x00" + "x" * 9000, False, True, "oc_1")
    assert await listener.hear(asked) == "queued"
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT text FROM chat_messages"))).scalar_one()
    assert "\x00" not in kept and len(kept) == MAX_QUESTION + 2 and kept.endswith(" …")


def test_askers_of_a_kind_that_takes_no_messages_are_named() -> None:
    with pytest.raises(ValidationError, match=r"chat\.askers\.feishu_webhook: not a channel aiops takes"):
        Settings.model_validate({"chat": {"askers": {"feishu_webhook": ["x"]}}})
    with pytest.raises(ValidationError, match=r"chat\.questions_per_hour"):
        Settings.model_validate({"chat": {"questions_per_hour": 0}})
