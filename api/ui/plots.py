"""Loss curves as inline SVG, drawn on the server from the job's training log.

No charting library and no JavaScript: a page with the curves renders (and prints, and screenshots)
like any other HTML. Each series gets its own small chart, because the erasure loss and the
preservation loss differ by orders of magnitude; the raw per-step values are drawn faint and an
exponential moving average on top, since single steps are noisy by design (a random timestep
each).
"""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

MAX_POINTS = 300
WIDTH, HEIGHT = 360, 150
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 10, 12, 26

# The series a user reads, in order, with what each says.
SERIES = {
    "erase": "erasure loss",
    "preserve": "preservation loss",
    "loss": "total loss",
}


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: str  # safe markup: built only from numbers and fixed strings
    last: float
    steps: int


def read_log(lines: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per series from training_log.jsonl; unreadable or non-finite entries are
    skipped (a log is evidence, and one bad line must not hide the rest)."""
    series: dict[str, list[tuple[int, float]]] = {key: [] for key in SERIES}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        for key in SERIES:
            value = record.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                series[key].append((record["step"], float(value)))
    return series


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    return [points[int(i * stride)] for i in range(MAX_POINTS)] + [points[-1]]


def _ema(points: list[tuple[int, float]], span: int) -> list[tuple[int, float]]:
    alpha = 2 / (span + 1)
    smoothed: list[tuple[int, float]] = []
    level = points[0][1]
    for step, value in points:
        level = alpha * value + (1 - alpha) * level
        smoothed.append((step, level))
    return smoothed


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 0.01:
        return f"{value:.3g}"
    return f"{value:.1e}"


def chart(key: str, points: list[tuple[int, float]]) -> Chart | None:
    if len(points) < 2:
        return None
    smoothed = _thin(_ema(points, span=max(len(points) // 20, 3)))
    raw = _thin(points)
    first_step, last_step = points[0][0], points[-1][0]
    low = min(0.0, min(v for _, v in points))
    high = max(v for _, v in points)
    if high <= low:
        high = low + 1.0
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(step: int) -> float:
        return PAD_LEFT + (step - first_step) / max(last_step - first_step, 1) * inner_w

    def y(value: float) -> float:
        return PAD_TOP + (1 - (value - low) / (high - low)) * inner_h

    def path(data: list[tuple[int, float]]) -> str:
        return " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in data)

    grid = []
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * (high - low)
        grid.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
            f'y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="tick" x="{PAD_LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{_tick(value)}</text>'
        )
    svg = (
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{SERIES[key]} per step" data-series="{key}">'
        + "".join(grid)
        + f'<polyline class="raw" points="{path(raw)}"/>'
        + f'<polyline class="smooth" points="{path(smoothed)}"/>'
        + f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 6}">step {first_step}</text>'
        + f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 6}" '
        f'text-anchor="end">{last_step}</text>' + "</svg>"
    )
    return Chart(key, SERIES[key], svg, smoothed[-1][1], len(points))


def loss_charts(lines: Iterable[str]) -> list[Chart]:
    series = read_log(lines)
    charts = [chart(key, points) for key, points in series.items() if key != "loss"]
    return [c for c in charts if c is not None]
