"""The client's exceptions. A refused request raises `ProblemError`, carrying the RFC 9457
problem the server sent (type, title, detail and the fields it names)."""

from dataclasses import dataclass, field
from typing import Any


class EraserError(Exception):
    """Base of everything this client raises."""


@dataclass(frozen=True)
class FieldProblem:
    loc: tuple[str | int, ...]
    msg: str
    type: str = ""

    @property
    def field(self) -> str:
        """The field as a user names it: `hyperparameters.iterations` for
        `body.hyperparameters.iterations`."""
        parts = list(self.loc)
        if parts and parts[0] == "body":
            parts = parts[1:]
        return ".".join(str(part) for part in parts) or "(request)"


@dataclass
class ProblemError(EraserError):
    """The server refused the request (any 4xx/5xx answered with a problem, or not)."""

    status: int
    type: str
    title: str
    detail: str | None = None
    errors: list[FieldProblem] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        for error in self.errors:
            text += f"\n  {error.field}: {error.msg}"
        return text

    @property
    def slug(self) -> str:
        """The last part of the problem type, e.g. `validation-error`."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_response(cls, status: int, reason: str, body: Any) -> "ProblemError":
        if not isinstance(body, dict):
            return cls(status=status, type="about:blank", title=reason or str(status))
        errors = [
            FieldProblem(
                loc=tuple(item.get("loc") or ()),
                msg=str(item.get("msg", "")),
                type=str(item.get("type", "")),
            )
            for item in body.get("errors") or []
            if isinstance(item, dict)
        ]
        return cls(
            status=status,
            type=str(body.get("type", "about:blank")),
            title=str(body.get("title", reason or status)),
            detail=body.get("detail"),
            errors=errors,
            body=body,
        )


class ConnectionFailed(EraserError):
    """The API could not be reached (after the retries)."""


class WaitTimeout(EraserError):
    """`wait` gave up before the job finished (the job goes on)."""


class IntegrityError(EraserError):
    """A downloaded file's sha256 does not match the manifest, even after a fresh download."""
