"""Candidate adversarial concepts R_c for one erased concept c (algorithm.md §3.3-3.5).

K closest words by L2 distance of flattened embeddings, then 1-D k-means on those K distances
so that the candidates spread from near to far instead of being only near neighbours.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans

_KMEANS_INITS = 10
# k-means' own initialisation seed, fixed: the candidate set is a function of the model, the
# concept, the vocabulary and the settings, never of the run seed, so seeds vary training, not R_c.
_KMEANS_SEED = 0
# Words per distance chunk: 256 × 77 × 768 fp32 = 61 MB of temporary, whatever the vocabulary size.
DISTANCE_CHUNK_ROWS = 256


@dataclass(frozen=True)
class CandidateSet:
    """R_c with d_w = ||E(w) − E(c)||₂ and M_c, the candidates' embeddings, one row per word."""

    concept: str
    words: list[str]
    distances: list[float]
    matrix: torch.Tensor  # M_c, [|R_c|, L·D]


def closest_words(
    concept_embedding: torch.Tensor,
    word_embeddings: torch.Tensor,
    k: int,
    chunk_rows: int = DISTANCE_CHUNK_ROWS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and distances of the K words nearest c, nearest first (flattened E, L2).

    The difference E(w) − E(c) is formed `chunk_rows` words at a time: all at once it is a
    second copy of the whole vocabulary's embeddings (0.7 GB at 3,000 words, 23.6 GB at 100,000)."""
    flat_words = word_embeddings.flatten(1)  # a view
    concept = concept_embedding.flatten().to(flat_words.device, flat_words.dtype)
    distances = torch.cat(
        [
            torch.linalg.vector_norm(flat_words[start : start + chunk_rows] - concept, dim=1)
            for start in range(0, len(flat_words), chunk_rows)
        ]
    )
    k = min(k, len(distances))
    nearest = torch.topk(distances, k, largest=False, sorted=True)
    return nearest.indices, nearest.values


def stratify(distances: np.ndarray, num_centers: int) -> list[int]:
    """Positions (into `distances`) of one word per 1-D k-means centre: the word whose distance
    is nearest the centre; deduplicated, in increasing distance."""
    distinct = len(np.unique(distances))
    clusters = max(1, min(num_centers, distinct))
    kmeans = KMeans(n_clusters=clusters, n_init=_KMEANS_INITS, random_state=_KMEANS_SEED)
    kmeans.fit(distances.reshape(-1, 1))
    centres = kmeans.cluster_centers_.ravel()
    chosen = {int(np.argmin(np.abs(distances - centre))) for centre in centres}
    return sorted(chosen, key=lambda i: (distances[i], i))


def select_candidates(
    concept: str,
    concept_embedding: torch.Tensor,
    words: Sequence[str],
    word_embeddings: torch.Tensor,
    k_closest: int,
    num_centers: int,
) -> CandidateSet:
    """R_c and M_c for erased concept c. `words` must already exclude the erased concepts."""
    indices, distances = closest_words(concept_embedding, word_embeddings, k_closest)
    distances_np = distances.double().cpu().numpy()
    picked = stratify(distances_np, num_centers)
    rows = indices[picked]
    return CandidateSet(
        concept=concept,
        words=[words[int(i)] for i in rows],
        distances=[float(distances_np[p]) for p in picked],
        matrix=word_embeddings[rows.to(word_embeddings.device)].flatten(1).clone(),
    )
