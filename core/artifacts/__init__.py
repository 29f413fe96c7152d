"""Where finished jobs' files live: an interface and its local-directory implementation."""

from core.artifacts.local import LocalArtifactStore
from core.artifacts.store import (
    ArtifactKind,
    ArtifactNotFound,
    ArtifactStore,
    InvalidArtifactName,
    StoredArtifact,
    artifact_kind,
    validate_artifact_name,
)
from core.settings import Settings


def get_store(settings: Settings) -> ArtifactStore:
    """The store this deployment uses (today always the local directory under the data dir)."""
    return LocalArtifactStore(settings.resolved_data_dir / "artifacts")


__all__ = [
    "ArtifactKind",
    "ArtifactNotFound",
    "ArtifactStore",
    "InvalidArtifactName",
    "LocalArtifactStore",
    "StoredArtifact",
    "artifact_kind",
    "get_store",
    "validate_artifact_name",
]
