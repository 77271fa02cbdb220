"""Which unlabeled clips to label next: uncertainty scores and batch pickers, as pure functions.

Every uncertainty score takes one clip's frame log-probabilities (T, V) (log-softmax, padding
frames removed) and returns a float where higher means the model is less sure. Scores are
averaged over frames so that long clips are not ranked first just for being long.
"""

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch


def least_confidence(log_probs: torch.Tensor) -> float:
    """1 - the geometric mean over frames of the best token's probability. In [0, 1).

    The best path's probability, length-normalized: exp(sum_t log max p_t) would tend to 0
    for any long clip.
    """
    best_log_probs = log_probs.detach().float().max(dim=-1).values  # (T,)
    return 1.0 - float(best_log_probs.mean().exp())


def mean_frame_entropy(log_probs: torch.Tensor) -> float:
    """Mean over frames of the entropy of the token distribution, in nats. In [0, log V]."""
    log_probs = log_probs.detach().float()
    entropy = -(log_probs.exp() * log_probs).nan_to_num().sum(dim=-1)  # (T,); 0 * -inf = 0
    return float(entropy.mean())


def top2_margin_uncertainty(log_probs: torch.Tensor) -> float:
    """1 - the mean over frames of (best - second best probability). In [0, 1]."""
    top2 = log_probs.detach().float().exp().topk(2, dim=-1).values  # (T, 2)
    return 1.0 - float((top2[:, 0] - top2[:, 1]).mean())


def pick_random(pool_size: int, count: int, seed: int) -> list[int]:
    """The baseline: `count` distinct pool indices, uniformly at random, reproducible by seed."""
    rng = np.random.default_rng(seed)
    return rng.choice(pool_size, size=min(count, pool_size), replace=False).tolist()


def pick_most_uncertain(uncertainty: np.ndarray, count: int) -> list[int]:
    """Indices of the `count` highest scores, highest first; ties by lower index."""
    order = np.argsort(-np.asarray(uncertainty, np.float64), kind="stable")
    return order[:count].tolist()


def pick_diverse_uncertain(
    embeddings: np.ndarray,
    uncertainty: np.ndarray,
    count: int,
    labeled_embeddings: np.ndarray | None = None,
) -> list[int]:
    """Uncertainty-weighted k-center greedy: informative clips that are not near-copies.

    embeddings (N, D) for the pool, uncertainty (N,) >= 0, labeled_embeddings (M, D) for clips
    already labeled (or None). Each step picks the clip maximizing
    uncertainty * distance to the nearest labeled-or-picked clip, so a clip close to one
    already chosen scores near zero however uncertain it is. Distances are Euclidean between
    L2-normalized embeddings (a monotone function of cosine distance). With nothing labeled,
    the first pick is the most uncertain clip. Returns `count` distinct pool indices in pick
    order.
    """
    uncertainty = np.asarray(uncertainty, np.float64)
    if np.any(uncertainty < 0):
        raise ValueError("uncertainty scores must be >= 0 to weight distances")
    pool = _unit_rows(embeddings)  # (N, D)
    count = min(count, len(pool))

    if count == 0:
        return []
    if labeled_embeddings is None or len(labeled_embeddings) == 0:
        picked = [int(np.argmax(uncertainty))]
        nearest_distance = _distances(pool, pool[picked])[:, 0]  # (N,)
    else:
        picked = []
        labeled = _unit_rows(labeled_embeddings)
        nearest_distance = np.full(len(pool), np.inf)
        for start in range(0, len(labeled), 1024):  # chunks bound memory at N x 1024
            chunk_distance = _distances(pool, labeled[start : start + 1024]).min(axis=1)
            nearest_distance = np.minimum(nearest_distance, chunk_distance)

    # the epsilon keeps diversity deciding when the model is equally sure of everything
    weight = uncertainty + 1e-6
    while len(picked) < count:
        score = weight * nearest_distance
        score[picked] = -np.inf
        choice = int(np.argmax(score))
        picked.append(choice)
        nearest_distance = np.minimum(nearest_distance, _distances(pool, pool[[choice]])[:, 0])
    return picked


# A spelling that only one clip's draft holds is most often a misreading of some other word;
# one that recurs across clips is most often a real word. Weights grow with the log of that
# count so that a recurring word outweighs many one-off spellings, and the most frequent words
# (which any pick covers soon) do not drown the rest.
ONE_DRAFT_WEIGHT = 0.1


def pick_new_words(
    drafts: Sequence[str],
    seconds: np.ndarray,
    known_words: Iterable[str],
    count: int,
) -> list[int]:
    """Vocabulary coverage: clips whose drafts hold the most words not labeled yet, per second.

    drafts (N,) are the model's transcripts of the pool, seconds (N,) their durations,
    known_words the words of the labeled transcripts. Each step picks the clip with the largest
    sum, over the distinct draft words that neither the labeled transcripts nor an earlier
    pick's draft hold, of log(number of pool drafts holding the word) + ONE_DRAFT_WEIGHT,
    divided by the clip's seconds. Why: with long words, most word errors are words the
    labeled set has never shown (a lexicon decoder cannot write them at all), and uncertainty
    alone favours acoustically degraded clips (docs/benchmarks.md). Returns `count` distinct
    pool indices in pick order; ties go to the lower index.
    """
    draft_words = [frozenset(draft.split()) for draft in drafts]
    seconds = np.maximum(np.asarray(seconds, np.float64), 1e-3)
    support = Counter(word for words in draft_words for word in words)
    weight = {word: math.log(n) + ONE_DRAFT_WEIGHT for word, n in support.items()}
    covered = set(known_words)

    def gain(index: int) -> float:
        new = sum(weight[word] for word in draft_words[index] if word not in covered)
        return new / seconds[index]

    # Lazy greedy: a clip's gain only falls as words get covered, so a stale gain is an upper
    # bound and the top of the heap needs a fresh look only when it was computed earlier.
    heap = [(-gain(index), index) for index in range(len(draft_words))]
    heapq.heapify(heap)
    picked: list[int] = []
    while heap and len(picked) < count:
        _, index = heapq.heappop(heap)
        fresh = (-gain(index), index)
        if heap and fresh > heap[0]:
            heapq.heappush(heap, fresh)
            continue
        picked.append(index)
        covered |= draft_words[index]
    return picked


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between unit rows: a (N, D), b (M, D) -> (N, M)."""
    return np.sqrt(np.maximum(2.0 - 2.0 * a @ b.T, 0.0))
