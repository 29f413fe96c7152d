"""Must show 2 of issue 8: the default vocabulary holds words, not word fragments, on the REAL
CLIP tokenizer (SD 1.x's), and still the toy model's own words on its word-level tokenizer.

The CLIP tokenizer is built offline from OpenAI CLIP's BPE file (tests/erasure/data/clip, MIT
licence, see its README), exactly as OpenAI's and Hugging Face's CLIP tokenizers derive vocab.json
and merges.txt from it. "Dictionary word" is judged by GCIDE (the english-words package, a
test-only dependency), independent of the wordfreq list the engine ships."""

import gzip
import json
from pathlib import Path

import inflect
import pytest
from english_words import get_english_words_set
from transformers import CLIPTokenizer, PreTrainedTokenizerBase

from core.erasure.vocabulary import (
    concept_forms,
    default_vocabulary,
    exclude_erased,
    tokenizer_words,
)
from core.erasure.word_tokenizer import BOS, END_OF_WORD, EOS, _byte_symbols
from core.toyworld.paths import DEMO_MODEL_DIR
from core.toyworld.world import COLOUR_NAMES, SHAPES

CLIP_BPE = Path(__file__).parent / "data" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2  # the merges CLIP uses: its vocabulary is 49,408 tokens


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    lines = gzip.decompress(CLIP_BPE.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : CLIP_MERGES + 1]
    symbols = _byte_symbols()
    tokens = symbols + [s + END_OF_WORD for s in symbols]
    tokens += ["".join(m.split()) for m in merges] + [BOS, EOS]
    folder = tmp_path_factory.mktemp("clip")
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    # the real SD 1.x ids: "a photo of a cat" → 320 1125 539 320 2368
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    return tokenizer


def _dictionary_share(words: list[str]) -> tuple[float, list[str]]:
    """Share of `words` that GCIDE lists, directly or as a regular inflection of an entry."""
    dictionary = get_english_words_set(["gcide"], alpha=True, lower=True)
    engine = inflect.engine()

    def forms(word: str) -> list[str]:
        stems = [word, engine.singular_noun(word) or word]
        for suffix, add in (("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("d", "")):
            if word.endswith(suffix) and len(word) > len(suffix) + 2:
                stems.append(word.removesuffix(suffix) + add)
        return stems

    misses = [w for w in words if not any(s in dictionary for s in forms(w))]
    return 1 - len(misses) / len(words), misses


def test_default_candidates_on_real_clip_are_dictionary_words(
    clip_tokenizer: PreTrainedTokenizerBase,
) -> None:
    default = default_vocabulary(clip_tokenizer, 3000)
    assert len(default) == 3000
    assert {"cat", "cats", "dog"} <= set(default)  # so excluding them below is a real check
    kept = exclude_erased(default, ["a cat"])
    first = kept[:200]
    share, misses = _dictionary_share(first)
    assert share >= 0.95, misses
    assert not {"ing", "ers", "tion"} & set(first)
    assert "cat" not in kept and "cats" not in kept
    for word in first:  # each is one token, so E(w) is the text encoder's view of the word
        assert len(clip_tokenizer(word, add_special_tokens=False)["input_ids"]) == 1
    # the old rule (whole-word tokens in merge order) fails the same check: the test can tell
    old = tokenizer_words(clip_tokenizer, 200)
    assert _dictionary_share(old)[0] < 0.9 and {"ing", "tion"} <= set(old)


def test_the_demo_model_keeps_its_own_world_words() -> None:
    tokenizer = CLIPTokenizer.from_pretrained(DEMO_MODEL_DIR / "tokenizer")
    words = default_vocabulary(tokenizer, 3000)
    assert words == tokenizer_words(tokenizer, 3000)
    assert set(SHAPES) | set(COLOUR_NAMES) <= set(words)


def test_erased_concepts_take_their_articles_and_number_with_them() -> None:
    assert {"cat", "cats", "a cat"} <= concept_forms("a cat")
    assert {"mice", "mouse"} <= concept_forms("the mice")
    assert "women" in concept_forms("woman")
    assert "van goghs" in concept_forms("Van Gogh")
    words = ["dog", "cats", "catalog", "mouse", "church", "men"]
    assert exclude_erased(words, ["A Cat", "mice", "man"]) == ["dog", "catalog", "church"]
