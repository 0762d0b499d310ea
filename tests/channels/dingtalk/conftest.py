"""A fake DingTalk (Open API, Stream gateway, session webhooks) on loopback, and the channel's config for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiops.channels.dingtalk import DingTalkConfig
from tests.conftest import DATA
from tests.fakes.dingtalk import CLIENT_ID, GROUP, SECRET, FakeDingTalk


@pytest.fixture
def fake(fake_dingtalk: FakeDingTalk) -> FakeDingTalk:
    return fake_dingtalk


def config(fake: FakeDingTalk, **changes: Any) -> DingTalkConfig:
    values = {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "open_conversation_id": GROUP,
        "card_template_id": "d9a2a3f4-0000-4c5e-9d3f-aiops.schema",
        "api": fake.url,
        "timeout": 5,
        **changes,
    }
    return DingTalkConfig.model_validate(values)


def event(name: str, **changes: Any) -> dict[str, Any]:
    """A chatbot message from tests/data/dingtalk/, its top-level fields changed (None removes one)."""
    data: dict[str, Any] = json.loads((DATA / "dingtalk" / f"{name}.json").read_text())
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}
