"""Figures of the proving ground: the before/after grid (PIL) and the ESR/PSR trade-off over
updates (matplotlib, imported only here, when a plot is asked for)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from core.toyworld.evaluate import Judged, Prompt
from core.toyworld.metrics import SHAPE_AXIS, concept_axis
from core.toyworld.world import COLOUR_NAMES, SHAPES

_CELL = 64  # 32×32 pictures shown at 2×
_LABEL_WIDTH = 150
_HEADER = 20
_GAP = 6


def grid_prompts(concepts: Sequence[str], erased_rows: int = 3) -> list[Prompt]:
    """Rows of the grid: prompts of the erased concepts, then one control per kept concept of
    the same axis (the ones an erasure is most likely to disturb)."""
    rows: list[Prompt] = []
    for concept in concepts:
        if concept_axis(concept) == SHAPE_AXIS:
            rows += [Prompt(concept, c) for c in COLOUR_NAMES[:erased_rows]]
        else:
            rows += [Prompt(s, concept) for s in SHAPES[:erased_rows]]
    for concept in concepts:
        if concept_axis(concept) == SHAPE_AXIS:
            rows += [Prompt(s, "red") for s in SHAPES if s not in concepts]
        else:
            rows += [Prompt("circle", c) for c in COLOUR_NAMES if c not in concepts]
    return list(dict.fromkeys(rows))


def _pictures(judged: Judged, prompt: Prompt, count: int) -> list[Image.Image]:
    indices = [i for i, p in enumerate(judged.prompts) if p == prompt][:count]
    pictures = []
    for i in indices:
        array = ((judged.images[i].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        image = Image.fromarray(array.permute(1, 2, 0).numpy())
        pictures.append(image.resize((_CELL, _CELL), Image.Resampling.NEAREST))
    return pictures


def before_after_grid(
    columns: Sequence[tuple[str, Judged]],
    rows: Sequence[Prompt],
    per_cell: int,
    path: Path,
) -> Path:
    """Rows = prompts, column groups = models (e.g. base, ESD, AP), `per_cell` fixed seeds each."""
    group_width = per_cell * _CELL + _GAP
    width = _LABEL_WIDTH + len(columns) * group_width
    height = _HEADER + len(rows) * _CELL
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for g, (title, _) in enumerate(columns):
        draw.text((_LABEL_WIDTH + g * group_width + 4, 4), title, fill="black")
    for r, prompt in enumerate(rows):
        y = _HEADER + r * _CELL
        draw.text((4, y + _CELL // 2 - 6), prompt.caption, fill="black")
        for g, (_, judged) in enumerate(columns):
            for k, picture in enumerate(_pictures(judged, prompt, per_cell)):
                canvas.paste(picture, (_LABEL_WIDTH + g * group_width + k * _CELL, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def tradeoff_plot(
    curves: dict[str, list[tuple[int, float, float]]], title: str, path: Path
) -> Path:
    """PSR against ESR as training goes on, one line per method, points labelled by update."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for method, rows in curves.items():
        steps, esr, psr = (np.asarray(v) for v in zip(*rows, strict=True))
        axes.plot(esr, psr, marker="o", label=method.upper())
        for s, x, y in zip(steps, esr, psr, strict=True):
            axes.annotate(str(s), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    axes.set_xlabel("ESR (%) — erased concept no longer recognised")
    axes.set_ylabel("PSR (%) — kept concepts still recognised")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
