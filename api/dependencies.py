"""Per-request dependencies: the app context, a database session that commits at the edge, the
caller's principal from a bearer key, and the JSON media-type check."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.context import AppContext
from api.problems import ApiProblem
from core.auth.keys import authenticate
from core.db.session import session_scope
from core.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key from `eraser keys create`.")


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


def get_settings(context: Annotated[AppContext, Depends(get_context)]) -> Settings:
    return context.settings


def _session(context: Annotated[AppContext, Depends(get_context)]) -> Iterator[Session]:
    """One session per request, committed when the route returns without error.

    scope="function": the commit happens before the response is sent, so a client that gets
    a 200 can rely on the write being visible to its next request.
    """
    with session_scope(context.session_factory) as session:
        yield session


DbSession = Annotated[Session, Depends(_session, scope="function")]


def _principal(
    context: Annotated[AppContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's principal. Looked up in a short transaction of its own: authentication may
    record `last_used_at`, and that write must not hold a lock for the whole request (on SQLite
    it would block the request's other transactions, such as the idempotent create)."""
    unauthorized = {"WWW-Authenticate": 'Bearer realm="eraser"'}
    if credentials is None:
        raise ApiProblem(401, "unauthorized", "missing bearer API key", headers=unauthorized)
    with session_scope(context.session_factory) as session:
        principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise ApiProblem(401, "unauthorized", "unknown or revoked API key", headers=unauthorized)
    return principal


Principal = Annotated[str, Depends(_principal)]
Context = Annotated[AppContext, Depends(get_context)]


def require_json(request: Request) -> None:
    """415 for a body that is not JSON, instead of a confusing validation error."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiProblem(415, "unsupported-media-type", "send the body as application/json")
