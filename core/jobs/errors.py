"""Domain errors of the job use cases. The API maps each to one problem type and status; the
domain itself knows nothing of HTTP."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One invalid input, located like pydantic does: ("body", "concepts", 0)."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class DomainError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    """Absent, or owned by another principal: the two are indistinguishable on purpose."""


class JobNotFoundError(NotFoundError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")


class ArtifactNotFoundError(NotFoundError):
    def __init__(self, job_id: str, name: str) -> None:
        super().__init__(f"job {job_id!r} has no artifact {name!r}")


class InvalidRequestError(DomainError):
    """Input that passed the schema but breaks a rule that needs the deployment's state or
    limits (unknown model, operator limits, an undecodable cursor)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors))
        self.errors = errors


class JobFinishedError(DomainError):
    """Cancel asked of a job that already succeeded or failed."""


class IdempotencyKeyReusedError(DomainError):
    """The same Idempotency-Key with a different body."""


class IdempotencyInFlightError(DomainError):
    """The first request with this Idempotency-Key has not finished yet."""
