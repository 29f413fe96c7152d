"""What a model's text encoder can read, known at submission time without torch.

A concept is only useful if the model's text encoder sees all of it: a concept longer than the
encoder's context would be cut, and a word a word-list tokenizer (the `demo` and toy models) was
not built with falls apart into byte pieces its encoder never learned. Both are refused at
submission (422 naming the concept) instead of failing in the worker minutes later.

The API never imports torch or transformers; the `tokenizers` package (Rust) reads the model
folder's `tokenizer/tokenizer.json`. Models the API cannot see (hub ids, folders that live only on
worker machines, the generated demo fallback) are not checked here: the worker refuses them before
any training.
"""

import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from core.registry import ModelSourceKind, RegisteredModel

# CLIP's context (model_max_length) when the folder does not say.
DEFAULT_CONTEXT_TOKENS = 77
# A real CLIP BPE has ~49k tokens, so any word is a fine sequence of learned pieces. A vocabulary
# this small is a word list (256 byte symbols twice, one token per merge of the listed words, two
# specials): there, a word outside the list is bytes the encoder never learned.
WORD_LIST_MAX_VOCABULARY = 5_000
_BYTE_SYMBOLS = 512
_END_OF_WORD = "</w>"
# Printable ASCII other than letters: what may separate known words.
_ASCII_NON_LETTER = r"[ -@\[-`{-~]"
_LISTED_WORDS = 200


@dataclass(frozen=True)
class ConceptProblem:
    message: str
    kind: str


@dataclass(eq=False)
class ModelText:
    tokenizer: Tokenizer
    context_tokens: int
    # The words of a word-list tokenizer; None for a real subword vocabulary.
    known_words: frozenset[str] | None

    @property
    def max_word_list_chars(self) -> int:
        """For a word-list model: printable ASCII is at most one token per character, so this
        many characters always fit the context with its start and end markers. A bound the
        OpenAPI document can state exactly (`maxLength`), unlike a token count."""
        return self.context_tokens - 2

    def check(self, concept: str) -> ConceptProblem | None:
        if self.known_words is not None and not re.fullmatch(self.word_pattern, concept):
            return ConceptProblem(self._unknown_words_message(concept), "unknown_word")
        if self.known_words is not None and len(concept) > self.max_word_list_chars:
            return ConceptProblem(
                f"at most {self.max_word_list_chars} characters for this model (its text "
                f"encoder reads {self.context_tokens} tokens with start and end markers)",
                "concept_too_long",
            )
        tokens = len(self.tokenizer.encode(concept).ids)
        if tokens > self.context_tokens:
            return ConceptProblem(
                f"{tokens} tokens with start and end markers; this model's text encoder reads "
                f"at most {self.context_tokens}",
                "concept_too_long",
            )
        return None

    @cached_property
    def word_pattern(self) -> str:
        """For a word-list model, the concepts it can read, as one regular expression (the same
        string is the JSON Schema `pattern` of the OpenAPI document, so both say the same):
        non-blank printable ASCII whose letter runs are known words (any case) or single
        letters. Lone surrogates, control and invisible characters fall outside it too."""
        if self.known_words is None:
            return ""
        # Longest first (so that a word wins over its prefix), then by spelling: the same
        # document from every process, whatever the set's hash order.
        spelled = sorted(
            ("".join(f"[{c.upper()}{c}]" for c in word) for word in self.known_words),
            key=lambda spelling: (-len(spelling), spelling),
        )
        word = "(?:" + "|".join([*spelled, "[A-Za-z]"]) + ")"
        gap = _ASCII_NON_LETTER
        # (?=.*[^ ]): not blank (the gaps are printable ASCII, so blank means spaces only)
        return f"^(?=.*[^ ]){gap}*(?:{word}(?:{gap}+{word})*)?{gap}*$"

    def _unknown_words_message(self, concept: str) -> str:
        known = sorted(self.known_words or ())
        unknown = sorted({w.lower() for w in re.findall("[A-Za-z]{2,}", concept)} - set(known))
        if any(not character.isascii() for character in concept):
            unknown.append("(non-ASCII text)")
        shown = ", ".join(known[:_LISTED_WORDS])
        more = f" and {len(known) - _LISTED_WORDS} more" if len(known) > _LISTED_WORDS else ""
        return (
            f"this model does not know {', '.join(unknown) or 'these words'}; "
            f"it knows only the words: {shown}{more}"
        )


def model_text(model: RegisteredModel) -> ModelText | None:
    """The model's text rules, or None where this process cannot read its tokenizer."""
    if model.kind is not ModelSourceKind.FOLDER:
        return None
    folder = Path(model.source) / "tokenizer"
    try:
        stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    except OSError:
        return None
    return _load(str(folder), stamp)


@lru_cache(maxsize=16)
def _load(folder: str, _stamp: int) -> ModelText | None:
    """Cached per folder and file version: a tokenizer is read once, not per request."""
    path = Path(folder)
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception:
        return None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    vocabulary = tokenizer.get_vocab()
    known = None
    if len(vocabulary) <= WORD_LIST_MAX_VOCABULARY:
        known = frozenset(
            token.removesuffix(_END_OF_WORD)
            for token, index in vocabulary.items()
            if index >= _BYTE_SYMBOLS
            and token.endswith(_END_OF_WORD)
            and token.removesuffix(_END_OF_WORD).isalpha()
        )
    return ModelText(tokenizer, _context_tokens(path), known)


def _context_tokens(tokenizer_folder: Path) -> int:
    try:
        config = json.loads((tokenizer_folder / "tokenizer_config.json").read_text())
        length = int(config["model_max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_CONTEXT_TOKENS
    # Tokenizers without a limit record a huge sentinel; CLIP's position embeddings stop at 77.
    return length if 0 < length <= 4096 else DEFAULT_CONTEXT_TOKENS
