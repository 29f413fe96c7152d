"""/v1/jobs/{id}/artifacts: the manifest, and downloads with Range (206/416) and sha256.

A name is looked up in the job's artifact rows; the store is then addressed by the row's
`location`, so a user string never becomes a filesystem path.
"""

import base64
import logging
import mimetypes
import re
from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api.dependencies import Context, Principal, ReadSession
from api.problems import ApiProblem, problems
from core.artifacts import ArtifactNotFound, InvalidArtifactName, validate_artifact_name
from core.jobs import service
from core.jobs.errors import ArtifactNotFoundError, FieldError
from core.jobs.schemas import ArtifactManifest, ArtifactView

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["artifacts"])

CHUNK_BYTES = 1 << 16
# No file has more than 10^18 bytes: a longer number is not parsed (Python refuses to convert
# integers of thousands of digits, and the work would grow with the header), it is read as "larger
# than any file", which is what it means.
_MAX_POSITION_DIGITS = 18
# What `validate_artifact_name` accepts, for the OpenAPI document: "/"-separated segments, none
# empty, "." or "..", without backslash or NUL.
ARTIFACT_NAME_PATTERN = r"^(?!\.\.?(?:/|$))[^/\\\x00]+(?:/(?!\.\.?(?:/|$))[^/\\\x00]+)*$"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get(
    "/{job_id}/artifacts",
    response_model=ArtifactManifest,
    responses=problems(401, 404),
    summary="The job's artifacts: name, kind, bytes, sha256",
)
def list_artifacts(job_id: str, principal: Principal, session: ReadSession) -> ArtifactManifest:
    artifacts = service.job_artifacts(session, principal, job_id)
    return ArtifactManifest(job_id=job_id, artifacts=[ArtifactView.of(a) for a in artifacts])


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one satisfiable byte range; None means "send it all" (no
    header, or a form we do not serve such as multiple ranges, which RFC 9110 lets us ignore).
    Raises ApiProblem 416 when the range cannot be satisfied."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    unsatisfiable = ApiProblem(
        416,
        "range-not-satisfiable",
        f"the artifact has {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last N bytes
        length = _position(last_text)
        if length == 0 or size == 0:
            raise unsatisfiable
        return max(size - length, 0), size - 1
    first = _position(first_text)
    last = _position(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise unsatisfiable
    return first, min(last, size - 1)


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


def _read(handle: BinaryIO, first: int, length: int) -> Iterator[bytes]:
    with handle:
        handle.seek(first)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


@router.get(
    "/{job_id}/artifacts/{name:path}",
    response_class=StreamingResponse,
    responses=problems(
        401,
        404,
        416,
        422,
        also={
            200: {"description": "The whole file", "content": {"application/octet-stream": {}}},
            206: {"description": "The requested byte range"},
        },
    ),
    summary="Download one artifact (Range supported; ETag and Digest carry its sha256)",
)
def download_artifact(
    request: Request,
    job_id: str,
    name: str,
    principal: Principal,
    session: ReadSession,
    context: Context,
    range_: str | None = Header(None, alias="Range"),
) -> StreamingResponse:
    try:
        validate_artifact_name(name)
    except InvalidArtifactName as error:
        raise ApiProblem(
            422,
            "invalid-artifact-name",
            "artifact names are relative paths without '..', as the manifest lists them",
            errors=[FieldError(("path", "name"), str(error), "invalid_artifact_name")],
        ) from error
    artifact = service.job_artifact(session, principal, job_id, name)
    try:
        size = context.store.size(artifact.location)
        handle = context.store.open(artifact.location)
    except (ArtifactNotFound, OSError) as error:
        # The row outlived its file (deleted, or replaced by a link the store will not follow):
        # the artifact is gone, which the client can act on; it is not a server fault.
        logger.error("job %s: artifact %r is missing from the store: %s", job_id, name, error)
        raise ArtifactNotFoundError(job_id, name) from error
    digest_b64 = base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{artifact.sha256}"',
        "Digest": f"sha-256={digest_b64}",  # RFC 3230, what most clients check
        "Repr-Digest": f"sha-256=:{digest_b64}:",  # RFC 9530
        "Content-Disposition": f'attachment; filename="{name.rsplit("/", 1)[-1]}"',
    }
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        byte_range = _parse_range(range_, size) if range_ else None
    except ApiProblem:
        handle.close()
        raise
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _read(handle, 0, size),
            media_type=media_type,
            headers=headers,
        )
    first, last = byte_range
    length = last - first + 1
    headers["Content-Length"] = str(length)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _read(handle, first, length),
        status_code=206,
        media_type=media_type,
        headers=headers,
    )
