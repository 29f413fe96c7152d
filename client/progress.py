"""A live progress display for a job: step, stage, loss and ETA, fed by the job's events.

On a terminal it is a progress bar (rich); elsewhere (CI logs, a pipe) it prints one plain line
per progress event, so that a log still shows the run advancing. `wait_with_progress` is the
one call scripts use:

    from client import EraserClient
    from client.progress import wait_with_progress
    job = wait_with_progress(EraserClient(url, key), job_id)
"""

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from client.api import EraserClient, JobRef
from client.models import Event, Job


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        return Text(f"ETA {_duration(eta)}", style="cyan")


class _RateEstimate:
    """Remaining time from the steps seen since the first progress event of this attempt (a
    resume starts a new estimate: restored steps were not done at this speed)."""

    def __init__(self) -> None:
        self._origin: tuple[float, int] | None = None

    def update(self, step: int, total: int, now: float) -> float | None:
        if self._origin is None or step < self._origin[1]:
            self._origin = (now, step)
            return None
        started, first_step = self._origin
        done = step - first_step
        if done <= 0:
            return None
        return (now - started) / done * max(total - step, 0)


def describe_losses(losses: dict[str, Any] | None) -> str:
    if not losses:
        return ""
    if "loss" in losses and isinstance(losses["loss"], int | float):
        return f"loss {losses['loss']:.4g}"
    name, value = next(iter(losses.items()))
    return f"{name} {value:.4g}" if isinstance(value, int | float) else ""


class JobProgress:
    """Feed it a job's events (`on_event`); it draws them. A context manager."""

    def __init__(self, job_id: str, console: Console | None = None) -> None:
        self.job_id = job_id
        self.console = console or Console(stderr=True)
        self._estimate = _RateEstimate()
        self._live = self.console.is_terminal
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[stage]:<10}"),
            BarColumn(bar_width=32),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TextColumn("{task.fields[loss]:<16}"),
            _EtaColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> "JobProgress":
        if self._live:
            self._bar.start()
            self._task = self._bar.add_task(
                "job", total=None, stage="queued", loss="", eta=None, start=True
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live:
            self._bar.stop()

    def on_event(self, event: Event) -> None:
        data = event.data
        if event.kind == "progress" and "step" in data and "total" in data:
            step, total = int(data["step"]), int(data["total"])
            stage = str(data.get("stage") or "training")
            loss = describe_losses(data.get("losses"))
            eta = self._estimate.update(step, total, time.monotonic())
            if self._live and self._task is not None:
                self._bar.update(
                    self._task, completed=step, total=total, stage=stage, loss=loss, eta=eta
                )
            else:
                self.console.print(
                    f"{stage:<10} step {step}/{total}  {loss:<16} ETA {_duration(eta)}",
                    highlight=False,
                )
            return
        label = _EVENT_LABELS.get(event.kind, event.kind)
        if self._live and self._task is not None:
            fields: dict[str, Any] = {"stage": label}
            if event.is_final:
                fields["eta"] = 0.0
            if event.kind == "resumed":
                self._estimate = _RateEstimate()
            self._bar.update(self._task, **fields)
        else:
            self.console.print(label, highlight=False)


_EVENT_LABELS = {
    "created": "created",
    "enqueued": "queued",
    "claimed": "starting",
    "resumed": "resumed",
    "checkpoint": "training",
    "cancel_requested": "cancelling",
    "requeued": "requeued",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def wait_with_progress(
    client: EraserClient,
    job: JobRef,
    *,
    console: Console | None = None,
    timeout: float | None = None,
) -> Job:
    """Wait for a job while drawing its progress; returns the finished job."""
    job_id = job.id if isinstance(job, Job) else job
    with JobProgress(job_id, console) as display:
        return client.wait(job_id, on_event=display.on_event, timeout=timeout)
