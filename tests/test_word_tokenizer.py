"""The offline tokenizer must behave like a real CLIP tokenizer on the words it was built for."""

from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from core.erasure.word_tokenizer import word_merges, write_word_tokenizer

# Shared prefixes/suffixes are the hard case: "c l" from "clear" must not break "circle".
WORDS = ["clear", "circle", "car", "cart", "star", "start", "red", "reddish", "the", "photo"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> CLIPTokenizer:
    path = write_word_tokenizer(WORDS, tmp_path_factory.mktemp("tok"))
    return CLIPTokenizer.from_pretrained(path)


@pytest.mark.parametrize("word", WORDS)
def test_every_word_is_one_token(tokenizer: CLIPTokenizer, word: str) -> None:
    tokens = tokenizer.tokenize(word)
    assert tokens == [word + "</w>"]


def test_unknown_words_fall_back_to_pieces_and_pad_to_77(tokenizer: CLIPTokenizer) -> None:
    ids = tokenizer("a photo of circles", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "aphotoofcircles"


def test_merges_follow_word_order_so_vocabulary_order_tracks_the_list() -> None:
    merges = word_merges(WORDS)
    finished = [a + b for a, b in merges if (a + b).endswith("</w>")]
    assert [w.removesuffix("</w>") for w in finished] == WORDS


def test_rejects_non_ascii_words(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        write_word_tokenizer(["café"], tmp_path)
