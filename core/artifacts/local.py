"""Artifacts in a local directory (the default; one box or a shared volume).

Layout: `<root>/<job_id>/[<publication>/]<name>`. A location is that path relative to `root`, so
the data directory can move without rewriting the database.

Every file is copied to a temporary name in its final folder, fsync'ed, then renamed: a reader (or
a crash) never sees a half-written artifact under its real name, and the sha256 is computed from
the very bytes that were written.
"""

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from core.artifacts.store import (
    ArtifactNotFound,
    InvalidArtifactName,
    StoredArtifact,
    artifact_kind,
    validate_artifact_name,
)

_COPY_CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for memory


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, job_id: str, name: str, source: Path, *, publication: str = "") -> StoredArtifact:
        relative = validate_artifact_name(name)
        prefix = [_segment(job_id)] + ([_segment(publication)] if publication else [])
        location = "/".join([*prefix, relative.as_posix()])
        target = self.root / location
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as reader, temporary.open("wb") as writer:
                while chunk := reader.read(_COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(target.parent)
        return StoredArtifact(
            name=relative.as_posix(),
            kind=artifact_kind(name),
            bytes=size,
            sha256=digest.hexdigest(),
            location=location,
        )

    def open(self, location: str) -> BinaryIO:
        return self._existing(location).open("rb")

    def size(self, location: str) -> int:
        return self._existing(location).stat().st_size

    def delete(self, location: str) -> None:
        self._inside(location).unlink(missing_ok=True)

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / _segment(job_id), ignore_errors=True)

    def writable(self) -> bool:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False

    def _inside(self, location: str) -> Path:
        try:
            validate_artifact_name(location)
        except InvalidArtifactName as error:
            raise ArtifactNotFound(location) from error
        path = (self.root / location).resolve()
        if not path.is_relative_to(self.root):  # a symlink pointing out
            raise ArtifactNotFound(location)
        return path

    def _existing(self, location: str) -> Path:
        path = self._inside(location)
        # The store only ever writes regular files: a link anywhere on the way (even one that
        # stays inside the root, e.g. to another job's artifact) is not something it published.
        if path != self.root / location or not path.is_file():
            raise ArtifactNotFound(location)
        return path


def _segment(value: str) -> str:
    """A job id or publication tag used as one folder name."""
    if not value or "/" in value or value in (".", "..") or "\\" in value or "\x00" in value:
        raise InvalidArtifactName(f"invalid path segment: {value!r}")
    return value


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
