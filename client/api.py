"""`EraserClient`: the HTTP API as typed Python calls.

What it does for a caller that hand-written HTTP would not:
- every create carries an Idempotency-Key (one per call, reused by its retries), so a retry after a
  lost response returns the first job instead of making a second;
- connection errors, 429, 502/503/504 and "idempotency key in flight" are retried with
  exponential backoff, honouring Retry-After;
- `wait` follows the job's Server-Sent Events and reconnects with Last-Event-ID after a dropped
  connection, so no event is lost or seen twice;
- `download` resumes a partial file with Range and checks every sha256 against the manifest;
- `jobs()` pages through the list on its own;
- a refused request raises `ProblemError` with the problem's type, title and fields.
"""

import contextlib
import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel

from client.errors import ConnectionFailed, IntegrityError, ProblemError, WaitTimeout
from client.models import (
    ApiKeyInfo,
    Artifact,
    ArtifactManifest,
    Event,
    EventList,
    IssuedKey,
    Job,
    JobPage,
    RegisteredModel,
)

DEFAULT_API_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A 409 of this type means "your first request with this key is still running": wait and ask again.
IN_FLIGHT_PROBLEM = "idempotency-key-in-flight"
CHUNK_BYTES = 1 << 20

JobRef = Job | str
M = TypeVar("M", bound=BaseModel)


def _job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else job


class EraserClient:
    """A client of one eraser API, authenticated by one API key.

    `base_url` and `api_key` default to `ERASER_API_URL` and `ERASER_API_KEY`. `transport` is
    handed to httpx (tests use it to inject faults into a real connection).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or os.environ.get("ERASER_API_URL") or DEFAULT_API_URL).rstrip(
            "/"
        )
        key = api_key if api_key is not None else os.environ.get("ERASER_API_KEY")
        headers = {"User-Agent": "eraser-client/1"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "EraserClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- transport: retries and problems ---------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = _retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.max_backoff_seconds)
        ceiling = min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retrying clients do not align

    def _send(
        self, method: str, path: str, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request with retries; raises ProblemError for an error answer. A streamed
        response is returned open (the caller closes it)."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                request = self._http.build_request(method, path, **kwargs)
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(
                        f"{method} {self.base_url}{path}: {error!r} (after {attempt} retries)"
                    ) from error
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                if not self._retryable(response) or attempt >= self.max_retries:
                    raise _problem(response)
                response.close()
            self._sleep(self._delay(attempt, response))
            attempt += 1

    @staticmethod
    def _retryable(response: httpx.Response) -> bool:
        if response.status_code in RETRY_STATUSES:
            return True
        return response.status_code == 409 and _problem(response).slug == IN_FLIGHT_PROBLEM

    def _get(self, path: str, model: type[M], **kwargs: Any) -> M:
        return model.model_validate(self._send("GET", path, **kwargs).json())

    # -- models and jobs -------------------------------------------------------------------

    def models(self) -> list[RegisteredModel]:
        body = self._send("GET", "/v1/models").json()
        return [RegisteredModel.model_validate(item) for item in body["items"]]

    def create_job(self, spec: Mapping[str, Any], *, idempotency_key: str | None = None) -> Job:
        """Submit a job (the body of POST /v1/jobs). Retries reuse one Idempotency-Key, so a
        create whose response was lost is answered with the job it made."""
        key = idempotency_key or str(uuid.uuid4())
        response = self._send("POST", "/v1/jobs", json=dict(spec), headers={"Idempotency-Key": key})
        return Job.model_validate(response.json())

    def job(self, job: JobRef) -> Job:
        return self._get(f"/v1/jobs/{_job_id(job)}", Job)

    def jobs_page(
        self,
        *,
        status: Iterable[str] = (),
        method: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> JobPage:
        params: list[tuple[str, str]] = [("status", str(value)) for value in status]
        for name, value in (
            ("method", method),
            ("created_after", created_after.isoformat() if created_after else None),
            ("created_before", created_before.isoformat() if created_before else None),
            ("limit", str(limit) if limit else None),
            ("after", after),
        ):
            if value is not None:
                params.append((name, value))
        return self._get("/v1/jobs", JobPage, params=params)

    def jobs(
        self,
        *,
        status: Iterable[str] = (),
        method: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages as the caller iterates."""
        statuses = list(status)
        cursor: str | None = None
        while True:
            page = self.jobs_page(
                status=statuses,
                method=method,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                after=cursor,
            )
            yield from page.items
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job: JobRef) -> Job:
        return Job.model_validate(self._send("POST", f"/v1/jobs/{_job_id(job)}/cancel").json())

    # -- events ----------------------------------------------------------------------------

    def events(self, job: JobRef, *, after: int = 0) -> EventList:
        return self._get(f"/v1/jobs/{_job_id(job)}/events", EventList, params={"after": after})

    def stream_events(self, job: JobRef, *, after: int = 0) -> Iterator[Event]:
        """The job's events from `after` on, live, until its final event. A dropped connection
        is reopened with Last-Event-ID = the last event seen: nothing is missed or repeated."""
        job_id = _job_id(job)
        last_id = after
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last_id)}
            try:
                response = self._send(
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    stream=True,
                    headers=headers,
                    # The server pings every 15 s; a minute of silence is a dead connection.
                    timeout=httpx.Timeout(self._http.timeout.connect, read=60.0),
                )
                try:
                    for message in EventSource(response).iter_sse():
                        if not message.data:
                            continue
                        event = Event.model_validate_json(message.data)
                        if event.id <= last_id:
                            continue
                        last_id = event.id
                        failures = 0
                        yield event
                        if event.is_final:
                            return
                finally:
                    response.close()
            except (httpx.TransportError, SSEError) as error:
                failures += 1
                if failures > self.max_retries:
                    raise ConnectionFailed(f"events of job {job_id}: {error!r}") from error
                self._sleep(self._delay(failures - 1, None))
                continue
            # The server closed the stream without a final event: either the job is terminal
            # (its log lacks the event) or the server went away mid-stream; look, then resume.
            if self.job(job_id).status.is_terminal:
                yield from (e for e in self.events(job_id, after=last_id).items if e.id > last_id)
                return

    def wait(
        self,
        job: JobRef,
        *,
        on_event: Callable[[Event], None] | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Follow the job's events until it finishes; returns the finished job. `on_event` sees
        every event (progress events carry step, total and losses)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.stream_events(job):
            if on_event is not None:
                on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {_job_id(job)} still running after {timeout} s")
        return self.job(job)

    # -- artifacts -------------------------------------------------------------------------

    def artifacts(self, job: JobRef) -> list[Artifact]:
        return self._get(f"/v1/jobs/{_job_id(job)}/artifacts", ArtifactManifest).artifacts

    def download(
        self,
        job: JobRef,
        directory: str | os.PathLike[str],
        *,
        names: Iterable[str] | None = None,
        on_bytes: Callable[[Artifact, int], None] | None = None,
    ) -> list[Path]:
        """Download the job's artifacts (or only `names`) under `directory`, keeping their
        relative names. A file already there with the right sha256 is kept; a `.part` file left
        by an interrupted download is resumed with Range; every file is checked against the
        manifest's sha256. `on_bytes(artifact, n)` reports n new bytes as they arrive."""
        root = Path(directory)
        wanted = set(names) if names is not None else None
        manifest = self.artifacts(job)
        if wanted is not None:
            unknown = wanted - {artifact.name for artifact in manifest}
            if unknown:
                raise ProblemError(
                    404, "not-found", "Not Found", f"no artifact named {sorted(unknown)}"
                )
        paths = []
        for artifact in manifest:
            if wanted is None or artifact.name in wanted:
                paths.append(self._download_one(_job_id(job), artifact, root, on_bytes))
        return paths

    def _download_one(
        self,
        job_id: str,
        artifact: Artifact,
        root: Path,
        on_bytes: Callable[[Artifact, int], None] | None,
    ) -> Path:
        target = _inside(root, artifact.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        complete = target.exists() and target.stat().st_size == artifact.bytes
        if complete and _sha256(target) == artifact.sha256:
            if on_bytes is not None:
                on_bytes(artifact, artifact.bytes)
            return target
        part = target.with_name(target.name + ".part")
        for fresh in (False, True):
            if fresh:
                part.unlink(missing_ok=True)
            digest = self._fetch_into(job_id, artifact, part, on_bytes)
            if digest == artifact.sha256:
                os.replace(part, target)
                return target
        part.unlink(missing_ok=True)
        raise IntegrityError(
            f"{artifact.name}: sha256 {digest} does not match the manifest's {artifact.sha256}"
        )

    def _fetch_into(
        self,
        job_id: str,
        artifact: Artifact,
        part: Path,
        on_bytes: Callable[[Artifact, int], None] | None,
    ) -> str:
        """Fill `part` to the artifact's size, resuming from what it holds; its sha256."""
        digest = hashlib.sha256()
        offset = part.stat().st_size if part.exists() else 0
        if offset > artifact.bytes:
            part.unlink()
            offset = 0
        if offset:
            with part.open("rb") as existing:
                for block in iter(lambda: existing.read(CHUNK_BYTES), b""):
                    digest.update(block)
            if on_bytes is not None:
                on_bytes(artifact, offset)
        failures = 0
        path = f"/v1/jobs/{job_id}/artifacts/{artifact.name}"
        while offset < artifact.bytes:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = self._send("GET", path, stream=True, headers=headers)
                with contextlib.closing(response), part.open("r+b" if offset else "wb") as sink:
                    if response.status_code != 206 and offset:
                        # The server sent the whole file: start over from its first byte.
                        sink.truncate(0)
                        offset, digest = 0, hashlib.sha256()
                    sink.seek(offset)
                    for chunk in response.iter_bytes():  # as it arrives: a cut keeps all it got
                        sink.write(chunk)
                        digest.update(chunk)
                        offset += len(chunk)
                        failures = 0
                        if on_bytes is not None:
                            on_bytes(artifact, len(chunk))
            except httpx.TransportError as error:
                failures += 1
                if failures > self.max_retries:
                    raise ConnectionFailed(f"download of {artifact.name}: {error!r}") from error
                self._sleep(self._delay(failures - 1, None))
        return digest.hexdigest()

    # -- keys (admin keys only) ------------------------------------------------------------

    def create_key(self, principal: str) -> IssuedKey:
        body = {"principal": principal}
        return IssuedKey.model_validate(self._send("POST", "/v1/admin/keys", json=body).json())

    def keys(self, principal: str | None = None) -> list[ApiKeyInfo]:
        params = {"principal": principal} if principal else {}
        body = self._send("GET", "/v1/admin/keys", params=params).json()
        return [ApiKeyInfo.model_validate(item) for item in body["items"]]

    def revoke_key(self, prefix: str) -> ApiKeyInfo:
        response = self._send("POST", f"/v1/admin/keys/{prefix}/revoke")
        return ApiKeyInfo.model_validate(response.json())


def _problem(response: httpx.Response) -> ProblemError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return ProblemError.from_response(response.status_code, response.reason_phrase, body)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _inside(root: Path, name: str) -> Path:
    """Where artifact `name` goes under root; a name that would leave root is refused (the
    manifest comes from the server, but a client must not write where a server tells it to)."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise IntegrityError(f"refusing artifact name {name!r}")
    return root.joinpath(*relative.parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
