"""Opaque keyset cursors over (created_at, id): stable under inserts, unlike offsets.

A cursor is 48 lowercase hex digits: the microseconds from 0001-01-01T00:00Z to `created_at`
(16 digits) and the job id's 128 bits (32 digits). Every string of that shape is a valid
position (a time past 9999 means "after everything"), so the OpenAPI document can state the
format exactly: `^[0-9a-f]{48}$`.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CURSOR_PATTERN = "^[0-9a-f]{48}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)
_MAX_MICROSECONDS = (_LAST - _EPOCH) // timedelta(microseconds=1)


class InvalidCursorError(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        micros = (self.created_at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros:016x}{uuid.UUID(self.id).hex}"

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        if not _CURSOR.match(token):
            raise InvalidCursorError("not a cursor returned by this API (48 hex digits)")
        micros = min(int(token[:16], 16), _MAX_MICROSECONDS)
        created_at = _EPOCH + timedelta(microseconds=micros)
        return cls(created_at=created_at, id=str(uuid.UUID(hex=token[16:])))


def in_utc_range(moment: datetime) -> bool:
    """Whether an aware datetime still exists in UTC: 0001-01-01T00:00+14:00 is in year 0 and
    9999-12-31T23:59-14:00 in year 10000, which no database column (nor Python) can hold."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True
