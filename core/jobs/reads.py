"""The polling read path: who the key acts for and the job (or page) it reads, in Core.

Polling clients make GET job the hottest request of the service, so its database work is kept to
one statement: the key and the job are read together (`api_keys LEFT JOIN jobs`), as rows of only
the columns a `JobView` shows. No ORM session: no identity map, no unit of work, no entity
loading, nothing to flush or commit. The statements are built once; SQLAlchemy's compiled cache
does the rest. `list_jobs` in `core.jobs.service` shares the column set.

The JSON columns are read as their stored text (`JOB_ROW_COLUMNS`): a row is then a hashable
value that the API renders once per process and looks up afterwards (`core.jobs.rendering`), and
its JSON is decoded only when it has not been seen (`decode`). Whatever the job holds, the answer
is the same as `service.get_job` + `JobView.of` give: a `JobRecord` carries the ORM attribute
names, so `JobView.of` reads it like a `Job`.
"""

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import JSON, Connection, Row, Text, and_, bindparam, cast, select
from sqlalchemy.orm import Session

from core.auth.keys import KEY_SCHEME, KeyMatch, hash_key, key_match
from core.auth.models import ApiKey
from core.db.session import json_loads
from core.jobs.errors import DomainError, JobNotFoundError
from core.jobs.models import Job

T = TypeVar("T")

_jobs = Job.__table__
_keys = ApiKey.__table__


class JobRecord(NamedTuple):
    """A job as the read path selects it: what JobView.of reads, under the ORM attribute names
    (the `metadata` column is `metadata_`), so a view is built from it as from a `Job`. A named
    tuple rather than SQLAlchemy's Row: its attributes are read a few times faster, and a page
    reads 26 of them per job."""

    id: str
    status: str
    model: str
    concepts: list[str]
    method: str
    train_method: str
    hyperparameters: dict[str, Any]
    seed: int
    sample_prompts: list[str]
    metadata_: dict[str, str]
    evaluation: dict[str, Any] | None
    attempt: int
    cancel_requested: bool
    progress_step: int | None
    progress_total: int | None
    progress_losses: Any
    progress_stage: str | None
    error_code: str | None
    error_message: str | None
    result: Any
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt_started_at: datetime | None
    attempt_start_step: int | None


JOB_VIEW_FIELDS = JobRecord._fields
_VIEW_COLUMNS = tuple(
    _jobs.c[Job.__mapper__.attrs[name].columns[0].name]  # type: ignore[union-attr]
    for name in JOB_VIEW_FIELDS
)
# Which fields hold JSON: read as text, decoded by `decode`.
_JSON_FIELDS = frozenset(
    i for i, column in enumerate(_VIEW_COLUMNS) if isinstance(column.type, JSON)
)
# A JOB_ROW_COLUMNS row: the shown columns, JSON ones as their stored text, so that the row is
# hashable and its JSON is decoded only when needed. Read by attribute (`row.id`) or decoded.
JobRow = Row[Any]
JOB_ROW_COLUMNS = tuple(
    (cast(column, Text) if i in _JSON_FIELDS else column).label(name)
    for i, (name, column) in enumerate(zip(JOB_VIEW_FIELDS, _VIEW_COLUMNS, strict=True))
)
KEY_COLUMNS = (
    _keys.c.id.label("key_id"),
    _keys.c.principal.label("key_principal"),
    _keys.c.admin.label("key_admin"),
    _keys.c.key_hash.label("key_hash"),
    _keys.c.last_used_at.label("key_last_used_at"),
)
_LIVE_KEY = and_(_keys.c.key_hash == bindparam("key_hash"), _keys.c.revoked_at.is_(None))

# The key and, when it is the key's principal's, the job: one row when the key is live (job
# columns NULL when there is no such job of that principal), no row when it is not.
_KEY_AND_JOB = (
    select(*KEY_COLUMNS, *JOB_ROW_COLUMNS)
    .select_from(
        _keys.outerjoin(
            _jobs,
            and_(_jobs.c.principal == _keys.c.principal, _jobs.c.id == bindparam("job_id")),
        )
    )
    .where(_LIVE_KEY)
)
_KEY_ONLY = select(*KEY_COLUMNS).where(_LIVE_KEY)


def decode(row: Sequence[Any]) -> JobRecord:
    """A row of JOB_ROW_COLUMNS (or its tuple) as a JobRecord, its JSON decoded."""
    return JobRecord._make(
        json_loads(value) if i in _JSON_FIELDS and value is not None else value
        for i, value in enumerate(row)
    )


@dataclass(frozen=True)
class Keyed(Generic[T]):
    """What a read found for a key: `key` None when the key is unknown, malformed or revoked
    (whatever else was asked: that answer comes first); otherwise the live key (the caller
    records its use when `touch_due`) and either what was read or why it cannot be had."""

    key: KeyMatch | None
    value: T | None = None
    error: DomainError | None = None

    def found(self) -> T:
        """What was read, or its error (e.g. JobNotFoundError, the same for another principal's
        job, so that ids cannot be probed)."""
        if self.error is not None:
            raise self.error
        if self.value is None:
            raise RuntimeError("read of an unknown key")
        return self.value


def is_job_id(value: str) -> bool:
    """Job ids are UUIDs; anything else cannot exist and never reaches SQL (Postgres refuses
    some strings outright, e.g. with NUL bytes, which would surface as a 500)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def job_for_key(db: Connection | Session, key: str, job_id: str) -> Keyed[tuple[Any, ...]]:
    """One statement: the live key and its principal's job `job_id`."""
    if not key.startswith(KEY_SCHEME):
        return Keyed(None)
    digest = hash_key(key)
    valid_id = is_job_id(job_id)
    if valid_id:
        row = db.execute(_KEY_AND_JOB, {"key_hash": digest, "job_id": job_id}).one_or_none()
    else:
        row = db.execute(_KEY_ONLY, {"key_hash": digest}).one_or_none()
    # The constant-time compare, as in match_key.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return Keyed(None)
    match = key_match(row.key_id, row.key_principal, row.key_admin, row.key_last_used_at)
    if not valid_id or row.id is None:
        return Keyed(match, error=JobNotFoundError(job_id))
    return Keyed(match, tuple(row[len(KEY_COLUMNS) :]))
