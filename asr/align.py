"""CTC forced alignment: where each line of a known, untimed transcript is spoken in a
recording, so that a read story, a scripture chapter or a radio script with its recording
becomes labeled clips (the way the MMS project built data for 1,100 languages).

    lines = align_transcript(model, samples, ["first line", "second line", ...])
    # [AlignedLine(start_sample, end_sample, text, score)], in order

The model's log-probabilities for the whole recording are computed in 30 s pieces (a few
MB an hour); the alignment itself runs window by window (MMS-style), so its trellis never
holds more than one window: each window aligns the lines that can fit in it, keeps those
that end well before its edge, and the next window starts where the last kept line ended.

`ctc_forced_align` is the Viterbi step of torchaudio.functional.forced_align (the CTC
topology: blank, c1, blank, c2, ..., blank; a letter repeated needs a blank between). It is
written here because torchaudio does not import with the CPU build of torch 2.13 that the
default install uses; where torchaudio imports (torch 2.11, the GPU workers, and
`make test-torchaudio`), the tests check that both give the same path.

A line's score is the geometric mean of the probabilities of its frames along the path: near
1 where the model hears what the line says, low where it does not (a wrong line), so low
scores can go to review instead of into training.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.audio import SAMPLE_RATE
from asr.model import CtcModel

SAMPLES_PER_FRAME = 320  # both base models write 50 frames a second
WINDOW_FRAMES = 1500  # 30 s
EDGE_FRAMES = 100  # a line must end 2 s before a window's edge to be kept from it
PAD_FRAMES = 10  # 0.2 s of quiet kept before the first and after the last line
PIECE_SECONDS, CONTEXT_SECONDS = 28.0, 1.0  # log-probs: 28 s pieces, each heard with 1 s more
SEARCH_FRAMES = 25  # a cut may move 0.5 s past the letters on either side to reach the pause
QUIET_PERCENTILE, QUIET_DB = 10, 10.0  # quiet: within 10 dB of the recording's 10th-percentile
MIN_PAUSE_FRAMES = 5  # 0.1 s; a shorter quiet stretch is a stop consonant, not a pause
MAX_LETTERS_PER_SECOND = 25  # fast speech is about 15; more cannot be this recording's text


REVIEW_BELOW = 0.3  # scores under this go to review: on demo-corpus recordings (a 10-minute
# model) right lines scored 0.46-0.98 (median 0.90) and a wrong line 0.01-0.04


class AlignmentError(ValueError):
    """The transcript cannot be placed in the audio (e.g. more text than the audio can hold)."""


@dataclass(frozen=True)
class AlignedLine:
    start_sample: int
    end_sample: int
    text: str
    score: float  # geometric mean frame probability along the path, 0-1

    @property
    def start_seconds(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.end_sample / SAMPLE_RATE


def ctc_forced_align(
    log_probs: np.ndarray, targets: Sequence[int], blank: int = 0, free_end: bool = False
) -> np.ndarray:
    """The best CTC path of `targets` through `log_probs` (T, V): for each frame, the index
    into targets of the token it emits, or -1 for a blank. With `free_end`, the path may stop
    anywhere in the targets (a window that ends before the transcript does)."""
    frames, length = len(log_probs), len(targets)
    if length == 0:
        return np.full(frames, -1)
    extended = np.full(2 * length + 1, blank)
    extended[1::2] = targets
    states = len(extended)
    # a token state may be entered from two states back unless that is the same letter
    skip = np.zeros(states, bool)
    skip[3::2] = extended[3::2] != extended[1:-2:2]
    emit = log_probs[:, extended]  # (T, S)
    alpha = np.full(states, -np.inf)
    alpha[0], alpha[1] = emit[0, 0], emit[0, 1]
    back = np.zeros((frames, states), np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, frames):
        from_one = np.concatenate([[-np.inf], alpha[:-1]])
        from_two = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        choices = np.stack([alpha, from_one, from_two])
        back[t] = choices.argmax(axis=0)
        alpha = choices.max(axis=0) + emit[t]
    if free_end:
        state = int(alpha.argmax())
    else:
        state = states - 1 if alpha[-1] >= alpha[-2] else states - 2
    if not np.isfinite(alpha[state]):
        raise AlignmentError("the transcript has more letters than the audio has frames")
    path = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return np.where(path % 2 == 1, path // 2, -1)


def recording_log_probs(model: CtcModel, samples: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(T, V) log-probabilities of a whole recording at 50 frames/s, in 28 s pieces heard with
    1 s of context on each side, so no frame is far from the middle of what the model read."""
    network = model.network.to(device).eval()
    piece, context = int(PIECE_SECONDS * SAMPLE_RATE), int(CONTEXT_SECONDS * SAMPLE_RATE)
    total_frames = len(samples) // SAMPLES_PER_FRAME
    outputs = []
    for start in range(0, max(len(samples), 1), piece):
        left = max(0, start - context)
        right = min(len(samples), start + piece + context)
        heard = np.asarray(samples[left:right], np.float32)
        features = model.feature_extractor(heard, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            logits = network(features["input_values"].to(device)).logits[0]
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        first = (start - left) // SAMPLES_PER_FRAME
        count = min(piece, len(samples) - start) // SAMPLES_PER_FRAME
        outputs.append(log_probs[first : first + count])
    emissions = np.concatenate(outputs) if outputs else np.zeros((0, len(model.vocabulary)))
    return emissions[:total_frames]


def transcript_lines(text: str, max_words: int = 40) -> list[str]:
    """An untimed transcript's utterances: one a line; a line longer than `max_words` (a
    whole text in one paragraph) is split after its sentences' ends."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        while len(words) > max_words:
            ends = [i for i, word in enumerate(words[:max_words]) if word[-1] in ".!?;:"]
            cut = ends[-1] + 1 if ends else max_words
            lines.append(" ".join(words[:cut]))
            words = words[cut:]
        if words:
            lines.append(" ".join(words))
    return lines


def align_transcript(
    model: CtcModel,
    samples: np.ndarray,
    lines: Sequence[str],
    device: str = "cpu",
) -> list[AlignedLine]:
    """Each (normalized) line of an untimed transcript, placed in the recording. Clips are
    cut in the middle of the pause between lines. AlignmentError when the lines cannot fit."""
    vocabulary = model.vocabulary
    lines = [" ".join(line.split()) for line in lines if line.split()]
    if not lines:
        raise AlignmentError("the transcript has no text")
    emissions = recording_log_probs(model, samples, device)
    encoded = [vocabulary.encode(line) for line in lines]
    delimiter = vocabulary.word_delimiter_id
    spans: list[tuple[int, int, float]] = []  # first frame, end frame, mean log-prob
    position, done = 0, 0
    while done < len(lines):
        window = emissions[position : position + WINDOW_FRAMES]
        last_window = position + WINDOW_FRAMES >= len(emissions)
        targets, owners = [], []
        for index in range(done, len(lines)):
            tokens = ([delimiter] if targets else []) + encoded[index]
            if targets and len(targets) + len(tokens) > len(window) // 2 and not last_window:
                break  # a window of speech holds about one letter per two frames at most
            targets += tokens
            owners += [-1] * (len(tokens) - len(encoded[index])) + [index] * len(encoded[index])
        if len(targets) > len(window):
            raise AlignmentError(
                f"line {done + 1} and after hold more text than the rest of the audio can "
                f"({len(targets)} letters for {len(window) / 50:.1f} s)"
            )
        path = ctc_forced_align(window, targets, vocabulary.pad_id, free_end=not last_window)
        target_array = np.asarray(targets)
        owner_of_frame = np.where(path >= 0, np.asarray(owners)[np.maximum(path, 0)], -1)
        labels = np.where(path >= 0, target_array[np.maximum(path, 0)], vocabulary.pad_id)
        path_log_probs = window[np.arange(len(window)), labels]  # (frames,)
        kept, last_end = 0, 0
        for index in range(done, len(lines)):
            frames = np.flatnonzero(owner_of_frame == index)
            if len(frames) < len(encoded[index]):
                break  # not all of it is in this window
            first, end = int(frames[0]), int(frames[-1]) + 1
            near_edge = not last_window and end > len(window) - EDGE_FRAMES
            if near_edge and kept > 0:
                break  # it may go on past the window: align it again from the next one
            spans.append(
                (position + first, position + end, float(path_log_probs[first:end].mean()))
            )
            kept, last_end = kept + 1, end
            if near_edge:
                break
        if kept == 0:
            raise AlignmentError(
                f"line {done + 1} could not be placed in the audio"
                + ("" if last_window else f" (is it longer than {WINDOW_FRAMES / 50:.0f} s?)")
            )
        done += kept
        position += last_end
    return _cut_between(spans, lines, np.asarray(samples, np.float32))


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """Each 20 ms frame's power in dB (digital silence at -100)."""
    frames = len(samples) // SAMPLES_PER_FRAME
    power = np.square(samples[: frames * SAMPLES_PER_FRAME].astype(np.float64))
    return 10 * np.log10(power.reshape(frames, SAMPLES_PER_FRAME).mean(axis=1) + 1e-10)


def quiet_frames(samples: np.ndarray) -> np.ndarray:
    """(frames,) bool: within QUIET_DB of the recording's quiet floor (its QUIET_PERCENTILE)."""
    levels = frame_levels(samples)
    if len(levels) == 0:
        return np.zeros(0, bool)
    return levels < np.percentile(levels, QUIET_PERCENTILE) + QUIET_DB


def quiet_runs(quiet: np.ndarray) -> list[tuple[int, int]]:
    """Every run of quiet frames: (first, end)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def longest_quiet_run(quiet: np.ndarray, low: int, high: int) -> tuple[int, int] | None:
    """The longest run of quiet frames in [low, high): (first, end), or None."""
    runs = quiet_runs(quiet[low:high])
    if not runs:
        return None
    first, end = max(runs, key=lambda run: run[1] - run[0])
    return low + first, low + end


def _cut_between(
    spans: list[tuple[int, int, float]], lines: Sequence[str], samples: np.ndarray
) -> list[AlignedLine]:
    """Clips cut in the middle of each pause between lines (and 0.2 s out at both ends).

    The letters' frames say roughly where the pause is: a CTC model emits a letter somewhere
    in its sound, and a head that learned few clips may put a line's last letter a few
    tenths early or the next line's first one late. So the cut goes to the middle of the
    longest quiet stretch (under QUIET_DB above the recording's quiet floor) found up to
    SEARCH_FRAMES past the letters on either side, and to the middle between the letters
    where there is none (a reading with no audible pause). Cutting at the quietest 0.1 s
    instead was tried: on demo-corpus recordings it put 19 of 39 cuts inside a clip's own
    leading or trailing quiet."""
    quiet = quiet_frames(samples)
    cuts: list[int] = []
    for (first, end, _), (next_first, next_end, _) in zip(spans, spans[1:], strict=False):
        middle = (end + next_first) // 2
        # never before the previous cut, nor past the middle of either line's letters: two
        # cuts in one quiet stretch would leave a line an empty clip
        floor = max(first + (end - first) // 2, cuts[-1] + MIN_PAUSE_FRAMES if cuts else 0)
        low = max(floor, end - SEARCH_FRAMES)
        high = min(next_first + (next_end - next_first) // 2, next_first + SEARCH_FRAMES)
        run = longest_quiet_run(quiet, low, min(high, len(quiet))) if low < high else None
        if run is not None and run[1] - run[0] >= MIN_PAUSE_FRAMES:
            cuts.append((run[0] + run[1]) // 2)
        else:
            cuts.append(max(middle, floor))
    starts = [max(0, spans[0][0] - PAD_FRAMES), *cuts]
    ends = [*cuts, spans[-1][1] + PAD_FRAMES]
    return [
        AlignedLine(
            start_sample=start * SAMPLES_PER_FRAME,
            end_sample=min(end * SAMPLES_PER_FRAME, len(samples)),
            text=lines[index],
            score=float(np.exp(spans[index][2])),
        )
        for index, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


# --- before any model: pauses and line lengths -------------------------------------------------

PAUSE_REWARD = 1.0  # per cut, times log(pause length): longer pauses are likelier line breaks
BAND_SECONDS, BAND_SHARE = 10.0, 0.1  # a cut is looked for this far from where lengths put it


def align_by_pauses(samples: np.ndarray, lines: Sequence[str]) -> list[AlignedLine]:
    """Each line of an untimed transcript placed with no model at all: the recording is cut
    at n-1 of its pauses, chosen so that each line's share of the speech is closest to its
    share of the letters (a dynamic programme over the pauses, each cut looked for within
    BAND_SECONDS or BAND_SHARE of the speech from where the lengths alone put it), longer
    pauses preferred. A line's score is how well its speech fits its length (1: exactly as
    long as its letters say). Nothing here hears the words, so every clip needs a listener.
    AlignmentError when the recording has fewer pauses than lines need."""
    lines = [" ".join(line.split()) for line in lines if line.split()]
    if not lines:
        raise AlignmentError("the transcript has no text")
    samples = np.asarray(samples, np.float32)
    quiet = quiet_frames(samples)
    if len(quiet) == 0:
        raise AlignmentError("the recording is too short")
    loud = np.flatnonzero(~quiet)
    if len(loud) == 0:
        raise AlignmentError("the recording is silent")
    first, last = int(loud[0]), int(loud[-1]) + 1
    pauses = [
        (start, end)
        for start, end in quiet_runs(quiet)
        if end - start >= MIN_PAUSE_FRAMES and start > first and end < last
    ]
    letters = sum(len(line.replace(" ", "")) for line in lines)  # as the upload counts them
    if letters > MAX_LETTERS_PER_SECOND * len(samples) / SAMPLE_RATE:
        raise AlignmentError(
            f"{letters} letters cannot be read in {len(samples) / SAMPLE_RATE:.0f} s of audio "
            f"(at most {MAX_LETTERS_PER_SECOND} a second)"
        )
    if len(pauses) < len(lines) - 1:
        raise AlignmentError(
            f"{len(lines)} lines need {len(lines) - 1} pauses between them, and the recording "
            f"has {len(pauses)} in {(last - first) / 50:.1f} s of sound"
        )
    characters = sum(len(line) for line in lines)  # the shares count spaces: breaks are heard
    speech_before = np.concatenate([[0], np.cumsum(~quiet)])  # loud frames before a frame
    middles = np.array([(start + end) // 2 for start, end in pauses], dtype=np.int64)
    spoken = speech_before[middles].astype(np.float64)  # speech before each candidate cut
    reward = PAUSE_REWARD * np.log([(end - start) / MIN_PAUSE_FRAMES for start, end in pauses])
    total = float(speech_before[last])
    share = np.array([len(line) for line in lines], np.float64) / characters
    expected = np.cumsum(share)[:-1] * total  # speech before each cut, by the lengths alone
    band = max(BAND_SECONDS * 50, BAND_SHARE * total)

    def misfit(actual: np.ndarray, line: int) -> np.ndarray:
        return np.log((np.maximum(actual, 0.0) + 1.0) / (share[line] * total + 1.0)) ** 2

    cuts = _pause_cuts(spoken, expected, reward, band, misfit, total) if len(lines) > 1 else []
    boundaries = [max(0, first - PAD_FRAMES), *middles[cuts].tolist(), last + PAD_FRAMES]
    speech = np.diff([speech_before[first], *spoken[cuts].tolist(), total])
    return [
        AlignedLine(
            start_sample=start * SAMPLES_PER_FRAME,
            end_sample=min(end * SAMPLES_PER_FRAME, len(samples)),
            text=line,
            score=float(np.exp(-np.sqrt(misfit(np.float64(spoken_frames), index)))),
        )
        for index, (line, start, end, spoken_frames) in enumerate(
            zip(lines, boundaries[:-1], boundaries[1:], speech, strict=True)
        )
    ]


def _pause_cuts(spoken, expected, reward, band, misfit, total) -> list[int]:
    """The dynamic programme of align_by_pauses: the pause (an index) of each of the
    len(expected) cuts. cost[k]: the best cost of the lines so far with the latest cut at
    pause k; back[j][k]: where cut j-1 was then."""
    candidates = np.flatnonzero(np.abs(spoken - expected[0]) <= band)
    cost = misfit(spoken[candidates], 0) - reward[candidates]
    back, chosen = [], [candidates]
    for cut in range(1, len(expected)):
        here = np.flatnonzero(np.abs(spoken - expected[cut]) <= band)
        previous = chosen[-1]
        if len(here) == 0 or len(previous) == 0:
            raise AlignmentError(f"line {cut + 1} could not be placed between the pauses")
        total_cost = cost[:, None] + misfit(spoken[here][None, :] - spoken[previous][:, None], cut)
        total_cost[previous[:, None] >= here[None, :]] = np.inf  # cuts in order
        best = total_cost.argmin(axis=0)
        cost = total_cost[best, np.arange(len(here))] - reward[here]
        back.append(best)
        chosen.append(here)
    final = cost + misfit(total - spoken[chosen[-1]], len(expected))
    if len(final) == 0 or not np.isfinite(final).any():
        raise AlignmentError("the lines could not be placed between the pauses in order")
    position = int(final.argmin())
    cuts = [int(chosen[-1][position])]
    for step in range(len(back) - 1, -1, -1):
        position = int(back[step][position])
        cuts.append(int(chosen[step][position]))
    return cuts[::-1]
