import math

import numpy as np
import pytest
import torch

from asr.select import (
    least_confidence,
    mean_frame_entropy,
    pick_diverse_uncertain,
    pick_most_uncertain,
    pick_new_words,
    pick_random,
    top2_margin_uncertainty,
)

UNCERTAINTY_SCORES = [least_confidence, mean_frame_entropy, top2_margin_uncertainty]


def frames_of(*distributions: list[float]) -> torch.Tensor:
    return torch.tensor(distributions).log()  # (T, V); exact zeros become -inf


def test_certain_frames_score_zero_on_every_measure():
    certain = frames_of([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0])
    for score in UNCERTAINTY_SCORES:
        assert score(certain) == pytest.approx(0.0, abs=1e-6), score.__name__


def test_uniform_frames_reach_each_measures_maximum():
    uniform = frames_of([0.25] * 4, [0.25] * 4)
    assert least_confidence(uniform) == pytest.approx(0.75)
    assert mean_frame_entropy(uniform) == pytest.approx(math.log(4))
    assert top2_margin_uncertainty(uniform) == pytest.approx(1.0)


def test_hand_computed_values():
    frames = frames_of([0.7, 0.2, 0.1], [0.4, 0.4, 0.2])
    assert least_confidence(frames) == pytest.approx(1 - math.sqrt(0.7 * 0.4))
    entropy = [-sum(p * math.log(p) for p in row) for row in ([0.7, 0.2, 0.1], [0.4, 0.4, 0.2])]
    assert mean_frame_entropy(frames) == pytest.approx(sum(entropy) / 2, rel=1e-5)
    assert top2_margin_uncertainty(frames) == pytest.approx(1 - (0.5 + 0.0) / 2)


@pytest.mark.parametrize("score", UNCERTAINTY_SCORES)
def test_a_sharper_model_is_less_uncertain(score):
    sharp = frames_of([0.9, 0.05, 0.05], [0.05, 0.9, 0.05])
    blurry = frames_of([0.5, 0.3, 0.2], [0.3, 0.5, 0.2])
    assert score(sharp) < score(blurry)


@pytest.mark.parametrize("score", UNCERTAINTY_SCORES)
def test_scores_do_not_grow_with_clip_length(score):
    frames = frames_of([0.6, 0.3, 0.1], [0.2, 0.5, 0.3])
    assert score(frames.repeat(50, 1)) == pytest.approx(score(frames), rel=1e-5)


def test_random_picks_are_distinct_and_reproducible_by_seed():
    first = pick_random(1000, 50, seed=7)
    assert len(set(first)) == 50 and all(0 <= index < 1000 for index in first)
    assert pick_random(1000, 50, seed=7) == first
    assert pick_random(1000, 50, seed=8) != first
    assert sorted(pick_random(5, 10, seed=0)) == [0, 1, 2, 3, 4]


def test_most_uncertain_picks_the_top_scores_in_order():
    assert pick_most_uncertain(np.array([0.1, 0.9, 0.5, 0.9, 0.3]), 3) == [1, 3, 2]


def clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of 10 clips; cluster 0 is the most uncertain."""
    centers = np.eye(3, 16) * 10
    embeddings = np.concatenate([center + rng.normal(0, 0.1, (10, 16)) for center in centers])
    uncertainty = np.concatenate([rng.uniform(0.8, 0.9, 10), rng.uniform(0.5, 0.6, 20)])
    return embeddings, uncertainty


def test_diverse_picker_takes_one_clip_per_cluster_where_top_k_takes_near_copies():
    embeddings, uncertainty = clusters(np.random.default_rng(0))

    diverse = pick_diverse_uncertain(embeddings, uncertainty, 3)

    assert sorted(index // 10 for index in diverse) == [0, 1, 2]
    assert diverse[0] == int(np.argmax(uncertainty))
    assert [index // 10 for index in pick_most_uncertain(uncertainty, 3)] == [0, 0, 0]


def test_diverse_picker_stays_away_from_what_is_already_labeled():
    embeddings, uncertainty = clusters(np.random.default_rng(1))
    labeled = embeddings[:2] + 0.01  # cluster 0 is already represented in the labeled set

    picked = pick_diverse_uncertain(embeddings, uncertainty, 2, labeled_embeddings=labeled)

    assert sorted(index // 10 for index in picked) == [1, 2]


def test_with_equal_uncertainty_the_picker_spreads_out_like_k_center():
    angles = np.linspace(0, np.pi, 13)  # points on a half circle
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    picked = pick_diverse_uncertain(embeddings, np.ones(13), 3)

    assert picked == [0, 12, 6]  # an end, the far end, then the middle


def test_diverse_picker_returns_distinct_indices_even_past_the_pool_size():
    embeddings = np.random.default_rng(2).normal(size=(6, 4))
    picked = pick_diverse_uncertain(embeddings, np.zeros(6), 10)
    assert sorted(picked) == list(range(6))
    assert pick_diverse_uncertain(embeddings, np.ones(6), 0) == []


def test_negative_uncertainty_is_refused():
    with pytest.raises(ValueError):
        pick_diverse_uncertain(np.ones((2, 2)), np.array([0.5, -0.1]), 1)


# --- vocabulary coverage ----------------------------------------------------------------------


def test_new_words_picks_clips_that_teach_unlabeled_words_before_ones_already_known():
    drafts = ["mama ni mama", "watoto wanacheza", "mama ni", "watoto wanacheza nje"]
    seconds = np.array([2.0, 2.0, 2.0, 2.0])
    picks = pick_new_words(drafts, seconds, known_words={"mama", "ni"}, count=4)
    # clip 3 holds the most unknown words; after it, clip 1 teaches nothing more than the
    # fully known clips 0 and 2, and equal gains go by index
    assert picks == [3, 0, 1, 2]
    assert pick_new_words(drafts, seconds, known_words={"mama", "ni"}, count=1) == [3]
    assert pick_new_words(drafts, seconds, known_words={"watoto", "wanacheza"}, count=1) == [0]


def test_a_spelling_found_in_one_draft_only_weighs_less_than_a_recurring_word():
    # clip 0 holds three one-off spellings (likely misreadings); clip 1 one word that recurs
    drafts = ["xqa zzt kkp", "shule", "shule leo", "shule"]
    picks = pick_new_words(drafts, np.ones(4), known_words={"leo"}, count=1)
    assert picks == [1]


def test_new_words_are_counted_per_second_of_audio():
    drafts = ["kitabu", "kalamu"]  # one new word each, but clip 0 takes five times as long
    picks = pick_new_words(drafts + drafts, np.array([5.0, 1.0, 5.0, 1.0]), set(), count=2)
    assert picks == [1, 0]


def test_new_words_matches_a_plain_greedy_pick_on_a_random_pool():
    rng = np.random.default_rng(0)
    words = [f"w{n}" for n in range(60)]
    drafts = [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(80)]
    seconds = rng.uniform(1.0, 6.0, size=80)
    known = set(words[:10])

    weight = {w: math.log(sum(w in set(d.split()) for d in drafts)) + 0.1 for w in words}
    covered, expected = set(known), []
    for _ in range(30):  # the slow way: every clip's gain afresh at every step
        gains = [
            -np.inf
            if i in expected
            else sum(weight[w] for w in set(d.split()) - covered) / seconds[i]
            for i, d in enumerate(drafts)
        ]
        best = int(np.argmax(gains))  # ties: the lower index
        expected.append(best)
        covered |= set(drafts[best].split())
    assert pick_new_words(drafts, seconds, known, count=30) == expected


def test_new_words_returns_distinct_indices_even_past_the_pool_size():
    picks = pick_new_words(["a b", "", "b c"], np.ones(3), set(), count=10)
    assert sorted(picks) == [0, 1, 2]
