"""Build a CLIP BPE tokenizer offline whose merges spell a given list of whole words.

Tests, demos and the toy world have no model hub. A CLIP tokenizer is a byte-level BPE: the
vocabulary holds the 256 byte symbols, the same with the end-of-word mark `</w>`, one token per
merge, and `<|startoftext|>` / `<|endoftext|>` last. Giving it merges that spell each word makes
every listed word a single token, exactly like common words in the real CLIP vocabulary, so the
engine's default vocabulary (whole words of the model's own tokenizer, in merge order) works on
tiny models as it does on Stable Diffusion.
"""

import json
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

END_OF_WORD = "</w>"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte → printable-unicode table, in vocabulary order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Greedy lowest-rank-first BPE, as CLIP applies it to one word."""
    unmergeable = len(ranks)
    while len(symbols) > 1:
        rank, i = min((ranks.get(p, unmergeable), i) for i, p in enumerate(pairwise(symbols)))
        if rank == unmergeable:
            break
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def word_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges, in rank order, under which every word (lower-case ASCII) is one BPE token.

    Each word is first tokenized with the merges so far, then its pieces are joined left to right
    with new merges. New merges rank after all earlier ones, so they never change how an earlier
    word tokenizes: at each step of an earlier word an older, lower-ranked merge applies first.
    """
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(w.strip().lower() for w in words):
        if not word.isascii() or not word.isalpha():
            raise ValueError(f"word tokenizer takes lower-case ASCII letters only, got {word!r}")
        pieces = _apply_merges([*word[:-1], word[-1] + END_OF_WORD], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in ranks:
                ranks[pair] = len(merges)
                merges.append(pair)
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    return merges


def write_word_tokenizer(words: Sequence[str], path: Path, model_max_length: int = 77) -> Path:
    """Write `vocab.json`, `merges.txt` and the tokenizer config of a CLIPTokenizer to `path`."""
    path.mkdir(parents=True, exist_ok=True)
    merges = word_merges(words)
    symbols = _byte_symbols()
    vocab_list = symbols + [s + END_OF_WORD for s in symbols]
    vocab_list += list(dict.fromkeys(a + b for a, b in merges))
    vocab_list += [BOS, EOS]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (path / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (path / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS})
    )
    return path
