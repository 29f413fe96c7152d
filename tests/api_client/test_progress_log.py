"""The client's progress display off a terminal (a CI log, a pipe, `make demo` under a test): a
long job's log stays short, still shows life at least once a minute, and ends with the outcome.

The events are the ones a server sends for a 1000-update job that a lost worker interrupts at
update 450 and the next worker resumes from its checkpoint at 400, followed by an evaluation
stage; the clock is the job's (one second per update), so the ETAs are exact."""

import io
import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from rich.console import Console

from client import Event
from client.progress import PLAIN_INTERVAL_S, JobProgress

TOTAL = 1000
BAR = re.compile(r"^(\w+) +\[[#-]{20}\] +(\d+)/(\d+) +(\d+)%  .* ETA (\S+)$")


class JobClock:
    """Seconds since the job started, as the test advances them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def long_job_log() -> tuple[list[str], list[float]]:
    """The display's lines for the whole job, and the job time at which each was written."""
    log, clock, times = io.StringIO(), JobClock(), []
    events: list[Event] = []

    started = datetime(2026, 12, 1, tzinfo=UTC)

    def event(kind: str, **data: object) -> Event:
        events.append(
            Event(
                id=len(events) + 1,
                kind=kind,
                data=data,
                created_at=started + timedelta(seconds=clock.now),
            )
        )
        return events[-1]

    # A narrow console: a log line is never wrapped (a pipe or a CI log has no width).
    console = Console(file=log, force_terminal=False, width=40)
    with JobProgress("job", console, clock=clock) as display:

        def send(kind: str, **data: object) -> None:
            written = log.getvalue().count("\n")
            display.on_event(event(kind, **data))
            times.extend([clock.now] * (log.getvalue().count("\n") - written))

        for kind in ("created", "enqueued", "claimed"):
            send(kind)
        steps = [*range(1, 451), *range(401, TOTAL + 1)]
        for index, step in enumerate(steps):
            if index == 450:  # the worker was lost after update 450; its checkpoint is at 400
                for kind in ("requeued", "claimed"):
                    send(kind)
                send("resumed", step=400)
            clock.now += 1.0
            send("progress", stage="training", step=step, total=TOTAL, losses={"loss": 0.5})
            if step % 100 == 0:
                send("checkpoint", step=step)
        send("stage", stage="evaluation", step=0, total=8, resumed=False)
        for batch in range(1, 9):
            clock.now += 5.0
            send("progress", stage="evaluation", step=batch, total=8, losses={})
        send("evaluated", acceptance="passed")
        send("succeeded")
    return log.getvalue().splitlines(), times


def test_a_long_jobs_log_is_short_shows_life_each_minute_and_ends_with_the_outcome() -> None:
    lines, times = long_job_log()
    bars = [(BAR.match(line), at) for line, at in zip(lines, times, strict=True)]
    training = [(match, at) for match, at in bars if match and match.group(1) == "training"]
    evaluation = [match for match, _ in bars if match and match.group(1) == "evaluation"]

    # Bounded: 1050 progress events, yet the whole log is a few dozen lines: per attempt, the
    # first update, one per tenth, the last, and one per minute without any of those.
    assert len(lines) < 50, lines
    job_seconds = 1050
    assert len(training) <= 2 * 11 + job_seconds / PLAIN_INTERVAL_S, lines
    assert len(evaluation) == 8, lines  # 8 batches: each one is a tenth or more
    # Still alive in the log: no minute of training without a line.
    gaps = [later - earlier for (_, earlier), (_, later) in pairwise(training)]
    assert max(gaps) <= PLAIN_INTERVAL_S, gaps

    assert training[0][0].group(2, 5) == ("1", "-:--")  # the first update: no rate yet
    # The resume is told, and its first update shown (a new attempt, a new estimate).
    resumed = lines.index("resumed from step 400")
    assert lines[resumed - 2 : resumed] == ["requeued", "starting"], lines
    assert BAR.match(lines[resumed + 1]).group(2, 5) == ("401", "-:--"), lines  # type: ignore[union-attr]
    at_500 = next(match for match, _ in training if match.group(2) == "500")
    assert at_500.group(4) == "50" and at_500.group(5) == "8:20"  # 500 updates left, 1 s each
    assert training[-1][0].group(2, 4, 5) == ("1000", "100", "0:00")

    # The end of the story, in order: evaluation done, acceptance, outcome.
    assert lines[-3:] == [evaluation[-1].group(0), "acceptance passed", "succeeded"], lines
    assert lines[:3] == ["created", "queued", "starting"], lines
    # No repeated state lines (a checkpoint is not news in a log).
    assert not any(a == b for a, b in pairwise(lines)), lines
