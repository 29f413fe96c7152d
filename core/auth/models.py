"""API keys (a bearer secret bound to a principal, stored only as a hash) and the web console's
sessions (a cookie exchanged for a key)."""

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base
from core.db.types import UTCDateTime, utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    principal: Mapped[str] = mapped_column(String(200), index=True)
    # The first characters of the key, shown in listings and used to revoke it; not secret.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    # sha256 of the whole key. A slow password hash (bcrypt, argon2) defends low-entropy secrets
    # against brute force; our keys are 256 random bits, which no brute force reaches, so a fast
    # hash is enough and keeps per-request authentication cheap (one indexed lookup).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # An admin key may also create and revoke other keys over the API (/v1/admin/keys). Only the
    # operator makes one, from the CLI (`eraser keys create --admin`).
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ConsoleSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its sha256 (like
    keys). A session lives no longer than its key: revoking the key ends it."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    principal: Mapped[str] = mapped_column(String(200))
    # The synchronizer token every console form must send back (not secret from the page,
    # secret from other sites).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
