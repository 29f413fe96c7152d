"""The toy world: seeded 32×32 pictures of one coloured shape, with a caption that describes them.

Small enough that a text-to-image model learns it on a CPU, rich enough that erasing one concept
("circle", "red") can visibly disturb the others: six shapes × six colours, size and position
jitter, a light or dark background, and captions from a few templates whose optional attribute
words ("small", "dark background") are true of the picture, so the text encoder has to read more
than two words.

Shapes are drawn 4× larger with PIL and box-downsampled, which gives anti-aliased edges without a
rasteriser of our own.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 32
_SUPERSAMPLE = 4

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 205, 30),
    "purple": (145, 55, 190),
    "orange": (245, 135, 25),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

# Attribute words are derived from the picture itself (see `_caption`), never random decoration.
SIZE_WORDS = ("small", "large")
BACKGROUND_WORDS = ("light", "dark")
TEMPLATES: tuple[str, ...] = (
    "a {colour} {shape}",
    "a {size} {colour} {shape}",
    "a {colour} {shape} on a {background} background",
    "a picture of a {colour} {shape}",
    "a {size} {colour} {shape} on a {background} background",
)
# Every word any caption can contain, concepts first so they get the lowest-ranked merges (the
# engine's default candidate vocabulary is taken in merge order).
VOCABULARY: tuple[str, ...] = (
    *SHAPES,
    *COLOUR_NAMES,
    *SIZE_WORDS,
    *BACKGROUND_WORDS,
    "background",
    "picture",
    "of",
    "on",
    "a",
)

# Radius range (in output pixels) of the shape's circumscribed circle; below the threshold the
# caption may call it "small".
_RADIUS_RANGE = (7.0, 13.0)
_SMALL_BELOW = 10.0
_COLOUR_JITTER = 18
_LIGHT_BACKGROUND = (195, 240)
_DARK_BACKGROUND = (15, 60)


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    radius: float
    centre: tuple[float, float]
    dark_background: bool
    caption: str

    @property
    def shape_index(self) -> int:
        return SHAPES.index(self.shape)

    @property
    def colour_index(self) -> int:
        return COLOUR_NAMES.index(self.colour)


def canonical_caption(shape: str, colour: str) -> str:
    """The plain prompt used to generate and evaluate a (shape, colour) pair."""
    return TEMPLATES[0].format(colour=colour, shape=shape)


def _star_points(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    fill: tuple[int, int, int],
    background: tuple[int, int, int],
) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        inner = r * 0.55
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=background)
    elif shape == "square":
        half = r * 0.78  # same visual area class as the circle, not the circumscribed square
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "triangle":
        points = [
            (cx + r * math.cos(a), cy + r * math.sin(a))
            for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
        draw.polygon(points, fill=fill)
    elif shape == "star":
        draw.polygon(_star_points(cx, cy, r), fill=fill)
    elif shape == "cross":
        arm = r * 0.33
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _caption(rng: np.random.Generator, shape: str, colour: str, radius: float, dark: bool) -> str:
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return template.format(
        shape=shape,
        colour=colour,
        size=SIZE_WORDS[0] if radius < _SMALL_BELOW else SIZE_WORDS[1],
        background=BACKGROUND_WORDS[1] if dark else BACKGROUND_WORDS[0],
    )


def render(
    rng: np.random.Generator, shape: str, colour: str, caption_templates: bool = True
) -> tuple[np.ndarray, Scene]:
    """One picture (H×W×3 uint8) of `shape` in `colour`, with jitter drawn from `rng`."""
    radius = float(rng.uniform(*_RADIUS_RANGE))
    margin = radius + 1.0
    cx, cy = (float(v) for v in rng.uniform(margin, IMAGE_SIZE - margin, size=2))
    dark = bool(rng.random() < 0.5)
    grey = int(rng.integers(*(_DARK_BACKGROUND if dark else _LIGHT_BACKGROUND)))
    background = (grey, grey, grey)
    jitter = rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter, strict=True))

    big = IMAGE_SIZE * _SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), background)
    s = _SUPERSAMPLE
    _draw_shape(ImageDraw.Draw(canvas), shape, cx * s, cy * s, radius * s, fill, background)  # type: ignore[arg-type]
    image = np.asarray(canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))

    caption = (
        _caption(rng, shape, colour, radius, dark)
        if caption_templates
        else canonical_caption(shape, colour)
    )
    return image, Scene(shape, colour, radius, (cx, cy), dark, caption)


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # N×32×32×3 uint8
    shapes: np.ndarray  # N int64 indices into SHAPES
    colours: np.ndarray  # N int64 indices into COLOUR_NAMES
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def make_dataset(
    size: int,
    seed: int,
    shapes: Sequence[str] = SHAPES,
    colours: Sequence[str] = COLOUR_NAMES,
) -> Dataset:
    """`size` pictures, balanced over every (shape, colour) pair, fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    pairs = [(s, c) for s in shapes for c in colours]
    order = rng.permutation(size) % len(pairs)
    images, shape_ids, colour_ids, captions = [], [], [], []
    for index in order:
        shape, colour = pairs[int(index)]
        image, scene = render(rng, shape, colour)
        images.append(image)
        shape_ids.append(scene.shape_index)
        colour_ids.append(scene.colour_index)
        captions.append(scene.caption)
    return Dataset(
        images=np.stack(images),
        shapes=np.asarray(shape_ids, dtype=np.int64),
        colours=np.asarray(colour_ids, dtype=np.int64),
        captions=captions,
    )


# ---- pictures that show no concept of the world: what the judge must answer "none" to ---------
# An erased model rarely draws a clean other shape; it draws a fragment, a smear, a cross between
# two shapes or a colour between two palette colours. A judge with only the world's classes must
# name one of them for such a picture, so its reading says more about the judge than about the
# erasure. These generators give it a third answer per head.

NONE = "none"
# Every kind of negative, in the order the held-out report lists them. Shape kinds keep a palette
# colour (the colour head must still read it); "off_palette" keeps a real shape; "empty" has both.
NEGATIVE_KINDS: tuple[str, ...] = (
    "broken",
    "partial",
    "blurred",
    "blended",
    "blob",
    "empty",
    "off_palette",
)
# Off-palette fills are at least this far (RGB Euclidean) from every palette colour. The world's
# own jitter moves a colour at most 18·√3 ≈ 31, so this leaves ~45 of clear space in between.
_MIN_OFF_PALETTE_DISTANCE = 75.0
_OFF_PALETTE_FAMILIES = ("grey", "brown", "pink", "cyan", "desaturated", "any")


def _mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Coverage in [0, 1] of `shape` at output resolution (drawn supersampled, box-averaged)."""
    big = IMAGE_SIZE * _SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), (0, 0, 0))
    s = _SUPERSAMPLE
    _draw_shape(ImageDraw.Draw(canvas), shape, cx * s, cy * s, r * s, (255, 255, 255), (0, 0, 0))
    small = canvas.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _composite(mask: np.ndarray, fill: np.ndarray, grey: int) -> np.ndarray:
    image = grey + mask[..., None] * (fill[None, None, :] - grey)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _palette_fill(rng: np.random.Generator, colour: str) -> np.ndarray:
    jitter = rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, size=3)
    return np.clip(np.asarray(COLOURS[colour]) + jitter, 0, 255).astype(np.float64)


def _distance_to_palette(rgb: np.ndarray) -> float:
    palette = np.asarray(list(COLOURS.values()), dtype=np.float64)
    return float(np.sqrt(((palette - rgb) ** 2).sum(1)).min())


def off_palette_colour(rng: np.random.Generator) -> np.ndarray:
    """A fill colour no palette colour could be read as: greys, browns, pinks, cyans,
    desaturated palette colours or anything else far enough from the palette."""
    while True:
        family = _OFF_PALETTE_FAMILIES[int(rng.integers(len(_OFF_PALETTE_FAMILIES)))]
        if family == "grey":
            rgb = np.full(3, rng.uniform(85, 175))
        elif family == "brown":
            rgb = np.asarray([rng.uniform(95, 160), rng.uniform(55, 100), rng.uniform(20, 60)])
        elif family == "pink":
            rgb = np.asarray([rng.uniform(225, 255), rng.uniform(120, 185), rng.uniform(165, 215)])
        elif family == "cyan":
            rgb = np.asarray([rng.uniform(20, 90), rng.uniform(185, 235), rng.uniform(195, 240)])
        elif family == "desaturated":
            palette = np.asarray(COLOURS[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]])
            grey = palette @ np.asarray([0.299, 0.587, 0.114])
            rgb = palette + rng.uniform(0.55, 0.85) * (grey - palette)
        else:
            rgb = rng.uniform(0, 255, size=3)
        if _distance_to_palette(rgb) >= _MIN_OFF_PALETTE_DISTANCE:
            return rgb


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=sigma))
    return np.asarray(blurred)


def _broken_mask(
    rng: np.random.Generator, mask: np.ndarray, cx: float, cy: float, r: float
) -> np.ndarray:
    """The shape with bands cut through it until at least 40 % of its area is gone."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64) + 0.5
    area = mask.sum()
    broken = mask.copy()
    while broken.sum() > 0.6 * area:
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.6, 0.6) * r
        width = rng.uniform(0.2, 0.45) * r
        distance = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle) - offset
        broken = broken * np.clip(np.abs(distance) - width / 2, 0, 1)
    return broken


def _blob_mask(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """A smooth random lump: a low-resolution noise field, upsampled, inside a soft disc."""
    coarse = rng.normal(size=(5, 5))
    field = np.asarray(
        Image.fromarray(coarse.astype(np.float32), mode="F").resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC
        ),
        dtype=np.float64,
    )
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64) + 0.5
    envelope = 1.0 - np.hypot(xx - cx, yy - cy) / (1.3 * r)
    return np.clip((field + envelope * 2.0) * 2.0, 0, 1) * (envelope > 0)


@dataclass(frozen=True)
class Negatives:
    """Pictures with at least one axis that shows no concept: labels are names, NONE included."""

    images: np.ndarray  # N×32×32×3 uint8
    shapes: list[str]
    colours: list[str]
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.kinds)


def render_negative(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, str, str]:
    """One picture of `kind` (see NEGATIVE_KINDS) and its (shape, colour) labels."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    radius = float(rng.uniform(*_RADIUS_RANGE))
    margin = radius + 1.0
    cx, cy = (float(v) for v in rng.uniform(margin, IMAGE_SIZE - margin, size=2))
    dark = bool(rng.random() < 0.5)
    grey = int(rng.integers(*(_DARK_BACKGROUND if dark else _LIGHT_BACKGROUND)))
    fill = _palette_fill(rng, colour)

    if kind == "off_palette":
        return _composite(_mask(shape, cx, cy, radius), off_palette_colour(rng), grey), shape, NONE
    if kind == "empty":
        return _composite(np.zeros((IMAGE_SIZE, IMAGE_SIZE)), fill, grey), NONE, NONE
    if kind == "broken":
        mask = _broken_mask(rng, _mask(shape, cx, cy, radius), cx, cy, radius)
    elif kind == "partial":
        # Centre near or past the border: between about a half and four fifths of it is cut off.
        side = int(rng.integers(4))
        inside = rng.uniform(-0.3 * radius, 0.15 * radius)
        edge = inside if side in (0, 1) else IMAGE_SIZE - inside
        cx, cy = (edge, cy) if side in (0, 2) else (cx, edge)
        mask = _mask(shape, cx, cy, radius)
    elif kind == "blurred":
        sharp = _composite(_mask(shape, cx, cy, radius), fill, grey)
        return _blur(sharp, float(rng.uniform(2.2, 4.0))), NONE, colour
    elif kind == "blended":
        other = SHAPES[int(rng.integers(len(SHAPES)))]
        while other == shape or {shape, other} == {"circle", "ring"}:
            other = SHAPES[int(rng.integers(len(SHAPES)))]
        if rng.random() < 0.5:  # morph: half of each, drawn over the same centre
            mask = 0.5 * (_mask(shape, cx, cy, radius) + _mask(other, cx, cy, radius))
        else:  # overlay: both at full strength, centres apart
            angle = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(0.5, 0.9) * radius
            ox = float(np.clip(cx + step * np.cos(angle), 2, IMAGE_SIZE - 2))
            oy = float(np.clip(cy + step * np.sin(angle), 2, IMAGE_SIZE - 2))
            mask = np.maximum(_mask(shape, cx, cy, radius), _mask(other, ox, oy, radius * 0.8))
    elif kind == "blob":
        mask = _blob_mask(rng, cx, cy, radius)
    else:
        raise ValueError(f"unknown negative kind {kind!r}")
    return _composite(mask, fill, grey), NONE, colour


def make_negatives(size: int, seed: int, kinds: Sequence[str] = NEGATIVE_KINDS) -> Negatives:
    """`size` negatives, balanced over `kinds`, fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(size) % len(kinds)
    images, shapes, colours, names = [], [], [], []
    for index in order:
        kind = kinds[int(index)]
        image, shape, colour = render_negative(rng, kind)
        images.append(image)
        shapes.append(shape)
        colours.append(colour)
        names.append(kind)
    return Negatives(np.stack(images), shapes, colours, names)
