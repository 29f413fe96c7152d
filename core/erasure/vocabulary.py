"""The concept vocabulary W (algorithm.md §3.1-3.2) and its text embeddings E(w).

Default W: English words, most frequent first (`data/english_words.txt`, from wordfreq; function
words dropped), that the model's tokenizer encodes as one token. On a real BPE tokenizer such as
CLIP's, a token that ends a word (`…</w>`) is often a suffix ("ing", "ers", "tion"), not a word,
so the tokenizer alone cannot say what a word is; the list can, and the tokenizer says which words
the text encoder sees whole. A toy word-level tokenizer (the `demo` model's, a few hundred words)
shares too few words with the list: there its own whole words are used, in merge order. Erased
concepts, with their articles and singular/plural forms, are excluded (the paper's R = C \\ E).
E(w) of every word is cached on disk per (model content hash, vocabulary hash), because every
job on a model reuses it and embedding thousands of prompts is the slow part of setup.
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, PreTrainedTokenizerBase

from core.erasure.types import BadConceptError

if TYPE_CHECKING:
    import inflect

END_OF_WORD = "</w>"
MIN_WORD_LENGTH = 3  # shorter whole-word tokens are mostly articles, prepositions, fragments
_LEADING_ARTICLES = ("a ", "an ", "the ")
_EMBED_BATCH = 64
_ENCODE_BATCH = 1024
ENGLISH_WORDS_FILE = "data/english_words.txt"
# Fewer dictionary words than this encoded as one token: a toy word-level tokenizer, whose own
# words are the better vocabulary (CLIP encodes ~20,000 of the list's 30,000 as one token).
MIN_DICTIONARY_WORDS = 1000


def _merges(tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, str]]:
    """The tokenizer's BPE merges in rank order (fast tokenizers keep them in their JSON)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        raw = json.loads(backend.to_str())["model"].get("merges", [])
        pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in raw]
        return [(a, b) for a, b in pairs]
    ranks: dict[tuple[str, str], int] = getattr(tokenizer, "bpe_ranks", {})
    return sorted(ranks, key=ranks.__getitem__)


def tokenizer_words(tokenizer: PreTrainedTokenizerBase, limit: int) -> list[str]:
    """The first `limit` whole words the tokenizer's merges spell: alphabetic tokens that end a
    word (`…</w>`), at least MIN_WORD_LENGTH letters, in merge order."""
    words: dict[str, None] = {}
    for left, right in _merges(tokenizer):
        token = left + right
        if not token.endswith(END_OF_WORD):
            continue
        word = token.removesuffix(END_OF_WORD)
        if len(word) >= MIN_WORD_LENGTH and word.isascii() and word.isalpha():
            words.setdefault(word.lower())
            if len(words) == limit:
                break
    return list(words)


@cache
def english_words() -> tuple[str, ...]:
    """The shipped English word list, most frequent first, without function words ('the',
    'with', 'would': they name no concept an erasure could damage)."""
    # imported here: scikit-learn's text module is slow to import and only this needs it
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    path = resources.files("core.erasure").joinpath(ENGLISH_WORDS_FILE)
    lines = path.read_text(encoding="utf-8").splitlines()
    words = (s for line in lines if (s := line.strip()) and not s.startswith("#"))
    return tuple(w for w in words if w not in ENGLISH_STOP_WORDS)


def single_token_words(
    tokenizer: PreTrainedTokenizerBase, words: Sequence[str], limit: int
) -> list[str]:
    """The first `limit` of `words` that the tokenizer encodes as exactly one token."""
    vocab = tokenizer.get_vocab()
    if any(token.endswith(END_OF_WORD) for token in vocab):
        # CLIP-style BPE: a word is one token only if `word</w>` is a token. Checking that first
        # spares encoding tens of thousands of words that cannot pass.
        words = [w for w in words if w + END_OF_WORD in vocab]
    kept: list[str] = []
    for start in range(0, len(words), _ENCODE_BATCH):
        batch = list(words[start : start + _ENCODE_BATCH])
        ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
        kept.extend(word for word, tokens in zip(batch, ids, strict=True) if len(tokens) == 1)
        if len(kept) >= limit:
            break
    return kept[:limit]


def default_vocabulary(tokenizer: PreTrainedTokenizerBase, limit: int) -> list[str]:
    """The first `limit` English words the tokenizer encodes whole, most frequent first; a
    tokenizer that encodes fewer than MIN_DICTIONARY_WORDS of them whole gets its own words."""
    words = single_token_words(tokenizer, english_words(), max(limit, MIN_DICTIONARY_WORDS))
    if len(words) < MIN_DICTIONARY_WORDS:
        return tokenizer_words(tokenizer, limit)
    return words[:limit]


@cache
def _inflect() -> "inflect.engine":
    import inflect  # slow to import (seconds); only runs that exclude concepts need it

    return inflect.engine()


def _number_forms(text: str) -> set[str]:
    """`text` with its last word in the other grammatical number: 'a cat' → 'a cats',
    'mice' → 'mouse', 'woman' → 'women'."""
    *head, last = text.split(" ")
    if not last.isalpha():
        return set()
    engine = _inflect()
    singular = engine.singular_noun(last)  # False when `last` is not a plural
    other = singular if singular else engine.plural_noun(last)
    return {" ".join([*head, other])} if other and other != last else set()


def concept_forms(concept: str) -> set[str]:
    """Lower-case spellings that name the same concept: 'a cat' is also 'cat' and 'cats'."""
    text = " ".join(concept.lower().split())
    forms = {text}
    for article in _LEADING_ARTICLES:
        if text.startswith(article):
            forms.add(text.removeprefix(article))
    for form in list(forms):
        forms |= _number_forms(form)
    return forms


def exclude_erased(words: Sequence[str], concepts: Sequence[str]) -> list[str]:
    """W minus the erased concepts, case-insensitively, order kept, duplicates dropped."""
    erased = set().union(*(concept_forms(c) for c in concepts))
    kept = dict.fromkeys(w.strip() for w in words if w.strip())
    return [w for w in kept if " ".join(w.lower().split()) not in erased]


def read_vocabulary_file(path: Path) -> list[str]:
    """One concept per line; blank lines and lines starting with '#' are ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]


# Below this many whole words a tokenizer is a closed word list (the toy and test models, built
# by `word_tokenizer`), whose text encoder learned those words and nothing else; CLIP's BPE
# (SD 1.x/2.x) spells tens of thousands and composes any other word from learned subwords.
CLOSED_VOCABULARY_MAX_WORDS = 5000
_LISTED_WORDS = 60  # known words named in an error; a closed vocabulary may hold thousands


def whole_words(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Every word the tokenizer spells as one merged token (any length), in merge order."""
    tokens = (left + right for left, right in _merges(tokenizer))
    words = (t.removesuffix(END_OF_WORD) for t in tokens if t.endswith(END_OF_WORD))
    return list(dict.fromkeys(words))


def closed_vocabulary(tokenizer: PreTrainedTokenizerBase) -> list[str] | None:
    """The words a closed-vocabulary model knows, or None when its tokenizer is open (CLIP)."""
    words = whole_words(tokenizer)
    return words if len(words) < CLOSED_VOCABULARY_MAX_WORDS else None


def _token_words(tokens: Sequence[str]) -> list[list[str]]:
    """Tokens grouped per word: a CLIP BPE token ending in `</w>` closes a word."""
    words: list[list[str]] = [[]]
    for token in tokens:
        words[-1].append(token)
        if token.endswith(END_OF_WORD):
            words.append([])
    return [w for w in words if w]


def _spelled(pieces: Sequence[str]) -> str:
    return "".join(p.removesuffix(END_OF_WORD) for p in pieces)


def unknown_words(
    tokenizer: PreTrainedTokenizerBase, concept: str, known: Sequence[str] | None
) -> list[str]:
    """Words of `concept` the model has no token for. With a closed vocabulary (`known`), every
    word must be one whole-word token; with an open one, a word of two or more characters that no
    merge touches (spelled letter by letter) is unknown: no learned token carries its meaning."""
    vocabulary = None if known is None else set(known)
    unknown = []
    for pieces in _token_words(tokenizer.tokenize(concept)):
        word = _spelled(pieces)
        if vocabulary is None:
            if len(word) > 1 and all(len(p.removesuffix(END_OF_WORD)) == 1 for p in pieces):
                unknown.append(word)
        elif len(pieces) > 1 or not (len(word) == 1 or word in vocabulary):
            unknown.append(word)  # a single character (e.g. "a") is its own token everywhere
    return list(dict.fromkeys(unknown))


def _known_words_hint(known: Sequence[str]) -> str:
    listed = ", ".join(known[:_LISTED_WORDS])
    more = f", … ({len(known)} in all)" if len(known) > _LISTED_WORDS else ""
    return f"the words it knows: {listed}{more}"


def check_concept(
    tokenizer: PreTrainedTokenizerBase, concept: str, known: Sequence[str] | None = None
) -> None:
    """A concept must be non-empty, fit the text encoder's context (else it is truncated and the
    run would erase something other than what was asked), and be made of words the model can
    represent: erasing a word the text encoder never learned trains on noise and "succeeds".
    `known`: the closed vocabulary (`closed_vocabulary`), None for an open tokenizer."""
    if not concept.strip():
        raise BadConceptError("a concept to erase is empty; give a word or phrase, e.g. 'a cat'")
    ids = tokenizer(concept, truncation=False)["input_ids"]
    content = len(ids) - 2  # minus start and end tokens
    if content < 1:
        raise BadConceptError(f"concept {concept!r} tokenizes to nothing; use plain words")
    if len(ids) > tokenizer.model_max_length:
        raise BadConceptError(
            f"concept {concept!r} is {content} tokens long; the text encoder takes at most "
            f"{tokenizer.model_max_length - 2}. Shorten it."
        )
    unknown = unknown_words(tokenizer, concept, known)
    if not unknown:
        return
    names = ", ".join(repr(w) for w in unknown)
    if known is not None:
        raise BadConceptError(
            f"concept {concept!r}: the model does not know {names} (its tokenizer has no token "
            f"for it); erase a concept made of {_known_words_hint(known)}"
        )
    raise BadConceptError(
        f"concept {concept!r}: the model's tokenizer spells {names} letter by letter, so no "
        "learned token carries its meaning; check the spelling or use a more common word"
    )


@torch.no_grad()
def embed(
    text_encoder: CLIPTextModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]
) -> torch.Tensor:
    """E(p) for each prompt: last hidden state, padded to the tokenizer's max length
    (77×768 for SD 1.x), as the UNet sees it. Shape [len(prompts), L, D], on its device."""
    device = text_encoder.device
    chunks = []
    for start in range(0, len(prompts), _EMBED_BATCH):
        ids = tokenizer(
            list(prompts[start : start + _EMBED_BATCH]),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        chunks.append(text_encoder(ids.to(device))[0].float())
    return torch.cat(chunks)


def vocabulary_hash(words: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


def cached_embeddings(
    text_encoder: CLIPTextModel,
    tokenizer: PreTrainedTokenizerBase,
    words: Sequence[str],
    model_hash: str,
    cache_dir: Path | None,
) -> torch.Tensor:
    """E(w) for every word, read from `cache_dir` when a run on this model and vocabulary already
    computed it; written atomically (temp file + rename): concurrent jobs never see half a file."""
    if cache_dir is None:
        return embed(text_encoder, tokenizer, words)
    cache_file = cache_path(cache_dir, model_hash, words)
    if cache_file.is_file():
        return load_file(cache_file)["embeddings"].to(text_encoder.device)
    embeddings = embed(text_encoder, tokenizer, words)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
    os.close(handle)
    save_file({"embeddings": embeddings.contiguous().cpu()}, temp)
    os.replace(temp, cache_file)
    return embeddings


def cache_path(cache_dir: Path, model_hash: str, words: Sequence[str]) -> Path:
    name = f"embeddings-{model_hash[:16]}-{vocabulary_hash(words)[:16]}.safetensors"
    return Path(cache_dir) / name
