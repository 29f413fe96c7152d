"""API keys: a bearer secret bound to a principal, stored only as a hash."""

import uuid
from datetime import datetime

from sqlalchemy import String
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
