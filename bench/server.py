"""The benchmarked server: the real application, plus a no-op endpoint, on one uvicorn process.

    python bench/server.py --config aiops.yml [--no-workers]

The application is built exactly as `aiops serve` builds it (same settings loader, same uvicorn options, triage
workers running), and `POST /noop` is added to the same router: it goes through the same middleware stack and
the same uvicorn, reads the whole body and answers a tiny JSON document, so that the difference between the two
endpoints is intake itself (parse, validate, commit) and the triage the committed deliveries cause.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import aiops
from aiops import logs
from aiops.config import load_settings
from aiops.web.app import create_app


async def noop(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"status": "ok", "bytes": len(body)})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument(
        "--no-workers", action="store_true", help="diagnostic only: no triage pool (intake alone)"
    )
    args = parser.parse_args()
    # No environment: the configuration file alone says what runs (no AIOPS_* override leaks in).
    settings = load_settings(args.config, environ={})
    if not settings.server.is_loopback:
        raise SystemExit("the benchmark server listens on loopback only")
    logs.configure(settings.secrets())
    # Which code runs: PYTHONPATH=/some/copy makes this server run a patched copy of the package (A/B runs).
    print(f"bench-server: aiops package at {Path(aiops.__file__).parent}", file=sys.stderr, flush=True)
    app = create_app(settings, workers=not args.no_workers)
    app.router.add_route("/noop", noop, methods=["POST"])
    config = uvicorn.Config(  # the options of `aiops serve` (aiops/cli.py)
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.queue.shutdown_grace) + 5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
