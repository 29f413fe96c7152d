"""The app factory: `create_app(settings)` builds one self-contained API instance."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.body_limit import BodySizeLimit
from api.context import AppContext
from api.metrics import HttpMetrics, JobsByStatusCollector
from api.openapi import describe_deployment
from api.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from api.routes import admin, artifacts, events, health, jobs, models
from api.ui import install_console
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    context = AppContext.from_settings(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        context.engine.dispose()
        context.read_engine.dispose()

    app = FastAPI(
        title="Eraser",
        version="1.0.0",
        summary="Erase concepts from text-to-image diffusion models (Adversarial Preservation).",
        lifespan=lifespan,
    )
    app.state.context = context

    install_problem_handlers(app)
    context.metrics_registry.register(JobsByStatusCollector(context.session_factory))
    app.add_middleware(HttpMetrics, registry=context.metrics_registry)
    app.add_middleware(BodySizeLimit, max_bytes=context.settings.max_request_bytes)

    for router in (jobs.router, events.router, artifacts.router, models.router, health.router):
        app.include_router(router)
    app.include_router(admin.router)
    install_console(app)

    _declare_problem_schema(app, context)
    return app


def _declare_problem_schema(app: FastAPI, context: AppContext) -> None:
    """Make the OpenAPI document say what the API does: every error response (FastAPI's
    automatic 422 included) is a `Problem` as application/problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        if str(status).isdigit() and int(status) >= 400:
                            response["content"] = {PROBLEM_MEDIA_TYPE: problem}
            components = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return describe_deployment(app.openapi_schema, context.settings)

    app.openapi = openapi  # type: ignore[method-assign]
