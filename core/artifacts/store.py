"""The artifact store contract, independent of where the bytes live.

The worker publishes a finished job's files through this interface and the API streams them back
through it. A local directory implements it today (`core.artifacts.local`); an S3-compatible store
can implement the same few calls later without touching the API or the worker.

A *location* is an opaque string owned by the store (recorded in the `artifacts` table). Callers
never build one from user input: the API looks an artifact up by (job, name) in the database and
hands the stored location back to the store.
"""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol


class ArtifactKind(StrEnum):
    WEIGHTS = "weights"
    CONFIG = "config"
    REPORT = "report"
    LOG = "log"
    IMAGE = "image"


@dataclass(frozen=True)
class StoredArtifact:
    name: str  # relative POSIX path as the engine produced it, e.g. "unet/config.json"
    kind: ArtifactKind
    bytes: int
    sha256: str  # hex digest of the stored bytes
    location: str  # opaque, store-specific


class InvalidArtifactName(ValueError):
    """An artifact name that is not a plain relative POSIX path (absolute, `..`, empty parts)."""


class ArtifactNotFound(LookupError):
    """A location the store does not hold (or that points outside it)."""


_KIND_BY_SUFFIX: dict[str, ArtifactKind] = {
    ".safetensors": ArtifactKind.WEIGHTS,
    ".bin": ArtifactKind.WEIGHTS,
    ".jsonl": ArtifactKind.LOG,
    ".log": ArtifactKind.LOG,
    ".png": ArtifactKind.IMAGE,
    ".jpg": ArtifactKind.IMAGE,
    ".jpeg": ArtifactKind.IMAGE,
    ".webp": ArtifactKind.IMAGE,
}


def artifact_kind(name: str) -> ArtifactKind:
    """Classify an engine output by its name.

    `config.json` files are model configuration (they travel with weights); any other JSON is a
    report written for humans and tools (manifest, adversarial-concept report).
    """
    path = PurePosixPath(name)
    if path.name.endswith("config.json"):
        return ArtifactKind.CONFIG
    return _KIND_BY_SUFFIX.get(path.suffix.lower(), ArtifactKind.REPORT)


def validate_artifact_name(name: str) -> PurePosixPath:
    """Return `name` as a relative POSIX path, or raise InvalidArtifactName.

    Names come from the engine, not from users, but the store is the last line before the file
    system, so it refuses anything that could escape the job's folder.
    """
    if not name or "\\" in name or "\x00" in name:
        raise InvalidArtifactName(f"invalid artifact name: {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise InvalidArtifactName(f"invalid artifact name: {name!r}")
    return path


class ArtifactStore(Protocol):
    def put(self, job_id: str, name: str, source: Path, *, publication: str = "") -> StoredArtifact:
        """Store the file `source` as artifact `name` of `job_id`, atomically.

        `publication` separates concurrent publishers of one job (e.g. a worker whose lease was
        taken over): each writes under its own prefix, so a loser can delete exactly what it wrote
        without touching the winner's files.
        """
        ...

    def open(self, location: str) -> BinaryIO:
        """A seekable binary reader over the stored bytes."""
        ...

    def size(self, location: str) -> int: ...

    def delete(self, location: str) -> None:
        """Remove one stored artifact; a missing one is not an error."""
        ...

    def delete_job(self, job_id: str) -> None:
        """Remove everything stored for a job; a job with nothing stored is not an error."""
        ...

    def writable(self) -> bool:
        """Whether a write would succeed now (for /readyz)."""
        ...
