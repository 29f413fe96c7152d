"""Prometheus metrics: request count and latency by route template, jobs by status.

Each app owns its `CollectorRegistry` (no process-global state), so tests can run several apps.
The jobs gauge is computed from the database at scrape time: the database is the source of
truth and a counter kept in one API process would be wrong with several.
"""

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.jobs.service import count_jobs_by_status


class HttpMetrics:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streams and wrap errors
    raised while the body is read, such as the body-size limit, in exception groups)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "eraser_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "eraser_http_request_duration_seconds",
            "HTTP request latency by method and route template (until the response ends).",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), not the raw path. The
    router records the matched route in the (shared) scope."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"


class JobsByStatusCollector(Collector):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("eraser_jobs", "Jobs by status.", labels=["status"])
        try:
            with self.factory() as session:
                counts = count_jobs_by_status(session)
        except SQLAlchemyError:
            return  # database down: /readyz reports it; the scrape still succeeds
        for status, count in sorted(counts.items()):
            gauge.add_metric([status], count)
        yield gauge
