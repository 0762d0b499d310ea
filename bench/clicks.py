"""How long a Feishu click takes to be answered, by transport: an HTTP callback (signed and encrypted) and the long
connection (lark-oapi's client in its own thread, protobuf frames), each against the same app and SQLite store.
Feishu shows the clicker an error after 3 seconds.

    .venv/bin/python bench/clicks.py [CLICKS]

Each click approves a fresh proposal, so every answer carries a decision and the re-rendered card. Results go to
stdout and to bench/results/clicks.json.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiops.channels.feishu import FeishuConfig  # noqa: E402
from aiops.config import DatabaseConfig  # noqa: E402
from aiops.store import (  # noqa: E402
    migrate,
)
from aiops.store.engine import create_engine  # noqa: E402
from tests.channels.test_feishu_longconn import config_for, connected  # noqa: E402
from tests.fakes.feishu import SECRET, FakeFeishu, FeishuCallbacks  # noqa: E402
from tests.fakes.feishu_ws import FakeLongConnection  # noqa: E402
from tests.support.app import proposals, running, settings_for  # noqa: E402
from tests.web.test_feishu_callbacks import REMEDIATION, callback_client, value  # noqa: E402

ENCRYPT_KEY = "bench-encrypt-key-0123456789abcdef"
TOKEN = "bench-verification-token-0123456789"


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "clicks": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def http_clicks(services: Any, items: list[dict[str, Any]]) -> list[float]:
    config = FeishuConfig(
        app_id="cli_bench",
        app_secret=SECRET,
        chat_id="oc_x",
        encrypt_key=ENCRYPT_KEY,
        verification_token=TOKEN,
    )
    sender = FeishuCallbacks(TOKEN, ENCRYPT_KEY)
    seconds = []
    async with callback_client(services, config) as feishu:
        for item in items:
            body, headers = sender.request(sender.card_action("ou_alice", value(item)))
            started = time.perf_counter()
            answer = await feishu.post("/callbacks/feishu", content=body, headers=headers)
            seconds.append(time.perf_counter() - started)
            assert answer.json()["toast"]["type"] == "success", answer.text
    return seconds


async def long_connection_clicks(services: Any, items: list[dict[str, Any]], fake: FakeFeishu) -> list[float]:
    gateway = fake.gateway
    assert gateway is not None
    sender = FeishuCallbacks("unused")
    seconds = []
    async with connected(services, config_for(fake)):
        await asyncio.to_thread(gateway.wait_connected)
        for item in items:
            answer = await asyncio.to_thread(gateway.send, sender.card_action("ou_alice", value(item)))
            assert answer.body is not None and answer.body["toast"]["type"] == "success", answer.body
            seconds.append(answer.seconds)
    return seconds


async def main(clicks: int) -> dict[str, Any]:
    fake = FakeFeishu().start()
    fake.gateway = FakeLongConnection(fake.app_id, SECRET).start()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/aiops.db"
        engine = create_engine(DatabaseConfig(url=url))
        await migrate.upgrade(engine)
        try:
            async with running(
                settings_for(url, remediation=REMEDIATION, channels={"console": {"enabled": False}}), engine
            ) as (client, services):
                items = await proposals(
                    client, services, [("systemctl", "restart", f"unit-{n}") for n in range(2 * clicks)]
                )
                http = await http_clicks(services, items[:clicks])
                ws = await long_connection_clicks(services, items[clicks:], fake)
        finally:
            await engine.dispose()
            fake.gateway.stop()
            fake.stop()
    return {
        "machine": f"{platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}",
        "http_callback": summary(http),
        "long_connection": summary(ws),
    }


if __name__ == "__main__":
    clicks = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    results = asyncio.run(main(clicks))
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "clicks.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
