"""What a diagnosis cost: an estimate from the model's price, nothing for a local model, unknown when nobody priced
the model — on the console, the incident page, the API and the metrics, in zh-CN and en."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.llm.client import DEFAULT_PRICES, FREE, LlmConfig, Price, is_local_endpoint
from tests.conftest import DATA
from tests.fakes.minimax import FakeMiniMax, Reply
from tests.llm.conftest import GOOD, llm
from tests.support.app import AUTH

PRICE = {"input": 2.0, "output": 6.0}


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1",
        "http://localhost:11434/v1",
        "http://[::1]:8000/v1",
        "http://10.0.3.7:8000/v1",
        "http://192.168.1.20/v1",
        "http://172.20.0.5:8000/v1",
        "http://[fd12:3456::7]:8000/v1",
        "http://ollama:11434/v1",  # a docker-compose service
        "http://host.docker.internal:11434/v1",
        "http://vllm.models.svc.cluster.local:8000/v1",
        "http://gpu-box.home.arpa/v1",
    ],
)
def test_endpoints_on_your_own_machines_are_local(base_url: str) -> None:
    assert is_local_endpoint(base_url)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.minimaxi.com/v1",
        "https://api.minimax.io/v1",
        "https://api.deepseek.com",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "http://8.8.8.8/v1",
        "http://[2001:4860:4860::8888]/v1",
        "not a url",
    ],
)
def test_public_endpoints_are_not(base_url: str) -> None:
    assert not is_local_endpoint(base_url)


def test_which_price_a_model_gets() -> None:
    remote, loopback = "https://api.minimaxi.com/v1", "http://127.0.0.1:8080/v1"

    def price(**config: Any) -> Price | None:
        return LlmConfig.model_validate(config).price()

    assert price(base_url=remote) == DEFAULT_PRICES["MiniMax-M2.7"]
    assert price(base_url=remote, model="deepseek-chat") is None, "unknown, not free"
    assert price(base_url=remote, model="deepseek-chat", prices={"deepseek-chat": PRICE}) == Price(**PRICE)
    assert price(base_url=loopback, model="qwen2.5-7b-instruct") == FREE
    # MiniMax-M2 has open weights: served on your own machine, MiniMax's API prices do not apply to it.
    assert price(base_url=loopback) == FREE
    # A gateway on loopback (LiteLLM, one-api) in front of a paid API: naming the model's price says so.
    assert price(base_url=loopback, model="qwen-max", prices={"qwen-max": PRICE}) == Price(**PRICE)
    assert price(base_url=loopback, local=False) == DEFAULT_PRICES["MiniMax-M2.7"]
    assert price(base_url=loopback, model="qwen-max", local=False) is None
    assert price(base_url=remote, local=True, prices={"MiniMax-M2.7": PRICE}) == FREE


async def diagnose(
    app_for: Any, runbooks: Path, fake: FakeMiniMax, language: str, **llm_: Any
) -> tuple[str, dict[str, Any], str]:
    """One incident diagnosed by the fake (the console prints it): the incident page, the API's diagnosis and the
    metrics."""
    fake.script(Reply(content=json.dumps(GOOD)))
    sections = {
        "llm": llm(fake, **llm_),
        "runbooks": {"dir": str(runbooks)},
        "server": {"language": language},
    }
    async with app_for(**sections) as (client, services):
        answer = await client.post(
            "/webhook/alertmanager", content=(DATA / "firing.json").read_bytes(), headers=AUTH
        )
        triage = await services.pipeline.run(int(answer.json()["delivery"]))
        page = (await client.get("/incidents/1")).text
        api = (await client.get("/api/v1/incidents/1")).json()["triages"][0]["diagnosis"]
        metrics = services.metrics.exposition().decode()
    assert triage.diagnosis.source == "llm"
    return page, api, metrics


def metric(metrics: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.M)
    assert found is not None, series
    return float(found.group(1))


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_a_priced_model_shows_an_estimate(
    app_for: Any, runbooks: Path, fake_minimax: FakeMiniMax, capsys: pytest.CaptureFixture[str], language: str
) -> None:
    # The fake listens on loopback; `local: false` makes it stand for MiniMax's own API.
    page, api, metrics = await diagnose(app_for, runbooks, fake_minimax, language, local=False)
    shown = {"en": r"≈ \$0\.\d{4}", "zh-CN": r"约 \$0\.\d{4}"}[language]
    assert re.search(shown, capsys.readouterr().out) and re.search(shown, page)
    assert api["usage"]["cost"] > 0 and api["usage"]["local"] is False
    assert metric(metrics, "aiops_llm_cost_usd_total") == pytest.approx(api["usage"]["cost"])
    assert metric(metrics, 'aiops_llm_unpriced_tokens_total{kind="prompt"}') == 0


@pytest.mark.parametrize(
    ("language", "said"), [("en", "local model, no cost"), ("zh-CN", "本地模型，无费用")]
)
async def test_a_local_model_costs_nothing(
    app_for: Any,
    runbooks: Path,
    fake_minimax: FakeMiniMax,
    capsys: pytest.CaptureFixture[str],
    language: str,
    said: str,
) -> None:
    page, api, metrics = await diagnose(
        app_for, runbooks, fake_minimax, language, model="qwen2.5-7b-instruct"
    )
    printed = capsys.readouterr().out
    assert said in printed and said in page
    assert not any("$" in line for line in printed.splitlines() if said in line), "no estimate beside it"
    assert (api["usage"]["cost"], api["usage"]["local"]) == (0.0, True)
    assert metric(metrics, "aiops_llm_cost_usd_total") == 0
    assert metric(metrics, 'aiops_llm_unpriced_tokens_total{kind="prompt"}') == 0


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("en", "cost unknown (no price for deepseek-chat: set llm.prices)"),
        ("zh-CN", "费用未知（deepseek-chat 没有价格，可在 llm.prices 中设置）"),
    ],
)
async def test_an_unpriced_model_on_a_remote_endpoint_has_an_unknown_cost(
    app_for: Any,
    runbooks: Path,
    fake_minimax: FakeMiniMax,
    capsys: pytest.CaptureFixture[str],
    language: str,
    said: str,
) -> None:
    page, api, metrics = await diagnose(
        app_for, runbooks, fake_minimax, language, model="deepseek-chat", local=False
    )
    printed = capsys.readouterr().out
    assert said in printed and said in page
    assert "$" not in printed and "$" not in page.split('<section id="diagnosis">')[1].split("</section>")[0]
    assert (api["usage"]["cost"], api["usage"]["local"]) == (None, False)
    assert metric(metrics, "aiops_llm_cost_usd_total") == 0, "an unknown cost is not counted as a number"
    assert metric(metrics, 'aiops_llm_unpriced_tokens_total{kind="prompt"}') == api["usage"]["prompt_tokens"]
    assert metric(metrics, 'aiops_llm_unpriced_tokens_total{kind="completion"}') > 0


async def test_llm_prices_override_the_inference_and_the_list(
    app_for: Any, runbooks: Path, fake_minimax: FakeMiniMax, capsys: pytest.CaptureFixture[str]
) -> None:
    # On loopback, as a gateway to a paid API would be: the configured price makes it a priced model.
    page, api, metrics = await diagnose(
        app_for, runbooks, fake_minimax, "en", model="qwen-max", prices={"qwen-max": PRICE}
    )
    usage = api["usage"]
    expected = (usage["prompt_tokens"] * 2.0 + usage["completion_tokens"] * 6.0) / 1_000_000
    assert usage["local"] is False and usage["cost"] == pytest.approx(expected)
    assert f"≈ ${expected:.4f}" in capsys.readouterr().out and f"≈ ${expected:.4f}" in page
    assert metric(metrics, "aiops_llm_cost_usd_total") == pytest.approx(expected)


async def test_a_diagnosis_stored_with_only_a_number_still_shows_it(
    app_for: Any, engine: AsyncEngine, runbooks: Path, fake_minimax: FakeMiniMax
) -> None:
    await diagnose(app_for, runbooks, fake_minimax, "zh-CN", local=False)
    async with engine.begin() as conn:
        stored = json.loads((await conn.execute(text("SELECT diagnosis FROM triages"))).scalar_one())
        stored["usage"] = {k: v for k, v in stored["usage"].items() if k != "local"} | {"cost": 0.0012}
        await conn.execute(text("UPDATE triages SET diagnosis = :d"), {"d": json.dumps(stored)})
    async with app_for(server={"language": "zh-CN"}) as (client, _):
        page = (await client.get("/incidents/1")).text
    assert "约 $0.0012" in page
