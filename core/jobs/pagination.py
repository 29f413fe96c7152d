"""Opaque keyset cursors over (created_at, id): stable under inserts, unlike offsets."""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime


class InvalidCursorError(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        payload = json.dumps(
            {"t": self.created_at.isoformat(), "id": self.id}, separators=(",", ":")
        )
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        try:
            padded = token + "=" * (-len(token) % 4)
            payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            created_at = datetime.fromisoformat(payload["t"])
            job_id = payload["id"]
        except (UnicodeError, binascii.Error, ValueError, KeyError, TypeError) as error:
            raise InvalidCursorError("not a cursor returned by this API") from error
        if created_at.tzinfo is None or not isinstance(job_id, str) or not _is_uuid(job_id):
            raise InvalidCursorError("not a cursor returned by this API")
        return cls(created_at=created_at, id=job_id)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
