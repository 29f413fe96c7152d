"""The generator: same seed, same pictures; captions say what the pictures show."""

import numpy as np

from core.toyworld.world import COLOUR_NAMES, COLOURS, SHAPES, make_dataset, render


def test_same_seed_gives_identical_pictures_and_captions() -> None:
    first, second = make_dataset(72, seed=7), make_dataset(72, seed=7)
    assert np.array_equal(first.images, second.images)
    assert first.captions == second.captions


def test_other_seed_gives_other_pictures() -> None:
    assert not np.array_equal(make_dataset(72, seed=7).images, make_dataset(72, seed=8).images)


def test_dataset_is_balanced_over_every_shape_and_colour_pair() -> None:
    data = make_dataset(36 * 3, seed=0)
    pairs = np.stack([data.shapes, data.colours], axis=1)
    _, counts = np.unique(pairs, axis=0, return_counts=True)
    assert len(counts) == len(SHAPES) * len(COLOUR_NAMES)
    assert set(counts) == {3}


def test_caption_names_the_shape_and_colour_of_its_picture() -> None:
    data = make_dataset(200, seed=3)
    for caption, shape, colour in zip(data.captions, data.shapes, data.colours, strict=True):
        words = caption.split()
        assert SHAPES[shape] in words and COLOUR_NAMES[colour] in words
        assert len(words) >= 3


def test_attribute_words_are_true_of_the_picture() -> None:
    rng = np.random.default_rng(11)
    seen_background_words = set()
    for _ in range(300):
        image, scene = render(rng, "circle", "blue")
        corner = image[0, 0].astype(float).mean()  # shapes never touch the border
        words = scene.caption.split()
        if "dark" in words:
            seen_background_words.add("dark")
            assert corner < 100
        if "light" in words:
            seen_background_words.add("light")
            assert corner > 150
        if "small" in words:
            assert scene.radius < 10
        if "large" in words:
            assert scene.radius >= 10
    assert seen_background_words == {"dark", "light"}


def test_the_shape_is_drawn_in_its_colour() -> None:
    rng = np.random.default_rng(5)
    for colour, rgb in COLOURS.items():
        image, scene = render(rng, "square", colour)
        centre = image[int(scene.centre[1]), int(scene.centre[0])].astype(int)
        assert np.abs(centre - np.asarray(rgb)).max() <= 20, (colour, centre)
