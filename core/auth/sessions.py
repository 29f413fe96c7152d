"""Web console sessions: a browser signs in with an API key once and gets a random session token
in an HttpOnly cookie; the key itself never reaches a page, a URL or a script.

Only the token's sha256 is stored (a leaked table opens no session). A session is valid while it
has not expired, has not been ended (sign out) and its key has not been revoked. Each session has
its own CSRF token, which every console form sends back.
"""

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.auth.keys import KeyIdentity, hash_key
from core.auth.models import ApiKey, ConsoleSession
from core.db.types import utcnow

TOKEN_BYTES = 32


@dataclass(frozen=True)
class ConsoleIdentity:
    principal: str
    csrf_token: str
    admin: bool


@dataclass(frozen=True)
class OpenedSession:
    token: str  # the cookie's value: never stored
    csrf_token: str


def open_session(session: Session, identity: KeyIdentity, lifetime: timedelta) -> OpenedSession:
    now = utcnow()
    # Expired sessions are swept by whoever signs in next: no periodic job needed for a table
    # that only grows by one row per sign-in.
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf_token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        ConsoleSession(
            token_hash=hash_key(token),
            api_key_id=identity.key_id,
            principal=identity.principal,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return OpenedSession(token=token, csrf_token=csrf_token)


def session_identity(session: Session, token: str) -> ConsoleIdentity | None:
    """The signed-in principal of a cookie token, or None."""
    row = session.execute(
        select(ConsoleSession, ApiKey.admin)
        .join(ApiKey, ApiKey.id == ConsoleSession.api_key_id)
        .where(
            ConsoleSession.token_hash == hash_key(token),
            ConsoleSession.expires_at > utcnow(),
            ApiKey.revoked_at.is_(None),
        )
    ).one_or_none()
    if row is None:
        return None
    console_session, admin = row
    return ConsoleIdentity(console_session.principal, console_session.csrf_token, bool(admin))


def csrf_matches(identity: ConsoleIdentity, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(identity.csrf_token, submitted)


def close_session(session: Session, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))
