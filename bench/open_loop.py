"""An open-loop load: requests arrive as a Poisson process at a fixed mean rate, whatever the
server's answers are doing, and each latency is counted from the moment its request was due.

Why not only `hey -q`: hey paces each of its connections on its own ticker, all started together,
so an offered 200 req/s from 50 connections arrives as a burst of 50 every 250 ms, the worst case
for a tail. Independent polling clients arrive closer to a Poisson process. Counting from the due
time, not from the send, keeps a slow answer from hiding the requests queued behind it
("coordinated omission").

Plain HTTP/1.1 on asyncio streams with keep-alive connections, opened as needed (an idle one is
reused, else a new one), so that the client's own cost stays a small fraction of the server's.
"""

import asyncio
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class OpenLoopResult:
    achieved: float  # answered requests per second of the run
    percentiles_ms: dict[str, float]  # "50", "95", "99"
    statuses: dict[int, int]


class _ClosedError(Exception):
    """The server had closed this keep-alive connection (uvicorn does after 5 s idle)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            raise _ClosedError
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


async def _run(
    url: str, rate: float, seconds: float, headers: dict[str, str], seed: int
) -> OpenLoopResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
    raw = f"GET {target} HTTP/1.1\r\n{head}\r\n".encode()
    idle: list[_Connection] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connect() -> _Connection:
        return _Connection(*await asyncio.open_connection(host, port))

    async def one(due: float) -> None:
        connection = idle.pop() if idle else await connect()
        try:
            status = await connection.request(raw)
        except (_ClosedError, ConnectionError):  # closed while idle: nothing was served
            connection.writer.close()
            connection = await connect()
            status = await connection.request(raw)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.append(connection)

    draws = random.Random(seed)
    started = time.perf_counter()
    due = started
    tasks = []
    while (due := due + draws.expovariate(rate)) < started + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for connection in idle:
        connection.writer.close()
    values = np.asarray(latencies) * 1000
    return OpenLoopResult(
        achieved=len(latencies) / elapsed,
        percentiles_ms={q: float(np.percentile(values, float(q))) for q in ("50", "95", "99")},
        statuses=statuses,
    )


def open_loop(
    url: str, rate: float, seconds: float, headers: dict[str, str] | None = None, seed: int = 0
) -> OpenLoopResult:
    """Offer `url` Poisson arrivals at `rate` per second for `seconds`; plain http:// only."""
    return asyncio.run(_run(url, rate, seconds, headers or {}, seed))
