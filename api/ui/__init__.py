"""The web console at /ui: server-rendered pages on the same use cases as the API."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.ui.routes import router


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        "/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static"
    )
