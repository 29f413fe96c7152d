"""`eraser jobs ...`: the API from a shell, on the Python client (no server code, no torch).

Configured by ERASER_API_URL and ERASER_API_KEY (or --api-url / --api-key). Every command takes
`--json` for scripts. Exit codes tell a script what happened:

    0 succeeded (or the command did what it was asked)   4 succeeded, but failed its acceptance
    1 the job failed                                     5 the API refused the request (a problem)
    2 usage error                                        6 the API could not be reached
    3 the job was cancelled                              7 --timeout passed before the job ended
                                                         8 a download did not verify
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from client.api import DEFAULT_API_URL, EraserClient
from client.errors import ConnectionFailed, IntegrityError, ProblemError, WaitTimeout
from client.models import Artifact, Event, Job, JobStatus
from client.progress import JobProgress, describe_losses

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 3
EXIT_ACCEPTANCE_FAILED = 4
EXIT_REFUSED = 5
EXIT_UNREACHABLE = 6
EXIT_TIMEOUT = 7
EXIT_INTEGRITY = 8

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code_of(job: Job) -> int:
    if job.status == JobStatus.SUCCEEDED:
        return EXIT_ACCEPTANCE_FAILED if job.acceptance == "failed" else EXIT_OK
    if job.status == JobStatus.CANCELLED:
        return EXIT_CANCELLED
    return EXIT_FAILED


class _Config:
    def __init__(self, api_url: str, api_key: str | None, retries: int) -> None:
        self.api_url = api_url
        self.api_key = api_key
        self.retries = retries

    def client(self) -> EraserClient:
        if not self.api_key:
            raise click.UsageError("no API key: set ERASER_API_KEY or pass --api-key")
        return EraserClient(self.api_url, self.api_key, max_retries=self.retries)


@contextmanager
def _api(ctx: click.Context) -> Iterator[EraserClient]:
    """The client, with the client's exceptions turned into a message and an exit code."""
    config: _Config = ctx.ensure_object(_Config)
    try:
        with config.client() as eraser:
            yield eraser
    except ProblemError as problem:
        _fail(EXIT_REFUSED, f"error: {problem}")
    except ConnectionFailed as error:
        _fail(EXIT_UNREACHABLE, f"error: cannot reach the API at {config.api_url}: {error}")
    except WaitTimeout as error:
        _fail(EXIT_TIMEOUT, f"error: {error}")
    except IntegrityError as error:
        _fail(EXIT_INTEGRITY, f"error: {error}")


def _fail(code: int, message: str) -> NoReturn:
    _err.print(message, markup=False)
    sys.exit(code)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _job_json(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


@click.group(
    "jobs",
    epilog="Exit codes: 0 succeeded, 1 failed, 2 usage, 3 cancelled, 4 acceptance failed, "
    "5 refused by the API, 6 API unreachable, 7 --timeout passed, 8 download did not verify.",
)
@click.option(
    "--api-url",
    envvar="ERASER_API_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    help="The API's base URL [env ERASER_API_URL].",
)
@click.option(
    "--api-key", envvar="ERASER_API_KEY", default=None, help="An API key [env ERASER_API_KEY]."
)
@click.option("--retries", default=5, show_default=True, help="Retries on connection errors.")
@click.pass_context
def jobs(ctx: click.Context, api_url: str, api_key: str | None, retries: int) -> None:
    """Submit, follow and download erasure jobs over the API."""
    ctx.obj = _Config(api_url, api_key, retries)


# -- submit ---------------------------------------------------------------------------------


def _key_values(pairs: tuple[str, ...], option: str, parse: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        if parse:
            try:
                result[key] = json.loads(value)
            except ValueError:
                result[key] = value
        else:
            result[key] = value
    return result


def build_spec(
    spec_file: Path | None,
    model: str | None,
    concepts: tuple[str, ...],
    method: str | None,
    train_method: str | None,
    iterations: int | None,
    hyperparameters: tuple[str, ...],
    seed: int | None,
    prompts: tuple[str, ...],
    metadata: tuple[str, ...],
) -> dict[str, Any]:
    """The POST /v1/jobs body: a JSON file's, with flags on top. Validation is the server's."""
    spec: dict[str, Any] = {}
    if spec_file is not None:
        try:
            loaded = json.loads(spec_file.read_text())
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--file") from error
        if not isinstance(loaded, dict):
            raise click.BadParameter("must hold a JSON object", param_hint="--file")
        spec.update(loaded)
    if model is not None:
        spec["model"] = model
    spec.setdefault("model", "demo")
    if concepts:
        spec["concepts"] = list(concepts)
    for name, value in (("method", method), ("train_method", train_method), ("seed", seed)):
        if value is not None:
            spec[name] = value
    extra = _key_values(hyperparameters, "--hp", parse=True)
    if iterations is not None:
        extra["iterations"] = iterations
    if extra:
        spec["hyperparameters"] = {**spec.get("hyperparameters", {}), **extra}
    if prompts:
        spec["sample_prompts"] = list(prompts)
    if metadata:
        spec["metadata"] = {**spec.get("metadata", {}), **_key_values(metadata, "--meta", False)}
    if "concepts" not in spec:
        raise click.UsageError("name at least one --concept (or give a --file with concepts)")
    return spec


@jobs.command()
@click.option("-c", "--concept", "concepts", multiple=True, help="A concept to erase (repeat).")
@click.option("-m", "--model", default=None, help="A registered model name [default: demo].")
@click.option("--method", type=click.Choice(["ap", "esd"]), default=None, help="[default: ap]")
@click.option("--train-method", default=None, help="xattn, noxattn, selfattn, xattn_kv, full.")
@click.option("-n", "--iterations", type=int, default=None, help="UNet updates.")
@click.option("--hp", "hyperparameters", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--seed", type=int, default=None)
@click.option("-p", "--prompt", "prompts", multiple=True, help="A prompt of the sample grid.")
@click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE", help="A label.")
@click.option(
    "-f",
    "--file",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON job body; flags override its fields.",
)
@click.option("--idempotency-key", default=None, help="Default: a fresh one per submission.")
@click.option("--wait", "wait_", is_flag=True, help="Follow the job to its end (progress bar).")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="After success, download every artifact here (implies --wait).",
)
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@json_option
@click.pass_context
def submit(
    ctx: click.Context,
    concepts: tuple[str, ...],
    model: str | None,
    method: str | None,
    train_method: str | None,
    iterations: int | None,
    hyperparameters: tuple[str, ...],
    seed: int | None,
    prompts: tuple[str, ...],
    metadata: tuple[str, ...],
    spec_file: Path | None,
    idempotency_key: str | None,
    wait_: bool,
    download_dir: Path | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit an erasure job (e.g. -c ring --wait --download out/)."""
    spec = build_spec(
        spec_file, model, concepts, method, train_method, iterations, hyperparameters, seed,
        prompts, metadata,
    )  # fmt: skip
    with _api(ctx) as eraser:
        job = eraser.create_job(spec, idempotency_key=idempotency_key)
        if not as_json:
            _err.print(
                f"submitted job [bold]{job.id}[/] ({job.model}: erase "
                f"{', '.join(job.concepts)} with {job.method})"
            )
        if not (wait_ or download_dir):
            if as_json:
                _print_json(_job_json(job))
            else:
                click.echo(job.id)
            return
        job = _wait(eraser, job.id, as_json, timeout)
        code = exit_code_of(job)
        if download_dir is not None and job.status == JobStatus.SUCCEEDED:
            _download(eraser, job, download_dir, (), quiet=as_json)
        _report_end(job, as_json)
    sys.exit(code)


def _wait(eraser: EraserClient, job_id: str, quiet: bool, timeout: float | None) -> Job:
    if quiet:
        return eraser.wait(job_id, timeout=timeout)
    with JobProgress(job_id, _err) as display:
        return eraser.wait(job_id, on_event=display.on_event, timeout=timeout)


def _report_end(job: Job, as_json: bool) -> None:
    if as_json:
        _print_json(_job_json(job))
        return
    line = f"job {job.id} {job.status.value}"
    if job.error is not None:
        line += f": {job.error.code}" + (f" ({job.error.message})" if job.error.message else "")
    if job.acceptance is not None:
        line += f"; acceptance {job.acceptance}"
    _err.print(line, markup=False)


# -- read -----------------------------------------------------------------------------------


@jobs.command()
@click.argument("job_id")
@json_option
@click.pass_context
def get(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show one job: status, progress, error, result."""
    with _api(ctx) as eraser:
        job = eraser.job(job_id)
    if as_json:
        _print_json(_job_json(job))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in _job_rows(job):
        table.add_row(name, value)
    _out.print(table)


def _job_rows(job: Job) -> Iterator[tuple[str, str]]:
    yield "id", job.id
    yield "status", job.status.value
    yield "model", job.model
    yield "concepts", ", ".join(job.concepts)
    yield "method", f"{job.method} ({job.train_method})"
    if job.hyperparameters:
        yield "hyperparameters", json.dumps(job.hyperparameters)
    if job.progress is not None:
        progress = job.progress
        text = f"step {progress.step}/{progress.total}"
        losses = describe_losses(progress.losses)
        if losses:
            text += f", {losses}"
        if progress.eta_seconds is not None:
            text += f", ETA {progress.eta_seconds:.0f} s"
        yield "progress", text
    if job.error is not None:
        yield "error", f"{job.error.code}: {job.error.message or ''}"
    if job.acceptance is not None:
        yield "acceptance", job.acceptance
    yield "created", job.created_at.isoformat()
    if job.finished_at is not None:
        yield "finished", job.finished_at.isoformat()


@jobs.command("list")
@click.option("--status", multiple=True, type=click.Choice([s.value for s in JobStatus]))
@click.option("--method", type=click.Choice(["ap", "esd"]), default=None)
@click.option("--limit", type=int, default=20, show_default=True, help="Jobs to show; 0: all.")
@json_option
@click.pass_context
def list_(
    ctx: click.Context, status: tuple[str, ...], method: str | None, limit: int, as_json: bool
) -> None:
    """Your jobs, newest first (pages are fetched as needed)."""
    with _api(ctx) as eraser:
        found: list[Job] = []
        for job in eraser.jobs(status=status, method=method, page_size=min(limit or 100, 100)):
            found.append(job)
            if limit and len(found) >= limit:
                break
    if as_json:
        _print_json([_job_json(job) for job in found])
        return
    if not _out.is_terminal:  # a pipe: one tab-separated line per job, ids whole
        for job in found:
            progress = f"{job.progress.step}/{job.progress.total}" if job.progress else "-"
            click.echo(
                "\t".join(
                    (
                        job.id,
                        job.status.value,
                        job.model,
                        ",".join(job.concepts),
                        job.method,
                        progress,
                        job.created_at.isoformat(),
                    )
                )
            )
        return
    table = Table(box=None)
    for column in ("id", "status", "model", "concepts", "method", "progress", "created"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for job in found:
        progress = f"{job.progress.step}/{job.progress.total}" if job.progress else ""
        table.add_row(
            job.id, job.status.value, job.model, ", ".join(job.concepts), job.method, progress,
            job.created_at.strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    _out.print(table)


@jobs.command()
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@json_option
@click.pass_context
def wait(ctx: click.Context, job_id: str, timeout: float | None, as_json: bool) -> None:
    """Follow a job to its end with a progress bar; the exit code tells how it ended."""
    with _api(ctx) as eraser:
        job = _wait(eraser, job_id, as_json, timeout)
        _report_end(job, as_json)
    sys.exit(exit_code_of(job))


@jobs.command()
@click.argument("job_id")
@json_option
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job (a running one stops at its next training step)."""
    with _api(ctx) as eraser:
        job = eraser.cancel(job_id)
    if as_json:
        _print_json(_job_json(job))
    else:
        _err.print(f"job {job.id} {job.status.value}", markup=False)


@jobs.command()
@click.argument("job_id")
@click.option("--after", type=int, default=0, help="Only events after this id.")
@click.option("--follow", is_flag=True, help="Keep printing new events until the job ends.")
@json_option
@click.pass_context
def events(ctx: click.Context, job_id: str, after: int, follow: bool, as_json: bool) -> None:
    """The job's event log (JSON lines with --json)."""

    def show(event: Event) -> None:
        if as_json:
            click.echo(event.model_dump_json())
        else:
            when = event.created_at.strftime("%H:%M:%S")
            click.echo(f"{event.id:>5}  {when}  {event.kind:<16} {json.dumps(event.data)}")

    with _api(ctx) as eraser:
        stream = (
            eraser.stream_events(job_id, after=after)
            if follow
            else iter(eraser.events(job_id, after=after).items)
        )
        for event in stream:
            show(event)


@jobs.command()
@click.argument("job_id")
@json_option
@click.pass_context
def artifacts(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """The job's artifacts: name, kind, size, sha256."""
    with _api(ctx) as eraser:
        found = eraser.artifacts(job_id)
    if as_json:
        _print_json([artifact.model_dump(mode="json") for artifact in found])
        return
    table = Table(box=None)
    for column in ("name", "kind", "bytes", "sha256"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for artifact in found:
        table.add_row(artifact.name, artifact.kind, f"{artifact.bytes:,}", artifact.sha256)
    _out.print(table)


@jobs.command()
@click.argument("job_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", "names", multiple=True, help="Only this artifact (repeat).")
@json_option
@click.pass_context
def download(
    ctx: click.Context, job_id: str, directory: Path, names: tuple[str, ...], as_json: bool
) -> None:
    """Download the job's artifacts into DIRECTORY (resumed, sha256-verified)."""
    with _api(ctx) as eraser:
        paths = _download(eraser, eraser.job(job_id), directory, names, quiet=as_json)
    if as_json:
        _print_json([str(path) for path in paths])


def _download(
    eraser: EraserClient, job: Job, directory: Path, names: tuple[str, ...], *, quiet: bool
) -> list[Path]:
    wanted = set(names) or None
    manifest = [a for a in eraser.artifacts(job) if wanted is None or a.name in wanted]
    total = sum(artifact.bytes for artifact in manifest)
    live = _err.is_terminal and not quiet
    bar = Progress(
        TextColumn("[bold]download"),
        BarColumn(bar_width=32),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[name]}"),
        console=_err,
        disable=not live,
    )
    task = bar.add_task("download", total=total, name="")

    def on_bytes(artifact: Artifact, count: int) -> None:
        bar.update(task, advance=count, name=artifact.name)

    with bar:
        paths = eraser.download(job, directory, names=names or None, on_bytes=on_bytes)
    if not quiet:
        for artifact in manifest:
            _err.print(f"  {artifact.name:<44} {artifact.bytes:>12,} B  sha256 ok", markup=False)
        _err.print(f"{len(paths)} artifacts of job {job.id} in {directory}", markup=False)
    return paths


@jobs.command()
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """The base models jobs may name."""
    with _api(ctx) as eraser:
        found = eraser.models()
    if as_json:
        _print_json([model.model_dump(mode="json") for model in found])
        return
    for model in found:
        state = "" if model.available else "  (unavailable)"
        click.echo(f"{model.name}\t{model.kind}{state}")
