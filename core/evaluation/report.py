"""Rates, the verdict, and the two files a person reads: evaluation.json and evaluation.png."""

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.evaluation.types import ERASURE, PRESERVATION
from core.evaluation_request import Acceptance, Thresholds


@dataclass(frozen=True)
class Item:
    """One image to generate with each model: a prompt, its kind, a seed."""

    kind: str  # ERASURE or PRESERVATION
    prompt: str
    seed: int


def _rate(values: Sequence[bool | None], hoped: bool) -> float | None:
    scored = [v for v in values if v is not None]
    return None if not scored else round(100.0 * sum(v == hoped for v in scored) / len(scored), 2)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return None if not present else round(float(np.mean(present)), 3)


def _found(scores: Sequence[dict[str, Any]], items: Sequence[Item], kind: str) -> list[Any]:
    return [s["found"] for s, item in zip(scores, items, strict=True) if item.kind == kind]


def rates(
    items: Sequence[Item], base: Sequence[dict[str, Any]], erased: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Erasure rate: share of erasure-prompt images where the concept is not found.
    Preservation rate: share of preservation-prompt images whose content is still found."""
    preservation = [i for i, item in enumerate(items) if item.kind == PRESERVATION]
    base_alignment = _mean([base[i]["alignment"] for i in preservation])
    erased_alignment = _mean([erased[i]["alignment"] for i in preservation])
    erasure_rate = _rate(_found(erased, items, ERASURE), hoped=False)
    preservation_rate = _rate(_found(erased, items, PRESERVATION), hoped=True)
    base_preservation = _rate(_found(base, items, PRESERVATION), hoped=True)
    return {
        "erasure_rate": erasure_rate,
        "base_erasure_rate": _rate(_found(base, items, ERASURE), hoped=False),
        "preservation_rate": preservation_rate,
        "base_preservation_rate": base_preservation,
        "preservation_drop": None
        if preservation_rate is None or base_preservation is None
        else round(base_preservation - preservation_rate, 2),
        "alignment": None
        if base_alignment is None or erased_alignment is None
        else {
            "base": base_alignment,
            "erased": erased_alignment,
            "change": round(erased_alignment - base_alignment, 3),
        },
        "unscored_images": sum(s["found"] is None for s in [*base, *erased]),
    }


def verdict(measured: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """Every threshold that is set is a check; a check whose value could not be measured is
    skipped (passed: null). No erasure measurement at all means not_evaluated."""
    alignment = measured["alignment"]
    values = {
        "min_erasure_rate": measured["erasure_rate"],
        "min_preservation_rate": measured["preservation_rate"],
        "max_preservation_drop": measured["preservation_drop"],
        "max_alignment_drop": None if alignment is None else round(-alignment["change"], 3),
    }
    checks = []
    for name, value in values.items():
        threshold = getattr(thresholds, name)
        if threshold is None:
            continue
        passed = None if value is None else (
            value >= threshold if name.startswith("min_") else value <= threshold
        )  # fmt: skip
        checks.append({"name": name, "threshold": threshold, "value": value, "passed": passed})
    if measured["erasure_rate"] is None:
        acceptance, reason = Acceptance.NOT_EVALUATED, "no erasure-prompt image could be scored"
    elif any(check["passed"] is False for check in checks):
        acceptance = Acceptance.FAILED
        reason = "; ".join(_describe(c) for c in checks if c["passed"] is False)
    else:
        acceptance, reason = Acceptance.PASSED, None
    return {"acceptance": acceptance.value, "reason": reason, "checks": checks}


def _describe(check: dict[str, Any]) -> str:
    relation = "<" if check["name"].startswith("min_") else ">"
    return f"{check['name']}: {check['value']} {relation} {check['threshold']}"


def per_prompt(
    items: Sequence[Item], base: Sequence[dict[str, Any]], erased: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for item, before, after in zip(items, base, erased, strict=True):
        entry = grouped.setdefault(
            (item.kind, item.prompt), {"prompt": item.prompt, "kind": item.kind, "images": []}
        )
        entry["images"].append({"seed": item.seed, "base": before, "erased": after})
    return list(grouped.values())


# -- the figure ---------------------------------------------------------------------------------

_MIN_CELL = 96  # toy models' 32 px pictures are enlarged by a whole factor to be seen
_MAX_ROWS = 10  # prompts shown per section
_MAX_SEEDS = 4  # images shown per model and prompt
_LABEL_WIDTH = 230
_GAP = 24
_FRAME = 4
_OK, _BAD, _UNKNOWN = (30, 150, 60), (205, 40, 40), (150, 150, 150)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _frame_colour(kind: str, found: bool | None) -> tuple[int, int, int]:
    if found is None:
        return _UNKNOWN
    return _OK if (found if kind == PRESERVATION else not found) else _BAD


def _fmt(value: float | None, unit: str = "%") -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def draw_figure(
    items: Sequence[Item],
    base_images: Sequence[np.ndarray],
    erased_images: Sequence[np.ndarray],
    base: Sequence[dict[str, Any]],
    erased: Sequence[dict[str, Any]],
    summary: dict[str, Any],
) -> Image.Image:
    """Rows: prompts (erasure first, then preservation); left the base model, right the erased
    model, same seeds. A green frame is what one hopes for (concept gone from an erasure
    prompt's picture, content kept in a preservation prompt's), red the opposite, grey unread;
    under each picture, what the evaluator read."""
    title_font, text_font, small_font = _font(20), _font(14), _font(12)
    first = base_images[0]
    factor = max(1, -(-_MIN_CELL // min(first.shape[:2])))
    cell_w, cell_h = first.shape[1] * factor, first.shape[0] * factor
    cell_w, cell_h = min(cell_w, 256), min(cell_h, 256)
    seeds = list(dict.fromkeys(item.seed for item in items))[:_MAX_SEEDS]
    block_w = len(seeds) * (cell_w + 2 * _FRAME + 6)
    row_h = cell_h + 2 * _FRAME + 22
    sections = []
    for kind, title in (
        (ERASURE, f"Erasure prompts: should no longer show {', '.join(summary['concepts'])}"),
        (PRESERVATION, "Preservation prompts: should still show what they ask for"),
    ):
        prompts = list(dict.fromkeys(item.prompt for item in items if item.kind == kind))
        sections.append((kind, title, prompts[:_MAX_ROWS], len(prompts)))
    header_h = 153
    height = header_h + sum(36 + row_h * len(rows) + (18 if total > len(rows) else 0)
                            for _, _, rows, total in sections)  # fmt: skip
    width = max(_LABEL_WIDTH + 2 * block_w + _GAP + 20, 760)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)

    measured, verdict_ = summary["rates"], summary["verdict"]
    acceptance = verdict_["acceptance"]
    colour = {"passed": _OK, "failed": _BAD}.get(acceptance, _UNKNOWN)
    draw.text((12, 10), f"Evaluation ({summary['evaluator']})", fill="black", font=title_font)
    draw.text((12, 38), f"acceptance: {acceptance.upper()}", fill=colour, font=title_font)
    alignment = measured["alignment"]
    lines = [
        f"erasure rate {_fmt(measured['erasure_rate'])} "
        f"(base {_fmt(measured['base_erasure_rate'])})   "
        f"preservation rate {_fmt(measured['preservation_rate'])} "
        f"(base {_fmt(measured['base_preservation_rate'])})"
        + ("" if alignment is None else f"   alignment change {alignment['change']:+.2f}"),
        verdict_["reason"]
        or "every threshold met: "
        + ", ".join(f"{c['name']} {c['threshold']}" for c in verdict_["checks"]),
        "frame: green = as hoped (erasure prompt: concept gone; preservation prompt: content kept),"
        " red = not, grey = unread",
        "under each picture: what the evaluator read. The base model is the reference: red on its"
        " erasure prompts means it draws the concept, as it should",
    ]
    for k, line in enumerate(lines):
        draw.text((12, 66 + 17 * k), line[:165], fill="black", font=small_font)

    by_key = {(item.kind, item.prompt, item.seed): i for i, item in enumerate(items)}
    top = header_h
    left_base, left_erased = _LABEL_WIDTH, _LABEL_WIDTH + block_w + _GAP
    for kind, title, rows, total in sections:
        draw.text((12, top + 4), title, fill="black", font=text_font)
        draw.text((left_base, top + 20), "base model", fill="black", font=small_font)
        draw.text((left_erased, top + 20), "erased model", fill="black", font=small_font)
        top += 36
        for prompt in rows:
            wrapped = textwrap.wrap(prompt, 28)[:3]
            for k, line in enumerate(wrapped):
                draw.text((12, top + 8 + 16 * k), line, fill="black", font=text_font)
            for column, seed in enumerate(seeds):
                index = by_key.get((kind, prompt, seed))
                if index is None:
                    continue
                for left, images, scores in (
                    (left_base, base_images, base),
                    (left_erased, erased_images, erased),
                ):
                    x = left + column * (cell_w + 2 * _FRAME + 6)
                    frame = _frame_colour(kind, scores[index]["found"])
                    draw.rectangle(
                        (x, top, x + cell_w + 2 * _FRAME - 1, top + cell_h + 2 * _FRAME - 1),
                        fill=frame,
                    )
                    picture = Image.fromarray(images[index]).resize(
                        (cell_w, cell_h), Image.Resampling.NEAREST
                    )
                    sheet.paste(picture, (x + _FRAME, top + _FRAME))
                    label = str(scores[index]["label"])[: max(10, cell_w // 6)]
                    draw.text((x, top + cell_h + 2 * _FRAME + 3), label, fill="black",
                              font=small_font)  # fmt: skip
            top += row_h
        if total > len(rows):
            draw.text((12, top), f"(first {len(rows)} of {total} prompts; all in evaluation.json)",
                      fill="black", font=small_font)  # fmt: skip
            top += 18
    return sheet
