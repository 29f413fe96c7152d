"""Per-request dependencies: the app context, a database session that commits at the edge, the
caller's principal from a bearer key, and the JSON media-type check."""

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, TypeVar

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from api.context import AppContext
from api.problems import ApiProblem
from core.auth.keys import KeyMatch, match_key, touch
from core.db.session import session_scope
from core.jobs.errors import FieldError
from core.jobs.reads import Keyed
from core.settings import Settings

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="An API key from `eraser keys create`.")


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, a hop that costs more than the dependency itself on the read path.


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def get_settings(context: Annotated[AppContext, Depends(get_context)]) -> Settings:
    return context.settings


def _session(context: Annotated[AppContext, Depends(get_context)]) -> Iterator[Session]:
    """One session per request, committed when the route returns without error.

    scope="function": the commit happens before the response is sent, so a client that gets
    a 200 can rely on the write being visible to its next request.
    """
    with session_scope(context.session_factory) as session:
        yield session


DbSession = Annotated[Session, Depends(_session, scope="function")]


async def _read_session(
    context: Annotated[AppContext, Depends(get_context)],
) -> AsyncIterator[Session]:
    """The request's autocommit session for lookups (the key, then what a GET reads): one
    connection checkout and nothing but the SELECTs themselves on the wire. Creating it does no
    I/O (the connection is checked out by the first query, in the route's thread), and closing an
    autocommit session only hands the connection back to the pool."""
    session = context.read_session_factory()
    try:
        yield session
    finally:
        session.close()


ReadSession = Annotated[Session, Depends(_read_session, scope="function")]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Context = Annotated[AppContext, Depends(get_context)]

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="eraser"'}


async def run_read(context: AppContext, read: Callable[[Connection], T]) -> T:
    """`read` on one of the read engine's autocommit connections, in one trip to the thread
    pool. At most READ_POOL_SIZE reads run at once per process (the others wait here, in the
    event loop): a burst never opens connections beyond the pool only to close them again."""

    def run() -> T:
        with context.read_engine.connect() as connection:
            return read(connection)

    return await to_thread.run_sync(run, limiter=context.read_limiter)


async def _principal(context: Context, credentials: Credentials) -> str:
    """The caller's principal: one indexed SELECT on a read connection (no session, no
    transaction). The rare write of `last_used_at` (once a minute per key) goes through a short
    transaction of its own: it must not hold a lock for the whole request (on SQLite it would
    block the request's other transactions, such as the idempotent create)."""
    key = _bearer_key(credentials)

    def identify(connection: Connection) -> KeyMatch | None:
        match = match_key(connection, key)
        if match is not None:
            _touch_if_due(context, match)
        return match

    match = await run_read(context, identify)
    if match is None:
        raise _unknown_key()
    return match.principal


Principal = Annotated[str, Depends(_principal)]


def _bearer_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise ApiProblem(401, "unauthorized", "missing bearer API key", headers=_UNAUTHORIZED)
    return credentials.credentials


def _unknown_key() -> ApiProblem:
    return ApiProblem(401, "unauthorized", "unknown or revoked API key", headers=_UNAUTHORIZED)


def _touch_if_due(context: AppContext, match: KeyMatch) -> None:
    if match.touch_due:
        with session_scope(context.session_factory) as writer:
            touch(writer, match.key_id)


async def read_as_caller(
    context: AppContext,
    credentials: HTTPAuthorizationCredentials | None,
    lookup: Callable[[Connection, str], Keyed[T]],
) -> T:
    """A read that authenticates the caller itself, in the same statement (GET job:
    `reads.job_for_key`): one trip to the thread pool, one connection, one round trip. The same
    answers as `Principal` + the read: 401 before anything else, then what the read found or
    its error. Only for routes whose parameters cannot fail validation: a `Principal`
    dependency answers 401 before FastAPI reports an invalid parameter; this answers after."""
    key = _bearer_key(credentials)

    def run(connection: Connection) -> Keyed[T]:
        keyed = lookup(connection, key)
        if keyed.key is not None:
            _touch_if_due(context, keyed.key)
        return keyed

    keyed = await run_read(context, run)
    if keyed.key is None:
        raise _unknown_key()
    return keyed.found()


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON, instead of a confusing validation error; 400 for an
    object with a repeated key. RFC 8259 leaves duplicates to the parser (Python keeps the last,
    others the first), so a proxy or an audit log may read a different job than the one we run:
    such a body is refused rather than guessed at."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiProblem(415, "unsupported-media-type", "send the body as application/json")
    try:
        json.loads(await request.body(), object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKeyError as error:
        raise ApiProblem(
            400,
            "duplicate-json-key",
            f"the body repeats the key {error.key!r} in one object",
            errors=[FieldError(("body", error.key), "repeated key", "duplicate_key")],
        ) from error
    except ValueError:
        pass  # not JSON at all: the body's own validation answers that (400 malformed-json)


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen[key] = value
    return seen
