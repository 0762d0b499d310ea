"""aiops against a real local model: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M on loopback.

    .venv/bin/python bench/local_model.py            # the evaluation scenarios, then `aiops replay` of six payloads
    .venv/bin/python bench/local_model.py --evals    # only the scenarios
    .venv/bin/python bench/local_model.py --replay   # only the replays

aiops is configured as an air-gapped team would, with MINIMAX_BASE_URL, MINIMAX_API_KEY and MINIMAX_MODEL alone.
The scenarios run as `tests/llm/test_local_model.py` runs them (answers capped at 768 tokens), each exchange with
the server kept: per scenario, whether the model's diagnosis was schema-valid, the response formats tried, the
server's token counts and the time. The replays are `python -m aiops replay PAYLOAD` with nothing but the
environment, as a user would try it first: no Prometheus to reach, the bundled runbooks, default settings
(`AIOPS_CONFIG=FILE` adds a configuration file's settings, e.g. a longer `llm.call_timeout`).
Needs `make local-model`. Results go to stdout and to bench/results/local_model.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.evals.local import LocalCase, report, run_local  # noqa: E402
from tests.evals.scenarios import load_all  # noqa: E402
from tests.support.local_model import LocalModel, running_local_model  # noqa: E402

STARTS_AT = "2026-11-24T03:02:11.284Z"
# Alerts the bundled runbooks cover, labelled as the bundled rules (rules/*.yml) label them.
ALERTS: list[tuple[dict[str, str], str, str]] = [
    (
        {
            "alertname": "HostMemoryUnderPressure",
            "instance": "app-2:9100",
            "job": "node",
            "severity": "warning",
        },
        "Memory under pressure on app-2:9100",
        'node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"} < 0.10',
    ),
    (
        {"alertname": "HostCpuSaturated", "instance": "web-1:9100", "job": "node", "severity": "warning"},
        "CPU busy above 90% on web-1:9100",
        '1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{job="node", mode="idle"}[5m])) > 0.90',
    ),
    (
        {
            "alertname": "HostSystemdUnitFailed",
            "instance": "app-1:9100",
            "job": "node",
            "name": "billing-worker.service",
            "state": "failed",
            "severity": "warning",
        },
        "Systemd unit billing-worker.service failed on app-1:9100",
        'node_systemd_unit_state{job="node", state="failed"} == 1',
    ),
    (
        {
            "alertname": "CertificateExpiringSoon",
            "instance": "https://shop.example.com",
            "job": "blackbox",
            "severity": "warning",
        },
        "TLS certificate of https://shop.example.com expires in less than 14 days",
        'probe_ssl_earliest_cert_expiry{job="blackbox"} - time() < 14 * 86400',
    ),
    (
        {"alertname": "TargetDown", "instance": "web-3:9100", "job": "node", "severity": "critical"},
        "node target web-3:9100 is down",
        'up{job!="aiops"} == 0',
    ),
]


def payload(labels: dict[str, str], summary: str, expr: str) -> dict[str, Any]:
    """An Alertmanager webhook body of one firing alert, shaped as tests/data/firing.json."""
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": summary, "description": summary},
        "startsAt": STARTS_AT,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
        "fingerprint": hashlib.sha256(labels["alertname"].encode()).hexdigest()[:16],
    }
    group = {"alertname": labels["alertname"], "instance": labels["instance"]}
    return {
        "receiver": "aiops",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
    }


def replays(model: LocalModel, folder: Path) -> list[dict[str, Any]]:
    files = [ROOT / "tests" / "data" / "firing.json"]
    for labels, summary, expr in ALERTS:
        path = folder / f"{labels['alertname']}.json"
        path.write_text(json.dumps(payload(labels, summary, expr), indent=2))
        files.append(path)
    env = {**os.environ, **model.environment(), "AIOPS_RUNBOOKS_DIR": str(ROOT / "runbooks")}
    header = re.compile(rf"^\S+ \(.*{re.escape(model.model)}.*\):$", re.M)
    results = []
    for path in files:
        print(f"… replay {path.name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "aiops", "replay", str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        seconds = time.perf_counter() - started
        output = done.stdout + done.stderr
        results.append(
            {
                "payload": path.name,
                "exit": done.returncode,
                "model_diagnosis": bool(header.search(done.stdout)),
                "seconds": round(seconds, 1),
                "output": output,
            }
        )
    return results


def replay_report(results: list[dict[str, Any]]) -> str:
    lines = ["| payload | exit | model diagnosis | seconds |", "|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['payload']} | {r['exit']} | {'yes' if r['model_diagnosis'] else 'no'} | {r['seconds']} |"
        )
    valid = sum(r["model_diagnosis"] for r in results)
    lines.append(f"| **all** | | {valid}/{len(results)} | {sum(r['seconds'] for r in results):.1f} |")
    return "\n".join(lines)


def plain(case: LocalCase) -> dict[str, Any]:
    diagnosis = case.result.diagnosis
    return {
        "scenario": case.scenario.name,
        "model_diagnosis": diagnosis.source == "llm",
        "unavailable": diagnosis.unavailable,
        "confidence": diagnosis.confidence,
        "actions": [action.action_id for action in diagnosis.actions],
        "dropped": list(diagnosis.dropped_actions),
        "seconds": round(case.result.seconds, 2),
        "exchanges": [
            {
                "response_format": exchange.response_format,
                "status": exchange.status,
                "usage": exchange.usage,
                "seconds": round(exchange.seconds, 2),
            }
            for exchange in case.exchanges
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--evals", action="store_true", help="only the evaluation scenarios")
    parts.add_argument("--replay", action="store_true", help="only `aiops replay` of six payloads")
    args = parser.parse_args()
    output: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, running_local_model(Path(folder)) as model:
        if not args.replay:
            cases = asyncio.run(run_local(load_all(), model))
            print(f"## Evaluation scenarios, {model.model}\n\n{report(cases)}\n")
            output["evals"] = [plain(case) for case in cases]
        if not args.evals:
            results = replays(model, Path(folder))
            print(f"## aiops replay, {model.model}, environment only\n\n{replay_report(results)}\n")
            output["replay"] = results
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "local_model.json").write_text(json.dumps(output, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
