"""API keys: issue (shown once), look up by hash, list, revoke.

A key is `ek_` + 43 url-safe characters of `secrets.token_urlsafe(32)` (256 random bits). Only its
sha256 is stored (see `ApiKey.key_hash` for why a fast hash suffices) plus a short non-secret
prefix for listing and revoking.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from core.auth.models import ApiKey
from core.db.types import utcnow

KEY_SCHEME = "ek_"
KEY_RANDOM_BYTES = 32
PREFIX_LENGTH = len(KEY_SCHEME) + 8
PRINCIPAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
# Writing last_used_at on every request would turn each GET into a write; once a minute is
# precise enough to tell live keys from dead ones.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidPrincipalError(ValueError):
    pass


@dataclass(frozen=True)
class IssuedKey:
    key: str  # the secret: shown once, never stored
    prefix: str
    principal: str
    admin: bool = False


@dataclass(frozen=True)
class KeyIdentity:
    """Who a live key acts for."""

    key_id: str
    principal: str
    admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, principal: str, *, admin: bool = False) -> IssuedKey:
    if not PRINCIPAL_PATTERN.match(principal):
        raise InvalidPrincipalError(
            "a principal is 1-200 of letters, digits, '.', '_', '@', '-', starting alphanumeric"
        )
    key = KEY_SCHEME + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    prefix = key[:PREFIX_LENGTH]
    session.add(ApiKey(principal=principal, prefix=prefix, key_hash=hash_key(key), admin=admin))
    session.flush()
    return IssuedKey(key=key, prefix=prefix, principal=principal, admin=admin)


@dataclass(frozen=True)
class KeyMatch:
    key_id: str
    principal: str
    admin: bool
    # last_used_at is older than LAST_USED_RESOLUTION: the caller should `touch` the key.
    touch_due: bool

    @property
    def identity(self) -> KeyIdentity:
        return KeyIdentity(key_id=self.key_id, principal=self.principal, admin=self.admin)


_keys = ApiKey.__table__
# Built once (Core, table columns: no ORM compile step on the per-request path).
_LIVE_KEY = select(
    _keys.c.id, _keys.c.principal, _keys.c.admin, _keys.c.key_hash, _keys.c.last_used_at
).where(_keys.c.key_hash == bindparam("key_hash"), _keys.c.revoked_at.is_(None))


def match_key(db: Session | Connection, key: str) -> KeyMatch | None:
    """The live key, read only (one indexed SELECT): the per-request path. Whether last_used_at
    needs a write is reported, not done, so that the caller can make that rare write in a short
    transaction of its own instead of turning every read into a write."""
    if not key.startswith(KEY_SCHEME):
        return None
    digest = hash_key(key)
    row = db.execute(_LIVE_KEY, {"key_hash": digest}).one_or_none()
    # The indexed lookup already matched the hash; the constant-time compare keeps timing from
    # telling anything should the lookup ever change to a prefix match.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return key_match(row.id, row.principal, row.admin, row.last_used_at)


def key_match(key_id: str, principal: str, admin: bool, last_used_at: datetime | None) -> KeyMatch:
    """A live key as read (by match_key, or joined with what a read fetches)."""
    due = last_used_at is None or utcnow() - last_used_at > LAST_USED_RESOLUTION
    return KeyMatch(key_id=key_id, principal=principal, admin=admin, touch_due=due)


def touch(session: Session, key_id: str) -> None:
    """Record that the key was used now (at most once per LAST_USED_RESOLUTION per key, even
    with many API processes racing: the condition is in the UPDATE)."""
    now = utcnow()
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


def identify(session: Session, key: str) -> KeyIdentity | None:
    """Who a live key acts for, or None (unknown, malformed or revoked); records its use."""
    match = match_key(session, key)
    if match is None:
        return None
    if match.touch_due:
        touch(session, match.key_id)
    return match.identity


def authenticate(session: Session, key: str) -> str | None:
    """The principal of a live key, or None (unknown, malformed or revoked)."""
    identity = identify(session, key)
    return identity.principal if identity is not None else None


def list_keys(session: Session, principal: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.principal, ApiKey.created_at)
    if principal is not None:
        query = query.where(ApiKey.principal == principal)
    return list(session.scalars(query))


def find_key(session: Session, prefix: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def revoke_key(session: Session, prefix: str) -> bool:
    """Revoke the live key with this prefix; False when there is none. Console sessions opened
    with it end too (they are checked against their key on every request)."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
