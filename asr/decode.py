"""Greedy CTC decoding with a confidence per emitted token.

Greedy (best path) decoding: take the most likely token in each frame, merge repeats, drop
blanks. A token's confidence is its highest frame probability within the run of frames that
emitted it: the peak of its CTC spike.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CtcHypothesis:
    token_ids: list[int]  # emitted tokens, repeats merged and blanks dropped
    token_confidences: list[float]  # (len(token_ids),), probabilities in (0, 1]
    token_frames: list[int]  # frame where each token's run starts: time = frame * frame stride


def ctc_greedy_decode(log_probs: torch.Tensor, blank_id: int = 0) -> CtcHypothesis:
    """log_probs (T, V), log-softmax over the vocabulary -> the best-path hypothesis."""
    if log_probs.ndim != 2:
        raise ValueError(f"expected log_probs of shape (T, V), got {tuple(log_probs.shape)}")
    best_log_probs, best_ids = log_probs.detach().float().max(dim=-1)  # (T,), (T,)
    if best_ids.numel() == 0:
        return CtcHypothesis([], [], [])

    # a run starts where the best token differs from the previous frame's
    run_starts = torch.ones_like(best_ids, dtype=torch.bool)
    run_starts[1:] = best_ids[1:] != best_ids[:-1]
    run_index = torch.cumsum(run_starts, dim=0) - 1  # (T,) which run each frame belongs to
    num_runs = int(run_index[-1]) + 1
    run_peak = torch.full((num_runs,), -torch.inf).scatter_reduce(
        0, run_index, best_log_probs, reduce="amax"
    )  # (R,)
    run_token = best_ids[run_starts]  # (R,)
    run_frame = torch.nonzero(run_starts).squeeze(1)  # (R,)

    emitted = run_token != blank_id
    return CtcHypothesis(
        token_ids=run_token[emitted].tolist(),
        token_confidences=run_peak[emitted].exp().tolist(),
        token_frames=run_frame[emitted].tolist(),
    )
