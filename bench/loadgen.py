"""Open-loop HTTP load at a fixed rate, for latency without coordinated omission.

    python bench/loadgen.py --url http://127.0.0.1:PORT/webhook/alertmanager --rate 200 --duration 20

Request i is due at start + i/rate, whatever happened to the earlier ones; its latency runs from that due time to
the end of its response, so a stall of the server (or of this client) shows in the figures instead of silently
delaying the next sends. Plain asyncio on HTTP/1.1 keep-alive connections: an idle connection is reused, a new one
is opened when all are busy (up to --max-connections; past that, requests wait, and the wait counts as latency).
Prints one JSON document: counts by outcome and the latency percentiles of the 2xx answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import payloads  # bench/payloads.py: this script's directory is first on sys.path

REQUEST_TIMEOUT = 10.0


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Outcomes:
    latencies: list[float] = field(default_factory=list)  # seconds, 2xx only
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    max_send_lag: float = 0.0  # how late this client started a request, from its due time
    connections_opened: int = 0


class Client:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.outcomes = Outcomes()

    async def _connection(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.reader.at_eof():
                return connection
            connection.writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.outcomes.connections_opened += 1
        return Connection(reader, writer)

    async def request(self, head: bytes, body: bytes, due: float) -> None:
        loop = asyncio.get_running_loop()
        async with self.slots:
            self.outcomes.max_send_lag = max(self.outcomes.max_send_lag, loop.time() - due)
            connection: Connection | None = None
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    connection = await self._connection()
                    connection.writer.write(head + body)
                    status, keep = await _response(connection.reader)
                elapsed = loop.time() - due
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                self.outcomes.errors[type(error).__name__] += 1
                if connection is not None:
                    connection.writer.close()
                return
            self.outcomes.statuses[status] += 1
            if 200 <= status < 300:
                self.outcomes.latencies.append(elapsed)
            if keep:
                self.idle.append(connection)
            else:
                connection.writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    await reader.readexactly(length)
    return status, keep


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list, in milliseconds."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1] * 1000


async def run(url: str, rate: float, duration: float, phase: int, max_connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator targets loopback only")
    host, port = parts.hostname, parts.port or 80
    template = payloads.template()
    client = Client(host, port, max_connections)
    loop = asyncio.get_running_loop()
    total = round(rate * duration)
    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.05
    for n in range(total):
        due = start + n / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        body = payloads.render(template, phase, 0, n + 1)
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        tasks.append(asyncio.create_task(client.request(head, body, due)))
    sent_in = loop.time() - start
    await asyncio.gather(*tasks)
    wall = loop.time() - start
    for connection in client.idle:
        connection.writer.close()
    outcomes = client.outcomes
    ordered = sorted(outcomes.latencies)
    ok = len(ordered)
    return {
        "url": url,
        "rate": rate,
        "duration": duration,
        "sent": total,
        "send_seconds": round(sent_in, 3),
        "wall_seconds": round(wall, 3),
        "ok": ok,
        "statuses": {str(status): count for status, count in sorted(outcomes.statuses.items())},
        "errors": dict(outcomes.errors),
        "ok_per_second": round(ok / sent_in, 1) if sent_in > 0 else 0.0,
        "latency_ms": {
            "mean": round(sum(ordered) / ok * 1000, 2) if ok else math.nan,
            "p50": round(percentile(ordered, 50), 2),
            "p90": round(percentile(ordered, 90), 2),
            "p99": round(percentile(ordered, 99), 2),
            "p999": round(percentile(ordered, 99.9), 2),
            "max": round(ordered[-1] * 1000, 2) if ok else math.nan,
        },
        "max_send_lag_ms": round(outcomes.max_send_lag * 1000, 2),
        "connections_opened": outcomes.connections_opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    parser.add_argument("--phase", type=int, default=0, help="0-255, part of every UID (see payloads.py)")
    parser.add_argument("--max-connections", type=int, default=256)
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(run(args.url, args.rate, args.duration, args.phase, args.max_connections))
    result["process_seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
