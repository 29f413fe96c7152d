"""Must show 5: the vocabulary and the candidate concepts (algorithm.md §3)."""

from pathlib import Path

import numpy as np
import torch
from erasure_helpers import fast_config, prepared
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from core.erasure.candidates import closest_words, select_candidates, stratify
from core.erasure.tiny import common_words
from core.erasure.trainer import Trainer
from core.erasure.vocabulary import (
    cache_path,
    cached_embeddings,
    embed,
    exclude_erased,
    tokenizer_words,
)


def test_default_vocabulary_is_the_tokenizers_whole_words(tiny_model: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    words = tokenizer_words(tokenizer, 3000)
    expected = [w for w in dict.fromkeys(common_words()) if len(w) >= 3]
    assert words == expected  # merge order = the order the words were listed in
    assert {"cat", "dog", "church", "parachute", "golf"} <= set(words)
    assert not {"a", "an", "of", "in"} & set(words)
    assert tokenizer_words(tokenizer, 5) == expected[:5]


def test_erased_concepts_are_excluded() -> None:
    words = ["cat", "Cat", "dog", "a cat", "catalog", "church", "dog"]
    assert exclude_erased(words, ["a cat"]) == ["dog", "catalog", "church"]
    assert exclude_erased(words, ["A Cat", "the church"]) == ["dog", "catalog"]


def test_k_closest_by_l2_distance() -> None:
    concept = torch.zeros(2, 3)
    # word i sits at distance i from the concept (flattened L2), listed in scrambled order
    order = [4, 0, 3, 1, 2]
    embeddings = torch.stack([torch.full((2, 3), i / 6**0.5) for i in order])
    indices, distances = closest_words(concept, embeddings, k=3)
    assert [order[i] for i in indices] == [0, 1, 2]
    assert torch.allclose(distances, torch.tensor([0.0, 1.0, 2.0]))


def test_one_word_per_kmeans_centre() -> None:
    distances = np.array([0.10, 0.11, 0.12, 5.0, 5.2, 10.0])
    picked = stratify(distances, num_centers=3)
    assert len(picked) == 3
    assert picked[0] in (0, 1, 2) and picked[1] in (3, 4) and picked[2] == 5
    assert picked[0] == 1  # nearest the centre 0.11 of its cluster
    # more centres than distinct distances: each distinct distance once, deduplicated
    assert stratify(np.array([1.0, 1.0, 2.0]), num_centers=10) in ([0, 2], [1, 2])


def test_candidates_spread_from_near_to_far() -> None:
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(200, 4, 8, generator=generator)
    words = [f"w{i}" for i in range(200)]
    chosen = select_candidates("c", torch.zeros(4, 8), words, embeddings, 100, 10)
    distances = torch.linalg.vector_norm(embeddings.flatten(1), dim=1)
    nearest_100 = set(torch.topk(distances, 100, largest=False).indices.tolist())
    assert 5 <= len(chosen.words) <= 10
    assert {int(w[1:]) for w in chosen.words} <= nearest_100
    assert chosen.distances == sorted(chosen.distances)
    assert chosen.distances[-1] - chosen.distances[0] > 0.5 * (
        max(distances[list(nearest_100)]) - min(distances)
    )
    rows = [embeddings[int(w[1:])].flatten() for w in chosen.words]
    assert torch.equal(chosen.matrix, torch.stack(rows))


def test_one_candidate_set_and_pi_per_erased_concept(tiny_model: Path) -> None:
    config = fast_config(tiny_model, concepts=["a cat", "a church"])
    _, run = prepared(config)
    cat, church = run.setup.adversaries
    assert (cat.candidates.concept, church.candidates.concept) == ("a cat", "a church")
    assert cat.candidates.words != church.candidates.words
    assert not {"cat", "church"} & (set(cat.candidates.words) | set(church.candidates.words))
    assert cat.logits is not church.logits
    assert torch.equal(cat.logits, torch.zeros(len(cat.candidates.words)))  # uniform start
    # an adversary step moves only the π of the concept it drew
    trainer = Trainer(run.setup, seed=0)
    trainer.unet_step()
    before = [cat.logits.detach().clone(), church.logits.detach().clone()]
    # replay the concept the next step will draw (its first draw from the run's generator)
    replica = torch.Generator().set_state(trainer.generator.get_state())
    concept = int(torch.randint(2, (1,), generator=replica))
    trainer.adversary_step()
    moved = [not torch.equal(b, a.logits) for b, a in zip(before, (cat, church), strict=True)]
    assert moved == [concept == 0, concept == 1]


def test_vocabulary_embeddings_are_cached_and_reused(tiny_model: Path, tmp_path: Path) -> None:
    base, _ = prepared(fast_config(tiny_model, method="esd"))
    encoder, tokenizer = base.pipeline.text_encoder, base.pipeline.tokenizer
    words = ["dog", "house", "tree"]
    first = cached_embeddings(encoder, tokenizer, words, base.content_hash, tmp_path)
    assert torch.allclose(first, embed(encoder, tokenizer, words))
    cached = cache_path(tmp_path, base.content_hash, words)
    assert cached.is_file()
    # a later run reads the file instead of encoding again: plant a marker in it
    save_file({"embeddings": torch.full_like(first, 7.0)}, cached)
    again = cached_embeddings(encoder, tokenizer, words, base.content_hash, tmp_path)
    assert torch.all(again == 7.0)
    # another vocabulary or another model is another cache entry
    assert cache_path(tmp_path, base.content_hash, ["dog"]) != cached
    assert cache_path(tmp_path, "0" * 64, words) != cached
