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
from PIL import Image, ImageDraw

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
