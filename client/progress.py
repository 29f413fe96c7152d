"""A live progress display for a job: step, stage, loss and ETA, fed by the job's events.

On a terminal it is a progress bar (rich) redrawn in place. Elsewhere (CI logs, a pipe) it prints
plain lines with the same bar, percentage, loss and ETA, throttled so that a log stays short
however long the job: the first step of a stage, one line per tenth of it, one line when
`PLAIN_INTERVAL_S` pass without one (a slow job still shows life), the last step, and each change
of state (queued, starting, resumed, succeeded...). `wait_with_progress` is the one call scripts
use:

    from client import EraserClient
    from client.progress import wait_with_progress
    job = wait_with_progress(EraserClient(url, key), job_id)
"""

import time
from collections.abc import Callable
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
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from client.api import EraserClient, JobRef
from client.models import Event, Job

# Off a terminal: at most one progress line per tenth of a stage, plus one per this many seconds
# without a line.
PLAIN_INTERVAL_S = 60.0
PLAIN_BAR_WIDTH = 20


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


def plain_bar(step: int, total: int, width: int = PLAIN_BAR_WIDTH) -> str:
    """`[########------------]  40/100  40%`: the bar of a log line."""
    filled = width * step // total if total else 0
    percent = 100 * step // total if total else 0
    digits = len(str(total))
    return f"[{'#' * filled}{'-' * (width - filled)}] {step:>{digits}}/{total} {percent:3d}%"


class _PlainThrottle:
    """Which progress events deserve a log line (off a terminal)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._segment: tuple[str, int] | None = None  # (stage, total) of the lines so far
        self._tenth = -1
        self._step = -1
        self._printed_at = 0.0

    def restart(self) -> None:
        self._segment = None

    def wants(self, stage: str, step: int, total: int, now: float) -> bool:
        segment = (stage, total)
        tenth = 10 * step // total if total else 0
        if segment != self._segment or step < self._step:  # a new stage, or a resume
            self._segment, self._tenth = segment, -1
        elif step == self._step:
            return False
        show = tenth > self._tenth or step >= total or now - self._printed_at >= self.interval
        self._step = step
        if show:
            self._tenth, self._printed_at = max(tenth, self._tenth), now
        return show


class JobProgress:
    """Feed it a job's events (`on_event`); it draws them. A context manager.

    `clock` (seconds, monotonic) times the ETA and the log's throttle."""

    def __init__(
        self,
        job_id: str,
        console: Console | None = None,
        *,
        plain_interval: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.console = console or Console(stderr=True)
        self._clock = clock
        self._estimate = _RateEstimate()
        self._live = self.console.is_terminal
        self._throttle = _PlainThrottle(plain_interval)
        self._last_label: str | None = None
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[stage]:<10}"),
            BarColumn(bar_width=32),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TaskProgressColumn(),
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

    def print(self, text: str) -> None:
        """A line of the caller's own, above the bar on a terminal."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)  # a log: no wrap

    def on_event(self, event: Event) -> None:
        data = event.data
        if event.kind == "progress" and "step" in data and "total" in data:
            step, total = int(data["step"]), int(data["total"])
            stage = str(data.get("stage") or "training")
            loss = describe_losses(data.get("losses"))
            now = self._clock()
            eta = self._estimate.update(step, total, now)
            if self._live and self._task is not None:
                self._bar.update(
                    self._task, completed=step, total=total, stage=stage, loss=loss, eta=eta
                )
            elif self._throttle.wants(stage, step, total, now):
                self._last_label = stage
                self.print(f"{stage:<10} {plain_bar(step, total)}  {loss:<16} ETA {_duration(eta)}")
            return
        label = _label(event)
        if event.kind in ("resumed", "stage"):
            self._estimate = _RateEstimate()  # restored or new steps: not done at this speed
            self._throttle.restart()
        if self._live and self._task is not None:
            fields: dict[str, Any] = {"stage": label}
            if event.is_final:
                fields["eta"] = 0.0
            self._bar.update(self._task, **fields)
        elif label != self._last_label or event.is_final:
            self._last_label = label
            self.print(label if event.kind != "resumed" else _resumed(data))


def _label(event: Event) -> str:
    if event.kind == "stage" and event.data.get("stage"):
        return str(event.data["stage"])
    if event.kind == "evaluated" and event.data.get("acceptance"):
        return f"acceptance {event.data['acceptance']}"
    return _EVENT_LABELS.get(event.kind, event.kind)


def _resumed(data: dict[str, Any]) -> str:
    return f"resumed from step {data['step']}" if "step" in data else "resumed"


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
    on_event: Callable[[Event, JobProgress], None] | None = None,
) -> Job:
    """Wait for a job while drawing its progress; returns the finished job. `on_event(event,
    display)`, if given, sees each event after the display has: a script's own story lines go
    through `display.print`, which keeps them above a live bar."""
    job_id = job.id if isinstance(job, Job) else job
    with JobProgress(job_id, console) as display:

        def show(event: Event) -> None:
            display.on_event(event)
            if on_event is not None:
                on_event(event, display)

        return client.wait(job_id, on_event=show, timeout=timeout)
