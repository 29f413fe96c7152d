"""The concept vocabulary W (algorithm.md §3.1-3.2) and its text embeddings E(w).

Default W: whole words of the model's own tokenizer, in BPE-merge order (which tracks word
frequency in CLIP's training text). Erased concepts are excluded (the paper's R = C \\ E).
E(w) of every word is cached on disk per (model content hash, vocabulary hash), because every
job on a model reuses it and embedding thousands of prompts is the slow part of setup.
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, PreTrainedTokenizerBase

from core.erasure.types import BadConceptError

END_OF_WORD = "</w>"
MIN_WORD_LENGTH = 3  # shorter whole-word tokens are mostly articles, prepositions, fragments
_LEADING_ARTICLES = ("a ", "an ", "the ")
_EMBED_BATCH = 64


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


def concept_forms(concept: str) -> set[str]:
    """Lower-case spellings that name the same concept: 'a cat' is also 'cat'."""
    text = " ".join(concept.lower().split())
    forms = {text}
    for article in _LEADING_ARTICLES:
        if text.startswith(article):
            forms.add(text.removeprefix(article))
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
