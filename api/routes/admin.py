"""/v1/admin/keys: create, list and revoke API keys over HTTP, for admin keys only.

The operator makes the first admin key from the CLI (`eraser keys create --principal ops
--admin`); with it, the people running a shared deployment hand out and withdraw keys for their
teams without shell access to the service. Keys made here are never admin keys themselves: that
stays a decision taken at the CLI.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from api.dependencies import Context, DbSession
from api.problems import ApiProblem, problems
from core.auth.keys import (
    InvalidPrincipalError,
    KeyIdentity,
    create_key,
    find_key,
    identify,
    list_keys,
    revoke_key,
)
from core.auth.models import ApiKey
from core.db.session import session_scope
from core.jobs.errors import FieldError

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])
_bearer = HTTPBearer(auto_error=False, description="An admin API key.")


def _admin(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KeyIdentity:
    unauthorized = {"WWW-Authenticate": 'Bearer realm="eraser"'}
    if credentials is None:
        raise ApiProblem(401, "unauthorized", "missing bearer API key", headers=unauthorized)
    with session_scope(context.session_factory) as session:
        identity = identify(session, credentials.credentials)
    if identity is None:
        raise ApiProblem(401, "unauthorized", "unknown or revoked API key", headers=unauthorized)
    if not identity.admin:
        raise ApiProblem(403, "forbidden", "this call needs an admin key")
    return identity


Admin = Annotated[KeyIdentity, Depends(_admin)]


class KeyCreate(BaseModel):
    principal: str = Field(min_length=1, max_length=200, description="Who the key acts for.")


class KeyView(BaseModel):
    prefix: str
    principal: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> "KeyView":
        return cls(
            prefix=key.prefix,
            principal=key.principal,
            admin=key.admin,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class IssuedKeyView(BaseModel):
    key: str = Field(description="The secret: shown in this response only.")
    prefix: str
    principal: str


class KeyList(BaseModel):
    items: list[KeyView]


@router.post(
    "",
    status_code=201,
    response_model=IssuedKeyView,
    responses=problems(401, 403, 422),
    summary="Issue a key for a principal (admin keys only)",
)
def create(body: KeyCreate, admin: Admin, session: DbSession) -> IssuedKeyView:
    try:
        issued = create_key(session, body.principal)
    except InvalidPrincipalError as error:
        raise ApiProblem(
            422,
            "validation-error",
            str(error),
            errors=[FieldError(("body", "principal"), str(error), "principal")],
        ) from error
    return IssuedKeyView(key=issued.key, prefix=issued.prefix, principal=issued.principal)


@router.get(
    "",
    response_model=KeyList,
    responses=problems(401, 403, 422),
    summary="Every key (never the secrets), or one principal's",
)
def list_(
    admin: Admin,
    session: DbSession,
    principal: Annotated[str | None, Query(max_length=200)] = None,
) -> KeyList:
    return KeyList(items=[KeyView.of(key) for key in list_keys(session, principal)])


@router.post(
    "/{prefix}/revoke",
    response_model=KeyView,
    responses=problems(401, 403, 404),
    summary="Revoke a key by its prefix (idempotent); its console sessions end with it",
)
def revoke(prefix: str, admin: Admin, session: DbSession) -> KeyView:
    if len(prefix) > 32 or find_key(session, prefix) is None:
        raise ApiProblem(404, "not-found", f"no key with prefix {prefix!r}")
    revoke_key(session, prefix)
    key = find_key(session, prefix)
    assert key is not None
    session.refresh(key)
    return KeyView.of(key)
