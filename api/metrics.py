"""Prometheus metrics: request count and latency by route template, jobs by status.

Each app owns its `CollectorRegistry` (no process-global state), so tests can run several apps.
The jobs gauge is computed from the database at scrape time: the database is the source of
truth and a counter kept in one API process would be wrong with several.
"""

import time
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from core.jobs.service import count_jobs_by_status


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "eraser_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "eraser_http_request_duration_seconds",
            "HTTP request latency by method and route template (until headers are sent).",
            ["method", "route"],
            registry=registry,
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        route = _route_template(request)
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            self.requests.labels(request.method, route, str(status)).inc()
            self.latency.labels(request.method, route).observe(time.perf_counter() - started)


def _route_template(request: Request) -> str:
    """The matched route's path template (bounded label cardinality), not the raw path."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


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
