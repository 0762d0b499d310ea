"""The evaluation suite: every scenario of tests/evals through the real pipeline, as a table.

    .venv/bin/python bench/evals.py                  # recorded model answers: evidence recall and prompt size
    MINIMAX_API_KEY=… .venv/bin/python bench/evals.py   # also the real model: pass rate, latency, tokens, cost

Results go to stdout and to bench/results/evals.json.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.evals.harness import CaseResult, report, run_case  # noqa: E402
from tests.evals.scenarios import load_all  # noqa: E402


def real_model() -> dict[str, Any] | None:
    key = os.environ.get("MINIMAX_API_KEY")
    if not key:
        return None
    model: dict[str, Any] = {"api_key": key}
    for variable, field in (("MINIMAX_BASE_URL", "base_url"), ("MINIMAX_MODEL", "model")):
        if os.environ.get(variable):
            model[field] = os.environ[variable]
    return model


async def suite(model: dict[str, Any] | None) -> list[CaseResult]:
    results = []
    for scenario in load_all():
        print(f"… {scenario.name}", file=sys.stderr, flush=True)
        results.append(await run_case(scenario, model))
    return results


def main() -> int:
    recorded = asyncio.run(suite(None))
    print("## Recorded model answers\n")
    print(report(recorded))
    output: dict[str, Any] = {"machine": platform.platform(), "recorded": [_plain(r) for r in recorded]}
    model = real_model()
    if model is not None:
        live = asyncio.run(suite(model))
        print(f"\n## Real model ({model.get('model', 'default')})\n")
        print(report(live))
        output["real"] = [_plain(r) for r in live]
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "evals.json").write_text(json.dumps(output, indent=2, default=str))
    return 0


def _plain(result: CaseResult) -> dict[str, Any]:
    plain = dataclasses.asdict(result)
    plain["ratio"] = result.ratio
    return plain


if __name__ == "__main__":
    raise SystemExit(main())
